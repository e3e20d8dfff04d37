"""broker/deploy: the Grafana dashboard is built on metrics a node really exposes, and a
real Prometheus (Debian's package) scrapes a node with the shipped config's settings and
answers the dashboard's queries with the numbers the clients made."""

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.brokerproc import ROOT, free_port
from tests.conftest import require_tool
from tests.local_cluster import poll_until
from tests.metrics_http import get, scrape, start_with_http

DEPLOY = Path(ROOT) / "broker" / "deploy"
DASHBOARD = json.loads((DEPLOY / "grafana" / "odradek.json").read_text())
METRIC = re.compile(r"\b((?:kafka|odradek|process)_[a-z_]+)\b")


def panel_queries() -> dict[str, str]:
    """title -> PromQL of every panel target, $instance as every node."""
    return {f"{p['title']} {t['refId']}": t["expr"].replace("$instance", ".*")
            for p in DASHBOARD["panels"] for t in p.get("targets", [])}


@pytest.fixture
def busy_node(tmp_path):
    """A node with produce, fetch, a committed group behind the end, and fsyncs."""
    b = start_with_http(tmp_path / "data")
    producer = KafkaProducer(bootstrap_servers=b.bootstrap, linger_ms=0)
    for i in range(20):
        producer.send("dash", f"v{i}".encode()).get(timeout=10)
    consumer = KafkaConsumer("dash", bootstrap_servers=b.bootstrap, group_id="dash-group",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    assert poll_until(lambda: consumer.poll(500), 20)
    consumer.commit()
    consumer.close()
    for i in range(5):
        producer.send("dash", f"later{i}".encode()).get(timeout=10)
    producer.close()
    yield b
    b.stop()


def test_every_dashboard_metric_is_exposed(busy_node):
    """Each name the dashboard queries is a series of /metrics, or one of a family declared
    there that has no series yet (counters of failures that did not happen)."""
    samples = {name for name, _ in scrape(busy_node.http)}
    declared = set(re.findall(r"^# HELP (\S+) ", get(busy_node.http + "/metrics")[1], re.M))
    used = {m for q in panel_queries().values() for m in METRIC.findall(q)}
    assert len(used) > 25
    missing = sorted(m for m in used if m not in samples and not any(
        m in (d, d + "_total", d + "_bucket", d + "_count", d + "_sum") for d in declared))
    assert missing == []


def test_prometheus_scrapes_a_node_and_answers_the_dashboard(busy_node, tmp_path):
    prometheus = require_tool("prometheus")
    shipped = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
    # The shipped config with this node as the target and a fast scrape for the test.
    config = tmp_path / "prometheus.yml"
    target = busy_node.http.removeprefix("http://")
    config.write_text(re.sub(r'targets: \[.*\]', f'targets: ["{target}"]', shipped)
                      .replace("scrape_interval: 10s", "scrape_interval: 1s"))
    port = free_port()
    proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def query(expr: str) -> list:
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    body = json.load(r)
            except OSError:
                return []
            assert body["status"] == "success", (expr, body)
            return body["data"]["result"]

        # rate() needs two scrapes inside its window, and something to happen between them
        assert poll_until(lambda: query("count_over_time(odradek_broker_ready[1m]) >= 3"), 30)
        producer = KafkaProducer(bootstrap_servers=busy_node.bootstrap, linger_ms=0)
        for i in range(10):
            producer.send("dash", f"scraped{i}".encode()).get(timeout=10)
        producer.close()
        assert poll_until(lambda: query("increase(kafka_server_brokertopicmetrics_messagesin_total[1m]) > 0"), 30)
        results = {title: query(expr) for title, expr in panel_queries().items()}
        values = {title: {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in result}
                  for title, result in results.items()}
        assert values["Active controllers A"] == {(): 1.0}
        assert values["Nodes ready A"] == {(): 1.0}
        assert values["Under-replicated partitions A"] == {(): 0.0}
        assert values["Lag per group and topic A"] == {(("consumergroup", "dash-group"), ("topic", "dash")): 15.0}
        assert list(values["Messages in per topic A"]) == [(("topic", "dash"),)]
        assert values["Log size per topic A"][(("topic", "dash"),)] > 35 * 61
        assert any(k == (("request", "Produce"),) and v > 0 for k, v in
                   values["Requests per second by API A"].items())
        # every panel is a query Prometheus accepts; most have data on one busy node
        empty = sorted(t for t, r in results.items() if not r)
        assert len(empty) < len(results) / 3, empty
    finally:
        proc.terminate()
        proc.wait(10)

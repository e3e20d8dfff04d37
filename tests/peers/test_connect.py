"""Kafka Connect 4.4 (connect-runtime's distributed worker) against Odradek.

The worker keeps its connectors' configs, source offsets and statuses in three topics it
creates itself and refuses to start unless each reports exactly cleanup.policy=compact
(KafkaBasedLog's topic check): the test runs a worker on Odradek, copies a file through a
topic with a source and a sink connector (tests/peers/java/LineFileConnectors.java, as
Kafka's FileStream connectors, which are not published for 4.4.0), stops the worker with
SIGTERM, appends to the file and starts a new worker: the connectors come back from the
config topic and carry on from their committed offsets, copying nothing twice.

One Odradek process and two worker JVMs: 40 to 60 s on two busy cores, more than make test
can give (at its time limit), so it runs under `make connect` (ODRADEK_CONNECT=1) only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.brokerproc import BrokerProcess, free_port
from tests.conftest import require_tool
from tests.peers import kafka

SOURCE = Path(__file__).with_name("java") / "LineFileConnectors.java"
pytestmark = pytest.mark.skipif(os.environ.get("ODRADEK_CONNECT") != "1",
                                reason="Kafka Connect runs under make connect (ODRADEK_CONNECT=1)")
WORKER_JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
                   "-Djava.awt.headless=true")


@pytest.fixture(scope="module")
def plugins(kafka_libs) -> Path:
    """The connectors compiled (once per source: kept in Kafka's cache directory beside the
    jars), with the service files that plugin.discovery=service_load finds them by (no scan
    of every jar on the classpath: a quicker start)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    classes = kafka.kafka_home() / f"connect-plugins-{digest}"
    if (classes / ".complete").exists():
        return classes
    require_tool("javac")
    staging = classes.with_name(f"{classes.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    done = subprocess.run(["javac", "-d", str(staging), "-cp", f"{kafka_libs}/*", str(SOURCE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    services = staging / "META-INF" / "services"
    services.mkdir(parents=True)
    (services / "org.apache.kafka.connect.source.SourceConnector").write_text("LineFileConnectors$Source\n")
    (services / "org.apache.kafka.connect.sink.SinkConnector").write_text("LineFileConnectors$Sink\n")
    (staging / ".complete").touch()
    try:
        staging.rename(classes)
    except OSError:  # another run got there first
        shutil.rmtree(staging, ignore_errors=True)
    return classes


class Worker:
    """One distributed worker process (org.apache.kafka.connect.cli.ConnectDistributed)."""

    def __init__(self, plugins: Path, properties: Path, log_path: Path):
        cmd = kafka.java_command("org.apache.kafka.connect.cli.ConnectDistributed", str(properties),
                                 jvm_opts=WORKER_JVM_OPTS, log_config="broker")
        cp = cmd.index("-cp") + 1
        cmd[cp] = f"{plugins}:{cmd[cp]}"
        self.log_path = log_path
        self._log = open(log_path, "a")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (the worker stops its tasks, committing their offsets) and wait."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def rest(port: int, method: str, path: str, body: dict | None = None) -> dict | list:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def wait_for(condition, what: str, worker: Worker, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        if worker.proc.poll() is not None:
            pytest.fail(f"the worker exited ({worker.proc.returncode}) waiting for {what}:\n{worker.log_tail()}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{worker.log_tail()}")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def topic_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_configs([ConfigResource("topic", t) for t in topics], request_timeout=10)
    return {resource.name: {k: v.value for k, v in f.result(10).items()} for resource, f in futures.items()}


def test_connect_distributed_worker_survives_a_restart(plugins, tmp_path):
    odradek = BrokerProcess(data_dir=tmp_path / "odradek",
                            overrides={"group.initial.rebalance.delay.ms": "0"}).start()
    prefix = f"connect-{uuid.uuid4().hex[:6]}"
    internal = [f"{prefix}-configs", f"{prefix}-offsets", f"{prefix}-status"]
    port = free_port()
    properties = tmp_path / "worker.properties"
    properties.write_text("\n".join(f"{k}={v}" for k, v in {
        "bootstrap.servers": odradek.bootstrap,
        "group.id": prefix,
        "config.storage.topic": internal[0],
        "offset.storage.topic": internal[1],
        "status.storage.topic": internal[2],
        "config.storage.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "offset.storage.partitions": "2",
        "status.storage.partitions": "2",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "offset.flush.interval.ms": "500",
        "listeners": f"http://127.0.0.1:{port}",
        "plugin.discovery": "service_load",
        "scheduled.rebalance.max.delay.ms": "0",
    }.items()) + "\n")
    source, sink = tmp_path / "in.txt", tmp_path / "out.txt"
    first = [f"line {i}" for i in range(20)]
    source.write_text("".join(f"{line}\n" for line in first))
    log_path = tmp_path / "worker.log"
    worker = Worker(plugins, properties, log_path)
    try:
        wait_for(lambda: rest(port, "GET", "/connectors") == [], "the worker's REST API", worker)
        # The worker created its topics: compacted, as it insists.
        configs = topic_configs(odradek.bootstrap, internal)
        assert {t: c["cleanup.policy"] for t, c in configs.items()} == dict.fromkeys(internal, "compact")
        topic = f"{prefix}-lines"
        rest(port, "PUT", "/connectors/lines-in/config", {
            "connector.class": "LineFileConnectors$Source", "tasks.max": "1",
            "file": str(source), "topic": topic})
        rest(port, "PUT", "/connectors/lines-out/config", {
            "connector.class": "LineFileConnectors$Sink", "tasks.max": "1",
            "file": str(sink), "topics": topic})
        wait_for(lambda: len(lines(sink)) >= len(first), "the first lines copied", worker)
        assert lines(sink) == first
        assert worker.stop() in (0, 143)  # SIGTERM: a clean stop, offsets committed

        second = [f"more {i}" for i in range(10)]
        with source.open("a") as f:
            f.write("".join(f"{line}\n" for line in second))
        worker = Worker(plugins, properties, log_path)
        # Nothing posted again: both connectors come back from the config topic.
        wait_for(lambda: len(lines(sink)) >= len(first) + len(second), "the new lines copied", worker)
        status = wait_for(lambda: rest(port, "GET", "/connectors?expand=status"), "the statuses", worker)
        assert sorted(status) == ["lines-in", "lines-out"]
        time.sleep(1)  # a copy twice would land within the offset flush interval
        assert lines(sink) == first + second, worker.log_tail()
    finally:
        worker.kill()
        odradek.kill()

"""The operator commands (`odradek topics|configs|groups|produce|consume|cluster`) run as
subprocesses against a real node, reading their --json output (and their tables where
that is what a person reads). The same scenarios against Kafka 4.4 are in
tests/peers/test_ops_cli_peer.py."""

import json
import os
import subprocess
import sys
import time

import pytest
from kafka import KafkaConsumer

from tests.brokerproc import ROOT, free_port
from tests.local_cluster import poll_until
from tests.metrics_http import start_with_http


def odradek(bootstrap: str, *args: str, input: str | None = None, rc: int | None = 0,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `odradek ARGS --bootstrap B --timeout 10`; with rc given, assert the exit status."""
    result = subprocess.run([sys.executable, "-m", "odradek.broker", *args, "--bootstrap", bootstrap,
                             "--timeout", "10"], cwd=ROOT, capture_output=True, text=True,
                            input=input, timeout=timeout, env={**os.environ, "COLUMNS": "200"})
    if rc is not None:
        assert result.returncode == rc, f"odradek {' '.join(args)}: rc {result.returncode}\n" \
                                        f"{result.stdout}\n{result.stderr}"
    return result


def odradek_json(bootstrap: str, *args: str, input: str | None = None):
    return json.loads(odradek(bootstrap, *args, "--json", input=input).stdout)


@pytest.fixture
def node(tmp_path):
    b = start_with_http(tmp_path / "data", {"log.level": "debug"})  # debug: the request trace
    yield b
    b.stop()


def test_topics_create_list_describe_alter_delete(node):
    b = node.bootstrap
    created = odradek_json(b, "topics", "create", "orders", "--partitions", "2",
                           "--config", "retention.ms=86400000")
    assert created == {"topic": "orders", "validate_only": False, "partitions": 2}
    assert "orders" in odradek(b, "topics", "list").stdout  # the table
    assert [t for t in odradek_json(b, "topics", "list") if t["name"] == "orders"] == [
        {"name": "orders", "partitions": 2, "replication_factor": 1, "internal": False}]
    odradek(b, "produce", "orders", "--partition", "1", input="a\nb\nc\n")
    [topic] = odradek_json(b, "topics", "describe", "orders")
    assert topic["configs"] == {"retention.ms": "86400000"}
    p0, p1 = topic["partitions"]
    assert (p0["leader"], p0["replicas"], p0["isr"], p0["log_end_offset"]) == (1, [1], [1], 0)
    assert (p1["log_start_offset"], p1["log_end_offset"]) == (0, 3)
    assert p1["size_bytes"] > 0 and p0["size_bytes"] == 0
    table = odradek(b, "topics", "describe", "orders").stdout
    assert "LOG END" in table and "ISR" in table

    odradek(b, "topics", "alter", "orders", "--partitions", "4")
    assert len(odradek_json(b, "topics", "describe", "orders")[0]["partitions"]) == 4
    shrink = odradek(b, "topics", "alter", "orders", "--partitions", "2", rc=1)
    assert "INVALID_PARTITIONS" in shrink.stderr and "can only grow" in shrink.stderr
    again = odradek(b, "topics", "create", "orders", rc=1)
    assert "TOPIC_ALREADY_EXISTS" in again.stderr and "topics alter" in again.stderr

    assert odradek_json(b, "topics", "delete", "orders") == {"deleted": ["orders"]}
    assert poll_until(lambda: "orders" not in odradek(b, "topics", "list").stdout, 10)
    missing = odradek(b, "topics", "describe", "orders", rc=1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr and "topics list" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_configs_describe_set_delete(node):
    b = node.bootstrap
    odradek(b, "topics", "create", "conf", "--partitions", "1")
    assert odradek_json(b, "configs", "describe", "--topic", "conf") == {}
    odradek(b, "configs", "set", "--topic", "conf", "retention.ms=5000", "cleanup.policy=compact")
    described = odradek_json(b, "configs", "describe", "--topic", "conf")
    assert {k: v["value"] for k, v in described.items()} == {"retention.ms": "5000",
                                                              "cleanup.policy": "compact"}
    odradek(b, "configs", "delete", "--topic", "conf", "retention.ms")
    assert list(odradek_json(b, "configs", "describe", "--topic", "conf")) == ["cleanup.policy"]
    every = odradek_json(b, "configs", "describe", "--topic", "conf", "--all")
    assert every["retention.ms"]["value"] == "604800000"  # Kafka's default, back again
    bad = odradek(b, "configs", "set", "--topic", "conf", "no.such.key=1", rc=1)
    assert "INVALID_CONFIG" in bad.stderr and "no.such.key" in bad.stderr
    broker_configs = odradek_json(b, "configs", "describe", "--broker", "1", "--all")
    assert broker_configs["num.partitions"]["value"] == "1"


def test_produce_keys_headers_and_consume_formats(node, tmp_path):
    b = node.bootstrap
    odradek(b, "topics", "create", "events", "--partitions", "1")
    before_ms = int(time.time() * 1000) - 1
    out = odradek(b, "produce", "events", "--key-separator", ":", "--header", "source=test",
                  "--header", "v=2", input="k1:one\nk2:two\nthree\n")
    assert "produced 3 record(s)" in out.stderr
    records = [json.loads(line) for line in odradek(
        b, "consume", "events", "--offset", "earliest", "--count", "3", "--format", "json").stdout.splitlines()]
    assert [(r["partition"], r["offset"], r["key"], r["value"], r["headers"]) for r in records] == [
        (0, 0, "k1", "one", {"source": "test", "v": "2"}),
        (0, 1, "k2", "two", {"source": "test", "v": "2"}),
        (0, 2, None, "three", {"source": "test", "v": "2"})]
    assert all(r["timestamp"] >= before_ms for r in records)
    raw = odradek(b, "consume", "events", "--partition", "0", "--offset", "1", "--count", "2").stdout
    assert raw == "two\nthree\n"

    # From a file, with a progress bar forced on (stderr is not a terminal here).
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"line {i}\n" for i in range(500)))
    after_first = int(time.time() * 1000) + 1
    time.sleep(0.01)
    out = odradek(b, "produce", "events", "--file", str(lines), "--progress")
    assert "produced 500 record(s)" in out.stderr and "producing lines.txt" in out.stderr
    by_time = odradek(b, "consume", "events", "--from-time", str(after_first), "--count", "1").stdout
    assert by_time == "line 0\n"
    # From the end: nothing new arrives, so the count is not reached; says so, status 1.
    end = odradek(b, "consume", "events", "--offset", "latest", "--count", "1",
                  "--idle-timeout", "1", rc=1)
    assert end.stdout == "" and "consumed 0 of 1" in end.stderr
    missing = odradek(b, "consume", "nope", "--count", "1", rc=1)
    assert "topics list" in missing.stderr
    unreadable = odradek(b, "produce", "events", "--file", str(tmp_path / "absent"), rc=1)
    assert "cannot read --file" in unreadable.stderr


def test_groups_describe_lag_reset_with_dry_run_and_delete(node):
    b = node.bootstrap
    odradek(b, "topics", "create", "work", "--partitions", "2")
    odradek(b, "produce", "work", "--partition", "0", input="".join(f"{i}\n" for i in range(6)))
    odradek(b, "produce", "work", "--partition", "1", input="x\ny\n")
    consumed = odradek(b, "consume", "work", "--group", "workers", "--offset", "earliest",
                       "--count", "8").stdout.splitlines()
    assert sorted(consumed) == sorted([*map(str, range(6)), "x", "y"])
    assert {"group": "workers", "state": "Empty", "type": "classic", "protocol_type": "consumer"} in \
        odradek_json(b, "groups", "list")
    described = odradek_json(b, "groups", "describe", "workers")
    assert described["state"] == "Empty" and described["members"] == []
    assert [(o["partition"], o["committed_offset"], o["log_end_offset"], o["lag"])
            for o in described["offsets"]] == [(0, 6, 6, 0), (1, 2, 2, 0)]

    plan = odradek_json(b, "groups", "reset-offsets", "workers", "--topic", "work:0", "--shift-by", "-4")
    assert plan["executed"] is False
    assert plan["offsets"] == [{"topic": "work", "partition": 0, "current_offset": 6, "new_offset": 2}]
    dry = odradek(b, "groups", "reset-offsets", "workers", "--topic", "work", "--to-earliest")
    assert "dry run" in dry.stdout + dry.stderr and "--execute" in dry.stderr
    assert [o["lag"] for o in odradek_json(b, "groups", "describe", "workers")["offsets"]] == [0, 0]

    odradek(b, "groups", "reset-offsets", "workers", "--topic", "work:0", "--shift-by", "-4", "--execute")
    odradek(b, "groups", "reset-offsets", "workers", "--topic", "work:1", "--to-offset", "99", "--execute")
    lag = odradek_json(b, "groups", "describe", "workers")["offsets"]
    assert [(o["committed_offset"], o["lag"]) for o in lag] == [(2, 4), (2, 0)]  # 99 clamped to the end
    assert odradek(b, "consume", "work", "--group", "workers", "--count", "4").stdout == "2\n3\n4\n5\n"

    # A live member: described with its partitions; the group cannot be deleted.
    consumer = KafkaConsumer("work", bootstrap_servers=b, group_id="workers", client_id="live-one")
    try:
        assert poll_until(lambda: consumer.poll(200) is not None and consumer.assignment(), 20)
        live = odradek_json(b, "groups", "describe", "workers")
        assert live["state"] == "Stable"
        [member] = live["members"]
        assert member["client_id"] == "live-one" and sorted(member["partitions"]) == ["work-0", "work-1"]
        busy = odradek(b, "groups", "delete", "workers", rc=1)
        assert "NON_EMPTY_GROUP" in busy.stderr and "stop its consumers" in busy.stderr
    finally:
        consumer.close()
    assert odradek_json(b, "groups", "delete", "workers") == {"deleted": ["workers"]}
    assert "workers" not in odradek(b, "groups", "list").stdout
    bad = odradek(b, "groups", "reset-offsets", "workers", "--to-latest", rc=1)
    assert "--topic" in bad.stderr
    gone = odradek(b, "groups", "describe", "workers", rc=1)  # was a traceback
    assert "GROUP_ID_NOT_FOUND" in gone.stderr and "`odradek groups list`" in gone.stderr


def test_cluster_status_quorum_nodes(node):
    b = node.bootstrap
    odradek(b, "topics", "create", "c", "--partitions", "2")
    status = odradek_json(b, "cluster", "status")
    assert status["active_controller"] == 1 and status["nodes"] == [1]
    assert status["under_replicated"] == 0 and status["offline"] == 0
    assert {(p["topic"], p["partition"], p["leader"]) for p in status["partitions"]} >= {
        ("c", 0, 1), ("c", 1, 1)}
    table = odradek(b, "cluster", "status").stdout
    assert "c-1" in table and "__consumer_offsets-0" not in table  # internal: --internal
    quorum = odradek_json(b, "cluster", "quorum")
    assert quorum["leader_id"] == 1 and [v["node_id"] for v in quorum["voters"]] == [1]
    assert quorum["voters"][0]["log_end_offset"] == quorum["high_watermark"] > 0
    nodes = odradek_json(b, "cluster", "nodes")
    assert nodes["nodes"] == [{"node_id": 1, "host": "127.0.0.1", "port": node.port, "rack": None,
                               "fenced": False}]


def test_cluster_connections_and_the_request_trace(node):
    """A live client shows in `cluster connections` (from the node's /connections) with
    its software (KIP-511), client id and principal; log.level=debug logs one line per
    request naming the same."""
    consumer = KafkaConsumer(bootstrap_servers=node.bootstrap, client_id="watcher-7")
    try:
        consumer.topics()  # connects, ApiVersions v3+ names kafka-python
        rows = json.loads(subprocess.run(
            [sys.executable, "-m", "odradek.broker", "cluster", "connections", "--http", node.http.removeprefix("http://"),
             "--json"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True).stdout)
        mine = [r for r in rows if r["client_id"] == "watcher-7"]
        assert mine and all(r["client_software_name"] == "kafka-python" and r["node_id"] == 1
                            and r["principal"] == "User:ANONYMOUS" and r["listener"] == "PLAINTEXT"
                            and r["requests"] >= 2 for r in mine)
    finally:
        consumer.close()
    trace = [line for line in node.log_text().splitlines()
             if "event='request'" in line and "client_id='watcher-7'" in line]
    assert any("api='Metadata'" in line for line in trace)
    assert all("client_software='kafka-python'" in line and "principal='User:ANONYMOUS'" in line
               and "listener='PLAINTEXT'" in line and "request_bytes=" in line
               and "latency_ms=" in line for line in trace)
    gone = subprocess.run([sys.executable, "-m", "odradek.broker", "cluster", "connections",
                           "--http", f"127.0.0.1:{free_port()}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert gone.returncode == 1 and "--http" in gone.stderr


def test_unreachable_cluster_says_what_to_do():
    result = subprocess.run([sys.executable, "-m", "odradek.broker", "topics", "list", "--bootstrap",
                             f"127.0.0.1:{free_port()}", "--timeout", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cannot reach a broker" in result.stderr and "--bootstrap" in result.stderr
    assert "Traceback" not in result.stderr


def test_produce_to_a_missing_topic_says_to_create_it(broker_factory):
    b = broker_factory(overrides={"auto.create.topics.enable": "false"})
    result = subprocess.run([sys.executable, "-m", "odradek.broker", "produce", "absent", "--bootstrap",
                             b.bootstrap, "--timeout", "2"], cwd=ROOT, capture_output=True, text=True,
                            input="x\n", timeout=30)
    assert result.returncode == 1, result.stderr
    assert "odradek topics create absent" in result.stderr and "Traceback" not in result.stderr


def test_acls_and_scram_users(tmp_path, broker_factory):
    """`odradek acls` and `odradek users` against a node with the authorizer on (the CLI's
    PLAINTEXT principal, User:ANONYMOUS, is a super user), and the effect of an ACL on a
    principal that is not: a DENY takes a topic away from everyone else."""
    node = broker_factory(overrides={
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS"})
    b = node.bootstrap
    created = odradek_json(b, "acls", "create", "--topic", "orders", "--prefixed",
                           "--principal", "User:alice", "--principal", "User:bob",
                           "--operation", "READ", "--operation", "DESCRIBE")
    assert len(created) == 4 and {a["pattern"] for a in created} == {"PREFIXED"}
    odradek(b, "acls", "create", "--group", "billing", "--principal", "User:alice",
            "--operation", "READ", "--deny")
    listed = odradek_json(b, "acls", "list")
    assert sorted((a["principal"], a["operation"], a["permission"], a["resource"]) for a in listed) == [
        ("User:alice", "DESCRIBE", "ALLOW", "orders"), ("User:alice", "READ", "ALLOW", "orders"),
        ("User:alice", "READ", "DENY", "billing"),
        ("User:bob", "DESCRIBE", "ALLOW", "orders"), ("User:bob", "READ", "ALLOW", "orders")]
    assert [a["resource"] for a in odradek_json(b, "acls", "list", "--group", "billing")] == ["billing"]
    deleted = odradek_json(b, "acls", "delete", "--topic", "orders", "--prefixed",
                           "--principal", "User:bob")
    assert {a["principal"] for a in deleted} == {"User:bob"} and len(deleted) == 2
    assert len(odradek_json(b, "acls", "list")) == 3
    bad = odradek(b, "acls", "create", "--topic", "t", "--principal", "User:x", "--operation", "FLY", rc=1)
    assert "operation 'FLY' is not one of" in bad.stderr

    odradek(b, "users", "set", "alice", "--password", "alice-secret", "--iterations", "8192")
    odradek(b, "users", "set", "alice", "--mechanism", "SCRAM-SHA-512", "--password", "x")
    assert odradek_json(b, "users", "list") == {"alice": [
        {"mechanism": "SCRAM-SHA-256", "iterations": 8192},
        {"mechanism": "SCRAM-SHA-512", "iterations": 4096}]}
    odradek(b, "users", "delete", "alice", "--mechanism", "SCRAM-SHA-512")
    assert odradek_json(b, "users", "list", "alice") == {
        "alice": [{"mechanism": "SCRAM-SHA-256", "iterations": 8192}]}
    bad = odradek(b, "users", "set", "bob", "--password", "p", "--iterations", "10", rc=1)
    assert "user bob" in bad.stderr

"""The Java client (kafka-clients 4.4) in the cross-client matrix, against Odradek.

tests/peers/java/JavaClient.java is compiled once per run with javac against Kafka's cached
jars (into a temporary directory) and each scenario is one JVM: produce (every codec with
the producer's defaults), consume (what Python clients produced), a group of three, admin,
share consumers (KIP-932).
Records cross between Java and the Python clients byte for byte. The admin scenario runs
against Kafka 4.4 too, and Odradek's transcript must be Kafka's. java/StreamsWordCount.java
(compiled alongside) is a Kafka Streams 4.4 application with exactly_once_v2.

Slow for a peer test (about a minute): seven JVM starts, group rebalances, and a killed
member's session timeout (6 s).
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.brokerproc import BrokerProcess
from tests.certs import CREDENTIALS, java_client_properties
from tests.clients import confluent_values, create_topics
from tests.conftest import require_tool
from tests.peers import kafka
from tests.peers.oracle import Side

SOURCES = sorted(Path(__file__).with_name("java").glob("*.java"))  # JavaClient, StreamsWordCount
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
COUNT = 40
T0 = 1_700_000_000_000


def expected_record(codec: str, i: int) -> tuple:
    """(timestamp, key, value, headers) as JavaClient.record() writes them."""
    key = None if i % 7 == 3 else f"key-{codec}-{i}".encode()
    value = (f"value-{i}-" * (1 + i % 5)).encode()
    headers = [("h-index", str(i).encode())]
    if i % 2 == 0:
        headers.append(("h-null", None))
    if i % 3 == 0:
        headers.append(("h-bytes", bytes([0, 255, i])))
    return T0 + i * 1000, key, value, headers


@pytest.fixture(scope="module")
def java(kafka_libs, tmp_path_factory):
    """Run a JavaClient scenario to its end and return its stdout lines."""
    require_tool("javac")
    classes = tmp_path_factory.mktemp("java-client")
    done = subprocess.run(["javac", "-d", str(classes), "-cp", f"{kafka_libs}/*", *map(str, SOURCES)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    def command(*args: str, main: str = "JavaClient") -> list[str]:
        cmd = kafka.java_command(main, *args)
        cp = cmd.index("-cp") + 1
        cmd[cp] = f"{classes}:{cmd[cp]}"
        return cmd

    def run(*args: str, timeout: float = 120) -> list[str]:
        proc = subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"JavaClient {args[0]} failed:\n{proc.stdout}\n{proc.stderr[-5000:]}"
        return proc.stdout.splitlines()
    run.command = command
    return run


@pytest.fixture(scope="module")
def odradek(tmp_path_factory):
    node = BrokerProcess(data_dir=tmp_path_factory.mktemp("java-odradek"),
                         overrides={"group.initial.rebalance.delay.ms": "0",
                                    # share groups: a 2 s record lock may be set for a group
                                    "group.share.min.record.lock.duration.ms": "1000"}).start()
    yield node
    node.kill()
    print("--- odradek log (tail) ---\n" + node.log_text()[-6000:])


@pytest.fixture(scope="module")
def java_produced(java, odradek):
    """One topic per codec, filled by the Java producer: (topic prefix, its output)."""
    prefix = f"java-{uuid.uuid4().hex[:8]}"
    side = Side("odradek", odradek.bootstrap)
    for codec in CODECS:
        side.create_topic(f"{prefix}-{codec}", 1)
    side.close()
    return prefix, java("produce", odradek.bootstrap, prefix, str(COUNT))


def test_java_produces_every_codec_idempotently(java_produced):
    _, lines = java_produced
    assert "DEFAULTS enable.idempotence=true acks=-1" in lines
    for codec in CODECS:
        assert [line.split()[2:] for line in lines if line.startswith(f"SENT {codec} ")] == \
            [["0", str(i)] for i in range(COUNT)], codec


def read_kafka_python(bootstrap: str, topic: str, count: int) -> list[tuple]:
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=10000)
    c.assign([TopicPartition(topic, 0)])
    out = []
    for m in c:
        out.append((m.timestamp, m.key, m.value, [(k, v) for k, v in m.headers]))
        if len(out) == count:
            break
    c.close()
    return out


def read_confluent(bootstrap: str, topic: str, count: int) -> list[tuple]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.monotonic() + 30
    while len(out) < count and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append((m.timestamp()[1], m.key(), m.value(), list(m.headers() or [])))
    c.close()
    return out


@pytest.mark.parametrize("reader", [read_kafka_python, read_confluent])
def test_java_records_read_identically_by_python_clients(java_produced, odradek, reader):
    prefix, _ = java_produced
    for codec in CODECS:
        got = reader(odradek.bootstrap, f"{prefix}-{codec}", COUNT)
        assert got == [expected_record(codec, i) for i in range(COUNT)], codec


def python_records(client: str) -> list[tuple]:
    """(timestamp, key, value, headers) that a Python client writes for Java to read."""
    return [(T0 + 500 * i, None if i == 4 else f"{client}-k{i}".encode(),
             b"" if i == 5 else f"{client}-v{i}".encode() * (i + 1),
             [("h", bytes([i, 0, 255]))] + ([("n", b"")] if i % 2 else []))  # kafka-python: no null values
            for i in range(12)]


def produce_kafka_python(bootstrap: str, topic: str, codec: str, records) -> None:
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                      compression_type=None if codec == "none" else codec)
    for ts, key, value, headers in records:
        p.send(topic, key=key, value=value, headers=headers, partition=0, timestamp_ms=ts)
    p.flush(30)
    p.close()


def produce_confluent(bootstrap: str, topic: str, codec: str, records) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": codec,
                  "enable.idempotence": True, "linger.ms": 5})
    for ts, key, value, headers in records:
        p.produce(topic, key=key, value=value, headers=headers, partition=0, timestamp=ts)
    assert p.flush(30) == 0


def _bytes(text: str) -> bytes | None:
    return None if text == "-" else b"" if text == "=" else bytes.fromhex(text)


def test_java_consumer_reads_python_records(java, odradek):
    """kafka-python and confluent-kafka write every codec; one Java consumer reads them all."""
    side = Side("odradek", odradek.bootstrap)
    expected = {}
    for client, produce in (("kp", produce_kafka_python), ("ck", produce_confluent)):
        for codec in CODECS:
            topic = f"py-{client}-{codec}-{uuid.uuid4().hex[:6]}"
            side.create_topic(topic, 1)
            expected[topic] = python_records(client)
            produce(odradek.bootstrap, topic, codec, expected[topic])
    side.close()
    got = {topic: [] for topic in expected}
    for line in java("consume", odradek.bootstrap, "12", *expected):
        if line.startswith("REC "):
            _, topic, _offset, ts, key, value, headers = line.split(" ")
            pairs = [] if headers == "=" else [h.split(":") for h in headers.split(",")]
            got[topic].append((int(ts), _bytes(key), _bytes(value),
                               [(_bytes(k).decode(), _bytes(v)) for k, v in pairs]))
    assert got == expected


def test_java_group_of_three_survives_a_member(java, odradek):
    topic, group = f"java-group-{uuid.uuid4().hex[:6]}", f"java-g-{uuid.uuid4().hex[:6]}"
    side = Side("odradek", odradek.bootstrap)
    side.create_topic(topic, 6)
    side.close()
    lines = java("group", odradek.bootstrap, topic, group, "6")
    assigned = [line for line in lines if line.startswith("ASSIGNED")]
    took_over = [line for line in lines if line.startswith("TOOK_OVER")]
    assert len(assigned) == 3 and "CLOSED member-0" in lines
    assert sorted(line.split()[1] for line in took_over) == ["member-1", "member-2"]
    assert "CONSUMED 60 of 60" in lines


def test_java_consumer_protocol_group_of_three_survives_a_member(java, odradek):
    """The same with group.protocol=consumer (KIP-848): the coordinator assigns, and the
    members reconcile incrementally when member-0 closes (leaves with epoch -1)."""
    topic, group = f"java-cgroup-{uuid.uuid4().hex[:6]}", f"java-cg-{uuid.uuid4().hex[:6]}"
    side = Side("odradek", odradek.bootstrap)
    side.create_topic(topic, 6)
    side.close()
    lines = java("group", odradek.bootstrap, topic, group, "6", "closed", "consumer")
    assigned = [line for line in lines if line.startswith("ASSIGNED")]
    took_over = [line for line in lines if line.startswith("TOOK_OVER")]
    assert len(assigned) == 3 and "CLOSED member-0" in lines
    assert sorted(line.split()[1] for line in took_over) == ["member-1", "member-2"]
    assert "CONSUMED 60 of 60" in lines


class Lines:
    """A JVM's stdout, line by line, read on a thread so that waits can time out."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines = proc, queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"JVM ended before {prefix!r}: {self.seen}"
            self.seen.append(line)
            if line.startswith(prefix):
                return line


def test_java_group_survives_a_killed_member(java, odradek):
    """member-0 in a JVM of its own is SIGKILLed: no LeaveGroup, so the coordinator waits for
    its session to time out (6 s), then the other two take its partitions."""
    topic, group = f"java-kill-{uuid.uuid4().hex[:6]}", f"java-k-{uuid.uuid4().hex[:6]}"
    kill_a_member(java, odradek.bootstrap, topic, group, "classic")


def kill_a_member(java, bootstrap: str, topic: str, group: str, protocol: str) -> None:
    """member-0 (its own JVM) is SIGKILLed once the three share the topic's six partitions;
    members 1 and 2 must take all of them and read what is produced afterwards."""
    side = Side("odradek", bootstrap)
    side.create_topic(topic, 6)
    side.close()
    victim = subprocess.Popen(java.command("member", bootstrap, topic, group, protocol),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    survivors = subprocess.Popen(java.command("group", bootstrap, topic, group, "6", "killed", protocol),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
    try:
        Lines(victim).until("VICTIM_ASSIGNED")
        out = Lines(survivors)
        out.until("READY")
        victim.kill()
        victim.wait(10)
        survivors.stdin.write("killed\n")
        survivors.stdin.flush()
        consumed = out.until("CONSUMED")
        assert survivors.wait(60) == 0
    finally:
        for proc in (victim, survivors):
            proc.kill()
            proc.wait(10)
    took_over = [line for line in out.seen if line.startswith("TOOK_OVER")]
    assert sorted(line.split()[1] for line in took_over) == ["member-1", "member-2"]
    assert consumed == "CONSUMED 60 of 60"


def test_java_consumer_protocol_group_survives_a_killed_member(java, tmp_path):
    """The same with group.protocol=consumer (KIP-848): the coordinator removes member-0 once
    group.consumer.session.timeout.ms (3 s here) passes without its heartbeat, and the others
    reconcile onto its partitions."""
    node = BrokerProcess(data_dir=tmp_path / "cp", overrides={
        "group.consumer.session.timeout.ms": "3000", "group.consumer.min.session.timeout.ms": "1000",
        "group.consumer.heartbeat.interval.ms": "500", "group.consumer.min.heartbeat.interval.ms": "100",
        "offsets.topic.num.partitions": "3"}).start()
    topic, group = f"java-ckill-{uuid.uuid4().hex[:6]}", f"java-ck-{uuid.uuid4().hex[:6]}"
    try:
        kill_a_member(java, node.bootstrap, topic, group, "consumer")
        assert "consumer_group_member_removed" in node.log_text()
    finally:
        node.kill()


def test_java_admin_manages_topics(java, odradek, kafka_peer):
    """Create, describe, alter configs, list offsets, a group altered, described and deleted,
    delete: the same transcript as against Kafka 4.4."""
    topic = f"java-admin-{uuid.uuid4().hex[:6]}"
    ours = java("admin", odradek.bootstrap, topic)
    assert ours == java("admin", kafka_peer.bootstrap, topic)
    assert "DELETED true" in ours and f"CREATED {topic}" in ours


def test_java_transactions_commit_abort_and_fencing(java, odradek, kafka_peer):
    """kafka-clients 4.4 runs transactions v2 here (transaction.version 2 is finalized, as on
    Kafka 4.4): commit, abort, an empty abort, a second producer with the same
    transactional.id fencing the first, read_committed and read_uncommitted consumers. The
    coordinator's epoch after each step (the epoch bumped by every EndTxn; an abort with
    nothing sent sends none) is Kafka 4.4's."""
    topic = f"java-txn-{uuid.uuid4().hex[:6]}"
    for name, bootstrap in (("odradek", odradek.bootstrap), ("kafka", kafka_peer.bootstrap)):
        side = Side(name, bootstrap)
        side.create_topic(topic, 1)
        side.close()
    out = java("txn", odradek.bootstrap, topic, f"{topic}-id")
    theirs = java("txn", kafka_peer.bootstrap, topic, f"{topic}-id", "epochs")
    def epochs(lines):  # (step, epoch); the state may still be Prepare* on Kafka, which
        return [(line.split()[1], int(line.split()[3]))  # answers EndTxn before its markers
                for line in lines if line.startswith("EPOCH ")]
    assert epochs(out) == epochs(theirs), (out, theirs)
    assert epochs(out)[:3] == [("init", 0), ("sent", 0), ("commit", 1)]  # bumped by the commit
    assert "FENCED ProducerFencedException" in out or "FENCED InvalidProducerEpochException" in out, out
    assert [line.split()[1] for line in out if line.startswith("COMMITTED ")] == ["c0", "c1", "c2", "d0"]
    assert [line.split()[1] for line in out if line.startswith("UNCOMMITTED ")] == \
        ["c0", "c1", "c2", "a0", "a1", "d0", "zombie"]


WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta")


def word_lines(start: int, count: int) -> list[str]:
    """Input lines of three words each, deterministic."""
    return [" ".join(WORDS[(i * 3 + j * 5) % len(WORDS)] for j in range(3)) for i in range(start, start + count)]


def produce_lines(bootstrap: str, topic: str, lines: list[str]) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, line in enumerate(lines):
        p.produce(topic, key=str(i).encode(), value=line.encode())
        p.poll(0)
    assert p.flush(30) == 0


def assert_counts_exact(bootstrap: str, topic: str, lines: list[str]) -> None:
    """Read committed, each word's counts are 1..n in order: none lost, none twice."""
    expected = Counter(word for line in lines for word in line.split())
    got = confluent_values(bootstrap, topic, "read_committed", sum(expected.values()), partitions=2,
                           timeout_s=60, settle_s=1.5, with_keys=True)
    by_word: dict[str, list[int]] = {}
    for key, value in got:
        by_word.setdefault(key.decode(), []).append(int(value))
    assert by_word == {w: list(range(1, n + 1)) for w, n in expected.items()}


def start_streams(java, bootstrap: str, app: str, topic_in: str, topic_out: str, state_dir) -> subprocess.Popen:
    return subprocess.Popen(java.command(bootstrap, app, topic_in, topic_out, str(state_dir),
                                         main="StreamsWordCount"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


STREAMS_KILLS = int(os.environ.get("STREAMS_KILLS", "0"))  # make streams-eos: 2


def test_kafka_streams_exactly_once_v2_word_count(java, odradek, tmp_path):
    """Kafka Streams 4.4 with processing.guarantee=exactly_once_v2 (StreamsWordCount.java):
    a repartition topic, a changelogged state store, transactions committing the input
    offsets with the output. Read committed, each word's counts are exactly 1..n.

    make test runs one instance. ``make streams-eos`` (STREAMS_KILLS=n) runs two and
    SIGKILLs one n times while input flows, starting a fresh instance after each kill: the
    victim's open transaction is aborted after its timeout (5 s), the survivor takes its
    tasks, restores the counts from the committed changelog and resumes from the committed
    offsets, and the output is still exact."""
    app = f"wc-{uuid.uuid4().hex[:6]}"
    topic_in, topic_out = f"{app}-in", f"{app}-out"
    create_topics(odradek.bootstrap, [topic_in, topic_out], partitions=2)
    lines = word_lines(0, 150 + 300 * STREAMS_KILLS)
    produce_lines(odradek.bootstrap, topic_in, lines[:100])
    procs: list[tuple[subprocess.Popen, Lines]] = []

    def start() -> Lines:
        proc = start_streams(java, odradek.bootstrap, app, topic_in, topic_out, tmp_path / f"state-{len(procs)}")
        procs.append((proc, Lines(proc)))
        return procs[-1][1]

    try:
        for _ in range(2 if STREAMS_KILLS else 1):
            start()
        for _, out in procs:
            out.until("STATE RUNNING", timeout=90)
        sent = 100
        for kill in range(STREAMS_KILLS):
            chunk = lines[sent:sent + 300]
            producer = threading.Thread(target=lambda c=chunk: [
                (produce_lines(odradek.bootstrap, topic_in, c[i:i + 10]), time.sleep(0.05))
                for i in range(0, len(c), 10)])
            producer.start()
            time.sleep(1.0)
            victim = procs[-2 if kill == 0 else -1][0]
            victim.kill()  # SIGKILL mid-stream: no commit, no LeaveGroup
            victim.wait()
            producer.join(60)
            sent += len(chunk)
            start().until("STATE RUNNING", timeout=90)
        produce_lines(odradek.bootstrap, topic_in, lines[sent:])  # while it runs
        assert_counts_exact(odradek.bootstrap, topic_out, lines)
        for proc, out in procs:
            if proc.poll() is None:
                proc.stdin.close()
                out.until("CLOSED", timeout=40)
                assert proc.wait(20) == 0
            assert not [line for line in out.seen if line.startswith("UNCAUGHT")], out.seen
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()


def test_java_share_consumers_share_a_partition(java, odradek):
    """KafkaShareConsumer (KIP-932) against Odradek: a stalled consumer's records are
    redelivered once their lock (2 s, the group's share.record.lock.duration.ms) expires;
    two consumers on the one partition get distinct records, each accepted exactly once;
    released records come back with their delivery count raised; renewed ones (RENEW, v2)
    stay with their member; member-b fetches in record_limit mode (v2). Meanwhile
    kafka-share-groups --describe --members sees the group, and --describe its start offset
    at the end (about 15 s: two tool JVMs, a lock)."""
    from tests.peers.test_tools import run
    topic, group, count = f"java-share-{uuid.uuid4().hex[:6]}", f"java-sg-{uuid.uuid4().hex[:6]}", 20
    side = Side("odradek", odradek.bootstrap)
    side.create_topic(topic, 1)
    side.close()
    proc = subprocess.Popen(java.command("share", odradek.bootstrap, topic, group, str(count)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(proc)
        ready = out.until("READY", timeout=90)
        assert ready == f"READY {count}", out.seen
        members = run(odradek.bootstrap, "kafka-share-groups", "--describe", "--group", group,
                      "--members").stdout
        proc.stdin.write("done\n")
        proc.stdin.flush()
        out.until("DONE")
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(10)
    # kafka-share-groups --describe (DescribeShareGroupOffsets): every record is done, so
    # the share-partition start offset is past them all and nothing lags.
    described = run(odradek.bootstrap, "kafka-share-groups", "--describe", "--group", group).stdout
    assert [line.split() for line in described.splitlines() if topic in line] == [
        [group, topic, "0", str(count), "0"]], described
    accepted = [line.split() for line in out.seen if line.startswith("ACCEPTED ")]
    offsets = sorted(int(a[2]) for a in accepted)
    assert offsets == list(range(count)), out.seen  # every record accepted exactly once
    by = {name: {int(a[2]) for a in accepted if a[1] == name} for name in ("member-a", "member-b")}
    assert by["member-a"] and by["member-b"], by  # both got records, distinct ones
    delivery = {int(a[2]): int(a[3]) for a in accepted}
    stalled = [int(line.split()[1]) for line in out.seen if line.startswith("STALLED ")]
    assert stalled and all(delivery[o] >= 2 for o in stalled), (stalled, delivery)
    released = [int(line.split()[2]) for line in out.seen if line.startswith("RELEASED ")]
    assert released and all(o % 10 == 5 and delivery[o] >= 2 for o in released), (released, delivery)
    # RENEW (ShareAcknowledge/ShareFetch v2, KIP-1222): the record stayed its member's and
    # was accepted by it on that first delivery; member-b fetched in record_limit mode.
    assert not [line for line in out.seen if line.startswith("ACK_FAILED ")], out.seen
    renewed = [tuple(line.split()[1:3]) for line in out.seen if line.startswith("RENEWED ")]
    assert renewed and all([name, o, "1"] in [a[1:4] for a in accepted] for name, o in renewed), (renewed, accepted)
    # GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT: one row a member, all on partition 0
    rows = [line.split() for line in members.splitlines() if line.startswith(group)]
    assert sorted((r[3], r[4], r[5]) for r in rows) == [
        (name, "1", f"{topic}:0") for name in ("member-a", "member-b", "stalled")], members


def test_java_share_consumers_at_scale_with_one_killed(java, odradek):
    """Issue 20's scale scenario (tests/share_scale.py) with KafkaShareConsumer: five
    consumers (threads of one JVM) and a sixth in a JVM of its own SIGKILLed mid-batch,
    20,000 records (about 9 s, two JVM starts; make share-scale prints the throughput). Each record is
    held by one consumer at a time and accepted exactly once; the victim's are redelivered."""
    from tests import share_scale
    topic, group = f"java-scale-{uuid.uuid4().hex[:6]}", f"java-sg-scale-{uuid.uuid4().hex[:6]}"

    def start(consumers) -> None:
        consumers.start(java.command("sharevictim", odradek.bootstrap, topic, group), victim=True)
        consumers.start(java.command("sharescale", odradek.bootstrap, topic, group, str(share_scale.CONSUMERS)))
    report = share_scale.run(odradek.bootstrap, topic, group, share_scale.RECORDS, start,
                             timeout_s=90 + share_scale.RECORDS / 50)
    print(report.line("Java KafkaShareConsumer"))


def test_java_client_over_ssl_without_a_certificate_and_sasl_ssl(java, secure, certs, tmp_path):
    """One JVM, the security cases test_security_tools.py leaves to it: SSL without a client
    certificate (User:ANONYMOUS), SASL_SSL with PLAIN and with SCRAM-SHA-512 (each produces and
    consumes as its user), and a wrong password over SASL_SSL for both (refused cleanly)."""
    broker, ports = secure
    topic = f"java-sec-{uuid.uuid4().hex[:6]}"
    side = Side("odradek", broker.bootstrap)
    side.create_topic(topic, 1)
    side.close()
    ssl_port, sasl_ssl_port = f"127.0.0.1:{ports['SSL']}", f"127.0.0.1:{ports['SASL_SSL']}"
    cases = {"ssl-nocert": (ssl_port, ("SSL",))}
    for mechanism in ("PLAIN", "SCRAM-SHA-512"):
        user, password = CREDENTIALS[mechanism]
        cases[f"sasl-ssl-{mechanism}"] = (sasl_ssl_port, ("SASL_SSL", mechanism, user, password))
        cases[f"wrong-{mechanism}"] = (sasl_ssl_port, ("SASL_SSL", mechanism, user, "wrong"))
    out = java("security", topic, *(
        f"{name}={bootstrap}={java_client_properties(tmp_path / f'{name}.properties', certs, *settings)}"
        for name, (bootstrap, settings) in cases.items()))
    for name in ("ssl-nocert", "sasl-ssl-PLAIN", "sasl-ssl-SCRAM-SHA-512"):
        assert any(line.startswith(f"PRODUCED {name} ") for line in out), out
        assert f"CONSUMED {name}" in out, out
    for mechanism in ("PLAIN", "SCRAM-SHA-512"):
        assert f"REFUSED wrong-{mechanism} SaslAuthenticationException" in out, out
    log = broker.log_text()
    for mechanism in ("PLAIN", "SCRAM-SHA-512"):
        assert f"principal='User:{CREDENTIALS[mechanism][0]}'" in log

"""Kafka 4.4's own command-line tools against Odradek, as an operator uses them.

Each test runs a tool's commands against a fresh one-node Odradek and, where the answer
is comparable, the same commands against Kafka 4.4 (the session's `kafka_peer`), and
compares what the operator reads on stdout once ids, addresses and column padding are
normalised. Every tool run starts a JVM (about a second), so each test groups the
commands of one tool and the whole file runs in a few minutes. Where Odradek deliberately
answers otherwise, the normalisation below says so.
"""

import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from tests.peers import kafka

# group.initial.rebalance.delay.ms as the Kafka peer runs (KafkaNode.properties).
ODRADEK_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}
MEMBER_ID = re.compile(r"\S+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The timestamps of produced records: recent, for Kafka's retention (7 days by timestamp)
# deletes older records within a minute of its start.
T0 = (int(time.time()) - 600) * 1000
# Subcommand tools take --bootstrap-server before (quorum, features) or after (cluster) it.
BOOTSTRAP_BEFORE_SUBCOMMAND = {"kafka-metadata-quorum", "kafka-features"}
BOOTSTRAP_AFTER_SUBCOMMAND = {"kafka-cluster"}


@pytest.fixture
def odradek(broker_factory):
    return broker_factory(overrides=ODRADEK_OVERRIDES)


def run(bootstrap: str, tool: str, *args: str, input: str | None = None, rc: int | None = 0,
        timeout: float = 60) -> kafka.ToolResult:
    """Run a tool against one broker; with rc given, assert its exit status."""
    if tool in BOOTSTRAP_BEFORE_SUBCOMMAND:
        args = ("--bootstrap-server", bootstrap, *args)
    elif tool in BOOTSTRAP_AFTER_SUBCOMMAND:
        args = (args[0], "--bootstrap-server", bootstrap, *args[1:])
    else:
        args = ("--bootstrap-server", bootstrap, *args)
    result = kafka.run_tool(tool, *args, input=input, timeout=timeout)
    if rc is not None:
        assert result.rc == rc, f"{tool} {' '.join(args)}: rc {result.rc}\n{result.stdout}\n{result.stderr}"
    return result


def normalise(text: str, bootstrap: str) -> str:
    """What legitimately differs between two clusters: ids, addresses, column padding."""
    text = text.replace(bootstrap, "<broker>")
    text = re.sub(r"TopicId: \S+", "TopicId: <id>", text)
    text = re.sub(r"Cluster ID: \S+", "Cluster ID: <id>", text)
    text = MEMBER_ID.sub("<member>", text)
    return "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines())


def kafka_cluster_defaults(text: str) -> str:
    """Kafka 4.4 finalizes eligible.leader.replicas.version, which sets min.insync.replicas
    as a cluster-wide dynamic default that kafka-topics --describe lists among a topic's
    Configs, kafka-configs among the synonyms and among the cluster's defaults. Odradek has
    no ELR, so no such default (ledgered)."""
    text = re.sub(r"(Configs: .*?)min\.insync\.replicas=1,?", r"\1", text)
    text = re.sub(r"(Configs: .*?),(\s|$)", r"\1\2", text)
    text = re.sub(r"^ *min\.insync\.replicas=1 sensitive=false "
                  r"synonyms=\{DYNAMIC_DEFAULT_BROKER_CONFIG:min\.insync\.replicas=1\}\n", "", text,
                  flags=re.M)
    return text.replace("DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=1, ", "")


def both(kafka_peer, odradek, tool: str, *args: str, rc: int | None = 0, **kwargs) -> tuple[str, str]:
    """The same command against Kafka 4.4 and Odradek: their normalised stdouts."""
    k = run(kafka_peer.bootstrap, tool, *args, rc=rc, **kwargs)
    o = run(odradek.bootstrap, tool, *args, rc=rc, **kwargs)
    return (normalise(kafka_cluster_defaults(k.stdout), kafka_peer.bootstrap),
            normalise(o.stdout, odradek.bootstrap))


def assert_same(kafka_peer, odradek, tool: str, *args: str, **kwargs) -> str:
    k, o = both(kafka_peer, odradek, tool, *args, **kwargs)
    assert o == k, f"{tool} {' '.join(args)}"
    return o


def produce(bootstrap: str, topic: str, count: int, partition: int = 0) -> None:
    """`count` records with keys, a header and timestamps T0, T0+1s, ... (kafka-python)."""
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    for i in range(count):
        p.send(topic, key=f"k{i}".encode(), value=f"value-{i}".encode(), partition=partition,
               headers=[("h", f"{i}".encode())], timestamp_ms=T0 + 1000 * i).get(30)
    p.close()


def iso(ms: int) -> str:
    """As --to-datetime takes it, in UTC whatever the JVM's time zone."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --- kafka-topics ---------------------------------------------------------------------

def test_topics_create_list_describe_alter_delete(kafka_peer, odradek):
    t = "tools-topics"
    assert assert_same(kafka_peer, odradek, "kafka-topics", "--create", "--topic", t,
                       "--partitions", "3", "--replication-factor", "1",
                       "--config", "retention.ms=3600000",
                       "--config", "cleanup.policy=compact") == f"Created topic {t}."
    out = assert_same(kafka_peer, odradek, "kafka-topics", "--create", "--topic", t,
                      "--partitions", "1", rc=1)
    assert f"Topic '{t}' already exists." in out
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        assert t in run(b, "kafka-topics", "--list").stdout.split()
    out = assert_same(kafka_peer, odradek, "kafka-topics", "--create", "--topic", "bad!name", rc=1)
    assert "Topic name is invalid: 'bad!name' contains one or more characters" in out
    k, o = both(kafka_peer, odradek, "kafka-topics", "--create", "--topic", f"{t}-rf",
                "--replication-factor", "3", rc=1)
    # Kafka 4.4 adds "or some brokers have all their log directories cordoned":
    # Odradek has no cordoned log directories.
    assert o.removesuffix(".") in k and o.endswith("because only 1 broker(s) are registered.")
    described = assert_same(kafka_peer, odradek, "kafka-topics", "--describe", "--topic", t)
    assert "PartitionCount: 3 ReplicationFactor: 1" in described
    assert "Configs: cleanup.policy=compact,retention.ms=3600000" in described
    assert "Partition: 2 Leader: 1 Replicas: 1 Isr: 1 Elr: LastKnownElr:" in described
    # One node: nothing under-replicated or unavailable; every partition at min ISR (1).
    assert assert_same(kafka_peer, odradek, "kafka-topics", "--describe", "--topic", t,
                       "--under-replicated-partitions") == ""
    assert assert_same(kafka_peer, odradek, "kafka-topics", "--describe", "--topic", t,
                       "--unavailable-partitions") == ""
    at_min = assert_same(kafka_peer, odradek, "kafka-topics", "--describe", "--topic", t,
                         "--at-min-isr-partitions")
    assert at_min.count("Partition:") == 3
    assert_same(kafka_peer, odradek, "kafka-topics", "--alter", "--topic", t, "--partitions", "5")
    assert "PartitionCount: 5" in assert_same(kafka_peer, odradek, "kafka-topics", "--describe",
                                              "--topic", t)
    out = assert_same(kafka_peer, odradek, "kafka-topics", "--alter", "--topic", t,
                      "--partitions", "2", rc=1)
    assert f"The topic {t} currently has 5 partition(s); 2 would not be an increase." in out
    out = assert_same(kafka_peer, odradek, "kafka-topics", "--alter", "--topic", t,
                      "--partitions", "5", rc=1)
    assert "Topic already has 5 partition(s)." in out
    assert_same(kafka_peer, odradek, "kafka-topics", "--delete", "--topic", t)
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        assert t not in run(b, "kafka-topics", "--list").stdout.split()


# --- kafka-configs --------------------------------------------------------------------

def configs(text: str) -> dict[str, str]:
    """`key=value sensitive=... synonyms={...}` lines of kafka-configs --describe."""
    return dict(re.findall(r"^ ?(\S+?)=(\S*) sensitive=", text, re.M))


def test_configs_describe_and_alter_topic_configs(kafka_peer, odradek):
    t = "tools-configs"
    entity = ("--entity-type", "topics", "--entity-name", t)
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        run(b, "kafka-topics", "--create", "--topic", t, "--partitions", "1",
            "--config", "retention.ms=3600000", "--config", "segment.bytes=2000000")
    out = assert_same(kafka_peer, odradek, "kafka-configs", "--describe", *entity)
    assert "retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000}" in out
    assert "segment.bytes=2000000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:segment.bytes=2000000, " \
           "DEFAULT_CONFIG:log.segment.bytes=1073741824}" in out
    assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *entity,
                "--add-config", "retention.ms=7200000,max.message.bytes=2000000")
    out = assert_same(kafka_peer, odradek, "kafka-configs", "--describe", *entity)
    assert configs(out) == {"max.message.bytes": "2000000", "retention.ms": "7200000",
                            "segment.bytes": "2000000"}
    assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *entity,
                "--delete-config", "retention.ms")
    out = assert_same(kafka_peer, odradek, "kafka-configs", "--describe", *entity)
    assert configs(out) == {"max.message.bytes": "2000000", "segment.bytes": "2000000"}
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        bad = run(b, "kafka-configs", "--alter", *entity, "--add-config", "retention.ms=soon", rc=1)
        assert "InvalidConfigurationException" in bad.stderr
    # Every key Odradek describes (--all), Kafka describes alike: value and synonyms.
    k, o = both(kafka_peer, odradek, "kafka-configs", "--describe", "--all", *entity)
    kafka_lines = {line.split("=")[0]: line for line in k.splitlines()[1:]}
    odradek_lines = {line.split("=")[0]: line for line in o.splitlines()[1:]}
    assert {key: kafka_lines.get(key) for key in odradek_lines} == odradek_lines
    # Brokers: no dynamic configs on either (test_configs_alter_and_describe_broker_configs).
    assert_same(kafka_peer, odradek, "kafka-configs", "--describe", "--entity-type", "brokers",
                "--entity-name", "1")


def test_configs_group_configs(kafka_peer, odradek):
    """kafka-configs --entity-type groups (KIP-848's group-level configs, resource GROUP):
    set, then every key described alike (values, sources, synonyms). Deletes and refusals
    are the oracle's (case_group_configs)."""
    entity = ("--entity-type", "groups", "--entity-name", "tools-group-configs")
    assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *entity,
                "--add-config", "consumer.session.timeout.ms=50000,consumer.heartbeat.interval.ms=6000")
    out = assert_same(kafka_peer, odradek, "kafka-configs", "--describe", "--all", *entity)
    assert "consumer.session.timeout.ms=50000 sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms" \
           "=50000, DEFAULT_CONFIG:group.consumer.session.timeout.ms=45000}" in out


def test_configs_client_quotas(kafka_peer, odradek):
    """kafka-configs --entity-type clients/users: AlterClientQuotas and DescribeClientQuotas."""
    app = ("--entity-type", "clients", "--entity-name", "tools-quota-app")
    assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *app,
                "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152")
    out = assert_same(kafka_peer, odradek, "kafka-configs", "--describe", *app)
    assert "producer_byte_rate=1048576.0" in out and "consumer_byte_rate=2097152.0" in out
    user_app = ("--entity-type", "users", "--entity-name", "tools-quota-user", *app)
    assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *user_app,
                "--add-config", "request_percentage=25.5")
    assert "request_percentage=25.5" in assert_same(kafka_peer, odradek, "kafka-configs", "--describe",
                                                    *user_app)
    default_clients = ("--entity-type", "clients", "--entity-default")
    assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *default_clients,
                "--add-config", "producer_byte_rate=4194304")
    assert "producer_byte_rate=4194304.0" in assert_same(kafka_peer, odradek, "kafka-configs", "--describe",
                                                         *default_clients)
    assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *app, "--delete-config", "consumer_byte_rate")
    out = assert_same(kafka_peer, odradek, "kafka-configs", "--describe", *app)
    assert "consumer_byte_rate" not in out and "producer_byte_rate=1048576.0" in out
    for b in (kafka_peer.bootstrap, odradek.bootstrap):  # clean up the shared Kafka peer
        run(b, "kafka-configs", "--alter", *default_clients, "--delete-config", "producer_byte_rate")


BROKER_ONE = ("--entity-type", "brokers", "--entity-name", "1")
BROKER_DEFAULT = ("--entity-type", "brokers", "--entity-default")


def test_configs_alter_and_describe_broker_configs(kafka_peer, odradek):
    """Dynamic broker configs, per broker and cluster-wide, as kafka-configs sets and shows
    them; the shared Kafka peer gets its broker configs back afterwards."""
    node_keys, default_keys = "log.retention.ms,message.max.bytes", \
        "log.retention.ms,log.cleaner.threads,num.io.threads,leader.replication.throttled.rate"
    try:
        assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *BROKER_ONE,
                    "--add-config", "log.retention.ms=7200000,message.max.bytes=2000000")
        assert_same(kafka_peer, odradek, "kafka-configs", "--alter", *BROKER_DEFAULT, "--add-config",
                    "log.retention.ms=3600000,log.cleaner.threads=2,num.io.threads=4,"
                    "leader.replication.throttled.rate=1000000")
        out = assert_same(kafka_peer, odradek, "kafka-configs", "--describe", *BROKER_ONE)
        assert ("log.retention.ms=7200000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention."
                "ms=7200000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, "
                "DEFAULT_CONFIG:log.retention.hours=168}") in out
        out = assert_same(kafka_peer, odradek, "kafka-configs", "--describe", *BROKER_DEFAULT)
        assert configs(out) == {"leader.replication.throttled.rate": "1000000",
                                "log.cleaner.threads": "2", "log.retention.ms": "3600000",
                                "num.io.threads": "4"}
        # Every key Odradek knows, Kafka describes alike, but those the set-ups choose.
        k, o = both(kafka_peer, odradek, "kafka-configs", "--describe", "--all", *BROKER_ONE)
        kafka_lines = {line.split("=")[0]: line for line in k.splitlines()[1:]}
        odradek_lines = {line.split("=")[0]: line for line in o.splitlines()[1:]}
        for key in ("log.retention.ms", "message.max.bytes", "log.cleaner.threads", "num.io.threads",
                    "log.retention.hours", "num.partitions", "log.cleaner.io.max.bytes.per.second",
                    "log.cleaner.io.buffer.load.factor", "log.roll.ms", "log.segment.bytes"):
            assert odradek_lines[key] == kafka_lines[key]
        # A topic's keys follow their broker synonyms.
        t = "tools-broker-configs"
        for b in (kafka_peer.bootstrap, odradek.bootstrap):
            run(b, "kafka-topics", "--create", "--topic", t, "--partitions", "1")
        k, o = both(kafka_peer, odradek, "kafka-configs", "--describe", "--all",
                    "--entity-type", "topics", "--entity-name", t)
        for key in ("retention.ms", "max.message.bytes", "segment.ms"):
            (line,) = [line for line in o.splitlines() if line.startswith(key + "=")]
            assert line in k.splitlines()
        # Read-only keys and bad values: Kafka's error on both.
        for b in (kafka_peer.bootstrap, odradek.bootstrap):
            bad = run(b, "kafka-configs", "--alter", *BROKER_ONE, "--add-config", "num.partitions=3", rc=1)
            assert "InvalidRequestException: Cannot update these configs dynamically: [num.partitions]" \
                in bad.stderr
            bad = run(b, "kafka-configs", "--alter", *BROKER_DEFAULT, "--add-config",
                      "message.max.bytes=abc", rc=1)
            assert "InvalidRequestException: Invalid value" in bad.stderr
    finally:
        for b in (kafka_peer.bootstrap, odradek.bootstrap):
            run(b, "kafka-configs", "--alter", *BROKER_ONE, "--delete-config", node_keys, rc=None)
            run(b, "kafka-configs", "--alter", *BROKER_DEFAULT, "--delete-config", default_keys, rc=None)
    assert_same(kafka_peer, odradek, "kafka-configs", "--describe", *BROKER_DEFAULT)


# --- console producer and consumer, kafka-consumer-groups ------------------------------

def test_console_producer_and_consumer_with_keys_headers_and_a_group(kafka_peer, odradek):
    t, group = "tools-console", "tools-console-group"
    lines = "".join(f"h1:a{i},h2:b{i}\tkey-{i}\tvalue-{i}\n" for i in range(6))
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        run(b, "kafka-topics", "--create", "--topic", t, "--partitions", "2")
        run(b, "kafka-console-producer", "--topic", t, "--reader-property", "parse.key=true",
            "--reader-property", "parse.headers=true", input=lines)
    k, o = both(kafka_peer, odradek, "kafka-console-consumer", "--topic", t, "--group", group,
                "--from-beginning", "--max-messages", "6", "--timeout-ms", "20000",
                *(x for p in ("print.key", "print.headers", "print.partition", "print.offset")
                  for x in ("--formatter-property", f"{p}=true")))
    # The console producer partitions by key (murmur2), so both place each record alike;
    # the order across partitions is the consumer's.
    assert sorted(o.splitlines()) == sorted(k.splitlines())
    assert "Partition:0" in o and "Partition:1" in o
    assert "h1:a3,h2:b3 key-3 value-3" in o
    described = assert_same(kafka_peer, odradek, "kafka-consumer-groups", "--describe",
                            "--group", group)
    rows = [line.split() for line in described.splitlines() if line.startswith(group)]
    assert len(rows) == 2 and all(r[3] == r[4] and r[5] == "0" for r in rows)
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        assert group in run(b, "kafka-consumer-groups", "--list").stdout.split()


def start_member(bootstrap: str, topic: str, group: str):
    """A console consumer in `group`, returned once it printed the topic's one record
    (so it has joined and holds the partitions)."""
    proc = kafka.start_tool("kafka-console-consumer", "--bootstrap-server", bootstrap,
                            "--topic", topic, "--group", group, "--from-beginning",
                            "--timeout-ms", "60000")
    got = threading.Event()
    threading.Thread(target=lambda: proc.stdout.readline() and got.set(), daemon=True).start()
    if not got.wait(60):
        proc.kill()
        pytest.fail(f"the console consumer did not consume:\n{proc.stderr.read()}")
    return proc


def test_consumer_groups_describe_a_group_with_a_member(kafka_peer, odradek):
    t, group = "tools-members", "tools-members-group"
    members = []
    try:
        for b in (kafka_peer.bootstrap, odradek.bootstrap):
            run(b, "kafka-topics", "--create", "--topic", t, "--partitions", "2")
            run(b, "kafka-console-producer", "--topic", t, "--reader-property", "partition=0",
                input="one\n")
            members.append(start_member(b, t, group))
        state = assert_same(kafka_peer, odradek, "kafka-consumer-groups", "--describe",
                            "--group", group, "--state")
        assert re.search(rf"^{group} <broker> \(1\) range Stable 1$", state, re.M), state
        out = assert_same(kafka_peer, odradek, "kafka-consumer-groups", "--describe",
                          "--group", group, "--members")
        assert re.search(rf"^{group} <member> /127.0.0.1 console-consumer 2$", out, re.M), out
        out = assert_same(kafka_peer, odradek, "kafka-consumer-groups", "--describe",
                          "--group", group, "--members", "--verbose")
        assert re.search(rf"^{group} <member> /127.0.0.1 console-consumer 2 - {t}:0,1 - -$",
                         out, re.M), out
        for b in (kafka_peer.bootstrap, odradek.bootstrap):
            refused = run(b, "kafka-consumer-groups", "--reset-offsets", "--group", group,
                          "--topic", t, "--to-earliest", "--execute", rc=None)
            assert "inactive" in refused.stdout + refused.stderr
    finally:
        for m in members:
            m.kill()
            m.wait(10)


def consumer_protocol_member(bootstrap: str, topic: str, group: str) -> Consumer:
    """A confluent-kafka consumer with group.protocol=consumer (KIP-848), returned once it
    holds the topic's partitions and has committed (its client heartbeats on its own)."""

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "client.id": "cp-member"})
    c.subscribe([topic])
    deadline = time.monotonic() + 60
    got = 0
    while got < 2 and time.monotonic() < deadline:
        m = c.poll(0.2)
        got += m is not None and not m.error()
    assert got == 2
    c.commit(asynchronous=False)
    return c


CP_MEMBER_ID = re.compile(r"(?<![\w/+-])[A-Za-z0-9+/_-]{22}(?![\w/+-])")


def test_consumer_groups_describe_a_consumer_protocol_group(kafka_peer, odradek):
    """kafka-consumer-groups on a KIP-848 group: offsets and lag, state, members (the
    admin client describes it with ConsumerGroupDescribe and lists it with ListGroups v5)."""
    t, group = "tools-cp", "tools-cp-group"
    members = []
    try:
        for b in (kafka_peer.bootstrap, odradek.bootstrap):
            run(b, "kafka-topics", "--create", "--topic", t, "--partitions", "2")
            producer = Producer({"bootstrap.servers": b})
            for partition in (0, 1):
                producer.produce(t, b"one", partition=partition)
            assert producer.flush(30) == 0
            members.append(consumer_protocol_member(b, t, group))

        def assert_same_ids(*args):
            """As assert_same, with the members' ids (KIP-1082: the client's base64 UUIDs) masked."""
            k, o = (CP_MEMBER_ID.sub("<member>", x)
                    for x in both(kafka_peer, odradek, "kafka-consumer-groups", *args))
            assert o == k, " ".join(args)
            return o

        out = assert_same_ids("--describe", "--group", group)
        rows = [line.split() for line in out.splitlines() if line.startswith(group)]
        assert len(rows) == 2 and all(r[3] == r[4] == "1" and r[5] == "0" for r in rows), out
        state = assert_same_ids("--describe", "--group", group, "--state")
        assert re.search(rf"^{group} <broker> \(1\) uniform Stable 1$", state, re.M), state
        out = assert_same_ids("--describe", "--group", group, "--members")
        assert re.search(rf"^{group} <member> /127.0.0.1 cp-member 2$", out, re.M), out
        # --verbose adds the epochs: Kafka 4.4 bumps the group epoch twice on a new group's
        # first join with a subscription (member epoch 2), Odradek once (1); the rest agrees.
        k, o = (re.sub(r"cp-member (\d+) \d+ (\S+) \d+ ", r"cp-member \1 E \2 E ", CP_MEMBER_ID.sub("<member>", x))
                for x in both(kafka_peer, odradek, "kafka-consumer-groups", "--describe", "--group", group,
                              "--members", "--verbose"))
        assert o == k and f"{t}:0,1" in o, o
        for b in (kafka_peer.bootstrap, odradek.bootstrap):
            listed = run(b, "kafka-consumer-groups", "--list", "--type").stdout
            assert re.search(rf"^{group} +Consumer *$", listed, re.M), listed
    finally:
        for m in members:
            m.close()


def test_consumer_groups_reset_delete_offsets_and_delete(kafka_peer, odradek):
    t, group = "tools-offsets", "tools-offsets-group"
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        run(b, "kafka-topics", "--create", "--topic", t, "--partitions", "1")
        produce(b, t, 5)
    reset = ("kafka-consumer-groups", "--reset-offsets", "--group", group, "--topic", t)

    def new_offset(*how: str) -> int:
        out = assert_same(kafka_peer, odradek, *reset, *how)
        (row,) = [line.split() for line in out.splitlines() if line.startswith(group)]
        return int(row[3])

    assert new_offset("--to-earliest", "--execute") == 0
    assert new_offset("--to-latest", "--execute") == 5
    assert new_offset("--shift-by", "-2", "--execute") == 3
    assert new_offset("--to-datetime", iso(T0 + 2000), "--execute") == 2
    assert new_offset("--to-offset", "1", "--dry-run") == 1  # a dry run changes nothing
    described = assert_same(kafka_peer, odradek, "kafka-consumer-groups", "--describe",
                            "--group", group, "--offsets")
    assert f"{group} {t} 0 2 5 3 - - -" in described
    out = assert_same(kafka_peer, odradek, "kafka-consumer-groups", "--delete-offsets",
                      "--group", group, "--topic", t)
    assert f"{t} 0 Successful" in out
    out = assert_same(kafka_peer, odradek, "kafka-consumer-groups", "--delete", "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in out
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        assert group not in run(b, "kafka-consumer-groups", "--list").stdout.split()
    out = assert_same(kafka_peer, odradek, "kafka-consumer-groups", "--delete", "--group", group)
    assert "GroupIdNotFoundException" in out


def test_share_groups_reset_delete_offsets_and_delete(odradek):
    """kafka-share-groups --reset-offsets (AlterShareGroupOffsets after ListOffsets, and
    --all-topics through DescribeShareGroupOffsets), --delete-offsets and --delete against
    Odradek; the outputs are Kafka 4.4's for the same commands (compared once by hand: the
    oracle's case share_group_offsets_alter_delete compares the answers on every run). An
    unknown group id reset becomes an empty share group, as on Kafka."""
    from kafka.protocol.admin.groups import ListGroupsRequest, ListGroupsResponse

    from tests.clients import create_topics
    from tests.rawclient import RawConnection
    t, group = "tools-share", "tools-share-group"
    create_topics(odradek.bootstrap, [t], partitions=2)
    produce(odradek.bootstrap, t, 5)

    def rows(*args: str) -> list[list[str]]:
        out = run(odradek.bootstrap, "kafka-share-groups", "--group", group, *args).stdout
        return sorted(line.split()[1:] for line in out.splitlines() if line.startswith(group))

    reset = ("--reset-offsets", "--topic")
    assert rows(*reset, t, "--to-latest", "--execute") == [[t, "0", "5"], [t, "1", "0"]]
    assert rows(*reset, f"{t}:0", "--to-datetime", iso(T0 + 2000), "--execute") == [[t, "0", "2"]]
    assert rows("--reset-offsets", "--all-topics", "--to-earliest", "--dry-run") == [[t, "0", "0"], [t, "1", "0"]]
    # START-OFFSET LAG: --to-datetime took, the dry run changed nothing
    assert rows("--describe") == [[t, "0", "2", "3"], [t, "1", "0", "0"]]
    out = run(odradek.bootstrap, "kafka-share-groups", "--delete-offsets", "--group", group, "--topic", t).stdout
    assert re.search(rf"^{t} +Successful *$", out, re.M), out
    out = run(odradek.bootstrap, "kafka-share-groups", "--delete", "--group", group).stdout
    assert f"Deletion of requested share groups ('{group}') was successful." in out
    with RawConnection(odradek.bootstrap) as c:
        listed = c.roundtrip(ListGroupsRequest(states_filter=[], types_filter=[]), 5, ListGroupsResponse)
    assert group not in [g.group_id for g in listed.groups]


# --- kafka-get-offsets, kafka-delete-records ------------------------------------------

def test_get_offsets_and_delete_records(kafka_peer, odradek, tmp_path):
    t = "tools-records"
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        run(b, "kafka-topics", "--create", "--topic", t, "--partitions", "2")
        produce(b, t, 5)
    offsets = {when: assert_same(kafka_peer, odradek, "kafka-get-offsets", "--topic", t,
                                 "--time", when)
               for when in ("-1", "-2", "-3", str(T0 + 2000))}
    assert offsets == {"-1": f"{t}:0:5\n{t}:1:0", "-2": f"{t}:0:0\n{t}:1:0",
                       "-3": f"{t}:0:4", str(T0 + 2000): f"{t}:0:2"}
    plan = tmp_path / "delete.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": t, "partition": 0, "offset": 3}]}))
    out = assert_same(kafka_peer, odradek, "kafka-delete-records", "--offset-json-file", str(plan))
    assert f"partition: {t}-0 low_watermark: 3" in out
    assert assert_same(kafka_peer, odradek, "kafka-get-offsets", "--topic", t, "--partitions", "0",
                       "--time", "-2") == f"{t}:0:3"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": t, "partition": 0, "offset": 9}]}))
    out = assert_same(kafka_peer, odradek, "kafka-delete-records", "--offset-json-file", str(plan))
    assert "OffsetOutOfRangeException" in out


# --- cluster, quorum, features, api versions ------------------------------------------

def fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):\s+(.*)$", text, re.M))


def test_cluster_id_quorum_features_and_api_versions(kafka_peer, odradek):
    k, o = both(kafka_peer, odradek, "kafka-cluster", "cluster-id")
    assert o == k == "Cluster ID: <id>"
    cluster_id = run(odradek.bootstrap, "kafka-cluster", "cluster-id").stdout.split()[-1]
    meta = (Path(odradek.data_dir) / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta

    k, o = both(kafka_peer, odradek, "kafka-metadata-quorum", "describe", "--status")
    assert fields(o).keys() == fields(k).keys()
    status = fields(o)
    assert status["ClusterId"] == cluster_id and status["LeaderId"] == "1"
    assert '{"id": 1, "endpoints": ["PLAINTEXT://<broker>"]}' in status["CurrentVoters"]
    k, o = both(kafka_peer, odradek, "kafka-metadata-quorum", "describe", "--replication")
    assert o.splitlines()[0] == k.splitlines()[0]  # the columns
    (row,) = o.splitlines()[1:]
    node, _, log_end, lag, last_fetch, last_caught_up, status = row.split()
    assert (node, lag, status) == ("1", "0", "Leader")
    # The leader reports itself fetched and caught up now, as Kafka's does.
    assert int(last_fetch) > T0 and int(last_caught_up) > T0

    # Odradek implements metadata.version up to 4.2-IV1 and group.version 1 (KIP-848)
    # (replication/features.py); the group.version line reads as Kafka's, but for the epoch.
    k, o = (re.sub(r"Epoch: \d+", "Epoch: <n>", x)
            for x in both(kafka_peer, odradek, "kafka-features", "describe"))
    lines = normalise(o, odradek.bootstrap).splitlines()
    assert re.fullmatch(r"Feature: metadata.version SupportedMinVersion: 3.3-IV3 SupportedMaxVersion: "
                        r"4.2-IV1 FinalizedVersionLevel: 4.2-IV1 Epoch: <n>", lines[1]), o
    group_version = [line for line in k.splitlines() if line.startswith("Feature: group.version")]
    assert lines[:1] == group_version and "FinalizedVersionLevel: 1" in lines[0], (o, k)
    # transactions v2 (KIP-890 part 2): transaction.version 0-2, finalized at 2, as Kafka's
    transaction_version = [line for line in k.splitlines() if line.startswith("Feature: transaction.version")]
    assert [line for line in lines if line.startswith("Feature: transaction.version")] == transaction_version
    assert "SupportedMaxVersion: 2 FinalizedVersionLevel: 2" in transaction_version[0], k

    k, o = both(kafka_peer, odradek, "kafka-broker-api-versions")
    served = dict(re.findall(r"^(\w+)\(\d+\): (.*?),?$", o, re.M))
    kafka_served = dict(re.findall(r"^(\w+)\(\d+\): (.*?),?$", k, re.M))
    assert served.keys() == kafka_served.keys()  # the tool lists every API it knows
    for api in ("Produce", "Fetch", "Metadata", "DescribeTopicPartitions", "DescribeConfigs"):
        assert "usable" in served[api], api
    assert "<broker> (id: 1 rack: null isFenced: false) -> (" in o


def test_features_upgrade_and_downgrade_as_kafka_refuses_them(kafka_peer, odradek):
    """kafka-features upgrade/downgrade/disable (UpdateFeatures): Kafka's answers and words.
    The peer's metadata.version is 4.4-IV2 (33), Odradek's 4.2-IV1 (29): the levels in the
    messages are normalised. Only dry runs reach the shared peer."""
    def same(*args, rc):
        k, o = both(kafka_peer, odradek, "kafka-features", *args, rc=rc)
        assert re.sub(r"\b(33|29)\b", "<current>", o) == re.sub(r"\b(33|29)\b", "<current>", k), args
        return o
    assert "foo.bar to 1. The update failed for all features since the following feature had an " \
           "error: Invalid update version 1 for feature foo.bar. Local controller 1 does not " \
           "support this feature." in same("upgrade", "--feature", "foo.bar=1", "--dry-run", rc=1)
    assert "Refusing to perform the requested downgrade because it might delete metadata " \
           "information." in same("downgrade", "--feature", "metadata.version=21", "--dry-run", rc=1)
    same("downgrade", "--feature", "metadata.version=21", "--unsafe", "--dry-run", rc=1)
    same("upgrade", "--feature", "metadata.version=20", "--dry-run", rc=1)
    same("disable", "--feature", "group.version", "--dry-run", rc=0)
    # transaction.version goes down to 1 (Java clients then run transactions v1) and back up
    assert run(odradek.bootstrap, "kafka-features", "downgrade", "--feature", "transaction.version=1"
               ).stdout.strip() == "transaction.version was downgraded to 1."
    assert run(odradek.bootstrap, "kafka-features", "upgrade", "--feature", "transaction.version=2"
               ).stdout.strip() == "transaction.version was upgraded to 2."
    # Beyond what Odradek implements (Kafka would take it).
    out = run(odradek.bootstrap, "kafka-features", "upgrade", "--feature", "metadata.version=30", rc=1)
    assert "Local controller 1 only supports versions 7-29" in out.stdout
    assert run(odradek.bootstrap, "kafka-features", "upgrade", "--feature", "metadata.version=29"
               ).stdout.strip() == "metadata.version was upgraded to 29."
    # --release-version 4.2 would also finalize features Odradek does not implement: refused.
    out = run(odradek.bootstrap, "kafka-features", "upgrade", "--release-version", "4.2", rc=1).stdout
    refused = re.search(r"Invalid update version \d+ for feature ([\w.]+)\. Local controller 1 does "
                        r"not support this feature\.", out)
    assert refused and refused.group(1) not in ("metadata.version", "group.version"), out
    assert "FinalizedVersionLevel: 4.2-IV1" in run(odradek.bootstrap, "kafka-features", "describe").stdout


# --- kafka-dump-log on Odradek's segments ----------------------------------------------

def test_dump_log_reads_odradek_segments(odradek):
    """Batches, offsets and index entries of Odradek's .log, .index and .timeindex as
    Kafka's own reader sees them: the proof that the files are Kafka's format."""
    t = "tools-dump"
    run(odradek.bootstrap, "kafka-topics", "--create", "--topic", t, "--partitions", "1",
        "--config", "index.interval.bytes=1", "--config", "segment.bytes=1048576")
    produce(odradek.bootstrap, t, 12)
    assert odradek.stop() == 0  # a clean stop: the active segment's indexes are trimmed
    files = sorted(str(p) for p in (Path(odradek.data_dir) / f"{t}-0").iterdir()
                   if p.suffix in (".log", ".index", ".timeindex"))
    assert {Path(f).suffix for f in files} == {".log", ".index", ".timeindex"}
    out = kafka.run_tool("kafka-dump-log", "--files", ",".join(files), "--print-data-log",
                         "--deep-iteration")
    assert out.rc == 0, out.stderr
    text = out.stdout
    assert "Mismatches" not in text and "not found" not in text, text
    batches = re.findall(r"^baseOffset: (\d+) lastOffset: (\d+) count: (\d+) .*isvalid: (\w+)",
                         text, re.M)
    assert [int(b[0]) for b in batches] == list(range(12)) and {b[3] for b in batches} == {"true"}
    records = re.findall(r"^\| offset: (\d+) CreateTime: (\d+) keySize: \d+ valueSize: \d+ "
                         r"sequence: \d+ headerKeys: \[h\] key: (\S+) payload: (\S+)$", text, re.M)
    assert records == [(str(i), str(T0 + 1000 * i), f"k{i}", f"value-{i}") for i in range(12)]
    index = re.findall(r"^offset: (\d+) position: (\d+)$", text, re.M)
    assert [int(o) for o, _ in index] == list(range(1, 12))  # every batch after the first
    times = re.findall(r"^timestamp: (\d+) offset: (\d+)$", text, re.M)
    assert times and all(int(ts) == T0 + 1000 * int(o) for ts, o in times)


def test_the_checks_can_fail():
    """The normalisation keeps what matters: another partition count still differs."""
    a = normalise("Topic: t\tTopicId: abc\tPartitionCount: 3", "127.0.0.1:1")
    b = normalise("Topic: t\tTopicId: xyz\tPartitionCount: 4", "127.0.0.1:2")
    assert a != b and a.replace("3", "4") == b
    assert kafka_cluster_defaults("Configs: min.insync.replicas=1,retention.ms=5") == \
        "Configs: retention.ms=5"
    assert normalise(kafka_cluster_defaults("Configs: min.insync.replicas=1\t"), "-") == "Configs:"


# --- kafka-log-dirs --------------------------------------------------------------------

def log_dirs(bootstrap: str, *args: str) -> list[dict]:
    """kafka-log-dirs --describe: the log dirs of the one broker, from its JSON line."""
    out = run(bootstrap, "kafka-log-dirs", "--describe", *args).stdout
    (broker,) = json.loads(out.splitlines()[-1])["brokers"]
    assert broker["broker"] == 1
    return broker["logDirs"]


def test_log_dirs_describes_partition_sizes(kafka_peer, odradek):
    t = "tools-log-dirs"
    for b in (kafka_peer.bootstrap, odradek.bootstrap):
        run(b, "kafka-topics", "--create", "--topic", t, "--partitions", "2")
        produce(b, t, 3)
    described = {}
    for name, b in (("kafka", kafka_peer.bootstrap), ("odradek", odradek.bootstrap)):
        (log_dir,) = log_dirs(b, "--topic-list", t)
        assert log_dir["error"] is None
        described[name] = log_dir
        partitions = {p["partition"]: p for p in log_dir["partitions"]}
        assert partitions.keys() == {f"{t}-0", f"{t}-1"}
        assert partitions[f"{t}-1"]["size"] == 0
        assert {(p["offsetLag"], p["isFuture"]) for p in partitions.values()} == {(0, False)}
    odradek_dir = Path(described["odradek"]["logDir"])
    assert odradek_dir == Path(odradek.data_dir).resolve()
    on_disk = sum(f.stat().st_size for f in (odradek_dir / f"{t}-0").glob("*.log"))
    sizes = {name: {p["partition"]: p["size"] for p in d["partitions"]}
             for name, d in described.items()}
    assert sizes["odradek"][f"{t}-0"] == on_disk > 0
    # The same records, produced alike, take the same bytes in both.
    assert sizes["odradek"] == sizes["kafka"]
    # Without --topic-list every partition is listed, internal ones too.
    assert any(p["partition"].startswith(f"{t}-") for p in log_dirs(odradek.bootstrap)[0]["partitions"])


# --- kafka-topics and kafka-metadata-quorum on three Odradek nodes ----------------------

@pytest.fixture
def odradek_cluster(tmp_path, kafka_libs):
    from tests.local_cluster import Cluster
    cluster = Cluster(tmp_path)
    yield cluster
    cluster.stop_all()
    for n in cluster.nodes:  # on failure, pytest shows each node's log tail
        print(f"--- node {n} ---\n" + "".join(cluster.logs[n][-40:]))


def isr_sizes(cluster, topic: str) -> list[int]:
    md = cluster.admin().list_topics(topic, timeout=5)
    return [len(p.isrs) for _, p in sorted(md.topics[topic].partitions.items())]


def test_topics_and_quorum_on_three_nodes_with_one_down(odradek_cluster):
    """Slow (three nodes, an ISR shrink after replica.lag.time.max.ms): what an operator
    checks when a node is down: under-replicated partitions, and the quorum's view."""
    c, t = odradek_cluster, "tools-three"
    c.start()
    c.wait_formed()
    run(c.bootstrap, "kafka-topics", "--create", "--topic", t, "--partitions", "3",
        "--replication-factor", "3", "--config", "min.insync.replicas=2")
    described = run(c.bootstrap, "kafka-topics", "--describe", "--topic", t).stdout
    assert "PartitionCount: 3\tReplicationFactor: 3" in described
    assert len(re.findall(r"\tIsr: \d,\d,\d\t", described)) == 3
    assert run(c.bootstrap, "kafka-topics", "--describe", "--under-replicated-partitions").stdout == ""
    status = fields(run(c.bootstrap, "kafka-metadata-quorum", "describe", "--status").stdout)
    assert {v["id"] for v in json.loads(status["CurrentVoters"])} == {1, 2, 3}
    # The data path and a group, whose coordinator may be any node.
    lines = "".join(f"key-{i}\tvalue-{i}\n" for i in range(9))
    run(c.bootstrap, "kafka-console-producer", "--topic", t, "--reader-property", "parse.key=true",
        input=lines)
    assert sum(int(line.rsplit(":", 1)[1]) for line in
               run(c.bootstrap, "kafka-get-offsets", "--topic", t).stdout.split()) == 9
    consumed = run(c.bootstrap, "kafka-console-consumer", "--topic", t, "--group", "three",
                   "--from-beginning", "--max-messages", "9", "--timeout-ms", "30000").stdout
    assert sorted(consumed.split()) == sorted(f"value-{i}" for i in range(9))
    described = run(c.bootstrap, "kafka-consumer-groups", "--describe", "--group", "three").stdout
    rows = [line.split() for line in described.splitlines() if line.startswith("three ")]
    assert len(rows) == 3 and all(r[3] == r[4] and r[5] == "0" for r in rows)
    reset = run(c.bootstrap, "kafka-consumer-groups", "--reset-offsets", "--group", "three",
                "--topic", t, "--to-earliest", "--execute").stdout
    assert sorted(line.split()[-1] for line in reset.splitlines() if line.startswith("three ")) == ["0"] * 3

    c.kill(3)
    c.wait_for(lambda: isr_sizes(c, t) == [2, 2, 2], 30, "the ISRs to shrink")
    under = run(c.live_bootstrap, "kafka-topics", "--describe", "--topic", t,
                "--under-replicated-partitions").stdout
    assert sorted(re.findall(rf"Topic: {t}\tPartition: (\d)\t", under)) == ["0", "1", "2"]
    isrs = re.findall(r"\tIsr: ([\d,]*)\t", under)
    assert len(isrs) == 3 and all("3" not in isr.split(",") for isr in isrs)
    at_min = run(c.live_bootstrap, "kafka-topics", "--describe", "--topic", t, "--at-min-isr-partitions").stdout
    assert at_min.count("Partition:") == 3
    assert run(c.live_bootstrap, "kafka-topics", "--describe", "--unavailable-partitions").stdout == ""

    c.restart(3)
    c.wait_for(lambda: isr_sizes(c, t) == [3, 3, 3], 60, "node 3 back in every ISR")
    assert run(c.bootstrap, "kafka-topics", "--describe", "--topic", t,
               "--under-replicated-partitions").stdout == ""


# --- the performance tools (the benchmarks drive them) ----------------------------------

def test_producer_and_consumer_perf_tools(odradek):
    t = "tools-perf"
    run(odradek.bootstrap, "kafka-topics", "--create", "--topic", t, "--partitions", "2")
    out = kafka.run_tool("kafka-producer-perf-test", "--topic", t, "--num-records", "2000",
                         "--record-size", "100", "--throughput", "-1", "--command-property",
                         f"bootstrap.servers={odradek.bootstrap}", timeout=120)
    assert out.rc == 0, out.stderr
    assert re.search(r"^2000 records sent, ", out.stdout, re.M), out.stdout
    out = run(odradek.bootstrap, "kafka-consumer-perf-test", "--topic", t, "--num-records", "2000",
              "--timeout", "30000", timeout=120)
    header, row = out.stdout.splitlines()[-2:]
    values = dict(zip([h.strip() for h in header.split(",")], [v.strip() for v in row.split(",")],
                      strict=True))
    assert int(values["data.consumed.in.nMsg"]) == 2000


def reassignment_file(tmp_path, name: str, moves: dict[tuple[str, int], list[int]]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": replicas} for (t, p), replicas in moves.items()]}))
    return str(path)


def replicas_and_isr(cluster, topic: str) -> dict[int, tuple[list[int], list[int], int]]:
    md = cluster.admin().list_topics(topic, timeout=5)
    return {i: (list(p.replicas), sorted(p.isrs), p.leader) for i, p in md.topics[topic].partitions.items()}


def test_reassign_partitions_moves_replicas_and_cancels(odradek_cluster, tmp_path):
    """Slow (three nodes; a kill): kafka-reassign-partitions --execute (with a throttle, which
    --verify clears), --verify, --list and --cancel. New replicas copy the log and join the
    ISR before the old ones leave; the records stay readable throughout."""
    c, t = odradek_cluster, "tools-reassign"
    c.start()
    c.wait_formed()
    run(c.bootstrap, "kafka-topics", "--create", "--topic", t, "--replica-assignment", "1,1")
    lines = "".join(f"key-{i}\tvalue-{i}\n" for i in range(20))
    run(c.bootstrap, "kafka-console-producer", "--topic", t, "--reader-property", "parse.key=true",
        input=lines)
    move = reassignment_file(tmp_path, "move.json", {(t, 0): [2, 3], (t, 1): [1, 2]})
    out = run(c.bootstrap, "kafka-reassign-partitions", "--reassignment-json-file", move, "--execute",
              "--throttle", "50000000").stdout
    assert "Successfully started partition reassignments for tools-reassign-0,tools-reassign-1" in out
    assert '"replicas":[1]' in out  # the current assignment, printed for a rollback

    def verified():
        out = run(c.bootstrap, "kafka-reassign-partitions", "--reassignment-json-file", move,
                  "--verify").stdout
        return out if "is still in progress" not in out else None
    out = c.wait_for(verified, 60, "the reassignment to complete")
    assert "Reassignment of partition tools-reassign-0 is completed." in out
    assert "Reassignment of partition tools-reassign-1 is completed." in out
    assert "Clearing broker-level throttles on brokers 1,2,3" in out
    assert "Clearing topic-level throttles on topic tools-reassign" in out
    state = replicas_and_isr(c, t)
    assert state[0][:2] == ([2, 3], [2, 3]) and state[0][2] in (2, 3)
    assert state[1][:2] == ([1, 2], [1, 2])
    # Node 1 no longer holds partition 0; nodes 2 and 3 hold its records.
    c.wait_for(lambda: not (Path(c.nodes[1].data_dir) / f"{t}-0").exists(), 10, "node 1's copy deleted")
    assert all((Path(c.nodes[n].data_dir) / f"{t}-0" / "00000000000000000000.log").stat().st_size > 0
               for n in (2, 3))
    consumed = run(c.bootstrap, "kafka-console-consumer", "--topic", t, "--from-beginning",
                   "--max-messages", "20", "--timeout-ms", "30000").stdout
    assert sorted(consumed.split()) == sorted(f"value-{i}" for i in range(20))
    assert run(c.bootstrap, "kafka-reassign-partitions", "--list").stdout.strip() == \
        "No partition reassignments found."

    # The user story: a fourth node joins the running cluster as a broker that is not a
    # controller voter (process.roles=broker), and a partition moves onto it.
    c.add_broker(4)
    c.wait_for(lambda: len(c.admin().list_topics(timeout=5).brokers) == 4, 30, "node 4 registered")
    leader = c.nodes[c.active_controller()].bootstrap

    def replication():
        out = run(leader, "kafka-metadata-quorum", "describe", "--replication").stdout
        return out if "Observer" in out else None
    out = c.wait_for(replication, 20, "node 4 listed as an observer")
    status = {row[0]: row[-1] for row in map(str.split, out.splitlines()[1:]) if row}
    assert status["4"] == "Observer", out
    assert sorted(n for n, role in status.items() if role != "Observer") == ["1", "2", "3"], out
    onto = reassignment_file(tmp_path, "onto4.json", {(t, 0): [2, 4]})
    run(c.bootstrap, "kafka-reassign-partitions", "--reassignment-json-file", onto, "--execute")
    c.wait_for(lambda: replicas_and_isr(c, t)[0][:2] == ([2, 4], [2, 4]), 60, "partition 0 on nodes 2 and 4")
    assert (Path(c.nodes[4].data_dir) / f"{t}-0" / "00000000000000000000.log").stat().st_size > 0
    consumed = run(c.nodes[4].bootstrap, "kafka-console-consumer", "--topic", t, "--partition", "0",
                   "--from-beginning", "--timeout-ms", "15000").stdout
    assert consumed.split() and all(v.startswith("value-") for v in consumed.split())

    # A new replica on a node that is down never catches up: in progress until cancelled.
    c.kill(3)
    grow = reassignment_file(tmp_path, "grow.json", {(t, 1): [1, 2, 3]})
    run(c.live_bootstrap, "kafka-reassign-partitions", "--reassignment-json-file", grow, "--execute")
    listed = run(c.live_bootstrap, "kafka-reassign-partitions", "--list").stdout
    assert "Current partition reassignments:\ntools-reassign-1: replicas: 1,2,3. adding: 3.\n" \
        in listed, listed
    # (The tool's --cancel would then clear throttles on every broker, and wait on node 3.)
    from kafka.protocol.admin import AlterPartitionReassignmentsRequest as A
    from kafka.protocol.admin import AlterPartitionReassignmentsResponse

    from tests.rawclient import RawConnection
    with RawConnection(c.nodes[1].bootstrap) as conn:
        answer = conn.roundtrip(A(timeout_ms=10000, topics=[A.ReassignableTopic(name=t, partitions=[
            A.ReassignableTopic.ReassignablePartition(partition_index=1, replicas=None)])]), 0,
            AlterPartitionReassignmentsResponse)
    assert [(r.name, [(p.partition_index, p.error_code) for p in r.partitions])
            for r in answer.responses] == [(t, [(1, 0)])]
    c.wait_for(lambda: replicas_and_isr(c, t)[1][:2] == ([1, 2], [1, 2]), 10, "the original replicas")
    assert run(c.live_bootstrap, "kafka-reassign-partitions", "--list").stdout.strip() == \
        "No partition reassignments found."

"""Kafka 4.4's kafka-leader-election against Odradek: on one node side by side with Kafka
(the same commands, the same stdout and exit status), and on three Odradek nodes after
a restart moved a leader away from its preferred replica."""

import uuid

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from tests.clients import create_topics
from tests.local_cluster import Cluster
from tests.peers.test_tools import ODRADEK_OVERRIDES, normalise, run


@pytest.fixture
def odradek(broker_factory):
    return broker_factory(overrides=ODRADEK_OVERRIDES)


def election_commands(topic: str) -> list[tuple[str, ...]]:
    return [
        ("--election-type", "preferred", "--all-topic-partitions"),
        ("--election-type", "preferred", "--topic", topic, "--partition", "0"),
        ("--election-type", "unclean", "--topic", topic, "--partition", "1"),
        ("--election-type", "preferred", "--topic", topic, "--partition", "9"),
        ("--election-type", "preferred", "--topic", f"{topic}-missing", "--partition", "0"),
    ]


def test_leader_election_answers_as_kafka_does_on_one_node(odradek, kafka_peer):
    topic = f"el-{uuid.uuid4().hex[:8]}"
    outputs = {}
    for name, bootstrap in (("odradek", odradek.bootstrap), ("kafka", kafka_peer.bootstrap)):
        create_topics(bootstrap, [topic], partitions=2, rf=1)
        outputs[name] = [(r.rc, normalise(r.stdout, bootstrap))
                         for r in (run(bootstrap, "kafka-leader-election", *cmd, rc=None)
                                   for cmd in election_commands(topic))]
    assert outputs["odradek"] == outputs["kafka"]
    # Every partition already led by its preferred replica: not an error.
    assert outputs["kafka"][1][0] == 0 and "Valid replica already elected" in outputs["kafka"][1][1]


def test_preferred_election_after_a_restart_on_three_nodes(tmp_path, kafka_libs):
    cluster = Cluster(tmp_path, overrides={"auto.leader.rebalance.enable": "false"})
    try:
        cluster.start()
        cluster.wait_formed()
        a = KafkaAdminClient(bootstrap_servers=cluster.live_bootstrap, request_timeout_ms=20000)
        try:
            a.create_topics([NewTopic("moved", -1, -1, replica_assignments={0: [1, 2, 3], 1: [2, 3, 1]})])
        finally:
            a.close()

        def state(p):
            m = cluster.admin().list_topics("moved", timeout=5).topics["moved"].partitions[p]
            return m.leader, sorted(m.isrs)
        cluster.wait_for(lambda: state(0)[0] == 1 and state(1)[0] == 2, 30, "the preferred leaders")
        cluster.kill(1)
        cluster.wait_for(lambda: state(0)[0] in (2, 3), 30, "a new leader of moved-0")
        cluster.restart(1)
        cluster.wait_for(lambda: state(0)[1] == [1, 2, 3], 60, "node 1 back in the ISR")
        result = run(cluster.live_bootstrap, "kafka-leader-election", "--election-type", "preferred",
                     "--all-topic-partitions")
        assert result.stdout.strip() == \
            "Successfully completed leader election (PREFERRED) for partitions moved-0"
        cluster.wait_for(lambda: state(0)[0] == 1, 10, "node 1 to lead moved-0")
        result = run(cluster.live_bootstrap, "kafka-leader-election", "--election-type", "preferred",
                     "--topic", "moved", "--partition", "0")
        assert result.stdout.strip() == "Valid replica already elected for partitions moved-0"
    finally:
        cluster.stop_all()


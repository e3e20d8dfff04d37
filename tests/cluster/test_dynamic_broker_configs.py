"""Dynamic broker configs on three node processes: a node's own config, set through that
node, reaches only it; the cluster-wide default reaches every node; both survive the
node's restart, through the replicated metadata log."""

from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError

from tests.local_cluster import Cluster
from tests.rawclient import alter_broker_configs, described_configs

NODE, CLUSTER_DEFAULT, DEFAULT = 2, 3, 5
TOPIC = "dynamic"


def refused_at(cluster: Cluster, size: int) -> set[int]:
    """The partitions (0: led by node 1, 1: by node 2) that refuse a record of `size` bytes."""
    p = KafkaProducer(bootstrap_servers=cluster.live_bootstrap, acks=1, retries=0, linger_ms=0,
                      max_request_size=10 * size)
    refused = set()
    try:
        for partition in (0, 1):
            try:
                p.send(TOPIC, b"x" * size, partition=partition).get(10)
            except MessageSizeTooLargeError:
                refused.add(partition)
    finally:
        p.close()
    return refused


def message_max_bytes(cluster: Cluster, node: int):
    return described_configs(cluster.nodes[node].bootstrap, 4, str(node),
                             ["message.max.bytes"])["message.max.bytes"][:2]


def test_node_and_cluster_wide_configs_reach_their_nodes_and_survive_a_restart(tmp_path):
    cluster = Cluster(tmp_path, overrides={"auto.leader.rebalance.enable": "false"})
    try:
        cluster.start()
        cluster.wait_formed()
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers=cluster.live_bootstrap, request_timeout_ms=20000)
        admin.create_topics([NewTopic(TOPIC, -1, -1, replica_assignments={0: [1, 2], 1: [2, 1]})])
        admin.close()
        cluster.wait_for(lambda: refused_at(cluster, 3000) == set(), 30, "the topic")

        # Sent to node 2 (as the admin client routes it), carried out by the controller.
        assert alter_broker_configs(cluster.nodes[2].bootstrap, "2", ("message.max.bytes", 0, "1000")) == (0, None)
        assert message_max_bytes(cluster, 2) == ("1000", NODE)
        cluster.wait_for(lambda: message_max_bytes(cluster, 1) == ("1048588", DEFAULT), 10, "node 1 unchanged")
        assert refused_at(cluster, 3000) == {1}  # node 2 leads partition 1

        assert alter_broker_configs(cluster.nodes[3].bootstrap, "", ("message.max.bytes", 0, "2000")) == (0, None)
        cluster.wait_for(lambda: all(message_max_bytes(cluster, n) == ("2000", CLUSTER_DEFAULT) for n in (1, 3)),
                         10, "the default on nodes 1 and 3")
        assert message_max_bytes(cluster, 2) == ("1000", NODE)  # its own value wins
        assert refused_at(cluster, 1500) == {1} and refused_at(cluster, 3000) == {0, 1}

        cluster.kill(2)
        cluster.restart(2)
        cluster.wait_for(lambda: message_max_bytes(cluster, 2) == ("1000", NODE), 30, "node 2's config back")
    finally:
        cluster.stop_all()

"""Metrics a three-node cluster can be made to show, read from each node's /metrics:
a follower killed leaves its partitions under-replicated, the leader's ISR shrinks
(and expands when it returns), and the quorum's state is there."""

from tests.brokerproc import free_port
from tests.clients import create_topics
from tests.local_cluster import poll_until
from tests.metrics_http import get, sample, scrape

TOPIC = "watched"


def leader_of(cluster, topic, partition=0) -> int:
    return cluster.admin().list_topics(timeout=10).topics[topic].partitions[partition].leader


def test_under_replicated_partition_and_isr_shrink_after_a_follower_dies(cluster):
    http_port = free_port()
    urls = {}
    for n, node in cluster.nodes.items():
        node.overrides["http.listener"] = f"{node.host}:{http_port}"
        urls[n] = f"http://{node.host}:{http_port}"
    cluster.start()
    controller = cluster.wait_formed()
    assert all(poll_until(lambda u=u: get(u + "/readyz")[0] == 200, 30) for u in urls.values())
    create_topics(cluster.live_bootstrap, [TOPIC], 1, 3, {"min.insync.replicas": "2"})
    leader = cluster.wait_for(lambda: leader_of(cluster, TOPIC), 30, "a leader")
    leader_url = urls[leader]

    def metric(name, url=leader_url, **labels):
        return sample(scrape(url), name, **labels)

    assert cluster.wait_for(lambda: metric("kafka_log_log_logendoffset", topic=TOPIC, partition="0")
                            is not None, 30, "the partition on the leader")
    assert metric("kafka_server_replicamanager_underreplicatedpartitions") == 0
    shrinks_before = metric("kafka_server_replicamanager_isrshrinks_total")

    samples = scrape(urls[controller])
    assert sample(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert sample(samples, "kafka_server_raft_metrics_current_leader") == controller
    assert sample(samples, "kafka_server_raft_metrics_current_state", state="leader") == 1
    assert sample(samples, "kafka_server_raft_metrics_high_watermark") > 0

    follower = next(n for n in cluster.live() if n not in (leader, controller))  # quorum stays
    cluster.kill(follower)
    cluster.wait_for(lambda: metric("kafka_server_replicamanager_underreplicatedpartitions") == 1,
                     30, "an under-replicated partition on the leader")
    assert metric("kafka_server_replicamanager_isrshrinks_total") >= shrinks_before + 1
    assert metric("kafka_server_replicamanager_underminisrpartitioncount") == 0  # ISR 2, min 2

    expands_before = metric("kafka_server_replicamanager_isrexpands_total")
    cluster.restart(follower)
    cluster.wait_for(lambda: metric("kafka_server_replicamanager_underreplicatedpartitions") == 0,
                     60, "the follower back in the ISR")
    assert metric("kafka_server_replicamanager_isrexpands_total") >= expands_before + 1

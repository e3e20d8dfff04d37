"""Replicated-log semantics on three real nodes (127.0.0.N): what followers learn from their
leader besides records, and what a fetch with a replica id may read."""

import os
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CkTP
from kafka.protocol.consumer import FetchResponse

from odradek.protocol.records import build_batch, iter_batches
from odradek.storage.checkpoint import read_offsets
from tests.clients import create_topics, read_values
from tests.integration.test_fetch_produce import list_offsets
from tests.local_cluster import Cluster
from tests.rawclient import RawConnection, fetch_request, produce


@pytest.fixture
def cluster(tmp_path, request):
    c = Cluster(tmp_path, overrides=getattr(request, "param", None))
    yield c
    for n in c.nodes:
        if c.nodes[n].proc is not None and c.nodes[n].proc.poll() is None:
            os.kill(c.nodes[n].proc.pid, signal.SIGCONT)
    c.stop_all()
    for n in c.nodes:
        print(f"--- node {n} ---\n" + "".join(c.logs[n][-300:]))


def partition_md(cluster, topic):
    return cluster.admin().list_topics(timeout=10).topics[topic].partitions[0]


def low_watermark(cluster, topic) -> int:
    c = Consumer({"bootstrap.servers": cluster.live_bootstrap, "group.id": "unused"})
    try:
        return c.get_watermark_offsets(CkTP(topic, 0), timeout=10)[0]
    finally:
        c.close()


def checkpointed_log_start(data_dir, topic) -> int | None:
    return read_offsets(Path(data_dir) / "log-start-offset-checkpoint").get((topic, 0))


def test_deleted_records_stay_deleted_after_failover(cluster):
    """DeleteRecords answers once every live replica moved its log start offset (Kafka's
    DelayedDeleteRecords), and followers take the leader's log start offset from every fetch
    (maybeIncrementLogStartOffset): killing the leader right after the answer must not
    bring the deleted records back, and every replica's log start offset is the new one."""
    cluster.start()
    cluster.wait_formed()
    create_topics(cluster.live_bootstrap, ["trimmed"], 1, 3, {"min.insync.replicas": "2"})
    p = Producer({"bootstrap.servers": cluster.live_bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(100):
        p.produce("trimmed", b"%d" % i, partition=0)
        if i % 10 == 9:
            p.flush(30)  # ten batches at least
    assert p.flush(30) == 0
    cluster.wait_for(lambda: len(partition_md(cluster, "trimmed").isrs) == 3, 30, "an ISR of 3")
    leader = partition_md(cluster, "trimmed").leader
    admin = cluster.admin()  # outlives its futures
    (f,) = admin.delete_records([CkTP("trimmed", 0, 60)], operation_timeout=10).values()
    assert f.result(20).low_watermark == 60
    cluster.kill(leader)
    cluster.wait_for(lambda: partition_md(cluster, "trimmed").leader not in (-1, leader), 30,
                     "a new leader")
    # a tuple: truthy even for 0, so a wrong answer fails here rather than times out
    (low,) = cluster.wait_for(lambda: (low_watermark(cluster, "trimmed"),), 20, "the low watermark")
    assert low == 60
    # Offsets found in the log carry the epoch of the leader that wrote them (0), as
    # Kafka answers, not the new leader's; latest carries the new leader's.
    new_leader = cluster.nodes[partition_md(cluster, "trimmed").leader].bootstrap
    earliest, by_time, latest = (
        cluster.wait_for(lambda t=t: (r := list_offsets(new_leader, "trimmed", t)).error_code == 0
                         and r, 20, "an answer from the new leader")  # KIP-207 until its HW is known
        for t in (-2, 0, -1))
    assert (earliest.offset, earliest.leader_epoch) == (60, 0)
    assert (by_time.offset, by_time.leader_epoch) == (60, 0)
    assert latest.offset == 100 and latest.leader_epoch > 0
    assert read_values(cluster.live_bootstrap, "trimmed") == [b"%d" % i for i in range(60, 100)]
    for n in cluster.live():
        assert cluster.nodes[n].stop() == 0  # a clean stop writes the checkpoints
    for n, node in cluster.nodes.items():
        assert checkpointed_log_start(node.data_dir, "trimmed") == 60, f"node {n}"


# The paused follower must stay in the ISR (and registered) while the test fetches.
SLOW_TO_JUDGE = {"replica.lag.time.max.ms": "120000", "broker.session.timeout.ms": "120000"}


def fetch_as(bootstrap, topic, replica_id):
    req = fetch_request(topic, 0)
    req.replica_id = replica_id
    with RawConnection(bootstrap) as conn:
        part = conn.roundtrip(req, 11, FetchResponse).responses[0].partitions[0]
    assert part.error_code == 0
    offsets = [h.last_offset for _, h in iter_batches(part.records or b"", None)]
    return part.high_watermark, (offsets[-1] + 1 if offsets else 0)


@pytest.mark.parametrize("cluster", [SLOW_TO_JUDGE], indirect=True)
def test_fetch_with_a_non_replica_id_reads_only_up_to_the_high_watermark(cluster):
    """Only a registered broker in the partition's replica set reads past the high
    watermark; any other replica id (a broker that is no replica, an unknown id) is a
    consumer. The high watermark is held below the log end by pausing the follower; while
    it is paused, DeleteRecords also shows it waits for the follower no longer than asked."""
    cluster.start()
    cluster.wait_formed()
    create_topics(cluster.live_bootstrap, ["hw"], config={"min.insync.replicas": "1"}, rf=2)
    md = cluster.wait_for(lambda: (m := partition_md(cluster, "hw")).leader >= 0 and m, 20,
                          "the topic on every node")
    leader = md.leader
    (follower,) = set(md.replicas) - {leader}
    (outsider,) = set(cluster.nodes) - set(md.replicas)
    bootstrap = cluster.nodes[leader].bootstrap
    now = int(time.time() * 1000)

    def committed(i):
        return produce(bootstrap, "hw", {0: build_batch([(None, b"c%d" % i, (), now)])})[0].error_code == 0
    # the leader may not host the partition yet (UNKNOWN_TOPIC_OR_PARTITION writes nothing)
    cluster.wait_for(lambda: committed(0), 20, "the leader to take writes")
    assert committed(1) and committed(2)
    cluster.wait_for(lambda: fetch_as(bootstrap, "hw", -1) == (3, 3), 20, "the high watermark at 3")
    os.kill(cluster.nodes[follower].proc.pid, signal.SIGSTOP)
    for i in range(2):
        assert produce(bootstrap, "hw", {0: build_batch([(None, b"u%d" % i, (), now)])},
                       acks=1)[0].error_code == 0
    assert fetch_as(bootstrap, "hw", follower) == (3, 5)  # a replica reads to the log end
    assert fetch_as(bootstrap, "hw", -1) == (3, 3)
    assert fetch_as(bootstrap, "hw", outsider) == (3, 3)  # registered, not a replica
    assert fetch_as(bootstrap, "hw", 42) == (3, 3)  # no such broker
    # DeleteRecords waits for the paused (live, registered) follower only as long as the
    # request's timeout; once it fetches again, it takes the new log start offset.
    assert delete_records(bootstrap, "hw", 1, timeout_ms=1000) == (7, -1)  # REQUEST_TIMED_OUT
    os.kill(cluster.nodes[follower].proc.pid, signal.SIGCONT)
    assert delete_records(bootstrap, "hw", 1, timeout_ms=10000) == (0, 1)


def delete_records(bootstrap, topic, offset, timeout_ms):
    """(error code, low watermark) of a raw DeleteRecords on partition 0."""
    from kafka.protocol.admin import DeleteRecordsRequest as D
    from kafka.protocol.admin import DeleteRecordsResponse
    req = D(topics=[D.DeleteRecordsTopic(name=topic, partitions=[
        D.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=offset)])],
        timeout_ms=timeout_ms)
    with RawConnection(bootstrap) as conn:
        part = conn.roundtrip(req, 1, DeleteRecordsResponse).topics[0].partitions[0]
    return part.error_code, part.low_watermark

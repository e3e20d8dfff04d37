"""A consumer-protocol group (KIP-848) on three nodes: the coordinator is killed and its
__consumer_offsets partition is led elsewhere; the new coordinator replays the group's
records and the member carries on with its epoch and partitions (no rejoin)."""

import time

from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from odradek.protocol.errors import ErrorCode
from odradek.protocol.messages import ConsumerGroupHeartbeatRequest as H
from odradek.protocol.messages import ConsumerGroupHeartbeatResponse
from tests.clients import create_topics
from tests.local_cluster import Cluster
from tests.rawclient import RawConnection

GROUP = "g-failover"
RETRIABLE = (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE)


def _coordinator(bootstrap: str) -> int:
    with RawConnection(bootstrap) as conn:
        r = conn.roundtrip(FindCoordinatorRequest(key=GROUP, key_type=0), 3, FindCoordinatorResponse)
    return r.node_id if r.error_code == ErrorCode.NONE else -1


def _coordinator_among(bootstrap: str, nodes: set[int]) -> int | None:
    node = _coordinator(bootstrap)
    return node if node in nodes else None


def _heartbeat(cluster, node: int, request):
    with RawConnection(cluster.nodes[node].bootstrap) as conn:
        return conn.roundtrip(request, 1, ConsumerGroupHeartbeatResponse)


def _until(call, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while True:
        result = call()
        if result is not None or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_member_keeps_its_epoch_when_the_coordinator_is_killed(tmp_path):
    cluster = Cluster(tmp_path, overrides={"offsets.topic.num.partitions": "1",
                                           "group.consumer.session.timeout.ms": "45000"})
    try:
        cluster.start()
        cluster.wait_formed()
        create_topics(cluster.live_bootstrap, ["t"], 3, 3)
        coordinator = _until(lambda: _coordinator_among(cluster.nodes[1].bootstrap, set(cluster.nodes)))
        assert coordinator in cluster.nodes

        def join():
            r = _heartbeat(cluster, coordinator, H(group_id=GROUP, member_id="m1", member_epoch=0,
                                                   rebalance_timeout_ms=5000, subscribed_topic_names=["t"],
                                                   topic_partitions=[]))
            return None if r.error_code in RETRIABLE else r
        first = _until(join)
        assert first.error_code == ErrorCode.NONE and first.member_epoch >= 1
        owned = [H.TopicPartitions(topic_id=t.topic_id, partitions=t.partitions)
                 for t in first.assignment.topic_partitions]
        assert sorted(owned[0].partitions) == [0, 1, 2]
        cluster.kill(coordinator)
        survivors = [n for n in cluster.nodes if n != coordinator]
        new = _until(lambda: _coordinator_among(cluster.nodes[survivors[0]].bootstrap, set(survivors)))
        assert new in survivors

        def carry_on():
            r = _heartbeat(cluster, new, H(group_id=GROUP, member_id="m1", member_epoch=first.member_epoch,
                                           topic_partitions=owned))
            return None if r.error_code in RETRIABLE else r
        again = _until(carry_on)
        assert (again.error_code, again.member_epoch) == (ErrorCode.NONE, first.member_epoch)
    finally:
        cluster.stop_all()
        cluster.close()

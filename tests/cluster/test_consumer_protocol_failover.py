"""A consumer-protocol group (KIP-848) on three nodes: the coordinator is killed and its
__consumer_offsets partition is led elsewhere; the new coordinator replays the group's
records and the member carries on with its epoch and partitions (no rejoin). On the same
cluster (nodes in racks r1, r2, r3: broker.rack), members that give their rack get the
partitions whose replica is in it (rack-aware assignment)."""

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


def _members_get_the_partitions_of_their_rack(cluster, coordinator: int) -> None:
    """Three members in racks r1-r3, a topic with one replica per partition: once they have
    reconciled, each holds the partition led in its own rack."""
    from confluent_kafka.admin import AdminClient
    create_topics(cluster.live_bootstrap, ["racks"], 3, 1)
    admin = AdminClient({"bootstrap.servers": cluster.nodes[coordinator].bootstrap})

    def placed():  # once the node answering knows the topic
        found = {p.id: p.leader for p in admin.list_topics("racks", timeout=10).topics["racks"].partitions.values()}
        return found if len(found) == 3 and all(leader > 0 for leader in found.values()) else None
    leaders = _until(placed, 20)
    assert leaders is not None and sorted(leaders.values()) == [1, 2, 3]  # one partition on each node
    state: dict[str, tuple[int, list]] = {}

    def join(n: int):
        answer = _heartbeat(cluster, coordinator, H(
            group_id="g-racks", member_id=f"m{n}", member_epoch=0, rack_id=f"r{n}", rebalance_timeout_ms=5000,
            subscribed_topic_names=["racks"], topic_partitions=[]))
        return None if answer.error_code in RETRIABLE else answer
    for n in (1, 2, 3):
        r = _until(lambda n=n: join(n))
        assert r.error_code == ErrorCode.NONE
        state[f"m{n}"] = (r.member_epoch, [(t.topic_id, list(t.partitions)) for t in r.assignment.topic_partitions])
    for _ in range(20):  # heartbeats with what each holds until all are in their rack
        for member, (epoch, owned) in list(state.items()):
            r = _heartbeat(cluster, coordinator, H(group_id="g-racks", member_id=member, member_epoch=epoch,
                                                   topic_partitions=[H.TopicPartitions(topic_id=t, partitions=ps)
                                                                     for t, ps in owned]))
            assert r.error_code == ErrorCode.NONE, r
            if r.assignment is not None:
                owned = [(t.topic_id, list(t.partitions)) for t in r.assignment.topic_partitions]
            state[member] = (r.member_epoch, owned)
        held = {m: sorted(p for _, ps in owned for p in ps) for m, (_, owned) in state.items()}
        if all(held[f"m{leaders[p]}"] == [p] for p in leaders):
            return
        time.sleep(0.2)
    raise AssertionError(f"members not in their racks: {held}, leaders {leaders}")


def test_member_keeps_its_epoch_when_the_coordinator_is_killed(tmp_path):
    cluster = Cluster(tmp_path, overrides={"offsets.topic.num.partitions": "1",
                                           "group.consumer.session.timeout.ms": "45000"})
    for n, node in cluster.nodes.items():
        node.overrides["broker.rack"] = f"r{n}"
    try:
        cluster.start()
        cluster.wait_formed()
        create_topics(cluster.live_bootstrap, ["t"], 3, 3)
        coordinator = _until(lambda: _coordinator_among(cluster.nodes[1].bootstrap, set(cluster.nodes)))
        assert coordinator in cluster.nodes
        _members_get_the_partitions_of_their_rack(cluster, coordinator)

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

"""A share group on three nodes: the node that is both its group coordinator and the
leader of its share partition is killed. The new leader loads the share partition's state
from ``__share_group_state`` (replicated, its own partition possibly moving too): what was
acknowledged is never handed out again, what was acquired and not acknowledged is, its
delivery count kept. The new coordinator replays the group's records from
``__consumer_offsets``: its epoch and members survive, and a member goes on heartbeating
with its epoch (before, the group was lost and its members had to join again). Then the
group's offsets are altered through coordinators on other nodes."""

import time

from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from odradek.protocol.errors import ErrorCode
from odradek.protocol.messages import ShareGroupDescribeRequest, ShareGroupDescribeResponse
from odradek.protocol.records import build_batch
from tests.integration.test_share_groups import (
    ACCEPT,
    acquired,
    alter_offsets,
    heartbeat,
    join,
    set_group_configs,
    share_fetch,
)
from tests.local_cluster import Cluster
from tests.rawclient import RawConnection, produce

GROUP, TOPIC = "sg-failover", "sq"
C = CreateTopicsRequest


def _until(call, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while True:
        result = call()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def _leader(bootstrap: str, alive: set[int]):
    """(topic id, leader) of the topic's partition 0 if a live node leads it."""
    with RawConnection(bootstrap) as conn:
        m = conn.roundtrip(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=TOPIC, topic_id=None)],
                                           allow_auto_topic_creation=False), 12, MetadataResponse)
    p = m.topics[0].partitions[0] if m.topics[0].partitions else None
    return (m.topics[0].topic_id, p.leader_id) if p is not None and p.leader_id in alive else None


def _coordinator(bootstrap: str, alive: set[int]) -> int | None:
    with RawConnection(bootstrap) as conn:
        r = conn.roundtrip(FindCoordinatorRequest(key=GROUP, key_type=0), 3, FindCoordinatorResponse)
    return r.node_id if r.error_code == 0 and r.node_id in alive else None


def _create_led_by(bootstrap: str, node: int, nodes: list[int]) -> None:
    """The topic, one partition on all three nodes, ``node`` first: its preferred leader."""
    replicas = [node] + [n for n in nodes if n != node]
    with RawConnection(bootstrap) as conn:
        r = conn.roundtrip(C(topics=[C.CreatableTopic(
            name=TOPIC, num_partitions=-1, replication_factor=-1, configs=[], assignments=[
                C.CreatableTopic.CreatableReplicaAssignment(partition_index=0, broker_ids=replicas)])],
            timeout_ms=30000, validate_only=False), 4, CreateTopicsResponse)
    assert r.topics[0].error_code == 0, r


def test_a_share_group_survives_the_kill_of_its_coordinator_and_partition_leader(tmp_path):
    cluster = Cluster(tmp_path, overrides={"offsets.topic.num.partitions": "1",
                                           "share.coordinator.state.topic.num.partitions": "1"})
    try:
        cluster.start()
        cluster.wait_formed()
        alive = set(cluster.nodes)
        coordinator = _until(lambda: _coordinator(cluster.nodes[1].bootstrap, alive))
        _create_led_by(cluster.nodes[1].bootstrap, coordinator, sorted(alive))
        topic_id, leader = _until(lambda: _leader(cluster.nodes[1].bootstrap, alive))
        assert leader == coordinator
        at_leader = cluster.nodes[leader].bootstrap
        for i in range(3):  # offsets 2i, 2i+1 (the leader may take a moment to have the replica)
            batch = build_batch([(None, f"{i}a".encode()), (None, f"{i}b".encode())])
            assert _until(lambda b=batch: produce(at_leader, TOPIC, {0: b})[0].error_code == 0)
        with RawConnection(at_leader) as c:
            set_group_configs(c, GROUP, share_auto_offset_reset="earliest")
            join(c, GROUP, "m", [TOPIC])
            assert join(c, GROUP, "m2", [TOPIC]).member_epoch == 2
            assert heartbeat(c, GROUP, "m", 1).member_epoch == 2
            epoch = 0

            def first_fetch():  # (__share_group_state is created on the first share fetch)
                nonlocal epoch
                epoch += 1
                return acquired(share_fetch(c, GROUP, "m", epoch - 1, topic_id, max_records=2, max_wait_ms=1000))
            assert _until(first_fetch) == [(0, 1, 1)]
            r = share_fetch(c, GROUP, "m", epoch, topic_id, acks=[(0, 1, ACCEPT)], max_records=2)
            assert r.responses[0].partitions[0].acknowledge_error_code == 0 and acquired(r) == [(2, 3, 1)]

        cluster.kill(leader)
        alive.discard(leader)
        survivor = cluster.nodes[min(alive)].bootstrap
        _, new_leader = _until(lambda: _leader(survivor, alive))
        coordinator = _until(lambda: _coordinator(survivor, alive))
        with RawConnection(cluster.nodes[coordinator].bootstrap) as c:
            waiting = (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NOT_COORDINATOR,
                       ErrorCode.COORDINATOR_NOT_AVAILABLE)
            answers = []
            _until(lambda: answers.append(heartbeat(c, GROUP, "m", 2)) or answers[-1].error_code not in waiting)
            r = answers[-1]
            assert (r.error_code, r.member_epoch) == (0, 2), r  # the new coordinator knows m at epoch 2
            d = c.roundtrip(ShareGroupDescribeRequest(group_ids=[GROUP], include_authorized_operations=False),
                            1, ShareGroupDescribeResponse)
            (g,) = d.groups
            assert (g.error_code, g.group_epoch) == (0, 2)
            assert sorted((m.member_id, m.member_epoch) for m in g.members) == [("m", 2), ("m2", 2)]
            assert join(c, GROUP, "m3", [TOPIC]).member_epoch == 3  # the epoch goes on
        with RawConnection(cluster.nodes[new_leader].bootstrap) as c:
            epoch, got = 0, []

            def fetch():  # (the new leader's high watermark may reach 6 a little later)
                nonlocal epoch
                got.extend(acquired(share_fetch(c, GROUP, "m", epoch, topic_id, max_records=10,
                                                max_wait_ms=1000)))
                epoch += 1
                return sum(b - a + 1 for a, b, _ in got) >= 4
            _until(fetch)
            assert got == [(2, 3, 2), (4, 5, 1)]

        # AlterShareGroupOffsets at the group's coordinator, the share state's coordinator and
        # the partition's leader possibly other nodes: the leader drops the state it holds
        # (acquired 2-5) and the next fetch starts at the new start offset, nothing in flight.
        with RawConnection(cluster.nodes[coordinator].bootstrap) as c:
            assert heartbeat(c, GROUP, "m2", -1).member_epoch == -1
            assert heartbeat(c, GROUP, "m3", -1).member_epoch == -1
            heartbeat(c, GROUP, "m", -1)  # still a member, unless the group's coordinator moved
            r = alter_offsets(c, GROUP, {TOPIC: {0: 2}})
            assert r.error_code == 0 and r.responses[0].partitions[0].error_code == 0, r
            join(c, GROUP, "m2", [TOPIC])
        with RawConnection(cluster.nodes[new_leader].bootstrap) as c:
            r = share_fetch(c, GROUP, "m2", 0, topic_id, max_records=10, max_wait_ms=2000)
            assert acquired(r) == [(2, 5, 1)]
    finally:
        cluster.stop_all()
        cluster.close()

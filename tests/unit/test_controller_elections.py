"""The controller's side of elections (no processes: a metadata log in memory): what
ElectLeaders and the rebalancer commit, and what they answer; fencing that outlives a
lost commit."""

import asyncio

from odradek.protocol.errors import ErrorCode
from odradek.replication.controller import Controller, NotController
from odradek.replication.metadata import (
    BrokerFencingRecord,
    MetadataImage,
    PartitionRecord,
    RegisterBrokerRecord,
    TopicRecord,
)


class MemoryLog:
    """The active controller's metadata log, committing at once."""
    is_active = True
    active_term = 1
    leader_id = 1
    peers: dict = {}

    def __init__(self, controller):
        self.controller, self.offset, self.appended = controller, -1, []

    async def append(self, records):
        self.appended.append(records)
        self.offset += len(records)
        self.controller.apply_committed(records, self.offset)


def cluster(partitions, fenced=()) -> Controller:
    """Brokers 1-3 (``fenced`` among them) and topic "t" with (replicas, isr, leader) per partition."""
    c = Controller(MetadataImage(), num_partitions=1, default_replication_factor=1,
                   validate_topic_configs=lambda configs: None)
    records = [RegisterBrokerRecord(n, {"PLAINTEXT": ["127.0.0.1", 9092 + n]}) for n in (1, 2, 3)]
    records += [BrokerFencingRecord(n, True) for n in fenced]
    records.append(TopicRecord("t", "tid"))
    records += [PartitionRecord("tid", i, r, isr, leader, 5) for i, (r, isr, leader) in enumerate(partitions)]
    c.apply_committed(records, len(records) - 1)
    c.metadata_log = MemoryLog(c)
    return c


async def test_unclean_election_commits_the_live_replica_as_the_only_isr_member():
    c = cluster([([1, 2, 3], [1], -1)], fenced=[1])
    assert await c.elect_leaders(1, [["t", 0]]) == [["t", [[0, 0, None]]]]
    p = c.image.topics["t"].partitions[0]
    assert (p.leader, p.isr, p.leader_epoch) == (2, [2], 6)


async def test_all_partitions_leaves_out_those_that_need_no_election():
    c = cluster([([1, 2, 3], [1, 2, 3], 1), ([2, 3, 1], [2, 3], 3), ([3, 1, 2], [1, 2], 1)])
    results = await c.elect_leaders(0, None)
    assert results == [["t", [[1, 0, None], [2, int(ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE),
                                             "The preferred leader was not available."]]]]
    assert [p.leader for p in c.image.topics["t"].partitions.values()] == [1, 2, 1]


async def test_nothing_to_elect_commits_nothing():
    c = cluster([([1, 2, 3], [1, 2, 3], 1)])
    await c.elect_leaders(0, [["t", 0], ["t", 4], ["u", 0]])
    assert c.metadata_log.appended == []


async def test_rebalance_gives_leadership_back_to_a_preferred_replica_in_the_isr():
    c = cluster([([1, 2, 3], [1, 2, 3], 2), ([2, 3, 1], [2, 3, 1], 2), ([3, 1, 2], [1, 2], 1)])
    records = c._rebalance_records(10)
    assert [(r.partition, r.leader) for r in records] == [(0, 1)]  # 3 is not in partition 2's ISR


async def test_fencing_goes_on_after_a_commit_lost_with_the_leadership():
    """A fence whose commit fails (the controller lost its quorum and stepped down, then
    won again) must not end the fencing loop: a broker that died then would never be
    fenced, and its partitions would keep a dead leader (seen on three nodes)."""
    c = cluster([([1, 2, 3], [1, 2, 3], 1)])
    c.broker_session_timeout_ms = 40
    log, append = c.metadata_log, c.metadata_log.append
    failures = [NotController(None)]

    async def lose_first(records):
        if failures:
            raise failures.pop()
        await append(records)
    log.append = lose_first
    task = asyncio.get_running_loop().create_task(c.run_fencing())
    try:
        for _ in range(200):
            if all(b.fenced for b in c.image.brokers.values()):
                break
            await asyncio.sleep(0.01)
        assert not task.done() and all(b.fenced for b in c.image.brokers.values())
    finally:
        task.cancel()


async def test_a_controller_elected_again_gives_every_broker_a_fresh_session():
    """Heartbeats in the terms a controller did not lead went to another controller, so
    the times it heard them itself say nothing once it leads again (Kafka's
    BrokerHeartbeatManager starts afresh on activation). Seen in CI: the controller was
    paused past the session timeout, lost and won the quorum, and at once fenced a live
    broker that led a partition: the partition moved to an ISR of one and acks=all
    producers got NOT_ENOUGH_REPLICAS."""
    c = cluster([([1, 2, 3], [1, 2, 3], 3)])
    c.broker_session_timeout_ms = 400
    log = c.metadata_log
    async def confirmed():
        return None
    log.confirm_leadership = confirmed
    for node_id in (1, 2, 3):
        await c.heartbeat(node_id)
    await asyncio.sleep(0.5)  # paused past the session timeout; another controller led meanwhile
    log.active_term = 3
    task = asyncio.get_running_loop().create_task(c.run_fencing())
    try:
        await asyncio.sleep(0.25)
        assert not any(b.fenced for b in c.image.brokers.values())
        for _ in range(100):  # still fenced once silent for a session in the new term
            if all(b.fenced for b in c.image.brokers.values()):
                break
            await asyncio.sleep(0.02)
        assert all(b.fenced for b in c.image.brokers.values())
    finally:
        task.cancel()

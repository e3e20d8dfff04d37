"""ReplicaManager: when an acks=-1 produce may be acknowledged, around a change of leader.

No network: one node's ReplicaManager over a metadata image built by hand, its role
changed by applying metadata records, the follower's side driven as its
follow loop would (truncate, append the new leader's batches, take its high
watermark).
"""

import asyncio

import pytest

from odradek.broker.config import BrokerConfig
from odradek.broker.replica_manager import ReplicaManager
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import build_batch
from odradek.replication.metadata import (
    TOPIC,
    ConfigRecord,
    MetadataImage,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
)
from odradek.replication.partition import ReplicatedPartition

TOPIC_ID = "6ab0c0de-0000-4000-8000-000000000001"


def _image() -> MetadataImage:
    image = MetadataImage()
    for node in (1, 2):
        image.apply(RegisterBrokerRecord(node, {"PLAINTEXT": ["127.0.0.1", 1]}))
    image.apply(TopicRecord("t", TOPIC_ID))
    image.apply(PartitionRecord(TOPIC_ID, 0, replicas=[1, 2], isr=[1, 2], leader=1))
    return image


def _batch(values, producer_id=-1, base_sequence=-1, base_offset=0, epoch=-1) -> bytes:
    return build_batch([(None, v, [], 0) for v in values], base_offset=base_offset,
                       partition_leader_epoch=epoch, producer_id=producer_id,
                       producer_epoch=0 if producer_id >= 0 else -1, base_sequence=base_sequence)


@pytest.fixture
async def node1(tmp_path):
    replicas = ReplicaManager(BrokerConfig({"node.id": 1}), _image(), 1, str(tmp_path))
    replicas.following_image = True
    replicas.sync_with_image()
    yield replicas
    for fetcher in replicas.fetchers.values():
        fetcher.close()
    replicas.log_manager.close()


async def test_acks_all_produce_fails_when_leadership_moves_before_its_wait_starts(node1):
    """The produce handler appends, then waits for the high watermark in a task that starts a
    loop iteration or two later. If this node stops leading in between (a metadata commit
    handled first: likely on a loaded machine), the wait must fail with NOT_LEADER_OR_FOLLOWER,
    as it would had it started in time. Before the fix it registered itself late, on a
    partition now following, and the follower's high watermark completed it once the new
    leader's log passed that offset: an acknowledgement, with an offset, of a batch the
    truncation had dropped (lost writes, and the next batch of that idempotent producer was
    then OUT_OF_ORDER_SEQUENCE_NUMBER at the new leader, fatal for librdkafka)."""
    p, result = node1.append_records("t", 0, _batch([b"ours"], producer_id=7, base_sequence=0),
                                     required_acks=-1)
    assert not node1.is_committed(p, result)  # follower 2 has not fetched it
    wait = node1.wait_committed(p, result)  # what the handler does; awaited later

    node1.image.apply(PartitionChangeRecord(TOPIC_ID, 0, leader=2, isr=[2]))
    node1.sync_with_image()  # node 2 leads (epoch 1) without our batch
    assert p.isr_state is None
    # As the follow loop does: truncate where the new leader says epoch 0 ended, then take its
    # batches and its high watermark, which passes the offset our batch had.
    await node1.truncate_follower("t", 0, 0, 0, 0)
    node1.append_as_follower("t", 0, _batch([b"theirs", b"more"], epoch=1), 2)
    assert p.log.high_watermark > result.last_offset

    with pytest.raises(KafkaError) as failed:
        await asyncio.wait_for(wait, 1)
    assert failed.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER


async def test_a_follower_that_restarts_at_the_leaders_log_start_forgets_its_producers(node1):
    """A follower whose log ends below the leader's log start starts over there, empty
    (OFFSET_OUT_OF_RANGE). Its producer state must start over too, snapshots included:
    a snapshot kept from before restored sequences older than the batches the leader had
    deleted, and once this node led again the producer's next batch was refused with
    OUT_OF_ORDER_SEQUENCE_NUMBER, where Kafka accepts it from a producer it has no state for."""
    p, _ = node1.append_records("t", 0, _batch([b"a"], producer_id=7, base_sequence=0))
    p.producer_state.take_snapshot(p.log.log_end_offset)  # as a roll or a clean stop does

    node1.image.apply(PartitionChangeRecord(TOPIC_ID, 0, leader=2, isr=[2]))
    node1.sync_with_image()
    # Meanwhile producer 7 wrote sequences 1..4 at node 2, whose retention then deleted
    # everything below offset 100.
    await node1.handle_out_of_range("t", 0, 100)
    assert (p.log.log_start_offset, p.log.log_end_offset) == (100, 100)

    node1.image.apply(PartitionChangeRecord(TOPIC_ID, 0, leader=1, isr=[1]))
    node1.sync_with_image()
    p, result = node1.append_records("t", 0, _batch([b"b"], producer_id=7, base_sequence=5))
    assert result.base_offset == 100


async def test_acks_all_write_is_refused_if_the_isr_fell_below_min_insync_before_it_committed(tmp_path):
    """min.insync.replicas=2 promises two copies of every acks=-1 write. A write appended
    while the ISR had two members, whose follower then fell out, becomes committed when the
    controller shrinks the ISR to the leader alone: its high watermark passes the write
    with one copy. Kafka's DelayedProduce answers NOT_ENOUGH_REPLICAS_AFTER_APPEND then
    (the batch stays in the log; the producer retries or gives up); before the fix this
    acknowledged it."""
    image = _image()
    image.apply(ConfigRecord(TOPIC, "t", "min.insync.replicas", "2"))
    replicas = ReplicaManager(BrokerConfig({"node.id": 1}), image, 1, str(tmp_path))
    replicas.following_image = True
    replicas.sync_with_image()
    try:
        p, result = replicas.append_records("t", 0, _batch([b"one copy"]), required_acks=-1)
        wait = replicas.wait_committed(p, result)
        image.apply(PartitionChangeRecord(TOPIC_ID, 0, isr=[1]))  # follower 2 fell out
        replicas.sync_with_image()
        assert p.log.high_watermark > result.last_offset
        with pytest.raises(KafkaError) as failed:
            await asyncio.wait_for(wait, 1)
        assert failed.value.code == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    finally:
        replicas.log_manager.close()


async def test_a_follower_forgets_completed_transactions_below_the_high_watermark(node1):
    """Markers a follower appends complete transactions that hold the last stable offset
    back only until the high watermark passes them: the follower's high watermark must
    release them, or a follower (which serves no read_committed consumer to do it) keeps
    every completed transaction of the partition in memory."""
    from odradek.protocol.records import build_marker_batch
    node1.image.apply(PartitionChangeRecord(TOPIC_ID, 0, leader=2, isr=[2]))
    node1.sync_with_image()
    txn = build_batch([(None, b"v", [], 0)], producer_id=7, producer_epoch=0, base_sequence=0,
                      transactional=True, partition_leader_epoch=1)
    marker = bytearray(build_marker_batch(7, 0, commit=False, coordinator_epoch=0, timestamp=0))
    marker[0:8] = (1).to_bytes(8, "big")  # the leader's offsets: the marker follows the record
    node1.append_as_follower("t", 0, txn + bytes(marker), 1)
    p = node1.partitions[("t", 0)]
    assert len(p.producer_state.unreplicated) == 1  # the marker (offset 1) is above the HW
    assert [e.first_offset for e in p.txn_index.entries] == [0]  # aborted: indexed
    node1.append_as_follower("t", 0, b"", 2)
    assert not p.producer_state.unreplicated and p.last_stable_offset == 2


# Metadata commits reach the partitions they touch, not every partition of the cluster.

U_ID = "6ab0c0de-0000-4000-8000-000000000002"


@pytest.fixture
async def node2(tmp_path, monkeypatch):
    """Node 2 follows t-0 (led by 1) and leads u-0 and u-1; every call of a partition's
    state machine with the image's state is counted, by partition."""
    image = _image()
    image.apply(TopicRecord("u", U_ID))
    for index in (0, 1):
        image.apply(PartitionRecord(U_ID, index, replicas=[2, 1], isr=[2, 1], leader=2))
    replicas = ReplicaManager(BrokerConfig({"node.id": 2}), image, 2, str(tmp_path))
    replicas.following_image = True
    replicas.sync_with_image()
    synced = []
    on_metadata = ReplicatedPartition.on_metadata

    def counted(self, p, *args):
        synced.append((p.topic_id, p.partition))
        return on_metadata(self, p, *args)
    monkeypatch.setattr(ReplicatedPartition, "on_metadata", counted)
    replicas.synced = synced
    yield replicas
    for fetcher in replicas.fetchers.values():
        fetcher.close()
    replicas.log_manager.close()


def _commit(replicas: ReplicaManager, *records) -> None:
    for r in records:
        replicas.image.apply(r)
    replicas.on_metadata(list(records))


async def test_a_metadata_commit_reaches_only_the_partitions_it_names(node2):
    """Before, every commit walked every partition of the image (and every one hosted here)."""
    _commit(node2, PartitionChangeRecord(U_ID, 1, isr=[2]))
    assert node2.synced == [(U_ID, 1)]
    assert node2.partitions[("u", 1)].isr_state.isr == [2]
    _commit(node2, ConfigRecord(TOPIC, "u", "retention.ms", "1000"), ProducerIdsRecord(1000))
    assert node2.synced == [(U_ID, 1)]
    assert node2.partitions[("u", 0)].log.config.retention_ms == 1000
    # A broker that registers again (its endpoints may have moved): what is followed from it.
    _commit(node2, RegisterBrokerRecord(1, {"PLAINTEXT": ["127.0.0.1", 2]}))
    assert node2.synced[1:] == [(TOPIC_ID, 0)]
    assert node2.fetchers[1].peer.port == 2


async def test_partitions_leave_with_their_topic_or_a_snapshot_without_it(node2):
    _commit(node2, RemoveTopicRecord(U_ID))
    assert set(node2.partitions) == {("t", 0)}
    assert node2.log_manager.get_log("u", 0) is None
    # A snapshot restored from the leader (a follower far behind) lacks topic t: it goes too.
    records = [r for r in node2.image.to_records() if not isinstance(r, (TopicRecord, PartitionRecord))]
    node2.image.reset(records, 10)
    node2.on_metadata(records)
    assert not node2.partitions and node2.log_manager.get_log("t", 0) is None


async def test_a_partition_that_could_not_be_opened_is_tried_again_at_the_next_commit(node2, monkeypatch):
    get_or_create_log = node2.log_manager.get_or_create_log
    refusals = []

    def out_of_descriptors(*args):
        if not refusals:
            refusals.append(args)
            raise OSError(24, "Too many open files")
        return get_or_create_log(*args)
    monkeypatch.setattr(node2.log_manager, "get_or_create_log", out_of_descriptors)
    _commit(node2, PartitionRecord(U_ID, 2, replicas=[2, 1], isr=[2, 1], leader=2))
    assert refusals and ("u", 2) not in node2.partitions
    _commit(node2, ProducerIdsRecord(2000))  # any commit: the disk may allow it now
    assert node2.partitions[("u", 2)].isr_state is not None

"""The records of ``__share_group_state``: a snapshot's key and value read back as written;
the coordinator key (group:topicId:partition, the topic id dashed: Odradek's placement);
Kafka's share-partition keys as FindCoordinator reads them; which writes may make a state."""

import uuid

import pytest

from odradek.broker.groups.offsets_topic import RecordFormatError
from odradek.broker.share.coordinator import (
    ShareState,
    coordinator_key,
    parse_record_key,
    parse_record_value,
    parse_share_partition_key,
    record_key,
    record_value,
)
from odradek.protocol.errors import ErrorCode


def test_a_snapshot_reads_back():
    topic_id = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    assert coordinator_key("g", topic_id, 3) == "g:1b4e28ba-2fa1-11d2-883f-0016d3cca427:3"
    assert parse_record_key(record_key("g", topic_id, 3)) == coordinator_key("g", topic_id, 3)
    state = ShareState(4, 10, ((10, 11, 2, 1), (12, 12, 0, 3)))
    assert parse_record_value(record_value(state)) == state


def test_unknown_versions_and_bad_values_are_refused():
    with pytest.raises(RecordFormatError):
        parse_record_key(b"\x00\x01\x00\x01g")
    with pytest.raises(RecordFormatError):
        parse_record_value(b"\x00\x00{}")
    with pytest.raises(RecordFormatError):
        parse_record_value(b"\x00\x07{}")


def test_a_value_written_before_state_epochs_reads_as_epoch_zero():
    assert parse_record_value(b'\x00\x00{"leader_epoch":2,"start_offset":5,"batches":[]}') == ShareState(2, 5, (), 0)


def test_an_altered_start_offset_fences_the_state_a_leader_still_holds():
    """AlterShareGroupOffsets writes the next state epoch: a leader's write of the state it
    loaded before is FENCED_STATE_EPOCH whatever its leader epoch; within one state epoch
    an older leader epoch is FENCED_LEADER_EPOCH."""
    held = ShareState(3, 10, ((10, 11, 2, 1),), 0)
    altered = held.initialized_at(4)
    assert altered == ShareState(3, 4, (), 1)
    assert altered.fences(held) == ErrorCode.FENCED_STATE_EPOCH
    assert altered.fences(ShareState(9, 12, (), 0)) == ErrorCode.FENCED_STATE_EPOCH
    assert altered.fences(ShareState(2, 4, (), 1)) == ErrorCode.FENCED_LEADER_EPOCH
    assert altered.fences(ShareState(3, 6, (), 1)) == ErrorCode.NONE  # the leader, reloaded
    assert held.fences(altered) == ErrorCode.NONE
    assert parse_record_value(record_value(altered)) == altered


TOPIC_ID = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
KAFKA_TOPIC_ID = "G04oui-hEdKIPwAW08ykJw"  # Kafka's Uuid.toString of it (url-safe base64)


@pytest.mark.parametrize(("key", "parsed"), [
    (f"g:{KAFKA_TOPIC_ID}:3", ("g", TOPIC_ID, 3)),
    (f"g:{KAFKA_TOPIC_ID}==:3", ("g", TOPIC_ID, 3)),  # padded
    (f"a:b::{KAFKA_TOPIC_ID}:-1", ("a:b:", TOPIC_ID, -1)),  # the group id keeps its colons
    (f"g:{KAFKA_TOPIC_ID}:+7::", ("g", TOPIC_ID, 7)),  # Java's split drops trailing empty fields
    (f"g:{KAFKA_TOPIC_ID}:\u0663", ("g", TOPIC_ID, 3)),  # Integer.parseInt takes any decimal digit
])
def test_a_share_partition_key_reads_as_kafkas(key, parsed):
    """FindCoordinator key type 2 as Kafka 4.4's SharePartitionKey.getInstance reads it (the
    oracle's find_coordinator_share_keys case checks the answers against Kafka's)."""
    assert parse_share_partition_key(key) == parsed
    assert coordinator_key(*parse_share_partition_key(key)) == coordinator_key(*parsed)


@pytest.mark.parametrize("key", [
    "", "g", "::::", f"g:{KAFKA_TOPIC_ID}", f" \t:{KAFKA_TOPIC_ID}:0", f"g:{TOPIC_ID}:0",
    f"g:{KAFKA_TOPIC_ID[:21]}+:0", f"g:{KAFKA_TOPIC_ID}=:0", f"g:{KAFKA_TOPIC_ID}:x", f"g:{KAFKA_TOPIC_ID}: 1",
    f"g:{KAFKA_TOPIC_ID}:2147483648", f"g:{KAFKA_TOPIC_ID}:1_0", f"g:{KAFKA_TOPIC_ID}:" + "9" * 5000,
])
def test_a_malformed_share_partition_key_is_refused(key):
    with pytest.raises(ValueError):
        parse_share_partition_key(key)


async def test_only_a_creating_write_makes_a_state():
    """A leader's write to a key without a state (deleted by DeleteShareGroupOffsets or
    DeleteGroups while the leader missed its drop request) is FENCED_STATE_EPOCH, so the
    leader drops what it holds and loads again instead of bringing the state back; a
    leader's first write of a state it read as absent, and AlterShareGroupOffsets, create."""
    from odradek.broker.groups.coordinator import LedPartition
    from odradek.broker.share.coordinator import ShareCoordinator

    class Led:
        index, leader_epoch = 0, 0

    coordinator = ShareCoordinator.__new__(ShareCoordinator)
    coordinator.num_partitions, coordinator.states = 1, {}
    p = coordinator.PARTITION(Led())
    assert isinstance(p, LedPartition)
    p.loading = False
    coordinator.partitions = {0: p}
    written = []

    async def write_committed(p, key, value, timestamp_ms):
        written.append(value)
        return ErrorCode.NONE
    coordinator._write_committed = write_committed
    state = ShareState(1, 0, ())
    assert await coordinator.write_local("g", TOPIC_ID, 0, state) == ErrorCode.FENCED_STATE_EPOCH
    assert written == [] and coordinator.states == {}
    assert await coordinator.write_local("g", TOPIC_ID, 0, state, create=True) == ErrorCode.NONE
    assert await coordinator.write_local("g", TOPIC_ID, 0, ShareState(1, 2, ())) == ErrorCode.NONE
    assert await coordinator.delete_local("g", TOPIC_ID, 0) == ErrorCode.NONE
    assert await coordinator.write_local("g", TOPIC_ID, 0, ShareState(1, 3, ())) == ErrorCode.FENCED_STATE_EPOCH
    assert await coordinator.initialize_local("g", TOPIC_ID, 0, 5) == ErrorCode.NONE
    assert coordinator.states[coordinator_key("g", TOPIC_ID, 0)].start_offset == 5
    assert len(written) == 4 and written[2] is None  # two writes, the tombstone, the alter

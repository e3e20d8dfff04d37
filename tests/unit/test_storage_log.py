"""storage.Log and LogManager on real files: append, read, roll, retention,
truncation, DeleteRecords, time index, KIP-74, group commit, faults."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from odradek.protocol.records import CorruptRecordError, build_batch, iter_batches, parse_header
from odradek.storage import (
    ConfigError,
    FaultyIO,
    KafkaStorageError,
    Log,
    LogConfig,
    LogManager,
    OffsetOutOfRangeError,
)
from odradek.storage.checkpoint import read_checkpoint
from odradek.storage.config import LOG_CONFIG_DEFS


class Clock:
    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def batch(i: int, records: int = 1, size: int = 100, ts: int | None = None) -> bytes:
    ts = 1_700_000_000_000 + i if ts is None else ts
    value = (b"%d:" % i).ljust(size, b"x")
    return build_batch([(b"k%d" % i, value, (), ts)] * records)


def unstamp(buf: bytes) -> bytes:
    """Batches with base offset and leader epoch zeroed, for comparing with the input."""
    out = bytearray(buf)
    for pos, _ in iter_batches(out, None):
        out[pos : pos + 8] = bytes(8)
        out[pos + 12 : pos + 16] = b"\xff\xff\xff\xff"
    return bytes(out)


def read_all(lg: Log, start: int | None = None) -> bytes:
    with lg.read(lg.log_start_offset if start is None else start, 1 << 30) as result:
        return result.read_bytes()


def make_log(tmp_path, clock=None, io=None, **config) -> Log:
    cfg = LogConfig.from_mapping({k.replace("_", "."): v for k, v in config.items()})
    return Log(tmp_path / "t-0", cfg, topic="t", partition=0, io=io,
               clock_ms=clock or Clock(), needs_recovery=False)


def test_append_assigns_consecutive_offsets_and_reads_back(tmp_path) -> None:
    lg = make_log(tmp_path)
    sent = [batch(i, records=3) for i in range(20)]
    results = [lg.append(b, leader_epoch=5) for b in sent]
    assert [(r.base_offset, r.last_offset, r.record_count) for r in results[:2]] == [(0, 2, 3), (3, 5, 3)]
    assert lg.log_end_offset == 60
    data = read_all(lg)
    assert unstamp(data) == b"".join(sent)
    headers = [h for _, h in iter_batches(data)]
    assert [h.base_offset for h in headers] == list(range(0, 60, 3))
    assert {h.partition_leader_epoch for h in headers} == {5}
    with lg.read(31, 1 << 20) as result:  # inside batch 30..32: served from its start
        assert parse_header(result.read_bytes()).base_offset == 30
    lg.close()


def test_several_batches_in_one_append_written_once(tmp_path) -> None:
    io = FaultyIO()
    lg = make_log(tmp_path, io=io)
    result = lg.append(batch(0, 2) + batch(1, 3) + batch(2, 1), leader_epoch=0)
    assert (result.base_offset, result.last_offset, result.record_count) == (0, 5, 6)
    assert io.write_calls == 1
    assert [h.base_offset for _, h in iter_batches(read_all(lg))] == [0, 2, 5]


def test_invalid_batch_anywhere_writes_nothing(tmp_path) -> None:
    lg = make_log(tmp_path)
    lg.append(batch(0), leader_epoch=0)
    bad = bytearray(batch(2))
    bad[40] ^= 1
    with pytest.raises(CorruptRecordError):
        lg.append(batch(1) + bytes(bad), leader_epoch=0)
    assert lg.log_end_offset == 1
    assert unstamp(read_all(lg)) == batch(0)


def test_check_hook_sees_every_batch_and_can_abort(tmp_path) -> None:
    lg = make_log(tmp_path)
    seen = []

    def refuse_third(header) -> None:
        seen.append(header.records_count)
        if len(seen) == 3:
            raise ValueError("policy")

    with pytest.raises(ValueError):
        lg.append(batch(0, 1) + batch(1, 2) + batch(2, 3), leader_epoch=0, check=refuse_third)
    assert seen == [1, 2, 3] and lg.log_end_offset == 0 and read_all(lg) == b""


def test_log_append_time(tmp_path) -> None:
    clock = Clock(1_800_000_000_000)
    lg = make_log(tmp_path, clock, message_timestamp_type="LogAppendTime")
    result = lg.append(batch(0, 2), leader_epoch=0)
    assert result.log_append_time_ms == clock.now
    header = parse_header(read_all(lg))
    assert header.timestamp_type == 1 and header.max_timestamp == clock.now
    assert lg.max_timestamp() == (0, clock.now)
    assert make_log(tmp_path / "b").append(batch(0), leader_epoch=0).log_append_time_ms == -1


def test_kip74_min_one_batch_and_max_bytes(tmp_path) -> None:
    lg = make_log(tmp_path)
    sizes = []
    for i in range(10):
        sizes.append(len(batch(i, size=1000)))
        lg.append(batch(i, size=1000), leader_epoch=0)
    with lg.read(0, 10) as result:  # smaller than one batch: still one whole batch
        assert result.size == sizes[0]
    with lg.read(0, 10, min_one_batch=False) as result:
        assert result.size == 0 and result.slices == []
    with lg.read(2, sizes[0] * 3 + 5) as result:  # whole batches only, never a partial one
        assert result.size == sizes[0] * 3
        assert [h.base_offset for _, h in iter_batches(result.read_bytes())] == [2, 3, 4]


def test_read_stops_before_max_offset(tmp_path) -> None:
    lg = make_log(tmp_path)
    for i in range(10):
        lg.append(batch(i, records=2), leader_epoch=0)  # offsets 2i, 2i+1
    with lg.read(0, 1 << 20, max_offset=6) as result:
        assert [h.base_offset for _, h in iter_batches(result.read_bytes())] == [0, 2, 4]
    with lg.read(0, 1 << 20, max_offset=7) as result:  # 6..7 straddles: left out
        assert [h.base_offset for _, h in iter_batches(result.read_bytes())] == [0, 2, 4]
    with lg.read(6, 1 << 20, max_offset=6) as result:
        assert result.size == 0
    with lg.read(20, 1 << 20) as result:  # fetch at the log end: empty, not an error
        assert result.size == 0
    for bad in (-1, 21):
        with pytest.raises(OffsetOutOfRangeError) as info:
            lg.read(bad, 100)
        assert info.value.error_code == 1


def test_roll_on_segment_bytes_and_read_across_segments(tmp_path) -> None:
    lg = make_log(tmp_path, segment_bytes=1000)
    sent = [batch(i, size=200) for i in range(20)]
    for b in sent:
        lg.append(b, leader_epoch=0)
    assert len(lg.segments) > 4
    assert all(s.size <= 1000 for s in lg.segments)
    names = sorted(p.name for p in (tmp_path / "t-0").glob("*.log"))
    assert names == [f"{s.base_offset:020d}.log" for s in lg.segments]
    with lg.read(0, 1 << 20) as result:
        assert len(result.slices) == len(lg.segments)
        assert unstamp(result.read_bytes()) == b"".join(sent)
    # rolled indexes are trimmed to their entries; the active one is preallocated
    first = lg.segments[0]
    assert os.path.getsize(first.offset_index.path) == first.offset_index.entries * 8
    assert os.path.getsize(lg.segments[-1].offset_index.path) == 10485760


def test_roll_on_segment_ms(tmp_path) -> None:
    clock = Clock()
    lg = make_log(tmp_path, clock, segment_ms=1000)
    lg.append(batch(0, ts=-1), leader_epoch=0)  # no timestamp: creation time counts
    clock.now += 500
    lg.append(batch(1, ts=-1), leader_epoch=0)
    assert len(lg.segments) == 1
    clock.now += 600
    lg.append(batch(2, ts=-1), leader_epoch=0)
    assert len(lg.segments) == 2
    # with record timestamps, the distance from the segment's first batch counts
    lg = make_log(tmp_path / "b", clock, segment_ms=1000)
    lg.append(batch(3, ts=10_000), leader_epoch=0)
    lg.append(batch(4, ts=10_900), leader_epoch=0)
    assert len(lg.segments) == 1
    lg.append(batch(5, ts=11_001), leader_epoch=0)
    assert len(lg.segments) == 2


def test_roll_on_full_index(tmp_path) -> None:
    lg = make_log(tmp_path, segment_index_bytes=36, index_interval_bytes=1)
    for i in range(20):
        lg.append(batch(i), leader_epoch=0)
    assert len(lg.segments) > 3
    assert all(s.time_index.entries <= 3 for s in lg.segments)
    assert lg.offset_for_timestamp(1_700_000_000_013) == (13, 1_700_000_000_013)


def test_offset_for_timestamp_matches_brute_force(tmp_path) -> None:
    lg = make_log(tmp_path, segment_bytes=3000, index_interval_bytes=300)
    timestamps = [1000 + (i * 37) % 200 + i * 3 for i in range(100)]  # not monotonic
    for i, ts in enumerate(timestamps):
        lg.append(batch(i, ts=ts), leader_epoch=0)
    for target in range(900, 1600, 7):
        expected = next(((i, ts) for i, ts in enumerate(timestamps) if ts >= target), None)
        assert lg.offset_for_timestamp(target) == expected, target
    top = max(timestamps)
    assert lg.max_timestamp() == (timestamps.index(top), top)


def test_retention_ms_and_bytes(tmp_path) -> None:
    clock = Clock(10_000_000)
    lg = make_log(tmp_path, clock, segment_bytes=600, retention_ms=5000)
    for i in range(12):
        lg.append(batch(i, size=200, ts=clock.now - 10_000 + i), leader_epoch=0)
    lg.high_watermark = lg.log_end_offset
    segments_before = len(lg.segments)
    assert segments_before >= 4
    deleted = lg.delete_retention_breached()
    assert deleted == segments_before - 1  # never the active segment
    assert lg.log_start_offset == lg.segments[0].base_offset > 0
    with pytest.raises(OffsetOutOfRangeError):
        lg.read(0, 100)
    lg2 = make_log(tmp_path / "b", clock, segment_bytes=600, retention_bytes=1000)
    for i in range(12):
        lg2.append(batch(i, size=200), leader_epoch=0)
    lg2.delete_retention_breached()
    assert 0 < lg2.size <= 1000 + 600
    assert lg2.log_start_offset == lg2.segments[0].base_offset
    assert not list((tmp_path / "b" / "t-0").glob("*.deleted"))


def test_truncate_to_within_and_across_segments(tmp_path) -> None:
    lg = make_log(tmp_path, segment_bytes=700)
    sent = [batch(i, records=2, size=150) for i in range(15)]
    for i, b in enumerate(sent):
        lg.append(b, leader_epoch=1 if i < 8 else 2)
    lg.high_watermark = lg.log_end_offset
    segments = len(lg.segments)
    lg.truncate_to(20)  # batch 10 starts at 20
    assert lg.log_end_offset == 20 and lg.high_watermark == 20
    assert len(lg.segments) < segments
    assert unstamp(read_all(lg)) == b"".join(sent[:10])
    assert lg.leader_epoch_cache.entries == [(1, 0), (2, 16)]
    lg.truncate_to(10)
    assert lg.leader_epoch_cache.entries == [(1, 0)]
    assert lg.end_offset_for_epoch(1) == (1, 10)
    assert lg.end_offset_for_epoch(2) == (-1, -1)
    result = lg.append(batch(99), leader_epoch=3)
    assert result.base_offset == 10
    assert unstamp(read_all(lg)) == b"".join(sent[:5]) + batch(99)
    lg.close()
    reopened = Log(tmp_path / "t-0", lg.config, topic="t", partition=0, needs_recovery=False)
    assert reopened.log_end_offset == 11
    assert reopened.leader_epoch_cache.entries == [(1, 0), (3, 10)]
    assert unstamp(read_all(reopened)) == b"".join(sent[:5]) + batch(99)
    reopened.truncate_to(0)
    assert reopened.log_end_offset == 0 and read_all(reopened) == b""


def test_delete_records(tmp_path) -> None:
    lg = make_log(tmp_path, segment_bytes=600)
    for i in range(12):
        lg.append(batch(i, size=200), leader_epoch=0)
    with pytest.raises(OffsetOutOfRangeError):
        lg.delete_records(5)  # above the high watermark (0)
    lg.high_watermark = lg.log_end_offset
    second_base = lg.segments[1].base_offset
    assert lg.delete_records(second_base + 1) == second_base + 1
    assert lg.segments[0].base_offset == second_base
    with pytest.raises(OffsetOutOfRangeError):
        lg.read(second_base, 100)
    with lg.read(second_base + 1, 1 << 20) as result:
        assert parse_header(result.read_bytes()).base_offset == second_base + 1


def test_leader_epoch_cache(tmp_path) -> None:
    lg = make_log(tmp_path)
    for epoch in (1, 1, 3, 3, 3, 4):
        lg.append(batch(0), leader_epoch=epoch)
    cache = lg.leader_epoch_cache
    assert cache.entries == [(1, 0), (3, 2), (4, 5)]
    assert cache.end_offset_for_epoch(1, lg.log_end_offset) == (1, 2)
    assert cache.end_offset_for_epoch(2, lg.log_end_offset) == (1, 2)
    assert cache.end_offset_for_epoch(4, lg.log_end_offset) == (4, 6)
    assert cache.end_offset_for_epoch(0, lg.log_end_offset) == (0, 0)
    assert cache.end_offset_for_epoch(9, lg.log_end_offset) == (-1, -1)
    assert [cache.epoch_for_offset(o) for o in range(7)] == [1, 1, 3, 3, 3, 4, 4]
    lg.close()
    rows = read_checkpoint(tmp_path / "t-0" / "leader-epoch-checkpoint", 2)
    assert rows == [["1", "0"], ["3", "2"], ["4", "5"]]


def test_follower_append_keeps_offsets_and_epochs(tmp_path) -> None:
    leader = make_log(tmp_path / "leader")
    for epoch in (1, 2):
        leader.append(batch(epoch, records=2), leader_epoch=epoch)
    follower = make_log(tmp_path / "follower")
    follower.append_as_follower(read_all(leader))
    assert read_all(follower) == read_all(leader)
    assert follower.leader_epoch_cache.entries == [(1, 0), (2, 2)]
    with pytest.raises(Exception) as info:
        follower.append_as_follower(read_all(leader))  # offsets 0.. again: not at log end
    assert info.value.error_code == 87


def test_a_follower_takes_batches_above_its_own_max_message_bytes(tmp_path) -> None:
    """The leader checked the size when it accepted the batch; a follower whose limit is lower
    (a topic's max.message.bytes lowered since, or a node's own message.max.bytes) must still
    copy it, or it stalls and leaves the ISR for good (Kafka: ignoreRecordSize)."""
    leader = make_log(tmp_path / "leader")
    leader.append(batch(1, size=3000), leader_epoch=1)
    follower = make_log(tmp_path / "follower", max_message_bytes=1000)
    follower.append_as_follower(read_all(leader))
    assert read_all(follower) == read_all(leader)
    with pytest.raises(Exception) as info:
        follower.append(batch(2, size=3000), leader_epoch=1)
    assert info.value.error_code == 10  # MESSAGE_TOO_LARGE: its own producers still meet it


async def test_group_commit_shares_fsyncs(tmp_path) -> None:
    io = FaultyIO()
    io.fsync_delay = 0.01  # a slow disk makes appenders pile up behind one fsync
    lg = make_log(tmp_path, io=io, flush_messages=1)
    appends = 0

    async def appender(n: int) -> None:
        nonlocal appends
        for i in range(10):
            result = lg.append(batch(n * 100 + i), leader_epoch=0)
            await lg.wait_durable(result)
            appends += 1
            assert lg.recovery_point > result.last_offset

    await asyncio.gather(*(appender(n) for n in range(8)))
    assert appends == 80
    assert lg.recovery_point == lg.log_end_offset == 80
    assert 1 <= io.fsync_calls <= 80 // 4, io.fsync_calls


async def test_default_config_acknowledges_without_fsync(tmp_path) -> None:
    io = FaultyIO()
    lg = make_log(tmp_path, io=io)
    for i in range(20):
        await lg.wait_durable(lg.append(batch(i), leader_epoch=0))
    assert io.fsync_calls == 0
    await lg.flush()
    assert io.fsync_calls == 1 and lg.recovery_point == 20


async def test_flush_ms_flushes_in_background(tmp_path) -> None:
    io = FaultyIO()
    lg = make_log(tmp_path, io=io, flush_ms=20)
    lg.append(batch(0), leader_epoch=0)
    assert io.fsync_calls == 0
    async with asyncio.timeout(10):  # a deadline, not a second of polls: a busy machine is slow
        while lg.recovery_point != 1:
            await asyncio.sleep(0.01)
    assert lg.recovery_point == 1 and io.fsync_calls == 1


@pytest.mark.parametrize("partial", [0, 37])
def test_enospc_leaves_log_intact(tmp_path, partial: int) -> None:
    io = FaultyIO()
    lg = make_log(tmp_path, io=io)
    for i in range(3):
        lg.append(batch(i), leader_epoch=0)
    before, size = read_all(lg), lg.segments[-1].size
    io.write_error, io.partial_write_bytes = errno.ENOSPC, partial
    with pytest.raises(KafkaStorageError) as info:
        lg.append(batch(3) + batch(4), leader_epoch=0)
    assert info.value.error_code == 56
    assert lg.log_end_offset == 3
    assert os.path.getsize(lg.segments[-1].log_path) == size
    assert read_all(lg) == before  # reads keep working
    io.write_error = None
    assert lg.append(batch(3), leader_epoch=0).base_offset == 3
    lg.close()
    reopened = Log(tmp_path / "t-0", lg.config, topic="t", partition=0)  # full recovery
    assert unstamp(read_all(reopened)) == b"".join(batch(i) for i in range(4))


async def test_failed_fsync_refuses_appends_but_serves_reads(tmp_path) -> None:
    io = FaultyIO()
    lg = make_log(tmp_path, io=io, flush_messages=1)
    await lg.wait_durable(lg.append(batch(0), leader_epoch=0))
    io.fsync_error = errno.EIO
    with pytest.raises(KafkaStorageError):
        await lg.wait_durable(lg.append(batch(1), leader_epoch=0))
    with pytest.raises(KafkaStorageError):
        lg.append(batch(2), leader_epoch=0)
    assert len(read_all(lg)) > 0


def test_segment_deletion_waits_for_in_flight_slices(tmp_path) -> None:
    lg = make_log(tmp_path, segment_bytes=500)
    sent = [batch(i, size=300) for i in range(4)]
    for b in sent:
        lg.append(b, leader_epoch=0)
    lg.high_watermark = lg.log_end_offset
    result = lg.read(0, 350)
    slice_ = result.slices[0]
    first = lg.segments[0]
    lg.delete_records(lg.segments[1].base_offset)
    assert first.deleted and first not in lg.segments
    directory = tmp_path / "t-0"
    assert not (directory / "00000000000000000000.log").exists()
    assert (directory / "00000000000000000000.log.deleted").exists()
    # the slice is still sendable: same descriptor, same bytes
    assert unstamp(slice_.read_bytes()) == sent[0]
    with open(os.devnull, "wb") as sink:
        assert os.sendfile(sink.fileno(), slice_.fd, slice_.position, slice_.size) == slice_.size
    result.release()
    assert not list(directory.glob("*.deleted"))
    result.release()  # idempotent


def test_config_table_and_validation() -> None:
    config = LogConfig.from_mapping({"segment.bytes": "2048", "retention.ms": -1,
                                     "message.timestamp.type": "LogAppendTime"})
    assert (config.segment_bytes, config.retention_ms) == (2048, -1)
    assert config.to_mapping()["segment.bytes"] == 2048
    assert LOG_CONFIG_DEFS["flush.messages"].default == 2**63 - 1
    for bad, key in (({"segment.bytes": "big"}, "segment.bytes"),
                     ({"retention.ms": "-2"}, "retention.ms"),
                     ({"message.timestamp.type": "Now"}, "message.timestamp.type"),
                     ({"segment.bytes": str(2**31)}, "segment.bytes"),
                     ({"no.such.key": "1"}, "no.such.key")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            LogConfig.from_mapping(bad)


def test_manager_lifecycle_checkpoints_and_clean_marker(tmp_path) -> None:
    manager = LogManager(tmp_path)
    assert not manager.was_clean_shutdown
    a = manager.get_or_create_log("orders-eu", 3)
    assert manager.get_or_create_log("orders-eu", 3) is a
    for i in range(5):
        a.append(batch(i), leader_epoch=0)
    a.high_watermark = 4
    b = manager.get_or_create_log("gone", 0)
    b.append(batch(0), leader_epoch=0)
    slice_result = b.read(0, 100)
    manager.delete_log("gone", 0)
    assert not (tmp_path / "gone-0").exists()
    assert slice_result.read_bytes()  # still readable after the directory went away
    slice_result.release()
    manager.close()
    assert (tmp_path / ".kafka_cleanshutdown").exists()
    assert read_checkpoint(tmp_path / "replication-offset-checkpoint", 3) == [["orders-eu", "3", "4"]]
    assert read_checkpoint(tmp_path / "recovery-point-offset-checkpoint", 3) == [["orders-eu", "3", "5"]]
    assert (tmp_path / "log-start-offset-checkpoint").read_text() == "0\n1\norders-eu 3 0\n"

    manager = LogManager(tmp_path)
    assert manager.was_clean_shutdown
    assert not (tmp_path / ".kafka_cleanshutdown").exists()
    assert set(manager.logs) == {("orders-eu", 3)}
    log_ = manager.get_log("orders-eu", 3)
    assert (log_.log_end_offset, log_.high_watermark) == (5, 4)
    manager.close(clean=False)
    assert not LogManager(tmp_path).was_clean_shutdown


async def test_manager_background_retention_and_delete_records(tmp_path) -> None:
    clock = Clock(10_000_000)
    manager = LogManager(tmp_path, LogConfig.from_mapping({"segment.bytes": 600, "retention.ms": 1000}),
                         clock_ms=clock, retention_check_interval_ms=10, checkpoint_interval_ms=10)
    lg = manager.get_or_create_log("t", 0)
    for i in range(10):
        lg.append(batch(i, size=200, ts=clock.now), leader_epoch=0)
    lg.high_watermark = lg.log_end_offset
    assert await manager.delete_records("t", 0, 2) == 2
    assert read_checkpoint(tmp_path / "log-start-offset-checkpoint", 3) == [["t", "0", "2"]]
    clock.now += 5000
    task = asyncio.create_task(manager.run())
    try:
        async with asyncio.timeout(10):  # wait for the retention pass, however busy the machine
            while len(lg.segments) != 1:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert len(lg.segments) == 1 and lg.log_start_offset == lg.segments[0].base_offset > 2
    manager.close()


def test_compact_policy_never_deletes_by_time_or_size(tmp_path) -> None:
    """cleanup.policy without ``delete`` (compact): retention.ms and retention.bytes never
    delete a segment (Kafka's deleteOldSegments); the log start offset still does."""
    clock = Clock(10_000_000)
    lg = make_log(tmp_path, clock, segment_bytes=600, retention_ms=5000, retention_bytes=600,
                  cleanup_policy="compact")
    for i in range(12):
        lg.append(batch(i, size=200, ts=clock.now - 10_000 + i), leader_epoch=0)
    lg.high_watermark = lg.log_end_offset
    segments = len(lg.segments)
    assert segments >= 4
    assert lg.delete_retention_breached() == 0
    assert len(lg.segments) == segments and lg.log_start_offset == 0
    second_base = lg.segments[1].base_offset
    lg.delete_records(second_base)  # DeleteRecords still moves the start, and drops what is below
    assert lg.segments[0].base_offset == second_base
    lg.update_config(LogConfig.from_mapping({"segment.bytes": 600, "retention.ms": 5000,
                                             "cleanup.policy": "compact,delete"}))
    before = len(lg.segments)
    assert lg.delete_retention_breached() == before - 1


def test_maybe_increment_log_start_offset_never_passes_the_high_watermark(tmp_path) -> None:
    """A follower takes its leader's log start offset: up to its own high watermark, never
    down, dropping the segments wholly below it."""
    lg = make_log(tmp_path, segment_bytes=600)
    for i in range(12):
        lg.append(batch(i, size=200), leader_epoch=0)
    lg.high_watermark = 5
    assert lg.maybe_increment_log_start_offset(9) and lg.log_start_offset == 5
    assert not lg.maybe_increment_log_start_offset(3) and lg.log_start_offset == 5
    assert lg.segments[0].base_offset <= 5 < lg.segments[0].next_offset


def compressed_batch(timestamps: list[int], codec: int = 1) -> bytes:
    """A batch as kafka-python's producer builds it (gzip by default), one record per timestamp."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i, ts in enumerate(timestamps):
        builder.append(i, timestamp=ts, key=None, value=b"v%d" % i, headers=[])
    return bytes(builder.build())


@pytest.mark.parametrize("compressed", [False, True])
def test_offsets_by_time_are_record_offsets(tmp_path, compressed) -> None:
    """ListOffsets by timestamp answers the first record at or after the target, reading into
    the batch the index finds, and MAX_TIMESTAMP the record carrying the max (KIP-734), as
    Kafka's LogSegment.findOffsetByTimestamp and RecordBatch.offsetOfMaxTimestamp do."""
    lg = make_log(tmp_path)
    first, second = [1000, 1500, 1020, 1100], [1200, 1300]
    for timestamps in (first, second):
        lg.append(compressed_batch(timestamps) if compressed
                  else build_batch([(None, b"v", (), ts) for ts in timestamps]), leader_epoch=0)
    lg.high_watermark = lg.log_end_offset
    assert lg.offset_for_timestamp(1000) == (0, 1000)
    assert lg.offset_for_timestamp(1001) == (1, 1500)  # not the batch's base offset 0
    assert lg.offset_for_timestamp(1150) == (1, 1500)
    assert lg.offset_for_timestamp(1501) is None
    assert lg.max_timestamp() == (1, 1500)  # the record, inside the first batch
    lg.delete_records(2)  # a log start inside the batch: records below it do not count
    assert lg.offset_for_timestamp(1000) == (2, 1020)
    assert lg.offset_for_timestamp(1150) == (4, 1200)


def without_max_timestamp(buf: bytes) -> bytes:
    """The batch as sarama 1.22 writes it: records with timestamps, header max_timestamp -1."""
    from odradek.protocol.records import HEADER_SIZE, restamped_header
    header = parse_header(buf)
    return bytes(restamped_header(buf, 0, header.base_offset, header.partition_leader_epoch, -1)) \
        + buf[HEADER_SIZE:]


@pytest.mark.parametrize("compressed", [False, True])
def test_batch_without_max_timestamp_gets_it_from_its_records(tmp_path, compressed) -> None:
    """CreateTime: a header max_timestamp of -1 over timestamped records is rewritten from
    the records (CRC too), so the time index and offsets-for-times see the batch."""
    timestamps = [1000, 1500, 1020]
    plain = (compressed_batch(timestamps) if compressed
             else build_batch([(None, b"v", (), ts) for ts in timestamps]))
    lg = make_log(tmp_path)
    lg.append(without_max_timestamp(plain), leader_epoch=0)
    lg.high_watermark = lg.log_end_offset
    (_, stored), = iter_batches(read_all(lg))  # validates the CRC
    assert stored.max_timestamp == 1500
    assert lg.offset_for_timestamp(1001) == (1, 1500)
    assert lg.max_timestamp() == (1, 1500)
    lg.close()
    reopened = Log(tmp_path / "t-0", lg.config, topic="t", partition=0, needs_recovery=True)
    assert reopened.offset_for_timestamp(1001) == (1, 1500)


def test_log_append_time_batch_without_max_timestamp_is_stamped_as_usual(tmp_path) -> None:
    lg = make_log(tmp_path, Clock(5000), message_timestamp_type="LogAppendTime")
    lg.append(without_max_timestamp(build_batch([(None, b"v", (), 1000)])), leader_epoch=0)
    (_, stored), = iter_batches(read_all(lg))
    assert stored.max_timestamp == 5000


@pytest.mark.parametrize("timestamp_type, expected", [("CreateTime", 1), ("LogAppendTime", 0)])
def test_max_timestamp_offset_as_kafka_answers(tmp_path, timestamp_type, expected) -> None:
    """Kafka's ListOffsetsIntegrationTest (testThreeNonCompressedRecordsInOneBatch and the
    gzip one): records stamped 100, 999, 200 in one batch answer MAX_TIMESTAMP with offset 1;
    on a LogAppendTime topic every record has the batch's time, so the first, offset 0."""
    for codec in (0, 1):
        lg = make_log(tmp_path / str(codec), Clock(5000), message_timestamp_type=timestamp_type)
        lg.append(compressed_batch([100, 999, 200], codec), leader_epoch=0)
        lg.high_watermark = lg.log_end_offset
        assert lg.max_timestamp()[0] == expected

"""The append write path: batches are stamped by writing fresh 16-byte prefixes
(or, for LogAppendTime, fresh 61-byte headers) in front of the caller's bytes
with pwritev, never by copying the batch.  Its files must be byte-identical to
stamping a copy in place; short writes, too many buffers and failed writes must
still leave the log whole.  Also the group commit's waiter handling."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from odradek.protocol.records import (
    build_batch,
    iter_batches,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
)
from odradek.storage import FaultyIO, FileIO, KafkaStorageError, Log, LogConfig
from odradek.storage.io import IOV_MAX

NOW = 1_800_000_000_000


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def batch(i: int, records: int = 1, size: int = 100) -> bytes:
    value = (b"%d:" % i).ljust(size, b"x")
    return build_batch([(b"k%d" % i, value, (), 1_700_000_000_000 + i)] * records)


def make_log(tmp_path, io=None, clock=None, **config) -> Log:
    cfg = LogConfig.from_mapping({k.replace("_", "."): v for k, v in config.items()})
    return Log(tmp_path / "t-0", cfg, topic="t", partition=0, io=io,
               clock_ms=clock or Clock(), needs_recovery=False)


def stamped_copy(records: bytes, base_offset: int, epoch: int, append_time: int | None) -> bytes:
    """The reference: stamp a copy in place, the way the log used to."""
    buf = bytearray(records)
    offset = base_offset
    for pos, header in list(iter_batches(buf, None)):
        set_base_offset(buf, pos, offset)
        set_partition_leader_epoch(buf, pos, epoch)
        if append_time is not None:
            set_log_append_time(buf, pos, append_time)
        offset += header.records_count
    return bytes(buf)


def file_bytes(lg: Log) -> bytes:
    return b"".join(s.log_path.read_bytes() for s in lg.segments)


APPENDS = [
    batch(0),
    batch(1, records=3) + batch(2) + batch(3, records=2, size=5000),
    batch(4, size=20_000),
    b"".join(batch(10 + i, size=10) for i in range(40)),
]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("timestamp_type", ["CreateTime", "LogAppendTime"])
def test_vectored_append_is_byte_identical_to_stamping_a_copy(tmp_path, kind, timestamp_type) -> None:
    lg = make_log(tmp_path, message_timestamp_type=timestamp_type)
    append_time = NOW if timestamp_type == "LogAppendTime" else None
    expected, offset = b"", 0
    for records in APPENDS:
        given = kind(records) if kind is not memoryview else memoryview(bytearray(records))
        result = lg.append(given, leader_epoch=7)
        assert bytes(given) == records  # the caller's bytes are never stamped
        expected += stamped_copy(records, offset, 7, append_time)
        assert (result.base_offset, result.size) == (offset, len(records))
        offset = result.last_offset + 1
        if kind is bytearray:
            given.extend(b"!")  # no buffer export outlives the append
    assert file_bytes(lg) == expected
    for _, header in iter_batches(expected, None):  # CRCs valid, LogAppendTime set
        assert header.timestamp_type == (1 if append_time else 0)
    lg.close()
    reopened = Log(tmp_path / "t-0", lg.config, topic="t", partition=0)  # full recovery
    assert reopened.log_end_offset == offset
    with reopened.read(0, 1 << 30) as result:
        assert result.read_bytes() == expected


class ShortWriteIO(FileIO):
    """Writes at most ``limit`` bytes per call, as a kernel may."""

    def __init__(self, limit: int) -> None:
        self.limit, self.calls = limit, 0

    def pwritev(self, fd: int, buffers: list, offset: int) -> int:
        self.calls += 1
        assert len(buffers) <= IOV_MAX
        data = b"".join(bytes(b) for b in buffers)[: self.limit]
        return os.pwrite(fd, data, offset)


@pytest.mark.parametrize("limit", [1, 16, 61, 1000, 7777])
def test_short_writes_are_finished(tmp_path, limit: int) -> None:
    io = ShortWriteIO(limit)
    lg = make_log(tmp_path, io=io)
    expected, offset = b"", 0
    for records in APPENDS[:3]:
        result = lg.append(records, leader_epoch=1)
        expected += stamped_copy(records, offset, 1, None)
        offset = result.last_offset + 1
    assert file_bytes(lg) == expected
    assert io.calls > 3


def test_more_batches_than_iov_max_in_one_append(tmp_path) -> None:
    records = b"".join(batch(i, size=1) for i in range(IOV_MAX))  # 2 buffers per batch
    io = ShortWriteIO(1 << 30)
    lg = make_log(tmp_path, io=io)
    result = lg.append(records, leader_epoch=3)
    assert result.record_count == IOV_MAX and io.calls >= 2
    assert file_bytes(lg) == stamped_copy(records, 0, 3, None)


def test_fileio_overriding_only_pwrite_still_sees_every_write(tmp_path) -> None:
    class CountingIO(FileIO):
        def __init__(self) -> None:
            self.written = 0

        def pwrite(self, fd: int, data: memoryview, offset: int) -> int:
            n = os.pwrite(fd, data[:500], offset)  # short writes too
            self.written += n
            return n

    io = CountingIO()
    lg = make_log(tmp_path, io=io)
    records = APPENDS[1]
    lg.append(records, leader_epoch=0)
    assert io.written == len(records)
    assert file_bytes(lg) == stamped_copy(records, 0, 0, None)


@pytest.mark.parametrize("partial", [0, 10, 100])
def test_failed_vectored_write_leaves_log_intact(tmp_path, partial: int) -> None:
    io = FaultyIO()
    lg = make_log(tmp_path, io=io)
    lg.append(batch(0), leader_epoch=0)
    before = file_bytes(lg)
    io.write_error, io.partial_write_bytes = errno.ENOSPC, partial
    records = bytearray(batch(1) + batch(2, size=3000))
    with pytest.raises(KafkaStorageError):
        lg.append(records, leader_epoch=0)
    records.extend(b"!")  # no view of the caller's buffer is left behind
    assert file_bytes(lg) == before and lg.log_end_offset == 1
    io.write_error = None
    assert lg.append(batch(1), leader_epoch=0).base_offset == 1
    lg.close()
    reopened = Log(tmp_path / "t-0", lg.config, topic="t", partition=0)
    assert reopened.log_end_offset == 2


def test_check_sees_each_batch_once(tmp_path) -> None:
    lg = make_log(tmp_path)
    seen = []
    lg.append(batch(0) + batch(1, records=2), leader_epoch=0, check=lambda h: seen.append(h))
    assert [h.records_count for h in seen] == [1, 2]
    assert [h.base_offset for h in seen] == [0, 0]  # as the producer sent them


def test_index_entries_stay_increasing_across_truncation(tmp_path) -> None:
    lg = make_log(tmp_path, index_interval_bytes=1)
    for i in range(10):
        lg.append(batch(i, size=200, records=2), leader_epoch=0)
    lg.truncate_to(8)
    for i in range(10, 14):
        lg.append(batch(i, size=200), leader_epoch=0)
    segment = lg.segments[-1]
    segment.offset_index.sanity_check(segment.size)
    segment.time_index.sanity_check(segment.size)
    offsets = [entry[0] for entry in segment.offset_index.all_entries()]
    assert offsets == sorted(set(offsets)) and offsets[-1] == 11
    for offset in range(lg.log_end_offset):
        with lg.read(offset, 1) as result:
            header = next(iter_batches(result.read_bytes(), None))[1]
            assert header.base_offset <= offset <= header.last_offset


async def test_waiters_arriving_during_an_fsync_share_the_next(tmp_path) -> None:
    io = FaultyIO()
    io.fsync_delay = 0.05
    lg = make_log(tmp_path, io=io, flush_messages=1)
    first = asyncio.ensure_future(lg.wait_durable(lg.append(batch(0), leader_epoch=0)))
    async with asyncio.timeout(5):  # wait until the first fsync is running
        while io.fsync_calls == 0:
            await asyncio.sleep(0.001)
    assert io.fsync_calls == 1
    later = [lg.wait_durable(lg.append(batch(i), leader_epoch=0)) for i in range(1, 6)]
    await asyncio.gather(first, *later)
    assert io.fsync_calls == 2 and lg.recovery_point == lg.log_end_offset == 6


async def test_cancelled_waiter_does_not_cancel_the_fsync(tmp_path) -> None:
    io = FaultyIO()
    io.fsync_delay = 0.3  # long enough that a loaded machine still cancels before it ends
    lg = make_log(tmp_path, io=io, flush_messages=1)
    doomed = asyncio.ensure_future(lg.wait_durable(lg.append(batch(0), leader_epoch=0)))
    other = asyncio.ensure_future(lg.wait_durable(lg.append(batch(1), leader_epoch=0)))
    async with asyncio.timeout(5):  # cancel while the fsync runs
        while io.fsync_calls == 0:
            await asyncio.sleep(0.001)
    doomed.cancel()
    await other
    assert doomed.cancelled() and lg.recovery_point == 2
    await lg.wait_durable(lg.append(batch(2), leader_epoch=0))
    assert lg.recovery_point == 3


async def test_failed_fsync_reaches_every_waiter(tmp_path) -> None:
    io = FaultyIO()
    io.fsync_delay, io.fsync_error = 0.02, errno.EIO
    lg = make_log(tmp_path, io=io, flush_messages=1)
    waits = [lg.wait_durable(lg.append(batch(i), leader_epoch=0)) for i in range(4)]
    results = await asyncio.gather(*waits, return_exceptions=True)
    assert all(isinstance(r, KafkaStorageError) for r in results), results
    assert isinstance(results[0].__cause__, OSError)
    with pytest.raises(KafkaStorageError):
        lg.append(batch(9), leader_epoch=0)
    with pytest.raises(KafkaStorageError):
        await lg.flush()


async def test_close_during_a_group_commit_releases_every_waiter(tmp_path) -> None:
    io = FaultyIO()
    io.fsync_delay = 0.05
    lg = make_log(tmp_path, io=io, flush_messages=1)
    first = asyncio.ensure_future(lg.wait_durable(lg.append(batch(0), leader_epoch=0)))
    async with asyncio.timeout(5):  # wait until that fsync runs
        while io.fsync_calls == 0:
            await asyncio.sleep(0.001)
    second = asyncio.ensure_future(lg.wait_durable(lg.append(batch(1), leader_epoch=0)))
    await asyncio.sleep(0)
    lg.close()  # clean: syncs everything itself
    assert lg.recovery_point == 2
    await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 5)
    assert first.exception() is None and second.exception() is None  # close synced them

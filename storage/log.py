"""A partition log: the ordered list of segments in ``<topic>-<partition>/``.

The log assigns offsets, rolls segments, serves reads as file slices, finds
offsets by timestamp, truncates, applies retention and recovers after a crash.
Everything except fsync is synchronous and quick (page-cache I/O), because the
broker calls it on the event loop; fsync runs on a flusher thread (``_Flusher``).

Offsets: ``log_start_offset`` <= ``high_watermark`` <= ``log_end_offset``, and
``recovery_point`` (everything below it has been fsynced).  Segment ``i`` holds
offsets [segments[i].base_offset, segments[i + 1].base_offset).
"""

from __future__ import annotations

import asyncio
import bisect
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import structlog

from odradek.protocol.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    STAMPED_PREFIX,
    STAMPED_PREFIX_SIZE,
    BatchHeader,
    InvalidRecordError,
    RecordError,
    batch_max_timestamp,
    log_append_time_header,
    record_timestamps,
    restamped_header,
    validate_batches,
)
from odradek.storage.checkpoint import fsync_dir
from odradek.storage.cleaner import CLEANED_SUFFIX, SWAP_SUFFIX, recover_swaps
from odradek.storage.config import INT32_MAX, LogConfig
from odradek.storage.epoch import LeaderEpochCache
from odradek.storage.errors import CorruptIndexError, KafkaStorageError, OffsetOutOfRangeError
from odradek.storage.handles import OpenFiles, segment_budget, soft_limit
from odradek.storage.io import FileIO
from odradek.storage.segment import DELETED_SUFFIX, LogSegment, segment_name
from odradek.storage.txn_index import AbortedTxnIndex

log = structlog.get_logger(__name__)

_pack_prefix = STAMPED_PREFIX.pack  # bytes 0-15: base offset, batch length, leader epoch
FLUSH_MS_NEVER = 10**12  # flush.ms at or above this (Kafka's default is Long.MAX) means off


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


_default_open_files: OpenFiles | None = None


def default_open_files() -> OpenFiles:
    """The segment LRU of logs opened without a LogManager (tools, tests): half the
    process's open-file limit."""
    global _default_open_files
    if _default_open_files is None:
        _default_open_files = OpenFiles(segment_budget(soft_limit(), -1))
    return _default_open_files


class AppendResult(NamedTuple):
    """What an append wrote.  A NamedTuple, not a frozen dataclass: appends are hot,
    and a frozen dataclass sets each field through object.__setattr__."""

    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    log_start_offset: int
    record_count: int
    size: int


class FileSlice:
    """Whole batches of one segment: ``size`` bytes at ``position`` of file ``fd``.

    Send it with ``os.sendfile(sock, slice.fd, slice.position, slice.size)``;
    ``read_bytes()`` is the copy for TLS and tests.  The segment stays open
    (even if retention deletes it meanwhile) until ``release()``.
    """

    __slots__ = ("_segment", "position", "size")

    def __init__(self, segment: LogSegment, position: int, size: int) -> None:
        segment.acquire()
        self._segment: LogSegment | None = segment
        self.position = position
        self.size = size

    @property
    def fd(self) -> int:
        if self._segment is None:
            raise ValueError("file slice already released")
        return self._segment.fd

    def read_bytes(self) -> bytes:
        chunks, done = [], 0
        while done < self.size:
            chunk = os.pread(self.fd, self.size - done, self.position + done)
            if not chunk:
                break  # truncated under us; a reader only ever gets whole batches sent earlier
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)

    def release(self) -> None:
        if self._segment is not None:
            segment, self._segment = self._segment, None
            segment.release()


@dataclass(slots=True)
class ReadResult:
    slices: list[FileSlice]
    log_start_offset: int
    log_end_offset: int
    high_watermark: int

    @property
    def size(self) -> int:
        return sum(s.size for s in self.slices)

    def read_bytes(self) -> bytes:
        return b"".join(s.read_bytes() for s in self.slices)

    def release(self) -> None:
        for s in self.slices:
            s.release()

    def __enter__(self) -> ReadResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Log:
    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        *,
        topic: str,
        partition: int,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        high_watermark: int = 0,
        needs_recovery: bool = True,
        io: FileIO | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        checkpoint_hook: Callable[[], None] | None = None,
        open_files: OpenFiles | None = None,
        on_flush: Callable[[float], None] | None = None,
    ) -> None:
        self.dir = Path(directory)
        # the segment LRU (storage.handles); a LogManager shares one among its logs
        self.open_files = open_files or default_open_files()
        # called on the loop with each fsync's milliseconds (Kafka's LogFlushRateAndTimeMs)
        self.on_flush = on_flush
        self._flush_started = 0.0
        # called (blocking) when truncate_to lowers the log start offset, which a
        # lazily written log-start-offset-checkpoint must not be allowed to undo
        self.checkpoint_hook = checkpoint_hook
        created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.topic, self.partition = topic, partition
        self.config = config
        self.io = io or FileIO()
        self._clock_ms = clock_ms
        self.segments: list[LogSegment] = []
        self._flush_waiters: list[tuple[int, asyncio.Future]] = []  # (offset, waiter)
        self._flushing = False  # an fsync runs in a flusher thread
        self._flush_scheduled = False  # _start_flush is on the loop's ready queue
        self._flush_wanted = False  # asked for while one ran: start the next when it ends
        self._closed = False
        self._flush_timer: asyncio.TimerHandle | None = None
        self._failed: KafkaStorageError | None = None
        self._dir_dirty = False
        self.recovery_point = recovery_point
        # the lowest offset a truncation cut to since the log cleaner last looked (it makes
        # what the truncation left of the clean section dirty again)
        self.truncated_below: int | None = None
        # The aborted-transaction index of this log (storage.txn_index), loaded by its
        # partition (broker.replica_manager): the log cleaner rewrites it with the segments
        # it replaces.  And the partition's last stable offset: the cleaner stays below it
        # (an open transaction's records may still be aborted), as Kafka's does.
        self.txn_index = AbortedTxnIndex(self.dir, self.io)
        self.last_stable_offset: Callable[[], int] | None = None
        try:  # every step that touches the disk
            self.leader_epoch_cache = LeaderEpochCache(self.dir)
            self._load(log_start_offset, needs_recovery)
            self._log_start_offset = min(
                max(log_start_offset, self.segments[0].base_offset), self.log_end_offset
            )
            self.recovery_point = min(recovery_point, self.log_end_offset)
            self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
            self.txn_index.load()
        except BaseException:
            # out of descriptors (or a disk error): leave nothing open, and no directory
            # that a failed creation made (a restart would load it as a partition)
            for segment in self.segments:
                segment.close()
            if created:
                self._remove_new_dir(log_start_offset)
            raise
        self._high_watermark = 0
        self.high_watermark = high_watermark

    def _remove_new_dir(self, base_offset: int) -> None:
        """Remove the directory a failed creation made. Out of descriptors, rmtree cannot
        even list it: unlink the only files a new log has by name (no descriptor needed)."""
        stem = self.dir / segment_name(base_offset)
        for suffix in (".log", ".index", ".timeindex"):
            stem.with_suffix(suffix).unlink(missing_ok=True)
        try:
            os.rmdir(self.dir)
        except OSError:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- loading -----------------------------------------------------------------

    def _load(self, log_start_offset: int, needs_recovery: bool) -> None:
        for leftover in [*self.dir.glob("*" + DELETED_SUFFIX), *self.dir.glob("*.tmp")]:
            leftover.unlink()  # a crash interrupted a deletion or a checkpoint write
        recover_swaps(self.dir, self.config, self.io, self._clock_ms(), self.open_files)  # the log cleaner's
        bases = sorted(int(p.stem) for p in self.dir.glob("*.log") if p.stem.isdigit())
        for suffix in (".index", ".timeindex", ".txnindex"):
            for orphan in self.dir.glob("*" + suffix):
                if not orphan.stem.isdigit() or int(orphan.stem) not in bases:
                    orphan.unlink()
        now = self._clock_ms()
        if not bases:
            self.segments = [self._new_segment(log_start_offset, now)]
            return
        for i, b in enumerate(bases):  # appended one by one: a failure closes those opened
            self.segments.append(LogSegment(
                self.dir, b, self.config, self.io, active=i == len(bases) - 1, now_ms=now,
                open_files=self.open_files))
        # after an unclean stop, everything from the segment holding the recovery point on
        first_unsafe = len(bases)
        if needs_recovery:
            first_unsafe = max(0, bisect.bisect_right(bases, self.recovery_point) - 1)
        for i, segment in enumerate(self.segments):
            if i < first_unsafe:
                try:
                    segment.load()
                    truncated = 0
                except (CorruptIndexError, RecordError) as exc:
                    log.warning("index_rebuild", path=str(segment.log_path), reason=str(exc))
                    truncated = segment.recover(self._learn_epoch)
            else:
                truncated = segment.recover(self._learn_epoch)
            following = self.segments[i + 1] if i + 1 < len(self.segments) else None
            # a gap before the following segment is normal (the log cleaner removes records)
            if following is not None and (truncated or following.base_offset < segment.next_offset):
                log.warning(
                    "recovery_dropped_segments", dir=str(self.dir), after=segment.next_offset,
                    segments=[s.base_offset for s in self.segments[i + 1 :]],
                )  # fmt: skip
                for dropped in self.segments[i + 1 :]:
                    dropped.delete()
                del self.segments[i + 1 :]
                if not segment.offset_index.mutable:
                    segment.offset_index.make_mutable()
                    segment.time_index.make_mutable()
                break

    def _learn_epoch(self, header: BatchHeader) -> None:
        self.leader_epoch_cache.assign(header.partition_leader_epoch, header.base_offset)

    def _new_segment(self, base_offset: int, now_ms: int) -> LogSegment:
        self._dir_dirty = True
        return LogSegment(self.dir, base_offset, self.config, self.io, active=True, now_ms=now_ms,
                          open_files=self.open_files)

    # --- offsets -----------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @high_watermark.setter
    def high_watermark(self, offset: int) -> None:
        self._high_watermark = min(max(offset, self._log_start_offset), self.log_end_offset)

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (epoch, end offset), (-1, -1) if unknown."""
        return self.leader_epoch_cache.end_offset_for_epoch(leader_epoch, self.log_end_offset)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    def update_config(self, config: LogConfig) -> None:
        """Apply AlterConfigs; index sizes change from the next segment on."""
        self.config = config
        for segment in self.segments:
            segment.config = config

    # --- append ------------------------------------------------------------------

    def append(
        self,
        records: bytes | bytearray | memoryview,
        *,
        leader_epoch: int,
        timestamp_type: str | None = None,
        check: Callable[[BatchHeader], None] | None = None,
    ) -> AppendResult:
        """Append a Produce partition's batches as leader: validate all, stamp, write once.

        Nothing is written if any batch fails validation (typed RecordError), the
        caller's ``check`` raises for a batch header, or the write fails
        (KafkaStorageError).  The result is acknowledged-safe against a process
        crash; ``await wait_durable(result)`` for flush.*.
        ``timestamp_type`` overrides message.timestamp.type.  ``check`` sees every
        validated header before anything is written (the broker's policy checks:
        request version, timestamp bounds, idempotence); an exception from it
        aborts the whole append.
        """
        if self._failed is not None:
            raise self._failed
        # no copy of the batches: each is written as a fresh 16-byte prefix (base
        # offset, length, leader epoch: outside the CRC) and then its own bytes
        # 16.. straight from ``records``, in one pwritev.  The CRC is checked
        # once, on the bytes as received, and those are the bytes written.
        with memoryview(records) as received:
            view = received if received.itemsize == 1 and received.ndim == 1 else received.cast("B")
            batches = validate_batches(view, self.config.max_message_bytes)
            if not batches:
                raise InvalidRecordError("no record batch to append")
            log_append = (timestamp_type or self.config.message_timestamp_type) == "LogAppendTime"
            repaired = None if log_append else _repair_max_timestamps(view, batches)
            if check is not None:
                for _, header in batches:
                    check(header)
            now = self._clock_ms()
            active = self.segments[-1]
            first = offset = active.next_offset
            buffers: list = []
            stamped = []
            max_timestamp = -1
            for pos, header in batches:
                size = LOG_OVERHEAD + header[1]
                next_offset = offset + header[6] + 1
                if log_append:
                    buffers.append(log_append_time_header(view, pos, offset, leader_epoch, now))
                    buffers.append(view[pos + HEADER_SIZE : pos + size])
                    batch_max = now
                elif repaired and pos in repaired:
                    buffers.append(restamped_header(view, pos, offset, leader_epoch, header[8]))
                    buffers.append(view[pos + HEADER_SIZE : pos + size])
                    batch_max = header[8]
                else:
                    buffers.append(_pack_prefix(offset, header[1], leader_epoch))
                    buffers.append(view[pos + STAMPED_PREFIX_SIZE : pos + size])
                    batch_max = header[8]
                if batch_max > max_timestamp:
                    max_timestamp = batch_max
                stamped.append((pos, offset, size, batch_max, next_offset))
                offset = next_offset
            try:
                total = len(view)
                if (
                    active.should_roll(total, max_timestamp, now)
                    or offset - 1 - active.base_offset > INT32_MAX  # relative offsets are int32
                ):
                    active = self._roll(now)
                active.append_vectored(buffers, total, stamped)
            finally:
                buffers.clear()  # drop our views of ``records`` now, even on failure
        self.leader_epoch_cache.assign(leader_epoch, first)
        self._after_append()
        return AppendResult(
            first, offset - 1, now if log_append else -1, self._log_start_offset,
            offset - first, total,
        )  # fmt: skip

    def append_as_follower(self, records: bytes | bytearray | memoryview) -> AppendResult:
        """Append batches fetched from the leader: offsets and epochs are kept as stamped."""
        self._check_writable()
        with memoryview(records) as received:
            view = received if received.itemsize == 1 and received.ndim == 1 else received.cast("B")
            # No size limit: the leader checked it on accepting the batch, and a lower limit
            # here (changed since, or this node's own) must not stall the copy (Kafka's
            # ignoreRecordSize for replication). The leader's batches may have been cleaned:
            # gaps inside and between batches.
            batches = validate_batches(view, None, produced=False)
            if not batches:
                raise InvalidRecordError("no record batch to append")
            expected = self.log_end_offset
            for _, header in batches:
                if header.base_offset < expected:
                    raise InvalidRecordError(
                        f"follower append at offset {header.base_offset}, log end is {expected}"
                    )
                expected = header.next_offset
            first, last = batches[0][1], batches[-1][1]
            now, total = self._clock_ms(), len(view)
            active = self._active_for(
                self.segments[-1], total, max(h.max_timestamp for _, h in batches),
                last.last_offset, now,
            )  # fmt: skip
            active.append(view, batches)
        for _, header in batches:
            self._learn_epoch(header)
        self._after_append()
        return AppendResult(
            first.base_offset, last.last_offset, -1, self._log_start_offset,
            last.next_offset - first.base_offset, total,
        )  # fmt: skip

    def _check_writable(self) -> None:
        if self._failed is not None:
            raise self._failed

    def _active_for(
        self, active: LogSegment, size: int, max_timestamp: int, last_offset: int, now: int
    ) -> LogSegment:
        """The segment to append ``size`` bytes to: the active one, or a new one."""
        if (
            active.should_roll(size, max_timestamp, now)
            or last_offset - active.base_offset > INT32_MAX  # relative offsets are int32
        ):
            return self._roll(now)
        return active

    def _after_append(self) -> None:
        # synchronous users (no running loop) call flush_sync themselves
        config = self.config
        if self.segments[-1].next_offset - self.recovery_point >= config.flush_messages:
            if _running_loop() is not None:
                self._request_flush()
        elif config.flush_ms < FLUSH_MS_NEVER and _running_loop() is not None:
            self._arm_flush_timer()

    def replace_segments(self, old: list[LogSegment], sizes: list[int], cleaned: LogSegment) -> bool:
        """Install the log cleaner's ``cleaned`` segment (files ``*.cleaned``) in place of
        ``old``, on the loop; False (nothing done) if the log changed since ``old`` was read:
        a segment gone (retention, truncation, DeleteRecords) or grown/cut (``sizes``).

        Kafka's order: ``*.cleaned`` becomes ``*.swap``, the old segments are renamed
        ``*.deleted`` (fetches in flight keep reading them: unlinked when released), then
        the swap takes the final names.  A crash between any two renames is completed at
        the next load (storage.cleaner.recover_swaps).  The caller fsyncs the directory
        afterwards, off the loop.
        """
        try:
            i = next(j for j, s in enumerate(self.segments) if s is old[0])
        except StopIteration:
            return False
        current = self.segments[i : i + len(old)]
        if (
            self._closed
            or i + len(old) >= len(self.segments)  # never the active segment
            or any(a is not b for a, b in zip(current, old, strict=True))
            or any(s.deleted or s.size != size for s, size in zip(old, sizes, strict=True))
        ):
            return False
        cleaned.rename_suffix(CLEANED_SUFFIX, SWAP_SUFFIX)
        for segment in old:
            segment.delete()
        cleaned.rename_suffix(SWAP_SUFFIX, "")
        self.segments[i : i + len(old)] = [cleaned]
        self._dir_dirty = True
        return True

    def roll(self) -> LogSegment:
        """Start a new segment now (tests, admin); a no-op on an empty active segment."""
        active = self.segments[-1]
        return self._roll(self._clock_ms()) if active.size else active

    def _roll(self, now: int) -> LogSegment:
        rolled = self.segments[-1]
        loop = _running_loop()
        # cutting the rolled indexes waits on the filesystem's journal (5 ms median, tens of
        # ms on a busy disk): on the event loop only the seal, the cut in a flusher thread
        rolled.on_roll(trim=loop is None)
        if loop is not None:
            _FLUSHER.submit(loop, rolled.trim_indexes, (), self._trimmed, (rolled,))
        segment = self._new_segment(self.log_end_offset, now)
        self.segments.append(segment)
        log.debug("segment_rolled", dir=str(self.dir), base_offset=segment.base_offset)
        return segment

    def _trimmed(self, rolled: LogSegment, exc: BaseException | None) -> None:
        if exc is not None:  # the index stays longer than its entries: rebuilt at the next start
            log.warning("index_trim_failed", dir=str(self.dir), base_offset=rolled.base_offset,
                        error=repr(exc))

    # --- durability --------------------------------------------------------------

    async def wait_durable(self, result: AppendResult) -> None:
        """Return when ``result`` is as durable as flush.messages asks.

        With Kafka's default (flush.messages and flush.ms unlimited) this returns
        at once: the bytes are in the page cache.  When the append brought the
        unflushed record count to flush.messages, it waits for an fsync covering
        it; concurrent waiters share fsyncs (group commit).
        """
        if self.needs_flush(result):
            await self.flush(result.last_offset + 1)

    def needs_flush(self, result: AppendResult) -> bool:
        """Whether acknowledging ``result`` must wait for an fsync (flush.messages)."""
        unflushed = result.last_offset + 1 - self.recovery_point
        return unflushed > 0 and unflushed >= self.config.flush_messages

    async def flush(self, offset: int | None = None) -> None:
        """fsync everything below ``offset`` (default: the log end), group-committed.

        The caller waits for the first fsync that starts after its call and
        covers ``offset``; every caller that arrives while one fsync runs shares
        the next.  Cancelling a caller does not cancel the fsync.
        """
        target = self.log_end_offset if offset is None else offset
        if self.recovery_point >= min(target, self.log_end_offset):
            return
        self._check_writable()
        waiter = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, waiter))
        self._request_flush()
        await waiter

    def _request_flush(self) -> None:
        """Start an fsync soon, or after the running one: at most one runs per log.

        Soon, not now: the appends already scheduled on the loop (such as the
        waiters the previous fsync woke) get into this one.
        """
        if self._flushing:
            self._flush_wanted = True
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _unflushed_segments(self) -> list[LogSegment]:
        return [
            s for s in self.segments if s.next_offset > self.recovery_point or not s.indexes_synced
        ]

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        if self._flushing:
            self._flush_wanted = True
            return
        if self._closed:
            self._release_waiters(None)  # what a clean close synced
            self._release_waiters(KafkaStorageError(f"log {self.dir} closed before its fsync"))
            return
        end = self.log_end_offset
        segments = self._unflushed_segments()
        for s in segments:
            s.acquire()  # keep descriptors open even if retention deletes them meanwhile
        self._flushing = True
        self._flush_started = time.perf_counter()
        _FLUSHER.submit(
            asyncio.get_running_loop(), self._fsync, (segments, self.segments[-1]),
            self._flush_done, (end, segments),
        )  # fmt: skip

    def _flush_done(
        self, end: int, segments: list[LogSegment], exc: BaseException | None
    ) -> None:
        """On the loop, after the flusher thread's fsync: advance, wake, go on."""
        for s in segments:
            s.release()
        self._flushing = False
        if self.on_flush is not None and exc is None:
            self.on_flush((time.perf_counter() - self._flush_started) * 1000)
        if exc is not None:
            if isinstance(exc, OSError) and self._closed:
                # close() closed the descriptors under this fsync (a clean close
                # synced them itself: those waiters are covered)
                self._release_waiters(None)
                exc = KafkaStorageError(f"log {self.dir} closed during its fsync")
            elif isinstance(exc, OSError):
                # after a failed fsync the page cache state is unknown: stop taking writes
                self._failed = KafkaStorageError(f"fsync in {self.dir} failed: {exc}")
                self._failed.__cause__ = exc
                log.error("log_fsync_failed", dir=str(self.dir), error=str(exc))
                exc = self._failed
            self._flush_wanted = False
            self._release_waiters(exc)
            return
        self.recovery_point = max(self.recovery_point, min(end, self.log_end_offset))
        self._release_waiters(None)
        if (
            self._flush_wanted
            or self._flush_waiters
            or self.log_end_offset - self.recovery_point >= self.config.flush_messages
        ):
            self._flush_wanted = False
            self._request_flush()  # appends that arrived meanwhile: the next group

    def _release_waiters(self, exc: BaseException | None) -> None:
        """Wake the waiters the recovery point now covers (all of them, with ``exc``)."""
        covered, end, pending = self.recovery_point, self.log_end_offset, []
        for target, waiter in self._flush_waiters:
            if waiter.done():
                continue  # cancelled
            if exc is not None:
                waiter.set_exception(exc)
            elif covered >= min(target, end):
                waiter.set_result(None)
            else:
                pending.append((target, waiter))
        self._flush_waiters = pending

    def _fsync(self, segments: list[LogSegment], active: LogSegment | None) -> None:
        for segment in segments:
            segment.flush(indexes=segment is not active)
        if self._dir_dirty:
            self._dir_dirty = False
            fsync_dir(self.dir, self.io)
        self.leader_epoch_cache.write(self.io)

    def _arm_flush_timer(self) -> None:
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(self.config.flush_ms / 1000, self._on_flush_timer)

    def _on_flush_timer(self) -> None:
        self._flush_timer = None
        if self.recovery_point < self.log_end_offset:
            self._request_flush()

    def flush_sync(self) -> None:
        """Blocking fsync of everything (shutdown, tools)."""
        end = self.log_end_offset
        self._fsync(self._unflushed_segments(), self.segments[-1])
        self.recovery_point = max(self.recovery_point, end)

    # --- reads -------------------------------------------------------------------

    def _segment_index(self, offset: int) -> int:
        # bisect on the segments themselves: no list of base offsets built per read
        return max(0, bisect.bisect_right(self.segments, offset, key=_base_offset) - 1)

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        max_offset: int | None = None,
        min_one_batch: bool = True,
    ) -> ReadResult:
        """Whole batches from the one holding ``fetch_offset``, ending before ``max_offset``.

        ``max_offset`` is the high watermark for consumers and the log end for
        followers (default).  At most ``max_bytes``, except that with
        ``min_one_batch`` the first batch comes whole however large (KIP-74).
        Release the result (or use it as a context manager) once sent.
        """
        start, end = self._log_start_offset, self.log_end_offset
        if not start <= fetch_offset <= end:
            raise OffsetOutOfRangeError(
                f"fetch offset {fetch_offset} outside [{start}, {end}] of {self.dir.name}"
            )
        max_offset = end if max_offset is None else min(max_offset, end)
        result = ReadResult([], start, end, self._high_watermark)
        remaining, offset = max_bytes, fetch_offset
        for segment in self.segments[self._segment_index(fetch_offset) :]:
            if offset >= max_offset:
                break
            position, size, complete = segment.read_range(
                offset, max_offset, remaining, min_one_batch and not result.slices
            )
            if size:
                result.slices.append(FileSlice(segment, position, size))
                remaining -= size
            if not complete or remaining <= 0:
                break
            offset = segment.next_offset
        return result

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after the log start offset whose
        timestamp is >= ``timestamp`` (ListOffsets by time, offsetsForTimes).

        The indexes find the first batch whose max timestamp reaches it; only the records
        of that batch are read (the next one's, should its header have overstated).
        """
        start = self._log_start_offset
        for segment in self.segments[self._segment_index(start) :]:
            for position, header in segment.batches_reaching(timestamp, start):
                found = _first_record(segment, position, header, start,
                                      lambda ts: ts >= timestamp)  # fmt: skip
                if found is not None:
                    return found
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(offset, timestamp) for ListOffsets -3 (MAX_TIMESTAMP, KIP-734): the first record
        carrying the largest timestamp, read from the earliest batch whose header has it."""
        best = None
        for segment in self.segments:
            if segment.size and (best is None or segment.max_timestamp > best.max_timestamp):
                best = segment
        if best is None or best.max_timestamp < 0:
            return None
        start, top = self._log_start_offset, best.max_timestamp
        found = best.find_batch(max(best.offset_of_max_timestamp, start))
        if found is not None:
            record = _first_record(best, found[0], found[1], start, lambda ts: ts == top)
            if record is not None:
                return record
        return max(best.offset_of_max_timestamp, start), top

    # --- truncation, deletion, retention -------------------------------------------

    async def truncate_to_async(self, offset: int) -> None:
        """``truncate_to`` for the event loop: the files cut at once, the leader-epoch file
        and checkpoints (fsyncs) written in a thread; returns once they are durable."""
        moved = self.truncate_to(offset, persist=False)
        if moved is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.persist_truncation, moved)

    async def truncate_fully_and_start_at_async(self, offset: int) -> None:
        self.truncate_fully_and_start_at(offset, persist=False)
        await asyncio.get_running_loop().run_in_executor(None, self.persist_truncation, True)

    def persist_truncation(self, start_moved: bool) -> None:
        """Blocking: the leader-epoch file (replication relies on it afterwards) and, when
        the log start moved, the checkpoints, which must not be allowed to undo it."""
        self.leader_epoch_cache.write(self.io)
        if start_moved and self.checkpoint_hook is not None:
            self.checkpoint_hook()

    def truncate_to(self, offset: int, *, persist: bool = True) -> bool | None:
        """Drop every batch at or above ``offset`` (the batch holding it included).

        Replication calls this with batch boundaries, and the log end becomes
        ``offset``; inside a batch, the log end becomes that batch's base offset.
        Below the log start offset the log restarts empty at ``offset``, as Kafka does.
        Without ``persist`` the caller runs ``persist_truncation`` with the result
        (None: nothing was cut).
        """
        if offset >= self.log_end_offset:
            return None
        if self.truncated_below is None or offset < self.truncated_below:
            self.truncated_below = offset
        now = self._clock_ms()
        full = offset < self._log_start_offset or offset <= self.segments[0].base_offset
        if not full:
            i = self._segment_index(offset)
            for segment in self.segments[i + 1 :]:
                segment.delete()
            del self.segments[i + 1 :]
            last = self.segments[-1]
            last.truncate_to(offset)
            if not last.offset_index.mutable:
                last.offset_index.make_mutable()
                last.time_index.make_mutable()
                last.created_ms = now
        if full or self.log_end_offset < self._log_start_offset:
            # below the log start (or the batch holding offset straddled it): restart empty
            for segment in self.segments:
                segment.delete()
            self.segments = [self._new_segment(offset, now)]
            start_moved, self._log_start_offset = offset != self._log_start_offset, offset
        else:
            start_moved = False
        end = self.log_end_offset
        self.high_watermark = min(self._high_watermark, end)
        self.recovery_point = min(self.recovery_point, end)
        self.leader_epoch_cache.truncate_from_end(end)
        if persist:
            self.persist_truncation(start_moved)
        log.info("log_truncated", dir=str(self.dir), log_end_offset=end)
        return start_moved

    def truncate_fully_and_start_at(self, offset: int, *, persist: bool = True) -> None:
        """Drop every batch and continue empty at ``offset`` (Kafka's truncateFullyAndStartAt):
        a follower whose log end fell below the leader's log start starts over there."""
        for segment in self.segments:
            segment.delete()
        self.segments = [self._new_segment(offset, self._clock_ms())]
        self.truncated_below = -1  # nothing is clean any more
        self._log_start_offset = offset
        self.recovery_point = offset
        self.high_watermark = offset
        self.leader_epoch_cache.entries, self.leader_epoch_cache.dirty = [], True
        if persist:
            self.persist_truncation(True)
        log.info("log_restarted", dir=str(self.dir), log_start_offset=offset)

    def delete_records(self, before_offset: int) -> int:
        """DeleteRecords: advance the log start offset, drop whole segments below it.

        Returns the new log start offset.  ``before_offset`` above the high
        watermark is OFFSET_OUT_OF_RANGE, as in Kafka.  The manager persists the
        new start offset in log-start-offset-checkpoint.
        """
        if before_offset > self._high_watermark:
            raise OffsetOutOfRangeError(
                f"delete_records({before_offset}) above high watermark {self._high_watermark}"
            )
        self.maybe_increment_log_start_offset(before_offset)
        return self._log_start_offset

    def maybe_increment_log_start_offset(self, offset: int) -> bool:
        """Raise the log start offset to ``offset`` (never above the high watermark, never
        down) and drop the segments wholly below it; returns whether it moved.

        Kafka's maybeIncrementLogStartOffset: DeleteRecords on a leader, and a follower
        taking its leader's log start offset from every fetch response, so that records
        deleted on the leader never come back when a follower leads.
        """
        offset = min(offset, self._high_watermark)
        if offset <= self._log_start_offset:
            return False
        self._log_start_offset = offset
        self.leader_epoch_cache.truncate_from_start(offset)
        self._delete_oldest(lambda seg, nxt: nxt.base_offset <= self._log_start_offset)
        return True

    def delete_retention_breached(self, now_ms: int | None = None) -> int:
        """One retention pass (retention.ms, retention.bytes, log start); segments deleted.

        Time and size retention apply only when cleanup.policy includes ``delete``:
        a compacted topic (Connect's internal topics, ``_schemas``, changelogs) keeps
        its data however old, as in Kafka's deleteOldSegments.  Segments below the
        log start offset (DeleteRecords, a follower following its leader) go always.
        """
        now = self._clock_ms() if now_ms is None else now_ms
        deleted = 0
        config = self.config
        if config.delete and config.retention_ms >= 0:
            retention_ms = config.retention_ms
            deleted += self._delete_oldest(
                lambda seg, nxt: now - seg.largest_timestamp_ms() > retention_ms
            )
        if config.delete and config.retention_bytes >= 0:
            excess = self.size - config.retention_bytes

            def over_size(seg: LogSegment, nxt: LogSegment) -> bool:
                nonlocal excess
                if excess - seg.size < 0:
                    return False
                excess -= seg.size
                return True

            deleted += self._delete_oldest(over_size)
        deleted += self._delete_oldest(lambda seg, nxt: nxt.base_offset <= self._log_start_offset)
        return deleted

    def _delete_oldest(self, deletable: Callable[[LogSegment, LogSegment], bool]) -> int:
        """Delete segments from the oldest while ``deletable(segment, next)``; never the active."""
        count = 0
        while len(self.segments) > 1 and deletable(self.segments[0], self.segments[1]):
            segment = self.segments.pop(0)
            segment.delete()
            count += 1
            log.info(
                "segment_deleted", dir=str(self.dir), base_offset=segment.base_offset,
                next_offset=segment.next_offset,
            )  # fmt: skip
        if count:
            new_start = self.segments[0].base_offset
            if new_start > self._log_start_offset:
                self._log_start_offset = new_start
                self.leader_epoch_cache.truncate_from_start(new_start)
            self._high_watermark = max(self._high_watermark, self._log_start_offset)
            self.recovery_point = max(self.recovery_point, self._log_start_offset)
        return count

    # --- lifetime ----------------------------------------------------------------

    def _stop_background(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    def close(self, *, clean: bool = True) -> None:
        """Flush, trim the active indexes, close files.  In-flight slices become invalid.

        ``clean=False`` closes descriptors only, like a killed process would.
        """
        self._closed = True
        self._stop_background()
        if clean:
            self.segments[-1].on_roll()  # trimmed indexes are trusted at the next open
            for segment in self.segments:
                segment.trim_indexes()  # a cut a roll left to a thread that has not run yet
            if self._failed is None:
                self._fsync(self._unflushed_segments(), None)
                self.recovery_point = self.log_end_offset
        for segment in self.segments:
            segment.close()

    def delete(self) -> None:
        """Remove the partition directory; open slices keep their descriptors until released."""
        self._closed = True
        self._stop_background()
        for segment in self.segments:
            segment.delete(rename=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def _base_offset(segment: LogSegment) -> int:
    return segment.base_offset


def _repair_max_timestamps(
    view: memoryview, batches: list[tuple[int, BatchHeader]]
) -> set[int] | None:
    """Give each CreateTime batch whose header's max_timestamp is absent or wrong the max of
    its records' timestamps (in ``batches``); returns the positions of those batches (None if
    none), whose headers and CRCs the append rewrites.  Kafka's LogValidator does this.

    Only a header whose max_timestamp is below its base_timestamp (the first record's
    timestamp as every producer writes it; -1 from sarama 1.22) has its records read: a
    plausible header is trusted, which keeps the record walk off the normal append path.
    """
    repaired = None  # no set built on the normal path
    for i, (pos, header) in enumerate(batches):
        if header[8] < header[7]:  # max_timestamp < base_timestamp
            true_max = batch_max_timestamp(view, pos)
            if true_max is not None and true_max != header[8]:
                batches[i] = (pos, header._replace(max_timestamp=true_max))
                repaired = repaired or set()
                repaired.add(pos)
    return repaired


def _first_record(
    segment: LogSegment, position: int, header: BatchHeader, start: int,
    wanted: Callable[[int], bool],
) -> tuple[int, int] | None:
    """(offset, timestamp) of the batch's first record at or after ``start`` whose timestamp
    is ``wanted``; the batch's own (base offset, max timestamp) when its records cannot be
    read here (a codec that is not installed), as the batch-level answer."""
    try:
        records = record_timestamps(segment.read_batch(position, header))
        if records is not None:
            return next(((o, ts) for o, ts in records if o >= start and wanted(ts)), None)
    except RecordError:
        pass
    return max(header.base_offset, start), header.max_timestamp


class _Flusher:
    """The threads that run fsyncs for every log: up to MAX_THREADS at once.

    Like the default executor, minus its per-call machinery (a concurrent
    Future chained to an asyncio one, a task per flush): a job is a plain
    tuple on a queue, and the result comes back as one ``call_soon_threadsafe``.
    That halves the thread round trip, which is most of a group commit's cost
    on a disk with a fast fsync.  Threads start on demand and are daemons.
    """

    MAX_THREADS = 8

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Start empty (also in a forked child, which has none of the parent's threads)."""
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        work: Callable[..., object],
        args: tuple,
        done: Callable[..., None],
        done_args: tuple,
    ) -> None:
        """Run ``work(*args)`` on a flusher thread, then ``done(*done_args, exc)`` on ``loop``
        (``exc`` is what ``work`` raised, else None)."""
        with self._lock:
            self._queued += 1
            start = self._queued > self._idle and self._threads < self.MAX_THREADS
            if start:
                self._threads += 1
        if start:
            threading.Thread(target=self._run, name="odradek-flusher", daemon=True).start()
        self._jobs.put((loop, work, args, done, done_args))

    def _run(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            loop, work, args, done, done_args = self._jobs.get()
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            exc = None
            try:
                work(*args)
            except BaseException as error:  # noqa: BLE001 - handed to the loop
                exc = error
            try:
                loop.call_soon_threadsafe(done, *done_args, exc)
            except RuntimeError:  # the loop closed meanwhile: nobody waits any more
                pass
            del loop, work, args, done, done_args, exc


_FLUSHER = _Flusher()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_FLUSHER._reset)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    # asyncio's documented low-level accessor: None instead of raising (append is hot)
    return asyncio._get_running_loop()

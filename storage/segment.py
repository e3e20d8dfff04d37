"""One log segment: a ``.log`` file of record batches plus its two indexes.

Files are named by the segment's base offset, 20 digits:
``00000000000000000000.log``, ``.index``, ``.timeindex``.  The ``.log`` holds
batches back to back, exactly as appended (see protocol.records for the
layout); it is written with pwritev and read with pread/sendfile, never
mmap'd, because recovery and truncate_to shrink it.

A segment that is deleted while fetch slices still point into it is renamed to
``*.deleted`` at once (so a restart never resurrects it) and its descriptors
are closed and files unlinked when the last reference is released.  This
reference count replaces Kafka's ``file.delete.delay.ms`` grace period.

Descriptors are a bounded budget (storage.handles): a segment opens its ``.log``
and maps its indexes on use, and the segment LRU closes the least recently used
ones.  Every method that touches the files pins the segment for its duration
(``@_uses_files``), as a fetch slice or a running fsync does until released, so
nothing closes a descriptor under a reader or writer, in any thread.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import structlog

from odradek.protocol.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    BatchHeader,
    CorruptRecordError,
    RecordError,
    parse_header,
    validate_batch,
)
from odradek.storage.config import LogConfig
from odradek.storage.errors import CorruptIndexError, KafkaStorageError
from odradek.storage.handles import DESCRIPTORS_PER_SEGMENT, Closable, OpenFiles
from odradek.storage.index import OffsetIndex, TimeIndex
from odradek.storage.io import IOV_MAX, FileIO

log = structlog.get_logger(__name__)

DELETED_SUFFIX = ".deleted"


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


_F = TypeVar("_F", bound=Callable[..., Any])


def _uses_files(method: _F) -> _F:
    """Pin the segment (its files open) while ``method`` runs."""

    @functools.wraps(method)
    def pinned(self: LogSegment, *args: Any, **kwargs: Any) -> Any:
        self.acquire()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.release()

    return pinned  # type: ignore[return-value]


class LogSegment(Closable):
    def __init__(
        self,
        directory: Path,
        base_offset: int,
        config: LogConfig,
        io: FileIO,
        *,
        active: bool,
        now_ms: int,
        open_files: OpenFiles,
        suffix: str = "",
    ) -> None:
        """``suffix`` names files the log cleaner writes (``.cleaned``, then ``.swap``)
        before they replace the segments they were cleaned from (``rename_suffix``)."""
        self.base_offset = base_offset
        self.config = config
        self.io = io
        self.open_files = open_files
        # a FileIO subclass that overrides pwrite only (a fault injector) keeps seeing every write
        self._vectored = type(io).pwritev is not FileIO.pwritev or type(io).pwrite is FileIO.pwrite
        stem = directory / segment_name(base_offset)
        self.log_path = directory / (stem.name + ".log" + suffix)
        self.fd = -1  # open only while the segment LRU keeps it so (see _open_files)
        # the aborted-transaction index of the markers in this segment (storage.txn_index),
        # written by the partition's AbortedTxnIndex; deleted with the segment
        # (the cleaner writes a cleaned group's under the group's suffix)
        self.txn_index_path = directory / (stem.name + ".txnindex" + suffix)
        self.refs = 0
        self.deleted = False
        self.size = 0
        self.created_ms = now_ms
        self.indexes_synced = True
        # the indexes open their files only for a moment (mapped on use); then the .log
        self.offset_index = open_files.run(lambda: OffsetIndex(
            directory / (stem.name + ".index" + suffix), base_offset, config.segment_index_bytes,
            mutable=active, io=io,
        ))
        self.time_index = open_files.run(lambda: TimeIndex(
            directory / (stem.name + ".timeindex" + suffix), base_offset,
            config.segment_index_bytes, mutable=active, io=io,
        ))
        self.acquire()  # opens the .log, creating it when new
        try:
            self.size = os.fstat(self.fd).st_size
        finally:
            self.release()
        self._reset_state()

    def _reset_state(self) -> None:
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self.roll_base_timestamp: int | None = None  # first batch's max timestamp
        self.bytes_since_index = 0
        self.missed_index_entries = 0

    def __repr__(self) -> str:
        return f"LogSegment({self.base_offset}..{self.next_offset}, {self.size} bytes)"

    # --- writing ---------------------------------------------------------------

    def append(self, buf: bytes | bytearray | memoryview, batches: list[tuple[int, BatchHeader]]) -> None:
        """Write ``buf`` (whole, stamped batches) at the end, then index them.

        On any OSError the file is cut back to its old size and the error is
        re-raised as KafkaStorageError, so a failed append leaves no trace.
        """
        self.append_vectored(
            [buf], len(buf),
            [(pos, h.base_offset, h.size, h.max_timestamp, h.next_offset) for pos, h in batches],
        )  # fmt: skip

    @_uses_files
    def append_vectored(
        self, buffers: list, size: int, batches: list[tuple[int, int, int, int, int]]
    ) -> None:
        """Write ``buffers`` (``size`` bytes in all: whole, stamped batches) at the end
        in one pwritev, then index them.

        ``batches`` holds ``(position in the written bytes, base offset, size,
        max timestamp, next offset)`` of each batch, as written.  On any OSError
        the file is cut back to its old size and the error is re-raised as
        KafkaStorageError, so a failed append leaves no trace.
        """
        start = self.size
        try:
            if not self._vectored:
                self._write_joined(buffers, size, start)
            elif len(buffers) > IOV_MAX or self.io.pwritev(self.fd, buffers, start) != size:
                self._write_rest(buffers, size, start)
        except OSError as exc:
            try:
                self.io.ftruncate(self.fd, start)
            except OSError:
                log.error("segment_truncate_after_failed_write_failed", path=str(self.log_path))
            raise KafkaStorageError(f"append to {self.log_path} failed: {exc}") from exc
        self.size = start + size
        observe = self._observe
        for pos, base_offset, batch_size, max_timestamp, next_offset in batches:
            observe(start + pos, base_offset, batch_size, max_timestamp, next_offset)

    def _write_rest(self, buffers: list, size: int, start: int) -> None:
        """pwritev after a short write, or with more than IOV_MAX buffers: from the
        start again (the bytes already written are rewritten, the same)."""
        pending = [memoryview(b).cast("B") for b in buffers]
        written, i = 0, 0
        while written < size:
            while not len(pending[i]):
                i += 1
            n = self.io.pwritev(self.fd, pending[i : i + IOV_MAX], start + written)
            if n <= 0:
                raise OSError(errno.EIO, "pwritev wrote nothing")
            written += n
            while n and n >= len(pending[i]):
                n -= len(pending[i])
                i += 1
            if n:
                pending[i] = pending[i][n:]

    def _write_joined(self, buffers: list, size: int, start: int) -> None:
        """One pwrite of a joined copy, for a FileIO that only overrides pwrite."""
        with memoryview(b"".join(buffers)) as view:
            written = 0
            while written < size:
                n = self.io.pwrite(self.fd, view[written:], start + written)
                if n <= 0:
                    raise OSError(errno.EIO, "pwrite wrote nothing")
                written += n

    def _observe_header(self, header: BatchHeader, position: int) -> None:
        self._observe(position, header.base_offset, header.size, header.max_timestamp,
                      header.next_offset)  # fmt: skip

    def _observe(
        self, position: int, base_offset: int, size: int, max_timestamp: int, next_offset: int
    ) -> None:
        """Account for a batch now in the file: offsets, timestamps, sparse indexes."""
        if self.bytes_since_index > self.config.index_interval_bytes:
            if not self.offset_index.mutable:
                self.missed_index_entries += 1  # the writer would have indexed this batch
            self.offset_index.append(base_offset, position)
            self.time_index.append(self.max_timestamp, self.offset_of_max_timestamp)
            self.bytes_since_index = 0
        self.bytes_since_index += size
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = base_offset
        if self.roll_base_timestamp is None:
            self.roll_base_timestamp = max_timestamp
        self.next_offset = next_offset

    def should_roll(self, incoming_bytes: int, incoming_max_timestamp: int, now_ms: int) -> bool:
        if self.size == 0:
            return False
        if self.size + incoming_bytes > self.config.segment_bytes:
            return True
        offsets, times = self.offset_index, self.time_index
        if offsets.entries >= offsets.max_entries or times.entries >= times.max_entries:
            return True  # is_full, inlined: this runs on every append
        # Kafka measures segment.ms between record timestamps when they exist, so
        # replaying old data does not roll on every batch; else by creation time.
        base = self.roll_base_timestamp
        if base is not None and base >= 0 and incoming_max_timestamp >= 0:
            return incoming_max_timestamp - base > self.config.segment_ms
        return now_ms - self.created_ms > self.config.segment_ms

    @_uses_files
    def on_roll(self, *, trim: bool = True) -> None:
        """The segment stops growing: record the final max timestamp, seal the indexes and
        cut them to their entries (``trim=False``: the caller runs ``trim_indexes`` later,
        off the event loop)."""
        if self.size:
            self.time_index.append(self.max_timestamp, self.offset_of_max_timestamp)
        self.offset_index.seal()
        self.time_index.seal()
        if trim:
            self.trim_indexes()
        self.indexes_synced = False

    def trim_indexes(self) -> None:
        """Cut both sealed indexes to their entries (blocking; by path, any thread)."""
        self.offset_index.trim()
        self.time_index.trim()

    @_uses_files
    def flush(self, *, indexes: bool) -> None:
        """fsync the .log, and the indexes if asked.

        The active segment's indexes are never trusted after an unclean stop
        (recovery rebuilds them from the recovery point's segment on), so only
        rolled segments need theirs synced: once, after the roll.
        """
        self.io.fsync(self.fd)
        if indexes:
            self.offset_index.flush()
            self.time_index.flush()
            self._flush_txn_index()
            self.indexes_synced = True

    def _flush_txn_index(self) -> None:
        """fsync the segment's .txnindex (storage.txn_index), when it has one."""
        try:
            fd = os.open(self.txn_index_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            self.io.fsync(fd)
        finally:
            os.close(fd)

    # --- reading ---------------------------------------------------------------

    @_uses_files
    def read_header(self, position: int) -> BatchHeader:
        """The header at ``position``, checked to lie wholly inside the file."""
        return self._read_header(position)

    def _read_header(self, position: int) -> BatchHeader:
        data = os.pread(self.fd, HEADER_SIZE, position)
        header = parse_header(data)
        if header.batch_length < MIN_BATCH_LENGTH or position + header.size > self.size:
            raise CorruptRecordError(
                f"{self.log_path}@{position}: batch length {header.batch_length} "
                f"does not fit a {self.size}-byte segment"
            )
        return header

    def headers_from(self, position: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch from ``position``; the segment stays pinned
        until the iteration ends (or the iterator is dropped)."""
        self.acquire()
        try:
            while position < self.size:
                header = self._read_header(position)
                yield position, header
                position += header.size
        finally:
            self.release()

    @_uses_files
    def find_batch(self, offset: int) -> tuple[int, BatchHeader] | None:
        """The first batch whose last offset is >= ``offset``, or None."""
        if offset >= self.next_offset:
            return None
        _, start = self.offset_index.lookup(offset)
        for position, header in self.headers_from(start):
            if header.last_offset >= offset:
                return position, header
        return None

    @_uses_files
    def read_range(
        self, fetch_offset: int, max_offset: int, max_bytes: int, min_one_batch: bool
    ) -> tuple[int, int, bool]:
        """(position, size, complete) of whole batches from the one holding fetch_offset.

        Batches end before ``max_offset`` and fit ``max_bytes``, except that the
        first batch is returned whole when ``min_one_batch`` (KIP-74).
        ``complete`` says the range reached the segment end, so a read may go on.
        """
        found = self.find_batch(fetch_offset)
        if found is None:
            return 0, 0, True
        start, _ = found
        if max_offset >= self.next_offset and self.size - start <= max_bytes:
            return start, self.size - start, True  # the tailing consumer: no walk needed
        end = start
        for position, header in self.headers_from(start):
            if header.last_offset >= max_offset:
                return start, end - start, False
            if position + header.size - start > max_bytes and not (min_one_batch and end == start):
                return start, end - start, False
            end = position + header.size
        return start, end - start, True

    def batches_reaching(self, timestamp: int, start_offset: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch, in order, whose max timestamp is >= ``timestamp``
        and which ends at or after ``start_offset``: where a search by time reads records.

        The time index says where to start (every batch before its entry is older), and the
        offset index how far to skip for ``start_offset`` (Kafka's findOffsetByTimestamp).
        """
        if self.max_timestamp < timestamp:
            return
        for position, header in self.headers_from(self._time_search_start(timestamp, start_offset)):
            if header.max_timestamp >= timestamp and header.last_offset >= start_offset:
                yield position, header

    @_uses_files
    def _time_search_start(self, timestamp: int, start_offset: int) -> int:
        entry = self.time_index.lookup(timestamp)
        from_offset = max(entry[1] if entry else self.base_offset, start_offset)
        return self.offset_index.lookup(from_offset)[1]

    @_uses_files
    def read_batch(self, position: int, header: BatchHeader) -> bytes:
        return os.pread(self.fd, header.size, position)

    @_uses_files
    def largest_timestamp_ms(self) -> int:
        """For retention.ms: the max timestamp, or the file's mtime when batches have none."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        return int(os.fstat(self.fd).st_mtime * 1000)

    # --- loading and recovery ----------------------------------------------------

    @_uses_files
    def load(self) -> None:
        """Trust the indexes (after a clean shutdown): check them, walk the tail.

        Only the batches after the last index entry are read (headers only), to
        learn next_offset and the max timestamp.  Anything inconsistent raises
        CorruptIndexError/CorruptRecordError and the caller recovers instead.
        """
        for index in (self.offset_index, self.time_index):
            if not index.existed and self.size:
                raise CorruptIndexError(f"{index.path} is missing")
            index.sanity_check(self.size)
        self.load_tail()
        if self.offset_of_max_timestamp >= self.next_offset and self.size:
            raise CorruptIndexError(f"{self.time_index.path}: points past the segment end")
        if self.missed_index_entries:
            raise CorruptIndexError(f"{self.offset_index.path}: entries missing at the end")

    @_uses_files
    def recover(self, on_batch: Callable[[BatchHeader], None]) -> int:
        """Re-validate every batch and rebuild both indexes; cut at the first bad one.

        A batch must be whole, have magic 2, a matching CRC, a consistent count,
        and a base offset that continues from the previous batch (the CRC does
        not cover the first 16 bytes).  Returns the number of bytes truncated.
        """
        mutable = self.offset_index.mutable
        for index in (self.offset_index, self.time_index):
            if not index.mutable:
                index.make_mutable()
            index.reset()
        self._reset_state()
        position, expected = 0, self.base_offset
        while position < self.size:
            try:
                prefix = os.pread(self.fd, LOG_OVERHEAD, position)
                size = LOG_OVERHEAD + int.from_bytes(prefix[8:12], "big", signed=True)
                if len(prefix) < LOG_OVERHEAD or size < HEADER_SIZE or position + size > self.size:
                    raise CorruptRecordError(f"batch length does not fit at {position}")
                header = validate_batch(os.pread(self.fd, size, position), 0, None,
                                        produced=False)  # fmt: skip
                if header.base_offset < expected:  # gaps are normal after log cleaning
                    raise CorruptRecordError(
                        f"base offset {header.base_offset}, expected at least {expected}"
                    )
            except RecordError as exc:
                log.warning(
                    "segment_recovery_truncated", path=str(self.log_path), position=position,
                    truncated_bytes=self.size - position, error=str(exc),
                )  # fmt: skip
                break
            self._observe_header(header, position)
            on_batch(header)
            position += size
            expected = header.next_offset
        truncated = self.size - position
        if truncated:
            self.io.ftruncate(self.fd, position)
            self.size = position
        if not mutable:
            self.on_roll()
        return truncated

    @_uses_files
    def truncate_to(self, offset: int) -> int:
        """Drop the batch holding ``offset`` and everything after; returns bytes dropped."""
        found = self.find_batch(offset)
        if found is None:
            return 0
        position, header = found
        for index in (self.offset_index, self.time_index):
            index.truncate_to_offset(header.base_offset)
        self.io.ftruncate(self.fd, position)
        dropped, self.size = self.size - position, position
        self.load_tail()
        return dropped

    @_uses_files
    def load_tail(self) -> None:
        """Re-derive next offset and max timestamp from the (truncated) indexes and tail."""
        self._reset_state()
        if self.size:
            self.roll_base_timestamp = self.read_header(0).max_timestamp
        last_time = self.time_index.last_entry()
        if last_time is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last_time
        last_index = self.offset_index.last_entry()
        position = last_index[1] if last_index else 0
        for pos, header in self.headers_from(position):
            if last_index is not None and pos == position and header.base_offset != last_index[0]:
                raise CorruptIndexError(
                    f"{self.offset_index.path}: entry says offset {last_index[0]} at {pos}, "
                    f"the batch there starts at {header.base_offset}"
                )
            self._observe_header(header, pos)

    # --- lifetime ----------------------------------------------------------------

    def acquire(self) -> None:
        """Pin the segment with its files open (reopened if the LRU closed them)."""
        open_files = self.open_files
        with open_files.lock:
            self.refs += 1
            open_files.budget.pin(self)
            if self.fd < 0:
                try:
                    open_files.open(self, DESCRIPTORS_PER_SEGMENT, self._open_files)
                except BaseException:
                    self.refs -= 1
                    open_files.unpin(self)
                    raise

    def release(self) -> None:
        open_files = self.open_files
        with open_files.lock:
            self.refs -= 1
            if self.deleted and self.refs == 0:
                self._destroy()
            open_files.unpin(self)

    def _open_files(self) -> None:
        if self.deleted:
            raise KafkaStorageError(f"{self.log_path} was deleted")
        self.fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644)

    def close_handles(self) -> None:
        """Close the .log and unmap the indexes (the LRU's call: the segment is unpinned);
        the next use reopens them."""
        self.offset_index.close()
        self.time_index.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def rename_suffix(self, old: str, new: str) -> None:
        """Rename the three files from ``<name><old>`` to ``<name><new>`` (the log last, so
        a ``.log<new>`` file means its indexes were renamed before it)."""
        for index in (self.offset_index, self.time_index):
            index.rename(index.path.with_name(index.path.name.removesuffix(old) + new))
        txn_path = self.txn_index_path.with_name(self.txn_index_path.name.removesuffix(old) + new)
        if self.txn_index_path.exists():
            os.rename(self.txn_index_path, txn_path)
        self.txn_index_path = txn_path
        new_path = self.log_path.with_name(self.log_path.name.removesuffix(old) + new)
        os.rename(self.log_path, new_path)
        self.log_path = new_path

    def delete(self, *, rename: bool = True) -> None:
        """Delete now, or once the last in-flight slice releases it."""
        if self.deleted:
            return
        self.deleted = True
        if rename:
            try:
                new = self.log_path.with_name(self.log_path.name + DELETED_SUFFIX)
                os.rename(self.log_path, new)
                self.log_path = new
                for index in (self.offset_index, self.time_index):
                    index.rename(index.path.with_name(index.path.name + DELETED_SUFFIX))
                # renamed (or only renamed here when absent) so that the unlink at the last
                # release cannot hit the .txnindex of a cleaned segment installed at this base
                new = self.txn_index_path.with_name(self.txn_index_path.name + DELETED_SUFFIX)
                if self.txn_index_path.exists():
                    os.rename(self.txn_index_path, new)
                self.txn_index_path = new
            except FileNotFoundError:
                pass  # the whole directory is going away
        if self.refs == 0:
            self._destroy()

    def _destroy(self) -> None:
        self.close()
        for path in (self.log_path, self.offset_index.path, self.time_index.path, self.txn_index_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        with self.open_files.lock:
            self.close_handles()
            self.open_files.budget.closed(self)


"""The log cleaner: Kafka's log compaction for ``cleanup.policy=compact`` (and ``compact,delete``).

A compacted log keeps at least the latest record of every key.  As in Kafka's LogCleaner:

1. Choose (``choose_log_to_clean``, pure) the compacted log whose dirty share is the
   largest above its ``min.cleanable.dirty.ratio``, or one whose oldest dirty record is
   older than ``max.compaction.lag.ms``, or whose kept tombstones reached their delete
   horizon.  A log is split at two offsets::

       log start       first dirty offset            first uncleanable offset     log end
       |---- clean ----|----------- dirty -----------|----- uncleanable ---------|
                        (cleaner-offset-checkpoint)   (active segment, min.compaction.lag.ms,
                                                       high watermark)

   Only whole segments below the first uncleanable offset are cleaned: never the active one.
2. Build an offset map of the dirty section: key -> latest offset, keys hashed with MD5 as
   Kafka does (16 bytes whatever the key), up to the entries ``log.cleaner.dedupe.buffer.size``
   allows per thread; a full map ends the pass early (the rest is cleaned next time).
3. Rewrite the segments from the log start to the map's end in groups that fit
   ``segment.bytes`` (and the index size, and int32 relative offsets), keeping for each record
   ``plan_batch`` decides on: the latest record of its key, tombstones until their delete
   horizon, the last batch of each idempotent producer (empty if need be, so producer state
   and sequence numbers survive), offsets unchanged (gaps are normal).  A batch whose records
   all stay is copied byte for byte; one that loses records is rewritten with its own codec.
4. KIP-534: a batch holding kept tombstones gets a delete horizon the first time it is
   cleaned: attribute bit 6 set and its base timestamp = now + ``delete.retention.ms``.  The
   horizon is in the data, so every replica and every restart agree on it.
5. Swap each group in crash-safely with Kafka's suffixes::

       write  <base>.log.cleaned (+ .index, .timeindex, .txnindex .cleaned), fsync (thread)
       check the log did not change (else delete the .cleaned files)         (loop)
       rename *.cleaned -> *.swap (the .log last)                             (loop)
       rename the old segments *.deleted (unlinked once no fetch reads them)  (loop)
       rename *.swap -> final names; then fsync the directory                 (loop; thread)

   On load (``recover_swaps``), ``*.cleaned`` files are deleted (the old segments are whole)
   and every ``*.swap`` is completed: segments whose base offset lies in
   [swap base, swap next offset) are deleted and the swap renamed in place (Kafka's
   LogLoader).  A segment of a group whose records were all removed and which lies past the
   swap's last record survives that rule, as in Kafka: stale values, never lost or
   duplicated offsets, and the next pass cleans them.
6. Record the map's end in ``cleaner-offset-checkpoint`` (data directory, Kafka's format).

Threads: the CPU work (parsing records, hashing keys, recompressing) runs in
``log.cleaner.threads`` threads, never on the event loop; the loop only chooses logs and
installs finished segments (renames, like retention's).  A thread rather than a process:
the work reads the same open segment files the loop serves fetches from and hands back a
LogSegment the log installs; a process would need the files reopened by path (racing
retention's renames) and every result rebuilt in the parent.  The price is the GIL: a
cleaning thread takes turns with the loop every ``sys.getswitchinterval()`` (5 ms), which
``python -m bench cleaner`` measures as the produce latency on another partition while a log
is cleaned.  ``log.cleaner.io.max.bytes.per.second`` throttles reads plus writes of all
threads together (Kafka's Throttler).

Transactions (Kafka's rules, CleanedTransactions): the cleaner stays below the last stable
offset; records of aborted transactions are left out of the offset map and dropped; a
marker stays while records of its transaction are in the segments cleaned with it, then
gets a delete horizon and goes after it.  The aborted-transaction index entries of a group
whose ABORT markers stay are written to the cleaned segment's ``.txnindex`` (swapped in with
it) and the log's in-memory index follows (``AbortedTxnIndex.replaced``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import structlog

from odradek.protocol.records import (
    CONTROL_ABORT,
    CONTROL_BIT,
    CONTROL_COMMIT,
    DELETE_HORIZON_BIT,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    MIN_BATCH_LENGTH,
    BatchHeader,
    CorruptRecordError,
    RawRecord,
    RecordError,
    control_type,
    encode_batch,
    parse_header,
    read_records,
)
from odradek.storage.checkpoint import fsync_dir, read_offsets, write_offsets
from odradek.storage.config import INT32_MAX, LogConfig
from odradek.storage.handles import OpenFiles
from odradek.storage.io import FileIO
from odradek.storage.segment import LogSegment, segment_name
from odradek.storage.txn_index import AbortedTxn
from odradek.storage.txn_index import encode as encode_aborted_txn

if TYPE_CHECKING:
    from odradek.storage.log import Log

log = structlog.get_logger(__name__)

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
CHECKPOINT_FILE = "cleaner-offset-checkpoint"
# Bytes of memory one offset-map entry costs here: a dict slot plus a 16-byte digest
# and an int (Kafka's SkimpyOffsetMap packs 24). tracemalloc on CPython 3.11 measured 133
# for 200,000 entries (a dict's size doubles in steps, so some fills cost more).
MAP_ENTRY_BYTES = 150
READ_CHUNK = 1 << 20  # bytes read from a segment at a time
WRITE_CHUNK = 1 << 20  # bytes of cleaned batches buffered before a write
DOUBLE_MAX = 1.7976931348623157e308  # log.cleaner.io.max.bytes.per.second's default: no limit


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """The broker's log.cleaner.* keys."""

    threads: int = 1
    dedupe_buffer_size: int = 134217728
    io_max_bytes_per_second: float = DOUBLE_MAX
    backoff_ms: int = 15000
    load_factor: float = 0.9

    @property
    def map_entries(self) -> int:
        """Keys one thread's offset map holds: its share of the dedupe buffer, filled to
        the load factor (Kafka: dedupe.buffer.size / threads, 24 bytes an entry)."""
        per_thread = self.dedupe_buffer_size / max(1, self.threads)
        return max(1, int(per_thread * self.load_factor / MAP_ENTRY_BYTES))


# --- choosing a log (pure) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    base_offset: int
    end_offset: int  # the next segment's base offset; the log end for the active segment
    size: int
    largest_timestamp: int  # its max timestamp (its creation time when batches have none)
    first_batch_timestamp: int = -1


@dataclass(frozen=True, slots=True)
class LogState:
    """What choosing needs of one compacted log; ``segments[-1]`` is the active one."""

    key: Hashable
    segments: tuple[SegmentInfo, ...]
    log_start_offset: int
    high_watermark: int  # at most the last stable offset (an open transaction may abort)
    checkpoint: int  # the cleaner's checkpoint: where the dirty section starts (-1: none)
    min_cleanable_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = 2**63 - 1
    delete_horizon_ms: int | None = None  # earliest horizon of the tombstones last kept


@dataclass(frozen=True, slots=True)
class LogToClean:
    key: Hashable
    first_dirty_offset: int
    first_uncleanable_offset: int
    clean_bytes: int
    cleanable_bytes: int
    forced: bool  # max.compaction.lag.ms passed, or kept tombstones reached their horizon

    @property
    def cleanable_ratio(self) -> float:
        total = self.clean_bytes + self.cleanable_bytes
        return self.cleanable_bytes / total if total else 0.0


def cleanable_offsets(state: LogState, now_ms: int) -> tuple[int, int, bool]:
    """(first dirty offset, first uncleanable offset, forced): Kafka's cleanableOffsets.

    The checkpoint is used when it lies inside the log, else the log start.  The first
    uncleanable offset is the base of the first segment that is active, reaches past the
    high watermark (a follower may still truncate it) or the last stable offset, or, in the dirty section, holds a
    record younger than ``min.compaction.lag.ms``.  Forced: the first dirty segment's first
    batch is older than ``max.compaction.lag.ms`` (KIP-354), or the earliest delete horizon
    of the tombstones kept last time has passed (KIP-534: they can go now).
    """
    segments = state.segments
    log_end = segments[-1].end_offset
    first_dirty = state.checkpoint
    if not state.log_start_offset <= first_dirty <= log_end:
        first_dirty = state.log_start_offset
    first_uncleanable = segments[-1].base_offset
    lag = state.min_compaction_lag_ms
    for seg in segments[:-1]:
        if seg.end_offset > state.high_watermark:
            first_uncleanable = seg.base_offset
            break
        if lag > 0 and seg.end_offset > first_dirty and seg.largest_timestamp > now_ms - lag:
            first_uncleanable = seg.base_offset
            break
    forced = False
    for seg in segments[:-1]:
        if seg.end_offset > first_dirty and seg.base_offset < first_uncleanable:
            ts = seg.first_batch_timestamp if seg.first_batch_timestamp >= 0 else seg.largest_timestamp
            forced = 0 <= ts < now_ms - state.max_compaction_lag_ms
            break
    if state.delete_horizon_ms is not None and now_ms >= state.delete_horizon_ms:
        forced = True
    return first_dirty, max(first_dirty, first_uncleanable), forced


def log_to_clean(state: LogState, now_ms: int) -> LogToClean:
    first_dirty, first_uncleanable, forced = cleanable_offsets(state, now_ms)
    clean = sum(s.size for s in state.segments[:-1] if s.end_offset <= first_dirty)
    dirty = sum(s.size for s in state.segments[:-1]
                if s.end_offset > first_dirty and s.base_offset < first_uncleanable)  # fmt: skip
    return LogToClean(state.key, first_dirty, first_uncleanable, clean, dirty, forced)


def choose_log_to_clean(
    states: Sequence[LogState], now_ms: int, busy: frozenset | set = frozenset()
) -> LogToClean | None:
    """The log to clean next (Kafka's grabFilthiestCompactedLog), or None.

    Eligible: not ``busy`` (another thread cleans it), and either dirtier than its
    ``min.cleanable.dirty.ratio``, or forced with something to clean (dirty bytes for the
    compaction lag, any bytes below the first uncleanable offset for a passed horizon).
    Of those, the highest dirty ratio.
    """
    best: LogToClean | None = None
    for state in states:
        if state.key in busy or len(state.segments) < 2:
            continue
        ltc = log_to_clean(state, now_ms)
        horizon_due = state.delete_horizon_ms is not None and now_ms >= state.delete_horizon_ms
        eligible = ltc.cleanable_ratio > state.min_cleanable_ratio and ltc.cleanable_bytes > 0
        if ltc.forced and (ltc.cleanable_bytes > 0 or (horizon_due and ltc.clean_bytes > 0)):
            eligible = True
        if eligible and (best is None or ltc.cleanable_ratio > best.cleanable_ratio):
            best = ltc
    return best


def group_segments(
    segments: Sequence[tuple[int, int, int, int]], max_bytes: int, max_index_bytes: int
) -> list[list[int]]:
    """Indices of consecutive segments to rewrite together (Kafka's groupSegmentsBySize).

    ``segments`` are (base offset, end offset, log bytes, index bytes).  A group grows while
    its log bytes fit ``max_bytes`` (segment.bytes), its index bytes ``max_index_bytes``
    (segment.index.bytes) and its offsets an int32 relative to its first base offset.
    """
    groups: list[list[int]] = []
    i = 0
    while i < len(segments):
        base, _, size, index_size = segments[i]
        group = [i]
        i += 1
        while i < len(segments):
            _, end, next_size, next_index = segments[i]
            if (size + next_size > max_bytes or index_size + next_index > max_index_bytes
                    or end - 1 - base > INT32_MAX):  # fmt: skip
                break
            size += next_size
            index_size += next_index
            group.append(i)
            i += 1
        groups.append(group)
    return groups


# --- deciding what stays (pure) ---------------------------------------------------------


def key_digest(key: bytes) -> bytes:
    """The offset map's key: MD5, as Kafka's SkimpyOffsetMap hashes keys."""
    return hashlib.md5(key, usedforsecurity=False).digest()


class CleanedTransactions:
    """Which batches of a walk in offset order belong to aborted transactions, which
    transaction markers may go, and which aborted transactions the cleaned segment's
    ``.txnindex`` keeps (Kafka's LogCleaner.CleanedTransactionMetadata).

    ``aborted``: the aborted transactions that overlap the walk (their ABORT marker at or
    after its start, their first record before its end).  A data batch of an aborted
    transaction can be discarded (its records are dropped: read_committed consumers never
    see them, and an aborted value must not shadow an older committed one in the offset
    map).  An ABORT marker is needed while records of its transaction were seen in this
    walk (its index entry is kept with it); a COMMIT marker while records of its
    transaction were.  A marker no longer needed goes once its delete horizon has passed
    (``plan_batch``), so consumers reading past it in the meantime still see it."""

    def __init__(self, aborted: Sequence[AbortedTxn]) -> None:
        self._aborted = sorted(aborted, key=lambda e: e.first_offset)
        self._next = 0
        self._ongoing_aborted: dict[int, list] = {}  # producer id -> [entry, records seen]
        self._ongoing_committed: set[int] = set()
        self.kept: list[AbortedTxn] = []  # the .txnindex of what the walk wrote

    def _start_up_to(self, offset: int) -> None:
        while self._next < len(self._aborted) and self._aborted[self._next].first_offset <= offset:
            entry = self._aborted[self._next]
            self._next += 1
            self._ongoing_aborted.setdefault(entry.producer_id, [entry, False])

    def on_data_batch(self, header: BatchHeader) -> bool:
        """True: the batch belongs to an aborted transaction (its records can go)."""
        self._start_up_to(header.last_offset)
        if not header.is_transactional:
            return False
        ongoing = self._ongoing_aborted.get(header.producer_id)
        if ongoing is not None:
            ongoing[1] = True
            return True
        self._ongoing_committed.add(header.producer_id)
        return False

    def on_control_batch(self, header: BatchHeader, marker: int) -> bool:
        """True: the marker (``control_type``) is no longer needed (may go at its horizon)."""
        self._start_up_to(header.last_offset)
        if header.records_count == 0:
            return True  # emptied by an earlier pass
        if marker == CONTROL_ABORT:
            ongoing = self._ongoing_aborted.pop(header.producer_id, None)
            if ongoing is not None and ongoing[1]:
                self.kept.append(ongoing[0])
                return False
            return True
        if marker == CONTROL_COMMIT:
            if header.producer_id in self._ongoing_committed:
                self._ongoing_committed.discard(header.producer_id)
                return False
            return True
        return False


class BatchPlan(NamedTuple):
    """``copy`` the batch as is, ``drop`` it, or ``rewrite`` it with ``kept`` (possibly
    none: an idempotent producer's last batch) and ``delete_horizon_ms``."""

    action: str
    kept: list[RawRecord]
    delete_horizon_ms: int | None


COPY, DROP, REWRITE = "copy", "drop", "rewrite"


def plan_batch(
    header: BatchHeader,
    records: list[RawRecord] | None,
    latest_offset: Callable[[bytes], int],
    now_ms: int,
    delete_retention_ms: int,
    last_of_producer: bool,
    txn_discardable: bool = False,
) -> BatchPlan:
    """What of one batch survives cleaning (Kafka's LogCleaner.shouldRetainRecord and
    checkBatchRetention, with MemoryRecords.filterTo).

    A record stays when it has a key, no later offset of that key is in the offset map
    (``latest_offset`` of its key digest, -1 when absent) and, for a tombstone, its batch
    has no delete horizon yet or the horizon is still ahead.  A kept tombstone in a batch
    without a horizon sets one: now + delete.retention.ms.  A batch with nothing left is
    dropped, unless it is the last batch of its producer, which stays empty (its header
    carries producer id, epoch and sequences).  ``records`` None: not readable here (a
    codec not installed): the batch stays whole.

    Transactions (``txn_discardable`` from CleanedTransactions): a data batch of an
    aborted transaction loses all its records.  A transaction marker stays whole while
    needed; once not, it gets a delete horizon (now + delete.retention.ms) and goes when
    that has passed (Kafka's checkBatchRetention, filterTo's containsMarkerForEmptyTxn).
    """
    if header.attributes & CONTROL_BIT:
        if not txn_discardable or records is None:
            return BatchPlan(COPY, [], None)
        horizon = header.delete_horizon_ms
        if horizon is None:
            return BatchPlan(REWRITE, records, now_ms + delete_retention_ms)
        if now_ms < horizon:
            return BatchPlan(COPY, [], None)
        if not last_of_producer:
            return BatchPlan(DROP, [], None)
        return BatchPlan(REWRITE, [], horizon) if records else BatchPlan(COPY, [], None)
    if txn_discardable:
        if not last_of_producer:
            return BatchPlan(DROP, [], None)
        return BatchPlan(REWRITE, [], None) if records else BatchPlan(COPY, [], None)
    if records is None:
        return BatchPlan(COPY, [], None)
    horizon = header.delete_horizon_ms
    kept: list[RawRecord] = []
    tombstones = False
    for record in records:
        if record.key is None:
            continue  # Kafka drops keyless records from compacted logs
        if record.offset < latest_offset(key_digest(record.key)):
            continue  # a later record of the key is in the map
        if record.value is None:
            if horizon is not None and now_ms >= horizon:
                continue
            tombstones = True
        kept.append(record)
    set_horizon = tombstones and horizon is None
    if not kept and not last_of_producer:
        return BatchPlan(DROP, [], None)
    if len(kept) == len(records) and not set_horizon:
        return BatchPlan(COPY, [], None)
    if set_horizon:
        horizon = now_ms + delete_retention_ms
    return BatchPlan(REWRITE, kept, horizon)


def rewrite_batch(header: BatchHeader, kept: list[RawRecord], delete_horizon_ms: int | None) -> bytes:
    """The batch holding only ``kept``: same base offset, last offset, producer, epoch,
    sequence, leader epoch and codec (Kafka keeps the last offset for the producer's
    sequence numbers); the base timestamp is the delete horizon when there is one."""
    attributes = header.attributes
    if delete_horizon_ms is not None:
        attributes |= DELETE_HORIZON_BIT
        base_timestamp = delete_horizon_ms
    else:
        base_timestamp = kept[0].timestamp if kept else header.base_timestamp
    if kept and header.timestamp_type != LOG_APPEND_TIME:
        max_timestamp = max(r.timestamp for r in kept)
    else:
        max_timestamp = header.max_timestamp
    return encode_batch(
        kept, base_offset=header.base_offset, last_offset_delta=header.last_offset_delta,
        partition_leader_epoch=header.partition_leader_epoch, attributes=attributes,
        base_timestamp=base_timestamp, max_timestamp=max_timestamp,
        producer_id=header.producer_id, producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
    )  # fmt: skip


# --- throttling -----------------------------------------------------------------------


class Throttler:
    """Kafka's Throttler: after every ``check_interval_s`` of work, sleep long enough that
    the bytes observed since the last check average at most ``rate`` per second.  Shared
    by all cleaner threads (the limit is for them together)."""

    def __init__(self, rate: float, *, check_interval_s: float = 0.3,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:  # fmt: skip
        self.rate = rate
        self.check_interval_s = check_interval_s
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._start = clock()
        self._observed = 0.0

    def maybe_throttle(self, observed: int) -> None:
        if self.rate >= DOUBLE_MAX:
            return
        with self._lock:
            self._observed += observed
            now = self._clock()
            elapsed = now - self._start
            if elapsed < self.check_interval_s:
                return
            wanted = self._observed / self.rate  # seconds this much should have taken
            pause = wanted - elapsed
            if pause > 0:
                self._sleep(pause)
            self._start, self._observed = self._clock(), 0.0


# --- the work of one pass (in a cleaner thread) -----------------------------------------


class CleaningAborted(Exception):
    """The log changed under the cleaner (truncated, deleted, closed): try again later."""


def read_batches(segment: LogSegment, size: int, check: Callable[[], None] | None = None
                 ) -> Iterator[tuple[int, BatchHeader, bytes]]:  # fmt: skip
    """(position, header, batch bytes) of each batch of ``segment`` below ``size``, read in
    READ_CHUNK preads (the bytes past ``size``, appended since, are not read); ``check``
    runs before each read (it raises to stop)."""
    fd = segment.fd
    position = 0
    buf, buf_start = b"", position
    while position < size:
        at = position - buf_start
        if at + HEADER_SIZE > len(buf):
            if check is not None:
                check()
            buf, buf_start, at = os.pread(fd, min(READ_CHUNK, size - position), position), position, 0
        header = parse_header(buf, at)
        if header.batch_length < MIN_BATCH_LENGTH or position + header.size > size:
            raise CorruptRecordError(f"{segment.log_path}@{position}: batch does not fit")
        if at + header.size > len(buf):
            buf, buf_start, at = os.pread(fd, max(READ_CHUNK, header.size), position), position, 0
            buf = buf[: size - position]
        yield position, header, buf[at : at + header.size]
        position += header.size


def earliest_horizon(segments: list[LogSegment], sizes: list[int], below: int,
                     throttler: Throttler, abort: threading.Event) -> int | None:
    """The earliest delete horizon (KIP-534, batch attribute bit 6) of the batches below
    offset ``below`` (in a cleaner thread); None when no batch has one."""
    earliest: int | None = None

    def check() -> None:
        if abort.is_set():
            raise CleaningAborted("the cleaner is stopping")

    for segment, size in zip(segments, sizes, strict=True):
        if segment.base_offset >= below:
            break
        for _, header, _ in read_batches(segment, size, check):
            throttler.maybe_throttle(header.size)
            horizon = header.delete_horizon_ms
            if horizon is not None and (earliest is None or horizon < earliest):
                earliest = horizon
    return earliest


@dataclass
class PassStats:
    bytes_read: int = 0
    bytes_written: int = 0
    batches_copied: int = 0
    batches_rewritten: int = 0
    batches_dropped: int = 0
    records_dropped: int = 0


@dataclass
class CleaningJob:
    """One pass over one log, prepared on the event loop: the segments (with the sizes
    they had, and acquired so retention cannot close them) and the offsets that bound it."""

    log: Log
    segments: list[LogSegment]  # every segment of the log, the active one last
    sizes: list[int]
    to_clean: LogToClean
    map_capacity: int
    now_ms: int
    abort: threading.Event
    throttler: Throttler
    stats: PassStats = field(default_factory=PassStats)
    offset_map: dict[bytes, int] = field(default_factory=dict)
    map_end: int = 0
    last_of_producer: dict[int, int] = field(default_factory=dict)  # id -> last data offset
    producer_epochs: dict[int, int] = field(default_factory=dict)  # id -> epoch of its last batch
    min_horizon: int | None = None
    aborted: list[AbortedTxn] = field(default_factory=list)  # the log's, when the pass began
    kept_txns: dict[int, list[AbortedTxn]] = field(default_factory=dict)  # group base -> .txnindex

    def aborted_between(self, start: int, end: int) -> list[AbortedTxn]:
        """The aborted transactions overlapping [start, end) (Kafka's collectAbortedTransactions)."""
        return [e for e in self.aborted if e.last_offset >= start and e.first_offset < end]

    def check(self) -> None:
        if self.abort.is_set():
            raise CleaningAborted("the cleaner is stopping")

    @staticmethod
    def pause() -> None:
        """Let the event loop's thread have the GIL now (sleep(0) releases it): without
        this it waits up to sys.getswitchinterval() (5 ms) after each of its syscalls
        while the cleaner computes (python -m bench cleaner measures the difference)."""
        time.sleep(0)

    def _note_producer(self, header: BatchHeader) -> None:
        """Each producer's last entry (Kafka's lastRecordsOfActiveProducers): its last data
        batch, unless a marker of a newer epoch followed it (an epoch bump forgets the
        producer's batches), in which case that epoch's marker."""
        pid = header.producer_id
        if not header.attributes & CONTROL_BIT:
            self.last_of_producer[pid] = header.last_offset
        elif self.producer_epochs.get(pid) != header.producer_epoch:
            self.last_of_producer.pop(pid, None)
        self.producer_epochs[pid] = header.producer_epoch

    def is_last_of_producer(self, header: BatchHeader) -> bool:
        pid = header.producer_id
        if pid < 0:
            return False
        if header.attributes & CONTROL_BIT:
            return pid not in self.last_of_producer and self.producer_epochs.get(pid) == header.producer_epoch
        return self.last_of_producer.get(pid) == header.last_offset

    def build_map(self) -> None:
        """The dirty section's keys -> latest offset (whole batches, until the map is full),
        and each producer's last batch in the whole log."""
        first_dirty = self.to_clean.first_dirty_offset
        upper = self.to_clean.first_uncleanable_offset
        self.map_end = first_dirty
        full = False
        offset_map, capacity = self.offset_map, self.map_capacity
        txns = CleanedTransactions(self.aborted_between(first_dirty, upper))
        for segment, size in zip(self.segments, self.sizes, strict=True):
            for _, header, data in read_batches(segment, size, self.check):
                if header.producer_id >= 0:
                    self._note_producer(header)
                if full or header.last_offset < first_dirty or header.base_offset >= upper:
                    continue
                if header.attributes & CONTROL_BIT:
                    txns.on_control_batch(header, control_type(data))
                    self.map_end = header.next_offset
                    continue
                if txns.on_data_batch(header):
                    self.map_end = header.next_offset  # aborted: its keys do not count
                    continue
                if len(offset_map) + header.records_count > capacity:
                    full = True
                    log.info("cleaner_offset_map_full", dir=str(self.log.dir), end=self.map_end)
                    continue
                self.stats.bytes_read += header.size
                try:
                    records = read_records(data)
                except RecordError:
                    full = True  # stop the map here: what follows stays as it is
                    continue
                for record in records:
                    if record.key is not None:
                        offset_map[key_digest(record.key)] = record.offset
                self.pause()
                self.map_end = header.next_offset
                self.throttler.maybe_throttle(header.size)
            self.check()
        if not full:
            self.map_end = max(self.map_end, upper)  # all of the dirty section is mapped

    def groups(self) -> list[list[int]]:
        """Indices (into ``segments``) of the groups to rewrite: whole segments from the
        log start whose base offset is below the map's end."""
        upper = max(self.map_end, self.to_clean.first_dirty_offset)
        candidates = []
        for i, segment in enumerate(self.segments[:-1]):
            if segment.base_offset >= upper or segment.base_offset >= self.to_clean.first_uncleanable_offset:
                break
            end = self.segments[i + 1].base_offset
            candidates.append((segment.base_offset, end, self.sizes[i],
                               segment.offset_index.entries * 8))  # fmt: skip
        config = self.log.config
        return group_segments(candidates, config.segment_bytes, config.segment_index_bytes)

    def clean_group(self, indices: list[int], config: LogConfig, io: FileIO) -> LogSegment:
        """Write the group's cleaned segment as ``<base>.*.cleaned`` and fsync it; returns
        it (open) for the log to install.  The rename to ``*.swap`` is the install's (on
        the loop, once it checked the log did not change): a ``.swap`` written from
        segments a truncation has since cut would bring cut records back at recovery."""
        first = self.segments[indices[0]]
        directory = first.log_path.parent
        stem = segment_name(first.base_offset)
        for suffix in (".log", ".index", ".timeindex", ".txnindex"):
            for tail in (CLEANED_SUFFIX, SWAP_SUFFIX):
                (directory / (stem + suffix + tail)).unlink(missing_ok=True)  # an aborted pass's
        cleaned = LogSegment(directory, first.base_offset, config, io, active=True,
                             now_ms=self.now_ms, open_files=first.open_files,
                             suffix=CLEANED_SUFFIX)  # fmt: skip
        try:
            kept = self._write_group(indices, cleaned)
            if kept:  # the aborted transactions whose markers stay, with the segment
                with open(cleaned.txn_index_path, "wb") as f:
                    f.write(b"".join(encode_aborted_txn(e) for e in kept))
                    os.fsync(f.fileno())
            self.kept_txns[first.base_offset] = kept
            cleaned.on_roll()
            cleaned.flush(indexes=True)
            mtime = max(os.fstat(self.segments[i].fd).st_mtime for i in indices)
            os.utime(cleaned.log_path, (mtime, mtime))  # retention.ms falls back on it
        except BaseException:
            cleaned.delete(rename=False)
            raise
        return cleaned

    def _write_group(self, indices: list[int], cleaned: LogSegment) -> list[AbortedTxn]:
        """Write the group's kept batches into ``cleaned``; returns the aborted
        transactions its ``.txnindex`` keeps."""
        end = self.segments[indices[-1] + 1].base_offset
        txns = CleanedTransactions(self.aborted_between(self.segments[indices[0]].base_offset, end))
        pending: list[bytes] = []
        placed: list[tuple[int, BatchHeader]] = []
        buffered = 0
        now, retention = self.now_ms, self.log.config.delete_retention_ms
        latest = self.offset_map.get

        def latest_offset(digest: bytes) -> int:
            return latest(digest, -1)

        def flush() -> None:
            nonlocal buffered
            if pending:
                cleaned.append(b"".join(pending), placed)
                self.stats.bytes_written += buffered
                self.throttler.maybe_throttle(buffered)
                pending.clear()
                placed.clear()
                buffered = 0

        for i in indices:
            self.check()
            for _, header, data in read_batches(self.segments[i], self.sizes[i], self.check):
                self.stats.bytes_read += header.size
                self.throttler.maybe_throttle(header.size)  # reads and writes count (Kafka's)
                try:
                    records: list[RawRecord] | None = read_records(data) if header.records_count else []
                except RecordError:
                    records = None
                self.pause()
                last = self.is_last_of_producer(header)
                if header.attributes & CONTROL_BIT:
                    discardable = txns.on_control_batch(header, control_type(data))
                else:
                    discardable = txns.on_data_batch(header)
                plan = plan_batch(header, records, latest_offset, now, retention, last,
                                  discardable)  # fmt: skip
                if plan.action == DROP:
                    self.stats.batches_dropped += 1
                    self.stats.records_dropped += header.records_count
                    continue
                if plan.action == COPY:
                    out, out_header = data, header
                    self.stats.batches_copied += 1
                    kept_tombstone = records is not None and any(r.value is None for r in records)
                    horizon = header.delete_horizon_ms if kept_tombstone else None
                    if header.attributes & CONTROL_BIT:
                        horizon = header.delete_horizon_ms  # a marker waiting for its horizon
                else:
                    out = rewrite_batch(header, plan.kept, plan.delete_horizon_ms)
                    out_header = parse_header(out)
                    self.stats.batches_rewritten += 1
                    self.stats.records_dropped += header.records_count - len(plan.kept)
                    horizon = plan.delete_horizon_ms if any(r.value is None for r in plan.kept) else None
                    if header.attributes & CONTROL_BIT and plan.kept:
                        horizon = plan.delete_horizon_ms  # a marker that goes at its horizon
                if horizon is not None and (self.min_horizon is None or horizon < self.min_horizon):
                    self.min_horizon = horizon
                placed.append((buffered, out_header))
                pending.append(out)
                buffered += len(out)
                if buffered >= WRITE_CHUNK:
                    flush()
        flush()
        return txns.kept


# --- crash recovery -----------------------------------------------------------------------


def recover_swaps(directory: Path, config: LogConfig, io: FileIO, now_ms: int,
                  open_files: OpenFiles) -> None:
    """Finish or roll back a cleaning a crash interrupted (Kafka's LogLoader), before the
    log's segments are opened: ``*.cleaned`` files go (the segments they were cleaned from
    are whole); each ``*.log.swap`` replaces the segments whose base offset lies in
    [its base, its next offset) and takes its final name.  Index files renamed ``.swap``
    without their ``.log`` (the rename is log last) were still a ``.cleaned`` log: they go."""
    for leftover in directory.glob("*" + CLEANED_SUFFIX):
        leftover.unlink()
    swaps = sorted(p for p in directory.glob("*.log" + SWAP_SUFFIX) if p.name.split(".")[0].isdigit())
    swap_bases = {int(p.name.split(".")[0]) for p in swaps}
    for stray in directory.glob("*" + SWAP_SUFFIX):
        if stray.name.split(".")[0].isdigit() and int(stray.name.split(".")[0]) not in swap_bases:
            stray.unlink()
    if not swaps:
        return
    opened = []
    for path in swaps:
        base = int(path.name.split(".")[0])
        segment = LogSegment(directory, base, config, io, active=False, now_ms=now_ms,
                             open_files=open_files, suffix=SWAP_SUFFIX)  # fmt: skip
        segment.recover(lambda header: None)
        opened.append(segment)
    low = min(s.base_offset for s in opened)
    high = max(max(s.next_offset, s.base_offset + 1) for s in opened)
    for path in directory.glob("*.log"):
        if path.stem.isdigit() and low <= int(path.stem) < high:
            for suffix in (".log", ".index", ".timeindex", ".txnindex"):
                path.with_suffix(suffix).unlink(missing_ok=True)
            log.info("cleaner_swap_replaced_segment", path=str(path))
    for segment in opened:
        segment.rename_suffix(SWAP_SUFFIX, "")
        segment.close()
        log.info("cleaner_swap_completed", path=str(segment.log_path))
    fsync_dir(directory, io)


# --- the cleaner ---------------------------------------------------------------------------


class LogCleaner:
    """Runs passes over the compacted logs of one LogManager, ``threads`` at a time.

    ``run()`` is a coroutine on the broker's loop: it chooses logs, hands each pass to a
    cleaner thread, installs the cleaned segments on the loop and checkpoints.
    """

    def __init__(self, logs: Callable[[], dict], data_dir: Path, config: CleanerConfig,
                 io: FileIO, clock_ms: Callable[[], int]) -> None:  # fmt: skip
        self._logs = logs
        self.data_dir = data_dir
        self.config = config
        self.io = io
        self._clock_ms = clock_ms
        self.checkpoints: dict = read_offsets(data_dir / CHECKPOINT_FILE)
        self.horizons: dict = {}  # earliest delete horizon of the tombstones a pass kept
        self.uncleanable: set = set()  # failed unexpectedly: skipped until a restart
        self.busy: set = set()
        self.abort = threading.Event()
        # its pauses end early when the cleaner stops (close() waits for the threads)
        self.throttler = Throttler(config.io_max_bytes_per_second, sleep=self.abort.wait)
        self._executor = ThreadPoolExecutor(max(1, config.threads), thread_name_prefix="odradek-cleaner")
        self._checkpoint_lock = threading.Lock()
        self._closed = False
        self.passes = 0  # completed passes (tests and metrics)
        self.bytes_cleaned = 0
        self.last_stats: PassStats | None = None
        # Kafka's LogCleaner and LogCleanerManager gauges (broker.metrics): of the last pass,
        # the offset map's fill, bytes written per byte read, seconds; of the last choice,
        # the chosen log's dirty ratio and when it was made (monotonic seconds)
        self.last_buffer_utilization = 0.0
        self.last_recopy_ratio = 0.0
        self.last_clean_time_s = 0.0
        self.dirtiest_ratio = 0.0
        self.time_of_last_run: float | None = None

    def states(self, now_ms: int) -> list[LogState]:
        states = []
        for tp, lg in self._logs().items():
            config = lg.config
            if not config.compact or tp in self.uncleanable:
                continue
            if lg.truncated_below is not None:
                # a truncation below the checkpoint: what it kept of the clean section is
                # dirty again (Kafka's LogCleanerManager.maybeTruncateCheckpoint)
                if self.checkpoints.get(tp, -1) > lg.truncated_below:
                    self.checkpoints[tp] = lg.truncated_below
                lg.truncated_below = None
            segments = lg.segments
            infos = tuple(
                SegmentInfo(
                    s.base_offset,
                    segments[i + 1].base_offset if i + 1 < len(segments) else s.next_offset,
                    s.size,
                    s.max_timestamp if s.max_timestamp >= 0 else s.created_ms,
                    s.roll_base_timestamp if s.roll_base_timestamp is not None else -1,
                )
                for i, s in enumerate(segments)
            )
            stable = lg.high_watermark
            if lg.last_stable_offset is not None:
                stable = min(stable, lg.last_stable_offset())
            states.append(LogState(
                tp, infos, lg.log_start_offset, stable, self.checkpoints.get(tp, -1),
                config.min_cleanable_dirty_ratio, config.min_compaction_lag_ms,
                config.max_compaction_lag_ms, self.horizons.get(tp),
            ))  # fmt: skip
        return states

    def grab(self) -> CleaningJob | None:
        """On the loop: the next log to clean, its segments acquired, or None."""
        now = self._clock_ms()
        chosen = choose_log_to_clean(self.states(now), now, self.busy)
        self.time_of_last_run = time.monotonic()
        self.dirtiest_ratio = chosen.cleanable_ratio if chosen is not None else 0.0
        if chosen is None:
            return None
        lg = self._logs()[chosen.key]
        segments = list(lg.segments)
        for s in segments:
            s.acquire()
        self.busy.add(chosen.key)
        return CleaningJob(lg, segments, [s.size for s in segments], chosen,
                           self.config.map_entries, now, self.abort, self.throttler,
                           aborted=list(lg.txn_index.entries))  # fmt: skip

    async def recover_horizons(self) -> None:
        """After a restart: the earliest delete horizon of each cleaned compacted log, read
        from its batch headers (KIP-534 keeps it in the data), so that its tombstones and
        markers still go when it passes, dirty or not (``horizons`` lives in memory)."""
        loop = asyncio.get_running_loop()
        for tp, lg in list(self._logs().items()):
            if not lg.config.compact or tp in self.horizons or tp in self.busy or self.checkpoints.get(tp, -1) < 0:
                continue
            segments = list(lg.segments)
            for s in segments:
                s.acquire()
            self.busy.add(tp)
            try:
                self.horizons[tp] = await loop.run_in_executor(
                    self._executor, earliest_horizon, segments, [s.size for s in segments],
                    self.checkpoints[tp], self.throttler, self.abort)
            except (OSError, RecordError, CleaningAborted) as exc:
                log.info("cleaner_horizon_scan_failed", dir=lg.dir.name, error=repr(exc))
            finally:
                for s in segments:
                    s.release()
                self.busy.discard(tp)

    async def clean(self, job: CleaningJob) -> None:
        """One pass: the map and each group in a cleaner thread, each install on the loop."""
        loop = asyncio.get_running_loop()
        tp = job.to_clean.key
        lg = job.log
        started = time.monotonic()
        try:
            await loop.run_in_executor(self._executor, job.build_map)
            for indices in job.groups():
                cleaned = await loop.run_in_executor(
                    self._executor, job.clean_group, indices, lg.config, self.io)
                old = [job.segments[i] for i in indices]
                if self._logs().get(tp) is not lg or not lg.replace_segments(
                        old, [job.sizes[i] for i in indices], cleaned):  # fmt: skip
                    cleaned.delete(rename=False)
                    raise CleaningAborted(f"{lg.dir.name} changed during cleaning")
                lg.txn_index.replaced({s.base_offset for s in old}, cleaned.base_offset,
                                      job.kept_txns.get(cleaned.base_offset, []))
            await loop.run_in_executor(self._executor, fsync_dir, lg.dir, self.io)
            self.checkpoints[tp] = max(job.map_end, job.to_clean.first_dirty_offset)
            self.horizons[tp] = job.min_horizon
            await loop.run_in_executor(self._executor, self.write_checkpoint)
            self.passes += 1
            self.bytes_cleaned += job.stats.bytes_read
            self.last_stats = job.stats
            elapsed = time.monotonic() - started
            self.last_clean_time_s = elapsed
            self.last_buffer_utilization = len(job.offset_map) / job.map_capacity
            self.last_recopy_ratio = job.stats.bytes_written / job.stats.bytes_read if job.stats.bytes_read else 0.0
            log.info(
                "log_cleaned", dir=lg.dir.name, first_dirty=job.to_clean.first_dirty_offset,
                end=job.map_end, read=job.stats.bytes_read, written=job.stats.bytes_written,
                dropped_records=job.stats.records_dropped, seconds=round(elapsed, 3),
            )  # fmt: skip
        except CleaningAborted as exc:
            log.info("log_cleaning_aborted", dir=lg.dir.name, reason=str(exc))
        except (OSError, RecordError) as exc:
            if self.abort.is_set() or self._logs().get(tp) is not lg:
                log.info("log_cleaning_aborted", dir=lg.dir.name, reason=repr(exc))
                return  # stopping, or the partition was deleted under the pass
            self.uncleanable.add(tp)
            log.error("log_cleaning_failed", dir=lg.dir.name, error=repr(exc))
        finally:
            for s in job.segments:
                s.release()
            self.busy.discard(tp)

    def uncleanable_bytes(self) -> int:
        logs = self._logs()
        return sum(logs[tp].size for tp in self.uncleanable if tp in logs)

    def write_checkpoint(self) -> None:
        logs = self._logs()
        with self._checkpoint_lock:
            write_offsets(self.data_dir / CHECKPOINT_FILE,
                          {tp: o for tp, o in self.checkpoints.items() if tp in logs}, self.io)

    async def run(self) -> None:
        """Clean until cancelled: up to ``threads`` passes at once, else sleep backoff.ms."""
        if self.config.threads <= 0:
            log.warning("log_cleaner_disabled", reason="log.cleaner.threads=0")
            return
        if self._closed:
            return
        self.abort.clear()  # a supervisor may run this again after a failure
        running: set[asyncio.Task] = set()
        try:
            await self.recover_horizons()
            while True:
                while len(running) < self.config.threads:
                    job = self.grab()
                    if job is None:
                        break
                    running.add(asyncio.ensure_future(self.clean(job)))
                if running:
                    _, running = await asyncio.wait(
                        running, timeout=self.config.backoff_ms / 1000,
                        return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                else:
                    await asyncio.sleep(self.config.backoff_ms / 1000)
        finally:
            self.abort.set()
            for task in running:
                task.cancel()

    def close(self) -> None:
        """Stop: passes in flight end at their next check; waits for the threads."""
        self._closed = True
        self.abort.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

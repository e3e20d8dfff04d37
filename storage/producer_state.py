"""Idempotent-producer state of one partition, with snapshots.

Per producer id: its epoch and the sequence ranges and offsets of its last five
batches (Kafka keeps five because a producer has at most five requests in flight
per partition). The rules on append, as Kafka applies them since KIP-360:

- an epoch older than the producer's current one: INVALID_PRODUCER_EPOCH;
- a retry of one of the last five batches (same epoch, same first and last
  sequence): a duplicate; the caller answers with the original offsets and
  appends nothing;
- a newer epoch must start at sequence 0, unless this partition has no state for
  the producer; within an epoch the first sequence must follow the last one
  (int32 wrap-around); otherwise OUT_OF_ORDER_SEQUENCE_NUMBER (that is also what a
  duplicate older than the last five gets);
- a producer this partition has no state for (new here, or expired after
  producer.id.expiration.ms) is accepted at any sequence.

Transactions (KIP-98): a producer's first transactional batch opens its transaction
here (``txn_first_offset``); the leader's COMMIT or ABORT marker (a control batch)
closes it and yields a ``CompletedTxn``, which the caller adds to the aborted-transaction
index when aborted. A producer with an open transaction may not write outside it
(INVALID_TXN_STATE). The first unstable offset is the first offset of the earliest
transaction that is open, or completed with a marker not yet below the high watermark;
the last stable offset is the smaller of it and the high watermark.

The state is rebuilt from the log: from the newest snapshot at or below the log
end, then by replaying batch headers after it (no record is read). Snapshots are
``<20-digit offset>.snapshot`` files in the partition directory: JSON with a CRC32C
of its body, written tmp + fsync + rename + directory fsync
(``storage.checkpoint.write_atomically``), describing the state *before* that
offset. ``snapshot_data`` copies the state (cheap, on the event loop);
``write_snapshot`` does the blocking part, in a thread when a loop runs. A damaged snapshot is skipped in favour of an older one or a full replay.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import crc32c

from odradek.protocol.errors import ErrorCode
from odradek.protocol.records import BatchHeader
from odradek.storage.checkpoint import write_atomically
from odradek.storage.io import FileIO

BATCHES_RETAINED = 5  # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN
INT32_MAX = 2**31 - 1
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOTS_KEPT = 3


class ProducerStateError(Exception):
    error_code = ErrorCode.UNKNOWN_SERVER_ERROR


class InvalidProducerEpochError(ProducerStateError):
    error_code = ErrorCode.INVALID_PRODUCER_EPOCH


class OutOfOrderSequenceError(ProducerStateError):
    error_code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


class InvalidTxnStateError(ProducerStateError):
    error_code = ErrorCode.INVALID_TXN_STATE


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # the marker's offset
    is_aborted: bool


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    producer_id: int
    epoch: int
    batches: deque = field(default_factory=lambda: deque(maxlen=BATCHES_RETAINED))
    last_update_ms: int = 0
    txn_first_offset: int = -1  # first offset of its open transaction here; -1: none

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


class DuplicateBatch(Exception):
    """A retry of a batch already in the log: answer with its original offsets."""

    def __init__(self, batch: BatchMetadata):
        super().__init__(f"duplicate of offsets {batch.first_offset}..{batch.last_offset}")
        self.batch = batch


def _last_seq(header: BatchHeader) -> int:
    return (header.base_sequence + header.last_offset_delta) % (INT32_MAX + 1)


def _in_sequence(last_seq: int, first_seq: int) -> bool:
    return first_seq == last_seq + 1 or (last_seq == INT32_MAX and first_seq == 0)


class ProducerStateManager:
    def __init__(self, directory: Path, expiration_ms: int = 86400000):
        self.directory = Path(directory)
        self.expiration_ms = expiration_ms
        self.producers: dict[int, ProducerEntry] = {}
        self.ongoing: dict[int, int] = {}  # producer id -> first offset of its open transaction
        # completed transactions whose marker is not yet below the high watermark
        self.unreplicated: deque[CompletedTxn] = deque()

    # -- append --------------------------------------------------------------------
    def check(self, header: BatchHeader, sequences: bool = True) -> None:
        """Validate a batch; raises DuplicateBatch or a ProducerStateError. A coordinator's
        own transactional batch (TxnOffsetCommit) has no sequence: ``sequences`` False."""
        entry = self.producers.get(header.producer_id)
        if entry is None:
            return  # no state here: any sequence (KIP-360)
        if header.producer_epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"Producer {header.producer_id} epoch {header.producer_epoch} is older than "
                f"{entry.epoch}")
        if entry.txn_first_offset >= 0 and not header.is_transactional:
            raise InvalidTxnStateError(
                f"Expected transactional write from producer {header.producer_id} at offset "
                f"{entry.txn_first_offset}, got a non-transactional one")
        if not sequences:
            return
        first, last = header.base_sequence, _last_seq(header)
        if header.producer_epoch == entry.epoch:
            for batch in entry.batches:
                if batch.first_seq == first and batch.last_seq == last:
                    raise DuplicateBatch(batch)
            if entry.batches and not _in_sequence(entry.last_seq, first):
                raise OutOfOrderSequenceError(
                    f"Producer {header.producer_id}: sequence {first} does not follow "
                    f"{entry.last_seq}")
        elif first != 0:
            raise OutOfOrderSequenceError(
                f"Producer {header.producer_id}: new epoch {header.producer_epoch} must start "
                f"at sequence 0, not {first}")

    def update(self, header: BatchHeader, base_offset: int, now_ms: int,
               control_type: int = -1) -> CompletedTxn | None:
        """Record a batch that is now in the log at ``base_offset``; for a transaction
        marker (``control_type`` 0 ABORT, 1 COMMIT) the transaction it completed, if any."""
        entry = self.producers.get(header.producer_id)
        if header.is_control:
            return self._marker(entry, header, base_offset, now_ms, control_type)
        if entry is None or entry.epoch != header.producer_epoch:
            txn_first = entry.txn_first_offset if entry is not None else -1
            entry = ProducerEntry(header.producer_id, header.producer_epoch, txn_first_offset=txn_first)
            self.producers[header.producer_id] = entry
        entry.batches.append(BatchMetadata(header.base_sequence, _last_seq(header), base_offset,
                                           base_offset + header.last_offset_delta,
                                           header.max_timestamp))
        entry.last_update_ms = now_ms
        if header.is_transactional and entry.txn_first_offset < 0:
            entry.txn_first_offset = base_offset
            self.ongoing[header.producer_id] = base_offset
        return None

    def _marker(self, entry: ProducerEntry | None, header: BatchHeader, offset: int, now_ms: int,
                control_type: int) -> CompletedTxn | None:
        """A COMMIT or ABORT marker: the producer's epoch moves to the marker's (batches of
        an older epoch no longer count), its open transaction here completes."""
        if entry is None:
            entry = self.producers[header.producer_id] = ProducerEntry(header.producer_id, header.producer_epoch)
        elif header.producer_epoch > entry.epoch:
            entry.epoch = header.producer_epoch
            entry.batches.clear()
        entry.last_update_ms = now_ms
        if control_type not in (0, 1):
            return None
        first = entry.txn_first_offset if entry.txn_first_offset >= 0 else offset
        entry.txn_first_offset = -1
        self.ongoing.pop(header.producer_id, None)
        done = CompletedTxn(header.producer_id, first, offset, control_type == 0)
        self.unreplicated.append(done)
        return done

    def first_unstable_offset(self) -> int | None:
        """The first offset of the earliest open (or not yet replicated) transaction."""
        firsts = list(self.ongoing.values())
        if self.unreplicated:
            firsts.append(min(t.first_offset for t in self.unreplicated))
        return min(firsts) if firsts else None

    def on_high_watermark(self, high_watermark: int) -> None:
        """Completed transactions whose marker is now below the high watermark are stable."""
        while self.unreplicated and self.unreplicated[0].last_offset < high_watermark:
            self.unreplicated.popleft()

    def last_stable_offset(self, high_watermark: int) -> int:
        self.on_high_watermark(high_watermark)
        first = self.first_unstable_offset()
        return high_watermark if first is None else min(first, high_watermark)

    def remove_expired(self, now_ms: int) -> list[int]:
        expired = [pid for pid, e in self.producers.items()
                   if now_ms - e.last_update_ms >= self.expiration_ms and e.txn_first_offset < 0]
        for pid in expired:
            del self.producers[pid]
        return expired

    # -- snapshots and recovery ------------------------------------------------
    def snapshot_offsets(self) -> list[int]:
        return sorted(int(p.name[:-len(SNAPSHOT_SUFFIX)]) for p in self.directory.glob("*" + SNAPSHOT_SUFFIX)
                      if p.name[:-len(SNAPSHOT_SUFFIX)].isdigit())

    def _path(self, offset: int) -> Path:
        return self.directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"

    def take_snapshot(self, offset: int) -> None:
        """Persist the state as of just before ``offset``; keep the newest few (blocking)."""
        self.write_snapshot(offset, self.snapshot_data(offset))

    def snapshot_data(self, offset: int) -> bytes:
        """The snapshot file's bytes for the state now, as of just before ``offset``."""
        body = json.dumps({"offset": offset, "producers": [
            {"producer_id": e.producer_id, "epoch": e.epoch, "last_update_ms": e.last_update_ms,
             "txn_first_offset": e.txn_first_offset, "batches": [[b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp]
                         for b in e.batches]} for e in self.producers.values()]}).encode()
        return b"%d\n" % crc32c.crc32c(body) + body

    def write_snapshot(self, offset: int, data: bytes, io: FileIO | None = None) -> None:
        """Write ``snapshot_data(offset)`` durably and prune old snapshots (blocking)."""
        write_atomically(self._path(offset), data, io=io)
        for old in self.snapshot_offsets()[:-SNAPSHOTS_KEPT]:
            self._path(old).unlink(missing_ok=True)

    def _read_snapshot(self, offset: int) -> dict[int, ProducerEntry] | None:
        try:
            crc, _, body = self._path(offset).read_bytes().partition(b"\n")
            if int(crc) != crc32c.crc32c(body):
                return None
            data = json.loads(body)
        except (OSError, ValueError):
            return None
        producers = {}
        for p in data["producers"]:
            entry = ProducerEntry(p["producer_id"], p["epoch"], last_update_ms=p["last_update_ms"],
                                  txn_first_offset=p.get("txn_first_offset", -1))
            entry.batches.extend(BatchMetadata(*b) for b in p["batches"])
            producers[entry.producer_id] = entry
        return producers

    def truncate_snapshots(self, end_offset: int) -> None:
        """Drop snapshots above ``end_offset`` (the log was truncated there)."""
        for offset in self.snapshot_offsets():
            if offset > end_offset:
                self._path(offset).unlink(missing_ok=True)

    def truncate_fully(self) -> None:
        """The log restarted empty (a follower behind the leader's log start): forget every
        producer and every snapshot, as Kafka's truncateFullyAndStartAt does. A snapshot
        kept from before would bring back sequences older than the batches that were
        deleted with the leader's log, and once this replica leads, the producer's next
        batch would be OUT_OF_ORDER_SEQUENCE_NUMBER instead of accepted as from a
        producer this partition has no state for."""
        self.producers, self.ongoing, self.unreplicated = {}, {}, deque()
        for offset in self.snapshot_offsets():
            self._path(offset).unlink(missing_ok=True)

    def load(self, log_end_offset: int, headers_from: Callable[[int], Iterable], now_ms: int,
             on_completed: Callable[[CompletedTxn | None, int], None] | None = None) -> int:
        """Rebuild from the newest good snapshot <= log end plus the batches after it.

        ``headers_from(offset)`` yields (base_offset, header, control type) of the log's
        batches from ``offset`` on. Returns the offset replay started from.
        ``on_completed(None, start)`` is called first (the aborted-transaction index drops
        what replay will write again), then once per completed transaction.
        """
        self.truncate_snapshots(log_end_offset)
        start, self.producers = 0, {}
        for offset in reversed(self.snapshot_offsets()):
            loaded = self._read_snapshot(offset)
            if loaded is not None:
                start, self.producers = offset, loaded
                break
        self.ongoing = {e.producer_id: e.txn_first_offset for e in self.producers.values()
                        if e.txn_first_offset >= 0}
        self.unreplicated = deque()
        if on_completed is not None:
            on_completed(None, start)
        self.replay(headers_from(start), now_ms, on_completed)
        return start

    def replay(self, batches: Iterable[tuple[int, BatchHeader, int]], now_ms: int,
               on_completed: Callable[[CompletedTxn | None, int], None] | None = None) -> None:
        """Apply (base_offset, header, control type) of batches; ``on_completed`` sees each
        transaction a marker completes (with the marker's offset)."""
        for base_offset, header, control in batches:
            if header.producer_id >= 0:
                done = self.update(header, base_offset, now_ms, control)
                if done is not None and on_completed is not None:
                    on_completed(done, base_offset)


def iter_log_headers(log, from_offset: int, chunk_bytes: int = 8 * 2**20
                     ) -> Iterator[tuple[int, BatchHeader, int]]:
    """(base_offset, header, control type) of every batch of ``log`` from ``from_offset``,
    reading headers only (and the one record of a control batch: its type; -1 otherwise)."""
    from odradek.protocol.records import HEADER_SIZE, control_type, parse_header

    offset = max(from_offset, log.log_start_offset)
    while offset < log.log_end_offset:
        with log.read(offset, chunk_bytes, None, True) as result:
            if not result.slices:
                return
            for s in result.slices:
                pos, end = s.position, s.position + s.size
                while pos + HEADER_SIZE <= end:
                    header = parse_header(os.pread(s.fd, HEADER_SIZE, pos))
                    if header.next_offset > offset:
                        control = -1
                        if header.is_control:
                            control = control_type(os.pread(s.fd, min(header.size, 256), pos))
                        yield header.base_offset, header, control
                        offset = header.next_offset
                    pos += header.size

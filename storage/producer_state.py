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

    # -- append --------------------------------------------------------------------
    def check(self, header: BatchHeader) -> None:
        """Validate a client batch; raises DuplicateBatch or a ProducerStateError."""
        entry = self.producers.get(header.producer_id)
        if entry is None:
            return  # no state here: any sequence (KIP-360)
        if header.producer_epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"Producer {header.producer_id} epoch {header.producer_epoch} is older than "
                f"{entry.epoch}")
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

    def update(self, header: BatchHeader, base_offset: int, now_ms: int) -> None:
        """Record a batch that is now in the log at ``base_offset``."""
        entry = self.producers.get(header.producer_id)
        if entry is None or entry.epoch != header.producer_epoch:
            entry = ProducerEntry(header.producer_id, header.producer_epoch)
            self.producers[header.producer_id] = entry
        entry.batches.append(BatchMetadata(header.base_sequence, _last_seq(header), base_offset,
                                           base_offset + header.last_offset_delta,
                                           header.max_timestamp))
        entry.last_update_ms = now_ms

    def remove_expired(self, now_ms: int) -> list[int]:
        expired = [pid for pid, e in self.producers.items()
                   if now_ms - e.last_update_ms >= self.expiration_ms]
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
             "batches": [[b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp]
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
            entry = ProducerEntry(p["producer_id"], p["epoch"], last_update_ms=p["last_update_ms"])
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
        self.producers = {}
        for offset in self.snapshot_offsets():
            self._path(offset).unlink(missing_ok=True)

    def load(self, log_end_offset: int, headers_from: Callable[[int], Iterable], now_ms: int) -> int:
        """Rebuild from the newest good snapshot <= log end plus the batches after it.

        ``headers_from(offset)`` yields (base_offset, header) of the log's batches
        from ``offset`` on. Returns the offset replay started from.
        """
        self.truncate_snapshots(log_end_offset)
        start, self.producers = 0, {}
        for offset in reversed(self.snapshot_offsets()):
            loaded = self._read_snapshot(offset)
            if loaded is not None:
                start, self.producers = offset, loaded
                break
        self.replay(headers_from(start), now_ms)
        return start

    def replay(self, batches: Iterable[tuple[int, BatchHeader]], now_ms: int) -> None:
        for base_offset, header in batches:
            if header.producer_id >= 0:
                self.update(header, base_offset, now_ms)


def iter_log_headers(log, from_offset: int, chunk_bytes: int = 8 * 2**20) -> Iterator[tuple[int, BatchHeader]]:
    """(base_offset, header) of every batch of ``log`` from ``from_offset``, reading headers only."""
    from odradek.protocol.records import HEADER_SIZE, parse_header

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
                        yield header.base_offset, header
                        offset = header.next_offset
                    pos += header.size

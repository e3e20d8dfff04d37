"""The aborted-transaction index: Kafka's ``.txnindex`` files beside the segments.

A read_committed consumer must know which transactions were aborted in the range it
reads (Fetch's aborted_transactions) to drop their records. Each ABORT marker adds one
entry, to the ``.txnindex`` file of the segment the marker landed in (named like the
segment, ``<20-digit base offset>.txnindex``). Kafka's format, entries of 34 bytes
back to back, big-endian::

    version int16 (0) | producer_id int64 | first_offset int64 | last_offset int64
    | last_stable_offset int64

first_offset: the transaction's first record here; last_offset: its ABORT marker;
last_stable_offset: the partition's LSO when the marker was written.

The index is also kept in memory (aborted transactions are rare next to records).
Recovery: entries at or after the offset the producer state replays from are dropped
(``truncate``) and the replay of the markers above it writes them again, so a crash
between a marker and its entry loses nothing. Segment deletion removes the file with
the segment (storage.segment); entries below the log start are skipped when read.

Durability: appends go through the log's ``FileIO`` (so a power-loss test sees them) and
are fsynced with the segment's other indexes when the segment is flushed after its roll
(``LogSegment.flush``), as Kafka's LogSegment.flush syncs its txnIndex: a marker in a
rolled segment is above no producer-state snapshot that recovery would trust without it.
"""

from __future__ import annotations

import bisect
import os
import struct
from pathlib import Path
from typing import NamedTuple

from odradek.storage.io import FileIO

SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34
VERSION = 0


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def encode(entry: AbortedTxn) -> bytes:
    return _ENTRY.pack(VERSION, *entry)


def decode(data: bytes) -> list[AbortedTxn]:
    """The entries of a file's bytes; a torn tail (a partial entry) is ignored."""
    out = []
    for pos in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
        version, *fields = _ENTRY.unpack_from(data, pos)
        if version != VERSION:
            break
        out.append(AbortedTxn(*fields))
    return out


class AbortedTxnIndex:
    def __init__(self, directory: Path, io: FileIO | None = None):
        self.directory = Path(directory)
        self.io = io or FileIO()
        self.entries: list[AbortedTxn] = []  # by last_offset (markers come in offset order)
        self._bases: dict[int, int] = {}  # marker offset -> base of the segment holding it

    def _path(self, segment_base: int) -> Path:
        return self.directory / f"{segment_base:020d}{SUFFIX}"

    def load(self) -> None:
        """Read every ``.txnindex`` file of the directory (blocking)."""
        entries = []
        for path in sorted(self.directory.glob("*" + SUFFIX)):
            stem = path.name[:-len(SUFFIX)]
            if not stem.isdigit():
                continue
            found = decode(path.read_bytes())
            entries += [(int(stem), e) for e in found]
        entries.sort(key=lambda se: se[1].last_offset)
        self.entries = [e for _, e in entries]
        self._bases = {e.last_offset: base for base, e in entries}

    def append(self, entry: AbortedTxn, segment_base: int) -> None:
        """Add the entry of an ABORT marker at ``entry.last_offset`` in that segment."""
        if self.entries and self.entries[-1].last_offset >= entry.last_offset:
            return  # replayed again (recovery): already there
        self.entries.append(entry)
        self._bases[entry.last_offset] = segment_base
        fd = os.open(self._path(segment_base), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.io.pwrite(fd, memoryview(encode(entry)), 0)  # O_APPEND: at the end
        finally:
            os.close(fd)

    def replaced(self, old_bases: set[int], new_base: int, kept: list[AbortedTxn]) -> None:
        """The log cleaner put one segment at ``new_base`` in place of the segments
        ``old_bases``, its ``.txnindex`` holding ``kept`` (written and renamed with the
        segment): the entries of the old segments become those."""
        stay = [e for e in self.entries if self._bases.get(e.last_offset) not in old_bases]
        for e in self.entries:
            if self._bases.get(e.last_offset) in old_bases:
                del self._bases[e.last_offset]
        for e in kept:
            self._bases[e.last_offset] = new_base
        self.entries = sorted(stay + kept, key=lambda e: e.last_offset)

    def truncate(self, offset: int) -> None:
        """Drop the entries whose marker is at or after ``offset`` (blocking: rewrites files)."""
        keep = bisect.bisect_left(self.entries, offset, key=lambda e: e.last_offset)
        dropped, self.entries = self.entries[keep:], self.entries[:keep]
        bases = {self._bases.pop(e.last_offset, None) for e in dropped}
        for base in bases:
            if base is None:
                continue
            kept = [e for e in self.entries if self._bases.get(e.last_offset) == base]
            path = self._path(base)
            if kept:
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_bytes(b"".join(encode(e) for e in kept))
                os.replace(tmp, path)
            else:
                path.unlink(missing_ok=True)

    def collect(self, fetch_offset: int, upper_offset: int) -> list[AbortedTxn]:
        """The aborted transactions that overlap [fetch_offset, upper_offset): their marker
        is at or after the fetch offset and their first record before the upper bound."""
        start = bisect.bisect_left(self.entries, fetch_offset, key=lambda e: e.last_offset)
        return [e for e in self.entries[start:] if e.first_offset < upper_offset]

    def forget_below(self, log_start_offset: int) -> None:
        """Forget the entries whose marker went with deleted segments."""
        keep = bisect.bisect_left(self.entries, log_start_offset, key=lambda e: e.last_offset)
        if keep:
            for e in self.entries[:keep]:
                self._bases.pop(e.last_offset, None)
            del self.entries[:keep]

"""Leader-epoch cache: the first offset written under each leader epoch.

OffsetForLeaderEpoch answers "where did epoch E end?" from it, which lets a
returning follower truncate exactly to the divergence point instead of to its
possibly stale high watermark.  Persisted as ``leader-epoch-checkpoint`` in the
partition directory (see storage.checkpoint for the format, ``epoch offset``
lines).  Entries are only ever appended with a larger epoch; recovery re-learns
epochs from the batches it re-validates, so the file may lag the log.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from odradek.storage.checkpoint import (
    CheckpointError,
    checkpoint_bytes,
    read_checkpoint,
    write_atomically,
)
from odradek.storage.io import FileIO

log = structlog.get_logger(__name__)

FILE_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochCache:
    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        self.entries: list[tuple[int, int]] = []  # (epoch, start_offset), both increasing
        self.dirty = False
        # Flusher threads and truncations both write the file. The lock guards the copy
        # of the entries and the rename, never an fsync: nobody waits on another's disk.
        self._lock = threading.Lock()
        self._version = 0  # of the last copy taken for a write
        self._installed = 0  # of the newest file renamed into place
        try:
            self.entries = [(int(e), int(o)) for e, o in read_checkpoint(self.path, 2)]
        except (CheckpointError, ValueError) as exc:
            log.warning("leader_epoch_checkpoint_corrupt", path=str(self.path), error=str(exc))

    @property
    def latest_epoch(self) -> int | None:
        return self.entries[-1][0] if self.entries else None

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` starts at ``start_offset`` if it is a new, larger epoch."""
        if epoch < 0 or (self.entries and epoch <= self.entries[-1][0]):
            return
        # an entry for an epoch that wrote nothing is superseded by its successor
        while self.entries and self.entries[-1][1] >= start_offset:
            self.entries.pop()
        self.entries.append((epoch, start_offset))
        self.dirty = True

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch of the leader that wrote ``offset`` (-1 if unknown): what ListOffsets
        answers beside an offset it found, as Kafka's epochForOffset."""
        epoch = UNDEFINED_EPOCH
        for entry_epoch, start_offset in self.entries:
            if start_offset > offset:
                break
            epoch = entry_epoch
        return epoch

    def end_offset_for_epoch(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's LeaderEpochFileCache.endOffsetFor: (epoch, end offset) or (-1, -1).

        The end offset of epoch E is the start offset of the first larger epoch;
        for the latest epoch it is the log end offset.  For an epoch we never saw
        the answer is the largest smaller epoch we know, so the follower truncates
        to where that one ended.
        """
        if epoch == UNDEFINED_EPOCH or not self.entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if epoch == self.entries[-1][0]:
            return epoch, log_end_offset
        floor = None
        for entry_epoch, start_offset in self.entries:
            if entry_epoch > epoch:
                return (epoch if floor is None else floor), start_offset
            floor = entry_epoch
        return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs that start at or after ``end_offset`` (log truncated there)."""
        kept = [e for e in self.entries if e[1] < end_offset]
        if kept != self.entries:
            self.entries, self.dirty = kept, True

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop epochs wholly below the log start; the survivor starts at it (like Kafka)."""
        i = 0
        while i + 1 < len(self.entries) and self.entries[i + 1][1] <= start_offset:
            i += 1
        kept = self.entries[i:]
        if kept and kept[0][1] < start_offset:
            kept[0] = (kept[0][0], start_offset)
        if kept != self.entries:
            self.entries, self.dirty = kept, True

    def write(self, io: FileIO | None = None) -> None:
        """Persist if changed (tmp + fsync + rename + directory fsync), from any thread.

        Two writes may overlap: each has its own tmp file, and an older copy is never
        renamed over a newer one."""
        with self._lock:
            if not self.dirty:
                return
            self.dirty = False
            self._version += 1
            version, rows = self._version, list(self.entries)

        def install(tmp: Path) -> bool:
            with self._lock:
                if version < self._installed:
                    tmp.unlink(missing_ok=True)
                    return False
                tmp.replace(self.path)
                self._installed = version
                return True

        write_atomically(self.path, checkpoint_bytes(rows), io=io,
                         tmp_name=f"{FILE_NAME}.{version}.tmp", install=install)

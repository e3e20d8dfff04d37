"""The Raft core's durable state on disk, written in the order Ready asks.

In ``<data-dir>/__cluster_metadata/raft/``::

    quorum-state   the hard state (term, vote) as JSON; replaced atomically
    snapshot       the newest snapshot as JSON; replaced atomically
    log            entries after the snapshot: length int32 | crc32c uint32 | JSON

``apply(ready)`` persists a Ready's snapshot, truncation, entries and hard state
and fsyncs before returning, because the messages in that Ready promise it.
A torn or corrupt tail of ``log`` (a crash mid-append) is cut at load: those
entries were never acknowledged.
"""

import json
import os
import struct
from pathlib import Path

import crc32c

from odradek.replication.raft_codec import (
    entry_from_dict,
    entry_to_dict,
    hard_state_from_dict,
    hard_state_to_dict,
    snapshot_from_dict,
    snapshot_to_dict,
)
from odradek.replication.raft_messages import LogEntry, PersistentState, Ready
from odradek.storage.checkpoint import write_atomically

_HEAD = struct.Struct(">iI")


def _frame(entry: LogEntry) -> bytes:
    body = json.dumps(entry_to_dict(entry), separators=(",", ":")).encode()
    return _HEAD.pack(len(body), crc32c.crc32c(body)) + body


class RaftStore:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "log"
        self.positions: list[tuple[int, int]] = []  # (entry index, file offset), in order
        self._fd = -1

    def load(self) -> PersistentState:
        state = PersistentState()
        hard = self.dir / "quorum-state"
        if hard.exists():
            state.hard_state = hard_state_from_dict(json.loads(hard.read_bytes()))
        snap = self.dir / "snapshot"
        if snap.exists():
            state.snapshot = snapshot_from_dict(json.loads(snap.read_bytes()))
        data = self.log_path.read_bytes() if self.log_path.exists() else b""
        pos = 0
        first = state.snapshot.last_index + 1 if state.snapshot else 1
        while pos + _HEAD.size <= len(data):
            size, crc = _HEAD.unpack_from(data, pos)
            body = data[pos + _HEAD.size: pos + _HEAD.size + size]
            if size < 0 or len(body) != size or crc32c.crc32c(body) != crc:
                break
            entry = entry_from_dict(json.loads(body))
            if entry.index >= first:  # entries a snapshot covers may linger after a crash
                expected = state.entries[-1].index + 1 if state.entries else first
                if entry.index != expected:
                    break
                state.entries.append(entry)
                self.positions.append((entry.index, pos))
            pos += _HEAD.size + size
        self._fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, pos)  # a torn tail was never acknowledged
        os.lseek(self._fd, pos, os.SEEK_SET)
        return state

    def apply(self, ready: Ready) -> None:
        """Persist what ``ready`` asks, in its order, and fsync."""
        if ready.snapshot is not None:
            write_atomically(self.dir / "snapshot", json.dumps(snapshot_to_dict(ready.snapshot)).encode())
            self._drop_through(ready.snapshot.last_index)
        if ready.truncate_from is not None:
            self._truncate_from(ready.truncate_from)
        if ready.entries:
            start = os.lseek(self._fd, 0, os.SEEK_END)
            frames = [_frame(e) for e in ready.entries]
            offset = start
            for entry, frame in zip(ready.entries, frames, strict=True):
                self.positions.append((entry.index, offset))
                offset += len(frame)
            os.write(self._fd, b"".join(frames))
        if ready.entries or ready.truncate_from is not None or ready.snapshot is not None:
            os.fsync(self._fd)
        if ready.hard_state is not None:
            write_atomically(self.dir / "quorum-state", json.dumps(hard_state_to_dict(ready.hard_state)).encode())

    def _truncate_from(self, index: int) -> None:
        keep = [p for p in self.positions if p[0] < index]
        cut = self.positions[len(keep)][1] if len(keep) < len(self.positions) else None
        self.positions = keep
        if cut is not None:
            os.ftruncate(self._fd, cut)

    def _drop_through(self, index: int) -> None:
        """Rewrite the log without the entries a snapshot now covers."""
        remaining = [p for p in self.positions if p[0] > index]
        if len(remaining) == len(self.positions):
            return
        data = b""
        if remaining:
            os.lseek(self._fd, remaining[0][1], os.SEEK_SET)
            size = os.fstat(self._fd).st_size - remaining[0][1]
            data = os.read(self._fd, size)
        write_atomically(self.log_path, data)
        os.close(self._fd)
        self._fd = os.open(self.log_path, os.O_RDWR, 0o644)
        os.lseek(self._fd, 0, os.SEEK_END)
        base = remaining[0][1] if remaining else 0
        self.positions = [(i, off - base) for i, off in remaining]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


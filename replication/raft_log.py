"""The Raft log as the core keeps it in memory: a snapshot followed by contiguous entries.

It also remembers what changed since the driver last saved it (the "unstable" part, in
etcd's words), so that RaftNode.drain() can tell the driver exactly what to write.
"""

from __future__ import annotations

from odradek.replication.raft_messages import EntryKind, LogEntry, Snapshot, Voter


class RaftLog:
    __slots__ = (
        "snapshot",
        "_entries",
        "_voters_at",
        "_voter_map",
        "dirty_from",
        "unsaved_snapshot",
    )

    def __init__(self, snapshot: Snapshot, entries: list[LogEntry]) -> None:
        self.snapshot = snapshot  # last_index 0 stands for "no snapshot yet"
        for expected, entry in enumerate(entries, start=snapshot.last_index + 1):
            if entry.index != expected:
                raise ValueError(f"log entries are not contiguous at {entry.index}")
        self._entries = list(entries)
        self._voters_at = [e.index for e in entries if e.kind is EntryKind.VOTERS]
        self._voter_map: dict[int, str | None] | None = None
        # Lowest index whose saved copy is stale: the driver deletes from here and rewrites.
        self.dirty_from: int | None = None
        self.unsaved_snapshot: Snapshot | None = None

    @property
    def first_index(self) -> int:
        return self.snapshot.last_index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot.last_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot.last_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at index, or None if it is compacted away or beyond the end."""
        offset = index - self.snapshot.last_index
        if offset == 0:
            return self.snapshot.last_term
        if 0 < offset <= len(self._entries):
            return self._entries[offset - 1].term
        return None

    def slice(self, first: int, last: int) -> list[LogEntry]:
        """Entries first..last inclusive; first must not be compacted."""
        base = self.snapshot.last_index + 1
        assert first >= base, (first, base)
        return self._entries[first - base : last - base + 1]

    # Voter binding (KIP-853): the latest VOTERS record in the log is in force, committed or
    # not, as with any Raft membership change; else the one captured in the snapshot.

    @property
    def voters_index(self) -> int:
        return self._voters_at[-1] if self._voters_at else self.snapshot.last_index

    def voters(self) -> tuple[Voter, ...]:
        if self._voters_at:
            return self._entries[self._voters_at[-1] - self.first_index].voters
        return self.snapshot.voters

    def voter_map(self) -> dict[int, str | None]:
        if self._voter_map is None:
            self._voter_map = {v.node_id: v.directory_id for v in self.voters()}
        return self._voter_map

    # Mutations.

    def append(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            assert entry.index == self.last_index + 1, (entry.index, self.last_index)
            if self.dirty_from is None:
                self.dirty_from = entry.index
            self._entries.append(entry)
            if entry.kind is EntryKind.VOTERS:
                self._voters_at.append(entry.index)
                self._voter_map = None

    def truncate_from(self, index: int) -> None:
        assert index > self.snapshot.last_index
        del self._entries[index - self.first_index :]
        while self._voters_at and self._voters_at[-1] >= index:
            self._voters_at.pop()
            self._voter_map = None
        self.dirty_from = index if self.dirty_from is None else min(self.dirty_from, index)

    def compact(self, index: int, data: bytes) -> None:
        """Replace entries up to index (which must be in the log) by the application's image."""
        term = self.term_at(index)
        assert term is not None and index > self.snapshot.last_index
        voters = self.snapshot.voters
        for at in self._voters_at:
            if at <= index:
                voters = self._entries[at - self.first_index].voters
        self._replace_prefix(Snapshot(index, term, voters, data), keep_suffix=True)

    def install(self, snapshot: Snapshot) -> None:
        """Adopt a leader's snapshot; keep our suffix only if it continues that snapshot."""
        keep = self.term_at(snapshot.last_index) == snapshot.last_term
        self._replace_prefix(snapshot, keep_suffix=keep)

    def _replace_prefix(self, snapshot: Snapshot, keep_suffix: bool) -> None:
        if keep_suffix:
            del self._entries[: snapshot.last_index - self.snapshot.last_index]
        else:
            self._entries.clear()
            # Whatever the driver saved after the snapshot belongs to a diverged history.
            self.dirty_from = snapshot.last_index + 1
        self.snapshot = snapshot
        self.unsaved_snapshot = snapshot
        self._voters_at = [i for i in self._voters_at if i > snapshot.last_index]
        self._voter_map = None
        if self.dirty_from is not None:
            self.dirty_from = max(self.dirty_from, snapshot.last_index + 1)

    def take_unsaved(self) -> tuple[Snapshot | None, int | None, list[LogEntry]]:
        """(snapshot to write, index to truncate from, entries to append) since the last call."""
        snapshot, self.unsaved_snapshot = self.unsaved_snapshot, None
        truncate_from, self.dirty_from = self.dirty_from, None
        if truncate_from is None:
            return snapshot, None, []
        return snapshot, truncate_from, self._entries[truncate_from - self.first_index :]

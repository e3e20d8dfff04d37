"""Sparse, memory-mapped segment indexes: ``.index`` and ``.timeindex``.

Both files are arrays of fixed-size big-endian entries, offsets relative to the
segment's base offset::

    .index      | relative_offset int32 | position int32 |              8 bytes
    .timeindex  | timestamp int64 | relative_offset int32 |            12 bytes

An entry is added at most every ``index.interval.bytes`` of log, pointing at
the start of a batch; a lookup bisects the entries and the caller walks batch
headers from there.  The active segment's index is preallocated to
``segment.index.bytes`` and mapped read-write; at roll it is sealed (no more
entries) and later, in a thread, trimmed to its real size under the live
mapping, which is safe because no access reaches past the entries.  All map/unmap/flush happen under a lock,
since fsync runs in an executor thread.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from pathlib import Path

from odradek.storage.errors import CorruptIndexError
from odradek.storage.io import FileIO

_NO_KEY = -(2**64)  # below every offset and timestamp: an empty index takes any first entry


class _MmapIndex:
    ENTRY: struct.Struct
    OFFSET_FIELD: int  # which field holds the relative offset

    def __init__(self, path: Path, base_offset: int, max_bytes: int, *, mutable: bool,
                 io: FileIO | None = None) -> None:
        self.path = path
        self.io = io or FileIO()
        self.base_offset = base_offset
        self.max_entries = max(1, max_bytes // self.ENTRY.size)
        self._lock = threading.Lock()
        self.existed = path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            length = os.fstat(fd).st_size
        finally:
            os.close(fd)
        self.size_ok = length % self.ENTRY.size == 0
        self.entries = length // self.ENTRY.size if self.size_ok else 0
        self.mutable = False
        self._length = length  # the file's length: what a mapping covers
        self._mm: mmap.mmap | None = None
        self._last_key: int | None = None  # field 0 of the last entry; None: not cached
        self._pack_into = self.ENTRY.pack_into
        self._entry_size = self.ENTRY.size
        if mutable:
            self.make_mutable()

    # --- mapping ---------------------------------------------------------------
    # Mapped on first use, unmapped by close() (the segment LRU, storage.handles).
    # No descriptor is kept beside the mapping: mmap holds its own duplicate, so the
    # file is opened only to map it, and truncated and fsynced by path.

    def _map(self) -> mmap.mmap | None:
        """The mapping, made now if there is none (an empty file has none)."""
        if self._mm is None and self._length:
            with self._lock:
                if self._mm is None:
                    fd = os.open(self.path, os.O_RDWR)
                    try:
                        access = mmap.ACCESS_WRITE if self.mutable else mmap.ACCESS_READ
                        self._mm = mmap.mmap(fd, self._length, access=access)
                    finally:
                        os.close(fd)
        return self._mm

    @property
    def mapped(self) -> bool:
        return self._mm is not None

    def _unmap(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def make_mutable(self) -> None:
        """Preallocate to the full size; mapped read-write from then on (the active segment)."""
        with self._lock:
            self._unmap()
            self.entries = min(self.entries, self.max_entries)
            self._last_key = None
            self._length = self.max_entries * self.ENTRY.size
            self._truncate(self._length)
            self.mutable = True

    def seal(self) -> None:
        """The segment stopped growing: no entry is added from now on. Quick, for the event
        loop at a roll; ``trim`` cuts the file later, in a thread."""
        with self._lock:
            self.mutable = False

    def trim(self) -> None:
        """Cut the file to its entries (blocking; a no-op once done or while mutable).

        The mapping stays: it covers the old, longer file, but every access is below
        ``entries``, inside the cut file, so none meets the SIGBUS of a page past the end
        (make_mutable, which could append past it, takes the same lock and remaps). No
        msync: the dirty pages stay in the page cache, and the flusher's fsync of the
        rolled segment's indexes makes them durable."""
        with self._lock:
            length = self.entries * self.ENTRY.size
            if self.mutable or self._length == length:
                return
            self.mutable = False
            self._truncate(length)
            self._length = length

    def _truncate(self, length: int) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return  # deleted meanwhile
        try:
            self.io.ftruncate_index(fd, length)
        finally:
            os.close(fd)

    def flush(self) -> None:
        with self._lock:
            if self._mm is not None and self.mutable:
                self._mm.flush()
                return
            # unmapped (or read-only): the pages a mapping dirtied are in the page cache
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return  # deleted meanwhile: nothing to make durable
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        with self._lock:
            self._unmap()

    def rename(self, path: Path) -> None:
        os.rename(self.path, path)
        self.path = path

    # --- entries ---------------------------------------------------------------

    def entry(self, i: int) -> tuple:
        return self.ENTRY.unpack_from(self._mm or self._map(), i * self.ENTRY.size)

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries

    def _load_last_key(self) -> int:
        key = self.entry(self.entries - 1)[0] if self.entries else _NO_KEY
        self._last_key = key
        return key

    def _append(self, key: int, second: int) -> None:
        """Add ``(key, second)`` if ``key`` is above the last entry's (keys only grow)."""
        last = self._last_key
        if last is None:
            last = self._load_last_key()
        # a trimmed (immutable) or full index just stays sparser: lookups stay correct
        if key > last and self.mutable and self.entries < self.max_entries:
            self._pack_into(self._mm or self._map(), self.entries * self._entry_size, key, second)
            self.entries += 1
            self._last_key = key

    def _bisect(self, key: int, field: int) -> int:
        """Number of entries whose ``field`` is < key (entries are sorted on it)."""
        lo, hi = 0, self.entries
        while lo < hi:
            mid = (lo + hi) // 2
            if self.entry(mid)[field] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def truncate_to_offset(self, offset: int) -> None:
        """Drop entries pointing at ``offset`` or above."""
        self.entries = self._bisect(offset - self.base_offset, self.OFFSET_FIELD)
        self._last_key = None

    def reset(self) -> None:
        self.entries = 0
        self._last_key = None
        self.size_ok = True

    def all_entries(self) -> list[tuple]:
        if not self.entries:
            return []
        with memoryview(self._map()) as view:
            return list(self.ENTRY.iter_unpack(view[: self.entries * self.ENTRY.size]))


class OffsetIndex(_MmapIndex):
    ENTRY = struct.Struct(">ii")
    OFFSET_FIELD = 0

    def append(self, offset: int, position: int) -> None:
        self._append(offset - self.base_offset, position)

    def last_entry(self) -> tuple[int, int] | None:
        if not self.entries:
            return None
        relative, position = self.entry(self.entries - 1)
        return self.base_offset + relative, position

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last entry at or below ``offset``, else (base, 0)."""
        i = self._bisect(offset - self.base_offset + 1, 0)
        if i == 0:
            return self.base_offset, 0
        relative, position = self.entry(i - 1)
        return self.base_offset + relative, position

    def sanity_check(self, log_size: int) -> None:
        if not self.size_ok:
            raise CorruptIndexError(f"{self.path}: size not a multiple of {self.ENTRY.size}")
        last_relative = last_position = -1
        for relative, position in self.all_entries():
            if relative <= last_relative or position <= last_position or position >= log_size:
                raise CorruptIndexError(
                    f"{self.path}: entry ({relative}, {position}) after "
                    f"({last_relative}, {last_position}), log size {log_size}"
                )
            last_relative, last_position = relative, position


class TimeIndex(_MmapIndex):
    ENTRY = struct.Struct(">qi")
    OFFSET_FIELD = 1

    def append(self, timestamp: int, offset: int) -> None:
        self._append(timestamp, offset - self.base_offset)

    def last_entry(self) -> tuple[int, int] | None:
        if not self.entries:
            return None
        timestamp, relative = self.entry(self.entries - 1)
        return timestamp, self.base_offset + relative

    def lookup(self, timestamp: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the last entry with timestamp < ``timestamp``.

        Every batch up to and including that offset has a smaller max timestamp,
        so a search for the first batch reaching ``timestamp`` may start there.
        """
        i = self._bisect(timestamp, 0)
        if i == 0:
            return None
        found, relative = self.entry(i - 1)
        return found, self.base_offset + relative

    def sanity_check(self, log_size: int) -> None:
        if not self.size_ok:
            raise CorruptIndexError(f"{self.path}: size not a multiple of {self.ENTRY.size}")
        last_timestamp, last_relative = -(2**63), -1
        for timestamp, relative in self.all_entries():
            if timestamp <= last_timestamp or relative < last_relative or relative < 0:
                raise CorruptIndexError(f"{self.path}: entry ({timestamp}, {relative}) out of order")
            last_timestamp, last_relative = timestamp, relative

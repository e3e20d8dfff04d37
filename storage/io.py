"""The seam between the log and the OS calls that can fail or stall.

Every write, fsync and truncate of a ``.log`` file goes through a ``FileIO``
object that the Log receives at construction.  Tests and the chaos suite pass
a ``FaultyIO`` to make writes fail with ENOSPC/EIO (optionally after a partial
write, as a real full disk does), to slow or fail fsync, and to count fsyncs,
without monkeypatching anything inside storage.
"""

from __future__ import annotations

import os
import threading
import time

try:
    IOV_MAX = max(16, os.sysconf("SC_IOV_MAX"))  # the most buffers one pwritev takes
except (AttributeError, ValueError, OSError):
    IOV_MAX = 1024


class FileIO:
    """Plain OS calls.  ``pwrite``/``pwritev`` may write fewer bytes than asked,
    like os.pwrite/os.pwritev.  ``pwritev`` gets at most ``IOV_MAX`` buffers."""

    # the OS calls themselves, not wrappers: a write is one C call on the append path
    pwrite = staticmethod(os.pwrite)
    pwritev = staticmethod(os.pwritev)
    fsync = staticmethod(os.fsync)
    ftruncate = staticmethod(os.ftruncate)
    # small files replaced whole and directories (storage.checkpoint.write_atomically)
    fsync_metadata = staticmethod(os.fsync)
    # an index file preallocated or cut to its entries (storage.index; written through a
    # mapping, so not journaled as a .log is in FaultyIO's power-loss mode)
    ftruncate_index = staticmethod(os.ftruncate)


class FaultyIO(FileIO):
    """FileIO with switchable faults.  Thread-safe counters: fsync runs in executors.

    - ``write_error``: an errno (e.g. ``errno.ENOSPC``); every pwrite then fails,
      after first writing ``partial_write_bytes`` bytes if that is > 0.
    - ``fsync_error``: an errno that fsync raises.
    - ``fsync_delay``: seconds each fsync sleeps before doing the real fsync.
    - ``fsync_calls`` / ``write_calls``: how many calls were made.
    - ``fsync_metadata`` (checkpoints, snapshots, the leader-epoch file, directories)
      gets ``fsync_delay`` too, so a test can see whether any of them blocks the event
      loop; its calls count in ``metadata_fsync_calls``, and ``fsync_error`` spares it.
    - ``durable_journal``: a path; power-loss mode.  Each file written is noted
      there with the length that is on disk for sure (its size before our first
      write, then its size at each fsync).  SIGKILL keeps the page cache, so a
      crash test alone cannot tell a real fsync from none; after the kill,
      ``lose_power(journal)`` cuts every file back to its durable length, as a
      power cut would.  Models append-only files (the ``.log`` segments).
    - ``fsync_noop``: fsync is counted but does nothing (a broken fsync), to
      show that a crash test can catch it.
    - ``index_truncations``: (thread id, length) of each ftruncate of an index file,
      and ``fsync_threads``: the thread ids fsyncs (of both kinds) ran on, so a test
      can see which ran on the event loop's thread.
    """

    def __init__(self, durable_journal: str | os.PathLike[str] | None = None) -> None:
        self.write_error: int | None = None
        self.partial_write_bytes = 0
        self.fsync_error: int | None = None
        self.fsync_delay = 0.0
        self.fsync_calls = 0
        self.write_calls = 0
        self.metadata_fsync_calls = 0
        self._lock = threading.Lock()
        self.fsync_noop = False
        self.index_truncations: list[tuple[int, int]] = []
        self.fsync_threads: set[int] = set()
        self._journal = open(durable_journal, "a") if durable_journal is not None else None
        self._durable: dict[str, int] = {}  # path -> length known to be on disk

    def _note(self, fd: int, size: int | None) -> None:
        """Journal ``fd``'s durable length: ``size``, or its current size if it is new."""
        if self._journal is None:
            return
        path = os.readlink(f"/proc/self/fd/{fd}")
        with self._lock:
            if size is None:
                if path in self._durable:
                    return
                size = os.fstat(fd).st_size  # what was there before we wrote
            self._durable[path] = size
            self._journal.write(f"{size} {path}\n")
            self._journal.flush()  # the OS keeps it across SIGKILL; that is all we need

    @staticmethod
    def lose_power(journal: str | os.PathLike[str]) -> dict[str, int]:
        """Cut every journaled file back to its last durable length; return them."""
        durable: dict[str, int] = {}
        with open(journal) as f:
            for line in f:
                text, path = line.rstrip("\n").split(" ", 1)
                durable[path] = int(text)
        for path, length in durable.items():
            if os.path.exists(path) and os.path.getsize(path) > length:
                os.truncate(path, length)
        return durable

    # the base class's methods are os's own, typed for any buffer or file object; the log
    # passes ints and buffers only, so narrower signatures here are sound in practice
    def pwrite(self, fd: int, data: memoryview, offset: int) -> int:  # type: ignore[override]
        with self._lock:
            self.write_calls += 1
        self._note(fd, None)
        if self.write_error is not None:
            if self.partial_write_bytes > 0:
                os.pwrite(fd, data[: self.partial_write_bytes], offset)
            raise OSError(self.write_error, os.strerror(self.write_error))
        return super().pwrite(fd, data, offset)

    def pwritev(self, fd: int, buffers: list, offset: int) -> int:  # type: ignore[override]
        with self._lock:
            self.write_calls += 1
        self._note(fd, None)
        if self.write_error is not None:
            if self.partial_write_bytes > 0:
                os.pwrite(fd, b"".join(buffers)[: self.partial_write_bytes], offset)
            raise OSError(self.write_error, os.strerror(self.write_error))
        return super().pwritev(fd, buffers, offset)

    def fsync(self, fd: int) -> None:  # type: ignore[override]
        with self._lock:
            self.fsync_calls += 1
            self.fsync_threads.add(threading.get_ident())
        if self.fsync_delay:
            time.sleep(self.fsync_delay)
        if self.fsync_error is not None:
            raise OSError(self.fsync_error, os.strerror(self.fsync_error))
        if self.fsync_noop:
            return
        size = os.fstat(fd).st_size  # before: a write racing the fsync may not be covered
        super().fsync(fd)
        self._note(fd, size)

    def ftruncate_index(self, fd: int, length: int) -> None:  # type: ignore[override]
        with self._lock:
            self.index_truncations.append((threading.get_ident(), length))
        super().ftruncate_index(fd, length)

    def ftruncate(self, fd: int, length: int) -> None:
        self._note(fd, None)
        super().ftruncate(fd, length)
        if self._journal is not None:  # a cut shrinks what is durable, never grows it
            path = os.readlink(f"/proc/self/fd/{fd}")
            self._note(fd, min(length, self._durable[path]))

    def fsync_metadata(self, fd: int) -> None:  # type: ignore[override]
        with self._lock:
            self.metadata_fsync_calls += 1
            self.fsync_threads.add(threading.get_ident())
        if self.fsync_delay:
            time.sleep(self.fsync_delay)
        super().fsync_metadata(fd)


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
    """

    def __init__(self) -> None:
        self.write_error: int | None = None
        self.partial_write_bytes = 0
        self.fsync_error: int | None = None
        self.fsync_delay = 0.0
        self.fsync_calls = 0
        self.write_calls = 0
        self.metadata_fsync_calls = 0
        self._lock = threading.Lock()

    def pwrite(self, fd: int, data: memoryview, offset: int) -> int:
        with self._lock:
            self.write_calls += 1
        if self.write_error is not None:
            if self.partial_write_bytes > 0:
                os.pwrite(fd, data[: self.partial_write_bytes], offset)
            raise OSError(self.write_error, os.strerror(self.write_error))
        return super().pwrite(fd, data, offset)

    def pwritev(self, fd: int, buffers: list, offset: int) -> int:
        with self._lock:
            self.write_calls += 1
        if self.write_error is not None:
            if self.partial_write_bytes > 0:
                os.pwrite(fd, b"".join(buffers)[: self.partial_write_bytes], offset)
            raise OSError(self.write_error, os.strerror(self.write_error))
        return super().pwritev(fd, buffers, offset)

    def fsync(self, fd: int) -> None:
        with self._lock:
            self.fsync_calls += 1
        if self.fsync_delay:
            time.sleep(self.fsync_delay)
        if self.fsync_error is not None:
            raise OSError(self.fsync_error, os.strerror(self.fsync_error))
        super().fsync(fd)

    def fsync_metadata(self, fd: int) -> None:
        with self._lock:
            self.metadata_fsync_calls += 1
        if self.fsync_delay:
            time.sleep(self.fsync_delay)
        super().fsync_metadata(fd)

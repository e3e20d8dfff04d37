"""storage.checkpoint.write_atomically, the one tmp + fsync + rename writer, and the
leader-epoch cache's writes from several threads."""

import threading
import time

from odradek.storage import FaultyIO
from odradek.storage.checkpoint import read_checkpoint, write_atomically
from odradek.storage.epoch import LeaderEpochCache
from odradek.storage.producer_state import ProducerStateManager


def test_write_atomically_replaces_the_file_and_fsyncs_file_and_directory(tmp_path):
    io = FaultyIO()
    path = tmp_path / "f"
    path.write_bytes(b"old")
    write_atomically(path, b"new" * 1000, io=io)
    assert path.read_bytes() == b"new" * 1000
    assert io.metadata_fsync_calls == 2 and io.fsync_calls == 0  # the file, then the directory
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_producer_state_snapshots_fsync_their_directory(tmp_path):
    io = FaultyIO()
    state = ProducerStateManager(tmp_path)
    state.write_snapshot(5, state.snapshot_data(5), io)
    assert io.metadata_fsync_calls == 2 and state.snapshot_offsets() == [5]


def test_the_epoch_cache_lock_is_free_while_a_thread_fsyncs(tmp_path):
    """The event loop takes the lock (truncation); a flusher thread writing the file must
    not hold it through its slow fsyncs."""
    io = FaultyIO()
    io.fsync_delay = 0.3
    cache = LeaderEpochCache(tmp_path)
    cache.assign(1, 0)
    writer = threading.Thread(target=cache.write, args=(io,))
    writer.start()
    time.sleep(0.05)  # the writer is in its fsync now
    started = time.monotonic()
    assert cache._lock.acquire(timeout=0.1)
    cache._lock.release()
    assert time.monotonic() - started < 0.1
    writer.join()
    assert read_checkpoint(cache.path, 2) == [["1", "0"]]


def test_an_older_epoch_file_never_replaces_a_newer_one(tmp_path):
    slow, fast = FaultyIO(), FaultyIO()
    slow.fsync_delay = 0.3
    cache = LeaderEpochCache(tmp_path)
    cache.assign(1, 0)
    older = threading.Thread(target=cache.write, args=(slow,))
    older.start()
    time.sleep(0.05)
    cache.assign(2, 10)  # a newer state, written while the older write still fsyncs
    cache.write(fast)
    older.join()
    assert read_checkpoint(cache.path, 2) == [["1", "0"], ["2", "10"]]
    assert [p.name for p in tmp_path.iterdir()] == ["leader-epoch-checkpoint"]

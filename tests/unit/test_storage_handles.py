"""The descriptor budget of segment files (storage.handles): the pure LRU decision, and
logs on real files that stay within it while every segment stays readable and writable."""

from __future__ import annotations

import errno
import os

import pytest

from odradek.protocol.records import build_batch
from odradek.storage import Log, LogConfig, LogManager
from odradek.storage.handles import (
    DESCRIPTORS_PER_SEGMENT,
    LruBudget,
    OpenFiles,
    count_open_descriptors,
    descriptor_headroom,
    segment_budget,
)
from odradek.storage.txn_index import AbortedTxnIndex

# --- LruBudget: the decision ---------------------------------------------------------


def test_lru_closes_least_recently_used_first() -> None:
    budget = LruBudget(capacity=6)
    assert budget.open("a", 3) == []
    assert budget.open("b", 3) == []
    budget.use("a")  # b is now the least recently used
    assert budget.open("c", 3) == ["b"]
    assert budget.cost == 6 and not budget.is_open("b") and budget.is_open("a")


def test_lru_never_closes_a_pinned_item_and_sheds_the_excess_on_unpin() -> None:
    budget = LruBudget(capacity=3)
    budget.open("a", 3)
    budget.pin("a")  # a fetch slice points into it
    assert budget.open("b", 3) == []  # over the budget while a is pinned
    budget.pin("b")
    assert budget.cost == 6
    assert budget.unpin("a") == ["a"]  # now the excess goes
    assert budget.cost == 3
    assert budget.unpin("b") == []


def test_lru_pins_nest() -> None:
    budget = LruBudget(capacity=3)
    budget.open("a", 3)
    budget.pin("a")
    budget.pin("a")
    budget.open("b", 3)
    assert budget.unpin("a") == []  # still pinned once
    assert budget.pinned("a")
    assert budget.unpin("a") == ["a"]


def test_lru_never_closes_the_item_being_opened() -> None:
    budget = LruBudget(capacity=2)
    assert budget.open("big", 3) == []  # more than the budget alone: it still opens
    assert budget.open("next", 3) == ["big"]


def test_lru_closed_and_shed_all() -> None:
    budget = LruBudget(capacity=100)
    for name in "abcd":
        budget.open(name, 3)
    budget.closed("a")
    budget.pin("b")
    assert budget.evictable_cost() == 6
    assert budget.shed_all(keep="c") == ["d"]
    assert budget.cost == 6 and len(budget) == 2


def test_budget_from_the_limit() -> None:
    assert segment_budget(20000, -1) == 10000
    assert segment_budget(64, -1) == 48  # never below the floor
    assert segment_budget(20000, 30) == 30  # log.max.open.files
    assert descriptor_headroom(1024, 1000, 30) == 54
    assert descriptor_headroom(1024, 1100, 30) == 30


def test_open_files_retries_after_emfile_with_every_unpinned_segment_closed() -> None:
    closed = []

    class Item:
        def __init__(self, name: str) -> None:
            self.name = name

        def close_handles(self) -> None:
            closed.append(self.name)

    files = OpenFiles(capacity=100)
    a, b, c = Item("a"), Item("b"), Item("c")
    files.open(a, 3, lambda: None)
    files.open(b, 3, lambda: None)
    files.pin(b)
    calls = []

    def opener() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EMFILE, "Too many open files")

    files.open(c, 3, opener)
    assert closed == ["a"] and len(calls) == 2 and files.open_cost == 6

    def always() -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    with pytest.raises(OSError):
        files.open(Item("d"), 3, always)
    assert closed == ["a", "c"]  # shed for the second try, which failed too
    assert files.open_cost == 3  # the pinned b; the failed item costs nothing


# --- logs on real files within the budget --------------------------------------------


def batch(i: int) -> bytes:
    return build_batch([(b"k%d" % i, b"v" * 200, (), 1_700_000_000_000 + i)] * 3)


def make_logs(tmp_path, files: OpenFiles, count: int, **config) -> list[Log]:
    cfg = LogConfig.from_mapping({k.replace("_", "."): v for k, v in config.items()})
    return [Log(tmp_path / f"t-{i}", cfg, topic="t", partition=i, needs_recovery=False,
                open_files=files) for i in range(count)]


def read_all(lg: Log) -> bytes:
    with lg.read(lg.log_start_offset, 1 << 30) as result:
        return result.read_bytes()



def descriptors_under(directory) -> int:
    """This process's descriptors open on files under ``directory``: unlike the process's
    whole count, threads that other tests left running cannot move it."""
    prefix, count = str(directory), 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(prefix)
        except OSError:
            pass  # closed meanwhile
    return count


def test_many_logs_stay_within_the_budget_and_keep_working(tmp_path) -> None:
    capacity = 4 * DESCRIPTORS_PER_SEGMENT
    files = OpenFiles(capacity)
    before = descriptors_under(tmp_path)  # 0
    # small segments and a dense index: several segments per log, index entries in each
    logs = make_logs(tmp_path, files, 30, segment_bytes=3000, index_interval_bytes=100)
    for round_ in range(12):
        for i, lg in enumerate(logs):
            lg.append(batch(round_ * 100 + i), leader_epoch=0)
            assert descriptors_under(tmp_path) - before <= capacity
    assert all(len(lg.segments) > 1 for lg in logs)
    assert files.open_cost <= capacity
    for i, lg in enumerate(logs):
        data = read_all(lg)
        assert data.count(b"v" * 200) == 12 * 3
        # index lookups after the segments were closed and reopened: every batch is found
        for offset in range(0, lg.log_end_offset, 3):
            with lg.read(offset, 1) as one:
                assert one.slices and one.size > 0
        assert lg.offset_for_timestamp(1_700_000_000_000 + 500 + i)[0] == 15
    assert descriptors_under(tmp_path) - before <= capacity
    for lg in logs:
        lg.close()
    assert files.open_cost == 0
    assert descriptors_under(tmp_path) == before
    reopened = make_logs(tmp_path, files, 30, segment_bytes=3000, index_interval_bytes=100)
    assert [read_all(lg).count(b"v" * 200) for lg in reopened] == [36] * 30
    assert descriptors_under(tmp_path) - before <= capacity


def test_a_fetch_slice_keeps_its_segment_open_while_the_lru_closes_others(tmp_path) -> None:
    files = OpenFiles(DESCRIPTORS_PER_SEGMENT)  # room for one segment
    first, *others = make_logs(tmp_path, files, 5)
    first.append(batch(1), leader_epoch=0)
    result = first.read(0, 1 << 20)
    fd = result.slices[0].fd
    for i, lg in enumerate(others):  # each opens a segment: the budget is spent many times over
        lg.append(batch(i), leader_epoch=0)
    assert result.slices[0].fd == fd
    r, w = os.pipe()
    try:
        sent = os.sendfile(w, fd, result.slices[0].position, result.slices[0].size)
        assert os.read(r, sent) == result.read_bytes() and sent == result.size
    finally:
        os.close(r)
        os.close(w)
    # the others were each closed once released; the pinned one never was
    assert files.budget.is_open(first.segments[0]) and files.open_cost == files.capacity
    result.release()
    assert [read_all(lg).count(b"v" * 200) for lg in others] == [3] * 4  # reopened on use
    assert not files.budget.is_open(first.segments[0]) and files.open_cost == files.capacity


def test_a_log_that_cannot_open_its_files_leaves_no_directory(tmp_path, monkeypatch) -> None:
    files = OpenFiles(100)
    real_open = os.open

    def log_fails(path, *args, **kwargs):
        if str(path).endswith(".log"):
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, *args, **kwargs)

    def every_open_fails(path, *args, **kwargs):  # not even rmtree can list the directory
        raise OSError(errno.EMFILE, "Too many open files")

    def txn_index_unlisted(self):  # the last step of opening: listing the directory (seen in CI)
        raise OSError(errno.EMFILE, "Too many open files", str(self.directory))

    for target, name, failing in ((os, "open", log_fails), (os, "open", every_open_fails),
                                  (AbortedTxnIndex, "load", txn_index_unlisted)):
        monkeypatch.setattr(target, name, failing)
        with pytest.raises(OSError) as raised:
            make_logs(tmp_path, files, 1)
        assert raised.value.errno == errno.EMFILE
        monkeypatch.undo()
        assert not (tmp_path / "t-0").exists()
        assert files.open_cost == 0


def test_log_manager_shares_one_budget(tmp_path) -> None:
    manager = LogManager(tmp_path, max_open_files=2 * DESCRIPTORS_PER_SEGMENT)
    before = count_open_descriptors()
    for p in range(10):
        manager.get_or_create_log("t", p).append(batch(p), leader_epoch=0)
    assert manager.open_files.open_cost <= 2 * DESCRIPTORS_PER_SEGMENT
    assert count_open_descriptors() - before <= 2 * DESCRIPTORS_PER_SEGMENT
    manager.close()
    again = LogManager(tmp_path, max_open_files=2 * DESCRIPTORS_PER_SEGMENT)
    assert all(read_all(again.get_log("t", p)).count(b"v" * 200) == 3 for p in range(10))
    again.close()


def test_a_checkpoint_unreadable_for_lack_of_descriptors_is_not_read_as_corrupt(
        tmp_path, monkeypatch) -> None:
    """EMFILE once made the leader-epoch checkpoint read as corrupt (empty), and the next
    write replaced the partition's real epochs with nothing."""
    from pathlib import Path

    from odradek.storage import LeaderEpochCache
    from odradek.storage.checkpoint import read_checkpoint

    cache = LeaderEpochCache(tmp_path)
    cache.assign(3, 10)
    cache.write()

    def no_descriptors(self, *args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(Path, "read_text", no_descriptors)
    with pytest.raises(OSError):
        read_checkpoint(cache.path, 2)
    with pytest.raises(OSError):
        LeaderEpochCache(tmp_path)
    monkeypatch.undo()
    assert LeaderEpochCache(tmp_path).entries == [(3, 10)]

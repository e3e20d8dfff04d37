"""The log cleaner (storage.cleaner): its pure decisions, then passes over real files."""

from __future__ import annotations

import asyncio
import os
import random
import struct
from pathlib import Path

import pytest

from odradek.protocol.records import (
    CONTROL_BIT,
    DELETE_HORIZON_BIT,
    BatchHeader,
    InvalidRecordError,
    build_batch,
    build_marker_batch,
    iter_batches,
    parse_header,
    read_records,
    validate_batch,
)
from odradek.storage import LogConfig, LogManager
from odradek.storage.checkpoint import read_offsets
from odradek.storage.cleaner import (
    CHECKPOINT_FILE,
    COPY,
    DROP,
    REWRITE,
    CleanerConfig,
    LogState,
    SegmentInfo,
    Throttler,
    choose_log_to_clean,
    cleanable_offsets,
    group_segments,
    key_digest,
    plan_batch,
    rewrite_batch,
)
from odradek.storage.txn_index import AbortedTxn

NOW = 10_000_000


def seg(base: int, end: int, size: int = 100, ts: int = 0, first_ts: int = -1) -> SegmentInfo:
    return SegmentInfo(base, end, size, ts, first_ts)


def state(key: str, segments: list[SegmentInfo], checkpoint: int = -1, **kw) -> LogState:
    kw.setdefault("high_watermark", segments[-1].end_offset)
    return LogState(key, tuple(segments), kw.pop("log_start_offset", 0), kw.pop("high_watermark"),
                    checkpoint, **kw)


# --- choosing -----------------------------------------------------------------------


def test_dirtiest_log_above_its_ratio_is_chosen() -> None:
    a = state("a", [seg(0, 10), seg(10, 20), seg(20, 30), seg(30, 30, 0)], checkpoint=10)  # 2/3 dirty
    b = state("b", [seg(0, 10), seg(10, 20), seg(20, 20, 0)], checkpoint=-1)  # all dirty
    c = state("c", [seg(0, 10), seg(10, 20), seg(20, 20, 0)], checkpoint=20)  # all clean
    chosen = choose_log_to_clean([a, b, c], NOW)
    assert chosen is not None and chosen.key == "b" and chosen.cleanable_ratio == 1.0
    assert choose_log_to_clean([a, b, c], NOW, busy={"b"}).key == "a"
    assert choose_log_to_clean([c], NOW) is None
    lazy = state("a", a.segments, checkpoint=10, min_cleanable_ratio=0.9)
    assert choose_log_to_clean([lazy], NOW) is None


def test_active_segment_and_high_watermark_bound_the_dirty_section() -> None:
    s = state("a", [seg(0, 10), seg(10, 20), seg(20, 25, 50)])
    assert cleanable_offsets(s, NOW)[:2] == (0, 20)  # never the active segment
    follower = state("a", s.segments, high_watermark=15)
    assert cleanable_offsets(follower, NOW)[:2] == (0, 10)  # it may still truncate above it
    nothing = state("a", [seg(0, 10, 100)])
    assert choose_log_to_clean([nothing], NOW) is None


def test_checkpoint_outside_the_log_restarts_at_the_log_start() -> None:
    s = state("a", [seg(5, 10), seg(10, 20), seg(20, 20, 0)], checkpoint=2, log_start_offset=5)
    assert cleanable_offsets(s, NOW)[0] == 5
    s = state("a", s.segments, checkpoint=99, log_start_offset=5)
    assert cleanable_offsets(s, NOW)[0] == 5


def test_min_compaction_lag_keeps_young_segments_dirty_and_uncleaned() -> None:
    segments = [seg(0, 10, ts=NOW - 5000), seg(10, 20, ts=NOW - 100), seg(20, 20, 0)]
    s = state("a", segments, min_compaction_lag_ms=1000)
    assert cleanable_offsets(s, NOW)[:2] == (0, 10)
    s = state("a", segments, min_compaction_lag_ms=10_000)
    assert cleanable_offsets(s, NOW)[:2] == (0, 0)
    assert choose_log_to_clean([s], NOW) is None


def test_max_compaction_lag_forces_a_log_below_its_ratio() -> None:
    segments = [seg(0, 10, 1000), seg(10, 20, 10, ts=NOW - 5000, first_ts=NOW - 5000), seg(20, 20, 0)]
    s = state("a", segments, checkpoint=10)
    assert choose_log_to_clean([s], NOW) is None  # 10 of 1010 bytes dirty
    forced = state("a", segments, checkpoint=10, max_compaction_lag_ms=1000)
    chosen = choose_log_to_clean([forced], NOW)
    assert chosen is not None and chosen.forced


def test_a_passed_delete_horizon_cleans_a_clean_log_again() -> None:
    segments = [seg(0, 10), seg(10, 20), seg(20, 20, 0)]
    assert choose_log_to_clean([state("a", segments, checkpoint=20, delete_horizon_ms=NOW + 1)], NOW) is None
    chosen = choose_log_to_clean([state("a", segments, checkpoint=20, delete_horizon_ms=NOW)], NOW)
    assert chosen is not None and chosen.clean_bytes == 200


def test_groups_fit_segment_bytes_index_bytes_and_int32_offsets() -> None:
    segs = [(0, 10, 40, 8), (10, 20, 40, 8), (20, 30, 40, 8), (30, 40, 40, 8)]
    assert group_segments(segs, 100, 1000) == [[0, 1], [2, 3]]
    assert group_segments(segs, 1000, 16) == [[0, 1], [2, 3]]
    assert group_segments(segs, 1000, 1000) == [[0, 1, 2, 3]]
    far = [(0, 10, 1, 0), (10, 2**31 + 5, 1, 0)]
    assert group_segments(far, 1000, 1000) == [[0], [1]]


# --- deciding what stays ---------------------------------------------------------------


def header_of(batch: bytes) -> BatchHeader:
    return parse_header(batch)


def plan(batch: bytes, latest: dict[bytes, int], *, now: int = NOW, last: bool = False):
    return plan_batch(header_of(batch), read_records(batch), lambda d: latest.get(d, -1), now, 1000, last)


def latest_of(**keys: int) -> dict[bytes, int]:
    return {key_digest(k.encode()): o for k, o in keys.items()}


def test_records_superseded_in_the_map_go_and_the_rest_is_rewritten_at_the_same_offsets() -> None:
    batch = build_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], base_offset=100)
    assert plan(batch, latest_of(a=50)).action == COPY  # the map's offset is older
    result = plan(batch, latest_of(a=200, c=102))
    assert result.action == REWRITE and [r.key for r in result.kept] == [b"b", b"c"]
    out = rewrite_batch(header_of(batch), result.kept, result.delete_horizon_ms)
    header = validate_batch(out, produced=False)
    assert (header.base_offset, header.last_offset, header.records_count) == (100, 102, 2)
    assert [(r.offset, r.value) for r in read_records(out)] == [(101, b"2"), (102, b"3")]
    with pytest.raises(InvalidRecordError):
        validate_batch(out)  # what clients produce must still be whole
    assert plan(batch, latest_of(a=200, b=200, c=200)).action == DROP


def test_keyless_records_go() -> None:
    batch = build_batch([(None, b"x"), (b"k", b"v")])
    result = plan(batch, {})
    assert result.action == REWRITE and [r.key for r in result.kept] == [b"k"]


def test_tombstones_get_a_delete_horizon_and_go_after_it() -> None:
    batch = build_batch([(b"k", None, (), 5)], base_offset=7)
    first = plan(batch, latest_of(k=7))
    assert first.action == REWRITE and first.delete_horizon_ms == NOW + 1000
    out = rewrite_batch(header_of(batch), first.kept, first.delete_horizon_ms)
    header = validate_batch(out, produced=False)
    assert header.attributes & DELETE_HORIZON_BIT and header.base_timestamp == NOW + 1000
    assert header.delete_horizon_ms == NOW + 1000
    assert [(r.offset, r.timestamp, r.value) for r in read_records(out)] == [(7, 5, None)]
    assert plan(out, latest_of(k=7), now=NOW + 999).action == COPY  # horizon ahead: stays
    assert plan(out, latest_of(k=7), now=NOW + 1000).action == DROP


def test_the_last_batch_of_a_producer_stays_empty() -> None:
    batch = build_batch([(b"k", b"1"), (b"k", b"2")], base_offset=10, producer_id=7, producer_epoch=1,
                        base_sequence=40)
    gone = latest_of(k=99)
    assert plan(batch, gone).action == DROP
    kept = plan(batch, gone, last=True)
    assert kept.action == REWRITE and kept.kept == []
    out = rewrite_batch(header_of(batch), [], None)
    header = validate_batch(out, produced=False)
    assert (header.base_offset, header.last_offset, header.records_count) == (10, 11, 0)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 1, 40)
    assert plan(out, gone, last=True).action == COPY
    assert plan(out, gone, last=False).action == DROP  # no longer its producer's last


def test_control_batches_stay_whole() -> None:
    batch = bytearray(build_batch([(b"\x00\x00\x00\x00", b"marker")], transactional=True))
    struct.pack_into(">h", batch, 21, struct.unpack_from(">h", batch, 21)[0] | CONTROL_BIT)
    assert plan_batch(parse_header(batch), [], lambda d: 10**9, NOW, 0, False).action == COPY


def test_nothing_at_or_above_the_last_stable_offset_is_cleaned() -> None:
    """LogState.high_watermark carries min(high watermark, last stable offset)."""
    segments = tuple(SegmentInfo(b, b + 10, 100, 0) for b in (0, 10, 20, 30))
    assert cleanable_offsets(LogState("t", segments, 0, 40, -1), NOW)[1] == 30  # the active one
    assert cleanable_offsets(LogState("t", segments, 0, 15, -1), NOW)[1] == 10  # an open txn at 15


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_a_rewritten_batch_keeps_its_codec(codec: int) -> None:
    batch = build_batch([(b"k%d" % (i % 3), b"v%d" % i * 20, (("h", b"x"),), 1000 + i) for i in range(30)],
                        base_offset=500, compression=codec)
    assert header_of(batch).compression == codec
    result = plan(batch, latest_of(k0=527, k1=528, k2=529))
    out = rewrite_batch(header_of(batch), result.kept, result.delete_horizon_ms)
    header = validate_batch(out, produced=False)
    assert header.compression == codec and header.max_timestamp == 1029
    assert [(r.offset, r.key, r.headers) for r in read_records(out)] == [
        (527, b"k0", read_records(batch)[0].headers), (528, b"k1", read_records(batch)[0].headers),
        (529, b"k2", read_records(batch)[0].headers)]


def test_throttler_sleeps_to_the_rate() -> None:
    now = [0.0]
    slept = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    throttler = Throttler(1000.0, check_interval_s=0.3, clock=lambda: now[0], sleep=sleep)
    throttler.maybe_throttle(500)  # under the interval: no check
    now[0] = 0.5
    throttler.maybe_throttle(500)  # 1000 bytes in 0.5 s at 1000/s: sleep 0.5 s
    assert slept == [pytest.approx(0.5)]
    assert CleanerConfig(threads=2, dedupe_buffer_size=3_000_000).map_entries == 9000


# --- passes over real files ------------------------------------------------------------

COMPACT = LogConfig(segment_bytes=2048, cleanup_policy=["compact"], delete_retention_ms=1000,
                    min_cleanable_dirty_ratio=0.01)


def open_manager(path: Path, clock: list[int]) -> LogManager:
    return LogManager(path, COMPACT, clock_ms=lambda: clock[0],
                      cleaner_config=CleanerConfig(backoff_ms=10))


def write_changelog(lg, rng: random.Random, count: int, keys: int = 12) -> dict[bytes, tuple[int, bytes | None]]:
    """Random writes and deletes of ``keys`` keys; returns the latest (offset, value) of each."""
    latest = {}
    for i in range(count):
        key = b"key-%d" % rng.randrange(keys)
        value = None if rng.random() < 0.15 else b"value-%d-" % i + b"x" * rng.randrange(40)
        result = lg.append(build_batch([(key, value, (), 1000 + i)]), leader_epoch=0)
        latest[key] = (result.base_offset, value)
    lg.high_watermark = lg.log_end_offset
    return latest


def records_of(lg) -> list[tuple[int, bytes | None, bytes | None]]:
    with lg.read(lg.log_start_offset, 1 << 30) as result:
        data = result.read_bytes()
    out = []
    for pos, header in iter_batches(data, None, produced=False):
        if not header.attributes & CONTROL_BIT:  # data records only (control_batches below)
            out.extend((r.offset, r.key, r.value) for r in read_records(data[pos : pos + header.size]))
    return out


def clean_once(manager: LogManager) -> bool:
    job = manager.cleaner.grab()
    if job is None:
        return False
    asyncio.run(manager.cleaner.clean(job))
    return True


def assert_compacted(lg, latest, *, tombstones: bool) -> None:
    records = records_of(lg)
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets))
    active_base = lg.segments[-1].base_offset
    seen = {}
    for offset, key, value in records:
        if offset < active_base:
            assert key not in seen, f"{key!r} twice below the active segment"
        seen[key] = (offset, value)
    for key, (offset, value) in latest.items():
        if value is None and not tombstones and offset < active_base:
            assert key not in seen
        else:
            assert seen[key] == (offset, value)


def test_a_pass_keeps_the_latest_record_of_each_key_at_its_offset(tmp_path) -> None:
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    latest = write_changelog(lg, random.Random(1), 400)
    before = lg.size
    reading = lg.read(0, 1 << 30)  # a fetch in flight keeps the old files
    old_bytes = reading.read_bytes()
    assert clean_once(manager)
    assert lg.size < before / 3
    assert reading.read_bytes() == old_bytes
    reading.release()
    assert_compacted(lg, latest, tombstones=True)
    assert manager.cleaner.horizons[("t", 0)] == NOW + 1000
    checkpoint = read_offsets(tmp_path / CHECKPOINT_FILE)[("t", 0)]
    assert checkpoint == lg.segments[-1].base_offset
    assert not clean_once(manager)  # nothing dirty, horizon ahead
    clock[0] = NOW + 1000
    assert clean_once(manager)  # the horizon passed: tombstones go
    assert_compacted(lg, latest, tombstones=False)
    assert not list(lg.dir.glob("*.deleted")) and not list(lg.dir.glob("*.swap"))
    manager.close()
    # a restart (clean, then unclean) reads the same log and the checkpoint
    for clean in (True, False):
        manager = open_manager(tmp_path, clock)
        again = manager.get_log("t", 0)
        assert_compacted(again, latest, tombstones=False)
        assert manager.cleaner.checkpoints[("t", 0)] == checkpoint
        manager.close(clean=clean)


def test_a_delete_horizon_still_comes_due_after_a_restart(tmp_path) -> None:
    """The horizon is in the batches (KIP-534): a restarted cleaner reads it back, and a
    clean log's tombstones go when it passes, not only once the log is dirty again."""
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    latest = write_changelog(lg, random.Random(5), 300)
    assert clean_once(manager)
    assert_compacted(lg, latest, tombstones=True)
    manager.close()
    clock[0] = NOW + 500
    manager = open_manager(tmp_path, clock)
    asyncio.run(manager.cleaner.recover_horizons())
    assert manager.cleaner.horizons[("t", 0)] == NOW + 1000  # the one the first pass set
    assert not clean_once(manager)
    clock[0] = NOW + 1000
    assert clean_once(manager)
    assert_compacted(manager.get_log("t", 0), latest, tombstones=False)
    manager.close()


def test_compacted_log_keeps_idempotent_producers_last_batches(tmp_path) -> None:
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    for i in range(60):
        lg.append(build_batch([(b"k", b"v" * 50, (), 1000 + i)], producer_id=1 + i % 2, producer_epoch=0,
                              base_sequence=i // 2), leader_epoch=0)
    lg.append(build_batch([(b"k", b"last", (), 2000)]), leader_epoch=0)
    lg.roll()
    lg.high_watermark = lg.log_end_offset
    assert clean_once(manager)
    with lg.read(0, 1 << 30) as result:
        data = result.read_bytes()
    headers = [h for _, h in iter_batches(data, None, produced=False)]
    by_producer = {h.producer_id: h for h in headers if h.producer_id >= 0}
    assert sorted(by_producer) == [1, 2]
    assert (by_producer[1].base_sequence, by_producer[1].records_count) == (29, 0)
    assert (by_producer[2].base_sequence, by_producer[2].last_offset) == (29, 59)
    assert records_of(lg) == [(60, b"k", b"last")]
    manager.close()


def append_txn(lg, producer_id: int, records: list[tuple[bytes, bytes]], commit: bool, ts: int) -> None:
    """A transaction of ``records`` then its marker; an abort indexed as the broker does."""
    first = lg.append(build_batch([(k, v, (), ts) for k, v in records], producer_id=producer_id,
                                  producer_epoch=0, base_sequence=0, transactional=True),
                      leader_epoch=0).base_offset
    marker = lg.append(build_marker_batch(producer_id, 0, commit, 0, ts), leader_epoch=0).base_offset
    if not commit:
        lg.txn_index.append(AbortedTxn(producer_id, first, marker, marker), lg.segments[-1].base_offset)


def control_batches(lg) -> list[BatchHeader]:
    with lg.read(lg.log_start_offset, 1 << 30) as result:
        data = result.read_bytes()
    return [h for _, h in iter_batches(data, None, produced=False) if h.attributes & CONTROL_BIT]


def test_aborted_records_go_markers_at_their_horizon_and_the_txnindex_follows(tmp_path) -> None:
    """Kafka's transaction rules in the cleaner: an aborted value never shadows the
    committed one before it; the ABORT marker and its .txnindex entry stay while the
    aborted records were just removed (and survive a restart); once no record of its
    transaction is left the marker gets a delete horizon and goes after it, its index entry
    with it; a COMMIT marker stays while records of its transaction do."""
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    lg.append(build_batch([(b"k1", b"committed", (), 1000)]), leader_epoch=0)  # 0
    lg.roll()
    append_txn(lg, 7, [(b"k1", b"aborted"), (b"k2", b"aborted")], commit=False, ts=1001)  # 1-2, 3
    lg.roll()
    append_txn(lg, 8, [(b"k3", b"c")], commit=True, ts=1002)  # 4, 5
    append_txn(lg, 7, [(b"k5", b"later")], commit=True, ts=1003)  # 6, 7: 7's last batch now
    lg.append(build_batch([(b"k4", b"x", (), 1004)]), leader_epoch=0)  # 8
    lg.roll()
    lg.high_watermark = lg.log_end_offset
    assert clean_once(manager)
    kept = [(0, b"k1", b"committed"), (4, b"k3", b"c"), (6, b"k5", b"later")]
    assert records_of(lg) == [*kept, (8, b"k4", b"x")]
    markers = control_batches(lg)
    assert [(h.base_offset, h.delete_horizon_ms) for h in markers] == [(3, None), (5, None), (7, None)]
    assert lg.txn_index.entries == [AbortedTxn(7, 1, 3, 3)]
    manager.close()

    manager = open_manager(tmp_path, clock)  # a restart reads the cleaned .txnindex
    lg = manager.get_log("t", 0)
    assert lg.txn_index.entries == [AbortedTxn(7, 1, 3, 3)]
    lg.append(build_batch([(b"k4", b"y", (), 1005)]), leader_epoch=0)  # 9: dirty again
    lg.roll()
    lg.high_watermark = lg.log_end_offset
    assert clean_once(manager)  # no record of the aborted transaction left: a horizon
    markers = control_batches(lg)
    assert [(h.base_offset, h.delete_horizon_ms) for h in markers] == [(3, NOW + 1000), (5, None), (7, None)]
    assert lg.txn_index.entries == []
    assert not list(lg.dir.glob("*.txnindex"))
    assert manager.cleaner.horizons[("t", 0)] == NOW + 1000
    clock[0] = NOW + 1000
    assert clean_once(manager)  # the horizon passed: the marker goes
    assert [h.base_offset for h in control_batches(lg)] == [5, 7]
    assert records_of(lg) == [*kept, (9, b"k4", b"y")]
    manager.close()


def test_a_producers_last_marker_of_a_newer_epoch_stays_empty(tmp_path) -> None:
    """Kafka's third case of a producer's last batch: when its last entry is a marker of
    an epoch newer than its last data (an epoch bump that aborted an empty transaction),
    the marker stays, emptied, so the epoch survives cleaning and a restart's replay."""
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    append_txn(lg, 9, [(b"k", b"v")], commit=True, ts=1000)  # 0, 1 (epoch 0)
    lg.append(build_batch([(b"k", b"newer", (), 1001)]), leader_epoch=0)  # 2: the txn's data can go
    marker = lg.append(build_marker_batch(9, 1, False, 0, 1002), leader_epoch=0).base_offset  # 3
    lg.roll()
    lg.high_watermark = lg.log_end_offset
    for now in (NOW, NOW, NOW + 1000, NOW + 1000):
        clock[0] = now
        lg.append(build_batch([(b"other", b"x", (), 1003)]), leader_epoch=0)  # dirty again
        lg.roll()
        lg.high_watermark = lg.log_end_offset
        assert clean_once(manager)
    markers = [h for h in control_batches(lg) if h.producer_id == 9]
    assert [(h.base_offset, h.producer_epoch, h.records_count) for h in markers] == [(marker, 1, 0)]
    manager.close()


def test_the_cleaner_stays_below_the_last_stable_offset(tmp_path) -> None:
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    lg.append(build_batch([(b"k", b"a", (), 1000)]), leader_epoch=0)
    lg.roll()
    lg.append(build_batch([(b"k", b"b", (), 1000)], producer_id=3, producer_epoch=0, base_sequence=0,
                          transactional=True), leader_epoch=0)  # an open transaction at 1
    lg.roll()
    lg.high_watermark = lg.log_end_offset
    lg.last_stable_offset = lambda: 1
    assert clean_once(manager)  # only below the open transaction: its value does not count
    assert manager.cleaner.checkpoints[("t", 0)] == 1
    assert records_of(lg) == [(0, b"k", b"a"), (1, b"k", b"b")]
    lg.last_stable_offset = lambda: 2  # it committed
    lg.append(build_batch([(b"other", b"c", (), 1000)]), leader_epoch=0)
    lg.roll()
    lg.high_watermark = lg.log_end_offset
    assert clean_once(manager)
    assert records_of(lg) == [(1, b"k", b"b"), (2, b"other", b"c")]
    manager.close()


def test_retention_never_shortens_a_compacted_log_but_does_compact_delete(tmp_path) -> None:
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    lg.update_config(LogConfig(**{**vars(COMPACT), "retention_ms": 1, "retention_bytes": 10}))
    write_changelog(lg, random.Random(3), 100)
    assert lg.delete_retention_breached(NOW + 10**9) == 0
    lg.update_config(LogConfig(**{**vars(COMPACT), "retention_ms": 1, "cleanup_policy": ["compact", "delete"]}))
    assert lg.delete_retention_breached(NOW + 10**9) > 0
    manager.close()


def test_truncation_mid_pass_aborts_the_install(tmp_path) -> None:
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    write_changelog(lg, random.Random(4), 200)
    before = records_of(lg)
    job = manager.cleaner.grab()

    async def run() -> None:
        task = asyncio.ensure_future(manager.cleaner.clean(job))
        lg.truncate_to(lg.segments[1].base_offset + 1)  # before the pass installs anything
        await task

    asyncio.run(run())
    assert records_of(lg) == [r for r in before if r[0] < lg.log_end_offset]
    assert not list(lg.dir.glob("*.swap")) and not list(lg.dir.glob("*.cleaned"))
    assert manager.cleaner.checkpoints.get(("t", 0), -1) <= lg.log_end_offset
    manager.close()


@pytest.mark.parametrize("crash_after", ["cleaned", "swap", "old_deleted"])
def test_recovery_rolls_back_cleaned_files_and_completes_swaps(tmp_path, crash_after) -> None:
    """A crash at each step of an install: .cleaned files are rolled back (the log is as
    before), a .swap is completed (the log is compacted), never a lost or doubled offset."""
    clock = [NOW]
    manager = open_manager(tmp_path, clock)
    lg = manager.get_or_create_log("t", 0)
    latest = write_changelog(lg, random.Random(5), 300)
    original = records_of(lg)
    directory = lg.dir
    job = manager.cleaner.grab()
    job.build_map()
    group = job.groups()[0]
    cleaned = job.clean_group(group, lg.config, manager.io)
    if crash_after != "cleaned":
        cleaned.rename_suffix(".cleaned", ".swap")
    if crash_after == "old_deleted":
        first = job.segments[group[0]]
        for suffix in (".log", ".index", ".timeindex"):
            path = directory / (first.log_path.stem + suffix)
            path.rename(path.with_name(path.name + ".deleted"))
    cleaned.close()
    for s in job.segments:
        s.release()
    manager.close(clean=False)
    manager = open_manager(tmp_path, clock)
    lg = manager.get_log("t", 0)
    assert not [p for p in os.listdir(directory) if p.endswith((".swap", ".cleaned", ".deleted"))]
    records = records_of(lg)
    if crash_after == "cleaned":
        assert records == original
    else:
        assert set(records) <= set(original) and len(records) < len(original)
    assert_compacted_subset(records, latest)
    manager.close()


def assert_compacted_subset(records, latest) -> None:
    """Every key's latest record is there, offsets increase and are unique."""
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets))
    present = {(o, k, v) for o, k, v in records}
    for key, (offset, value) in latest.items():
        assert (offset, key, value) in present


def test_cleaner_keys_have_kafkas_defaults_and_rendering() -> None:
    from odradek.broker.config import BrokerConfig
    from odradek.broker.handlers.describe_configs import render
    config = BrokerConfig({})
    assert (config["log.cleaner.threads"], config["log.cleaner.dedupe.buffer.size"],
            config["log.cleaner.backoff.ms"], config["log.cleaner.enable"]) == (1, 134217728, 15000, True)
    assert render(config["log.cleaner.io.max.bytes.per.second"]) == "1.7976931348623157E308"
    topic = config.topic_config({"min.cleanable.dirty.ratio": "0.2"})
    assert (render(topic["min.cleanable.dirty.ratio"]), topic["delete.retention.ms"],
            topic["max.compaction.lag.ms"]) == ("0.2", 86400000, 2**63 - 1)
    with pytest.raises(ValueError, match="min.cleanable.dirty.ratio"):
        config.topic_config({"min.cleanable.dirty.ratio": "1.5"})

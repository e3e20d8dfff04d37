"""Producer state rules (Kafka's, since KIP-360), snapshots and recovery."""

import pytest

from odradek.protocol.records import BatchHeader
from odradek.storage.producer_state import (
    DuplicateBatch,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
    ProducerStateManager,
)


def header(pid=7, epoch=0, seq=0, count=1, ts=1000):
    return BatchHeader(0, 100, 0, 2, 0, 0, count - 1, ts, ts, pid, epoch, seq, count)


def appended(state, *headers, start=0):
    offset = start
    for h in headers:
        state.check(h)
        state.update(h, offset, now_ms=1)
        offset += h.records_count
    return offset


def test_in_sequence_batches_and_gap(tmp_path):
    s = ProducerStateManager(tmp_path)
    appended(s, header(seq=0, count=3), header(seq=3, count=2))
    with pytest.raises(OutOfOrderSequenceError):
        s.check(header(seq=6))  # 5 is missing


def test_duplicate_of_last_five_returns_original_offsets(tmp_path):
    s = ProducerStateManager(tmp_path)
    appended(s, *[header(seq=i * 2, count=2) for i in range(6)])
    with pytest.raises(DuplicateBatch) as dup:
        s.check(header(seq=4, count=2))
    assert (dup.value.batch.first_offset, dup.value.batch.last_offset) == (4, 5)
    with pytest.raises(OutOfOrderSequenceError):
        s.check(header(seq=0, count=2))  # a duplicate older than the last five


def test_stale_epoch_and_new_epoch(tmp_path):
    s = ProducerStateManager(tmp_path)
    appended(s, header(epoch=3, seq=0))
    with pytest.raises(InvalidProducerEpochError):
        s.check(header(epoch=2, seq=1))
    with pytest.raises(OutOfOrderSequenceError):
        s.check(header(epoch=4, seq=5))
    s.check(header(epoch=4, seq=0))


def test_unknown_producer_accepts_any_sequence_and_wraps(tmp_path):
    s = ProducerStateManager(tmp_path)
    s.check(header(seq=12345))
    appended(s, header(seq=2**31 - 2, count=2))
    s.check(header(seq=0))  # int32 wrap-around


def test_snapshot_roundtrip_replay_and_damaged_snapshot(tmp_path):
    s = ProducerStateManager(tmp_path)
    end = appended(s, header(pid=1, seq=0, count=2), header(pid=2, seq=0))
    s.take_snapshot(end)
    log = [(end, header(pid=1, seq=2, count=3), -1)]  # appended after the snapshot (no marker)

    restored = ProducerStateManager(tmp_path)
    start = restored.load(end + 3, lambda offset: [b for b in log if b[0] >= offset], now_ms=5)
    assert start == end
    assert restored.producers[1].last_seq == 4 and restored.producers[2].last_seq == 0

    path = tmp_path / f"{end:020d}.snapshot"
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    full_log = [(0, header(pid=1, seq=0, count=2), -1), (2, header(pid=2, seq=0), -1), *log]
    fallback = ProducerStateManager(tmp_path)
    assert fallback.load(end + 3, lambda offset: [b for b in full_log if b[0] >= offset], 5) == 0
    assert fallback.producers[1].last_seq == 4


def test_snapshots_above_the_log_end_are_dropped(tmp_path):
    s = ProducerStateManager(tmp_path)
    appended(s, header(seq=0))
    s.take_snapshot(10)
    s.take_snapshot(20)
    fresh = ProducerStateManager(tmp_path)
    assert fresh.load(15, lambda offset: [], now_ms=0) == 10
    assert fresh.snapshot_offsets() == [10]


def test_expiry(tmp_path):
    s = ProducerStateManager(tmp_path, expiration_ms=100)
    s.update(header(pid=1), 0, now_ms=0)
    s.update(header(pid=2), 1, now_ms=90)
    assert s.remove_expired(now_ms=150) == [1]
    s.check(header(pid=1, seq=77))  # forgotten: any sequence again

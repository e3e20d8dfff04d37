"""The partition side of transactions: open transactions in the producer state, the last
stable offset, markers, and the aborted-transaction index (Kafka's .txnindex format)."""

import pytest

from odradek.protocol import records as rec
from odradek.protocol.records import BatchHeader
from odradek.storage.producer_state import InvalidTxnStateError, ProducerStateManager
from odradek.storage.txn_index import ENTRY_SIZE, AbortedTxn, AbortedTxnIndex, decode, encode

TXN = rec.TRANSACTIONAL_BIT
CONTROL = rec.TRANSACTIONAL_BIT | rec.CONTROL_BIT


def header(pid=7, epoch=0, seq=0, count=1, attributes=TXN):
    return BatchHeader(0, 100, 0, 2, 0, attributes, count - 1, 1000, 1000, pid, epoch, seq, count)


def marker(pid=7, epoch=0):
    return header(pid, epoch, seq=-1, attributes=CONTROL)


def test_entry_is_kafkas_34_byte_format():
    e = AbortedTxn(producer_id=9, first_offset=10, last_offset=20, last_stable_offset=10)
    data = encode(e)
    assert len(data) == ENTRY_SIZE == 34
    assert data == b"\x00\x00" + b"".join(v.to_bytes(8, "big") for v in (9, 10, 20, 10))
    assert decode(data + data[:5]) == [e]  # a torn tail is ignored


def test_index_append_load_truncate_collect(tmp_path):
    idx = AbortedTxnIndex(tmp_path)
    idx.append(AbortedTxn(1, 0, 5, 0), segment_base=0)
    idx.append(AbortedTxn(2, 6, 9, 6), segment_base=0)
    idx.append(AbortedTxn(1, 12, 30, 12), segment_base=10)
    idx.append(AbortedTxn(1, 12, 30, 12), segment_base=10)  # replayed again: kept once
    assert (tmp_path / f"{0:020d}.txnindex").stat().st_size == 2 * ENTRY_SIZE
    again = AbortedTxnIndex(tmp_path)
    again.load()
    assert again.entries == idx.entries and len(again.entries) == 3
    # overlapping [fetch offset, upper bound): marker at or after the fetch, start before the bound
    assert [e.producer_id for e in again.collect(6, 12)] == [2]
    assert [e.last_offset for e in again.collect(0, 100)] == [5, 9, 30]
    assert again.collect(31, 100) == []
    again.truncate(9)
    assert [e.last_offset for e in again.entries] == [5]
    assert not (tmp_path / f"{10:020d}.txnindex").exists()
    third = AbortedTxnIndex(tmp_path)
    third.load()
    assert [e.last_offset for e in third.entries] == [5]


def test_open_transaction_sets_the_last_stable_offset(tmp_path):
    s = ProducerStateManager(tmp_path)
    assert s.last_stable_offset(10) == 10
    s.check(header(seq=0))
    s.update(header(seq=0, count=3), 10, now_ms=1)
    s.update(header(seq=3, count=2), 13, now_ms=1)
    assert s.first_unstable_offset() == 10
    assert s.last_stable_offset(15) == 10
    with pytest.raises(InvalidTxnStateError):  # no non-transactional write inside it
        s.check(header(seq=5, attributes=0))
    done = s.update(marker(), 15, now_ms=2, control_type=rec.CONTROL_ABORT)
    assert (done.first_offset, done.last_offset, done.is_aborted) == (10, 15, True)
    assert s.last_stable_offset(15) == 10  # the marker is not replicated yet
    assert s.last_stable_offset(16) == 16
    assert s.update(marker(), 16, now_ms=2, control_type=rec.CONTROL_COMMIT).first_offset == 16


def test_marker_with_a_new_epoch_and_snapshot_keeps_open_transactions(tmp_path):
    s = ProducerStateManager(tmp_path)
    s.update(header(pid=1, seq=0), 0, now_ms=1)
    s.update(header(pid=2, seq=0), 1, now_ms=1)
    s.update(marker(pid=1, epoch=1), 2, now_ms=1, control_type=rec.CONTROL_ABORT)  # fenced
    assert s.producers[1].epoch == 1 and not s.producers[1].batches
    s.take_snapshot(3)
    completed = []
    log = [(3, marker(pid=2), rec.CONTROL_COMMIT)]
    restored = ProducerStateManager(tmp_path)
    restored.load(4, lambda offset: [b for b in log if b[0] >= offset], 5,
                  lambda done, offset: completed.append((done, offset)))
    assert completed[0] == (None, 3)
    assert completed[1][0].first_offset == 1 and not completed[1][0].is_aborted
    assert restored.ongoing == {}


def test_control_type_reads_the_marker_key():
    batch = rec.build_marker_batch(5, 2, commit=True, coordinator_epoch=7, timestamp=1)
    h = rec.parse_header(batch)
    assert h.is_control and h.is_transactional and h.base_sequence == -1
    assert rec.control_type(batch) == rec.CONTROL_COMMIT
    assert rec.control_type(rec.build_marker_batch(5, 2, False, 7, 1)) == rec.CONTROL_ABORT
    assert rec.control_type(batch[:63]) == -1


def test_a_rolled_segments_txnindex_survives_power_loss(tmp_path):
    """The .txnindex is fsynced with the segment's indexes when the segment is flushed
    after its roll; a power cut then keeps its entries (FaultyIO's power-loss mode cuts
    every file back to what was fsynced)."""
    from odradek.storage import FaultyIO, LogConfig, LogManager

    journal = tmp_path / "durable.journal"
    io = FaultyIO(durable_journal=journal)
    manager = LogManager(tmp_path / "data", LogConfig.from_mapping({}), io=io)
    lg = manager.get_or_create_log("t", 0)
    lg.append(rec.build_batch([rec.Record(None, b"v", (), 0)]), leader_epoch=0)
    segment = lg.segments[0]
    idx = AbortedTxnIndex(lg.dir, io)
    idx.append(AbortedTxn(1, 0, 0, 0), segment_base=segment.base_offset)
    segment.flush(indexes=True)  # what the log's flush does to a rolled segment
    manager.close()
    FaultyIO.lose_power(journal)
    again = AbortedTxnIndex(tmp_path / "data" / "t-0")
    again.load()
    assert again.entries == [AbortedTxn(1, 0, 0, 0)]

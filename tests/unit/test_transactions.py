"""The transaction coordinator's pure parts: the partition of a transactional id, the
state machine (Kafka's TransactionCoordinator rules) and the __transaction_state records."""

import pytest

from odradek.broker.transactions import state as st
from odradek.broker.transactions import txn_log as tl
from odradek.broker.transactions.state import TxnMetadata, TxnState
from odradek.protocol.errors import ErrorCode

MAX = 900_000


def test_partition_for_is_javas_hash_code_with_kafkas_abs():
    assert tl.partition_for("hello", 50) == 99162322 % 50  # "hello".hashCode() == 99162322
    assert tl.partition_for("", 50) == 0
    # "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs maps it to 0
    assert tl.partition_for("polygenelubricants", 50) == 0
    # a negative hash: "my-transactional-id".hashCode() == -959806496
    assert tl.partition_for("my-transactional-id", 50) == 959806496 % 50


def counter(start=100):
    ids = iter(range(start, start + 100))
    return lambda: next(ids)


def ongoing(tid="t", pid=5, epoch=3, parts=(("a", 0),), start=1000):
    return TxnMetadata(tid, pid, epoch, 60000, TxnState.ONGOING, frozenset(parts), start, start)


def test_init_new_id_gets_a_fresh_producer_at_epoch_0():
    d = st.init_producer_id(None, "t", 60000, MAX, -1, -1, 10, counter())
    assert not d.error and d.target.state == TxnState.EMPTY
    assert (d.target.producer_id, d.target.producer_epoch) == (100, 0)


@pytest.mark.parametrize("timeout", [0, -1, MAX + 1])
def test_init_refuses_timeouts_outside_the_brokers_bound(timeout):
    assert st.init_producer_id(None, "t", timeout, MAX, -1, -1, 10, counter()).error == \
        ErrorCode.INVALID_TRANSACTION_TIMEOUT


def test_init_bumps_the_epoch_and_from_ongoing_fences_and_aborts():
    done = ongoing().replace(state=TxnState.COMPLETE_COMMIT, partitions=frozenset())
    d = st.init_producer_id(done, "t", 60000, MAX, -1, -1, 10, counter())
    assert (d.target.producer_id, d.target.producer_epoch, d.target.state) == (5, 4, TxnState.EMPTY)
    d = st.init_producer_id(ongoing(), "t", 60000, MAX, -1, -1, 10, counter())
    assert d.target.state == TxnState.PREPARE_ABORT and d.target.producer_epoch == 4
    assert d.target.partitions == ongoing().partitions  # the markers go to them
    assert d.answer == ErrorCode.CONCURRENT_TRANSACTIONS
    for busy in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT, TxnState.PREPARE_EPOCH_FENCE):
        d = st.init_producer_id(ongoing().replace(state=busy), "t", 60000, MAX, -1, -1, 10, counter())
        assert d.error == ErrorCode.CONCURRENT_TRANSACTIONS


def test_init_exhausted_epoch_gets_a_new_producer_id():
    meta = ongoing(epoch=st.MAX_EPOCH - 1).replace(state=TxnState.EMPTY)
    d = st.init_producer_id(meta, "t", 60000, MAX, -1, -1, 10, counter())
    assert (d.target.producer_id, d.target.producer_epoch) == (100, 0)
    # KIP-360: the producer that asked with its exhausted epoch retries (the answer was
    # lost): the same new producer id, no second rotation; another old epoch is fenced
    d = st.init_producer_id(meta, "t", 60000, MAX, 5, st.MAX_EPOCH - 1, 10, counter())
    assert (d.target.producer_id, d.target.previous_producer_id) == (100, 5)
    assert st.init_producer_id(d.target, "t", 60000, MAX, 5, st.MAX_EPOCH - 1, 20, counter()).target == d.target
    assert st.init_producer_id(d.target, "t", 60000, MAX, 5, 7, 20, counter()).error == ErrorCode.PRODUCER_FENCED


def test_init_kip_360_checks_the_producer_it_was():
    meta = ongoing().replace(state=TxnState.COMPLETE_ABORT)
    assert st.init_producer_id(meta, "t", 60000, MAX, 6, 3, 10, counter()).error == ErrorCode.PRODUCER_FENCED
    assert st.init_producer_id(meta, "t", 60000, MAX, 5, 1, 10, counter()).error == ErrorCode.PRODUCER_FENCED
    d = st.init_producer_id(meta, "t", 60000, MAX, 5, 3, 10, counter())
    assert not d.error and d.target.producer_epoch == 4
    # a retry with the epoch before the bump gets the same answer, no second bump
    retry = st.init_producer_id(d.target, "t", 60000, MAX, 5, 3, 10, counter())
    assert retry.target == d.target


def test_add_partitions_opens_and_extends_the_transaction():
    empty = ongoing().replace(state=TxnState.EMPTY, partitions=frozenset(), txn_start_ms=-1)
    d = st.add_partitions(empty, 5, 3, {("a", 0)}, 50)
    assert d.target.state == TxnState.ONGOING and d.target.txn_start_ms == 50
    d2 = st.add_partitions(d.target, 5, 3, {("b", 1)}, 60)
    assert d2.target.partitions == {("a", 0), ("b", 1)} and d2.target.txn_start_ms == 50
    assert st.add_partitions(d2.target, 5, 3, {("a", 0)}, 70) == st.Decision()  # nothing to write
    assert st.add_partitions(d.target, 5, 2, {("a", 0)}, 70).error == ErrorCode.PRODUCER_FENCED
    assert st.add_partitions(d.target, 9, 3, {("a", 0)}, 70).error == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert st.add_partitions(None, 9, 3, {("a", 0)}, 70).error == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    prepare = d.target.replace(state=TxnState.PREPARE_COMMIT)
    assert st.add_partitions(prepare, 5, 3, {("a", 0)}, 70).error == ErrorCode.CONCURRENT_TRANSACTIONS


def test_end_txn_rules():
    m = ongoing()
    commit = st.end_txn(m, 5, 3, True, 10).target
    assert commit.state == TxnState.PREPARE_COMMIT
    assert st.end_txn(m, 5, 2, True, 10).error == ErrorCode.PRODUCER_FENCED  # stale epoch
    assert st.end_txn(commit, 5, 3, True, 10).error == ErrorCode.CONCURRENT_TRANSACTIONS
    assert st.end_txn(commit, 5, 3, False, 10).error == ErrorCode.INVALID_TXN_STATE
    done = st.complete(commit, 20)
    assert done.state == TxnState.COMPLETE_COMMIT and not done.partitions
    assert st.end_txn(done, 5, 3, True, 30) == st.Decision()  # a retry: NONE, nothing written
    assert st.end_txn(done, 5, 3, False, 30).error == ErrorCode.INVALID_TXN_STATE
    aborted = st.complete(st.end_txn(m, 5, 3, False, 10).target, 20)
    assert aborted.state == TxnState.COMPLETE_ABORT
    assert st.end_txn(aborted, 5, 3, True, 30).error == ErrorCode.INVALID_TXN_STATE
    empty = m.replace(state=TxnState.EMPTY)
    assert st.end_txn(empty, 5, 3, True, 30).error == ErrorCode.INVALID_TXN_STATE


def test_verify_partition_kip_890():
    m = ongoing()
    assert st.verify_partition(m, 5, 3, ("a", 0)) == ErrorCode.NONE
    assert st.verify_partition(m, 5, 3, ("a", 1)) == ErrorCode.TRANSACTION_ABORTABLE
    assert st.abortable_for(ErrorCode.TRANSACTION_ABORTABLE, 10, 11) == ErrorCode.INVALID_TXN_STATE
    assert st.abortable_for(ErrorCode.TRANSACTION_ABORTABLE, 11, 11) == ErrorCode.TRANSACTION_ABORTABLE
    # Kafka 4.4's coordinator, in its order of checks; a leader passes them on as leader_error says
    assert st.verify_partition(m, 5, 2, ("a", 0)) == ErrorCode.PRODUCER_FENCED
    assert st.verify_partition(m, 6, 3, ("a", 0)) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert st.verify_partition(None, 5, 3, ("a", 0)) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert st.verify_partition(m.replace(state=TxnState.PREPARE_COMMIT), 5, 3, ("a", 0)) == \
        ErrorCode.CONCURRENT_TRANSACTIONS
    assert st.leader_error(ErrorCode.PRODUCER_FENCED) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert st.leader_error(ErrorCode.CONCURRENT_TRANSACTIONS) == ErrorCode.NOT_ENOUGH_REPLICAS
    assert st.leader_error(ErrorCode.INVALID_PRODUCER_ID_MAPPING) == ErrorCode.INVALID_PRODUCER_ID_MAPPING


def test_timeout_aborts_with_the_epoch_bumped():
    m = ongoing(start=1000)
    assert not st.timed_out(m, 1000 + 60000)
    assert st.timed_out(m, 1000 + 60001)
    target = st.abort_timed_out(m, 70000)
    assert target.state == TxnState.PREPARE_ABORT and target.producer_epoch == 4
    assert st.can_transition(m.state, target.state)


def test_expiry_forgets_only_ids_without_a_transaction():
    idle = ongoing(start=0).replace(state=TxnState.COMPLETE_COMMIT, last_update_ms=1000)
    assert not st.expired(idle, 1999, 1000)
    assert st.expired(idle, 2000, 1000)
    assert st.expired(idle.replace(state=TxnState.EMPTY), 2000, 1000)
    for busy in (TxnState.ONGOING, TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
        assert not st.expired(idle.replace(state=busy), 10**9, 1000)


def test_transitions_follow_kafkas_table():
    assert st.can_transition(TxnState.ONGOING, TxnState.PREPARE_COMMIT)
    assert not st.can_transition(TxnState.EMPTY, TxnState.PREPARE_COMMIT)
    assert not st.can_transition(TxnState.PREPARE_COMMIT, TxnState.COMPLETE_ABORT)
    assert TxnState.PREPARE_EPOCH_FENCE.kafka_name == "PrepareEpochFence"


def test_transaction_log_records_roundtrip():
    m = ongoing(parts=(("a", 0), ("a", 2), ("b", 1)))
    key = tl.key("t")
    assert key == b"\x00\x00\x00\x01t"
    assert tl.parse_key(key) == "t"
    back = tl.parse_value("t", tl.value(m))
    assert back == m.replace(last_producer_epoch=-1)
    # v0 layout: version, producer id, epoch, timeout, status, partitions, last update, start
    assert tl.value(m)[:17] == b"\x00\x00" + (5).to_bytes(8, "big") + (3).to_bytes(2, "big") + \
        (60000).to_bytes(4, "big") + b"\x01"
    with pytest.raises(tl.RecordFormatError):
        tl.parse_value("t", b"\x00\x07")
    with pytest.raises(tl.RecordFormatError):
        tl.parse_value("t", tl.value(m)[:20])


# -- transactions v2 (KIP-890 part 2) ---------------------------------------------------------

def test_v2_end_txn_bumps_the_epoch_and_answers_it():
    m = ongoing()
    d = st.end_txn(m, 5, 3, True, 10, v2=True, new_producer_id=counter())
    prepare = d.target
    assert (prepare.state, prepare.producer_epoch, prepare.last_producer_epoch, prepare.client_tv) == \
        (TxnState.PREPARE_COMMIT, 4, 3, st.TV_2)
    assert prepare.partitions == m.partitions  # the markers go there, with epoch 4
    # a retry of the EndTxn (the epoch it sent) while markers are written, and after
    assert st.end_txn(prepare, 5, 3, True, 11, v2=True).error == ErrorCode.CONCURRENT_TRANSACTIONS
    done = st.complete(prepare, 20)
    assert (done.state, done.producer_id, done.producer_epoch) == (TxnState.COMPLETE_COMMIT, 5, 4)
    assert st.continuing_producer(done) == (5, 4)
    assert st.end_txn(done, 5, 3, True, 21, v2=True) == st.Decision()  # retry: NONE
    assert st.end_txn(done, 5, 3, False, 21, v2=True).error == ErrorCode.INVALID_TXN_STATE
    assert st.end_txn(done, 5, 2, True, 21, v2=True).error == ErrorCode.PRODUCER_FENCED
    assert st.end_txn(done, 5, 4, True, 21, v2=True).error == ErrorCode.INVALID_TXN_STATE  # nothing open
    # the next transaction runs at epoch 4, added by a partition leader
    nxt = st.add_partitions(done, 5, 4, {("b", 0)}, 30, st.TV_2).target
    assert (nxt.state, nxt.producer_epoch, nxt.txn_start_ms) == (TxnState.ONGOING, 4, 30)
    assert st.add_partitions(done, 5, 3, {("b", 0)}, 30, st.TV_2).error == ErrorCode.PRODUCER_FENCED


def test_v2_abort_without_partitions_bumps_the_epoch():
    for state in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
        m = ongoing().replace(state=state, partitions=frozenset())
        d = st.end_txn(m, 5, 3, False, 50, v2=True, new_producer_id=counter())
        assert (d.target.state, d.target.producer_epoch, d.target.partitions, d.target.txn_start_ms) == \
            (TxnState.PREPARE_ABORT, 4, frozenset(), 50)
    empty = ongoing().replace(state=TxnState.EMPTY, partitions=frozenset())
    assert st.end_txn(empty, 5, 3, True, 50, v2=True).error == ErrorCode.INVALID_TXN_STATE
    assert st.end_txn(empty, 5, 2, False, 50, v2=True).error == ErrorCode.PRODUCER_FENCED
    assert st.end_txn(empty, 6, 3, False, 50, v2=True).error == ErrorCode.INVALID_PRODUCER_ID_MAPPING


def test_v2_exhausted_epoch_moves_to_a_new_producer_id_on_completion():
    m = ongoing(epoch=st.MAX_EPOCH - 1)
    prepare = st.end_txn(m, 5, st.MAX_EPOCH - 1, False, 10, v2=True, new_producer_id=counter()).target
    # the markers carry the old id at 32767; the producer goes on with the next id at 0
    assert (prepare.producer_id, prepare.producer_epoch, prepare.next_producer_id) == (5, st.MAX_EPOCH, 100)
    assert st.continuing_producer(prepare) == (100, 0)
    done = st.complete(prepare, 20)
    assert (done.producer_id, done.producer_epoch, done.previous_producer_id, done.next_producer_id) == \
        (100, 0, 5, -1)
    # a retry of that EndTxn (old id, old epoch) answers NONE; the old id is fenced otherwise
    assert st.end_txn(done, 5, st.MAX_EPOCH - 1, False, 21, v2=True) == st.Decision()
    assert st.end_txn(done, 5, 3, False, 21, v2=True).error == ErrorCode.INVALID_PRODUCER_ID_MAPPING


def test_fencing_bumps_the_epoch_without_a_new_producer_id():
    """The markers of the fenced transaction must name the producer id its partitions know."""
    m = ongoing(epoch=st.MAX_EPOCH - 1)
    d = st.init_producer_id(m, "t", 60000, MAX, -1, -1, 10, counter())
    assert (d.target.state, d.target.producer_id, d.target.producer_epoch) == \
        (TxnState.PREPARE_ABORT, 5, st.MAX_EPOCH)
    assert st.abort_timed_out(m, 10).producer_id == 5
    # the retry after the abort: a new producer id, epoch 0
    d = st.init_producer_id(st.complete(d.target, 20), "t", 60000, MAX, -1, -1, 30, counter())
    assert (d.target.producer_id, d.target.producer_epoch, d.target.previous_producer_id) == (100, 0, 5)


def test_transaction_log_v1_keeps_the_v2_fields():
    m = ongoing(parts=(("a", 0), ("b", 1))).replace(
        state=TxnState.PREPARE_ABORT, previous_producer_id=4, next_producer_id=9, client_tv=st.TV_2)
    data = tl.value(m, flexible=True)
    assert data[:2] == b"\x00\x01"
    assert tl.parse_value("t", data) == m.replace(last_producer_epoch=-1)
    plain = m.replace(previous_producer_id=-1, next_producer_id=-1, client_tv=0)
    # defaults are not written: an empty tagged-field section at the end
    assert tl.value(plain, flexible=True).endswith(b"\x00") and tl.parse_value("t", tl.value(plain, True)) == \
        plain.replace(last_producer_epoch=-1)
    # tag 2 (ClientTransactionVersion) is written as Kafka's int16
    assert bytes([2, 2, 0, 2]) in data

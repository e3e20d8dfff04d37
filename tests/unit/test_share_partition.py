"""The share partition state machine (broker/share/partition.py), KIP-932's rules."""

from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.share.partition import (
    Acquired,
    AcquireMode,
    RecordState,
    SharePartition,
    aborted_batches,
)
from odradek.protocol.errors import ErrorCode

ACCEPT, RELEASE, REJECT, RENEW, GAP = 1, 2, 3, 4, 0


def test_records_go_to_one_member_at_a_time_and_accepted_ones_never_return():
    sp = SharePartition(0, lock_duration_ms=1000)
    assert sp.acquire("a", [(0, 4)], 10, now_ms=0) == [Acquired(0, 4, 1)]
    assert sp.next_fetch_offset() == 5
    assert sp.acquire("b", [(0, 4)], 10, now_ms=0) == []  # a holds them
    assert sp.acquire("b", [(5, 9)], 10, now_ms=0) == [Acquired(5, 9, 1)]
    assert sp.acknowledge("a", 0, 4, [ACCEPT], now_ms=10) == ErrorCode.NONE
    assert sp.start_offset == 5  # 0-4 are done and forgotten
    assert sp.acknowledge("a", 5, 5, [ACCEPT], now_ms=10) == ErrorCode.INVALID_RECORD_STATE  # b's
    assert sp.acknowledge("b", 5, 9, [ACCEPT, RELEASE, REJECT, ACCEPT, ACCEPT], now_ms=10) == ErrorCode.NONE
    assert sp.start_offset == 6 and sp.next_fetch_offset() == 6  # 6 was released: first again
    assert sp.acquire("a", [(6, 9)], 10, now_ms=20) == [Acquired(6, 6, 2)]
    assert sp.acknowledge("a", 6, 6, [ACCEPT], now_ms=30) == ErrorCode.NONE
    assert (sp.start_offset, sp.end_offset, sp.records) == (10, 10, {})


def test_an_expired_lock_redelivers_and_the_delivery_limit_archives():
    sp = SharePartition(100, delivery_count_limit=2, lock_duration_ms=1000)
    sp.acquire("a", [(100, 101)], 10, now_ms=0)
    assert sp.next_lock_deadline_ms() == 1000
    assert sp.expire_locks(999) == 0
    assert sp.expire_locks(1000) == 2  # a was killed mid-batch: back to available
    assert sp.acknowledge("a", 100, 101, [ACCEPT], now_ms=1001) == ErrorCode.INVALID_RECORD_STATE
    assert sp.acquire("b", [(100, 101)], 10, now_ms=1001) == [Acquired(100, 101, 2)]
    assert sp.acknowledge("b", 100, 100, [RENEW], now_ms=1500) == ErrorCode.NONE
    assert sp.expire_locks(2001) == 1  # 101 only: 100's lock was renewed until 2500
    assert sp.records[101].state is RecordState.ARCHIVED  # delivered twice: the limit
    assert sp.acknowledge("b", 100, 100, [RELEASE], now_ms=2100) == ErrorCode.NONE  # 2nd delivery: archived
    assert sp.start_offset == 102 and sp.acquire("c", [(100, 101)], 10, now_ms=2200) == []


def test_a_member_leaving_releases_what_it_held_and_gaps_are_archived():
    sp = SharePartition(0)
    sp.acquire("a", [(0, 2), (5, 6)], 10, now_ms=0)  # 3 and 4 absent from the log (compacted)
    assert sp.records[3].state is RecordState.ARCHIVED
    assert sp.release_member("a") == 5
    assert sp.acquire("b", [(0, 2), (5, 6)], 1, now_ms=0) == [Acquired(0, 2, 2)]  # whole batch
    assert sp.acknowledge("b", 0, 2, [ACCEPT, GAP, ACCEPT], now_ms=1) == ErrorCode.NONE
    assert sp.start_offset == 5


def test_bad_acknowledgements_change_nothing():
    sp = SharePartition(0)
    sp.acquire("a", [(0, 3)], 10, now_ms=0)
    for first, last, types in ((0, 3, [ACCEPT, ACCEPT]), (3, 0, [ACCEPT]), (0, 0, [9])):
        assert sp.acknowledge("a", first, last, types, now_ms=1) == ErrorCode.INVALID_REQUEST
    assert sp.acknowledge("a", 2, 5, [ACCEPT], now_ms=1) == ErrorCode.INVALID_RECORD_STATE
    assert all(r.state is RecordState.ACQUIRED for r in sp.records.values())


def test_the_window_is_bounded_and_a_hole_past_an_empty_window_is_skipped():
    sp = SharePartition(0, max_record_locks=3)
    assert sp.acquire("a", [(0, 9)], 100, now_ms=0) == [Acquired(0, 2, 1)]
    assert not sp.can_acquire()
    sp.acknowledge("a", 0, 2, [ACCEPT], now_ms=1)
    assert sp.acquire("a", [(5000, 5001)], 100, now_ms=2) == [Acquired(5000, 5001, 1)]
    sp.move_start(5001)
    assert sp.start_offset == 5001 and list(sp.records) == [5001]


def test_state_survives_as_batches():
    sp = SharePartition(0, delivery_count_limit=3)
    sp.acquire("a", [(0, 9)], 100, now_ms=0)
    sp.acknowledge("a", 0, 0, [RELEASE], now_ms=1)
    sp.acknowledge("a", 2, 4, [ACCEPT], now_ms=1)
    sp.acknowledge("a", 5, 5, [REJECT], now_ms=1)
    batches = sp.state_batches()
    # (first, last, state, delivery count); what is acquired is persisted as available
    assert batches == [(0, 1, 0, 1), (2, 4, 2, 1), (5, 5, 4, 1), (6, 9, 0, 1)]
    again = SharePartition.recovered(0, batches, delivery_count_limit=3)
    assert again.state_batches() == batches
    assert again.acquire("b", [(0, 9)], 100, now_ms=5) == [Acquired(0, 1, 2), Acquired(6, 9, 2)]



def test_a_record_at_its_delivery_limit_when_the_leader_died_is_archived_on_recovery():
    """Its last delivery's lock died with the old leader: as if it had expired."""
    again = SharePartition.recovered(0, [(0, 1, 1, 2), (2, 3, 0, 1)], delivery_count_limit=2)
    assert again.start_offset == 2 and again.acquire("b", [(0, 3)], 10, now_ms=0) == [Acquired(2, 3, 2)]


def test_an_acquisition_not_persisted_is_undone():
    sp = SharePartition(0)
    got = sp.acquire("a", [(0, 1)], 10, now_ms=0)
    sp.undo_acquire("a", got)
    assert sp.state_batches() == [(0, 1, 0, 0)]
    assert sp.acquire("b", [(0, 1)], 10, now_ms=0) == [Acquired(0, 1, 1)]


def test_record_limit_mode_hands_out_max_records_at_most():
    """KIP-1206's record_limit: what Kafka 4.4 answers for batches 0-3, 4-7, 8-11 and
    MaxRecords 3 (0-2, then 3-5); batch_optimized takes whole batches (6-11)."""
    sp = SharePartition(0)
    log = [(0, 3), (4, 7), (8, 11)]
    assert sp.acquire("a", log, 3, now_ms=0, mode=AcquireMode.RECORD_LIMIT) == [Acquired(0, 2, 1)]
    assert sp.next_fetch_offset() == 3
    assert sp.acquire("a", log, 3, now_ms=0, mode=AcquireMode.RECORD_LIMIT) == [Acquired(3, 5, 1)]
    assert sp.acquire("a", log, 3, now_ms=0) == [Acquired(6, 11, 1)]
    sp.acknowledge("a", 1, 1, [RELEASE], now_ms=1)
    sp.acknowledge("a", 4, 5, [RELEASE], now_ms=1)
    # released records in the window: still no more than asked for
    assert sp.acquire("b", log, 2, now_ms=2, mode=AcquireMode.RECORD_LIMIT) == [Acquired(1, 1, 2), Acquired(4, 4, 2)]
    assert sp.acquire("b", log, 1, now_ms=2, mode=AcquireMode.RECORD_LIMIT) == [Acquired(5, 5, 2)]


def test_renew_keeps_the_lock_only_where_allowed():
    sp = SharePartition(0, lock_duration_ms=1000)
    sp.acquire("a", [(0, 1)], 10, now_ms=0)
    # v1, or v2 without IsRenewAck: INVALID_REQUEST, nothing changes (even the ACCEPT beside it)
    assert sp.acknowledge("a", 0, 1, [ACCEPT, RENEW], now_ms=500, renew_allowed=False) == ErrorCode.INVALID_REQUEST
    assert sp.next_lock_deadline_ms() == 1000 and sp.records[0].state is RecordState.ACQUIRED
    assert sp.acknowledge("a", 0, 1, [RENEW], now_ms=800, renew_allowed=True) == ErrorCode.NONE
    assert sp.expire_locks(1000) == 0 and sp.next_lock_deadline_ms() == 1800  # still a's
    assert sp.acknowledge("b", 0, 1, [RENEW], now_ms=900) == ErrorCode.INVALID_RECORD_STATE  # not b's
    sp.renew_enabled = False  # the group's share.renew.acknowledge.enable=false
    assert sp.acknowledge("a", 0, 1, [RENEW], now_ms=1000) == ErrorCode.INVALID_RECORD_STATE
    assert sp.next_lock_deadline_ms() == 1800
    assert sp.acknowledge("a", 0, 1, [ACCEPT], now_ms=1700) == ErrorCode.NONE


def test_skipped_batches_are_archived_never_handed_out():
    """read_committed: the batches of aborted transactions (here 2-3 and 6) are archived
    as they are read; the start moves past them once what precedes is done."""
    sp = SharePartition(0)
    log = [(0, 1), (2, 3), (4, 5), (6, 6)]
    assert sp.acquire("a", log, 10, now_ms=0, skipped=frozenset({2, 6})) == [Acquired(0, 1, 1), Acquired(4, 5, 1)]
    assert sp.records[3].state is RecordState.ARCHIVED and sp.records[3].delivery_count == 0
    sp.acknowledge("a", 0, 1, [ACCEPT], now_ms=1)
    assert sp.start_offset == 4
    sp.acknowledge("a", 4, 5, [ACCEPT], now_ms=1)
    assert (sp.start_offset, sp.end_offset) == (7, 7)
    # only aborted batches read: nothing handed out, the window still moves on
    assert sp.acquire("a", [(7, 8)], 10, now_ms=2, skipped=frozenset({7})) == [] and sp.start_offset == 9


def test_aborted_batches_are_those_of_the_producer_inside_an_aborted_transaction():
    batches = [(0, 1, 7, True), (2, 3, 8, True), (4, 4, 7, True), (5, 5, 7, False), (7, 8, 7, True)]
    # producer 7's transaction from offset 0 was aborted by the marker at 6; 8's committed
    assert aborted_batches(batches, [(7, 0, 6)]) == frozenset({0, 4})
    assert aborted_batches(batches, []) == frozenset()


events = st.lists(st.tuples(st.sampled_from(["fetch", "ack", "expire", "leave", "fetch1"]),
                            st.sampled_from(["a", "b", "c"]), st.integers(0, 30), st.integers(0, 4),
                            st.sampled_from([ACCEPT, RELEASE, REJECT, RENEW, GAP])), max_size=60)


@settings(max_examples=200, deadline=None)
@given(events)
def test_invariants_hold_under_any_events(script):
    """Whatever members do: a record is held by at most one member, an accepted record
    is never handed out again, delivery counts stay within the limit, the start never
    moves back and the window stays within its bound."""
    sp = SharePartition(0, delivery_count_limit=3, max_record_locks=8, lock_duration_ms=10)
    accepted: set[int] = set()
    now = start = 0
    for kind, member, offset, span, ack in script:
        now += 3
        if kind in ("fetch", "fetch1"):
            first = sp.next_fetch_offset()
            mode = AcquireMode.RECORD_LIMIT if kind == "fetch1" else AcquireMode.BATCH_OPTIMIZED
            got = sp.acquire(member, [(first, first + 3), (first + 4, first + 6)], span + 1, now, mode)
            if mode is AcquireMode.RECORD_LIMIT:
                assert sum(r.last_offset - r.first_offset + 1 for r in got) <= span + 1
            for r in got:
                for o in range(r.first_offset, r.last_offset + 1):
                    assert o not in accepted
                    assert r.delivery_count <= 3
        elif kind == "ack":
            first = sp.start_offset + offset % 8
            holds = all(sp.records.get(o) and sp.records[o].member_id == member
                        and sp.records[o].state is RecordState.ACQUIRED for o in range(first, first + span + 1))
            code = sp.acknowledge(member, first, first + span, [ack], now)
            assert (code == ErrorCode.NONE) == holds
            if holds and ack == ACCEPT:
                accepted.update(range(first, first + span + 1))
        elif kind == "expire":
            sp.expire_locks(now)
        else:
            sp.release_member(member)
        assert sp.start_offset >= start
        start = sp.start_offset
        assert sp.end_offset - sp.start_offset <= 8
        assert set(sp.records) == set(range(sp.start_offset, sp.end_offset))
        holders = [r for r in sp.records.values() if r.state is RecordState.ACQUIRED]
        assert all(r.member_id is not None for r in holders)

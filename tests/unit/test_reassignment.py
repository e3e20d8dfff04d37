"""Partition reassignment decisions (replication/reassignment.py) and the leader's ISR state
when its replica set changes under it."""

import pytest

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication import reassignment
from odradek.replication.isr import IsrState
from odradek.replication.reassignment import Change, cancel, check_target, maybe_complete, start

LIVE = {1, 2, 3, 4}


def test_moving_replicas_adds_first_and_removes_once_the_new_ones_are_in_sync():
    step = start([1, 2], [1, 2], 1, [], [3, 4], LIVE)
    assert step == Change([3, 4, 1, 2], [1, 2], 1, [3, 4], [1, 2])
    assert maybe_complete(Change(step.replicas, [1, 2, 3], 1, step.adding, step.removing), LIVE) is None
    done = maybe_complete(Change(step.replicas, [1, 2, 3, 4], 1, step.adding, step.removing), LIVE)
    # The leader leaves: the first target replica in the ISR takes over.
    assert done == Change([3, 4], [3, 4], 3, [], [])


def test_only_removing_or_reordering_completes_at_once():
    assert start([1, 2, 3], [1, 2, 3], 1, [], [2, 3], LIVE) == Change([2, 3], [2, 3], 2, [], [])
    assert start([1, 2, 3], [1, 2, 3], 1, [], [3, 2, 1], LIVE) == Change([3, 2, 1], [1, 2, 3], 1, [], [])


def test_removing_waits_while_no_target_replica_is_in_sync():
    step = start([1, 2, 3], [1], 1, [], [2, 3], LIVE)
    assert step == Change([2, 3, 1], [1], 1, [], [1])
    assert maybe_complete(Change([2, 3, 1], [1, 2], 1, [], [1]), LIVE) == Change([2, 3], [2], 2, [], [])


def test_a_new_reassignment_replaces_the_running_one_from_the_original_replicas():
    running = start([1, 2], [1, 2], 1, [], [3, 4], LIVE)
    step = start(running.replicas, [1, 2, 3], 1, running.adding, [2, 4], LIVE)
    assert step == Change([2, 4, 1], [1, 2], 1, [4], [1])


def test_cancelling_goes_back_to_the_original_replicas():
    running = start([1, 2], [1, 2], 1, [], [3, 4], LIVE)
    assert cancel(running.replicas, [1, 2, 3], 1, running.adding, running.removing, LIVE) == \
        Change([1, 2], [1, 2], 1, [], [])
    with pytest.raises(KafkaError) as e:
        cancel([1, 2], [1, 2], 1, [], [], LIVE)
    assert e.value.code == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS


@pytest.mark.parametrize(("target", "words"), [
    ([], "an empty replica list"), ([1, 1], "the broker 1 more than once"),
    ([1, 9], "broker 9, but no such broker is registered")])
def test_bad_targets_are_refused(target, words):
    with pytest.raises(KafkaError) as e:
        check_target(target, LIVE)
    assert e.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT and words in e.value.message


def test_a_leader_counts_new_replicas_and_forgets_old_ones():
    state = IsrState(1, [1, 2], [1, 2], 0, 0, 0, 10, 10, 1000, now_ms=0)
    state.on_replicas_changed([3, 1, 2], now_ms=5)
    state.on_follower_fetch(2, 10, now_ms=6)
    state.on_follower_fetch(3, 10, now_ms=6)
    assert state.proposed_isr(now_ms=7) == [3, 1, 2]  # caught up: proposed into the ISR
    state.on_isr_committed([3, 1, 2], 1)
    state.on_replicas_changed([1, 3], now_ms=8)
    assert (state.replicas, state.isr, set(state.followers)) == ([1, 3], [3, 1], {3})
    assert reassignment.original_replicas([3, 4, 1, 2], [3, 4]) == [1, 2]

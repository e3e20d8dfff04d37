"""replication.partition: one partition's replication decisions, events in and actions out.

The ISR and high-watermark rules themselves are IsrState's (tests/unit/test_isr.py); the
cluster simulation runs this state machine under faults (tests/unit/test_raft_sim.py). Here:
which actions each event gives, in which order, for the I/O to carry out.
"""

import pytest

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.metadata import PartitionState
from odradek.replication.partition import (
    AdvanceHighWatermark,
    BecomeLeader,
    Follow,
    IncrementLogStart,
    IsrCommitted,
    ReplicatedPartition,
    StartAt,
    StopLeading,
    TruncateTo,
)

LAG_MS = 100


def _state(leader: int, leader_epoch: int = 0, isr=(1, 2), partition_epoch: int = 0,
           replicas=(1, 2)) -> PartitionState:
    return PartitionState("tid", 0, list(replicas), list(isr), leader, leader_epoch, partition_epoch)


def test_leading_then_following_then_leading_again():
    part = ReplicatedPartition(1, LAG_MS)
    # Led here with an ISR of two: the epoch starts at the log end; nothing more is committed.
    assert part.on_metadata(_state(1), 10, 7, now_ms=0) == [BecomeLeader(0, 10, first=True)]
    assert part.is_leader and part.isr_state.high_watermark == 7
    # The follower has it all: the high watermark moves, judged by an ISR of two.
    assert part.on_follower_fetch(2, 10, 0, now_ms=5) == [AdvanceHighWatermark(10, 2)]
    assert part.on_append(12) == []  # the follower has not fetched it yet

    assert part.on_metadata(_state(2, 1), 12, 10, now_ms=6) == [StopLeading(), Follow(2, 1)]
    assert not part.is_leader and not part.is_follower(2)
    # Re-elected at a new epoch with an ISR of one: leading again, everything committed.
    assert part.on_metadata(_state(1, 2, isr=[1]), 12, 10, now_ms=7) == [
        BecomeLeader(2, 12, first=True), AdvanceHighWatermark(12, 1)]
    # A new epoch while still leading is a new leadership, but not news to the listeners.
    assert part.on_metadata(_state(1, 3, isr=[1]), 12, 12, now_ms=8) == [
        BecomeLeader(3, 12, first=False)]


def test_isr_changes_proposed_answered_and_committed_through_the_image():
    part = ReplicatedPartition(1, LAG_MS)
    part.on_metadata(_state(1), 10, 10, now_ms=0)
    assert part.proposed_isr(now_ms=50) is None  # follower 2 still within its lag time
    proposal = part.proposed_isr(now_ms=LAG_MS + 1)
    assert (proposal.isr, proposal.leader_epoch, proposal.partition_epoch) == ([1], 0, 0)
    assert part.still_proposing(proposal) and part.proposed_isr(now_ms=LAG_MS + 2) is None

    assert part.on_isr_answer(proposal, 1) == [IsrCommitted(2, 1)]
    assert not part.still_proposing(proposal)
    # The image brings the same change later: already known, nothing to do.
    assert part.on_metadata(_state(1, isr=[1], partition_epoch=1), 10, 10, now_ms=LAG_MS + 3) == []
    # Follower 2 catches up and is added back: proposed, refused, proposed again.
    part.on_follower_fetch(2, 10, 0, now_ms=LAG_MS + 4)
    again = part.proposed_isr(now_ms=LAG_MS + 5)
    assert again.isr == [1, 2]
    part.on_isr_refused(again)
    part.on_follower_fetch(2, 10, 0, now_ms=LAG_MS + 6)
    assert part.proposed_isr(now_ms=LAG_MS + 7).isr == [1, 2]


def test_an_answer_for_a_leadership_that_moved_on_changes_nothing():
    part = ReplicatedPartition(1, LAG_MS)
    part.on_metadata(_state(1), 10, 10, now_ms=0)
    proposal = part.proposed_isr(now_ms=LAG_MS + 1)
    part.on_metadata(_state(2, 1), 10, 10, now_ms=LAG_MS + 2)
    part.on_metadata(_state(1, 2), 10, 10, now_ms=LAG_MS + 3)
    assert not part.still_proposing(proposal)
    assert part.on_isr_answer(proposal, 5) == []
    assert part.isr_state.isr == [1, 2]


def test_a_follower_takes_the_leaders_high_watermark_and_log_start():
    part = ReplicatedPartition(2, LAG_MS)
    assert part.on_metadata(_state(1), 0, 0, now_ms=0) == [Follow(1, 0)]
    # Never above its own log end; the log start only moves up.
    assert part.on_fetched(20, 15, 5, 0) == [AdvanceHighWatermark(15, 0), IncrementLogStart(5)]
    assert part.on_fetched(20, 20, 5, 5) == [AdvanceHighWatermark(20, 0)]


def test_a_follower_truncates_where_the_leader_says_its_epoch_ended():
    part = ReplicatedPartition(2, LAG_MS)
    part.on_metadata(_state(1, 3), 0, 0, now_ms=0)
    own_ends = {1: 8, 2: 12}.__getitem__
    # The leader has our epoch 2, ending at 10: cut there.
    assert part.on_epoch_answer(2, 2, 10, own_ends, 12) == [TruncateTo(10)]
    # The leader never had epoch 2; its epoch 1 ended at 9, ours at 8: cut at 8.
    assert part.on_epoch_answer(2, 1, 9, own_ends, 12) == [TruncateTo(8)]
    # Nothing diverges: no truncation at all (the epoch cache keeps its latest entry).
    assert part.on_epoch_answer(2, 2, 15, own_ends, 12) == []
    # No epoch in common: everything goes.
    assert part.on_epoch_answer(2, -1, -1, own_ends, 12) == [TruncateTo(0)]
    # Behind the leader's log start: start over there; ahead of it, ask again instead.
    assert part.on_out_of_range(100, 12) == [StartAt(100)]
    assert part.on_out_of_range(5, 12) == []


def test_a_follower_fetches_only_once_it_truncated_for_the_leadership():
    """The follow loop's decisions (the replica manager's _replicate carries them out): ask
    OffsetForLeaderEpoch under each new leadership, then fetch from the log end."""
    part = ReplicatedPartition(2, LAG_MS)
    part.on_metadata(_state(1, 3), 12, 0, now_ms=0)
    assert part.epoch_to_ask(2) == 2 and part.fetch_offset(12) is None
    # An answer to a question asked under epoch 2 does not clear epoch 3's.
    part.on_epoch_answer(2, 2, 12, lambda e: 12, 12, asked_under=2)
    assert part.fetch_offset(12) is None
    assert part.on_epoch_answer(2, 2, 10, lambda e: 12, 12, asked_under=3) == [TruncateTo(10)]
    assert part.epoch_to_ask(2) is None and part.fetch_offset(10) == 10
    # The same leadership again (another metadata commit): no new question.
    part.on_metadata(_state(1, 3, partition_epoch=1), 10, 0, now_ms=0)
    assert part.fetch_offset(10) == 10
    # OFFSET_OUT_OF_RANGE, a new connection, a new leader: ask again first.
    part.on_out_of_range(5, 10)
    assert part.fetch_offset(10) is None and part.epoch_to_ask(2) == 2
    part.on_epoch_answer(2, 2, 10, lambda e: 10, 10)
    part.follow_again()
    assert part.fetch_offset(10) is None
    part.on_epoch_answer(2, 2, 10, lambda e: 10, 10)
    part.on_metadata(_state(3, 4), 10, 0, now_ms=0)
    assert part.fetch_offset(10) is None and part.epoch_to_ask(3) == 3
    # An empty log has nothing to disagree about: it fetches at once.
    part.on_metadata(_state(1, 5), 0, 0, now_ms=0)
    assert part.epoch_to_ask(-1) is None and part.fetch_offset(0) == 0
    # A leader asks nothing and fetches nothing.
    part.on_metadata(_state(2, 6), 0, 0, now_ms=0)
    assert part.epoch_to_ask(3) is None and part.fetch_offset(0) is None


def test_a_leader_ignores_what_only_followers_do():
    part = ReplicatedPartition(1, LAG_MS)
    part.on_metadata(_state(1), 10, 10, now_ms=0)
    assert part.on_fetched(20, 10, 5, 0) == []
    assert part.on_epoch_answer(0, 0, 0, lambda e: 0, 10) == []
    assert part.on_out_of_range(100, 10) == []
    assert part.is_follower(2) and not part.is_follower(3) and not part.is_follower(1)


def test_a_request_at_another_leader_epoch_is_fenced_or_unknown():
    part = ReplicatedPartition(2, LAG_MS)
    part.on_metadata(_state(1, 3), 0, 0, now_ms=0)
    part.check_leader_epoch(3)
    part.check_leader_epoch(-1)  # the client does not know it
    for requested, error in ((2, ErrorCode.FENCED_LEADER_EPOCH), (4, ErrorCode.UNKNOWN_LEADER_EPOCH)):
        with pytest.raises(KafkaError) as refused:
            part.check_leader_epoch(requested)
        assert refused.value.code == error

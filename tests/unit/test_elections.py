"""The election and rebalancing decisions (replication/elections.py): pure, no cluster."""

import pytest

from odradek.protocol.errors import ErrorCode
from odradek.replication.elections import (
    PREFERRED,
    UNCLEAN,
    PartitionView,
    elect,
    partitions_to_rebalance,
)


def test_preferred_moves_leadership_to_the_preferred_replica_in_the_isr():
    assert elect(PREFERRED, [1, 2, 3], [1, 2, 3], 2, {1, 2, 3}).leader == 1


def test_preferred_not_needed_when_it_already_leads():
    assert elect(PREFERRED, [1, 2, 3], [1, 2, 3], 1, {1, 2, 3}).error == ErrorCode.ELECTION_NOT_NEEDED


@pytest.mark.parametrize("isr,live", [([2, 3], {1, 2, 3}),  # alive, not caught up
                                      ([1, 2, 3], {2, 3})])  # in the ISR, but fenced
def test_preferred_never_elects_outside_the_live_isr(isr, live):
    e = elect(PREFERRED, [1, 2, 3], isr, 2, live)
    assert (e.error, e.leader) == (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, None)


def test_unclean_not_needed_while_a_leader_exists():
    assert elect(UNCLEAN, [1, 2, 3], [1], 1, {1, 2, 3}).error == ErrorCode.ELECTION_NOT_NEEDED


def test_unclean_prefers_a_live_isr_member_and_keeps_the_isr():
    e = elect(UNCLEAN, [1, 2, 3], [2, 3], -1, {3})
    assert (e.leader, e.isr) == (3, None)


def test_unclean_elects_the_first_live_replica_outside_the_isr_as_the_only_member():
    e = elect(UNCLEAN, [1, 2, 3], [1], -1, {3, 2})
    assert (e.leader, e.isr) == (2, [2])


def test_unclean_never_elects_a_replica_that_is_not_alive():
    e = elect(UNCLEAN, [1, 2, 3], [1], -1, {4})
    assert (e.error, e.leader) == (ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, None)


def test_unknown_election_type_is_an_invalid_request():
    assert elect(7, [1], [1], -1, {1}).error == ErrorCode.INVALID_REQUEST


def views(*specs):
    """(replicas, isr, leader) per partition of topic "t"."""
    return [PartitionView("t", i, list(r), list(isr), leader) for i, (r, isr, leader) in enumerate(specs)]


def test_rebalance_moves_partitions_of_a_broker_back_once_it_is_in_the_isr():
    parts = views(([1, 2, 3], [1, 2, 3], 2), ([2, 3, 1], [1, 2, 3], 2), ([3, 1, 2], [1, 2, 3], 3))
    assert partitions_to_rebalance(parts, {1, 2, 3}, 10) == [("t", 0)]


def test_rebalance_waits_for_the_preferred_replica_to_catch_up_and_be_alive():
    parts = views(([1, 2, 3], [2, 3], 2), ([1, 2, 3], [1, 2, 3], 3))
    assert partitions_to_rebalance(parts, {2, 3}, 10) == []  # 1 fenced
    assert partitions_to_rebalance(parts, {1, 2, 3}, 10) == [("t", 1)]  # 1 alive, in one ISR


def test_rebalance_tolerates_imbalance_up_to_the_percentage():
    # broker 1 is preferred for 4 partitions and leads 3 of them: 25% imbalance
    parts = views(*[([1, 2], [1, 2], 1)] * 3, ([1, 2], [1, 2], 2))
    assert partitions_to_rebalance(parts, {1, 2}, 25) == []
    assert partitions_to_rebalance(parts, {1, 2}, 24) == [("t", 3)]


def test_balanced_cluster_moves_nothing():
    parts = views(([1, 2], [1, 2], 1), ([2, 1], [1, 2], 2))
    assert partitions_to_rebalance(parts, {1, 2}, 0) == []

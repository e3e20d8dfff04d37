"""The server-side assignors of the consumer group protocol (pure functions)."""

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.groups import assignors as asg
from odradek.broker.groups.assignors import MemberSubscription as Sub

T1, T2 = uuid.UUID(int=1), uuid.UUID(int=2)


def _flat(assignment):
    return sorted((t, p) for topics in assignment.values() for t, ps in topics.items() for p in ps)


def _counts(assignment):
    return {m: sum(len(ps) for ps in topics.values()) for m, topics in assignment.items()}


def test_uniform_balances_every_partition_once():
    members = {m: Sub(frozenset({T1})) for m in "abc"}
    out = asg.uniform_assign(members, {T1: 6}, {})
    assert _flat(out) == [(T1, p) for p in range(6)]
    assert _counts(out) == {"a": 2, "b": 2, "c": 2}


def test_uniform_is_sticky_when_a_member_joins():
    """Two members with three partitions each; a third joins: each keeps two of its own."""
    current = {"a": {T1: frozenset({0, 1, 2})}, "b": {T1: frozenset({3, 4, 5})}}
    members = {m: Sub(frozenset({T1})) for m in "abc"}
    out = asg.uniform_assign(members, {T1: 6}, current)
    assert out["a"][T1] <= current["a"][T1] and len(out["a"][T1]) == 2
    assert out["b"][T1] <= current["b"][T1] and len(out["b"][T1]) == 2
    assert len(out["c"][T1]) == 2


def test_uniform_heterogeneous_subscriptions_only_give_subscribed_topics():
    members = {"a": Sub(frozenset({T1})), "b": Sub(frozenset({T1, T2}))}
    out = asg.uniform_assign(members, {T1: 2, T2: 4}, {})
    assert T2 not in out["a"]
    assert _flat(out) == sorted([(T1, 0), (T1, 1)] + [(T2, p) for p in range(4)])
    assert _counts(out) == {"a": 2, "b": 4}


def test_range_gives_co_partitioned_ranges():
    members = {m: Sub(frozenset({T1, T2})) for m in "ab"}
    out = asg.range_assign(members, {T1: 3, T2: 3}, {})
    assert out["a"] == {T1: frozenset({0, 1}), T2: frozenset({0, 1})}
    assert out["b"] == {T1: frozenset({2}), T2: frozenset({2})}


def test_assignor_names_accept_kafkas_class_names():
    assert asg.assignor_name("org.apache.kafka.coordinator.group.assignor.UniformAssignor") == "uniform"
    assert asg.assignor_name("range") == "range"
    assert asg.assignor_name("sticky") is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sets(st.sampled_from([T1, T2]), min_size=1), min_size=1, max_size=6),
       st.integers(0, 9), st.integers(0, 9), st.sampled_from(sorted(asg.ASSIGNORS)))
def test_every_partition_goes_to_exactly_one_subscriber(subs, n1, n2, name):
    members = {f"m{i}": Sub(frozenset(s)) for i, s in enumerate(subs)}
    partitions = {T1: n1, T2: n2}
    out = asg.ASSIGNORS[name](members, partitions, {})
    flat = _flat(out)
    assert len(flat) == len(set(flat))
    wanted = {(t, p) for t, n in partitions.items() for p in range(n)
              if any(t in s.topic_ids for s in members.values())}
    assert set(flat) == wanted
    for m, topics in out.items():
        assert set(topics) <= members[m].topic_ids
    if name == asg.UNIFORM and all(s.topic_ids == members["m0"].topic_ids for s in members.values()):
        counts = _counts(out).values()
        assert max(counts) - min(counts) <= 1


# Racks (KIP-881): partition p of T1 has its one replica in rack r{p % 2}.
RACKS = {T1: tuple(frozenset({f"r{p % 2}"}) for p in range(6))}


def _in_own_rack(out, members):
    return all(f"r{p % 2}" == members[m].rack_id for m, topics in out.items() for p in topics.get(T1, ()))


def test_both_assignors_give_members_the_partitions_of_their_rack():
    members = {"a": Sub(frozenset({T1}), "r1"), "b": Sub(frozenset({T1}), "r0")}
    for name, assign in asg.ASSIGNORS.items():
        out = assign(members, {T1: 6}, {}, RACKS)
        assert _in_own_rack(out, members), name
        assert _counts(out) == {"a": 3, "b": 3}, name
    # Without racks range keeps its consecutive ranges.
    assert asg.range_assign(members, {T1: 6}, {}) == {"a": {T1: frozenset({0, 1, 2})},
                                                      "b": {T1: frozenset({3, 4, 5})}}


def test_racks_never_cost_the_balance():
    """Three members all in rack r0 still get two partitions each (uniform spreads r0's
    three among them; range hands them out first come)."""
    members = {m: Sub(frozenset({T1}), "r0") for m in "abc"}
    for name, assign in asg.ASSIGNORS.items():
        out = assign(members, {T1: 6}, {}, RACKS)
        assert _flat(out) == [(T1, p) for p in range(6)], name
        assert _counts(out) == {"a": 2, "b": 2, "c": 2}, name
    out = asg.uniform_assign(members, {T1: 6}, {}, RACKS)
    assert all(any(p % 2 == 0 for p in topics[T1]) for topics in out.values())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["r0", "r1", "r2", None]), min_size=1, max_size=5), st.integers(0, 9),
       st.sampled_from(sorted(asg.ASSIGNORS)))
def test_with_racks_every_partition_goes_to_one_member_balanced(racks, n, name):
    members = {f"m{i}": Sub(frozenset({T1}), r) for i, r in enumerate(racks)}
    out = asg.ASSIGNORS[name](members, {T1: n}, {}, {T1: tuple(frozenset({f"r{p % 3}"}) for p in range(n))})
    assert _flat(out) == [(T1, p) for p in range(n)]
    counts = _counts(out).values()
    assert max(counts) - min(counts) <= 1


def test_uniform_moves_a_partition_to_its_rack_when_a_member_joins():
    """A member held everything; one in rack r1 joins: it gets r1's partitions, not just any."""
    current = {"a": {T1: frozenset(range(6))}}
    members = {"a": Sub(frozenset({T1}), "r0"), "b": Sub(frozenset({T1}), "r1")}
    out = asg.uniform_assign(members, {T1: 6}, current, RACKS)
    assert out == {"a": {T1: frozenset({0, 2, 4})}, "b": {T1: frozenset({1, 3, 5})}}

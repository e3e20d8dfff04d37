"""The consumer-protocol group state machine (KIP-848) with an injected clock."""

import random
import uuid

import pytest
import re2

from odradek.broker.groups.consumer_group import (
    ConsumerGroup,
    ConsumerGroupConfig,
    ConsumerGroupState,
    Heartbeat,
    MemberState,
    TopicInfo,
    Topics,
    encode_assignment,
    validate,
)
from odradek.protocol.errors import ErrorCode

from .test_groups_unit import FakeScheduler

T1 = uuid.UUID(int=1)
T2 = uuid.UUID(int=2)
SESSION_MS = 1000
REBALANCE_MS = 3000


def _match(pattern, names):
    compiled = re2.compile(pattern)
    return {n for n in names if compiled.fullmatch(n)}


def _group(max_size=100, assignors=("uniform", "range")):
    clock = FakeScheduler()
    config = ConsumerGroupConfig(session_timeout_ms=SESSION_MS, heartbeat_interval_ms=100,
                                 max_size=max_size, assignors=assignors)
    return ConsumerGroup("g", config, clock, _match), clock


TOPICS = Topics({"t": TopicInfo(T1, 6)})


def join(group, member_id, topics=TOPICS, names=("t",), **kw):
    return group.heartbeat(Heartbeat(member_id, 0, rebalance_timeout_ms=REBALANCE_MS,
                                     subscribed_topic_names=list(names), owned={}, **kw), topics)


def beat(group, member_id, epoch, owned, topics=TOPICS):
    return group.heartbeat(Heartbeat(member_id, epoch, owned=owned), topics)


def _held(group):
    """Every partition held (assigned or pending revocation) -> the members holding it."""
    out = {}
    for m in group.members.values():
        for held in (m.assigned, m.pending_revocation):
            for t, ps in held.items():
                for p in ps:
                    out.setdefault((t, p), []).append(m.member_id)
    return out


def test_first_member_gets_everything_at_epoch_one():
    group, _ = _group()
    r = join(group, "a")
    assert r.error == ErrorCode.NONE and r.member_epoch == 1
    assert r.assignment == {T1: frozenset(range(6))}
    assert group.state == ConsumerGroupState.STABLE


def test_partitions_move_only_after_the_owner_revokes_them():
    group, _ = _group()
    a = join(group, "a")
    b = join(group, "b")
    assert b.member_epoch == 2 and b.assignment == {}  # a still holds them all
    # a heartbeats still owning everything: it is asked to keep only its target, same epoch.
    r = beat(group, "a", a.member_epoch, a.assignment)
    assert r.member_epoch == 1 and len(r.assignment[T1]) == 3
    assert group.members["a"].state == MemberState.UNREVOKED_PARTITIONS
    assert group.state == ConsumerGroupState.RECONCILING
    r_b = beat(group, "b", 2, {})
    assert r_b.assignment is None or r_b.assignment == {}  # not released yet
    # a lets them go: it moves to epoch 2; then b gets the released partitions.
    r = beat(group, "a", 1, r.assignment)
    assert r.member_epoch == 2
    r_b = beat(group, "b", 2, {})
    assert len(r_b.assignment[T1]) == 3
    assert not r_b.assignment[T1] & group.members["a"].assigned[T1]
    assert group.state == ConsumerGroupState.STABLE
    assert all(len(v) == 1 for v in _held(group).values())


def test_epoch_errors():
    group, _ = _group()
    a = join(group, "a")
    assert beat(group, "a", a.member_epoch + 1, a.assignment).error == ErrorCode.FENCED_MEMBER_EPOCH
    assert beat(group, "zzz", 1, {}).error == ErrorCode.UNKNOWN_MEMBER_ID
    join(group, "b")
    r = beat(group, "a", 1, a.assignment)
    r = beat(group, "a", 1, r.assignment)  # revoked: now at epoch 2, previous epoch 1
    assert r.member_epoch == 2
    # The answer at epoch 2 was lost: epoch 1 with owned within the assignment is accepted...
    kept = group.members["a"].assigned
    assert beat(group, "a", 1, kept).error == ErrorCode.NONE
    # ...but not epoch 1 with partitions it no longer has, nor an older epoch.
    assert beat(group, "a", 1, {T1: frozenset(range(6))}).error == ErrorCode.FENCED_MEMBER_EPOCH
    assert join(group, "a").member_epoch == 2  # epoch 0 again: a rejoin, same place


def test_session_timeout_frees_the_partitions():
    group, clock = _group()
    join(group, "a")
    b = join(group, "b")
    epoch = group.group_epoch
    for _ in range(5):  # b keeps heartbeating, a is silent
        clock.advance(SESSION_MS // 3)
        b = beat(group, "b", b.member_epoch, b.assignment or {})
    assert "a" not in group.members and group.group_epoch == epoch + 1
    assert group.members["b"].assigned == {T1: frozenset(range(6))}


def test_rebalance_timeout_removes_a_member_that_keeps_revoked_partitions():
    group, clock = _group()
    a = join(group, "a")
    b = join(group, "b")
    for _ in range(REBALANCE_MS // 300 + 2):
        clock.advance(300)
        beat(group, "a", a.member_epoch, {T1: frozenset(range(6))})  # never lets go
        b = beat(group, "b", b.member_epoch, b.assignment or {})
    assert "a" not in group.members


def test_leave_and_static_membership():
    group, clock = _group()
    a = join(group, "a", instance_id="i1")
    join(group, "b")
    assert join(group, "c", instance_id="i1").error == ErrorCode.UNRELEASED_INSTANCE_ID
    r = beat(group, "a", a.member_epoch, a.assignment)
    beat(group, "a", a.member_epoch, r.assignment)
    beat(group, "b", 2, {})
    assert group.state == ConsumerGroupState.STABLE
    held = group.members["a"].assigned
    epoch = group.group_epoch
    r = group.heartbeat(Heartbeat("a", -2, instance_id="i1"), TOPICS)
    assert r.member_epoch == -2 and group.group_epoch == epoch
    r = join(group, "a2", instance_id="i1")  # the next incarnation takes its place
    assert r.error == ErrorCode.NONE and group.group_epoch == epoch
    assert "a" not in group.members and group.members["a2"].assigned == held
    assert r.member_epoch == 2 and r.assignment == held
    assert a.member_id == "a"
    r = group.heartbeat(Heartbeat("b", -1), TOPICS)
    assert r.member_epoch == -1 and "b" not in group.members and group.group_epoch == epoch + 1


def test_static_member_that_never_returns_expires():
    group, clock = _group()
    join(group, "a", instance_id="i1")
    group.heartbeat(Heartbeat("a", -2, instance_id="i1"), TOPICS)
    clock.advance(SESSION_MS + 1)
    assert not group.members and group.state == ConsumerGroupState.EMPTY


def test_group_max_size():
    group, _ = _group(max_size=1)
    join(group, "a")
    assert join(group, "b").error == ErrorCode.GROUP_MAX_SIZE_REACHED


def test_regex_subscription_follows_topics():
    group, _ = _group()
    r = group.heartbeat(Heartbeat("a", 0, rebalance_timeout_ms=REBALANCE_MS, subscribed_topic_regex="t.*",
                                  owned={}), TOPICS)
    assert r.assignment == {T1: frozenset(range(6))}
    more = Topics({"t": TopicInfo(T1, 6), "t2": TopicInfo(T2, 2), "other": TopicInfo(uuid.UUID(int=3), 1)})
    r = beat(group, "a", r.member_epoch, r.assignment, topics=more)
    assert r.member_epoch == 2 and r.assignment == {T1: frozenset(range(6)), T2: frozenset({0, 1})}


def test_commit_epochs():
    group, _ = _group()
    a = join(group, "a")
    assert group.check_commit("a", a.member_epoch, 9, 9)[0] == ErrorCode.NONE
    assert group.check_commit("a", a.member_epoch - 1, 9, 9)[0] == ErrorCode.STALE_MEMBER_EPOCH
    assert group.check_commit("x", 1, 9, 9)[0] == ErrorCode.UNKNOWN_MEMBER_ID
    assert group.check_commit("a", 1, 8, 9)[0] == ErrorCode.UNSUPPORTED_VERSION
    assert group.check_commit("", -1, 9, 9)[0] == ErrorCode.UNKNOWN_MEMBER_ID  # not empty
    group.heartbeat(Heartbeat("a", -1), TOPICS)
    assert group.check_commit("", -1, 9, 9)[0] == ErrorCode.NONE  # admin commit to an empty group


@pytest.mark.parametrize("hb,error", [
    (Heartbeat("m", 0, subscribed_topic_names=["t"], owned={}), ErrorCode.INVALID_REQUEST),
    (Heartbeat("m", 0, rebalance_timeout_ms=1, owned={}), ErrorCode.INVALID_REQUEST),
    (Heartbeat("", 1, owned={}), ErrorCode.INVALID_REQUEST),
    (Heartbeat("m", -2), ErrorCode.INVALID_REQUEST),
    (Heartbeat("m", -3), ErrorCode.INVALID_REQUEST),
    (Heartbeat("m", 0, rebalance_timeout_ms=1, subscribed_topic_names=["t"], owned={},
               server_assignor="sticky"), ErrorCode.UNSUPPORTED_ASSIGNOR),
    (Heartbeat("m", 0, rebalance_timeout_ms=1, subscribed_topic_regex="(?<=x)y", owned={}),
     ErrorCode.INVALID_REGULAR_EXPRESSION),
    (Heartbeat("m", 0, rebalance_timeout_ms=1, subscribed_topic_regex="[a", owned={}),
     ErrorCode.INVALID_REGULAR_EXPRESSION),
    (Heartbeat("m", 0, rebalance_timeout_ms=1, subscribed_topic_regex="t.*", owned={}), ErrorCode.NONE),
])
def test_validate(hb, error):
    assert validate(hb, "g", 1, ("uniform", "range"), re2.compile)[0] == error


@pytest.mark.parametrize("seed", range(30))
def test_no_partition_is_ever_owned_by_two_clients(seed):
    """Clients that follow the protocol (they own exactly what they were last sent) join,
    leave, vanish and heartbeat at random; at no point do two live clients own one
    partition, and once all heartbeat quietly every partition is owned."""
    rng = random.Random(seed)
    group, clock = _group()
    topics = Topics({"t": TopicInfo(T1, 6), "u": TopicInfo(T2, 3)})
    clients: dict[str, tuple[int, dict]] = {}  # member id -> (epoch, owned)

    def check():
        owned = [(t, p) for m, (_, o) in clients.items() if m in group.members
                 for t, ps in o.items() for p in ps]
        assert len(owned) == len(set(owned)), owned

    def heartbeat(m):
        epoch, owned = clients[m]
        r = group.heartbeat(Heartbeat(m, epoch, owned=owned), topics)
        if r.error:
            assert r.error in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_MEMBER_EPOCH)
            del clients[m]
            return
        clients[m] = (r.member_epoch, r.assignment if r.assignment is not None else owned)

    n = 0
    for _ in range(300):
        action = rng.random()
        if action < 0.15 and len(clients) < 5:
            n += 1
            m = f"m{n}"
            r = group.heartbeat(Heartbeat(m, 0, rebalance_timeout_ms=REBALANCE_MS, owned={},
                                          subscribed_topic_names=rng.choice([["t"], ["t", "u"]])), topics)
            clients[m] = (r.member_epoch, r.assignment or {})
        elif action < 0.2 and clients:
            m = rng.choice(sorted(clients))
            group.heartbeat(Heartbeat(m, -1), topics)
            del clients[m]
        elif action < 0.25 and clients:
            del clients[rng.choice(sorted(clients))]  # killed: its session will expire
        elif action < 0.35:
            clock.advance(rng.randint(1, SESSION_MS // 2))
        elif clients:
            heartbeat(rng.choice(sorted(clients)))
        check()
    for _ in range(20):
        for m in sorted(clients):
            heartbeat(m)
            check()
        clock.advance(SESSION_MS // 4)
    if clients:
        owned = {(t, p) for _, o in clients.values() for t, ps in o.items() for p in ps}
        subscribed = {topics.by_name[n].topic_id for m in group.members.values()
                      for n in m.subscribed_topic_names}
        assert owned == {(t, p) for t, c in ((T1, 6), (T2, 3)) if t in subscribed for p in range(c)}
        assert group.state == ConsumerGroupState.STABLE


def test_records_rebuild_the_group():
    """What take_records writes, replayed into a new group (a new coordinator), gives the
    same members, epochs, assignments and target; a departed member's records are tombstones."""
    from odradek.broker.groups import consumer_group_records as cgr
    from odradek.broker.groups import offsets_topic as ot

    group, clock = _group()
    log = []
    a = join(group, "a", instance_id="i1")
    log += group.take_records()
    b = join(group, "b")
    log += group.take_records()
    r = beat(group, "a", a.member_epoch, a.assignment)
    log += group.take_records()
    join(group, "c")
    group.heartbeat(Heartbeat("c", -1), TOPICS)
    log += group.take_records()
    assert beat(group, "a", r.member_epoch, r.assignment).error == ErrorCode.NONE
    log += group.take_records()
    assert b.member_epoch
    latest = {}
    for k, v in log:
        latest[k] = v
    again, _ = _group()
    for k, v in latest.items():
        _, group_id, record_type, member_id = ot.parse_key(k)
        assert group_id == "g"
        again.load_record(record_type, member_id, None if v is None else cgr.parse_value(record_type, v))
    again.loaded(TOPICS)
    assert (again.group_epoch, again.assignment_epoch) == (group.group_epoch, group.assignment_epoch)
    assert set(again.members) == {"a", "b"} and again.static_members == {"i1": "a"}
    for m in group.members.values():
        n = again.members[m.member_id]
        assert (n.member_epoch, n.previous_member_epoch, n.state, n.assigned, n.pending_revocation) == (
            m.member_epoch, m.previous_member_epoch, m.state, m.assigned, m.pending_revocation)
        assert n.subscribed_topic_names == m.subscribed_topic_names
    assert again.target == group.target and again.partition_epochs == group.partition_epochs
    # The members carry on with their epochs under the new coordinator.
    r2 = beat(again, "a", group.members["a"].member_epoch, group.members["a"].assigned)
    assert r2.error == ErrorCode.NONE and r2.member_epoch == group.members["a"].member_epoch


def test_records_whose_write_failed_go_out_with_the_next_ones():
    group, _ = _group()
    join(group, "a")
    failed = group.take_records()
    assert failed and group.take_records() == []
    group.write_failed(failed)
    a = group.members["a"]
    beat(group, "a", a.member_epoch, a.assigned)
    assert group.take_records()[:len(failed)] == failed


def test_added_partitions_join_the_assignment():
    group, _ = _group()
    r = join(group, "a")
    grown = Topics({"t": TopicInfo(T1, 8)})
    r = beat(group, "a", r.member_epoch, r.assignment, topics=grown)
    assert r.member_epoch == 2 and r.assignment == {T1: frozenset(range(8))}
    gone = Topics({})
    r = beat(group, "a", r.member_epoch, r.assignment, topics=gone)
    assert r.assignment == {} and r.member_epoch == 2  # revoking: same epoch until acknowledged
    r = beat(group, "a", r.member_epoch, {}, topics=gone)
    assert r.member_epoch == 3 and group.state == ConsumerGroupState.STABLE


def test_v0_member_ids_look_like_kafkas():
    group, _ = _group()
    r = join(group, "")
    assert len(r.member_id) == 22 and "=" not in r.member_id


# -- online migration: classic members inside a consumer group ---------------------------------
def _classic_members(generation_assignments):
    """group.Member objects of a Stable classic group: name -> partitions of topic t."""
    from kafka.protocol.consumer.metadata import (
        ConsumerProtocolAssignment,
        ConsumerProtocolSubscription,
    )

    from odradek.broker.groups.group import Member
    sub = bytes(ConsumerProtocolSubscription(0, ["t"], b"").encode(version=0))
    return [Member(name, None, "kafka-python", "/127.0.0.1", REBALANCE_MS, 6000, "consumer", [("range", sub)],
                   bytes(ConsumerProtocolAssignment(0, [("t", sorted(ps))], b"").encode(version=0)))
            for name, ps in generation_assignments.items()]


def _upgraded(policy="bidirectional"):
    clock = FakeScheduler()
    config = ConsumerGroupConfig(session_timeout_ms=SESSION_MS, heartbeat_interval_ms=100, migration_policy=policy)
    members = _classic_members({"k1": {0, 1}, "k2": {2, 3}, "k3": {4, 5}})
    return ConsumerGroup.from_classic("g", config, clock, _match, 5, "range", members, TOPICS), clock


def _classic_rejoin(group, name):
    from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription
    sub = bytes(ConsumerProtocolSubscription(0, ["t"], b"").encode(version=0))
    return group.classic_join(name, None, "kafka-python", "/127.0.0.1", 6000, REBALANCE_MS, "consumer",
                              [("range", sub)], True, TOPICS)


def test_a_classic_group_becomes_a_consumer_group_with_its_assignment():
    group, _ = _upgraded()
    assert group.group_epoch == group.assignment_epoch == 5
    assert {m: dict(a.assigned) for m, a in group.members.items()} == {
        "k1": {T1: frozenset({0, 1})}, "k2": {T1: frozenset({2, 3})}, "k3": {T1: frozenset({4, 5})}}
    assert all(m.classic is not None and m.member_epoch == 5 for m in group.members.values())
    records = group.take_records()
    assert len(records) == 2 + 3 * 3  # group epoch, assignment epoch, three records per member


def test_a_consumer_member_waits_for_classic_members_to_rejoin():
    """The consumer member gets nothing a classic member holds until that member rejoins
    (eager: owning nothing) and gives it up; the classic members hear REBALANCE_IN_PROGRESS."""
    group, _ = _upgraded()
    r = join(group, "c1")
    assert r.error == ErrorCode.NONE and r.assignment == {}
    assert _held(group) and all(len(v) == 1 for v in _held(group).values())
    target = group.target["c1"][T1]
    assert len(target) == 1
    for name in ("k1", "k2", "k3"):
        assert group.classic_heartbeat(name, None, 5) == ErrorCode.REBALANCE_IN_PROGRESS
    (p,) = target
    loser = next(n for n in ("k1", "k2", "k3") if p in group.members[n].assigned.get(T1, ()))
    # An eager client rejoins owning nothing: it keeps one, the other is free at once (Kafka 4.4).
    joined = _classic_rejoin(group, loser)
    assert joined.error == ErrorCode.NONE
    assert group.members[loser].state == MemberState.STABLE and joined.generation_id == group.group_epoch
    error, data = group.classic_sync(loser, None, joined.generation_id, "consumer", "range", TOPICS)
    assert error == ErrorCode.NONE and data
    assert group.classic_heartbeat(loser, None, joined.generation_id) == ErrorCode.NONE
    r = beat(group, "c1", group.members["c1"].member_epoch, {})
    assert r.assignment == {T1: frozenset({p})}
    assert all(len(v) == 1 for v in _held(group).values())


def test_a_classic_member_leaves_a_consumer_group():
    group, _ = _upgraded("upgrade")  # (bidirectional: the rest, all classic, go back to classic)
    assert group.classic_leave("k1", None) == ErrorCode.NONE
    assert "k1" not in group.members and group.group_epoch == 6
    assert group.classic_leave("k1", None) == ErrorCode.UNKNOWN_MEMBER_ID
    assert group.classic_heartbeat("k2", None, 4) == ErrorCode.ILLEGAL_GENERATION
    assert group.check_commit("k2", 4, 7, 9)[0] == ErrorCode.ILLEGAL_GENERATION
    assert group.check_commit("k2", 5, 7, 9)[0] == ErrorCode.NONE  # classic commit below v9


def test_a_classic_member_that_still_owns_a_revoked_partition_keeps_its_epoch():
    """A cooperative client's JoinGroup lists what it owns: while that includes a partition
    it must give up, it stays at its epoch (UNREVOKED_PARTITIONS) and is asked to rejoin."""
    from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription
    group, _ = _upgraded()
    join(group, "c1")
    (p,) = group.target["c1"][T1]
    loser = next(n for n in ("k1", "k2", "k3") if p in group.members[n].assigned.get(T1, ()))
    owned = sorted(group.members[loser].assigned[T1])
    sub = bytes(ConsumerProtocolSubscription(1, ["t"], b"", [("t", owned)]).encode(version=1))
    joined = group.classic_join(loser, None, "kafka-python", "/127.0.0.1", 6000, REBALANCE_MS, "consumer",
                                [("cooperative-sticky", sub)], True, TOPICS)
    assert joined.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL  # not a protocol the others have
    joined = group.classic_join(loser, None, "kafka-python", "/127.0.0.1", 6000, REBALANCE_MS, "consumer",
                                [("range", sub)], True, TOPICS)
    assert group.members[loser].state == MemberState.UNREVOKED_PARTITIONS and joined.generation_id == 5
    assert group.classic_heartbeat(loser, None, 5) == ErrorCode.REBALANCE_IN_PROGRESS
    assert group.classic_sync(loser, None, 5, "consumer", "range", TOPICS)[0] == ErrorCode.NONE


# -- the downgrade back to classic (Kafka's convertToClassicGroup) ------------------------------
def _classic_group(clock):
    from odradek.broker.groups.group import Group, GroupConfig
    return Group("g", GroupConfig(min_session_timeout_ms=10, max_session_timeout_ms=60000,
                                  initial_rebalance_delay_ms=0, max_size=100), clock, lambda g, a, done: done(0))


def _with_consumer_member(policy="bidirectional"):
    group, clock = _upgraded(policy)
    r = join(group, "c1")
    return group, clock, r.member_epoch


def test_the_last_consumer_member_leaving_downgrades_the_group():
    from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment

    from odradek.broker.groups import consumer_group_records as rec
    from odradek.broker.groups.group import GroupState
    group, clock, epoch = _with_consumer_member()
    target = {m: dict(a) for m, a in group.target.items()}
    r = group.heartbeat(Heartbeat("c1", -1), TOPICS)
    assert r.error == ErrorCode.NONE and r.member_epoch == -1
    assert group.downgrade and group.group_epoch == epoch  # no bump: the members' generation stays
    classic = _classic_group(clock)
    tombstones = group.to_classic(classic, TOPICS)
    assert all(v is None for _, v in tombstones)
    assert {k for k, _ in tombstones} == {rec.key(t, "g", m) for m in ("c1", "k1", "k2", "k3")
                                          for t in rec.MEMBER_TYPES} | {rec.key(t, "g") for t in rec.GROUP_TYPES}
    assert tombstones[-1][0] == rec.key(rec.METADATA, "g")  # last: a replay ends with no consumer group
    assert classic.state == GroupState.STABLE and classic.generation_id == epoch
    assert classic.protocol_type == "consumer" and classic.protocol_name == "range"
    assert set(classic.members) == {"k1", "k2", "k3"} and classic.leader_id in classic.members
    for name, m in classic.members.items():  # the target assignment, without c1's partitions
        a = ConsumerProtocolAssignment.decode(m.assignment)
        assert {(tp.topic, p) for tp in a.assigned_partitions for p in tp.partitions} == {
            ("t", p) for p in target[name].get(T1, ())}
        assert m.session_timeout_ms == 6000 and m.protocols[0][0] == "range"
    assert group.state == ConsumerGroupState.DEAD
    assert classic.heartbeat("k1", None, epoch) == ErrorCode.NONE
    classic.prepare_rebalance("downgrade")
    assert classic.heartbeat("k1", None, epoch) == ErrorCode.REBALANCE_IN_PROGRESS


@pytest.mark.parametrize("policy, downgrades", [("bidirectional", True), ("downgrade", True),
                                                 ("upgrade", False), ("disabled", False)])
def test_the_migration_policy_decides_the_downgrade(policy, downgrades):
    group, _, epoch = _with_consumer_member(policy)
    group.heartbeat(Heartbeat("c1", -1), TOPICS)
    assert group.downgrade == downgrades
    assert "c1" not in group.members
    assert group.group_epoch == (epoch if downgrades else epoch + 1)


def test_a_consumer_member_fenced_by_its_session_timeout_downgrades_the_group():
    group, clock, _ = _with_consumer_member()
    changes = []
    group.on_change = lambda: changes.append(group.downgrade)
    for name in ("k1", "k2", "k3"):  # the classic members keep their sessions (6 s)
        group.classic_heartbeat(name, None, group.members[name].member_epoch)
    clock.advance(SESSION_MS + 1)
    assert changes == [True] and set(group.members) == {"k1", "k2", "k3"}


def test_no_downgrade_while_a_consumer_member_remains_or_nobody_does():
    group, _, _ = _with_consumer_member()
    join(group, "c2")
    group.heartbeat(Heartbeat("c1", -1), TOPICS)
    assert not group.downgrade  # c2 is a consumer-protocol member
    lone, _ = _group()
    join(lone, "c1")
    lone.heartbeat(Heartbeat("c1", -1), TOPICS)
    assert not lone.downgrade and lone.state == ConsumerGroupState.EMPTY


def test_a_downgrade_needs_room_in_a_classic_group():
    import dataclasses
    group, _, _ = _with_consumer_member()
    group.config = dataclasses.replace(group.config, classic_max_size=2)
    group.heartbeat(Heartbeat("c1", -1), TOPICS)
    assert not group.downgrade and len(group.members) == 3


# -- a classic member's JoinGroup and SyncGroup deadlines in a consumer group ------------------
def _beat_all(group, clock, ms, classic=("k1", "k2", "k3")):
    """Every 500 ms: c1 heartbeats, and so do these classic members (while they are members)."""
    for _ in range(ms // 500):
        clock.advance(500)
        c1 = group.members["c1"]
        beat(group, "c1", c1.member_epoch, c1.assigned)
        for name in classic:
            if name in group.members:
                group.classic_heartbeat(name, None, group.members[name].member_epoch)


def test_a_classic_member_asked_to_rejoin_that_never_does_is_fenced_after_its_rebalance_timeout():
    group, clock = _upgraded("upgrade")
    join(group, "c1")
    for name in ("k1", "k2", "k3"):  # all asked to rejoin: each one's join timer starts
        assert group.classic_heartbeat(name, None, 5) == ErrorCode.REBALANCE_IN_PROGRESS
    joined = _classic_rejoin(group, "k2")
    assert group.classic_sync("k2", None, joined.generation_id, "consumer", "range", TOPICS)[0] == ErrorCode.NONE
    _beat_all(group, clock, REBALANCE_MS - 500)
    assert {"k1", "k2", "k3"} <= set(group.members)  # heartbeats alone keep a session, not a place
    _beat_all(group, clock, 1000)
    assert set(group.members) == {"c1", "k2"}


def test_a_classic_member_that_joins_but_never_syncs_is_fenced_after_its_rebalance_timeout():
    group, clock = _upgraded("upgrade")
    join(group, "c1")
    for name in ("k1", "k2"):
        joined = _classic_rejoin(group, name)
        assert joined.error == ErrorCode.NONE
    assert group.classic_sync("k2", None, group.members["k2"].member_epoch, "consumer", "range",
                              TOPICS)[0] == ErrorCode.NONE
    _beat_all(group, clock, REBALANCE_MS + 500, classic=("k1", "k2"))
    assert "k1" not in group.members and "k2" in group.members  # k1 never sent its SyncGroup


def test_a_classic_static_member_replacing_the_last_consumer_member_downgrades_without_a_rebalance():
    from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription

    from odradek.broker.groups import consumer_group_records as rec
    from odradek.broker.groups.group import GroupState
    group, clock = _upgraded()
    r = join(group, "c1", instance_id="i1")
    epoch = r.member_epoch
    target = dict(group.target["c1"])
    assert group.heartbeat(Heartbeat("c1", -2, instance_id="i1"), TOPICS).member_epoch == -2
    assert not group.downgrade  # a static member's leave keeps its place
    sub = bytes(ConsumerProtocolSubscription(0, ["t"], b"").encode(version=0))
    joined = group.classic_join("", "i1", "kafka-python", "/127.0.0.1", 6000, REBALANCE_MS, "consumer",
                                [("range", sub)], True, TOPICS)
    assert joined.error == ErrorCode.NONE and group.downgrade and not group.downgrade_rebalances
    classic = _classic_group(clock)
    tombstones = group.to_classic(classic, TOPICS)
    assert (rec.key(rec.CURRENT_ASSIGNMENT, "g", "c1"), None) in tombstones
    assert set(classic.members) == {"k1", "k2", "k3", joined.member_id}
    assert classic.static_members == {"i1": joined.member_id}
    assert classic.state == GroupState.STABLE and classic.generation_id == group.group_epoch == epoch
    assert classic.members[joined.member_id].assignment == encode_assignment(target, TOPICS, 0)

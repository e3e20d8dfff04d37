"""The share group state machine (KIP-932) with an injected clock, and share sessions."""

import uuid

from odradek.broker.groups.consumer_group import TopicInfo, Topics
from odradek.broker.share.session import MAX_EPOCH, ShareSessions
from odradek.broker.share.share_group import (
    ShareGroup,
    ShareGroupConfig,
    ShareGroupState,
    ShareHeartbeat,
    simple_assignment,
    validate,
)
from odradek.protocol.errors import ErrorCode

from .test_groups_unit import FakeScheduler

T1 = uuid.UUID(int=1)
TOPICS = Topics({"t": TopicInfo(T1, 2)})


def _group(max_size=10):
    clock = FakeScheduler()
    return ShareGroup("g", ShareGroupConfig(session_timeout_ms=1000, max_size=max_size), clock), clock


def test_simple_assignor_spreads_partitions_and_shares_them_when_members_outnumber_them():
    ps = [(T1, 0), (T1, 1), (T1, 2)]
    assert simple_assignment(["a", "b"], ps) == {"a": {T1: frozenset({0, 2})}, "b": {T1: frozenset({1})}}
    five = simple_assignment(["a", "b", "c", "d", "e"], ps[:2])
    assert [five[m] for m in "abcde"] == [{T1: frozenset({p})} for p in (0, 1, 0, 1, 0)]
    assert simple_assignment(["a"], []) == {"a": {}}


def test_members_join_get_epochs_and_assignments_and_leave():
    g, _ = _group()
    r = g.heartbeat(ShareHeartbeat("a", 0, subscribed_topic_names=["t"]), TOPICS)
    assert (r.error, r.member_epoch, r.assignment) == (ErrorCode.NONE, 1, {T1: frozenset({0, 1})})
    assert g.state is ShareGroupState.STABLE
    r = g.heartbeat(ShareHeartbeat("b", 0, subscribed_topic_names=["t"]), TOPICS)
    assert (r.member_epoch, r.assignment) == (2, {T1: frozenset({1})})
    r = g.heartbeat(ShareHeartbeat("a", 1), TOPICS)  # a learns epoch 2 and its smaller share
    assert (r.member_epoch, r.assignment) == (2, {T1: frozenset({0})})
    assert g.heartbeat(ShareHeartbeat("a", 2), TOPICS).assignment is None  # unchanged: not sent
    # Its previous epoch (the answer that bumped it was lost) is taken, as Kafka does: the
    # answer repeats the current epoch and assignment; an older one or a newer one is fenced.
    r = g.heartbeat(ShareHeartbeat("a", 1), TOPICS)
    assert (r.error, r.member_epoch, r.assignment) == (ErrorCode.NONE, 2, {T1: frozenset({0})})
    assert g.heartbeat(ShareHeartbeat("b", 0), TOPICS).member_epoch == 2  # (b: 0 rejoins as itself)
    r = g.heartbeat(ShareHeartbeat("a", 3), TOPICS)
    assert (r.error, r.message) == (ErrorCode.FENCED_MEMBER_EPOCH, (
        "The share group member has a greater member epoch (3) than the one known by the group "
        "coordinator (2). The member must abandon all its partitions and rejoin."))
    assert g.heartbeat(ShareHeartbeat("zz", 2), TOPICS).error == ErrorCode.UNKNOWN_MEMBER_ID
    assert g.heartbeat(ShareHeartbeat("b", -1), TOPICS).member_epoch == -1
    r = g.heartbeat(ShareHeartbeat("a", 2), TOPICS)
    assert (r.member_epoch, r.assignment) == (3, {T1: frozenset({0, 1})})
    # A topic that grows bumps the epoch too.
    r = g.heartbeat(ShareHeartbeat("a", 3), Topics({"t": TopicInfo(T1, 3)}))
    assert (r.member_epoch, r.assignment) == (4, {T1: frozenset({0, 1, 2})})


def test_a_silent_member_expires_and_the_others_take_its_partitions():
    g, clock = _group()
    g.heartbeat(ShareHeartbeat("a", 0, subscribed_topic_names=["t"]), TOPICS)
    g.heartbeat(ShareHeartbeat("b", 0, subscribed_topic_names=["t"]), TOPICS)
    clock.advance(600)
    assert g.heartbeat(ShareHeartbeat("a", 1), TOPICS).member_epoch == 2
    clock.advance(600)  # b: 1200 ms since its heartbeat
    assert list(g.members) == ["a"]
    r = g.heartbeat(ShareHeartbeat("a", 2), TOPICS)
    assert (r.member_epoch, r.assignment) == (3, {T1: frozenset({0, 1})})


def test_max_size_and_request_checks():
    g, _ = _group(max_size=1)
    g.heartbeat(ShareHeartbeat("a", 0, subscribed_topic_names=["t"]), TOPICS)
    assert g.heartbeat(ShareHeartbeat("b", 0, subscribed_topic_names=["t"]), TOPICS).error == \
        ErrorCode.GROUP_MAX_SIZE_REACHED
    assert validate(ShareHeartbeat("", 0, subscribed_topic_names=["t"]), "g") == (ErrorCode.INVALID_REQUEST, None)
    assert validate(ShareHeartbeat("m", -2), "g") == (ErrorCode.INVALID_REQUEST, "MemberEpoch is invalid.")
    assert validate(ShareHeartbeat("m", 0), "g")[1] == "SubscribedTopicNames must be set in first request."
    assert validate(ShareHeartbeat("m", 0, subscribed_topic_names=["t"]), "") == (
        ErrorCode.INVALID_REQUEST, "GroupId can't be empty.")


def test_share_session_epochs():
    s = ShareSessions(max_sessions=1)
    assert s.fetch("g", "m", 1, [], [])[0] == ErrorCode.SHARE_SESSION_NOT_FOUND
    error, session, replaced = s.fetch("g", "m", 0, [(T1, 0)], [])
    assert (error, session.partitions, replaced) == (ErrorCode.NONE, {(T1, 0)}, None)
    assert s.fetch("g", "other", 0, [], [])[0] == ErrorCode.SHARE_SESSION_LIMIT_REACHED
    assert s.fetch("g", "m", 2, [], [])[0] == ErrorCode.INVALID_SHARE_SESSION_EPOCH
    assert s.fetch("g", "m", 1, [(T1, 1)], [(T1, 0)])[1].partitions == {(T1, 1)}
    assert s.acknowledge("g", "m", 0)[0] == ErrorCode.INVALID_SHARE_SESSION_EPOCH
    assert s.acknowledge("g", "m", 2)[0] == ErrorCode.NONE
    session.next_epoch = MAX_EPOCH
    assert s.acknowledge("g", "m", MAX_EPOCH)[0] == ErrorCode.NONE and session.next_epoch == 1  # wraps
    error, again, replaced = s.fetch("g", "m", 0, [], [])
    assert replaced is session and again is not session
    s.close(again)
    assert s.acknowledge("g", "m", -1)[0] == ErrorCode.SHARE_SESSION_NOT_FOUND


def test_share_manager_forgets_partitions_it_no_longer_leads_and_sessions_of_closed_connections():
    from types import SimpleNamespace

    from odradek.broker.share.manager import Held, ShareManager
    from odradek.broker.share.partition import SharePartition
    image = SimpleNamespace(topics_by_id={str(T1): SimpleNamespace(partitions={
        0: SimpleNamespace(leader=1), 1: SimpleNamespace(leader=2)})})
    broker = SimpleNamespace(config={"group.share.max.share.sessions": 10}, image=image, node_id=1)
    m = ShareManager(broker)
    kept, moved = SharePartition(0), SharePartition(0)
    m.partitions = {("g", T1, 0): Held(0, kept, 0), ("g", T1, 1): Held(0, moved, 0),
                    ("g", uuid.UUID(int=9), 0): Held(0, moved, 0)}
    m.on_metadata([])
    assert list(m.partitions) == [("g", T1, 0)]
    # A connection's sessions end with it, and what their members held is released.
    conn = object()
    m.sessions.fetch("g", "a", 0, [(T1, 0)], [], conn)
    m.sessions.fetch("g", "b", 0, [(T1, 0)], [], object())
    assert kept.acquire("a", [(0, 1)], 10, now_ms=0)
    m.connection_closed(conn)
    assert list(m.sessions.sessions) == [("g", "b")]
    assert kept.next_fetch_offset() == 0 and kept.records[0].delivery_count == 1


def test_an_epoch_older_than_the_previous_one_is_fenced_in_kafkas_words():
    g, _ = _group()
    g.heartbeat(ShareHeartbeat("a", 0, subscribed_topic_names=["t"]), TOPICS)  # epoch 1
    g.heartbeat(ShareHeartbeat("b", 0, subscribed_topic_names=["t"]), TOPICS)  # epoch 2
    g.heartbeat(ShareHeartbeat("a", 1), TOPICS)  # a: 2, previous 1
    g.heartbeat(ShareHeartbeat("c", 0, subscribed_topic_names=["t"]), TOPICS)  # epoch 3
    assert g.heartbeat(ShareHeartbeat("a", 2), TOPICS).member_epoch == 3  # a: 3, previous 2
    r = g.heartbeat(ShareHeartbeat("a", 1), TOPICS)
    assert (r.error, r.message) == (ErrorCode.FENCED_MEMBER_EPOCH, (
        "The share group member has a smaller member epoch (1) than the one known by the group "
        "coordinator (3), and it does not match the previous member epoch (2). The member must "
        "abandon all its partitions and rejoin."))


def _replayed(records, topics=TOPICS):
    """A new coordinator's group from the latest value of every key written."""
    from odradek.broker.groups import consumer_group_records as cgr
    from odradek.broker.groups import offsets_topic as ot
    latest: dict = {}
    for k, v in records:
        latest[k] = v
    again, clock = _group()
    for k, v in latest.items():
        kind, group_id, record_type, member_id = ot.parse_key(k)
        assert (kind, group_id) == ("share_group", "g")
        again.load_record(record_type, member_id, None if v is None else cgr.parse_value(record_type, v))
    again.loaded(topics)
    return again, clock


def test_records_rebuild_the_group_and_its_members_carry_on():
    """What take_records writes, replayed into a new group (a new coordinator), gives the same
    epoch, members, assignments and target; a departed member's records are tombstones; the
    members go on heartbeating with their epochs, and their sessions run from the load."""
    g, _ = _group()
    log = []
    g.heartbeat(ShareHeartbeat("a", 0, subscribed_topic_names=["t"], client_id="ca", client_host="/h"), TOPICS)
    log += g.take_records()
    g.heartbeat(ShareHeartbeat("b", 0, subscribed_topic_names=["t"], rack_id="r1"), TOPICS)
    g.heartbeat(ShareHeartbeat("c", 0, subscribed_topic_names=["t"]), TOPICS)
    log += g.take_records()
    g.heartbeat(ShareHeartbeat("c", -1), TOPICS)
    g.heartbeat(ShareHeartbeat("a", 1), TOPICS)
    log += g.take_records()
    assert g.take_records() == []  # nothing changed since
    again, clock = _replayed(log)
    assert again.group_epoch == g.group_epoch == 4 and set(again.members) == {"a", "b"}
    assert again.target == g.target and not again.stale
    for m in g.members.values():
        n = again.members[m.member_id]
        assert (n.member_epoch, n.previous_member_epoch, n.assigned, n.metadata()) == (
            m.member_epoch, m.previous_member_epoch, m.assigned, m.metadata())
    r = again.heartbeat(ShareHeartbeat("a", 4), TOPICS)
    assert (r.error, r.member_epoch, r.assignment) == (ErrorCode.NONE, 4, None)
    r = again.heartbeat(ShareHeartbeat("b", 2), TOPICS)  # b (joined at 2) learns epoch 4 now
    assert (r.error, r.member_epoch, r.assignment) == (ErrorCode.NONE, 4, {T1: frozenset({1})})
    clock.advance(1000)  # no heartbeat from either since: both sessions end
    assert again.members == {}
    # A member that joins the replayed group bumps its epoch on, not from 1.
    assert again.heartbeat(ShareHeartbeat("d", 0, subscribed_topic_names=["t"]), TOPICS).member_epoch == 5


def test_a_topic_grown_during_the_failover_makes_the_next_heartbeat_recompute():
    g, _ = _group()
    g.heartbeat(ShareHeartbeat("a", 0, subscribed_topic_names=["t"]), TOPICS)
    again, _ = _replayed(g.take_records(), Topics({"t": TopicInfo(T1, 3)}))
    assert again.stale
    r = again.heartbeat(ShareHeartbeat("a", 1), Topics({"t": TopicInfo(T1, 3)}))
    assert (r.member_epoch, r.assignment) == (2, {T1: frozenset({0, 1, 2})})


def test_an_expired_member_is_written_at_once_and_failed_writes_go_with_the_next():
    g, clock = _group()
    written = []
    g.on_change = lambda: written.extend(g.take_records())
    g.heartbeat(ShareHeartbeat("a", 0, subscribed_topic_names=["t"]), TOPICS)
    failed = g.take_records()
    g.write_failed(failed)
    clock.advance(1000)
    assert written[:len(failed)] == failed
    from odradek.broker.groups import consumer_group_records as cgr
    assert [(k, v) for k, v in written[len(failed):]] == [
        (cgr.key(t, "g", "a"), None) for t in cgr.SHARE_MEMBER_TYPES]
def test_offsets_may_change_only_in_an_empty_group():
    """AlterShareGroupOffsets, DeleteShareGroupOffsets and DeleteGroups: NON_EMPTY_GROUP
    while a member is in the group (Kafka's ShareGroup.validateEmptyGroup)."""
    g, _ = _group()
    assert g.offsets_alterable() == ErrorCode.NONE
    g.created_by_offsets()
    assert (g.state, g.group_epoch, g.assignment_epoch) == (ShareGroupState.EMPTY, 1, 1)
    g.heartbeat(ShareHeartbeat("a", 0, subscribed_topic_names=["t"]), TOPICS)
    assert g.offsets_alterable() == ErrorCode.NON_EMPTY_GROUP
    g.heartbeat(ShareHeartbeat("a", -1), TOPICS)
    assert g.offsets_alterable() == ErrorCode.NONE


def test_share_manager_evicts_a_groups_altered_partitions():
    """After AlterShareGroupOffsets or DeleteShareGroupOffsets the leader forgets what it
    held of those topics for that group (the next fetch loads the coordinator's state)."""
    from types import SimpleNamespace

    from odradek.broker.share.manager import Held, ShareManager
    from odradek.broker.share.partition import SharePartition
    m = ShareManager(SimpleNamespace(config={"group.share.max.share.sessions": 10}))
    other = uuid.UUID(int=9)
    m.partitions = {(g, t, 0): Held(0, SharePartition(0), 1) for g in ("g", "h") for t in (T1, other)}
    m.evict("g", {T1})
    assert sorted(m.partitions, key=str) == sorted([("g", other, 0), ("h", T1, 0), ("h", other, 0)], key=str)
    m.evict("h", None)
    assert list(m.partitions) == [("g", other, 0)]

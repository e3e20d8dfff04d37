"""The group state machine with an injected clock, and the __consumer_offsets formats."""

import heapq

from odradek.broker.groups import offsets_topic as ot
from odradek.broker.groups.group import Group, GroupConfig, GroupState, subscribed_topics
from odradek.protocol import records as rec
from odradek.protocol.errors import ErrorCode


class FakeScheduler:
    """Virtual time: timers fire only when the test advances the clock."""

    def __init__(self):
        self.now = 1_000_000
        self._timers = []
        self._seq = 0

    def now_ms(self):
        return self.now

    def call_later(self, delay_ms, callback):
        handle = _Handle(callback)
        self._seq += 1
        heapq.heappush(self._timers, (self.now + delay_ms, self._seq, handle))
        return handle

    def advance(self, ms):
        end = self.now + ms
        while self._timers and self._timers[0][0] <= end:
            when, _, handle = heapq.heappop(self._timers)
            self.now = when
            if not handle.cancelled:
                handle.callback()
        self.now = end


class _Handle:
    def __init__(self, callback):
        self.callback = callback
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class Harness:
    def __init__(self, delay_ms=0, max_size=100, new_member_join_timeout_ms=300000):
        self.clock = FakeScheduler()
        self.persisted = []
        self.group = Group("g", GroupConfig(6000, 300000, delay_ms, max_size,
                                            new_member_join_timeout_ms), self.clock, self.persist)

    def persist(self, group, assignment, done):
        self.persisted.append(assignment)
        done(ErrorCode.NONE)

    def join(self, member_id="", protocols=(("range", b"m"),), instance=None, version=5,
             session=10000, rebalance=20000, protocol_type="consumer"):
        results = []
        self.group.join(member_id=member_id, group_instance_id=instance, client_id="c",
                        client_host="/h", session_timeout_ms=session, rebalance_timeout_ms=rebalance,
                        protocol_type=protocol_type, protocols=list(protocols),
                        require_known_member_id=version >= 4 and instance is None,
                        supports_skip_assignment=version >= 9, callback=results.append)
        return results

    def join_new(self, **kwargs):
        """A v4+ member: MEMBER_ID_REQUIRED, then the real join."""
        [first] = self.join(**kwargs)
        assert first.error == ErrorCode.MEMBER_ID_REQUIRED
        return self.join(member_id=first.member_id, **kwargs)

    def sync(self, result, assignments=None):
        out = []
        self.group.sync(member_id=result.member_id, group_instance_id=None,
                        generation_id=result.generation_id, protocol_type="consumer",
                        protocol_name=result.protocol_name, assignments=assignments or {},
                        callback=out.append)
        return out


def test_one_member_joins_syncs_and_is_stable():
    h = Harness()
    [joined] = h.join_new()
    assert joined.error == ErrorCode.NONE and joined.generation_id == 1
    assert joined.leader_id == joined.member_id and len(joined.members) == 1
    assert h.group.state == GroupState.COMPLETING_REBALANCE
    [synced] = h.sync(joined, {joined.member_id: b"assignment"})
    assert synced.assignment == b"assignment" and h.group.state == GroupState.STABLE
    assert h.persisted[-1] == {joined.member_id: b"assignment"}


def test_second_member_rebalances_and_both_get_the_new_generation():
    h = Harness()
    [a] = h.join_new()
    h.sync(a, {a.member_id: b"all"})
    b_pending = h.join_new()
    assert b_pending == []  # waits for a to rejoin
    assert h.group.heartbeat(a.member_id, None, 1) == ErrorCode.REBALANCE_IN_PROGRESS
    [a2] = h.join(member_id=a.member_id)
    [b] = b_pending
    assert a2.generation_id == b.generation_id == 2
    assert a2.leader_id == a.member_id and len(a2.members) == 2 and b.members == []
    b_sync = h.sync(b)
    assert b_sync == []  # waits for the leader's assignment
    h.sync(a2, {a.member_id: b"x", b.member_id: b"y"})
    assert b_sync[0].assignment == b"y"
    # a stale generation is refused
    assert h.group.heartbeat(a.member_id, None, 1) == ErrorCode.ILLEGAL_GENERATION
    assert h.group.heartbeat("nobody", None, 2) == ErrorCode.UNKNOWN_MEMBER_ID


def test_session_timeout_removes_a_silent_member():
    h = Harness()
    [a] = h.join_new()
    h.sync(a, {})
    pending_b = h.join_new()
    [a2] = h.join(member_id=a.member_id)
    [b] = pending_b
    h.sync(a2, {})
    h.sync(b)
    for _ in range(5):  # a heartbeats, b is silent
        h.clock.advance(3000)
        assert h.group.heartbeat(a.member_id, None, 2) in (ErrorCode.NONE, ErrorCode.REBALANCE_IN_PROGRESS)
    assert b.member_id not in h.group.members
    assert h.group.state == GroupState.PREPARING_REBALANCE
    [a3] = h.join(member_id=a.member_id)
    assert a3.generation_id == 3 and len(a3.members) == 1


def test_rebalance_timeout_drops_members_that_do_not_rejoin():
    h = Harness()
    [a] = h.join_new(rebalance=5000)
    h.sync(a, {})
    pending_b = h.join_new(rebalance=5000)
    h.clock.advance(4000)
    h.group.heartbeat(a.member_id, None, 1)  # alive, but never rejoins
    h.clock.advance(1500)
    [b] = pending_b
    assert b.generation_id == 2 and list(h.group.members) == [b.member_id]
    assert b.leader_id == b.member_id


def _three_joined(h):
    """a (the leader), b and c joined generation 2 and were answered; nobody synced yet."""
    [a] = h.join_new()
    h.sync(a, {})
    pending = [h.join_new(), h.join_new()]
    [a2] = h.join(member_id=a.member_id)
    [b], [c] = pending
    assert a2.leader_id == a.member_id and h.group.state == GroupState.COMPLETING_REBALANCE
    return a2, b, c


def test_followers_waiting_in_sync_survive_the_leader_dying_before_its_sync():
    """The leader got its JoinGroup answer and died: its session timeout removes it, the
    followers' SyncGroups get REBALANCE_IN_PROGRESS, and they are members still (their
    session restarts with that answer), so they rejoin at once into the next generation."""
    h = Harness()
    a, b, c = _three_joined(h)
    h.clock.advance(5)
    b_sync, c_sync = h.sync(b), h.sync(c)
    h.clock.advance(9000)
    assert b_sync == [] and c_sync == []  # waiting is alive: no heartbeats needed
    h.clock.advance(1000)  # a's session timeout, started with its join answer
    assert a.member_id not in h.group.members
    assert [r.error for r in b_sync + c_sync] == [ErrorCode.REBALANCE_IN_PROGRESS] * 2
    h.clock.advance(50)  # the followers' rejoins are on their way
    assert set(h.group.members) == {b.member_id, c.member_id}
    b3 = h.join(member_id=b.member_id)
    assert b3 == []  # waits for c
    [c3] = h.join(member_id=c.member_id)
    assert b3[0].generation_id == c3.generation_id == 3 and c3.error == ErrorCode.NONE


def test_leader_leaving_before_its_sync_answers_pending_syncs_at_once():
    h = Harness()
    a, b, c = _three_joined(h)
    b_sync = h.sync(b)
    assert h.group.leave(a.member_id, None) == ErrorCode.NONE
    assert [r.error for r in b_sync] == [ErrorCode.REBALANCE_IN_PROGRESS]
    assert h.group.state == GroupState.PREPARING_REBALANCE
    b3, c3 = h.join(member_id=b.member_id), h.join(member_id=c.member_id)
    assert b3[0].generation_id == c3[0].generation_id == 3
    assert b3[0].leader_id in (b.member_id, c.member_id)


def test_members_that_never_sync_are_removed_after_the_rebalance_timeout():
    """Kafka's pending-sync timeout: heartbeats alone do not keep a member that never
    sent its SyncGroup (it cannot have an assignment it acts on)."""
    h = Harness()
    a, b, c = _three_joined(h)
    h.sync(a, {a.member_id: b"x", b.member_id: b"y", c.member_id: b"z"})
    h.sync(b)
    assert h.group.state == GroupState.STABLE
    for _ in range(6):  # c heartbeats for 24 s, past the 20 s rebalance timeout, never syncs
        h.clock.advance(4000)
        for m in (a, b, c):
            h.group.heartbeat(m.member_id, None, m.generation_id)
    assert c.member_id not in h.group.members
    assert set(h.group.members) == {a.member_id, b.member_id}
    assert h.group.state == GroupState.PREPARING_REBALANCE


def test_members_that_sync_are_not_removed_by_the_pending_sync_timeout():
    h = Harness()
    a, b, c = _three_joined(h)
    h.sync(a, {})
    h.sync(b)
    h.sync(c)
    for _ in range(10):
        h.clock.advance(4000)
        for m in (a, b, c):
            assert h.group.heartbeat(m.member_id, None, m.generation_id) == ErrorCode.NONE
    assert h.group.state == GroupState.STABLE and len(h.group.members) == 3


def test_a_new_member_that_never_completes_its_join_is_removed():
    """Kafka's new-member join timeout: a JoinGroup of a new member waits at most that long
    (its client may have given up and joined again under another id)."""
    h = Harness(new_member_join_timeout_ms=30000)
    [a] = h.join_new(session=40000, rebalance=100000)
    h.sync(a, {})
    pending_b = h.join_new(session=10000, rebalance=10000)
    assert pending_b == [] and h.group.state == GroupState.PREPARING_REBALANCE
    h.clock.advance(29999)
    h.group.heartbeat(a.member_id, None, 1)  # a is slow to rejoin, but alive
    assert pending_b == []
    h.clock.advance(1)
    [b] = pending_b
    assert b.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert list(h.group.members) == [a.member_id]


def test_initial_rebalance_delay_collects_members():
    h = Harness(delay_ms=3000)
    a_pending = h.join_new()
    h.clock.advance(2000)
    b_pending = h.join_new()
    assert a_pending == [] and b_pending == []
    h.clock.advance(1000)  # first delay over, but b arrived meanwhile: wait once more
    assert a_pending == []
    h.clock.advance(3000)
    assert a_pending[0].generation_id == b_pending[0].generation_id == 1


def test_static_member_restart_takes_its_place_without_rebalance():
    h = Harness()
    [a] = h.join(instance="ia")
    [a_sync] = h.sync(a, {a.member_id: b"pa"})
    assert a_sync.error == ErrorCode.NONE
    pending_b = h.join(instance="ib")
    [a2] = h.join(member_id=a.member_id, instance="ia")
    [b] = pending_b
    h.sync(a2, {a.member_id: b"pa", b.member_id: b"pb"})
    [b_sync] = h.sync(b)
    assert b_sync.assignment == b"pb"
    # b restarts: a new member id for instance ib, same generation, old id fenced
    [b2] = h.join(instance="ib")
    assert b2.error == ErrorCode.NONE and b2.generation_id == 2 and b2.member_id != b.member_id
    assert h.group.state == GroupState.STABLE
    out = []
    h.group.sync(member_id=b2.member_id, group_instance_id="ib", generation_id=2, protocol_type=None,
                 protocol_name=None, assignments={}, callback=out.append)
    assert out[0].assignment == b"pb"
    assert h.group.heartbeat(b.member_id, "ib", 2) == ErrorCode.FENCED_INSTANCE_ID
    assert h.group.heartbeat(a.member_id, "ia", 2) == ErrorCode.NONE
    # the leader restarting is told the old leader id (pre-v9), so it assigns nothing
    [a3] = h.join(instance="ia", version=7)
    assert a3.leader_id == a.member_id != a3.member_id and h.group.state == GroupState.STABLE


def test_join_errors():
    h = Harness(max_size=1)
    [a] = h.join_new()
    assert h.join(protocols=[("other", b"")], version=3)[0].error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert h.join(version=3)[0].error == ErrorCode.GROUP_MAX_SIZE_REACHED
    assert h.join(session=1000)[0].error == ErrorCode.INVALID_SESSION_TIMEOUT
    assert h.join(member_id="ghost")[0].error == ErrorCode.UNKNOWN_MEMBER_ID
    assert a.error == ErrorCode.NONE


def test_commit_checks():
    h = Harness()
    assert h.group.check_commit("", None, -1) == ErrorCode.NONE  # empty group: self-assigned
    [a] = h.join_new()
    assert h.group.check_commit(a.member_id, None, 1) == ErrorCode.REBALANCE_IN_PROGRESS
    h.sync(a, {})
    assert h.group.check_commit(a.member_id, None, 1) == ErrorCode.NONE
    assert h.group.check_commit(a.member_id, None, 0) == ErrorCode.ILLEGAL_GENERATION
    assert h.group.check_commit("x", None, 1) == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.group.check_commit("", None, -1) == ErrorCode.UNKNOWN_MEMBER_ID  # active group


def test_leave_and_expiry_rules():
    h = Harness()
    [a] = h.join_new()
    h.sync(a, {})
    h.group.offsets[("t", 0)] = ot.OffsetAndMetadata(5, -1, "", h.clock.now)
    assert h.group.leave(a.member_id, None) == ErrorCode.NONE
    assert h.group.state == GroupState.EMPTY and h.group.generation_id == 2
    assert h.group.leave(a.member_id, None) == ErrorCode.UNKNOWN_MEMBER_ID
    # an empty consumer group: offsets expire from when it became empty
    h.clock.advance(999)
    assert h.group.expired_offsets(h.clock.now, 1000) == []
    h.clock.advance(1)
    assert h.group.expired_offsets(h.clock.now, 1000) == [("t", 0)]


def test_subscription_topics_parse():
    data = b"\x00\x01" + b"\x00\x00\x00\x02" + b"\x00\x01a" + b"\x00\x02bc" + b"\xff\xff\xff\xff"
    assert subscribed_topics(data) == {"a", "bc"}
    assert subscribed_topics(b"\x00") == set() or subscribed_topics(b"\x00") is None


def test_partition_for_matches_java():
    assert ot.java_hash("hello") == 99162322  # "hello".hashCode()
    assert ot.java_hash("polygenelubricants") == -(2**31)  # Integer.MIN_VALUE: abs is 0
    assert ot.partition_for("polygenelubricants", 50) == 0
    assert ot.partition_for("hello", 50) == 99162322 % 50


def test_record_formats_round_trip_through_a_batch():
    value = ot.OffsetAndMetadata(42, 7, "meta", 123)
    group = ot.GroupRecord("consumer", 3, "range", "m1", 99, [ot.MemberRecord(
        "m1", "inst", "client", "/h", 30000, 10000, b"sub", b"assign")])
    batch = rec.build_batch([
        rec.Record(ot.offset_key("g", "t", 1), ot.offset_value(value), (), 0),
        rec.Record(ot.group_key("g"), ot.group_value(group), (), 0),
        rec.Record(ot.offset_key("g", "t", 1), None, (), 0)], base_offset=10)
    records = list(ot.iter_records(batch))
    assert [r[0] for r in records] == [10, 11, 12]
    assert ot.parse_key(records[0][1]) == ("offset", "g", "t", 1)
    assert ot.parse_offset_value(records[0][2]) == value
    assert ot.parse_key(records[1][1]) == ("group", "g")
    assert ot.parse_group_value(records[1][2]) == group
    assert records[2][2] is None

"""One consumer group's state machine: Kafka's classic rebalance protocol.

States (Kafka's names): Empty -> PreparingRebalance -> CompletingRebalance -> Stable,
and Dead once deleted. A rebalance collects JoinGroups until every known member
has rejoined (or the rebalance timeout, the largest of the members', passes:
dynamic members that did not rejoin are removed), then bumps the generation,
picks the protocol most members prefer among those all support, and answers every
join; the leader's answer carries the members' metadata. The leader's SyncGroup
brings the assignment (the assignors live in the clients), which is stored before
the group becomes Stable and every member's SyncGroup is answered.

Timers (Kafka's ClassicGroup rules):
- Each member's session timeout, restarted by heartbeats, commits, joins, syncs and
  by every answer to a JoinGroup or SyncGroup that waited: clients do not heartbeat
  while such a request waits, so a member waiting in JoinGroup or SyncGroup is kept
  alive (MemberMetadata.shouldKeepAlive), and the answer gives it a full session to
  send its next request. Without that restart, followers whose SyncGroups were
  answered REBALANCE_IN_PROGRESS (their leader died before syncing) expired with it.
- A new member (its first JoinGroup) is kept only for the new-member join timeout
  (5 minutes): its client may have given up and joined again under another id.
- The pending-sync timeout: members that got their JoinGroup answer and send no
  SyncGroup within the rebalance timeout are removed and the group rebalances.
- The rebalance timeout for the join phase, and ``group.initial.rebalance.delay.ms``
  for a rebalance that starts from Empty (extended while new members keep arriving,
  up to the rebalance timeout).
When the leader leaves or expires between JoinGroup and SyncGroup, the group
rebalances and the followers' waiting SyncGroups get REBALANCE_IN_PROGRESS, so they
rejoin at once.
Static members (group.instance.id) that rejoin within their session timeout take
their old place without a rebalance; an old member id of that instance is fenced
(FENCED_INSTANCE_ID).

No I/O happens here, so tests drive it with a fake clock: time and timers come
from a :class:`Scheduler`, responses go to callbacks, and the one write (storing
the assignment) goes through the ``persist`` hook, which calls back when durable.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import structlog

from odradek.broker.groups.offsets_topic import GroupRecord, MemberRecord, OffsetAndMetadata
from odradek.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def now_ms(self) -> int: ...

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> TimerHandle: ...


@dataclass(frozen=True, slots=True)
class GroupConfig:
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    initial_rebalance_delay_ms: int = 3000
    max_size: int = 2**31 - 1
    # Kafka's CLASSIC_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS (a constant there, not a broker key)
    new_member_join_timeout_ms: int = 5 * 60 * 1000


@dataclass(slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: list = field(default_factory=list)  # (member_id, group_instance_id, metadata)
    skip_assignment: bool = False


@dataclass(slots=True)
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(eq=False, slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_callback: Callable[[JoinResult], None] | None = None
    sync_callback: Callable[[SyncResult], None] | None = None
    supports_skip_assignment: bool = False
    timer: TimerHandle | None = None
    is_new: bool = False  # joined, not yet answered: the new-member join timeout applies

    def metadata(self, protocol_name: str) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol_name:
                return metadata
        return b""


def subscribed_topics(metadata: bytes) -> set[str] | None:
    """The topics of a ConsumerProtocolSubscription (version int16, topics [string], ...);
    None if it cannot be read."""
    try:
        count = int.from_bytes(metadata[2:6], "big", signed=True)
        pos = 6
        topics = set()
        for _ in range(max(count, 0)):
            n = int.from_bytes(metadata[pos:pos + 2], "big", signed=True)
            pos += 2
            if n < 0 or pos + n > len(metadata):
                return None
            topics.add(bytes(metadata[pos:pos + n]).decode())
            pos += n
        return topics
    except (UnicodeDecodeError, ValueError):
        return None


class Group:
    """A group's members, generation and committed offsets.

    ``persist(group, assignment, done)`` stores the group metadata (with
    ``assignment``, member id -> bytes, when given) and calls ``done(error_code)``.
    """

    def __init__(self, group_id: str, config: GroupConfig, scheduler: Scheduler,
                 persist: Callable[["Group", dict | None, Callable[[ErrorCode], None]], None]):
        self.group_id = group_id
        self.config = config
        self.scheduler = scheduler
        self.persist = persist
        self.state = GroupState.EMPTY
        self.state_timestamp = scheduler.now_ms()
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}
        self.static_members: dict[str, str] = {}  # group_instance_id -> member_id
        self.pending_members: dict[str, TimerHandle] = {}  # ids handed out with MEMBER_ID_REQUIRED
        self.offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
        self.subscribed: set[str] | None = None  # consumer protocol: union of subscriptions
        self.pending_sync: set[str] = set()  # answered JoinGroup, no SyncGroup yet
        self._join_timer: TimerHandle | None = None
        self._sync_timer: TimerHandle | None = None
        self._initial_delay_left_ms = 0  # rebalance timeout left for initial-delay extensions
        self._new_member_joined = False
        self._in_initial_delay = False

    # -- state --------------------------------------------------------------------
    def _transition(self, state: GroupState) -> None:
        log.info("group_state", group_id=self.group_id, state=state.value,
                 previous=self.state.value, generation_id=self.generation_id)
        self.state = state
        self.state_timestamp = self.scheduler.now_ms()

    @property
    def is_empty(self) -> bool:
        return not self.members

    def _rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def _all_joined(self) -> bool:
        return (not self.pending_members
                and all(m.join_callback is not None for m in self.members.values()))

    def _candidate_protocols(self) -> list[str] | None:
        """Protocols every member supports, in the first member's preference order."""
        if not self.members:
            return None
        members = list(self.members.values())
        names = [name for name, _ in members[0].protocols]
        common = set(names)
        for m in members[1:]:
            common &= {name for name, _ in m.protocols}
        return [n for n in names if n in common]

    def supports_protocols(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        if not self.members:
            return bool(protocol_type) and bool(protocols)
        candidates = set(self._candidate_protocols() or [])
        return protocol_type == self.protocol_type and any(n in candidates for n, _ in protocols)

    def _select_protocol(self) -> str:
        candidates = self._candidate_protocols()
        votes = dict.fromkeys(candidates, 0)
        for m in self.members.values():
            for name, _ in m.protocols:
                if name in votes:
                    votes[name] += 1
                    break
        return max(candidates, key=lambda n: votes[n])  # first of the most voted

    # -- the shared member checks ---------------------------------------------------
    def check_member(self, member_id: str, group_instance_id: str | None,
                     generation_id: int | None = None) -> ErrorCode:
        """The errors SyncGroup, Heartbeat and OffsetCommit share, in Kafka's order."""
        if self.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if group_instance_id is not None:
            known = self.static_members.get(group_instance_id)
            if known is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if known != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id is not None and generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    def check_commit(self, member_id: str, group_instance_id: str | None,
                     generation_id: int) -> ErrorCode:
        """May this OffsetCommit write? (Kafka's ClassicGroup.validateOffsetCommit.)"""
        if self.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and self.state == GroupState.EMPTY:
            return ErrorCode.NONE  # a consumer that assigns itself partitions, or an admin
        if generation_id >= 0 or member_id or group_instance_id is not None:
            error = self.check_member(member_id, group_instance_id, generation_id)
            if error:
                return error
        elif self.state != GroupState.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if self.state == GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        self.heartbeat_member(member_id)
        return ErrorCode.NONE

    # -- timers -------------------------------------------------------------------
    def heartbeat_member(self, member_id: str, timeout_ms: int | None = None) -> None:
        """Restart this member's session timeout (or another ``timeout_ms``)."""
        member = self.members.get(member_id)
        if member is None:
            return
        if member.timer is not None:
            member.timer.cancel()
        member.timer = self.scheduler.call_later(
            member.session_timeout_ms if timeout_ms is None else timeout_ms,
            lambda: self._session_expired(member))

    def _session_expired(self, member: Member) -> None:
        if self.members.get(member.member_id) is not member:
            return
        if not member.is_new and (member.join_callback is not None
                                  or member.sync_callback is not None):
            self.heartbeat_member(member.member_id)  # waiting on us: alive
            return
        reason = "new member join timeout" if member.is_new else "session timeout"
        log.info("member_session_expired", group_id=self.group_id, member_id=member.member_id,
                 reason=reason)
        self._remove_member(member, reason)

    def _answer_join(self, member: Member, result: JoinResult) -> None:
        """Answer a waiting JoinGroup; the member's session starts again from the answer."""
        callback, member.join_callback = member.join_callback, None
        callback(result)
        self.heartbeat_member(member.member_id)

    def _answer_sync(self, member: Member, result: SyncResult) -> None:
        """Answer a waiting SyncGroup; the member's session starts again from the answer."""
        callback, member.sync_callback = member.sync_callback, None
        callback(result)
        self.heartbeat_member(member.member_id)

    def _expect_syncs(self) -> None:
        """Every member just answered owes a SyncGroup within the rebalance timeout."""
        self.pending_sync = set(self.members)
        generation = self.generation_id
        self._sync_timer = self.scheduler.call_later(
            self._rebalance_timeout_ms(), lambda: self._pending_sync_expired(generation))

    def _cancel_pending_sync(self) -> None:
        self.pending_sync.clear()
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None

    def _pending_sync_expired(self, generation_id: int) -> None:
        self._sync_timer = None
        if generation_id != self.generation_id or self.state not in (
                GroupState.COMPLETING_REBALANCE, GroupState.STABLE) or not self.pending_sync:
            return
        missing = sorted(self.pending_sync)
        self.pending_sync.clear()
        for member_id in missing:
            member = self.members.get(member_id)
            if member is not None:
                self._remove_member(member, "sent no SyncGroup in the rebalance timeout",
                                    update=False)
        self.prepare_rebalance(f"members {missing} sent no SyncGroup in time")

    def cancel_timers(self) -> None:
        for m in self.members.values():
            if m.timer is not None:
                m.timer.cancel()
        for t in self.pending_members.values():
            t.cancel()
        if self._join_timer is not None:
            self._join_timer.cancel()
        self._cancel_pending_sync()

    # -- JoinGroup ------------------------------------------------------------------
    def join(self, *, member_id: str, group_instance_id: str | None, client_id: str,
             client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int,
             protocol_type: str, protocols: list[tuple[str, bytes]],
             require_known_member_id: bool, supports_skip_assignment: bool,
             callback: Callable[[JoinResult], None]) -> None:
        """Handle a JoinGroup; ``callback`` gets the result now or when the rebalance completes."""
        if not (self.config.min_session_timeout_ms <= session_timeout_ms
                <= self.config.max_session_timeout_ms):
            callback(JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id))
            return
        if self.state == GroupState.DEAD:
            callback(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id))
            return
        if not self.supports_protocols(protocol_type, protocols):
            callback(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
            return
        # In Member's field order: the first six are its constructor's.
        args = (client_id, client_host, rebalance_timeout_ms, session_timeout_ms, protocol_type,
                protocols, supports_skip_assignment)
        if not member_id:
            self._join_unknown(group_instance_id, require_known_member_id, args, callback)
        else:
            self._join_known(member_id, group_instance_id, args, callback)

    def _is_full(self) -> bool:
        return len(self.members) + len(self.pending_members) >= self.config.max_size

    def _join_unknown(self, group_instance_id, require_known_member_id, args, callback) -> None:
        client_id = args[0]
        new_id = f"{client_id}-{uuid.uuid4()}"
        if group_instance_id is not None:
            old_id = self.static_members.get(group_instance_id)
            if old_id is not None:
                self._replace_static_member(group_instance_id, old_id, new_id, args, callback)
                return
        if self._is_full():
            callback(JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED))
            return
        if group_instance_id is None and require_known_member_id:
            # KIP-394: hand out the id first; the member counts as pending until it rejoins.
            self.pending_members[new_id] = self.scheduler.call_later(
                args[3], lambda: self._pending_expired(new_id))
            callback(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_id))
            return
        self._add_member_and_rebalance(new_id, group_instance_id, args, callback)

    def _pending_expired(self, member_id: str) -> None:
        if self.pending_members.pop(member_id, None) is not None:
            self._maybe_complete_join()

    def _join_known(self, member_id, group_instance_id, args, callback) -> None:
        if member_id in self.pending_members:
            self.pending_members.pop(member_id).cancel()
            self._add_member_and_rebalance(member_id, group_instance_id, args, callback)
            return
        error = self.check_member(member_id, group_instance_id)
        if error:
            callback(JoinResult(error, member_id))
            return
        member = self.members[member_id]
        if self.state == GroupState.PREPARING_REBALANCE:
            self._update_member(member, args, callback)
            self._maybe_complete_join()
        elif self.state == GroupState.COMPLETING_REBALANCE:
            if member.protocols == args[5]:
                # The join response was lost: answer it again.
                callback(self._join_result(member))
            else:
                self._update_member(member, args, callback)
                self.prepare_rebalance(f"member {member_id} changed its protocols")
        elif self.state == GroupState.STABLE:
            if member_id == self.leader_id or member.protocols != args[5]:
                self._update_member(member, args, callback)
                self.prepare_rebalance(f"leader or changed member {member_id} rejoined")
            else:
                callback(self._join_result(member))
        else:  # Empty: no such member
            callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))

    def _update_member(self, member: Member, args, callback) -> None:
        (member.client_id, member.client_host, member.rebalance_timeout_ms,
         member.session_timeout_ms, member.protocol_type, member.protocols,
         member.supports_skip_assignment) = args
        member.join_callback = callback

    def _add_member_and_rebalance(self, member_id, group_instance_id, args, callback) -> None:
        member = Member(member_id, group_instance_id, *args[:6],
                        supports_skip_assignment=args[6], join_callback=callback)
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member_id] = member
        if group_instance_id is not None:
            self.static_members[group_instance_id] = member_id
        if self.leader_id is None:
            self.leader_id = member_id
        self._new_member_joined = True
        # A new member has no id to heartbeat with until answered, and a client that gave
        # up on this JoinGroup rejoins under a new id: bound the wait (Kafka's rule).
        member.is_new = True
        self.heartbeat_member(member_id, self.config.new_member_join_timeout_ms)
        if self.state == GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join()
        else:
            self.prepare_rebalance(f"member {member_id} joined")

    def _replace_static_member(self, group_instance_id, old_id, new_id, args, callback) -> None:
        """A static member restarted: the new member id takes the old one's place."""
        old = self.members.pop(old_id)
        if old.timer is not None:
            old.timer.cancel()
        fenced = (old.join_callback, old.sync_callback)
        old.join_callback = old.sync_callback = None
        if fenced[0] is not None:
            fenced[0](JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
        if fenced[1] is not None:
            fenced[1](SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        protocols_changed = old.protocols != args[5]
        member = Member(new_id, group_instance_id, *args[:6], assignment=old.assignment,
                        supports_skip_assignment=args[6])
        self.members[new_id] = member
        self.static_members[group_instance_id] = new_id
        if old_id in self.pending_sync:  # the SyncGroup it owed comes under the new id
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        if self.leader_id == old_id:
            self.leader_id = new_id
        self.heartbeat_member(new_id)
        log.info("static_member_replaced", group_id=self.group_id, group_instance_id=group_instance_id,
                 old_member_id=old_id, member_id=new_id, state=self.state.value)
        if self.state == GroupState.STABLE and not protocols_changed:
            def stored(error: ErrorCode) -> None:
                if error:
                    callback(JoinResult(error, new_id))
                    return
                result = self._join_result(member)
                if new_id == self.leader_id:
                    # KIP-814 (as Kafka does): the old leader id tells a pre-v9 leader it is
                    # not the leader, and v9 says skip_assignment; either way the Stable
                    # group's assignment stays, and nobody else rebalances.
                    result.leader_id = old_id
                    result.skip_assignment = member.supports_skip_assignment
                callback(result)
            self.persist(self, None, stored)
        elif self.state == GroupState.PREPARING_REBALANCE:
            member.join_callback = callback
            self._maybe_complete_join()
        else:
            # Changed protocols, or a rebalance under way: rebalance so everyone agrees.
            member.join_callback = callback
            self.prepare_rebalance(f"static member {group_instance_id} rejoined")

    def _join_result(self, member: Member) -> JoinResult:
        is_leader = member.member_id == self.leader_id
        members = ([(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                    for m in self.members.values()] if is_leader else [])
        return JoinResult(ErrorCode.NONE, member.member_id, self.generation_id,
                          self.protocol_type, self.protocol_name, self.leader_id or "", members)

    # -- rebalance ------------------------------------------------------------------
    def prepare_rebalance(self, reason: str) -> None:
        if self.state == GroupState.COMPLETING_REBALANCE:
            self._fail_pending_syncs(ErrorCode.REBALANCE_IN_PROGRESS)
        self._cancel_pending_sync()
        initial = self.state == GroupState.EMPTY and self.config.initial_rebalance_delay_ms > 0
        log.info("rebalance", group_id=self.group_id, reason=reason, generation_id=self.generation_id)
        self._transition(GroupState.PREPARING_REBALANCE)
        if self._join_timer is not None:
            self._join_timer.cancel()
        self._new_member_joined = False
        self._in_initial_delay = initial
        if initial:
            delay = self.config.initial_rebalance_delay_ms
            self._initial_delay_left_ms = max(self._rebalance_timeout_ms() - delay, 0)
            self._join_timer = self.scheduler.call_later(delay, self._initial_delay_expired)
        else:
            self._join_timer = self.scheduler.call_later(self._rebalance_timeout_ms(),
                                                         self.complete_join)
            self._maybe_complete_join()

    def _initial_delay_expired(self) -> None:
        if self._new_member_joined and self._initial_delay_left_ms > 0:
            # Members are still arriving: wait once more, within the rebalance timeout.
            delay = min(self.config.initial_rebalance_delay_ms, self._initial_delay_left_ms)
            self._initial_delay_left_ms -= delay
            self._new_member_joined = False
            self._join_timer = self.scheduler.call_later(delay, self._initial_delay_expired)
        else:
            self._join_timer = None
            self._in_initial_delay = False
            self.complete_join()

    def _maybe_complete_join(self) -> None:
        if (self.state == GroupState.PREPARING_REBALANCE and self._all_joined()
                and self._join_timer is not None and not self._in_initial_delay):
            self.complete_join()

    def complete_join(self) -> None:
        """End the join phase: drop dynamic members that did not rejoin, start a generation."""
        if self.state != GroupState.PREPARING_REBALANCE:
            return
        if self._join_timer is not None:
            self._join_timer.cancel()
            self._join_timer = None
        self._in_initial_delay = False
        for m in [m for m in self.members.values()
                  if m.join_callback is None and m.group_instance_id is None]:
            log.info("member_not_rejoined", group_id=self.group_id, member_id=m.member_id)
            self._remove_member(m, "did not rejoin in time", update=False)
        self.generation_id += 1
        if not self.members:
            self.protocol_name = None
            self.leader_id = None
            self.subscribed = None
            self._transition(GroupState.EMPTY)
            self.persist(self, None, lambda error: None)
            return
        joined = [m for m in self.members.values() if m.join_callback is not None]
        if self.leader_id not in {m.member_id for m in joined} and joined:
            self.leader_id = joined[0].member_id
        self.protocol_name = self._select_protocol()
        self.subscribed = None
        if self.protocol_type == CONSUMER_PROTOCOL_TYPE:
            topics: set[str] = set()
            for m in self.members.values():
                t = subscribed_topics(m.metadata(self.protocol_name))
                if t is None:
                    topics = None
                    break
                topics |= t
            self.subscribed = topics
        self._transition(GroupState.COMPLETING_REBALANCE)
        for m in joined:
            m.is_new = False
            self._answer_join(m, self._join_result(m))
        self._expect_syncs()

    def _fail_pending_syncs(self, error: ErrorCode) -> None:
        for m in list(self.members.values()):
            m.assignment = b""
            if m.sync_callback is not None:
                self._answer_sync(m, SyncResult(error))

    # -- SyncGroup ------------------------------------------------------------------
    def sync(self, *, member_id: str, group_instance_id: str | None, generation_id: int,
             protocol_type: str | None, protocol_name: str | None,
             assignments: dict[str, bytes], callback: Callable[[SyncResult], None]) -> None:
        error = self.check_member(member_id, group_instance_id, generation_id)
        if not error and ((protocol_type is not None and protocol_type != self.protocol_type)
                          or (protocol_name is not None and protocol_name != self.protocol_name)):
            error = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if error:
            callback(SyncResult(error))
            return
        member = self.members[member_id]
        if self.state == GroupState.PREPARING_REBALANCE:
            callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        elif self.state == GroupState.STABLE:
            self.pending_sync.discard(member_id)
            self.heartbeat_member(member_id)
            callback(self._sync_result(member))
        elif self.state == GroupState.COMPLETING_REBALANCE:
            self.pending_sync.discard(member_id)
            member.sync_callback = callback
            self.heartbeat_member(member_id)
            if member_id == self.leader_id:
                assignment = {m: assignments.get(m, b"") for m in self.members}
                generation = self.generation_id
                self.persist(self, assignment,
                             lambda err: self._assignment_stored(generation, assignment, err))

    def _sync_result(self, member: Member) -> SyncResult:
        return SyncResult(ErrorCode.NONE, self.protocol_type, self.protocol_name, member.assignment)

    def _assignment_stored(self, generation_id: int, assignment: dict[str, bytes],
                           error: ErrorCode) -> None:
        if self.state != GroupState.COMPLETING_REBALANCE or self.generation_id != generation_id:
            return  # a newer rebalance already answered the waiting syncs
        if error:
            self._fail_pending_syncs(error)
            self.prepare_rebalance(f"storing the assignment failed: {error.name}")
            return
        for member_id, data in assignment.items():
            if member_id in self.members:
                self.members[member_id].assignment = data
        self._transition(GroupState.STABLE)
        for m in list(self.members.values()):
            if m.sync_callback is not None:
                self._answer_sync(m, self._sync_result(m))

    # -- Heartbeat ------------------------------------------------------------------
    def heartbeat(self, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> ErrorCode:
        error = self.check_member(member_id, group_instance_id, generation_id)
        if error:
            return error
        self.heartbeat_member(member_id)
        if self.state == GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    # -- LeaveGroup -----------------------------------------------------------------
    def leave(self, member_id: str, group_instance_id: str | None) -> ErrorCode:
        if self.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if not member_id and group_instance_id is not None:
            member_id = self.static_members.get(group_instance_id, "")  # KIP-345 admin removal
            if not member_id:
                return ErrorCode.UNKNOWN_MEMBER_ID
        elif group_instance_id is not None and self.static_members.get(group_instance_id) != member_id:
            return ErrorCode.FENCED_INSTANCE_ID
        if member_id in self.pending_members:
            self.pending_members.pop(member_id).cancel()
            self._maybe_complete_join()
            return ErrorCode.NONE
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        self._remove_member(member, "left the group")
        return ErrorCode.NONE

    def _remove_member(self, member: Member, reason: str, update: bool = True) -> None:
        self.members.pop(member.member_id, None)
        self.pending_sync.discard(member.member_id)
        if member.timer is not None:
            member.timer.cancel()
        if member.group_instance_id is not None and \
                self.static_members.get(member.group_instance_id) == member.member_id:
            del self.static_members[member.group_instance_id]
        if member.join_callback is not None:
            callback, member.join_callback = member.join_callback, None
            callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member.member_id))
        if member.sync_callback is not None:
            callback, member.sync_callback = member.sync_callback, None
            callback(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        if self.leader_id == member.member_id:
            self.leader_id = next(iter(self.members), None)
        log.info("member_removed", group_id=self.group_id, member_id=member.member_id, reason=reason)
        if not update:
            return
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self.prepare_rebalance(f"member {member.member_id} {reason}")
        elif self.state == GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join()

    # -- teardown -------------------------------------------------------------------
    def shut_down(self, error: ErrorCode) -> None:
        """This node no longer coordinates the group: answer every waiting request."""
        self.cancel_timers()
        for m in self.members.values():
            if m.join_callback is not None:
                callback, m.join_callback = m.join_callback, None
                callback(JoinResult(error, m.member_id))
            if m.sync_callback is not None:
                callback, m.sync_callback = m.sync_callback, None
                callback(SyncResult(error))

    def clear_members(self, error: ErrorCode) -> None:
        """No more classic members (the group became a consumer group, or its metadata was
        tombstoned): waiting requests get ``error``; the committed offsets stay."""
        self.shut_down(error)
        for t in self.pending_members.values():
            t.cancel()
        self.members, self.static_members, self.pending_members = {}, {}, {}
        self.pending_sync.clear()
        self.protocol_type = self.protocol_name = self.leader_id = None
        self.subscribed = None
        if self.state != GroupState.EMPTY:
            self._transition(GroupState.EMPTY)

    def take_members(self, generation_id: int, members: list[Member]) -> None:
        """Classic members of a consumer group whose last consumer-protocol member left
        (Kafka's ClassicGroup.fromConsumerGroup): Stable at the consumer group's epoch as
        the generation, the first member leader, the protocol every member supports; the
        caller sets their assignments, then ``start_session_timers`` and a rebalance."""
        self.clear_members(ErrorCode.REBALANCE_IN_PROGRESS)
        self.generation_id = generation_id
        self.protocol_type = CONSUMER_PROTOCOL_TYPE
        for m in members:
            self.members[m.member_id] = m
            if m.group_instance_id is not None:
                self.static_members[m.group_instance_id] = m.member_id
        self.leader_id = members[0].member_id if members else None
        self.protocol_name = self._select_protocol() if members else None
        self._transition(GroupState.STABLE if members else GroupState.EMPTY)

    def mark_dead(self) -> None:
        self.shut_down(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        self._transition(GroupState.DEAD)

    # -- expiry ---------------------------------------------------------------------
    def expired_offsets(self, now_ms: int, retention_ms: int) -> list[tuple[str, int]]:
        """Offsets past offsets.retention.minutes, by Kafka's rule (KIP-211): an empty
        group's from when it became empty; a standalone group's (no protocol) from each
        commit; a stable consumer group's only for topics it no longer subscribes to."""
        if self.state == GroupState.EMPTY and self.protocol_type:
            def base(o):
                return self.state_timestamp
            topics = None
        elif self.state == GroupState.EMPTY:
            def base(o):
                return o.commit_timestamp
            topics = None
        elif self.state == GroupState.STABLE and self.subscribed is not None:
            def base(o):
                return o.commit_timestamp
            topics = self.subscribed
        else:
            return []
        return [tp for tp, o in self.offsets.items()
                if (topics is None or tp[0] not in topics) and now_ms - base(o) >= retention_ms]

    # -- records --------------------------------------------------------------------
    def to_record(self, assignment: dict[str, bytes] | None = None) -> GroupRecord:
        assignment = assignment or {}
        return GroupRecord(
            protocol_type=self.protocol_type or "", generation_id=self.generation_id,
            protocol_name=self.protocol_name, leader_id=self.leader_id,
            current_state_timestamp=self.state_timestamp,
            members=[MemberRecord(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                  m.rebalance_timeout_ms, m.session_timeout_ms,
                                  m.metadata(self.protocol_name or ""),
                                  assignment.get(m.member_id, m.assignment))
                     for m in self.members.values()])

    def load_record(self, g: GroupRecord) -> None:
        """Take the stored state (loading the partition); members get fresh session timers."""
        self.cancel_timers()
        self.protocol_type = g.protocol_type or None
        self.generation_id = g.generation_id
        self.protocol_name = g.protocol_name
        self.leader_id = g.leader_id
        self.members = {}
        self.static_members = {}
        for m in g.members:
            self.members[m.member_id] = Member(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                m.rebalance_timeout_ms, m.session_timeout_ms, g.protocol_type,
                [(g.protocol_name or "", m.subscription)], m.assignment)
            if m.group_instance_id is not None:
                self.static_members[m.group_instance_id] = m.member_id
        self.state = GroupState.STABLE if self.members else GroupState.EMPTY
        if g.current_state_timestamp >= 0:
            self.state_timestamp = g.current_state_timestamp

    def start_session_timers(self) -> None:
        for member_id in self.members:
            self.heartbeat_member(member_id)

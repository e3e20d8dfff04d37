"""One consumer-protocol group (KIP-848): member epochs, server-side target assignment,
incremental reconciliation. A pure state machine: time and timers come from the same
``Scheduler`` as the classic groups, and the coordinator passes in the topics.

Epochs: the group epoch goes up whenever what the assignment depends on changes (a
member joins or leaves, a subscription or the assignor changes, a subscribed topic
appears, disappears or grows); the target assignment is then recomputed at that epoch
(the assignment epoch). Each member then moves towards its target one heartbeat at a
time (``reconcile``, Kafka's CurrentAssignmentBuilder):

- it keeps what it has of its target; partitions it has that are not in its target
  are to be revoked: it stays at its epoch, in UNREVOKED_PARTITIONS, and is sent only
  what it keeps, until a heartbeat's owned partitions show it let them go (at once if
  the request that brings the new target already shows that);
- only then does it move to the assignment epoch and get the new partitions, and
  only those no other member still holds (partition epochs track who holds what); the
  others wait (UNRELEASED_PARTITIONS) and are given on a later heartbeat once released.
So no partition is ever held by two members.

Timers: a member that sends no heartbeat for the session timeout is removed; one that
keeps partitions it was asked to revoke past its rebalance timeout is removed too
(its partitions are then free). A static member (instance id) that leaves with epoch -2
keeps its place and partitions for the session timeout, so its next incarnation takes
them back with no rebalance; a second live member with the same instance id is refused
(UNRELEASED_INSTANCE_ID).

Classic members (online migration, Kafka 3.8+'s group.consumer.migration.policy): when a
consumer-protocol member joins a classic group that has members, the group becomes a
consumer group (``from_classic``): each classic member keeps its assignment at the
classic generation as its epoch, and goes on speaking JoinGroup/SyncGroup/Heartbeat/
LeaveGroup (``classic_join`` ...). It is reconciled like any member, but only when it
rejoins: a JoinGroup carries its owned partitions (none for an eager client, which
revoked them all first), SyncGroup hands it its assigned partitions as a
ConsumerProtocolAssignment, and a Heartbeat answers REBALANCE_IN_PROGRESS while it has
partitions to give up, its epoch is behind the group's, or partitions it waits for were
released. So a rolling upgrade never has two members holding one partition. The way
back: when the last consumer-protocol member leaves or is fenced and classic members
remain, the policy permitting, the group is marked ``downgrade`` (its epoch unchanged)
and the coordinator hands its members to a classic group (``to_classic``), which
rebalances.

Error answers follow Kafka's GroupMetadataManager: FENCED_MEMBER_EPOCH for an epoch
ahead of the member's, or behind it except for the previous epoch with owned
partitions within the current assignment (the answer that bumped it was lost);
UNKNOWN_MEMBER_ID; GROUP_MAX_SIZE_REACHED; the request checks of ``validate``.
"""

import base64
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import structlog
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

from odradek.broker.groups import assignors as asg
from odradek.broker.groups import consumer_group_records as rec
from odradek.broker.groups.assignors import Assignment
from odradek.broker.groups.group import Group, JoinResult, Member, Scheduler, TimerHandle
from odradek.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
CONSUMER_PROTOCOL_TYPE = "consumer"


class ConsumerGroupState(Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


class MemberState(Enum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


# Kafka's MemberState codes in ConsumerGroupCurrentMemberAssignmentValue.State.
STATE_CODES = {MemberState.UNREVOKED_PARTITIONS: 0, MemberState.UNRELEASED_PARTITIONS: 1,
               MemberState.STABLE: 2}
STATES_BY_CODE = {v: k for k, v in STATE_CODES.items()}


@dataclass(frozen=True, slots=True)
class ConsumerGroupConfig:
    session_timeout_ms: int = 45000  # group.consumer.session.timeout.ms
    heartbeat_interval_ms: int = 5000  # group.consumer.heartbeat.interval.ms
    max_size: int = 2**31 - 1  # group.consumer.max.size
    assignors: tuple[str, ...] = (asg.UNIFORM, asg.RANGE)  # group.consumer.assignors
    migration_policy: str = "bidirectional"  # group.consumer.migration.policy
    classic_max_size: int = 2**31 - 1  # group.max.size: a downgraded group must fit in it

    @property
    def upgrade_enabled(self) -> bool:
        return self.migration_policy in ("bidirectional", "upgrade")

    @property
    def downgrade_enabled(self) -> bool:
        return self.migration_policy in ("bidirectional", "downgrade")


@dataclass(frozen=True, slots=True)
class TopicInfo:
    topic_id: uuid.UUID
    partitions: int
    racks: tuple[frozenset[str], ...] = ()  # each partition's replica racks (none: no broker.rack)


class Topics:
    """What the assignment needs of the metadata image: names, ids, partition counts."""

    def __init__(self, topics: Mapping[str, TopicInfo]):
        self.by_name = topics
        self.names = {t.topic_id: n for n, t in topics.items()}


@dataclass(frozen=True, slots=True)
class ClassicMetadata:
    """A member speaking the classic protocol inside a consumer group (Kafka's
    ConsumerGroupMemberMetadataValue.ClassicMemberMetadata): its own session timeout and
    its JoinGroup protocols (name, ConsumerProtocolSubscription bytes), preferred first."""
    session_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]


@dataclass(slots=True)
class Heartbeat:
    """A ConsumerGroupHeartbeat's fields (None: unchanged since the last heartbeat)."""
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: list[str] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: Assignment | None = None
    client_id: str = ""
    client_host: str = ""


@dataclass(slots=True)
class HeartbeatResult:
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    assignment: Assignment | None = None  # None: unchanged, not sent

    @classmethod
    def fenced(cls, group_type: str, sent: int, known: int, previous: int | None = None) -> "HeartbeatResult":
        """FENCED_MEMBER_EPOCH in Kafka's words, for a consumer or a share group member (a
        share member's smaller epoch may be its ``previous`` one, which Kafka names)."""
        which = "greater" if sent > known else "smaller"
        also = f", and it does not match the previous member epoch ({previous})" \
            if previous is not None and sent < known else ""
        return cls(ErrorCode.FENCED_MEMBER_EPOCH,
                   f"The {group_type} group member has a {which} member epoch ({sent}) than the one "
                   f"known by the group coordinator ({known}){also}. The member must abandon all its "
                   "partitions and rejoin.")


@dataclass(eq=False, slots=True)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    session_timer: TimerHandle | None = None
    rebalance_timer: TimerHandle | None = None
    rebalance_timer_epoch: int = -1
    classic: ClassicMetadata | None = None  # None: speaks ConsumerGroupHeartbeat
    # A classic member's: SyncGroup due after its JoinGroup, JoinGroup due after it was
    # asked to rejoin (each within its rebalance timeout, else it is fenced, as Kafka).
    sync_timer: TimerHandle | None = None
    join_timer: TimerHandle | None = None


@dataclass(frozen=True, slots=True)
class Reconciled:
    state: MemberState
    member_epoch: int
    previous_member_epoch: int
    assigned: Assignment
    pending_revocation: Assignment


def _metadata(m: ConsumerMember) -> tuple:
    """What ConsumerGroupMemberMetadataValue holds of a member."""
    return (m.instance_id, m.rack_id, m.client_id, m.client_host, m.subscribed_topic_names,
            m.subscribed_topic_regex, m.rebalance_timeout_ms, m.server_assignor, m.classic)


def _classic_record(classic: ClassicMetadata | None):
    if classic is None:
        return None
    cls = rec.ConsumerGroupMemberMetadataValue.fields["classic_member_metadata"].data_class
    protocol = cls.fields["supported_protocols"].data_class
    return cls(session_timeout_ms=classic.session_timeout_ms,
               supported_protocols=[protocol(name=n, metadata=m) for n, m in classic.protocols])


def decode_subscription(metadata: bytes, topics: "Topics"
                        ) -> tuple[list[str], Assignment, str | None] | None:
    """(topics, owned partitions by topic id, rack) of a ConsumerProtocolSubscription (the
    metadata of a classic consumer's JoinGroup protocol); None if unreadable."""
    try:
        sub = ConsumerProtocolSubscription.decode(bytes(metadata))
    except Exception:  # kafka-python's codec: struct.error, ValueError, EOFError...
        return None
    owned: dict[uuid.UUID, frozenset[int]] = {}
    for tp in getattr(sub, "owned_partitions", None) or ():
        info = topics.by_name.get(tp.topic)
        if info is not None:
            owned[info.topic_id] = owned.get(info.topic_id, frozenset()) | frozenset(tp.partitions)
    return list(sub.topics or ()), owned, getattr(sub, "rack_id", None) or None


def encode_assignment(assigned: Assignment, topics: "Topics", version: int) -> bytes:
    """A ConsumerProtocolAssignment of these partitions, in the version of the member's
    subscription (at most the codec's)."""
    tp = ConsumerProtocolAssignment.fields["assigned_partitions"].data_class
    parts = [tp(topic=topics.names[t], partitions=sorted(ps)) for t, ps in sorted(assigned.items())
             if t in topics.names]
    version = max(0, min(version, ConsumerProtocolAssignment.max_version))
    return bytes(ConsumerProtocolAssignment(assigned_partitions=parts, user_data=None).encode(version=version))


def _version(subscription: bytes) -> int:
    """The version of a ConsumerProtocolSubscription (its first two bytes)."""
    return int.from_bytes(subscription[:2], "big", signed=True) if len(subscription) >= 2 else 0


def decode_assignment(data: bytes, topics: "Topics") -> Assignment:
    """The partitions of a classic member's ConsumerProtocolAssignment ({} if unreadable)."""
    if len(data) < 2:
        return {}
    try:
        decoded = ConsumerProtocolAssignment.decode(bytes(data))
    except Exception:  # kafka-python's codec errors, as above
        return {}
    out: dict[uuid.UUID, frozenset[int]] = {}
    for tp in decoded.assigned_partitions or ():
        info = topics.by_name.get(tp.topic)
        if info is not None:
            out[info.topic_id] = out.get(info.topic_id, frozenset()) | frozenset(tp.partitions)
    return out


def _cancelled(timer: TimerHandle | None) -> None:
    """Cancel a timer if there is one; None, to clear the field holding it."""
    if timer is not None:
        timer.cancel()
    return None


def _owns_any(owned: Assignment | None, partitions: Assignment) -> bool:
    if owned is None:
        return True  # it did not say: assume it still holds them
    return any(owned.get(t, frozenset()) & ps for t, ps in partitions.items())


def _is_subset(owned: Assignment | None, assigned: Assignment) -> bool:
    if owned is None:
        return False
    return all(ps <= assigned.get(t, frozenset()) for t, ps in owned.items())


def reconcile(member: ConsumerMember, target_epoch: int, target: Assignment, owned: Assignment | None,
              partition_owner_epoch: Callable[[uuid.UUID, int], int]) -> Reconciled:
    """The member's next state towards its target (Kafka's CurrentAssignmentBuilder).
    ``partition_owner_epoch`` gives the epoch of the member holding a partition, -1 if free."""
    same = Reconciled(member.state, member.member_epoch, member.previous_member_epoch,
                      member.assigned, member.pending_revocation)
    if member.state == MemberState.STABLE and member.member_epoch == target_epoch:
        return same
    if member.state == MemberState.UNREVOKED_PARTITIONS:
        if _owns_any(owned, member.pending_revocation):
            return same
        epoch = min(member.member_epoch + 1, target_epoch)
    else:
        epoch = member.member_epoch
    return _next_assignment(member, epoch, target_epoch, target, owned, partition_owner_epoch)


def _next_assignment(member: ConsumerMember, epoch: int, target_epoch: int, target: Assignment,
                     owned: Assignment | None,
                     partition_owner_epoch: Callable[[uuid.UUID, int], int]) -> Reconciled:
    unreleased = False
    kept: dict[uuid.UUID, frozenset[int]] = {}
    revoking: dict[uuid.UUID, frozenset[int]] = {}
    adding: dict[uuid.UUID, frozenset[int]] = {}
    for topic_id in set(target) | set(member.assigned):
        wanted = target.get(topic_id, frozenset())
        current = member.assigned.get(topic_id, frozenset())
        keep = current & wanted
        new = wanted - keep
        free = frozenset(p for p in new if partition_owner_epoch(topic_id, p) == -1)
        unreleased = unreleased or free != new
        if keep:
            kept[topic_id] = keep
        if current - keep:
            revoking[topic_id] = current - keep
        if free:
            adding[topic_id] = free
    if revoking and _owns_any(owned, revoking):
        # Revoke first: the member stays at its epoch and is sent only what it keeps. (A
        # member whose request shows it holds none of them already let them go, as an
        # eager classic member rejoining: as Kafka, it moves on at once.)
        return Reconciled(MemberState.UNREVOKED_PARTITIONS, epoch, member.previous_member_epoch
                          if epoch == member.member_epoch else member.member_epoch, kept, revoking)
    assigned = dict(kept)
    for topic_id, ps in adding.items():
        assigned[topic_id] = assigned.get(topic_id, frozenset()) | ps
    state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
    previous = member.member_epoch if target_epoch != member.member_epoch else member.previous_member_epoch
    return Reconciled(state, target_epoch, previous, assigned, {})


def validate(hb: Heartbeat, group_id: str, version: int, assignors: tuple[str, ...],
             compile_regex: Callable[[str], object]) -> tuple[ErrorCode, str | None]:
    """Kafka's checks of a heartbeat before any group state is read."""
    bad = ErrorCode.INVALID_REQUEST
    if not group_id:
        return bad, "GroupId can't be empty."
    if (version >= 1 or hb.member_epoch > 0) and not hb.member_id:
        return bad, "MemberId can't be empty."
    if hb.instance_id == "":
        return bad, "InstanceId can't be empty."
    if hb.rack_id == "":
        return bad, "RackId can't be empty."
    if hb.member_epoch == 0:
        if hb.rebalance_timeout_ms == -1:
            return bad, "RebalanceTimeoutMs must be provided in first request."
        if hb.owned is None or any(hb.owned.values()):
            return bad, "TopicPartitions must be empty when (re-)joining."
        if hb.subscribed_topic_names is None and hb.subscribed_topic_regex is None:
            return bad, ("Either SubscribedTopicNames or SubscribedTopicRegex must be non-null "
                         "when (re-)joining.")
    elif hb.member_epoch == STATIC_LEAVE_EPOCH:
        if hb.instance_id is None:
            return bad, "InstanceId can't be null."
    elif hb.member_epoch < STATIC_LEAVE_EPOCH:
        return bad, "MemberEpoch is invalid."
    if hb.server_assignor is not None and hb.server_assignor not in assignors:
        return (ErrorCode.UNSUPPORTED_ASSIGNOR,
                f"ServerAssignor {hb.server_assignor} is not supported. Supported assignors: "
                f"{', '.join(assignors)}.")
    if hb.subscribed_topic_regex:
        try:
            compile_regex(hb.subscribed_topic_regex)
        except Exception as e:  # the regex engine's own error type
            return (ErrorCode.INVALID_REGULAR_EXPRESSION,
                    f"SubscribedTopicRegex `{hb.subscribed_topic_regex}` is not a valid regular "
                    f"expression: {e}.")
    return ErrorCode.NONE, None


class ConsumerGroup(rec.GroupRecords):
    def __init__(self, group_id: str, config: ConsumerGroupConfig, scheduler: Scheduler,
                 regex_matcher: Callable[[str, list[str]], set[str]]):
        self.group_id = group_id
        self.config = config
        self.scheduler = scheduler
        self.regex_matcher = regex_matcher
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.target: dict[str, Assignment] = {}
        self.members: dict[str, ConsumerMember] = {}
        self.static_members: dict[str, str] = {}  # instance id -> member id
        self.partition_epochs: dict[tuple[uuid.UUID, int], int] = {}
        self.subscribed: dict[str, TopicInfo] = {}  # the subscribed topics at group_epoch
        self.assignor = config.assignors[0]
        self.dead = False
        # The last consumer-protocol member left (or a classic static member replaced it) and
        # the rest are classic members: the coordinator makes the group classic again
        # (``to_classic``), as Kafka's convertToClassicGroup; no record of this group is
        # taken after that. A departure makes the classic group rebalance, a replacement not.
        self.downgrade = False
        self.downgrade_rebalances = True
        self._init_records()  # what changed since the records were last taken
        self.on_change: Callable[[], None] | None = None  # changes made by timers
        self._subscriptions = 0  # counts subscription changes, for the cache below
        self._subscribed_for: tuple[Topics, int] | None = None  # what ``subscribed`` was computed from

    # -- views ----------------------------------------------------------------------
    @property
    def state(self) -> ConsumerGroupState:
        if self.dead:
            return ConsumerGroupState.DEAD
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.assignment_epoch != self.group_epoch:
            return ConsumerGroupState.ASSIGNING
        if any(m.member_epoch != self.assignment_epoch or m.state != MemberState.STABLE
               for m in self.members.values()):
            return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def subscribed_topic_names(self) -> set[str]:
        return set(self.subscribed)

    def _member_topics(self, member: ConsumerMember, topics: Topics) -> set[str]:
        names = {n for n in member.subscribed_topic_names if n in topics.by_name}
        if member.subscribed_topic_regex:
            names |= self.regex_matcher(member.subscribed_topic_regex, list(topics.by_name))
        return names

    # -- the heartbeat ----------------------------------------------------------------
    def heartbeat(self, hb: Heartbeat, topics: Topics) -> HeartbeatResult:
        if hb.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(hb)
        member = self.members.get(hb.member_id)
        created = False
        if hb.member_epoch == 0:
            if member is None:
                error, member = self._new_member(hb)
                if member is None:
                    return error
                created = member.member_epoch == 0  # not a static member's replacement
            elif member.member_epoch == STATIC_LEAVE_EPOCH:
                member.member_epoch = member.previous_member_epoch  # back before it expired
        else:
            if member is None:
                return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID,
                                       f"Member {hb.member_id} is not a member of group {self.group_id}.")
            if not self._epoch_valid(member, hb):
                return HeartbeatResult.fenced("consumer", hb.member_epoch, member.member_epoch)
        before = (member.assigned, member.member_epoch)
        self._advance(member, hb, topics, created)
        full = hb.member_epoch == 0 or (
            hb.rebalance_timeout_ms != -1 and hb.owned is not None and (
                hb.subscribed_topic_names is not None or hb.subscribed_topic_regex is not None))
        send = full or before[0] != member.assigned
        return HeartbeatResult(ErrorCode.NONE, None, member.member_id, member.member_epoch,
                               dict(member.assigned) if send else None)

    def _advance(self, member: ConsumerMember, hb: Heartbeat, topics: Topics, created: bool,
                 classic: ClassicMetadata | None = None) -> None:
        """Apply a member's request (a heartbeat, or a classic member's JoinGroup): its
        subscription, the group epoch and target assignment, its reconciliation, its timers."""
        before = _metadata(member)
        changed = self._update_member(member, hb) or created
        if classic is not None:
            member.classic = classic
        if created or _metadata(member) != before:
            self.dirty_metadata.add(member.member_id)
        if changed:
            self._subscriptions += 1
        # The subscribed topics are recomputed only when the topics or a subscription moved:
        # every member heartbeats, and a regex is matched against every topic.
        if self._subscribed_for is None or self._subscribed_for[0] is not topics \
                or self._subscribed_for[1] != self._subscriptions:
            subscribed = {n: topics.by_name[n] for m in self.members.values()
                          for n in self._member_topics(m, topics)}
            self._subscribed_for = (topics, self._subscriptions)
            changed = changed or subscribed != self.subscribed
            self.subscribed = subscribed
        if changed:
            self.group_epoch += 1
            self.dirty_group = True
        if self.assignment_epoch < self.group_epoch:
            self._compute_target(topics)
        self._reconcile(member, hb.owned)
        self._schedule(member)

    # -- classic members (online migration) -------------------------------------------------
    @classmethod
    def from_classic(cls, group_id: str, config: "ConsumerGroupConfig", scheduler: Scheduler,
                     regex_matcher: Callable[[str, list[str]], set[str]], generation_id: int,
                     protocol_name: str, members: list, topics: Topics) -> "ConsumerGroup":
        """A classic group's members as consumer-group members (Kafka's
        ConsumerGroup.fromClassicGroup): each keeps its last assignment as its current and
        target assignment, at the generation as its epoch, Stable; ``members`` are the
        classic group's (group.Member). The records of all of it are dirty."""
        group = cls(group_id, config, scheduler, regex_matcher)
        group.group_epoch = group.assignment_epoch = generation_id
        group.dirty_group = True
        for m in members:
            sub = decode_subscription(m.metadata(protocol_name), topics)
            assigned = decode_assignment(m.assignment, topics)
            member = ConsumerMember(
                m.member_id, instance_id=m.group_instance_id, rack_id=sub[2] if sub else None,
                client_id=m.client_id, client_host=m.client_host,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                subscribed_topic_names=tuple(sorted(set(sub[0]))) if sub else (),
                member_epoch=generation_id, previous_member_epoch=generation_id,
                assigned=assigned, classic=ClassicMetadata(m.session_timeout_ms, tuple(m.protocols)))
            group.members[m.member_id] = member
            if m.group_instance_id is not None:
                group.static_members[m.group_instance_id] = m.member_id
            group.target[m.member_id] = assigned
            group._hold(member)
            group._schedule(member)
        group.dirty_metadata |= set(group.members)
        group.dirty_target |= set(group.members)
        group.dirty_current |= set(group.members)
        group._subscriptions += 1
        log.info("classic_group_converted_to_consumer", group_id=group_id, generation_id=generation_id,
                 members=len(group.members))
        return group

    def supports_classic(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Kafka's ConsumerGroup.supportsClassicProtocols: the consumer protocol type and a
        protocol every classic member has."""
        if protocol_type != CONSUMER_PROTOCOL_TYPE or not protocols:
            return False
        classic = [m.classic for m in self.members.values() if m.classic is not None]
        return not classic or any(all(name in {n for n, _ in c.protocols} for c in classic)
                                  for name, _ in protocols)

    def classic_join(self, member_id: str, instance_id: str | None, client_id: str, client_host: str,
                     session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str,
                     protocols: list[tuple[str, bytes]], require_known_member_id: bool,
                     topics: Topics) -> JoinResult:
        """A classic member's JoinGroup (Kafka's classicGroupJoinToConsumerGroup), answered at
        once: no leader, no member list (it assigns nothing); its generation is its member epoch."""
        unknown = not member_id
        if unknown:
            member_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        member = self.members.get(member_id)
        if member is None and (instance_id is None or instance_id not in self.static_members) \
                and len(self.members) >= self.config.max_size:
            return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, member_id)
        if not self.supports_classic(protocol_type, protocols):
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
        if unknown and instance_id is None and require_known_member_id:
            return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id)
        sub = decode_subscription(protocols[0][1], topics)
        if sub is None:
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
        created = False
        replaced: ConsumerMember | None = None
        if instance_id is not None and instance_id in self.static_members:
            old = self.members[self.static_members[instance_id]]
            if old.member_id != member_id:
                if not unknown:
                    return JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id)
                member = self._replace_static(old, member_id)
                replaced = old
        elif member is None:
            member = ConsumerMember(member_id)
            self.members[member_id] = member
            created = True
        assert member is not None
        names, owned, rack = sub
        hb = Heartbeat(member_id, member.member_epoch, instance_id=instance_id, rack_id=rack,
                       rebalance_timeout_ms=rebalance_timeout_ms, subscribed_topic_names=names,
                       owned=owned, client_id=client_id, client_host=client_host)
        self._advance(member, hb, topics, created, ClassicMetadata(session_timeout_ms, tuple(protocols)))
        if replaced is not None and replaced.classic is None and self._may_downgrade(None):
            # Kafka's validateOnlineDowngradeWithReplacedMemberId: it replaced the last
            # consumer-protocol member.
            self.downgrade, self.downgrade_rebalances = True, False
            log.info("consumer_group_static_member_replaced_by_classic", group_id=self.group_id,
                     member_id=member_id, downgrade=True)
        member.join_timer = _cancelled(member.join_timer)
        _cancelled(member.sync_timer)
        member.sync_timer = self.scheduler.call_later(
            max(rebalance_timeout_ms, 0), lambda: self._expire(member, "no SyncGroup within the rebalance timeout"))
        return JoinResult(ErrorCode.NONE, member_id, member.member_epoch, CONSUMER_PROTOCOL_TYPE, protocols[0][0])

    def _classic_member(self, member_id: str, instance_id: str | None,
                        generation_id: int | None) -> tuple[ErrorCode, ConsumerMember | None]:
        """Kafka's checks of a classic member's SyncGroup / Heartbeat / LeaveGroup."""
        if instance_id is not None:
            known = self.static_members.get(instance_id)
            if known is None:
                return ErrorCode.UNKNOWN_MEMBER_ID, None
            if member_id and known != member_id:
                return ErrorCode.FENCED_INSTANCE_ID, None
            member_id = known
        member = self.members.get(member_id)
        if member is None or member.classic is None:
            return ErrorCode.UNKNOWN_MEMBER_ID, None
        if generation_id is not None and generation_id != member.member_epoch:
            return ErrorCode.ILLEGAL_GENERATION, None
        return ErrorCode.NONE, member

    def classic_sync(self, member_id: str, instance_id: str | None, generation_id: int,
                     protocol_type: str | None, protocol_name: str | None,
                     topics: Topics) -> tuple[ErrorCode, bytes]:
        """(error, the member's ConsumerProtocolAssignment) for its SyncGroup."""
        error, member = self._classic_member(member_id, instance_id, generation_id)
        if member is None or member.classic is None:
            return error, b""
        if (protocol_type is not None and protocol_type != CONSUMER_PROTOCOL_TYPE) or (
                protocol_name is not None and protocol_name != member.classic.protocols[0][0]):
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL, b""
        if self.group_epoch > member.member_epoch and member.state != MemberState.UNREVOKED_PARTITIONS:
            return ErrorCode.REBALANCE_IN_PROGRESS, b""
        self._schedule(member)
        member.sync_timer = _cancelled(member.sync_timer)
        return ErrorCode.NONE, encode_assignment(member.assigned, topics, _version(member.classic.protocols[0][1]))

    def classic_heartbeat(self, member_id: str, instance_id: str | None, generation_id: int) -> ErrorCode:
        """REBALANCE_IN_PROGRESS asks the member to rejoin: its epoch is behind the group's,
        it has partitions to give up, or partitions it waits for are free now."""
        error, member = self._classic_member(member_id, instance_id, generation_id)
        if member is None:
            return error
        self._schedule(member)
        if member.member_epoch < self.group_epoch or member.state == MemberState.UNREVOKED_PARTITIONS or (
                member.state == MemberState.UNRELEASED_PARTITIONS and not self._waits_on_unreleased(member)):
            if member.join_timer is None:
                member.join_timer = self.scheduler.call_later(
                    max(member.rebalance_timeout_ms, 0),
                    lambda: self._expire(member, "no JoinGroup within the rebalance timeout"))
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def _waits_on_unreleased(self, member: ConsumerMember) -> bool:
        target = self.target.get(member.member_id, {})
        return any(p not in member.assigned.get(t, frozenset()) and self._partition_owner_epoch(t, p) != -1
                   for t, ps in target.items() for p in ps)

    def classic_leave(self, member_id: str, instance_id: str | None) -> ErrorCode:
        error, member = self._classic_member(member_id, instance_id, None)
        if member is None:
            return error
        self._leave_group(member, "left (LeaveGroup)")
        return ErrorCode.NONE

    def _epoch_valid(self, member: ConsumerMember, hb: Heartbeat) -> bool:
        if hb.member_epoch > member.member_epoch:
            return False
        if hb.member_epoch < member.member_epoch:
            return (hb.member_epoch == member.previous_member_epoch
                    and _is_subset(hb.owned, member.assigned))
        return True

    def _new_member(self, hb: Heartbeat) -> tuple[HeartbeatResult, ConsumerMember | None]:
        # v0: the coordinator names it, as Kafka's Uuid.toString: URL-safe base64, no padding.
        member_id = hb.member_id or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if hb.instance_id is not None and hb.instance_id in self.static_members:
            old = self.members[self.static_members[hb.instance_id]]
            if old.member_epoch != STATIC_LEAVE_EPOCH:
                return HeartbeatResult(
                    ErrorCode.UNRELEASED_INSTANCE_ID,
                    f"Static member {member_id} with instance id {hb.instance_id} cannot join the group "
                    f"because the instance id is owned by {old.member_id} member."), None
            return HeartbeatResult(ErrorCode.NONE), self._replace_static(old, member_id)
        if len(self.members) >= self.config.max_size:
            return HeartbeatResult(ErrorCode.GROUP_MAX_SIZE_REACHED,
                                   f"The consumer group has reached its maximum capacity of "
                                   f"{self.config.max_size} members."), None
        member = ConsumerMember(member_id)
        self.members[member_id] = member
        return HeartbeatResult(ErrorCode.NONE), member

    def _replace_static(self, old: ConsumerMember, member_id: str) -> ConsumerMember:
        """The new incarnation takes the old one's place, epoch and partitions, no rebalance."""
        self._cancel_timers(old)
        del self.members[old.member_id]
        member = ConsumerMember(member_id, instance_id=old.instance_id, rack_id=old.rack_id,
                                rebalance_timeout_ms=old.rebalance_timeout_ms,
                                subscribed_topic_names=old.subscribed_topic_names,
                                subscribed_topic_regex=old.subscribed_topic_regex,
                                server_assignor=old.server_assignor,
                                member_epoch=old.previous_member_epoch, state=old.state,
                                previous_member_epoch=old.previous_member_epoch,
                                assigned=old.assigned, pending_revocation=old.pending_revocation)
        self.members[member_id] = member
        if old.member_id in self.target:
            self.target[member_id] = self.target.pop(old.member_id)
        self.removed.add(old.member_id)
        self.dirty_metadata.add(member_id)
        self.dirty_target.add(member_id)
        self.dirty_current.add(member_id)
        if old.instance_id is not None:
            self.static_members[old.instance_id] = member_id
        log.info("consumer_group_static_member_replaced", group_id=self.group_id,
                 old_member_id=old.member_id, member_id=member_id)
        return member

    def _update_member(self, member: ConsumerMember, hb: Heartbeat) -> bool:
        """Apply the heartbeat's non-null fields; True if the target assignment depends on them."""
        changed = False
        if hb.instance_id is not None and member.instance_id is None:
            member.instance_id = hb.instance_id
            self.static_members[hb.instance_id] = member.member_id
        if hb.rack_id is not None and hb.rack_id != member.rack_id:
            member.rack_id = hb.rack_id
            changed = True
        if hb.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms
        if hb.subscribed_topic_names is not None:
            names = tuple(sorted(set(hb.subscribed_topic_names)))
            changed |= names != member.subscribed_topic_names
            member.subscribed_topic_names = names
        if hb.subscribed_topic_regex is not None:
            regex = hb.subscribed_topic_regex or None
            changed |= regex != member.subscribed_topic_regex
            member.subscribed_topic_regex = regex
        if hb.server_assignor is not None and hb.server_assignor != member.server_assignor:
            member.server_assignor = hb.server_assignor
            changed = True
        member.client_id = hb.client_id or member.client_id
        member.client_host = hb.client_host or member.client_host
        return changed

    def _compute_target(self, topics: Topics) -> None:
        chosen = [m.server_assignor for m in self.members.values() if m.server_assignor]
        # Kafka: the assignor most members ask for, else the first configured one.
        self.assignor = (max(sorted(set(chosen)), key=chosen.count) if chosen
                         else self.config.assignors[0])
        subscriptions = {m.member_id: asg.MemberSubscription(
            frozenset(topics.by_name[n].topic_id for n in self._member_topics(m, topics)), m.rack_id)
            for m in self.members.values()}
        partitions = {t.topic_id: t.partitions for t in self.subscribed.values()}
        racks = ({t.topic_id: t.racks for t in self.subscribed.values() if t.racks}
                 if any(m.rack_id for m in self.members.values()) else None)
        old = self.target
        self.target = asg.ASSIGNORS[self.assignor](subscriptions, partitions, self.target, racks)
        self.dirty_target |= {m for m, a in self.target.items() if old.get(m) != a}
        self.assignment_epoch = self.group_epoch
        self.dirty_group = True
        log.info("consumer_group_target_assignment", group_id=self.group_id, epoch=self.group_epoch,
                 assignor=self.assignor, members=len(self.members))

    def _partition_owner_epoch(self, topic_id: uuid.UUID, partition: int) -> int:
        return self.partition_epochs.get((topic_id, partition), -1)

    def _reconcile(self, member: ConsumerMember, owned: Assignment | None) -> None:
        if member.member_epoch == STATIC_LEAVE_EPOCH:
            return
        r = reconcile(member, self.assignment_epoch, self.target.get(member.member_id, {}), owned,
                      self._partition_owner_epoch)
        if (r.member_epoch, r.previous_member_epoch, r.state, r.assigned, r.pending_revocation) != (
                member.member_epoch, member.previous_member_epoch, member.state, member.assigned,
                member.pending_revocation):
            self.dirty_current.add(member.member_id)
        self._release(member)
        member.state, member.member_epoch, member.previous_member_epoch = (
            r.state, r.member_epoch, r.previous_member_epoch)
        member.assigned, member.pending_revocation = r.assigned, r.pending_revocation
        self._hold(member)

    def _hold(self, member: ConsumerMember) -> None:
        for held in (member.assigned, member.pending_revocation):
            for topic_id, ps in held.items():
                for p in ps:
                    self.partition_epochs[(topic_id, p)] = member.member_epoch

    def _release(self, member: ConsumerMember) -> None:
        for held in (member.assigned, member.pending_revocation):
            for topic_id, ps in held.items():
                for p in ps:
                    self.partition_epochs.pop((topic_id, p), None)

    # -- timers ---------------------------------------------------------------------------
    def _schedule(self, member: ConsumerMember) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
        member.session_timer = self.scheduler.call_later(
            self._session_timeout_ms(member), lambda: self._expire(member, "session timeout"))
        if member.state == MemberState.UNREVOKED_PARTITIONS:
            if member.rebalance_timer is None or member.rebalance_timer_epoch != member.member_epoch:
                if member.rebalance_timer is not None:
                    member.rebalance_timer.cancel()
                epoch = member.member_epoch
                member.rebalance_timer_epoch = epoch
                member.rebalance_timer = self.scheduler.call_later(
                    max(member.rebalance_timeout_ms, 0), lambda: self._rebalance_expired(member, epoch))
        elif member.rebalance_timer is not None:
            member.rebalance_timer.cancel()
            member.rebalance_timer = None

    def _session_timeout_ms(self, member: ConsumerMember) -> int:
        return member.classic.session_timeout_ms if member.classic is not None else self.config.session_timeout_ms

    def _cancel_timers(self, member: ConsumerMember) -> None:
        for timer in (member.session_timer, member.rebalance_timer, member.sync_timer, member.join_timer):
            _cancelled(timer)
        member.session_timer = member.rebalance_timer = member.sync_timer = member.join_timer = None

    def _expire(self, member: ConsumerMember, reason: str) -> None:
        if self.members.get(member.member_id) is member:
            self._leave_group(member, reason)
            if self.on_change is not None:
                self.on_change()

    def _rebalance_expired(self, member: ConsumerMember, epoch: int) -> None:
        if (member.state == MemberState.UNREVOKED_PARTITIONS and member.member_epoch == epoch):
            self._expire(member, "rebalance timeout")

    # -- leaving --------------------------------------------------------------------------
    def _leave(self, hb: Heartbeat) -> HeartbeatResult:
        member = self.members.get(hb.member_id)
        if member is None:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID,
                                   f"Member {hb.member_id} is not a member of group {self.group_id}.")
        if hb.member_epoch == STATIC_LEAVE_EPOCH and member.instance_id is not None:
            # Keeps its partitions for the session timeout; its next incarnation takes them.
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = STATIC_LEAVE_EPOCH
            self.dirty_current.add(member.member_id)
            if member.session_timer is not None:
                member.session_timer.cancel()
            member.session_timer = self.scheduler.call_later(
                self.config.session_timeout_ms, lambda: self._expire(member, "static member gone"))
            return HeartbeatResult(ErrorCode.NONE, None, member.member_id, STATIC_LEAVE_EPOCH)
        self._leave_group(member, "left")
        return HeartbeatResult(ErrorCode.NONE, None, member.member_id, hb.member_epoch)

    def _leave_group(self, member: ConsumerMember, reason: str) -> None:
        """A member leaves or is fenced: removed, or, when only classic members remain, the
        group is to be downgraded (``downgrade``; the group epoch stays, so the remaining
        members' generation is the classic group's)."""
        self._remove(member, reason, downgrade=self._may_downgrade(member))

    def _may_downgrade(self, leaving: ConsumerMember | None) -> bool:
        """Kafka's validateOnlineDowngrade: members remain, all classic, the policy allows
        it, and they fit in a classic group (group.max.size)."""
        rest = [m for m in self.members.values() if m is not leaving]
        if not rest or any(m.classic is None for m in rest):
            return False
        if not self.config.downgrade_enabled:
            log.info("consumer_group_not_downgraded", group_id=self.group_id, reason="migration policy")
            return False
        if len(rest) > self.config.classic_max_size:
            log.info("consumer_group_not_downgraded", group_id=self.group_id, reason="group.max.size")
            return False
        return True

    def to_classic(self, classic: Group, topics: Topics) -> list[tuple[bytes, bytes | None]]:
        """Hand the remaining (classic) members to ``classic`` (Kafka's
        ClassicGroup.fromConsumerGroup): at the group epoch as generation, each with its
        target assignment as a ConsumerProtocolAssignment in the version of its subscription
        to the chosen protocol. Returns the tombstones of all of this group's records (the
        members first, the group's metadata last, so a replay ends with no consumer group).
        The caller writes them with the classic group's metadata and starts a rebalance."""
        members = [Member(m.member_id, m.instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                          m.classic.session_timeout_ms, CONSUMER_PROTOCOL_TYPE, list(m.classic.protocols))
                   for m in self.members.values() if m.classic is not None]
        classic.take_members(self.group_epoch, members)
        for m in members:
            m.assignment = encode_assignment(self.target.get(m.member_id, {}), topics,
                                             _version(m.metadata(classic.protocol_name or "")))
        gid = self.group_id
        tombstones = [(rec.key(t, gid, member_id), None)
                      for member_id in sorted(self.removed | set(self.members)) for t in rec.MEMBER_TYPES]
        tombstones += [(rec.key(t, gid), None) for t in reversed(rec.GROUP_TYPES)]
        log.info("consumer_group_converted_to_classic", group_id=gid, generation_id=self.group_epoch,
                 members=len(members))
        self.unwritten = []
        self.shut_down()
        return tombstones

    def _remove(self, member: ConsumerMember, reason: str, downgrade: bool = False) -> None:
        self._cancel_timers(member)
        self._release(member)
        del self.members[member.member_id]
        self.target.pop(member.member_id, None)
        if member.instance_id is not None and self.static_members.get(member.instance_id) == member.member_id:
            del self.static_members[member.instance_id]
        self.removed.add(member.member_id)
        if downgrade:
            self.downgrade = True
        else:
            self.group_epoch += 1
            self._subscriptions += 1
            self.dirty_group = True
        log.info("consumer_group_member_removed", group_id=self.group_id, member_id=member.member_id,
                 reason=reason, group_epoch=self.group_epoch, downgrade=downgrade)

    def shut_down(self) -> None:
        """This node no longer coordinates the group: stop its timers."""
        for member in self.members.values():
            self._cancel_timers(member)
        self.dead = True

    # -- records in __consumer_offsets (consumer_group_records) ------------------------------
    def take_records(self) -> list[tuple[bytes, bytes | None]]:
        """The (key, value) records of what changed since the last call, tombstones for
        removed members; written by the coordinator before it answers."""
        gid, out = self.group_id, self._take_begin()
        if self.dirty_group:
            out.append((rec.key(rec.METADATA, gid), rec.value(rec.METADATA, epoch=self.group_epoch)))
        for member_id in sorted(self.dirty_metadata & set(self.members)):
            m = self.members[member_id]
            out.append((rec.key(rec.MEMBER_METADATA, gid, member_id), rec.value(
                rec.MEMBER_METADATA, instance_id=m.instance_id, rack_id=m.rack_id, client_id=m.client_id,
                client_host=m.client_host, subscribed_topic_names=list(m.subscribed_topic_names),
                subscribed_topic_regex=m.subscribed_topic_regex, rebalance_timeout_ms=m.rebalance_timeout_ms,
                server_assignor=m.server_assignor, classic_member_metadata=_classic_record(m.classic))))
        target_tp = rec.ConsumerGroupTargetAssignmentMemberValue.fields["topic_partitions"].data_class
        for member_id in sorted(self.dirty_target & set(self.members)):
            out.append((rec.key(rec.TARGET_MEMBER, gid, member_id), rec.value(
                rec.TARGET_MEMBER, topic_partitions=rec.topic_partitions(target_tp, self.target.get(member_id, {})))))
        if self.dirty_group:
            out.append((rec.key(rec.TARGET_METADATA, gid),
                        rec.value(rec.TARGET_METADATA, assignment_epoch=self.assignment_epoch)))
        current_tp = rec.ConsumerGroupCurrentMemberAssignmentValue.fields["assigned_partitions"].data_class
        for member_id in sorted(self.dirty_current & set(self.members)):
            m = self.members[member_id]
            out.append((rec.key(rec.CURRENT_ASSIGNMENT, gid, member_id), rec.value(
                rec.CURRENT_ASSIGNMENT, member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch,
                state=STATE_CODES[m.state], assigned_partitions=rec.topic_partitions(current_tp, m.assigned),
                partitions_pending_revocation=rec.topic_partitions(current_tp, m.pending_revocation))))
        return self._take_end(out)

    def load_record(self, record_type: int, member_id: str | None, value) -> None:
        """Replay one record (a parsed value, or None for a tombstone) while loading."""
        if record_type == rec.METADATA:
            self.group_epoch = value.epoch if value is not None else 0
            return
        if record_type == rec.TARGET_METADATA:
            self.assignment_epoch = value.assignment_epoch if value is not None else 0
            return
        if member_id is None:
            return
        if value is None:
            member = self.members.pop(member_id, None)
            self.target.pop(member_id, None)
            if member is not None and member.instance_id is not None:
                self.static_members.pop(member.instance_id, None)
            return
        if record_type == rec.TARGET_MEMBER:
            self.target[member_id] = rec.assignment_of(value.topic_partitions)
            return
        member = self.members.setdefault(member_id, ConsumerMember(member_id))
        if record_type == rec.MEMBER_METADATA:
            member.instance_id, member.rack_id = value.instance_id, value.rack_id
            member.client_id, member.client_host = value.client_id, value.client_host
            member.subscribed_topic_names = tuple(sorted(value.subscribed_topic_names or ()))
            member.subscribed_topic_regex = value.subscribed_topic_regex or None
            member.rebalance_timeout_ms = value.rebalance_timeout_ms
            member.server_assignor = value.server_assignor
            c = value.classic_member_metadata
            member.classic = None if c is None else ClassicMetadata(
                c.session_timeout_ms, tuple((p.name, bytes(p.metadata)) for p in c.supported_protocols))
            if member.instance_id is not None:
                self.static_members[member.instance_id] = member_id
        elif record_type == rec.CURRENT_ASSIGNMENT:
            member.member_epoch, member.previous_member_epoch = value.member_epoch, value.previous_member_epoch
            member.state = STATES_BY_CODE.get(value.state, MemberState.STABLE)
            member.assigned = rec.assignment_of(value.assigned_partitions)
            member.pending_revocation = rec.assignment_of(value.partitions_pending_revocation)

    def loaded(self, topics: Topics) -> None:
        """After replay: who holds what, the subscribed topics as now, every member's session."""
        self.partition_epochs.clear()
        for member in self.members.values():
            self._hold(member)
        self.subscribed = {n: topics.by_name[n] for m in self.members.values()
                           for n in self._member_topics(m, topics)}
        chosen = [m.server_assignor for m in self.members.values() if m.server_assignor]
        self.assignor = max(sorted(set(chosen)), key=chosen.count) if chosen else self.config.assignors[0]
        for member in self.members.values():
            member.session_timer = self.scheduler.call_later(
                self._session_timeout_ms(member), lambda m=member: self._expire(m, "session timeout"))

    # -- offsets --------------------------------------------------------------------------
    def check_commit(self, member_id: str, member_epoch: int, api_version: int,
                     min_epoch_version: int) -> tuple[ErrorCode, str | None]:
        """Kafka's ConsumerGroup.validateOffsetCommit (and validateOffsetFetch's epoch rule)."""
        if member_epoch < 0 and not member_id and not self.members:
            return ErrorCode.NONE, None  # the admin client, or a consumer without a group
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of group {self.group_id}."
        if member.classic is not None:
            if member_epoch != member.member_epoch:  # a generation, to a classic member
                return (ErrorCode.ILLEGAL_GENERATION, f"The request generation id {member_epoch} is not "
                        f"equal to the member epoch {member.member_epoch} of member {member_id}.")
            return ErrorCode.NONE, None
        if api_version < min_epoch_version:
            return (ErrorCode.UNSUPPORTED_VERSION, "OffsetCommit version 9 or above must be used by "
                    "members using the consumer group protocol")
        if member_epoch != member.member_epoch:
            return (ErrorCode.STALE_MEMBER_EPOCH, f"The member epoch {member_epoch} does not match "
                    f"the expected member epoch {member.member_epoch}.")
        return ErrorCode.NONE, None

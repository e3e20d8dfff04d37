"""One share group (KIP-932): its members, their epochs and which partitions each may
fetch from. A pure state machine: time and timers come from the coordinator's
``Scheduler`` and the topics are passed in, as for the consumer groups of KIP-848.

Share groups have no revocation step: records are acquired per fetch and locked per
record, so two members may fetch from one partition at once (the share partition hands
each record to one of them). A change of membership, of a subscription or of the
subscribed topics bumps the group epoch and recomputes the target assignment at once
(the assignment epoch is always the group epoch); each member gets it, with the new
epoch, on its next heartbeat. States are Kafka's ShareGroupState: Empty, Stable, Dead.

The assignor is Kafka's "simple" one in its homogeneous form: with no more members
than partitions each partition goes to one member, round robin; with more members
than partitions each member gets one partition and a partition is shared by several
(members ``i`` and ``i + P`` share partition ``i``), so no member idles.

Errors follow Kafka's GroupMetadataManager.shareGroupHeartbeat: INVALID_REQUEST with
its messages, UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, GROUP_MAX_SIZE_REACHED.
"""

import uuid
from dataclasses import dataclass, field
from enum import Enum

import structlog

from odradek.broker.groups.assignors import Assignment
from odradek.broker.groups.consumer_group import HeartbeatResult, TopicInfo, Topics
from odradek.broker.groups.group import Scheduler, TimerHandle
from odradek.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

LEAVE_EPOCH = -1
SHARE_PROTOCOL_TYPE = "share"
SIMPLE_ASSIGNOR = "simple"


class ShareGroupState(Enum):
    EMPTY = "Empty"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class ShareGroupConfig:
    session_timeout_ms: int = 45000  # group.share.session.timeout.ms
    heartbeat_interval_ms: int = 5000  # group.share.heartbeat.interval.ms
    max_size: int = 200  # group.share.max.size


@dataclass(slots=True)
class ShareHeartbeat:
    """A ShareGroupHeartbeat's fields (None: unchanged since the last heartbeat)."""
    member_id: str
    member_epoch: int
    rack_id: str | None = None
    subscribed_topic_names: list[str] | None = None
    client_id: str = ""
    client_host: str = ""


@dataclass(eq=False, slots=True)
class ShareMember:
    member_id: str
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    member_epoch: int = 0
    assigned: Assignment = field(default_factory=dict)
    session_timer: TimerHandle | None = None


def validate(hb: ShareHeartbeat, group_id: str) -> tuple[ErrorCode, str | None]:
    """Kafka's checks of a ShareGroupHeartbeat before any group state is read."""
    bad = ErrorCode.INVALID_REQUEST
    if not group_id:
        return bad, "GroupId can't be empty."
    if not hb.member_id:
        return bad, None  # Kafka 4.4 says nothing more (held against it)
    if hb.rack_id == "":
        return bad, "RackId can't be empty."
    if hb.member_epoch == 0 and not hb.subscribed_topic_names:
        return bad, "SubscribedTopicNames must be set in first request."
    if hb.member_epoch < LEAVE_EPOCH:
        return bad, "MemberEpoch is invalid."
    return ErrorCode.NONE, None


def simple_assignment(members: list[str], partitions: list[tuple[uuid.UUID, int]]) -> dict[str, Assignment]:
    """The homogeneous simple assignor (see the module docstring); ``members`` and
    ``partitions`` in a stable order."""
    sets: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in members}
    if members and partitions:
        if len(members) <= len(partitions):
            pairs = [(members[i % len(members)], tp) for i, tp in enumerate(partitions)]
        else:
            pairs = [(m, partitions[i % len(partitions)]) for i, m in enumerate(members)]
        for member, (topic_id, p) in pairs:
            sets[member].setdefault(topic_id, set()).add(p)
    return {m: {t: frozenset(ps) for t, ps in a.items()} for m, a in sets.items()}


class ShareGroup:
    def __init__(self, group_id: str, config: ShareGroupConfig, scheduler: Scheduler):
        self.group_id = group_id
        self.config = config
        self.scheduler = scheduler
        self.group_epoch = 0
        self.members: dict[str, ShareMember] = {}
        self.target: dict[str, Assignment] = {}
        self.subscribed: dict[str, TopicInfo] = {}  # the subscribed topics at group_epoch
        self.dead = False
        self.stale = False  # a member expired since the target was computed

    @property
    def state(self) -> ShareGroupState:
        if self.dead:
            return ShareGroupState.DEAD
        return ShareGroupState.STABLE if self.members else ShareGroupState.EMPTY

    @property
    def assignment_epoch(self) -> int:
        return self.group_epoch

    def created_by_offsets(self) -> None:
        """A group AlterShareGroupOffsets made (an unknown id) starts at epoch 1, as Kafka
        4.4's does (its first share partitions' initialization counts as a change)."""
        self.group_epoch = 1

    def offsets_alterable(self) -> ErrorCode:
        """Whether the group's share-partition offsets may be altered or deleted, or the
        group deleted (Kafka's ShareGroup.validateEmptyGroup): only with no members."""
        return ErrorCode.NON_EMPTY_GROUP if self.members else ErrorCode.NONE

    def subscribed_topic_names(self) -> set[str]:
        return set(self.subscribed)

    def heartbeat(self, hb: ShareHeartbeat, topics: Topics) -> HeartbeatResult:
        member = self.members.get(hb.member_id)
        if hb.member_epoch == LEAVE_EPOCH:
            if member is None:
                return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID,
                                       f"Member {hb.member_id} is not a member of group {self.group_id}.")
            self._remove(member, "left")
            self._recompute(topics)
            return HeartbeatResult(ErrorCode.NONE, None, member.member_id, LEAVE_EPOCH)
        changed = False
        if hb.member_epoch == 0:
            if member is None:
                if len(self.members) >= self.config.max_size:
                    return HeartbeatResult(ErrorCode.GROUP_MAX_SIZE_REACHED,
                                           f"The share group has reached its maximum capacity of "
                                           f"{self.config.max_size} members.")
                member = self.members[hb.member_id] = ShareMember(hb.member_id)
                changed = True
        elif member is None:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID,
                                   f"Member {hb.member_id} is not a member of group {self.group_id}.")
        elif hb.member_epoch != member.member_epoch:
            return HeartbeatResult.fenced("share", hb.member_epoch, member.member_epoch)
        if hb.rack_id is not None:
            member.rack_id = hb.rack_id
        if hb.subscribed_topic_names is not None:
            names = tuple(sorted(set(hb.subscribed_topic_names)))
            changed |= names != member.subscribed_topic_names
            member.subscribed_topic_names = names
        member.client_id = hb.client_id or member.client_id
        member.client_host = hb.client_host or member.client_host
        if changed or self.stale or self._subscribed_now(topics) != self.subscribed:
            self._recompute(topics)
        epoch_before = member.member_epoch
        member.member_epoch = self.group_epoch
        member.assigned = self.target.get(member.member_id, {})
        self._schedule(member)
        full = hb.member_epoch == 0 or hb.subscribed_topic_names is not None
        return HeartbeatResult(ErrorCode.NONE, None, member.member_id, member.member_epoch,
                               member.assigned if full or epoch_before != member.member_epoch else None)

    def _subscribed_now(self, topics: Topics) -> dict[str, TopicInfo]:
        return {n: topics.by_name[n] for m in self.members.values()
                for n in m.subscribed_topic_names if n in topics.by_name}

    def _recompute(self, topics: Topics) -> None:
        """A new group epoch and its target assignment, computed at once."""
        self.group_epoch += 1
        self.stale = False
        self.subscribed = self._subscribed_now(topics)
        # Homogeneous per topic set: members are grouped by what they subscribe to.
        by_subscription: dict[tuple[str, ...], list[str]] = {}
        for m in sorted(self.members.values(), key=lambda m: m.member_id):
            by_subscription.setdefault(m.subscribed_topic_names, []).append(m.member_id)
        self.target = {}
        for names, member_ids in by_subscription.items():
            partitions = [(topics.by_name[n].topic_id, p) for n in names if n in topics.by_name
                          for p in range(topics.by_name[n].partitions)]
            self.target.update(simple_assignment(member_ids, partitions))
        log.info("share_group_target_assignment", group_id=self.group_id, epoch=self.group_epoch,
                 members=len(self.members))

    def _schedule(self, member: ShareMember) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
        member.session_timer = self.scheduler.call_later(
            self.config.session_timeout_ms, lambda: self._expire(member))

    def _expire(self, member: ShareMember) -> None:
        if self.members.get(member.member_id) is member:
            self._remove(member, "session timeout")
            self.stale = True  # the next heartbeat recomputes, against the image as it is then

    def _remove(self, member: ShareMember, reason: str) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
        del self.members[member.member_id]
        self.target.pop(member.member_id, None)
        log.info("share_group_member_removed", group_id=self.group_id, member_id=member.member_id,
                 reason=reason)

    def shut_down(self) -> None:
        for member in self.members.values():
            if member.session_timer is not None:
                member.session_timer.cancel()
        self.dead = True

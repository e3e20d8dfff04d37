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
its messages, UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, GROUP_MAX_SIZE_REACHED. As in Kafka,
a member may heartbeat with its previous epoch (the answer that bumped it was lost) and
gets its current epoch and assignment back.

The group is durable as Kafka 4.4 keeps it: what changed is taken as records
(``take_records``, in broker.groups.consumer_group_records' formats) and written to
``__consumer_offsets`` before the heartbeat is answered; a new coordinator replays them
(``load_record``, ``loaded``), so after a failover the group keeps its epoch, members and
assignment, and its members go on heartbeating with their epochs.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import structlog

from odradek.broker.groups import consumer_group_records as rec
from odradek.broker.groups.assignors import Assignment
from odradek.broker.groups.consumer_group import HeartbeatResult, TopicInfo, Topics
from odradek.broker.groups.group import Scheduler, TimerHandle
from odradek.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

LEAVE_EPOCH = -1
SHARE_PROTOCOL_TYPE = "share"
SIMPLE_ASSIGNOR = "simple"
STABLE = 2  # Kafka's MemberState code: a share member has nothing to revoke, always stable


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
    previous_member_epoch: int = 0
    assigned: Assignment = field(default_factory=dict)
    session_timer: TimerHandle | None = None

    def metadata(self) -> tuple:
        """What its ShareGroupMemberMetadata record holds."""
        return self.rack_id, self.client_id, self.client_host, self.subscribed_topic_names


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


class ShareGroup(rec.GroupRecords):
    MEMBER_RECORD_TYPES = rec.SHARE_MEMBER_TYPES
    GROUP_RECORD_TYPES = rec.SHARE_GROUP_TYPES

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
        self._init_records()  # what changed since the records were last taken
        self.on_change: Callable[[], None] | None = None  # changes made by timers

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
        self.dirty_group = True

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
        elif hb.member_epoch > member.member_epoch or (hb.member_epoch < member.member_epoch
                                                       and hb.member_epoch != member.previous_member_epoch):
            return HeartbeatResult.fenced("share", hb.member_epoch, member.member_epoch,
                                          member.previous_member_epoch)
        metadata = member.metadata()
        if hb.rack_id is not None:
            member.rack_id = hb.rack_id
        if hb.subscribed_topic_names is not None:
            names = tuple(sorted(set(hb.subscribed_topic_names)))
            changed |= names != member.subscribed_topic_names
            member.subscribed_topic_names = names
        member.client_id = hb.client_id or member.client_id
        member.client_host = hb.client_host or member.client_host
        if member.metadata() != metadata:
            self.dirty_metadata.add(member.member_id)
        if changed or self.stale or self._subscribed_now(topics) != self.subscribed:
            self._recompute(topics)
        assigned = self.target.get(member.member_id, {})
        if member.member_epoch != self.group_epoch or member.assigned != assigned:
            if member.member_epoch != self.group_epoch:
                member.previous_member_epoch = member.member_epoch
            member.member_epoch, member.assigned = self.group_epoch, assigned
            self.dirty_current.add(member.member_id)
        self._schedule(member)
        full = hb.member_epoch == 0 or hb.subscribed_topic_names is not None
        return HeartbeatResult(ErrorCode.NONE, None, member.member_id, member.member_epoch,
                               member.assigned if full or hb.member_epoch != member.member_epoch else None)

    def _subscribed_now(self, topics: Topics) -> dict[str, TopicInfo]:
        return {n: topics.by_name[n] for m in self.members.values()
                for n in m.subscribed_topic_names if n in topics.by_name}

    def _recompute(self, topics: Topics) -> None:
        """A new group epoch and its target assignment, computed at once."""
        self.group_epoch += 1
        self.dirty_group = True
        self.stale = False
        self.subscribed = self._subscribed_now(topics)
        target = self._target_for(topics)
        self.dirty_target |= {m for m, a in target.items() if self.target.get(m) != a}
        self.target = target
        log.info("share_group_target_assignment", group_id=self.group_id, epoch=self.group_epoch,
                 members=len(self.members))

    def _target_for(self, topics: Topics) -> dict[str, Assignment]:
        """The simple assignor's target for the members as they are, homogeneous per topic
        set: members are grouped by what they subscribe to."""
        by_subscription: dict[tuple[str, ...], list[str]] = {}
        for m in sorted(self.members.values(), key=lambda m: m.member_id):
            by_subscription.setdefault(m.subscribed_topic_names, []).append(m.member_id)
        target: dict[str, Assignment] = {}
        for names, member_ids in by_subscription.items():
            partitions = [(topics.by_name[n].topic_id, p) for n in names if n in topics.by_name
                          for p in range(topics.by_name[n].partitions)]
            target.update(simple_assignment(member_ids, partitions))
        return target

    def _schedule(self, member: ShareMember) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
        member.session_timer = self.scheduler.call_later(
            self.config.session_timeout_ms, lambda: self._expire(member))

    def _expire(self, member: ShareMember) -> None:
        if self.members.get(member.member_id) is member:
            self._remove(member, "session timeout")
            self.stale = True  # the next heartbeat recomputes, against the image as it is then
            if self.on_change is not None:
                self.on_change()  # its records go now

    def _remove(self, member: ShareMember, reason: str) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
        del self.members[member.member_id]
        self.target.pop(member.member_id, None)
        self.removed.add(member.member_id)
        log.info("share_group_member_removed", group_id=self.group_id, member_id=member.member_id,
                 reason=reason)

    def shut_down(self) -> None:
        for member in self.members.values():
            if member.session_timer is not None:
                member.session_timer.cancel()
        self.dead = True

    # -- records in __consumer_offsets (consumer_group_records) ------------------------------
    def take_records(self) -> list[tuple[bytes, bytes | None]]:
        """The (key, value) records of what changed since the last call, tombstones for
        removed members; written by the coordinator before it answers."""
        gid, out = self.group_id, self._take_begin()
        if self.dirty_group:
            out.append((rec.key(rec.SHARE_METADATA, gid),
                        rec.value(rec.SHARE_METADATA, epoch=self.group_epoch, metadata_hash=0)))
        for member_id in sorted(self.dirty_metadata & set(self.members)):
            m = self.members[member_id]
            out.append((rec.key(rec.SHARE_MEMBER_METADATA, gid, member_id), rec.value(
                rec.SHARE_MEMBER_METADATA, rack_id=m.rack_id, client_id=m.client_id, client_host=m.client_host,
                subscribed_topic_names=list(m.subscribed_topic_names))))
        target_tp = rec.ShareGroupTargetAssignmentMemberValue.fields["topic_partitions"].data_class
        for member_id in sorted(self.dirty_target & set(self.members)):
            out.append((rec.key(rec.SHARE_TARGET_MEMBER, gid, member_id), rec.value(
                rec.SHARE_TARGET_MEMBER,
                topic_partitions=rec.topic_partitions(target_tp, self.target.get(member_id, {})))))
        if self.dirty_group:
            out.append((rec.key(rec.SHARE_TARGET_METADATA, gid),
                        rec.value(rec.SHARE_TARGET_METADATA, assignment_epoch=self.group_epoch)))
        current_tp = rec.ShareGroupCurrentMemberAssignmentValue.fields["assigned_partitions"].data_class
        for member_id in sorted(self.dirty_current & set(self.members)):
            m = self.members[member_id]
            out.append((rec.key(rec.SHARE_CURRENT_ASSIGNMENT, gid, member_id), rec.value(
                rec.SHARE_CURRENT_ASSIGNMENT, member_epoch=m.member_epoch,
                previous_member_epoch=m.previous_member_epoch, state=STABLE,
                assigned_partitions=rec.topic_partitions(current_tp, m.assigned))))
        return self._take_end(out)

    def load_record(self, record_type: int, member_id: str | None, value) -> None:
        """Replay one record (a parsed value, or None for a tombstone) while loading."""
        if record_type == rec.SHARE_METADATA:
            self.group_epoch = value.epoch if value is not None else 0
            return
        if member_id is None:  # SHARE_TARGET_METADATA: the assignment epoch is the group epoch
            return
        if value is None:
            self.members.pop(member_id, None)
            self.target.pop(member_id, None)
            return
        if record_type == rec.SHARE_TARGET_MEMBER:
            self.target[member_id] = rec.assignment_of(value.topic_partitions)
            return
        member = self.members.setdefault(member_id, ShareMember(member_id))
        if record_type == rec.SHARE_MEMBER_METADATA:
            member.rack_id, member.client_id, member.client_host = value.rack_id, value.client_id, value.client_host
            member.subscribed_topic_names = tuple(sorted(value.subscribed_topic_names or ()))
        elif record_type == rec.SHARE_CURRENT_ASSIGNMENT:
            member.member_epoch, member.previous_member_epoch = value.member_epoch, value.previous_member_epoch
            member.assigned = rec.assignment_of(value.assigned_partitions)

    def loaded(self, topics: Topics) -> None:
        """After replay: the subscribed topics, every member's session (Kafka's onLoaded), and
        whether the image moved since the target was computed (the next heartbeat then
        recomputes it: a new epoch)."""
        self.subscribed = self._subscribed_now(topics)
        self.stale = self._target_for(topics) != {m: a for m, a in self.target.items() if m in self.members}
        for member in self.members.values():
            self._schedule(member)

"""The records of consumer-protocol groups (KIP-848) in ``__consumer_offsets``, in Kafka's
formats (the group-coordinator module's specs, declared in odradek.protocol.schemas), so a
new coordinator rebuilds a group with its epochs after a failover.

A key is the record type (int16, the spec's apiKey) then the key's fields, non-flexible
(int16-length strings); a value is version 0 (int16) then the value's fields, flexible
(compact strings and arrays, uuids as 16 bytes, a tagged-field section), encoded by
kafka-python's codec from the specs::

    type 3  ConsumerGroupMetadataKey            group      -> Epoch (group epoch)
    type 5  ConsumerGroupMemberMetadataKey      group, member -> InstanceId, RackId, ClientId,
            ClientHost, SubscribedTopicNames, SubscribedTopicRegex, RebalanceTimeoutMs,
            ServerAssignor, ClassicMemberMetadata (null: a consumer-protocol member)
    type 6  ConsumerGroupTargetAssignmentMetadataKey group -> AssignmentEpoch
    type 7  ConsumerGroupTargetAssignmentMemberKey group, member -> TopicPartitions
    type 8  ConsumerGroupCurrentMemberAssignmentKey group, member -> MemberEpoch,
            PreviousMemberEpoch, State (int8), AssignedPartitions, PartitionsPendingRevocation

A tombstone (null value) deletes a member's records when it leaves and the group's when
it is deleted. Types 4 (partition metadata, replaced by a hash in 4.1) and 16 (resolved
regular expressions) are not written: the coordinator recomputes both from the image.

Share groups (KIP-932, broker.share.share_group) have records of the same build, so a new
coordinator keeps their epochs and members after a failover, as Kafka 4.4 does::

    type 10 ShareGroupMemberMetadataKey         group, member -> RackId, ClientId, ClientHost,
            SubscribedTopicNames
    type 11 ShareGroupMetadataKey               group      -> Epoch, MetadataHash (written 0:
            Odradek compares the subscribed topics with the image instead)
    type 12 ShareGroupTargetAssignmentMetadataKey group    -> AssignmentEpoch
    type 13 ShareGroupTargetAssignmentMemberKey group, member -> TopicPartitions
    type 14 ShareGroupCurrentMemberAssignmentKey group, member -> MemberEpoch,
            PreviousMemberEpoch, State (int8, always 2: stable), AssignedPartitions

Type 15 (ShareGroupStatePartitionMetadata, the partitions whose share state Kafka's group
coordinator initialised) is not written: here a share partition's state is created in
``__share_group_state`` by the partition's leader at the group's first fetch from it
(broker.share.manager), and survives there.
"""

import struct
from typing import Any

from kafka.protocol.api_data import ApiData

from odradek.broker.groups.assignors import Assignment
from odradek.protocol.schemas import declared

METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT = 3, 5, 6, 7, 8
GROUP_TYPES = (METADATA, TARGET_METADATA)
MEMBER_TYPES = (MEMBER_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT)
SHARE_MEMBER_METADATA, SHARE_METADATA, SHARE_TARGET_METADATA, SHARE_TARGET_MEMBER, SHARE_CURRENT_ASSIGNMENT = (
    10, 11, 12, 13, 14)
SHARE_GROUP_TYPES = (SHARE_METADATA, SHARE_TARGET_METADATA)
SHARE_MEMBER_TYPES = (SHARE_MEMBER_METADATA, SHARE_TARGET_MEMBER, SHARE_CURRENT_ASSIGNMENT)
VALUE_VERSION = 0
_I16 = struct.Struct(">h")

ConsumerGroupMetadataValue = declared("ConsumerGroupMetadataValue", ApiData, __name__)
ConsumerGroupMemberMetadataValue = declared("ConsumerGroupMemberMetadataValue", ApiData, __name__)
ConsumerGroupTargetAssignmentMetadataValue = declared("ConsumerGroupTargetAssignmentMetadataValue", ApiData, __name__)
ConsumerGroupTargetAssignmentMemberValue = declared("ConsumerGroupTargetAssignmentMemberValue", ApiData, __name__)
ConsumerGroupCurrentMemberAssignmentValue = declared("ConsumerGroupCurrentMemberAssignmentValue", ApiData, __name__)

ShareGroupMemberMetadataValue = declared("ShareGroupMemberMetadataValue", ApiData, __name__)
ShareGroupMetadataValue = declared("ShareGroupMetadataValue", ApiData, __name__)
ShareGroupTargetAssignmentMetadataValue = declared("ShareGroupTargetAssignmentMetadataValue", ApiData, __name__)
ShareGroupTargetAssignmentMemberValue = declared("ShareGroupTargetAssignmentMemberValue", ApiData, __name__)
ShareGroupCurrentMemberAssignmentValue = declared("ShareGroupCurrentMemberAssignmentValue", ApiData, __name__)

VALUES: dict[int, Any] = {
    METADATA: ConsumerGroupMetadataValue, MEMBER_METADATA: ConsumerGroupMemberMetadataValue,
    TARGET_METADATA: ConsumerGroupTargetAssignmentMetadataValue,
    TARGET_MEMBER: ConsumerGroupTargetAssignmentMemberValue,
    CURRENT_ASSIGNMENT: ConsumerGroupCurrentMemberAssignmentValue,
    SHARE_MEMBER_METADATA: ShareGroupMemberMetadataValue, SHARE_METADATA: ShareGroupMetadataValue,
    SHARE_TARGET_METADATA: ShareGroupTargetAssignmentMetadataValue,
    SHARE_TARGET_MEMBER: ShareGroupTargetAssignmentMemberValue,
    SHARE_CURRENT_ASSIGNMENT: ShareGroupCurrentMemberAssignmentValue,
}


def _str(s: str) -> bytes:
    b = s.encode()
    return _I16.pack(len(b)) + b


def key(record_type: int, group_id: str, member_id: str | None = None) -> bytes:
    out = _I16.pack(record_type) + _str(group_id)
    return out + _str(member_id) if member_id is not None else out


def value(record_type: int, **fields) -> bytes:
    """The version (int16, kafka-python's data header) and the flexible body."""
    return bytes(VALUES[record_type](**fields).encode(version=VALUE_VERSION))


def parse_value(record_type: int, data: bytes):
    """The value's fields (a kafka-python data object); ValueError if unreadable."""
    (version,) = _I16.unpack_from(data, 0)
    if version != VALUE_VERSION:
        raise ValueError(f"unknown version {version} of record type {record_type}")
    return VALUES[record_type].decode(bytes(data))


def topic_partitions(cls, assignment: Assignment) -> list:
    return [cls(topic_id=t, partitions=sorted(ps)) for t, ps in sorted(assignment.items())]


def assignment_of(items) -> Assignment:
    out: dict = {}
    for item in items or ():
        out[item.topic_id] = out.get(item.topic_id, frozenset()) | frozenset(item.partitions)
    return out


class GroupRecords:
    """A modern group's (consumer or share) account of what changed since its records were
    last taken: member ids whose metadata / target / current assignment changed, members
    removed, whether the group epoch (or the assignment epoch) moved, and records whose
    write failed. The group's ``take_records`` builds the values between ``_take_begin``
    (what failed before, tombstones of removed members) and ``_take_end``."""

    MEMBER_RECORD_TYPES: tuple[int, ...] = MEMBER_TYPES
    GROUP_RECORD_TYPES: tuple[int, ...] = GROUP_TYPES
    group_id: str
    members: dict

    def _init_records(self) -> None:
        self.dirty_metadata: set[str] = set()
        self.dirty_target: set[str] = set()
        self.dirty_current: set[str] = set()
        self.removed: set[str] = set()
        self.dirty_group = False
        self.unwritten: list[tuple[bytes, bytes | None]] = []  # records whose write failed

    def _take_begin(self) -> list[tuple[bytes, bytes | None]]:
        out, self.unwritten = self.unwritten, []
        for member_id in sorted(self.removed - set(self.members)):
            out += [(key(t, self.group_id, member_id), None) for t in self.MEMBER_RECORD_TYPES]
        return out

    def _take_end(self, out: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
        self.dirty_metadata.clear()
        self.dirty_target.clear()
        self.dirty_current.clear()
        self.removed.clear()
        self.dirty_group = False
        return out

    def write_failed(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Records ``take_records`` gave that were not written: they go out with the next ones
        (later values of a key come after, so they win on replay)."""
        self.unwritten = records + self.unwritten

    def all_record_keys(self) -> list[bytes]:
        """Every key of the group's records (their tombstones delete it)."""
        gid = self.group_id
        return ([key(t, gid, m) for m in self.members for t in self.MEMBER_RECORD_TYPES]
                + [key(t, gid) for t in reversed(self.GROUP_RECORD_TYPES)])

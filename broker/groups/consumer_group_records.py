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
"""

import struct
from typing import Any

from kafka.protocol.api_data import ApiData

from odradek.broker.groups.assignors import Assignment
from odradek.protocol.schemas import declared

METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT = 3, 5, 6, 7, 8
GROUP_TYPES = (METADATA, TARGET_METADATA)
MEMBER_TYPES = (MEMBER_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT)
VALUE_VERSION = 0
_I16 = struct.Struct(">h")

ConsumerGroupMetadataValue = declared("ConsumerGroupMetadataValue", ApiData, __name__)
ConsumerGroupMemberMetadataValue = declared("ConsumerGroupMemberMetadataValue", ApiData, __name__)
ConsumerGroupTargetAssignmentMetadataValue = declared("ConsumerGroupTargetAssignmentMetadataValue", ApiData, __name__)
ConsumerGroupTargetAssignmentMemberValue = declared("ConsumerGroupTargetAssignmentMemberValue", ApiData, __name__)
ConsumerGroupCurrentMemberAssignmentValue = declared("ConsumerGroupCurrentMemberAssignmentValue", ApiData, __name__)

VALUES: dict[int, Any] = {
    METADATA: ConsumerGroupMetadataValue, MEMBER_METADATA: ConsumerGroupMemberMetadataValue,
    TARGET_METADATA: ConsumerGroupTargetAssignmentMetadataValue,
    TARGET_MEMBER: ConsumerGroupTargetAssignmentMemberValue,
    CURRENT_ASSIGNMENT: ConsumerGroupCurrentMemberAssignmentValue,
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

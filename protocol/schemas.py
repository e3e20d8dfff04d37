"""Our declarations of the Kafka 4.4 messages kafka-python 3.0 has no schemas for: the
KIP-848 APIs ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69), the share-group
APIs of KIP-932 (76-79, 90-92), and the consumer-group and share-group record values the group coordinator writes to ``__consumer_offsets``.

Each is the dict form kafka-python's codec builds its classes from (what its
``load_json`` would return for Kafka's spec file), written here with only what encoding
needs: names, types, versions, nullable and tagged versions, flexible versions and
defaults (a struct type shared by several fields, Kafka's ``commonStructs``, is one
Python list). Kafka's spec files are not copied into the repository;
tests/unit/test_schemas.py checks every declaration against Kafka's own spec, read at
test time, so a typo cannot change the bytes on the wire.

kafka-python's class-building metaclass reads ``<ClassName>.json`` from a package; the
two metaclasses below replace that one step with the declaration of the same name and
leave the rest of its class building (slots, nested data classes, version wrappers,
response registry) to kafka-python.
"""

from typing import Any

from kafka.protocol.api_data import JsonSchemaData
from kafka.protocol.api_message import ApiMessageData
from kafka.protocol.data_container import SlotsBuilder
from kafka.protocol.schemas import StructField

_ABSENT: Any = object()


def field(name: str, type: str, versions: str = "0+", *, nullable: str | None = None,
          default: Any = _ABSENT, tag: int | None = None, tagged: str | None = None,
          fields: list[dict] | None = None) -> dict:
    """One field of a spec; ``tagged`` (the tagged versions) defaults to ``versions``
    when a ``tag`` is given. ``default=None`` is the JSON null some specs write."""
    out: dict[str, Any] = {"name": name, "type": type, "versions": versions}
    if nullable is not None:
        out["nullableVersions"] = nullable
    if default is not _ABSENT:
        out["default"] = default
    if tag is not None:
        out["tag"], out["taggedVersions"] = tag, tagged or versions
    if fields is not None:
        out["fields"] = fields
    return out


def nullable(name: str, type: str, versions: str = "0+", **kw: Any) -> dict:
    """A field nullable in all its versions, null by default (most nullable fields)."""
    return field(name, type, versions, nullable=versions, default="null", **kw)


def _spec(name: str, type: str, api_key: int, valid: str, flexible: str, fields: list[dict]) -> dict:
    return {"name": name, "type": type, "apiKey": api_key, "validVersions": valid,
            "flexibleVersions": flexible, "fields": fields}


def message(name: str, api_key: int, valid: str, flexible: str, fields: list[dict]) -> dict:
    return _spec(name, "request" if name.endswith("Request") else "response",
                 api_key, valid, flexible, fields)


def record_value(name: str, record_type: int, fields: list[dict]) -> dict:
    """A group-coordinator record value (Kafka's type "coordinator-value", apiKey the
    record type), declared as kafka-python's "data" type, which ApiData takes."""
    return _spec(name, "data", record_type, "0", "0+", fields)


# ConsumerGroupHeartbeat (68): v1 adds SubscribedTopicRegex; the consumer makes its member id.
_TOPIC_PARTITIONS = [field("TopicId", "uuid"), field("Partitions", "[]int32")]

_HEARTBEAT_REQUEST = message("ConsumerGroupHeartbeatRequest", 68, "0-1", "0+", [
    field("GroupId", "string"),
    field("MemberId", "string"),
    field("MemberEpoch", "int32"),
    nullable("InstanceId", "string"),
    nullable("RackId", "string"),
    field("RebalanceTimeoutMs", "int32", default=-1),
    nullable("SubscribedTopicNames", "[]string"),
    nullable("SubscribedTopicRegex", "string", "1+"),
    nullable("ServerAssignor", "string"),
    nullable("TopicPartitions", "[]TopicPartitions", fields=_TOPIC_PARTITIONS),
])

_HEARTBEAT_RESPONSE = message("ConsumerGroupHeartbeatResponse", 68, "0-1", "0+", [
    field("ThrottleTimeMs", "int32"),
    field("ErrorCode", "int16"),
    nullable("ErrorMessage", "string"),
    nullable("MemberId", "string"),
    field("MemberEpoch", "int32"),
    field("HeartbeatIntervalMs", "int32"),
    nullable("Assignment", "Assignment", fields=[
        field("TopicPartitions", "[]TopicPartitions", fields=_TOPIC_PARTITIONS)]),
])

# ConsumerGroupDescribe (69): v1 adds a member's MemberType (KIP-1099).
_DESCRIBED_ASSIGNMENT = [field("TopicPartitions", "[]TopicPartitions", fields=[
    field("TopicId", "uuid"), field("TopicName", "string"), field("Partitions", "[]int32")])]


def _describe_request(name: str, api_key: int, valid: str) -> dict:
    return message(name, api_key, valid, "0+", [
        field("GroupIds", "[]string"),
        field("IncludeAuthorizedOperations", "bool"),
    ])


def _describe_response(name: str, api_key: int, valid: str, members: list[dict]) -> dict:
    """ConsumerGroupDescribe's and ShareGroupDescribe's answer: the same group fields, each
    with its own members."""
    return message(name, api_key, valid, "0+", [
        field("ThrottleTimeMs", "int32"),
        field("Groups", "[]DescribedGroup", fields=[
            field("ErrorCode", "int16"),
            nullable("ErrorMessage", "string"),
            field("GroupId", "string"),
            field("GroupState", "string"),
            field("GroupEpoch", "int32"),
            field("AssignmentEpoch", "int32"),
            field("AssignorName", "string"),
            field("Members", "[]Member", fields=members),
            field("AuthorizedOperations", "int32", default="-2147483648"),
        ]),
    ])


_DESCRIBE_REQUEST = _describe_request("ConsumerGroupDescribeRequest", 69, "0-1")
_DESCRIBE_RESPONSE = _describe_response("ConsumerGroupDescribeResponse", 69, "0-1", [
    field("MemberId", "string"),
    nullable("InstanceId", "string"),
    nullable("RackId", "string"),
    field("MemberEpoch", "int32"),
    field("ClientId", "string"),
    field("ClientHost", "string"),
    field("SubscribedTopicNames", "[]string"),
    nullable("SubscribedTopicRegex", "string"),
    field("Assignment", "Assignment", fields=_DESCRIBED_ASSIGNMENT),
    field("TargetAssignment", "Assignment", fields=_DESCRIBED_ASSIGNMENT),
    field("MemberType", "int8", "1+", default="-1"),
])

# Share groups (KIP-932): ShareGroupHeartbeat (76) and ShareGroupDescribe (77), v1 only in
# Kafka 4.4 (v0 was removed in 4.1); ShareFetch (78) and ShareAcknowledge (79), v1-v2 (v2:
# the acquire mode and RENEW acknowledgements of KIP-1206/KIP-1222).
_SHARE_HEARTBEAT_REQUEST = message("ShareGroupHeartbeatRequest", 76, "1", "0+", [
    field("GroupId", "string"),
    field("MemberId", "string"),
    field("MemberEpoch", "int32"),
    nullable("RackId", "string"),
    nullable("SubscribedTopicNames", "[]string"),
])

_SHARE_HEARTBEAT_RESPONSE = message("ShareGroupHeartbeatResponse", 76, "1", "0+", [
    field("ThrottleTimeMs", "int32"),
    field("ErrorCode", "int16"),
    nullable("ErrorMessage", "string"),
    nullable("MemberId", "string"),
    field("MemberEpoch", "int32"),
    field("HeartbeatIntervalMs", "int32"),
    nullable("Assignment", "Assignment", fields=[
        field("TopicPartitions", "[]TopicPartitions", fields=_TOPIC_PARTITIONS)]),
])

_SHARE_DESCRIBE_REQUEST = _describe_request("ShareGroupDescribeRequest", 77, "1")
_SHARE_DESCRIBE_RESPONSE = _describe_response("ShareGroupDescribeResponse", 77, "1", [
    field("MemberId", "string"),
    nullable("RackId", "string"),
    field("MemberEpoch", "int32"),
    field("ClientId", "string"),
    field("ClientHost", "string"),
    field("SubscribedTopicNames", "[]string"),
    field("Assignment", "Assignment", fields=_DESCRIBED_ASSIGNMENT),
])

_ACK_BATCHES = field("AcknowledgementBatches", "[]AcknowledgementBatch", fields=[
    field("FirstOffset", "int64"), field("LastOffset", "int64"), field("AcknowledgeTypes", "[]int8")])
_LEADER = field("CurrentLeader", "LeaderIdAndEpoch", fields=[
    field("LeaderId", "int32"), field("LeaderEpoch", "int32")])
_NODE_ENDPOINTS = field("NodeEndpoints", "[]NodeEndpoint", fields=[
    field("NodeId", "int32"), field("Host", "string"), field("Port", "int32"),
    nullable("Rack", "string")])

_SHARE_FETCH_REQUEST = message("ShareFetchRequest", 78, "1-2", "0+", [
    nullable("GroupId", "string"),
    field("MemberId", "string", nullable="0+"),
    field("ShareSessionEpoch", "int32"),
    field("MaxWaitMs", "int32"),
    field("MinBytes", "int32"),
    field("MaxBytes", "int32", default="0x7fffffff"),
    field("MaxRecords", "int32", "1+"),
    field("BatchSize", "int32", "1+"),
    field("ShareAcquireMode", "int8", "2+", default="0"),
    field("IsRenewAck", "bool", "2+", default="false"),
    field("Topics", "[]FetchTopic", fields=[
        field("TopicId", "uuid"),
        field("Partitions", "[]FetchPartition", fields=[
            field("PartitionIndex", "int32"),
            field("PartitionMaxBytes", "int32", "0"),
            _ACK_BATCHES,
        ]),
    ]),
    field("ForgottenTopicsData", "[]ForgottenTopic", fields=[
        field("TopicId", "uuid"), field("Partitions", "[]int32")]),
])

_SHARE_FETCH_RESPONSE = message("ShareFetchResponse", 78, "1-2", "0+", [
    field("ThrottleTimeMs", "int32"),
    field("ErrorCode", "int16"),
    nullable("ErrorMessage", "string"),
    field("AcquisitionLockTimeoutMs", "int32", "1+"),
    field("Responses", "[]ShareFetchableTopicResponse", fields=[
        field("TopicId", "uuid"),
        field("Partitions", "[]PartitionData", fields=[
            field("PartitionIndex", "int32"),
            field("ErrorCode", "int16"),
            nullable("ErrorMessage", "string"),
            field("AcknowledgeErrorCode", "int16"),
            nullable("AcknowledgeErrorMessage", "string"),
            _LEADER,
            field("Records", "records", nullable="0"),
            field("AcquiredRecords", "[]AcquiredRecords", fields=[
                field("FirstOffset", "int64"), field("LastOffset", "int64"),
                field("DeliveryCount", "int16")]),
        ]),
    ]),
    _NODE_ENDPOINTS,
])

_SHARE_ACK_REQUEST = message("ShareAcknowledgeRequest", 79, "1-2", "0+", [
    nullable("GroupId", "string"),
    field("MemberId", "string", nullable="0+"),
    field("ShareSessionEpoch", "int32"),
    field("IsRenewAck", "bool", "2+", default="false"),
    field("Topics", "[]AcknowledgeTopic", fields=[
        field("TopicId", "uuid"),
        field("Partitions", "[]AcknowledgePartition", fields=[
            field("PartitionIndex", "int32"), _ACK_BATCHES]),
    ]),
])

_SHARE_ACK_RESPONSE = message("ShareAcknowledgeResponse", 79, "1-2", "0+", [
    field("ThrottleTimeMs", "int32"),
    field("ErrorCode", "int16"),
    nullable("ErrorMessage", "string"),
    field("AcquisitionLockTimeoutMs", "int32", "2+"),
    field("Responses", "[]ShareAcknowledgeTopicResponse", fields=[
        field("TopicId", "uuid"),
        field("Partitions", "[]PartitionData", fields=[
            field("PartitionIndex", "int32"),
            field("ErrorCode", "int16"),
            nullable("ErrorMessage", "string"),
            _LEADER,
        ]),
    ]),
    _NODE_ENDPOINTS,
])

_DESCRIBE_SHARE_OFFSETS_REQUEST = message("DescribeShareGroupOffsetsRequest", 90, "0-1", "0+", [
    field("Groups", "[]DescribeShareGroupOffsetsRequestGroup", fields=[
        field("GroupId", "string"),
        field("Topics", "[]DescribeShareGroupOffsetsRequestTopic", nullable="0+", fields=[
            field("TopicName", "string"),
            field("Partitions", "[]int32"),
        ]),
    ]),
])

_DESCRIBE_SHARE_OFFSETS_RESPONSE = message("DescribeShareGroupOffsetsResponse", 90, "0-1", "0+", [
    field("ThrottleTimeMs", "int32"),
    field("Groups", "[]DescribeShareGroupOffsetsResponseGroup", fields=[
        field("GroupId", "string"),
        field("Topics", "[]DescribeShareGroupOffsetsResponseTopic", fields=[
            field("TopicName", "string"),
            field("TopicId", "uuid"),
            field("Partitions", "[]DescribeShareGroupOffsetsResponsePartition", fields=[
                field("PartitionIndex", "int32"),
                field("StartOffset", "int64"),
                field("LeaderEpoch", "int32"),
                field("Lag", "int64", "1+", default=-1),
                field("ErrorCode", "int16"),
                nullable("ErrorMessage", "string"),
            ]),
        ]),
        field("ErrorCode", "int16"),
        nullable("ErrorMessage", "string"),
    ]),
])

_ALTER_SHARE_OFFSETS_REQUEST = message("AlterShareGroupOffsetsRequest", 91, "0", "0+", [
    field("GroupId", "string"),
    field("Topics", "[]AlterShareGroupOffsetsRequestTopic", fields=[
        field("TopicName", "string"),
        field("Partitions", "[]AlterShareGroupOffsetsRequestPartition", fields=[
            field("PartitionIndex", "int32"),
            field("StartOffset", "int64"),
        ]),
    ]),
])

_ALTER_SHARE_OFFSETS_RESPONSE = message("AlterShareGroupOffsetsResponse", 91, "0", "0+", [
    field("ThrottleTimeMs", "int32"),
    field("ErrorCode", "int16"),
    nullable("ErrorMessage", "string"),
    field("Responses", "[]AlterShareGroupOffsetsResponseTopic", fields=[
        field("TopicName", "string"),
        field("TopicId", "uuid"),
        field("Partitions", "[]AlterShareGroupOffsetsResponsePartition", fields=[
            field("PartitionIndex", "int32"),
            field("ErrorCode", "int16"),
            nullable("ErrorMessage", "string"),
        ]),
    ]),
])

_DELETE_SHARE_OFFSETS_REQUEST = message("DeleteShareGroupOffsetsRequest", 92, "0", "0+", [
    field("GroupId", "string"),
    field("Topics", "[]DeleteShareGroupOffsetsRequestTopic", fields=[field("TopicName", "string")]),
])

_DELETE_SHARE_OFFSETS_RESPONSE = message("DeleteShareGroupOffsetsResponse", 92, "0", "0+", [
    field("ThrottleTimeMs", "int32"),
    field("ErrorCode", "int16"),
    nullable("ErrorMessage", "string"),
    field("Responses", "[]DeleteShareGroupOffsetsResponseTopic", fields=[
        field("TopicName", "string"),
        field("TopicId", "uuid"),
        field("ErrorCode", "int16"),
        nullable("ErrorMessage", "string"),
    ]),
])

# The record values (group-coordinator module, all version 0, flexible).
_METADATA_VALUE = record_value("ConsumerGroupMetadataValue", 3, [
    field("Epoch", "int32"),
    field("MetadataHash", "int64", default=0, tag=0),
])

_MEMBER_METADATA_VALUE = record_value("ConsumerGroupMemberMetadataValue", 5, [
    field("InstanceId", "string", nullable="0+"),
    field("RackId", "string", nullable="0+"),
    field("ClientId", "string"),
    field("ClientHost", "string"),
    field("SubscribedTopicNames", "[]string"),
    field("SubscribedTopicRegex", "string", nullable="0+"),
    field("RebalanceTimeoutMs", "int32", default=-1),
    field("ServerAssignor", "string", nullable="0+"),
    field("ClassicMemberMetadata", "ClassicMemberMetadata", nullable="0+", default=None, tag=0, fields=[
        field("SessionTimeoutMs", "int32"),
        field("SupportedProtocols", "[]ClassicProtocol", fields=[
            field("Name", "string"), field("Metadata", "bytes")]),
    ]),
])

_ASSIGNMENT_EPOCH = [field("AssignmentEpoch", "int32"), field("AssignmentTimestamp", "int64", default=0, tag=0)]
_TARGET_METADATA_VALUE = record_value("ConsumerGroupTargetAssignmentMetadataValue", 6, _ASSIGNMENT_EPOCH)

_TARGET_MEMBER_VALUE = record_value("ConsumerGroupTargetAssignmentMemberValue", 7, [
    field("TopicPartitions", "[]TopicPartition", fields=_TOPIC_PARTITIONS),
])

_ASSIGNED_PARTITIONS = [*_TOPIC_PARTITIONS,
                        field("AssignmentEpochs", "[]int32", nullable="0+", default=None, tag=0)]
_CURRENT_ASSIGNMENT_VALUE = record_value("ConsumerGroupCurrentMemberAssignmentValue", 8, [
    field("MemberEpoch", "int32"),
    field("PreviousMemberEpoch", "int32"),
    field("State", "int8"),
    field("AssignedPartitions", "[]TopicPartitions", fields=_ASSIGNED_PARTITIONS),
    field("PartitionsPendingRevocation", "[]TopicPartitions", fields=_ASSIGNED_PARTITIONS),
])

# The share-group record values (KIP-932; group-coordinator module, version 0, flexible).
_SHARE_MEMBER_METADATA_VALUE = record_value("ShareGroupMemberMetadataValue", 10, [
    field("RackId", "string", nullable="0+"),
    field("ClientId", "string"),
    field("ClientHost", "string"),
    field("SubscribedTopicNames", "[]string"),
])

_SHARE_METADATA_VALUE = record_value("ShareGroupMetadataValue", 11, [
    field("Epoch", "int32"),
    field("MetadataHash", "int64"),
])

_SHARE_TARGET_METADATA_VALUE = record_value("ShareGroupTargetAssignmentMetadataValue", 12, _ASSIGNMENT_EPOCH)

_SHARE_TARGET_MEMBER_VALUE = record_value("ShareGroupTargetAssignmentMemberValue", 13, [
    field("TopicPartitions", "[]TopicPartition", fields=_TOPIC_PARTITIONS),
])

_SHARE_CURRENT_ASSIGNMENT_VALUE = record_value("ShareGroupCurrentMemberAssignmentValue", 14, [
    field("MemberEpoch", "int32"),
    field("PreviousMemberEpoch", "int32"),
    field("State", "int8"),
    field("AssignedPartitions", "[]TopicPartitions", fields=_TOPIC_PARTITIONS),
])

DECLARED: dict[str, dict] = {spec["name"]: spec for spec in (
    _HEARTBEAT_REQUEST, _HEARTBEAT_RESPONSE, _DESCRIBE_REQUEST, _DESCRIBE_RESPONSE,
    _METADATA_VALUE, _MEMBER_METADATA_VALUE, _TARGET_METADATA_VALUE, _TARGET_MEMBER_VALUE,
    _CURRENT_ASSIGNMENT_VALUE, _SHARE_MEMBER_METADATA_VALUE, _SHARE_METADATA_VALUE,
    _SHARE_TARGET_METADATA_VALUE, _SHARE_TARGET_MEMBER_VALUE, _SHARE_CURRENT_ASSIGNMENT_VALUE, _SHARE_HEARTBEAT_REQUEST, _SHARE_HEARTBEAT_RESPONSE,
    _SHARE_DESCRIBE_REQUEST, _SHARE_DESCRIBE_RESPONSE, _SHARE_FETCH_REQUEST, _SHARE_FETCH_RESPONSE,
    _SHARE_ACK_REQUEST, _SHARE_ACK_RESPONSE, _DESCRIBE_SHARE_OFFSETS_REQUEST, _DESCRIBE_SHARE_OFFSETS_RESPONSE,
    _ALTER_SHARE_OFFSETS_REQUEST, _ALTER_SHARE_OFFSETS_RESPONSE, _DELETE_SHARE_OFFSETS_REQUEST,
    _DELETE_SHARE_OFFSETS_RESPONSE)}


def _declared_class(metacls: type, name: str, bases: tuple, attrs: dict, **kw: Any) -> Any:
    """kafka-python's JsonSchemaData.__new__ with its load_json step replaced by the
    declaration named like the class (the version wrappers it makes pass init=False)."""
    if kw.get("init", True):
        attrs.update(_json=DECLARED[name], _struct=StructField(DECLARED[name]), __license__=None)
    return SlotsBuilder.__new__(metacls, name, bases, attrs, **kw)


class DeclaredMessage(ApiMessageData):
    """Metaclass of a request or response class (``ApiMessage``) declared here."""

    def __new__(metacls, name, bases, attrs, **kw):
        return _declared_class(metacls, name, bases, attrs, **kw)


class DeclaredData(JsonSchemaData):
    """Metaclass of a data class (``ApiData``) declared here."""

    def __new__(metacls, name, bases, attrs, **kw):
        return _declared_class(metacls, name, bases, attrs, **kw)


def declared(name: str, base: Any, module: str) -> Any:
    """The class ``name`` of module ``module`` on kafka-python's ``base`` (``ApiMessage``
    for a request or response, ``ApiData`` for a record value), from its declaration."""
    metaclass = DeclaredMessage if isinstance(base, ApiMessageData) else DeclaredData
    return metaclass(name, (base,), {"__module__": module})

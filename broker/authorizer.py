"""The authorizer: Kafka's ACLs applied to every served API.

Off by default, as in Kafka; ``authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer``
turns it on, so a Kafka server.properties works unchanged. On, it denies what no ACL
allows (``allow.everyone.if.no.acl.found``, default false) except to ``super.users``
(``User:a;User:b``, semicolon-separated as in Kafka). ACLs are records of the metadata
log (replication.metadata), so every node applies the same ones and they survive
restarts; the decision itself is replication.acls' ``AclDecider``.

``ACCESS`` is Kafka's table "Operations and Resources on Protocols" (security.html)
for the APIs Odradek serves, in one place: per API key the (resource type, operation)
pairs it needs, with the error a denial answers. An entry with ``name`` names its
resource from the request and is checked before the handler runs, which then never
runs (the response carries the error where error_response can put it); the others
depend on each resource of the request (topics, groups) and handlers ask
``RequestContext.may(resource_type, name)``, which takes the operation from here.
ApiVersions is never authorized (it precedes authentication), nor our inter-node keys
(they are served only on the inter-node listener).
"""

from collections.abc import Callable
from dataclasses import dataclass

from odradek.broker.config import ConfigError
from odradek.protocol.errors import DEFAULT_MESSAGES, ErrorCode
from odradek.replication.acls import (
    CLUSTER_NAME,
    SUPPORTED_OPERATIONS,
    AclDecider,
    AclOperation,
    ResourceType,
)

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

Op = AclOperation
TOPIC, GROUP, CLUSTER, TXN = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER,
                              ResourceType.TRANSACTIONAL_ID)
TOPIC_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
TXN_DENIED = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
# Kafka's messages for these codes (its exceptions' defaults), where a response has a message
DENIED_MESSAGE = {code: DEFAULT_MESSAGES[code] for code in (TOPIC_DENIED, GROUP_DENIED, CLUSTER_DENIED, TXN_DENIED)}


@dataclass(frozen=True, slots=True)
class Access:
    resource_type: ResourceType
    operation: AclOperation
    error: ErrorCode
    # The resource's name from the request, for a check before the handler (None from
    # it: nothing to check for this request); no function: the handler checks.
    name: Callable[[object], str | None] | None = None


def _cluster(request) -> str:
    return CLUSTER_NAME


def _group_id(request) -> str:
    return request.group_id


def _transactional_id(request) -> str:
    return request.transactional_id


def _access(*entries: Access) -> tuple[Access, ...]:
    return entries


# API key -> what it needs (Kafka's table; the comments note where Kafka's code differs
# from the table and which one we follow).
ACCESS: dict[int, tuple[Access, ...]] = {
    0: _access(Access(TXN, Op.WRITE, TXN_DENIED), Access(TOPIC, Op.WRITE, TOPIC_DENIED)),  # Produce
    # Fetch: a follower (replica_id >= 0) needs CLUSTER_ACTION; a consumer READ per topic.
    1: _access(Access(CLUSTER, Op.CLUSTER_ACTION, TOPIC_DENIED), Access(TOPIC, Op.READ, TOPIC_DENIED)),
    2: _access(Access(TOPIC, Op.DESCRIBE, TOPIC_DENIED)),  # ListOffsets
    3: _access(Access(TOPIC, Op.DESCRIBE, TOPIC_DENIED), Access(CLUSTER, Op.CREATE, TOPIC_DENIED)),  # Metadata
    8: _access(Access(GROUP, Op.READ, GROUP_DENIED), Access(TOPIC, Op.READ, TOPIC_DENIED)),  # OffsetCommit
    9: _access(Access(GROUP, Op.DESCRIBE, GROUP_DENIED), Access(TOPIC, Op.DESCRIBE, TOPIC_DENIED)),  # OffsetFetch
    # FindCoordinator: share-partition keys (type 2) CLUSTER_ACTION on the cluster (the share
    # coordinator is found by brokers)
    10: _access(Access(GROUP, Op.DESCRIBE, GROUP_DENIED), Access(TXN, Op.DESCRIBE, TXN_DENIED),
         Access(CLUSTER, Op.CLUSTER_ACTION, CLUSTER_DENIED)),
    11: _access(Access(GROUP, Op.READ, GROUP_DENIED)),  # JoinGroup (in the handler: v7+ null protocol name)
    12: _access(Access(GROUP, Op.READ, GROUP_DENIED, _group_id)),  # Heartbeat
    13: _access(Access(GROUP, Op.READ, GROUP_DENIED, _group_id)),  # LeaveGroup
    14: _access(Access(GROUP, Op.READ, GROUP_DENIED, _group_id)),  # SyncGroup
    15: _access(Access(GROUP, Op.DESCRIBE, GROUP_DENIED)),  # DescribeGroups
    # ListGroups: DESCRIBE on the cluster lists all, else the groups it may DESCRIBE; no error.
    16: _access(Access(CLUSTER, Op.DESCRIBE, CLUSTER_DENIED), Access(GROUP, Op.DESCRIBE, GROUP_DENIED)),
    # CreateTopics: CREATE on the cluster, else on each topic.
    19: _access(Access(CLUSTER, Op.CREATE, TOPIC_DENIED), Access(TOPIC, Op.CREATE, TOPIC_DENIED)),
    20: _access(Access(TOPIC, Op.DELETE, TOPIC_DENIED)),  # DeleteTopics
    21: _access(Access(TOPIC, Op.DELETE, TOPIC_DENIED)),  # DeleteRecords
    # InitProducerId: WRITE on the transactional id; idempotent only: IDEMPOTENT_WRITE on
    # the cluster or WRITE on any topic (KIP-679, Kafka's code).
    22: _access(Access(TXN, Op.WRITE, TXN_DENIED), Access(CLUSTER, Op.IDEMPOTENT_WRITE, CLUSTER_DENIED)),
    # OffsetForLeaderEpoch: CLUSTER_ACTION on the cluster (followers), else DESCRIBE per topic.
    23: _access(Access(CLUSTER, Op.CLUSTER_ACTION, TOPIC_DENIED), Access(TOPIC, Op.DESCRIBE, TOPIC_DENIED)),
    # AddPartitionsToTxn: clients (v0-v3) WRITE on the transactional id, then on each topic;
    # brokers' batches (v4+) CLUSTER_ACTION on the cluster instead.
    24: _access(Access(TXN, Op.WRITE, TXN_DENIED), Access(TOPIC, Op.WRITE, TOPIC_DENIED),
         Access(CLUSTER, Op.CLUSTER_ACTION, CLUSTER_DENIED)),
    # AddOffsetsToTxn: WRITE on the transactional id, then READ on the group.
    25: _access(Access(TXN, Op.WRITE, TXN_DENIED, _transactional_id), Access(GROUP, Op.READ, GROUP_DENIED, _group_id)),
    26: _access(Access(TXN, Op.WRITE, TXN_DENIED, _transactional_id)),  # EndTxn
    # TxnOffsetCommit: WRITE on the transactional id, READ on the group (each partition
    # carries the error), then READ per topic.
    28: _access(Access(TXN, Op.WRITE, TXN_DENIED), Access(GROUP, Op.READ, GROUP_DENIED),
         Access(TOPIC, Op.READ, TOPIC_DENIED)),
    29: _access(Access(CLUSTER, Op.DESCRIBE, CLUSTER_DENIED)),  # DescribeAcls
    30: _access(Access(CLUSTER, Op.ALTER, CLUSTER_DENIED)),  # CreateAcls (per creation)
    31: _access(Access(CLUSTER, Op.ALTER, CLUSTER_DENIED)),  # DeleteAcls (per filter)
    # DescribeConfigs / AlterConfigs / IncrementalAlterConfigs: broker resources on the
    # cluster, topic resources on the topic; the error is per resource.
    32: _access(Access(CLUSTER, Op.DESCRIBE_CONFIGS, CLUSTER_DENIED), Access(TOPIC, Op.DESCRIBE_CONFIGS, TOPIC_DENIED),
         Access(GROUP, Op.DESCRIBE_CONFIGS, GROUP_DENIED)),
    33: _access(Access(CLUSTER, Op.ALTER_CONFIGS, CLUSTER_DENIED), Access(TOPIC, Op.ALTER_CONFIGS, TOPIC_DENIED),
         Access(GROUP, Op.ALTER_CONFIGS, GROUP_DENIED)),
    44: _access(Access(CLUSTER, Op.ALTER_CONFIGS, CLUSTER_DENIED), Access(TOPIC, Op.ALTER_CONFIGS, TOPIC_DENIED),
         Access(GROUP, Op.ALTER_CONFIGS, GROUP_DENIED)),
    35: _access(Access(CLUSTER, Op.DESCRIBE, CLUSTER_DENIED)),  # DescribeLogDirs (empty answer)
    37: _access(Access(TOPIC, Op.ALTER, TOPIC_DENIED)),  # CreatePartitions
    42: _access(Access(GROUP, Op.DELETE, GROUP_DENIED)),  # DeleteGroups
    # ElectLeaders: the table says CLUSTER_ACTION; Kafka's code (and so this) asks ALTER.
    # (In the handler: v0 has no top-level error, so each partition carries it.)
    43: _access(Access(CLUSTER, Op.ALTER, CLUSTER_DENIED)),
    47: _access(Access(GROUP, Op.DELETE, GROUP_DENIED, _group_id), Access(TOPIC, Op.READ, TOPIC_DENIED)),  # OffsetDelete
    48: _access(Access(CLUSTER, Op.DESCRIBE_CONFIGS, CLUSTER_DENIED)),  # DescribeClientQuotas
    49: _access(Access(CLUSTER, Op.ALTER_CONFIGS, CLUSTER_DENIED)),  # AlterClientQuotas (per entry)
    55: _access(Access(CLUSTER, Op.DESCRIBE, CLUSTER_DENIED, _cluster)),  # DescribeQuorum
    # DescribeCluster: not authorized (Kafka's code); DESCRIBE decides whether the cluster's
    # authorized operations are filled (else empty).
    60: _access(Access(CLUSTER, Op.DESCRIBE, CLUSTER_DENIED)),
    61: _access(Access(TOPIC, Op.READ, TOPIC_DENIED)),  # DescribeProducers
    # DescribeTransactions: DESCRIBE per transactional id; topics the principal may not
    # DESCRIBE are left out of the answer.
    65: _access(Access(TXN, Op.DESCRIBE, TXN_DENIED), Access(TOPIC, Op.DESCRIBE, TOPIC_DENIED)),
    66: _access(Access(TXN, Op.DESCRIBE, TXN_DENIED)),  # ListTransactions: only the ids it may DESCRIBE
    75: _access(Access(TOPIC, Op.DESCRIBE, TOPIC_DENIED)),  # DescribeTopicPartitions
    # Share groups (KIP-932): READ on the group; ShareFetch and ShareAcknowledge READ per topic.
    76: _access(Access(GROUP, Op.READ, GROUP_DENIED), Access(TOPIC, Op.DESCRIBE, TOPIC_DENIED)),
    77: _access(Access(GROUP, Op.DESCRIBE, GROUP_DENIED)),  # ShareGroupDescribe
    90: _access(Access(GROUP, Op.DESCRIBE, GROUP_DENIED), Access(TOPIC, Op.DESCRIBE, TOPIC_DENIED)),
    # AlterShareGroupOffsets READ (not ALTER, as Kafka's code), DeleteShareGroupOffsets DELETE
    91: _access(Access(GROUP, Op.READ, GROUP_DENIED), Access(TOPIC, Op.READ, TOPIC_DENIED)),
    92: _access(Access(GROUP, Op.DELETE, GROUP_DENIED), Access(TOPIC, Op.READ, TOPIC_DENIED)),
    78: _access(Access(GROUP, Op.READ, GROUP_DENIED), Access(TOPIC, Op.READ, TOPIC_DENIED)),
    79: _access(Access(GROUP, Op.READ, GROUP_DENIED), Access(TOPIC, Op.READ, TOPIC_DENIED)),
}
UNAUTHORIZED_APIS = frozenset({17, 18, 36})  # SaslHandshake, ApiVersions, SaslAuthenticate


def access(api_key: int, resource_type: ResourceType) -> Access:
    """The table's entry for this API and resource type (a KeyError is a bug: a handler
    asking about a resource its row does not name)."""
    for entry in ACCESS[api_key]:
        if entry.resource_type == resource_type:
            return entry
    raise KeyError(f"API key {api_key} has no {resource_type.name} entry in ACCESS")


def needs_permission(ctx, operation: AclOperation) -> str:
    """Kafka's message for a request refused as a whole ("Request ... needs ALTER permission."),
    which names its request object; ours names the principal."""
    return f"Request from {ctx.principal} needs {operation.name} permission."


def parse_super_users(text: str) -> list[str]:
    return [u.strip() for u in text.split(";") if u.strip()]


class Authorizer:
    """The broker's authorizer: the decider, kept in step with the image's ACLs."""

    def __init__(self, image, super_users: list[str], allow_if_no_acl: bool):
        self.image = image
        self.decider = AclDecider(super_users, allow_if_no_acl)
        self._seen: dict | None = None

    @classmethod
    def from_config(cls, config, image) -> "Authorizer | None":
        name = config["authorizer.class.name"].strip()
        if not name:
            return None
        if name != STANDARD_AUTHORIZER:
            raise ConfigError(f"authorizer.class.name {name!r} is not supported: use {STANDARD_AUTHORIZER} "
                              "or leave it empty (no authorization)")
        return cls(image, parse_super_users(config["super.users"]),
                   config["allow.everyone.if.no.acl.found"])

    def on_metadata(self, records: list) -> None:
        """(A controller subscriber.) Take up the image's ACLs after any change."""
        self.decider.set_bindings(r.binding() for r in self.image.acls.values())

    def allowed(self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType,
                name: str) -> bool:
        return self.decider.allowed(principal, host, operation, resource_type, name)


def authorized_operations(authorizer: Authorizer | None, principal: str, host: str,
                          resource_type: ResourceType, name: str) -> set[int]:
    """The authorized operations' codes: with no authorizer every operation the type
    supports (as Kafka answers), else the principal's. kafka-python's schemas take this
    set for Kafka's bit fields (bit ``code`` per operation); ``operations_bits`` makes
    the int where a schema has a plain int32 (DescribeTopicPartitions)."""
    if authorizer is None:
        return {int(op) for op in SUPPORTED_OPERATIONS[resource_type]}
    return {int(op) for op in authorizer.decider.allowed_operations(principal, host, resource_type, name)}


def denied_before(api_key: int, authorizer: Authorizer | None, principal: str, host: str,
                  request) -> ErrorCode | None:
    """The error of the first check this API's row makes before its handler, if denied."""
    if authorizer is None:
        return None
    for entry in ACCESS.get(api_key, ()):
        if entry.name is None:
            continue
        name = entry.name(request)
        if name is not None and not authorizer.allowed(principal, host, entry.operation,
                                                       entry.resource_type, name):
            return entry.error
    return None

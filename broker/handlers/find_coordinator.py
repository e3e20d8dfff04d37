"""FindCoordinator (v0-v6): which broker coordinates a group, a transactional id or a
share partition's state.

The coordinator of a group (key_type 0) is the leader of the group's
``__consumer_offsets`` partition, that of a transactional id (key_type 1) the leader
of its ``__transaction_state`` partition, that of a share partition (key_type 2, from v6,
KIP-932) the leader of its key's ``__share_group_state`` partition; the topic is created
on the first request naming a key it could answer (see broker.groups.coordinator,
broker.transactions.coordinator, broker.share.coordinator). v0-v3 ask for one key, v4+
for a batch (``coordinator_keys``) answered one entry per key. The address is the
coordinator's endpoint on the listener the request came in on. While the topic is being
created (at most CONTROLLER_WAIT_S is waited for it) or has no leader, the answer is
COORDINATOR_NOT_AVAILABLE, which clients retry.

Share keys (Kafka's share coordinator is found by brokers, not clients: KIP-932) are
``groupId:topicId:partition`` with the topic id in Kafka's base64 form, read as Kafka 4.4
reads them (broker.share.coordinator.parse_share_partition_key); a malformed one gets
INVALID_REQUEST, and so does every share key below v6.

Authorization (broker.authorizer): DESCRIBE on the group (or transactional id) of each
key, else GROUP_AUTHORIZATION_FAILED (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) for it;
share keys need CLUSTER_ACTION on the cluster. Kafka 4.4 checks that one by throwing, so
without it the whole request fails as an unknown key type does (INVALID_REQUEST): every
key gets the error with Kafka's default message. Messages otherwise as Kafka 4.4 sends
them: below v4 its default message for the code ("NONE" for none), from v4 an empty one
per key.
"""

from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from odradek.broker.authorizer import CLUSTER, GROUP, TXN
from odradek.broker.broker import CONTROLLER_WAIT_S
from odradek.broker.handlers import handles
from odradek.broker.share.coordinator import coordinator_key, parse_share_partition_key
from odradek.protocol.errors import ErrorCode, default_message
from odradek.replication.acls import CLUSTER_NAME

R = FindCoordinatorResponse
GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1
SHARE_KEY_TYPE = 2
BATCHED_VERSION = 4
SHARE_VERSION = 6
NO_NODE = (-1, "", -1)


def _share_key(key: str) -> str | None:
    """The share coordinator's own key for a client's share-partition key; None: malformed."""
    try:
        return coordinator_key(*parse_share_partition_key(key))
    except ValueError:
        return None


def _request_error(ctx, version: int, key_type: int) -> ErrorCode:
    """An error for the whole request, as Kafka 4.4 answers what it throws on."""
    if key_type not in (GROUP_KEY_TYPE, TRANSACTION_KEY_TYPE, SHARE_KEY_TYPE):
        return ErrorCode.INVALID_REQUEST
    if key_type == SHARE_KEY_TYPE and version >= SHARE_VERSION and not ctx.may(CLUSTER, CLUSTER_NAME):
        return ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    return ErrorCode.NONE


def _coordinator(ctx, key_type: int):
    """The coordinator that answers the key type: each has coordinator_node and ensure_topic."""
    broker = ctx.broker
    return {GROUP_KEY_TYPE: broker.groups, TRANSACTION_KEY_TYPE: broker.transactions,
            SHARE_KEY_TYPE: broker.share_coordinator}[key_type]


def _coordinator_key(ctx, version: int, key_type: int, key: str) -> tuple[ErrorCode, str]:
    """(error, the key its coordinator knows it by): a group or transactional id the
    principal may not describe, or a malformed share key, is refused here."""
    if key_type == GROUP_KEY_TYPE:
        return (ErrorCode.NONE if ctx.may(GROUP, key) else ErrorCode.GROUP_AUTHORIZATION_FAILED), key
    if key_type == TRANSACTION_KEY_TYPE:
        return (ErrorCode.NONE if ctx.may(TXN, key) else ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED), key
    share_key = _share_key(key) if version >= SHARE_VERSION else None
    return (ErrorCode.INVALID_REQUEST, key) if share_key is None else (ErrorCode.NONE, share_key)


def _lookup(ctx, version: int, key: str, key_type: int) -> tuple[ErrorCode, int, str, int]:
    """(error, node_id, host, port) of the coordinator for ``key``."""
    error, known_as = _coordinator_key(ctx, version, key_type, key)
    if error:
        return (error, *NO_NODE)
    node = _coordinator(ctx, key_type).coordinator_node(known_as)
    if node is None or ctx.listener_name not in node.endpoints:
        return (ErrorCode.COORDINATOR_NOT_AVAILABLE, *NO_NODE)
    host, port = node.endpoints[ctx.listener_name]
    return ErrorCode.NONE, node.node_id, host, port


async def _ensure_topic(ctx, version: int, key_type: int, keys: list[str]) -> None:
    """Create the key type's internal topic once per request, however many keys it names,
    and only for a key that could be answered: as in Kafka, a denied or malformed request
    creates nothing."""
    if any(not _coordinator_key(ctx, version, key_type, k)[0] for k in keys):
        await _coordinator(ctx, key_type).ensure_topic(CONTROLLER_WAIT_S)


def _old_response(error: ErrorCode, node_id: int, host: str, port: int):
    """v0-v3: Kafka 4.4 sends its error's default message, "NONE" when there is none."""
    return R(throttle_time_ms=0, error_code=error, error_message=default_message(error) or error.name,
             node_id=node_id, host=host, port=port, coordinators=[])


@handles(FindCoordinatorRequest, 0, 6)
async def handle(ctx, request):
    version = ctx.header.api_version
    key_type = request.key_type if version >= 1 else GROUP_KEY_TYPE
    keys = [request.key] if version < BATCHED_VERSION else list(request.coordinator_keys)
    whole = _request_error(ctx, version, key_type)
    if whole and version < BATCHED_VERSION:
        return _old_response(whole, *NO_NODE)
    if whole:
        return R(throttle_time_ms=0, coordinators=[
            R.Coordinator(key=key, node_id=-1, host="", port=-1, error_code=whole,
                          error_message=default_message(whole)) for key in keys])
    await _ensure_topic(ctx, version, key_type, keys)
    if version < BATCHED_VERSION:
        return _old_response(*_lookup(ctx, version, request.key, key_type))
    coordinators = []
    for key in keys:
        error, node_id, host, port = _lookup(ctx, version, key, key_type)
        # Kafka 4.4 sets no message per key (v4+, batched): empty, whatever the error.
        coordinators.append(R.Coordinator(key=key, node_id=node_id, host=host, port=port,
                                          error_code=error, error_message=""))
    return R(throttle_time_ms=0, coordinators=coordinators)

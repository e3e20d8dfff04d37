"""FindCoordinator (v0-v6): which broker coordinates a group or a transactional id.

The coordinator of a group (key_type 0) is the leader of the group's
``__consumer_offsets`` partition, that of a transactional id (key_type 1) the leader
of its ``__transaction_state`` partition; the topic is created on the first request
(see broker.groups.coordinator, broker.transactions.coordinator). v0-v3 ask for one
key, v4+ for a batch (``coordinator_keys``) answered one entry per key. Other key
types (share groups, 2) get COORDINATOR_NOT_AVAILABLE. The address
is the coordinator's endpoint on the listener the request came in on. While
``__consumer_offsets`` is being created (at most CONTROLLER_WAIT_S is waited for it)
or has no leader, the answer is COORDINATOR_NOT_AVAILABLE, which clients retry.
Authorization (broker.authorizer): DESCRIBE on the group (or transactional id) of each
key, else GROUP_AUTHORIZATION_FAILED (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) for it.
"""

from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from odradek.broker.authorizer import DENIED_MESSAGE, GROUP, TXN
from odradek.broker.broker import CONTROLLER_WAIT_S
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

R = FindCoordinatorResponse
GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1
BATCHED_VERSION = 4


def _lookup(ctx, key: str, key_type: int) -> tuple[ErrorCode, int, str, int]:
    """(error, node_id, host, port) of the coordinator for ``key``."""
    if key_type == GROUP_KEY_TYPE and not ctx.may(GROUP, key):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, -1, "", -1
    if key_type == TRANSACTION_KEY_TYPE and not ctx.may(TXN, key):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, "", -1
    if key_type == GROUP_KEY_TYPE:
        node = ctx.broker.groups.coordinator_node(key)
    elif key_type == TRANSACTION_KEY_TYPE:
        if not key:
            return ErrorCode.INVALID_REQUEST, -1, "", -1
        node = ctx.broker.transactions.coordinator_node(key)
    else:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, "", -1
    if node is None or ctx.listener_name not in node.endpoints:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, "", -1
    host, port = node.endpoints[ctx.listener_name]
    return ErrorCode.NONE, node.node_id, host, port


@handles(FindCoordinatorRequest, 0, 6)
async def handle(ctx, request):
    version = ctx.header.api_version
    key_type = request.key_type if version >= 1 else GROUP_KEY_TYPE
    keys = [request.key] if version < BATCHED_VERSION else list(request.coordinator_keys)
    # The internal topic is created once per request, however many keys it names, and only
    # for a key the principal may use: as in Kafka, a denied request creates nothing.
    if key_type == GROUP_KEY_TYPE and any(ctx.may(GROUP, k) for k in keys):
        await ctx.broker.groups.ensure_offsets_topic(CONTROLLER_WAIT_S)
    elif key_type == TRANSACTION_KEY_TYPE and any(ctx.may(TXN, k) for k in keys):
        await ctx.broker.transactions.ensure_topic(CONTROLLER_WAIT_S)
    if version < BATCHED_VERSION:
        error, node_id, host, port = _lookup(ctx, request.key, key_type)
        return R(throttle_time_ms=0, error_code=error,
                 error_message=None if not error else error.name,
                 node_id=node_id, host=host, port=port, coordinators=[])
    coordinators = []
    for key in request.coordinator_keys:
        error, node_id, host, port = _lookup(ctx, key, key_type)
        # Kafka 4.4 sends an empty message with NONE, and with an authorization error, from v4
        # (batched) on.
        coordinators.append(R.Coordinator(key=key, node_id=node_id, host=host, port=port,
                                          error_code=error,
                                          error_message="" if not error or error in DENIED_MESSAGE
                                          else error.name))
    return R(throttle_time_ms=0, coordinators=coordinators)

"""Our inter-node requests (not offered to clients): Raft messages, controller operations
and share-partition state (SHARE_STATE, answered by the share coordinator).

RAFT hands a peer's Raft message to this node's quorum driver and acknowledges at
once (Raft's answers are messages of their own). CONTROLLER runs an operation that
another node forwarded to the active controller; if this node is not (or no longer)
the active controller, the answer says so and the sender looks for the leader.

With node.principals each node authenticates as itself, and a request that claims to
come from another node (a Raft message's sender, the node id a controller operation
acts for) closes the connection before anything is done: the receiver is told who
sent it by the connection, not by the body.
"""

from odradek.broker.handlers import handles
from odradek.broker.server import CloseConnection
from odradek.protocol.errors import ErrorCode
from odradek.protocol.internode import (
    ControllerRequest,
    JsonResponse,
    RaftRequest,
    ShareStateRequest,
)
from odradek.replication.controller import ForgedSender


def authenticated_node(ctx) -> int | None:
    """The node id the sender proved (node.principals); None when nodes share an identity."""
    if ctx.broker.config.node_ids_by_principal is None:
        return None
    node = ctx.connection.node_id
    if node is None:  # (server.Connection lets only the nodes' principals this far)
        raise CloseConnection(f"inter-node request from {ctx.principal}, which is no node's principal")
    return node


@handles(RaftRequest, 0, 0, client_facing=False)
async def handle_raft(ctx, request):
    receive = getattr(ctx.broker.metadata_log, "receive", None)
    if receive is None:
        return JsonResponse({"error": "this node is not a voter (start it with --voters)"})
    try:
        receive(request, sender=authenticated_node(ctx))
    except ForgedSender as e:
        raise CloseConnection(f"{ctx.principal}: {e}") from None
    return JsonResponse({})


@handles(ControllerRequest, 0, 0, client_facing=False)
async def handle_controller(ctx, request):
    try:
        op, args, kwargs = request["op"], request.get("args", []), request.get("kwargs", {})
    except (KeyError, TypeError):
        return JsonResponse({"error": {"kafka_error": [int(ErrorCode.INVALID_REQUEST), "bad request"]}})
    try:
        return JsonResponse(await ctx.broker.controller.execute(
            op, args, kwargs, request.get("request_id"), request.get("timeout_ms"),
            sender=authenticated_node(ctx)))
    except ForgedSender as e:
        raise CloseConnection(f"{ctx.principal}: {e}") from None


@handles(ShareStateRequest, 0, 0, client_facing=False)
async def handle_share_state(ctx, request):
    return JsonResponse(await ctx.broker.share_coordinator.serve(request))

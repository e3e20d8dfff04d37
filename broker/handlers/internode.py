"""Our inter-node requests (not offered to clients): Raft messages, controller operations
and share-partition state (SHARE_STATE, answered by the share coordinator).

RAFT hands a peer's Raft message to this node's quorum driver and acknowledges at
once (Raft's answers are messages of their own). CONTROLLER runs an operation that
another node forwarded to the active controller; if this node is not (or no longer)
the active controller, the answer says so and the sender looks for the leader.
"""

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode
from odradek.protocol.internode import (
    ControllerRequest,
    JsonResponse,
    RaftRequest,
    ShareStateRequest,
)


@handles(RaftRequest, 0, 0, client_facing=False)
async def handle_raft(ctx, request):
    receive = getattr(ctx.broker.metadata_log, "receive", None)
    if receive is None:
        return JsonResponse({"error": "this node is not a voter (start it with --voters)"})
    receive(request)
    return JsonResponse({})


@handles(ControllerRequest, 0, 0, client_facing=False)
async def handle_controller(ctx, request):
    try:
        op, args, kwargs = request["op"], request.get("args", []), request.get("kwargs", {})
    except (KeyError, TypeError):
        return JsonResponse({"error": {"kafka_error": [int(ErrorCode.INVALID_REQUEST), "bad request"]}})
    return JsonResponse(await ctx.broker.controller.execute(
        op, args, kwargs, request.get("request_id"), request.get("timeout_ms")))


@handles(ShareStateRequest, 0, 0, client_facing=False)
async def handle_share_state(ctx, request):
    return JsonResponse(await ctx.broker.share_coordinator.serve(request))

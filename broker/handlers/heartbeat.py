"""Heartbeat (v0-v4): keep a member's session alive; learn of a rebalance.

REBALANCE_IN_PROGRESS tells the member to rejoin. v3 adds group_instance_id.
Errors: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION, NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS, INVALID_GROUP_ID.
"""

from kafka.protocol.consumer.group import HeartbeatRequest, HeartbeatResponse

from odradek.broker.handlers import handles


@handles(HeartbeatRequest, 0, 4)
async def handle(ctx, request):
    version = ctx.header.api_version
    error = ctx.broker.groups.heartbeat(
        request.group_id, request.member_id,
        request.group_instance_id if version >= 3 else None, request.generation_id)
    return HeartbeatResponse(throttle_time_ms=0, error_code=error)

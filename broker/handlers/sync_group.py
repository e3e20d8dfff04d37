"""SyncGroup (v0-v5): the leader hands in the assignment; every member gets its own.

A member's response waits until the leader's assignment is stored in
``__consumer_offsets`` (the group is then Stable). v3 adds group_instance_id, v5
the protocol type and name, which must match the group's (else
INCONSISTENT_GROUP_PROTOCOL). Errors: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS.
"""

from kafka.protocol.consumer.group import SyncGroupRequest, SyncGroupResponse

from odradek.broker.handlers import handles


@handles(SyncGroupRequest, 0, 5)
async def handle(ctx, request):
    version = ctx.header.api_version
    result = await ctx.broker.groups.sync_group(
        request.group_id, member_id=request.member_id,
        group_instance_id=request.group_instance_id if version >= 3 else None,
        generation_id=request.generation_id,
        protocol_type=request.protocol_type if version >= 5 else None,
        protocol_name=request.protocol_name if version >= 5 else None,
        assignments={a.member_id: bytes(a.assignment) for a in request.assignments})
    return SyncGroupResponse(throttle_time_ms=0, error_code=result.error,
                             protocol_type=result.protocol_type, protocol_name=result.protocol_name,
                             assignment=result.assignment)

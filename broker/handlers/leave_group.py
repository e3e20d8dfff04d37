"""LeaveGroup (v0-v5): members leave at once instead of waiting for their session timeout.

v0-v2 name one member; v3+ a batch of members (by member id, or by
group_instance_id alone to remove a static member, KIP-345), each answered with
its own error. The group rebalances without them.
"""

from kafka.protocol.consumer.group import LeaveGroupRequest, LeaveGroupResponse

from odradek.broker.handlers import handles

R = LeaveGroupResponse
BATCH_VERSION = 3


@handles(LeaveGroupRequest, 0, 5)
async def handle(ctx, request):
    version = ctx.header.api_version
    if version < BATCH_VERSION:
        error, [member_error] = await ctx.broker.groups.leave_group(request.group_id,
                                                                    [(request.member_id, None)])
        return R(throttle_time_ms=0, error_code=error or member_error, members=[])
    members = [(m.member_id, m.group_instance_id) for m in request.members]
    error, errors = await ctx.broker.groups.leave_group(request.group_id, members)
    return R(throttle_time_ms=0, error_code=error,
             members=[R.MemberResponse(member_id=m, group_instance_id=i, error_code=e)
                      for (m, i), e in zip(members, errors, strict=True)])

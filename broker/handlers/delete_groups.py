"""DeleteGroups (v0-v2): remove empty groups and their committed offsets.

A group with members gets NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.
Deleting writes tombstones for the group's offsets and metadata.
A group the principal may not DELETE is GROUP_AUTHORIZATION_FAILED (broker.authorizer).
"""

from kafka.protocol.admin.groups import DeleteGroupsRequest, DeleteGroupsResponse

from odradek.broker.authorizer import GROUP
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

R = DeleteGroupsResponse


@handles(DeleteGroupsRequest, 0, 2)
async def handle(ctx, request):
    results = []
    for group_id in request.groups_names:
        error = (await ctx.broker.groups.delete_group(group_id) if ctx.may(GROUP, group_id)
                 else ErrorCode.GROUP_AUTHORIZATION_FAILED)
        results.append(R.DeletableGroupResult(group_id=group_id, error_code=error))
    return R(throttle_time_ms=0, results=results)

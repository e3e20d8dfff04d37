"""ListGroups (v0-v5): the groups this node coordinates.

v4 adds states_filter (case-insensitive state names) and each group's state; v5
adds types_filter and each group's type, always "classic" here (no KIP-848
groups). While a partition of ours is loading the answer is
COORDINATOR_LOAD_IN_PROGRESS, as in Kafka. Groups deleted or expired are not listed.
Authorization (broker.authorizer): DESCRIBE on the cluster lists every group, else only
those the principal may DESCRIBE; never an authorization error.
"""

from kafka.protocol.admin.groups import ListGroupsRequest, ListGroupsResponse

from odradek.broker.authorizer import CLUSTER, GROUP
from odradek.broker.handlers import handles
from odradek.replication.acls import CLUSTER_NAME

R = ListGroupsResponse
GROUP_TYPE = "classic"


@handles(ListGroupsRequest, 0, 5)
async def handle(ctx, request):
    version = ctx.header.api_version
    states = {s.lower() for s in request.states_filter} if version >= 4 else set()
    types = {t.lower() for t in request.types_filter} if version >= 5 else set()
    error, groups = ctx.broker.groups.list_groups()
    if types and GROUP_TYPE not in types:
        groups = []
    listed = [R.ListedGroup(group_id=g.group_id, protocol_type=g.protocol_type or "",
                            group_state=g.state.value, group_type=GROUP_TYPE)
              for g in groups if not states or g.state.value.lower() in states]
    if not ctx.may(CLUSTER, CLUSTER_NAME):
        listed = [g for g in listed if ctx.may(GROUP, g.group_id)]
    return R(throttle_time_ms=0, error_code=error, groups=listed)

"""DescribeGroups (v0-v5): state, protocol and members of groups.

Members carry their metadata and assignment only while the group is Stable (as in
Kafka, since they are otherwise in flux). A group this coordinator does not know
is reported as state "Dead" with no error (versions up to 5). v3 adds
authorized operations (not computed: INT32_MIN, "not requested"), v4 the members'
group_instance_id. Served up to v5: Kafka's spec ends there.
"""

from kafka.protocol.admin.groups import DescribeGroupsRequest, DescribeGroupsResponse

from odradek.broker.groups.group import GroupState
from odradek.broker.handlers import handles

R = DescribeGroupsResponse
D = R.DescribedGroup
M = D.DescribedGroupMember


def _described(group_id: str, error, group) -> "D":
    if error or group is None:
        return D(error_code=error, error_message=None, group_id=group_id,
                 group_state=GroupState.DEAD.value, protocol_type="", protocol_data="",
                 members=[], authorized_operations=None)
    stable = group.state == GroupState.STABLE
    members = [M(member_id=m.member_id, group_instance_id=m.group_instance_id,
                 client_id=m.client_id, client_host=m.client_host,
                 member_metadata=m.metadata(group.protocol_name) if stable else b"",
                 member_assignment=m.assignment if stable else b"")
               for m in group.members.values()]
    return D(error_code=error, error_message=None, group_id=group_id,
             group_state=group.state.value, protocol_type=group.protocol_type or "",
             protocol_data=group.protocol_name or "", members=members,
             authorized_operations=None)


@handles(DescribeGroupsRequest, 0, 5)
async def handle(ctx, request):
    coordinator = ctx.broker.groups
    return R(throttle_time_ms=0,
             groups=[_described(g, *coordinator.describe_group(g)) for g in request.groups])

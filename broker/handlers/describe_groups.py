"""DescribeGroups (v0-v6): state, protocol and members of groups.

Members carry their metadata, and the group its protocol name, only while the group is
Stable (as in Kafka, since they are otherwise in flux); a member's assignment is the one
it last received, in every state, as Kafka's describeNoMetadata keeps it. A group this coordinator does not know
is reported as state "Dead" with no error up to v5, and from v6 (KIP-1043) with
GROUP_ID_NOT_FOUND and Kafka's message. v3 adds authorized operations, filled when
include_authorized_operations asks (else INT32_MIN, "not requested"), v4 the members'
group_instance_id. A group the principal may not DESCRIBE is GROUP_AUTHORIZATION_FAILED
(broker.authorizer), with nothing else of it. A consumer-protocol group (KIP-848) is not
described here (the admin client uses ConsumerGroupDescribe): as by Kafka 4.4, it is
"Dead" with no error up to v5 and from v6 GROUP_ID_NOT_FOUND, "Group G is not a classic
group."; a share group (KIP-932, ShareGroupDescribe) is answered the same way.
"""

from kafka.protocol.admin.groups import DescribeGroupsRequest, DescribeGroupsResponse

from odradek.broker.authorizer import GROUP
from odradek.broker.groups.group import GroupState
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

GROUP_NOT_FOUND_VERSION = 6  # KIP-1043

R = DescribeGroupsResponse
D = R.DescribedGroup
M = D.DescribedGroupMember


def _described(group_id: str, error, group, version: int, consumer_protocol: bool) -> "D":
    if error or group is None or consumer_protocol:
        message = None
        if not error and version >= GROUP_NOT_FOUND_VERSION:
            error, message = ErrorCode.GROUP_ID_NOT_FOUND, (
                f"Group {group_id} is not a classic group." if consumer_protocol
                else f"Group {group_id} not found.")
        return D(error_code=error, error_message=message, group_id=group_id,
                 group_state=GroupState.DEAD.value, protocol_type="", protocol_data="",
                 members=[], authorized_operations=None)
    stable = group.state == GroupState.STABLE
    members = [M(member_id=m.member_id, group_instance_id=m.group_instance_id,
                 client_id=m.client_id, client_host=m.client_host,
                 member_metadata=m.metadata(group.protocol_name) if stable else b"",
                 member_assignment=m.assignment)
               for m in group.members.values()]
    return D(error_code=error, error_message=None, group_id=group_id,
             group_state=group.state.value, protocol_type=group.protocol_type or "",
             protocol_data=(group.protocol_name or "") if stable else "", members=members,
             authorized_operations=None)


@handles(DescribeGroupsRequest, 0, 6)
async def handle(ctx, request):
    coordinator = ctx.broker.groups
    version = ctx.header.api_version
    groups = []
    for g in request.groups:
        if not ctx.may(GROUP, g):
            described = _described(g, ErrorCode.GROUP_AUTHORIZATION_FAILED, None, version, False)
            described.group_state = ""  # (as Kafka: nothing of a group it may not describe)
        else:
            error, group = coordinator.describe_group(g)
            consumer_protocol = g in coordinator.consumer_groups or coordinator.is_share_group(g)
            described = _described(g, error, group, version, consumer_protocol)
            if version >= 3 and request.include_authorized_operations and not error \
                    and not consumer_protocol:
                # (Kafka 4.4 leaves them out where the coordinator failed: not loaded, ...)
                described.authorized_operations = ctx.authorized_operations(GROUP, g)
        groups.append(described)
    return R(throttle_time_ms=0, groups=groups)

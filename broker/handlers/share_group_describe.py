"""ShareGroupDescribe (v1, KIP-932): share groups, their epochs, assignor ("simple")
and members with their assignments.

A group id this node coordinates that is not a share group answers GROUP_ID_NOT_FOUND
("Group X not found."); an empty id is INVALID_GROUP_ID. Authorization: DESCRIBE on the
group, else GROUP_AUTHORIZATION_FAILED for it. Authorized operations are not computed
(INT32_MIN).
"""

from odradek.broker.authorizer import GROUP
from odradek.broker.handlers import handles
from odradek.broker.handlers.consumer_group_describe import NOT_COMPUTED, not_described
from odradek.broker.share.share_group import SIMPLE_ASSIGNOR
from odradek.protocol.errors import ErrorCode
from odradek.protocol.messages import ShareGroupDescribeRequest, ShareGroupDescribeResponse

R = ShareGroupDescribeResponse
D = R.DescribedGroup


def _described(group_id: str, error, group, names) -> "D":
    if error or group is None:
        return not_described(D, group_id, error)
    A = D.Member.Assignment
    members = [D.Member(member_id=m.member_id, rack_id=m.rack_id, member_epoch=m.member_epoch,
                        client_id=m.client_id, client_host=m.client_host,
                        subscribed_topic_names=list(m.subscribed_topic_names),
                        assignment=A(topic_partitions=[
                            A.TopicPartitions(topic_id=topic_id, topic_name=names[topic_id], partitions=sorted(ps))
                            for topic_id, ps in sorted(m.assigned.items()) if topic_id in names]))
               for m in group.members.values()]
    return D(error_code=ErrorCode.NONE, group_id=group_id, group_state=group.state.value,
             group_epoch=group.group_epoch, assignment_epoch=group.assignment_epoch,
             assignor_name=SIMPLE_ASSIGNOR, members=members, authorized_operations=NOT_COMPUTED)


@handles(ShareGroupDescribeRequest, 1, 1)
async def handle(ctx, request):
    coordinator = ctx.broker.groups
    names = {t.uuid: name for name, t in ctx.broker.image.topics.items()}
    groups = []
    for g in request.group_ids:
        if not ctx.may(GROUP, g):
            groups.append(_described(g, ErrorCode.GROUP_AUTHORIZATION_FAILED, None, names))
        else:
            groups.append(_described(g, *coordinator.describe_share_group(g), names))
    # Kafka answers the ids it refuses outright (empty: INVALID_GROUP_ID) first.
    groups.sort(key=lambda g: g.error_code != ErrorCode.INVALID_GROUP_ID)
    return R(throttle_time_ms=0, groups=groups)

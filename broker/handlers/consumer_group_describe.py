"""ConsumerGroupDescribe (v0-v1, KIP-848): consumer-protocol groups, their epochs,
assignor and members with current and target assignments.

A group id this node coordinates but that is not a consumer-protocol group (unknown, or
a classic group) answers GROUP_ID_NOT_FOUND with Kafka's message; the admin client then
falls back to DescribeGroups; an empty id is INVALID_GROUP_ID (both as by Kafka 4.4, held
against it). v1 adds each member's type (1: consumer protocol, KIP-1099).
Authorized operations are not computed (INT32_MIN), as without an authorizer.
"""

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode
from odradek.protocol.messages import ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse

R = ConsumerGroupDescribeResponse
D = R.DescribedGroup
NOT_COMPUTED = -2147483648
CLASSIC_MEMBER_TYPE, CONSUMER_MEMBER_TYPE = 0, 1  # MemberType (KIP-1099): a rolling upgrade's classic members


def _assignment(assignment, names) -> "D.Member.Assignment":
    A = D.Member.Assignment
    return A(topic_partitions=[A.TopicPartitions(topic_id=topic_id, topic_name=names.get(topic_id, ""),
                                                 partitions=sorted(ps))
                               for topic_id, ps in sorted(assignment.items()) if topic_id in names])


def not_described(described_class, group_id: str, error):
    """A group not described: an error of the coordinator, or GROUP_ID_NOT_FOUND (Kafka's
    message) for no group of this type (shared with ShareGroupDescribe)."""
    if not error:
        return described_class(error_code=ErrorCode.GROUP_ID_NOT_FOUND, error_message=f"Group {group_id} not found.",
                               group_id=group_id, group_state="", members=[], authorized_operations=NOT_COMPUTED)
    return described_class(error_code=error, group_id=group_id, group_state="", members=[],
                           authorized_operations=NOT_COMPUTED)


def _described(group_id: str, error, group, names) -> "D":
    if error or group is None:
        return not_described(D, group_id, error)
    members = [D.Member(member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id,
                        member_epoch=m.member_epoch, client_id=m.client_id, client_host=m.client_host,
                        subscribed_topic_names=list(m.subscribed_topic_names),
                        # Kafka 4.4 answers "" for a member without a regex, not null.
                        subscribed_topic_regex=m.subscribed_topic_regex or "",
                        assignment=_assignment(m.assigned, names),
                        target_assignment=_assignment(group.target.get(m.member_id, {}), names),
                        member_type=CONSUMER_MEMBER_TYPE if m.classic is None else CLASSIC_MEMBER_TYPE)
               for m in group.members.values()]
    return D(error_code=ErrorCode.NONE, group_id=group_id, group_state=group.state.value,
             group_epoch=group.group_epoch, assignment_epoch=group.assignment_epoch,
             assignor_name=group.assignor, members=members, authorized_operations=NOT_COMPUTED)


@handles(ConsumerGroupDescribeRequest, 0, 1)
async def handle(ctx, request):
    coordinator = ctx.broker.groups
    names = {t.uuid: name for name, t in ctx.broker.image.topics.items()}
    return R(throttle_time_ms=0, groups=[
        _described(g, *coordinator.describe_consumer_group(g), names) for g in request.group_ids])

"""OffsetDelete (v0): delete some committed offsets of a group.

An empty group loses the offsets asked for. A consumer group with members keeps
those of topics it subscribes to (GROUP_SUBSCRIBED_TO_TOPIC per partition); a
non-consumer group with members gets NON_EMPTY_GROUP; an unknown group
GROUP_ID_NOT_FOUND.
Authorization (broker.authorizer): DELETE on the group (GROUP_AUTHORIZATION_FAILED, checked
before), READ on each topic (TOPIC_AUTHORIZATION_FAILED for its partitions).
"""

from kafka.protocol.consumer.group import OffsetDeleteRequest, OffsetDeleteResponse

from odradek.broker.authorizer import TOPIC
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

R = OffsetDeleteResponse
T = R.OffsetDeleteResponseTopic
P = T.OffsetDeleteResponsePartition


@handles(OffsetDeleteRequest, 0, 0)
async def handle(ctx, request):
    denied = {t.name for t in request.topics if not ctx.may(TOPIC, t.name)}
    tps = [(t.name, p.partition_index) for t in request.topics if t.name not in denied for p in t.partitions]
    error, results = await ctx.broker.groups.delete_offsets(request.group_id, tps)
    results = {**results, **{(t.name, p.partition_index): ErrorCode.TOPIC_AUTHORIZATION_FAILED
                             for t in request.topics if t.name in denied for p in t.partitions}}
    if error:
        return R(error_code=error, throttle_time_ms=0, topics=[])
    return R(error_code=ErrorCode.NONE, throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index,
                                     error_code=results[(t.name, p.partition_index)])
                                   for p in t.partitions])
        for t in request.topics])

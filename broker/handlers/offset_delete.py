"""OffsetDelete (v0): delete some committed offsets of a group.

An empty group loses the offsets asked for. A consumer group with members keeps
those of topics it subscribes to (GROUP_SUBSCRIBED_TO_TOPIC per partition); a
non-consumer group with members gets NON_EMPTY_GROUP; an unknown group
GROUP_ID_NOT_FOUND.
"""

from kafka.protocol.consumer.group import OffsetDeleteRequest, OffsetDeleteResponse

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

R = OffsetDeleteResponse
T = R.OffsetDeleteResponseTopic
P = T.OffsetDeleteResponsePartition


@handles(OffsetDeleteRequest, 0, 0)
async def handle(ctx, request):
    tps = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    error, results = await ctx.broker.groups.delete_offsets(request.group_id, tps)
    if error:
        return R(error_code=error, throttle_time_ms=0, topics=[])
    return R(error_code=ErrorCode.NONE, throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index,
                                     error_code=results[(t.name, p.partition_index)])
                                   for p in t.partitions])
        for t in request.topics])

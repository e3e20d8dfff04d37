"""ListPartitionReassignments (v0, KIP-455): the partitions being reassigned, with their
replicas and those being added and removed, from this node's metadata image (which holds a
reassignment this node asked for: forwarded operations wait for it). topics null: all;
named partitions that are not being reassigned, or do not exist, are left out, as Kafka
does."""

from kafka.protocol.admin import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
)

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

R = ListPartitionReassignmentsResponse
T = R.OngoingTopicReassignment


@handles(ListPartitionReassignmentsRequest, 0, 0)
async def handle(ctx, request):
    image = ctx.broker.image
    if request.topics is None:
        wanted = [(t, None) for t in image.topics.values()]
    else:
        wanted = [(image.topics[t.name], set(t.partition_indexes)) for t in request.topics
                  if t.name in image.topics]
    topics = []
    for topic, indexes in wanted:
        ongoing = [T.OngoingPartitionReassignment(
            partition_index=p.partition, replicas=list(p.replicas), adding_replicas=list(p.adding_replicas),
            removing_replicas=list(p.removing_replicas))
            for p in sorted(topic.partitions.values(), key=lambda p: p.partition)
            if (p.adding_replicas or p.removing_replicas) and (indexes is None or p.partition in indexes)]
        if ongoing:
            topics.append(T(name=topic.name, partitions=ongoing))
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, topics=topics)

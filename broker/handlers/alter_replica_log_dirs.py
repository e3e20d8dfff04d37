"""AlterReplicaLogDirs (v1-v2; v0 went with Kafka 4.0, KIP-896): move replicas between the
log directories of this node.

Odradek has one log directory (the data dir, as DescribeLogDirs names it), so it answers
as Kafka answers a broker with a single `log.dirs` entry: a replica asked to move into
that directory is already there (NONE, nothing moves; and so for a partition not hosted
here: Kafka records the wish for when it arrives); any other path is LOG_DIR_NOT_FOUND,
and a partition that does not exist UNKNOWN_TOPIC_OR_PARTITION (checked in that order,
as Kafka 4.4 answers).
"""

import os

from kafka.protocol.admin import AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

R = AlterReplicaLogDirsResponse
T = R.AlterReplicaLogDirTopicResult


@handles(AlterReplicaLogDirsRequest, 1, 2)
async def handle(ctx, request):
    image = ctx.broker.image
    by_topic: dict[str, list] = {}

    def code(path: str, topic: str, index: int) -> ErrorCode:
        if os.path.abspath(path) != ctx.broker.data_dir:
            return ErrorCode.LOG_DIR_NOT_FOUND
        if topic not in image.topics or index not in image.topics[topic].partitions:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return ErrorCode.NONE
    for d in request.dirs:
        for t in d.topics:
            by_topic.setdefault(t.name, []).extend(
                T.AlterReplicaLogDirPartitionResult(partition_index=p, error_code=code(d.path, t.name, p))
                for p in t.partitions)
    return R(throttle_time_ms=0, results=[T(topic_name=name, partitions=partitions)
                                           for name, partitions in by_topic.items()])

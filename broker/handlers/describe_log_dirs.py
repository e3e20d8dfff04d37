"""DescribeLogDirs (v1-v4): the partitions in this node's log directory and their sizes.

kafka-log-dirs and the admin client's describeLogDirs ask every broker. Odradek has one
log directory, the data dir, and answers as Kafka answers for a broker with a single
`log.dirs` entry: its absolute path, each hosted partition's size on disk (the bytes of
its .log segments) and offset lag, max(high watermark - log end offset, 0) as Kafka
computes it for a current (not future) log, so 0. No log is ever a future one: replicas
never move between directories. Topics null means every partition, internal ones too;
named topics and partitions that are not here are left out, as Kafka leaves them.
From v4 the volume's total and usable bytes (statvfs); v5 (Kafka 4.4) says whether the
directory is cordoned (KIP-1066: no new replicas placed there), which Odradek's never is.
Versions start at 1: Kafka 4 removed v0 (KIP-896).
Without DESCRIBE on the cluster the answer is empty, with CLUSTER_AUTHORIZATION_FAILED
from v3 (KIP-784), as Kafka answers (broker.authorizer).
"""

import os

from kafka.protocol.admin import DescribeLogDirsRequest, DescribeLogDirsResponse

from odradek.broker.authorizer import CLUSTER
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode
from odradek.replication.acls import CLUSTER_NAME

R = DescribeLogDirsResponse


def wanted_partitions(hosted: list[tuple[str, int]], topics) -> dict[str, list[int]]:
    """The hosted (topic, partition) pairs the request asks for, by topic, in order."""
    asked = None if topics is None else {(t.topic, p) for t in topics for p in t.partitions}
    out: dict[str, list[int]] = {}
    for topic, index in sorted(hosted):
        if asked is None or (topic, index) in asked:
            out.setdefault(topic, []).append(index)
    return out


@handles(DescribeLogDirsRequest, 1, 5)
async def handle(ctx, request):
    broker = ctx.broker
    if not ctx.may(CLUSTER, CLUSTER_NAME):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results=[])
    partitions = broker.replicas.partitions
    topics = []
    for topic, indexes in wanted_partitions(list(partitions), request.topics).items():
        topics.append(R.DescribeLogDirsResult.DescribeLogDirsTopic(name=topic, partitions=[
            R.DescribeLogDirsResult.DescribeLogDirsTopic.DescribeLogDirsPartition(
                partition_index=i, partition_size=partitions[topic, i].log.size,
                offset_lag=max(partitions[topic, i].log.high_watermark
                               - partitions[topic, i].log.log_end_offset, 0),
                is_future_key=False)
            for i in indexes]))
    volume = os.statvfs(broker.data_dir)
    result = R.DescribeLogDirsResult(
        error_code=ErrorCode.NONE, log_dir=broker.data_dir, topics=topics,
        total_bytes=volume.f_blocks * volume.f_frsize, usable_bytes=volume.f_bavail * volume.f_frsize,
        is_cordoned=False)
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, results=[result])

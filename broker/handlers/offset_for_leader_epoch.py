"""OffsetForLeaderEpoch (v2-v4, as Kafka 4 after KIP-896): where a leader epoch ended in this leader's log.

For a requested epoch the answer is the largest epoch at or below it that this log
knows and the offset where that epoch ended: the start of the next epoch, or the
log end offset for the latest one. A follower that returns after a failover
truncates its log to that offset before fetching again, instead of trusting its
own high watermark (KIP-101/KIP-279); consumers use it to detect truncation
(KIP-320). current_leader_epoch (v2+) fences stale requests (FENCED_LEADER_EPOCH,
UNKNOWN_LEADER_EPOCH); only the leader answers (NOT_LEADER_OR_FOLLOWER).
Authorization (broker.authorizer): CLUSTER_ACTION on the cluster (a follower), else
DESCRIBE on each topic; a denied topic is TOPIC_AUTHORIZATION_FAILED.
"""

from kafka.protocol.consumer import OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse

from odradek.broker.authorizer import CLUSTER, TOPIC
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.acls import CLUSTER_NAME

R = OffsetForLeaderEpochResponse
Result = R.OffsetForLeaderTopicResult.EpochEndOffset


@handles(OffsetForLeaderEpochRequest, 2, 4)
async def handle(ctx, request):
    replicas = ctx.broker.replicas
    topics = []
    cluster_allowed = ctx.may(CLUSTER, CLUSTER_NAME)
    for t in request.topics:
        results = []
        allowed = cluster_allowed or ctx.may(TOPIC, t.topic)
        for p in t.partitions:
            try:
                if not allowed:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                partition = replicas.leader_partition(t.topic, p.partition)
                replicas.check_leader_epoch(partition, p.current_leader_epoch)
                epoch, end_offset = partition.log.end_offset_for_epoch(p.leader_epoch)
                results.append(Result(error_code=ErrorCode.NONE, partition=p.partition,
                                      leader_epoch=epoch, end_offset=end_offset))
            except KafkaError as e:
                results.append(Result(error_code=e.code, partition=p.partition, leader_epoch=-1,
                                      end_offset=-1))
        topics.append(R.OffsetForLeaderTopicResult(topic=t.topic, partitions=results))
    return R(throttle_time_ms=0, topics=topics)

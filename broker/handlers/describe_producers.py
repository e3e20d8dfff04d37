"""DescribeProducers (v0): the active idempotent producers of partitions, for operators.

For each producer: its epoch, last sequence, the timestamp of its last batch and the
first offset of its open transaction on the partition (-1: none; kafka-transactions
find-hanging reads it). The coordinator epoch of its last marker is not kept: -1.
A topic the principal may not READ is TOPIC_AUTHORIZATION_FAILED (broker.authorizer).
"""

from kafka.protocol.admin import DescribeProducersRequest, DescribeProducersResponse

from odradek.broker.authorizer import DENIED_MESSAGE, TOPIC
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode, KafkaError

R = DescribeProducersResponse
PartitionResponse = R.TopicResponse.PartitionResponse


@handles(DescribeProducersRequest, 0, 0)
async def handle(ctx, request):
    topics = []
    for t in request.topics:
        partitions = []
        allowed = ctx.may(TOPIC, t.name)
        for index in t.partition_indexes:
            try:
                if not allowed:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                partition = ctx.broker.replicas.leader_partition(t.name, index)
            except KafkaError as e:
                partitions.append(PartitionResponse(partition_index=index, error_code=e.code,
                                                    error_message=DENIED_MESSAGE.get(e.code),
                                                    active_producers=[]))
                continue
            producers = [PartitionResponse.ProducerState(
                producer_id=e.producer_id, producer_epoch=e.epoch, last_sequence=e.last_seq,
                last_timestamp=e.batches[-1].timestamp if e.batches else -1,
                coordinator_epoch=-1, current_txn_start_offset=e.txn_first_offset)
                for e in partition.producer_state.producers.values()]
            partitions.append(PartitionResponse(partition_index=index, error_code=ErrorCode.NONE,
                                                error_message=None, active_producers=producers))
        topics.append(R.TopicResponse(name=t.name, partitions=partitions))
    return R(throttle_time_ms=0, topics=topics)

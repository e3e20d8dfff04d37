"""DeleteRecords (v0-v2): move a partition's log start offset forward.

offset -1 means the high watermark; an offset above it is OFFSET_OUT_OF_RANGE.
Whole segments below the new log start offset are deleted. As Kafka's
DelayedDeleteRecords, the answer waits (up to the request's timeout_ms) until the
low watermark, the smallest log start offset among the live replicas, reaches the
offset: followers take it from their next fetch, so once answered no replica that
could lead next still serves the deleted records. The response's low_watermark is
that low watermark; a partition whose replicas did not move in time gets
REQUEST_TIMED_OUT (its leader's log start has moved all the same).
A topic the principal may not DELETE is TOPIC_AUTHORIZATION_FAILED (broker.authorizer).
"""

import asyncio

from kafka.protocol.admin import DeleteRecordsRequest, DeleteRecordsResponse

from odradek.broker.authorizer import TOPIC
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode, KafkaError

R = DeleteRecordsResponse
Result = R.DeleteRecordsTopicResult.DeleteRecordsPartitionResult


@handles(DeleteRecordsRequest, 0, 2)
async def handle(ctx, request):
    replicas = ctx.broker.replicas
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request.timeout_ms, 0) / 1000
    topics = []
    for t in request.topics:
        results = []
        allowed = ctx.may(TOPIC, t.name)
        for p in t.partitions:
            try:
                if not allowed:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                partition = replicas.leader_partition(t.name, p.partition_index)
                hw = partition.log.high_watermark
                offset = hw if p.offset == -1 else p.offset
                if not 0 <= offset <= hw:
                    raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE,
                                     f"Offset {p.offset} is above the high watermark {hw}")
                await replicas.log_manager.delete_records(t.name, p.partition_index, offset)
                low = replicas.low_watermark(partition)
                if low < offset:
                    low = await asyncio.wait_for(replicas.wait_low_watermark(partition, offset),
                                                 max(0.0, deadline - loop.time()))
                results.append(Result(partition_index=p.partition_index, low_watermark=low,
                                      error_code=ErrorCode.NONE))
            except TimeoutError:
                results.append(Result(partition_index=p.partition_index, low_watermark=-1,
                                      error_code=ErrorCode.REQUEST_TIMED_OUT))
            except KafkaError as e:
                results.append(Result(partition_index=p.partition_index, low_watermark=-1,
                                      error_code=e.code))
        topics.append(R.DeleteRecordsTopicResult(name=t.name, partitions=results))
    return R(throttle_time_ms=0, topics=topics)

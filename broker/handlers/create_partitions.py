"""CreatePartitions (v0-v3): grow a topic's partition count, optionally with assignments.

A change the controller has not confirmed within the request's timeout_ms gets
REQUEST_TIMED_OUT (it may still happen). More than 10,000 new partitions in one request
fail every topic with POLICY_VIOLATION before anything is made, as in Kafka
(ReplicationControlManager.MAX_PARTITIONS_PER_BATCH).
A topic the principal may not ALTER is TOPIC_AUTHORIZATION_FAILED (broker.authorizer).
"""

from kafka.protocol.admin import CreatePartitionsRequest, CreatePartitionsResponse

from odradek.broker.authorizer import TOPIC
from odradek.broker.handlers import handles, time_left
from odradek.broker.handlers.create_topics import MAX_PARTITIONS_PER_BATCH
from odradek.protocol.errors import ErrorCode, KafkaError

R = CreatePartitionsResponse


@handles(CreatePartitionsRequest, 0, 3)
async def handle(ctx, request):
    topics = ctx.broker.image.topics
    additional = sum(t.count - len(topics[t.name].partitions) for t in request.topics
                     if t.name in topics and t.count > len(topics[t.name].partitions))
    if additional > MAX_PARTITIONS_PER_BATCH:
        return R(throttle_time_ms=0, results=[R.CreatePartitionsTopicResult(
            name=t.name, error_code=ErrorCode.POLICY_VIOLATION,
            error_message="Excessively large number of additional partitions per request.")
            for t in request.topics])
    results = []
    timeout_s = time_left(request.timeout_ms)
    for t in request.topics:
        try:
            if not ctx.may(TOPIC, t.name):
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)  # (no message, as Kafka)
            assignments = [list(a.broker_ids) for a in t.assignments] if t.assignments else None
            await ctx.broker.controller.create_partitions(t.name, t.count, assignments,
                                                          request.validate_only, timeout_s=timeout_s())
            code, message = ErrorCode.NONE, None
        except KafkaError as e:
            code, message = e.code, e.message
        results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=code,
                                                     error_message=message))
    return R(throttle_time_ms=0, results=results)

"""DeleteTopics (v1-v6, as Kafka 4 after KIP-896): by name, or from v6 by topic id; carried
out by the controller, which answers TOPIC_DELETION_DISABLED when its delete.topic.enable
is false.

A deletion the controller has not confirmed within the request's timeout_ms gets
REQUEST_TIMED_OUT (it may still happen).A topic the principal may not DELETE is TOPIC_AUTHORIZATION_FAILED (broker.authorizer).
"""

import uuid

from kafka.protocol.admin import DeleteTopicsRequest, DeleteTopicsResponse

from odradek.broker.authorizer import DENIED_MESSAGE, TOPIC
from odradek.broker.handlers import handles, time_left
from odradek.protocol.errors import ErrorCode, KafkaError

R = DeleteTopicsResponse
ZERO_UUID = uuid.UUID(int=0)


@handles(DeleteTopicsRequest, 1, 6)
async def handle(ctx, request):
    broker = ctx.broker
    if ctx.header.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, ZERO_UUID) for name in request.topic_names]
    results = []
    timeout_s = time_left(request.timeout_ms)
    for name, topic_id in wanted:
        if name is None:
            topic = broker.image.topics_by_id.get(str(topic_id))
            if topic is None:
                results.append(R.DeletableTopicResult(
                    name=None, topic_id=topic_id, error_code=ErrorCode.UNKNOWN_TOPIC_ID,
                    error_message=f"Topic id {topic_id} does not exist."))
                continue
            name = topic.name
        topic = broker.image.topics.get(name)
        if not ctx.may(TOPIC, name):
            results.append(R.DeletableTopicResult(name=name, topic_id=topic_id,
                                                  error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                                  error_message=DENIED_MESSAGE[ErrorCode.TOPIC_AUTHORIZATION_FAILED]))
            continue
        try:
            await broker.controller.delete_topic(name, timeout_s=timeout_s())
            code, message = ErrorCode.NONE, None
        except KafkaError as e:
            code, message = e.code, e.message
        results.append(R.DeletableTopicResult(name=name, topic_id=topic.uuid if topic else ZERO_UUID,
                                              error_code=code, error_message=message))
    return R(throttle_time_ms=0, responses=results)

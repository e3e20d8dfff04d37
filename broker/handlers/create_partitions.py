"""CreatePartitions (v0-v3): grow a topic's partition count, optionally with assignments.

A change the controller has not confirmed within the request's timeout_ms gets
REQUEST_TIMED_OUT (it may still happen)."""

from kafka.protocol.admin import CreatePartitionsRequest, CreatePartitionsResponse

from odradek.broker.handlers import handles, time_left
from odradek.protocol.errors import ErrorCode, KafkaError

R = CreatePartitionsResponse


@handles(CreatePartitionsRequest, 0, 3)
async def handle(ctx, request):
    results = []
    timeout_s = time_left(request.timeout_ms)
    for t in request.topics:
        try:
            assignments = [list(a.broker_ids) for a in t.assignments] if t.assignments else None
            await ctx.broker.controller.create_partitions(t.name, t.count, assignments,
                                                          request.validate_only, timeout_s=timeout_s())
            code, message = ErrorCode.NONE, None
        except KafkaError as e:
            code, message = e.code, e.message
        results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=code,
                                                     error_message=message))
    return R(throttle_time_ms=0, results=results)

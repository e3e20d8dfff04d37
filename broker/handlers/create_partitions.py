"""CreatePartitions (v0-v3): grow a topic's partition count, optionally with assignments."""

from kafka.protocol.admin import CreatePartitionsRequest, CreatePartitionsResponse

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode, KafkaError

R = CreatePartitionsResponse


@handles(CreatePartitionsRequest, 0, 3)
async def handle(ctx, request):
    results = []
    for t in request.topics:
        try:
            assignments = [list(a.broker_ids) for a in t.assignments] if t.assignments else None
            await ctx.broker.controller.create_partitions(t.name, t.count, assignments,
                                                          request.validate_only)
            code, message = ErrorCode.NONE, None
        except KafkaError as e:
            code, message = e.code, e.message
        results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=code,
                                                     error_message=message))
    return R(throttle_time_ms=0, results=results)

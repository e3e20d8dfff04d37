"""AlterPartitionReassignments (v0-v1, KIP-455): move a partition's replicas, carried out by
the active controller (``Controller.alter_partition_reassignments``; the rules in
replication/reassignment.py).

Each partition's replicas list is the target; null cancels its reassignment. The new
replicas copy the log and join the ISR; the old ones leave once they have (kafka-reassign-
partitions --verify and ListPartitionReassignments show the progress). v1 adds
allow_replication_factor_change (false: a target of another size is
INVALID_REPLICATION_FACTOR), echoed in the answer. A controller that does not confirm in
time answers REQUEST_TIMED_OUT at the top level and for every partition.
"""

from kafka.protocol.admin import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
)

from odradek.broker.handlers import handles, time_left
from odradek.protocol.errors import ErrorCode, KafkaError

R = AlterPartitionReassignmentsResponse
T = R.ReassignableTopicResponse


@handles(AlterPartitionReassignmentsRequest, 0, 1)
async def handle(ctx, request):
    wanted = [[t.name, p.partition_index, None if p.replicas is None else list(p.replicas)]
              for t in request.topics for p in t.partitions]
    allow = getattr(request, "allow_replication_factor_change", True)
    allow = True if allow is None else allow
    code, message = ErrorCode.NONE, None
    try:
        results = await ctx.broker.controller.alter_partition_reassignments(
            wanted, allow, timeout_s=time_left(request.timeout_ms)())
    except KafkaError as e:
        code, message = e.code, e.message
        results = [[name, index, int(e.code), e.message] for name, index, _ in wanted]
    by_topic: dict[str, list] = {}
    for name, index, error, text in results:
        by_topic.setdefault(name, []).append(T.ReassignablePartitionResponse(
            partition_index=index, error_code=error, error_message=text))
    return R(throttle_time_ms=0, allow_replication_factor_change=allow, error_code=code,
             error_message=message,
             responses=[T(name=name, partitions=partitions) for name, partitions in by_topic.items()])

"""ElectLeaders (v0-v2): preferred (0) or unclean (1) leader elections, carried out by the
active controller (``Controller.elect_leaders``, decisions in replication/elections.py).

v0 has no election type (preferred) and no top-level error code. topic_partitions null
asks for every partition; then partitions that need no election are left out of the
answer, as Kafka does. A partition named twice (even in two entries of its topic) gets
INVALID_REQUEST and takes no part in the election. A controller that does not confirm
within timeout_ms answers REQUEST_TIMED_OUT at the top level (v1+) and for every
partition named, as Kafka's ElectLeadersRequest.getErrorResponse does.
Without ALTER on the cluster (Kafka's code; its table says CLUSTER_ACTION) every partition
and the top-level error are CLUSTER_AUTHORIZATION_FAILED (broker.authorizer).
"""

from collections import Counter

from kafka.protocol.admin import ElectLeadersRequest, ElectLeadersResponse

from odradek.broker.authorizer import CLUSTER
from odradek.broker.handlers import handles, time_left
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.acls import CLUSTER_NAME
from odradek.replication.elections import PREFERRED

R = ElectLeadersResponse
DUPLICATE = "Duplicate partition in the request"


def _response(code: int, results: list) -> R:
    topics = [R.ReplicaElectionResult(topic=name, partition_result=[
        R.ReplicaElectionResult.PartitionResult(partition_id=p, error_code=c, error_message=m)
        for p, c, m in partitions]) for name, partitions in results]
    return R(throttle_time_ms=0, error_code=code, replica_election_results=topics)


def split_duplicates(topic_partitions) -> tuple[list, list]:
    """The [topic, partition] pairs named once, and those named more than once."""
    named = Counter((t.topic, p) for t in topic_partitions for p in t.partitions)
    return [[t, p] for (t, p), n in named.items() if n == 1], [[t, p] for (t, p), n in named.items() if n > 1]


def merge(results: list, extra: list) -> list:
    """Add [topic, partition, code, message] rows to per-topic results, keeping topic order."""
    by_topic = {name: partitions for name, partitions in results}
    for name, partition, code, message in extra:
        if name not in by_topic:
            by_topic[name] = []
            results.append([name, by_topic[name]])
        by_topic[name].append([partition, code, message])
    return results


@handles(ElectLeadersRequest, 0, 2)
async def handle(ctx, request):
    election_type = getattr(request, "election_type", None)
    election_type = PREFERRED if election_type is None else election_type
    wanted, duplicates = (None, []) if request.topic_partitions is None else \
        split_duplicates(request.topic_partitions)
    if not ctx.may(CLUSTER, CLUSTER_NAME):
        code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return _response(code, merge([], [[t, p, code, None] for t, p in (wanted or []) + duplicates]))
    try:
        results = await ctx.broker.controller.elect_leaders(election_type, wanted,
                                                            timeout_s=time_left(request.timeout_ms)())
    except KafkaError as e:
        return _response(e.code, merge([], [[t, p, e.code, e.message] for t, p in (wanted or []) + duplicates]))
    return _response(ErrorCode.NONE,
                     merge(results, [[t, p, ErrorCode.INVALID_REQUEST, DUPLICATE] for t, p in duplicates]))

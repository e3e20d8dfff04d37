"""OffsetFetch (v1-v10, as Kafka 4 after KIP-896): a group's committed offsets.

A partition without a committed offset answers offset -1, metadata "" and leader
epoch -1 (no error). ``topics`` null (v2+) asks for every committed offset of the
group. Group-level errors (INVALID_GROUP_ID, NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS) go in each partition for v0-v1, which have no
top-level error, at the top level for v2-v7, and per group for v8+, which asks for
several groups at once. require_stable (v7+, KIP-447): a partition with an offset
committed in a transaction not yet ended (TxnOffsetCommit) answers UNSTABLE_OFFSET_COMMIT
and offset -1, so a consumer that read_committed retries instead of starting from an
offset the transaction is about to replace. v9's member id and epoch belong to KIP-848 groups and are
not checked for classic groups. v10 (KIP-848) names topics by id, in requests and
answers: an id this cluster does not know answers UNKNOWN_TOPIC_ID on each partition asked.
"""

from kafka.protocol.consumer.group import OffsetFetchRequest, OffsetFetchResponse

from odradek.broker.handlers import handles
from odradek.broker.handlers.offset_commit import TOPIC_ID_VERSION, topic_name
from odradek.protocol.errors import ErrorCode

R = OffsetFetchResponse
MULTI_GROUP_VERSION = 8
TOP_LEVEL_ERROR_VERSION = 2


def _partitions(cls, offsets: dict, error: ErrorCode) -> list:
    out = []
    for partition, value in offsets.items():
        unstable = value is UNSTABLE
        value = None if unstable else value
        out.append(cls(partition_index=partition,
                       committed_offset=value.offset if value else -1,
                       committed_leader_epoch=value.leader_epoch if value else -1,
                       metadata=value.metadata if value else "",
                       error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT if unstable else error))
    return out


UNSTABLE = object()  # in place of an offset: one pending in a transaction (require_stable)


def _fetch(ctx, group_id: str, topics, require_stable: bool = False):
    wanted = None if topics is None else [(t.name, list(t.partition_indexes)) for t in topics
                                          if t.name is not None]
    groups = ctx.broker.groups
    error, found = groups.fetch_offsets(group_id, wanted)
    if error and wanted is not None:
        # Show the failure on the partitions asked for (the only place v0-v1 have).
        found = {name: dict.fromkeys(partitions) for name, partitions in wanted}
    if require_stable and not error:
        for topic, partition in groups.pending_txn_offsets(group_id):
            if wanted is None or partition in found.get(topic, {}):
                found.setdefault(topic, {})[partition] = UNSTABLE
    return error, found


@handles(OffsetFetchRequest, 1, 10)
async def handle(ctx, request):
    version = ctx.header.api_version
    if version >= MULTI_GROUP_VERSION:
        G = R.OffsetFetchResponseGroup
        T = G.OffsetFetchResponseTopics
        groups = []
        by_id = version >= TOPIC_ID_VERSION
        image = ctx.broker.image
        for g in request.groups:
            unknown = []
            if by_id and g.topics is not None:
                for t in g.topics:
                    t.name = topic_name(image, t.topic_id)
                    if t.name is None:
                        unknown.append(t)
            error, found = _fetch(ctx, g.group_id, g.topics, request.require_stable)
            P = T.OffsetFetchResponsePartitions
            topics = [T(name=None if by_id else name,
                        topic_id=image.topics[name].uuid if by_id and name in image.topics else None,
                        partitions=_partitions(P, offsets, ErrorCode.NONE))
                      for name, offsets in found.items()
                      if not by_id or name in image.topics]
            topics += [T(topic_id=t.topic_id, partitions=_partitions(
                P, dict.fromkeys(t.partition_indexes), ErrorCode.UNKNOWN_TOPIC_ID)) for t in unknown]
            groups.append(G(group_id=g.group_id, error_code=error, topics=topics))
        return R(throttle_time_ms=0, groups=groups)
    T = R.OffsetFetchResponseTopic
    error, found = _fetch(ctx, request.group_id, request.topics, version >= 7 and request.require_stable)
    partition_error = error if version < TOP_LEVEL_ERROR_VERSION else ErrorCode.NONE
    return R(throttle_time_ms=0, error_code=error, topics=[
        T(name=name, partitions=_partitions(T.OffsetFetchResponsePartition, offsets, partition_error))
        for name, offsets in found.items()])

"""OffsetFetch (v1-v10, as Kafka 4 after KIP-896): a group's committed offsets.

A partition without a committed offset answers offset -1, metadata "" and leader
epoch -1 (no error). ``topics`` null (v2+) asks for every committed offset of the
group. Group-level errors (INVALID_GROUP_ID, NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS) go in each partition for v0-v1, which have no
top-level error, at the top level for v2-v7, and per group for v8+, which asks for
several groups at once. require_stable (v7+, KIP-447): a partition with an offset
committed in a transaction not yet ended (TxnOffsetCommit) answers UNSTABLE_OFFSET_COMMIT
and offset -1, so a consumer that read_committed retries instead of starting from an
offset the transaction is about to replace. v9's member id and epoch belong to KIP-848
groups: a consumer-protocol member's must be current (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH);
a null id with epoch -1 (the admin client) is always answered; they are not checked for
classic groups. v10 (KIP-848) names topics by id, in requests and
answers: an id this cluster does not know answers UNKNOWN_TOPIC_ID on each partition asked.
Authorization (broker.authorizer): DESCRIBE on the group, else GROUP_AUTHORIZATION_FAILED
where the group-level errors go; DESCRIBE on each topic, else its partitions asked for are
TOPIC_AUTHORIZATION_FAILED, and a fetch of every offset leaves such topics out.
"""

from kafka.protocol.consumer.group import OffsetFetchRequest, OffsetFetchResponse

from odradek.broker.authorizer import GROUP, TOPIC
from odradek.broker.handlers import handles
from odradek.broker.handlers.offset_commit import TOPIC_ID_VERSION, topic_name
from odradek.protocol.errors import ErrorCode

R = OffsetFetchResponse
MULTI_GROUP_VERSION = 8
MEMBER_EPOCH_VERSION = 9
TOP_LEVEL_ERROR_VERSION = 2


def _partitions(cls, offsets: dict, error: ErrorCode, denied: bool = False) -> list:
    if denied:
        error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
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


def _fetch(ctx, group_id: str, topics, version: int, require_stable: bool = False,
           member_id: str | None = None, member_epoch: int = -1):
    """(group error, {topic: {partition: offset, UNSTABLE or None}}, topics denied to the
    principal). ``member_id`` and ``member_epoch`` (v9+) are checked for consumer-protocol
    groups."""
    wanted = None if topics is None else [(t.name, list(t.partition_indexes)) for t in topics
                                          if t.name is not None]
    groups = ctx.broker.groups
    denied = {name for name, _ in wanted or () if not ctx.may(TOPIC, name)}
    if not ctx.may(GROUP, group_id):
        error, found = ErrorCode.GROUP_AUTHORIZATION_FAILED, {}
        if version >= TOP_LEVEL_ERROR_VERSION:
            return error, {}, set()  # (Kafka lists nothing of a group it may not describe)
    else:
        error, found = groups.fetch_offsets(
            group_id, None if wanted is None else [w for w in wanted if w[0] not in denied],
            member_id, member_epoch)
    if wanted is None:
        found = {name: offsets for name, offsets in found.items() if ctx.may(TOPIC, name)}
    elif error:
        # Show the failure on the partitions asked for (the only place v0-v1 have).
        found = {name: dict.fromkeys(partitions) for name, partitions in wanted}
        denied = set()
    else:
        found |= {name: dict.fromkeys(partitions) for name, partitions in wanted if name in denied}
    if require_stable and not error:
        for topic, partition in groups.pending_txn_offsets(group_id):
            if topic not in denied and (wanted is None or partition in found.get(topic, {})):
                found.setdefault(topic, {})[partition] = UNSTABLE
    return error, found, denied


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
            member = (g.member_id, g.member_epoch) if version >= MEMBER_EPOCH_VERSION else (None, -1)
            error, found, denied = _fetch(ctx, g.group_id, g.topics, version, request.require_stable,
                                          *member)
            P = T.OffsetFetchResponsePartitions
            topics = [T(name=None if by_id else name,
                        topic_id=image.topics[name].uuid if by_id and name in image.topics else None,
                        partitions=_partitions(P, offsets, ErrorCode.NONE, name in denied))
                      for name, offsets in found.items()
                      if not by_id or name in image.topics]
            topics += [T(topic_id=t.topic_id, partitions=_partitions(
                P, dict.fromkeys(t.partition_indexes), ErrorCode.UNKNOWN_TOPIC_ID)) for t in unknown]
            groups.append(G(group_id=g.group_id, error_code=error, topics=topics))
        return R(throttle_time_ms=0, groups=groups)
    T = R.OffsetFetchResponseTopic
    error, found, denied = _fetch(ctx, request.group_id, request.topics, version,
                                  version >= 7 and request.require_stable)
    partition_error = error if version < TOP_LEVEL_ERROR_VERSION else ErrorCode.NONE
    return R(throttle_time_ms=0, error_code=error, topics=[
        T(name=name, partitions=_partitions(T.OffsetFetchResponsePartition, offsets, partition_error,
                                            name in denied))
        for name, offsets in found.items()])

"""DescribeShareGroupOffsets (v0-v1, KIP-932): each share partition's start offset (SPSO)
as the share coordinator holds it (``__share_group_state``), what ``kafka-share-groups
--describe`` shows.

The group must be a share group this node coordinates (else its coordinator error, or
GROUP_ID_NOT_FOUND). Topics null: every partition of the group that has a share state
(one never fetched is left out, as Kafka's uninitialized partitions), gathered from the
share coordinators of all live nodes; named partitions without a state answer
StartOffset -1. Lag (v1): the high watermark
less the start offset less what is done (acknowledged, archived) in the in-flight window,
when this node leads the partition; -1 (unknown) otherwise. Authorization: DESCRIBE on
the group (else GROUP_AUTHORIZATION_FAILED for it) and on each topic (topics not
described are left out).
"""

from odradek.broker.authorizer import GROUP, TOPIC
from odradek.broker.handlers import handles
from odradek.broker.share.partition import DONE
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.messages import (
    DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse,
)

R = DescribeShareGroupOffsetsResponse
G = R.DescribeShareGroupOffsetsResponseGroup
T = G.DescribeShareGroupOffsetsResponseTopic
P = T.DescribeShareGroupOffsetsResponsePartition


def _lag(ctx, topic: str, index: int, state) -> int:
    try:
        high_watermark = ctx.broker.replicas.leader_partition(topic, index).log.high_watermark
    except KafkaError:
        return -1
    done = sum(last - first + 1 for first, last, kind, _ in state.batches if kind in DONE)
    return max(0, high_watermark - state.start_offset - done)


async def _group(ctx, group_id: str, topics) -> G:
    def failed(error: ErrorCode) -> G:
        return G(group_id=group_id, topics=[], error_code=error, error_message=None)
    if not ctx.may(GROUP, group_id):
        return failed(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    error, group = ctx.broker.groups.describe_share_group(group_id)
    if error or group is None:
        return failed(error or ErrorCode.GROUP_ID_NOT_FOUND)
    image = ctx.broker.image
    coordinator = ctx.broker.share_coordinator
    if topics is None:
        states = await coordinator.group_states(group_id)
        by_topic: dict = {}
        for topic_id, index in states:
            by_topic.setdefault(topic_id, []).append(index)
        wanted = [(t.name, sorted(by_topic[t.uuid])) for t in
                  sorted((t for t in image.topics.values() if t.uuid in by_topic), key=lambda t: t.name)]
    else:
        wanted = [(t.topic_name, list(t.partitions)) for t in topics]
    out = []
    for name, partitions in wanted:
        topic = image.topics.get(name)
        if topic is None or not ctx.may(TOPIC, name):
            continue
        rows = []
        for index in partitions:
            if topics is None:
                read_error, state = ErrorCode.NONE, states[(topic.uuid, index)]
            else:
                read_error, state = await coordinator.read(group_id, topic.uuid, index)
            rows.append(P(partition_index=index, start_offset=state.start_offset if state else -1,
                          leader_epoch=state.leader_epoch if state else -1,
                          lag=_lag(ctx, name, index, state) if state else -1,
                          error_code=read_error, error_message=None))
        if rows:
            out.append(T(topic_name=name, topic_id=topic.uuid, partitions=rows))
    return G(group_id=group_id, topics=out, error_code=ErrorCode.NONE, error_message=None)


@handles(DescribeShareGroupOffsetsRequest, 0, 1)
async def handle(ctx, request):
    return R(throttle_time_ms=0, groups=[await _group(ctx, g.group_id, g.topics) for g in request.groups])

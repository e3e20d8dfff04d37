"""AlterShareGroupOffsets (v0, KIP-932): set the share-partition start offset (SPSO) of
an empty share group's partitions, what ``kafka-share-groups --reset-offsets`` sends.

Each named partition starts again at its StartOffset with nothing in flight: the share
coordinator writes the new state to ``__share_group_state`` with the next state epoch
(broker.share.coordinator), and the partitions' leaders drop what they held in memory,
so the next ShareFetch reads from there. As Kafka 4.4: an unknown group id becomes an
empty share group; a consumer or classic group's id is GROUP_ID_NOT_FOUND ("Group X is
not a share group."); a group with members is NON_EMPTY_GROUP; these and the
coordinator's errors are top-level, and the topics then go unanswered. An unknown topic
or partition is UNKNOWN_TOPIC_OR_PARTITION for its partitions. Authorization: READ on
the group (else GROUP_AUTHORIZATION_FAILED, top-level) and READ on each topic (else
TOPIC_AUTHORIZATION_FAILED for its partitions). Topics refused before the coordinator
(authorization, unknown) come first in the answer, as Kafka's. With share.version at 0
the answer is UNSUPPORTED_VERSION.
"""

from odradek.broker.authorizer import GROUP, TOPIC
from odradek.broker.handlers import handles
from odradek.broker.handlers.share_group_heartbeat import share_groups_enabled
from odradek.protocol.errors import ErrorCode, default_message
from odradek.protocol.messages import AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse

R = AlterShareGroupOffsetsResponse
T = R.AlterShareGroupOffsetsResponseTopic
P = T.AlterShareGroupOffsetsResponsePartition


def failed(cls, error: ErrorCode, message: str | None = None):
    """A top-level error answer of ``cls`` (this API's response or DeleteShareGroupOffsets')."""
    return cls(throttle_time_ms=0, error_code=error, error_message=message or default_message(error), responses=[])


def refused(ctx, group_id: str) -> ErrorCode:
    """What answers a share-group offsets request before anything is read: share groups
    off (share.version 0), or the group's operation not authorized."""
    if not share_groups_enabled(ctx):
        return ErrorCode.UNSUPPORTED_VERSION
    return ErrorCode.NONE if ctx.may(GROUP, group_id) else ErrorCode.GROUP_AUTHORIZATION_FAILED


def _partition(index: int, error: ErrorCode) -> P:
    return P(partition_index=index, error_code=error, error_message=default_message(error) if error else None)


@handles(AlterShareGroupOffsetsRequest, 0, 0)
async def handle(ctx, request):
    group_id = request.group_id
    error = refused(ctx, group_id)
    if error:
        return failed(R, error)
    image = ctx.broker.image
    denied, wanted = [], []
    for t in request.topics:
        topic = image.topics.get(t.topic_name)
        error = (ErrorCode.TOPIC_AUTHORIZATION_FAILED if not ctx.may(TOPIC, t.topic_name)
                 else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if topic is None else ErrorCode.NONE)
        if error:
            denied.append(T(topic_name=t.topic_name, topic_id=topic.uuid if topic is not None else None,
                             partitions=[_partition(p.partition_index, error) for p in t.partitions]))
        else:
            wanted.append((t, topic))
    error, message, _ = await ctx.broker.groups.share_group_offsets(group_id, create=True)
    if error:
        return failed(R, error, message)
    coordinator = ctx.broker.share_coordinator
    answered, altered = [], set()
    for t, topic in wanted:
        rows = []
        for p in t.partitions:
            if p.partition_index in topic.partitions:
                error = await coordinator.initialize(group_id, topic.uuid, p.partition_index, p.start_offset)
                altered.add(topic.uuid)
            else:
                error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            rows.append(_partition(p.partition_index, error))
        answered.append(T(topic_name=t.topic_name, topic_id=topic.uuid, partitions=rows))
    if altered:
        await coordinator.evict_everywhere(group_id, altered)
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, responses=denied + answered)

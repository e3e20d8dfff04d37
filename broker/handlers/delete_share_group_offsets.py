"""DeleteShareGroupOffsets (v0, KIP-932): forget an empty share group's share-partition
state for whole topics, what ``kafka-share-groups --delete-offsets`` sends.

Each named topic's share-partition states are tombstoned in ``__share_group_state``
(broker.share.coordinator) and their leaders drop what they held, so the group starts
that topic again at its share.auto.offset.reset. As Kafka 4.4: an unknown group is
GROUP_ID_NOT_FOUND ("Group X not found."), a consumer or classic group's id too ("Group
X is not a share group."), a group with members NON_EMPTY_GROUP, all top-level; an
unknown topic is UNKNOWN_TOPIC_OR_PARTITION, a topic the group has no state of the same
with "There is no offset information to delete.". Authorization: DELETE on the group
(else GROUP_AUTHORIZATION_FAILED, top-level) and READ on each topic (else
TOPIC_AUTHORIZATION_FAILED for it). The answer lists refused topics first, then the
deleted ones, then the rest, as Kafka's. With share.version at 0 the answer is
UNSUPPORTED_VERSION.
"""

from odradek.broker.authorizer import TOPIC
from odradek.broker.handlers import handles
from odradek.broker.handlers.alter_share_group_offsets import failed, refused
from odradek.protocol.errors import ErrorCode, default_message
from odradek.protocol.messages import (
    DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse,
)

R = DeleteShareGroupOffsetsResponse
T = R.DeleteShareGroupOffsetsResponseTopic
NO_OFFSETS = "There is no offset information to delete."


def _topic(name: str, topic_id, error: ErrorCode, message: str | None = None) -> T:
    return T(topic_name=name, topic_id=topic_id, error_code=error,
             error_message=(message or default_message(error)) if error else None)


@handles(DeleteShareGroupOffsetsRequest, 0, 0)
async def handle(ctx, request):
    group_id = request.group_id
    error = refused(ctx, group_id)
    if error:
        return failed(R, error)
    names = [t.topic_name for t in request.topics]
    denied = [_topic(n, None, ErrorCode.TOPIC_AUTHORIZATION_FAILED) for n in names if not ctx.may(TOPIC, n)]
    error, message, _ = await ctx.broker.groups.share_group_offsets(group_id, create=False)
    if error:
        return failed(R, error, message)
    image = ctx.broker.image
    known = {n: image.topics[n].uuid for n in names if n in image.topics and ctx.may(TOPIC, n)}
    errors = await ctx.broker.share_coordinator.delete_group_states(group_id, set(known.values()))
    deleted, not_deleted = [], []
    for name in names:
        if not ctx.may(TOPIC, name):
            continue
        topic_id = known.get(name)
        if topic_id is None:
            not_deleted.append(_topic(name, None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
        elif topic_id not in errors:
            not_deleted.append(_topic(name, None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, NO_OFFSETS))
        elif errors[topic_id]:
            not_deleted.append(_topic(name, topic_id, errors[topic_id]))
        else:
            deleted.append(_topic(name, topic_id, ErrorCode.NONE))
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, responses=denied + deleted + not_deleted)

"""ShareGroupHeartbeat (v1, KIP-932; v0 was removed in Kafka 4.1): join, stay in and
leave a share group; the coordinator assigns partitions (broker.share.share_group).

A member names itself (MemberId, a UUID the client makes), joins with epoch 0 and its
subscribed topics, then heartbeats every HeartbeatIntervalMs (group.share.heartbeat.interval.ms)
with its epoch; the answer carries the assignment when it changed (a new member epoch)
or when the request was a full one. Epoch -1 leaves. Share groups are served only
while the share.version feature is finalized at 1 or above (Kafka 4.4 answers
UNSUPPORTED_VERSION otherwise). Errors: INVALID_REQUEST (Kafka's messages),
INVALID_GROUP_ID, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, GROUP_ID_NOT_FOUND (the
id is a classic or consumer group's), UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH,
GROUP_MAX_SIZE_REACHED (group.share.max.size), GROUP_AUTHORIZATION_FAILED (READ on the group).
"""

from odradek.broker.authorizer import GROUP
from odradek.broker.handlers import handles
from odradek.broker.handlers.join_group import client_host
from odradek.broker.share.share_group import ShareHeartbeat
from odradek.protocol.errors import ErrorCode
from odradek.protocol.messages import ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse

R = ShareGroupHeartbeatResponse
SHARE_VERSION = "share.version"
DISABLED = "The share group protocol is disabled (share.version is 0)."


def share_groups_enabled(ctx) -> bool:
    """Whether share.version is finalized at 1 or above (UpdateFeatures may set it to 0)."""
    return ctx.broker.image.features.get(SHARE_VERSION, 0) >= 1


@handles(ShareGroupHeartbeatRequest, 1, 1)
async def handle(ctx, request):
    coordinator = ctx.broker.groups
    if not share_groups_enabled(ctx):
        return R(throttle_time_ms=0, error_code=ErrorCode.UNSUPPORTED_VERSION, error_message=DISABLED,
                 member_epoch=0, heartbeat_interval_ms=0)
    if not ctx.may(GROUP, request.group_id):
        return R(throttle_time_ms=0, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, member_epoch=0,
                 heartbeat_interval_ms=0)
    hb = ShareHeartbeat(member_id=request.member_id, member_epoch=request.member_epoch,
                        rack_id=request.rack_id, subscribed_topic_names=request.subscribed_topic_names,
                        client_id=ctx.header.client_id or "", client_host=client_host(ctx))
    result = await coordinator.share_group_heartbeat(request.group_id, hb)
    assignment = None
    if result.assignment is not None:
        assignment = R.Assignment(topic_partitions=[
            R.Assignment.TopicPartitions(topic_id=topic_id, partitions=sorted(ps))
            for topic_id, ps in sorted(result.assignment.items())])
    ok = not result.error
    return R(throttle_time_ms=0, error_code=result.error, error_message=result.message,
             member_id=result.member_id if ok else None, member_epoch=result.member_epoch if ok else 0,
             # (none after leaving, as Kafka answers)
             heartbeat_interval_ms=coordinator.share_config.heartbeat_interval_ms
             if ok and result.member_epoch >= 0 else 0,
             assignment=assignment)

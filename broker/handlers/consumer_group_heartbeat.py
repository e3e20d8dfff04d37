"""ConsumerGroupHeartbeat (v0-v1, KIP-848): join, stay in, reconcile with and leave a
consumer-protocol group; the coordinator assigns (see groups.consumer_group).

A member joins with epoch 0 and its subscription, then heartbeats every
heartbeat_interval_ms with its epoch, sending only what changed (null fields: unchanged)
and its owned partitions; each answer carries its epoch and, when it changed or the
request was a full one, the partitions it may use now. Epoch -1 leaves; -2 leaves for
a while (a static member that will come back under its instance id). v1 adds
SubscribedTopicRegex (RE2 syntax) and requires the client to name itself (KIP-1082; in
v0 an empty member id gets one from the coordinator). The message classes come from
Kafka 4.4's specs (protocol.messages).
Errors: INVALID_REQUEST (with Kafka's messages), INVALID_GROUP_ID, NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS, GROUP_ID_NOT_FOUND (a classic group with members, or no
such group for a non-zero epoch),
UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, UNRELEASED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED,
UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION (v1).
"""

from odradek.broker.groups.consumer_group import Heartbeat
from odradek.broker.handlers import handles
from odradek.broker.handlers.join_group import client_host
from odradek.protocol.messages import ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse

R = ConsumerGroupHeartbeatResponse
REGEX_VERSION = 1


@handles(ConsumerGroupHeartbeatRequest, 0, 1)
async def handle(ctx, request):
    version = ctx.header.api_version
    owned = None
    if request.topic_partitions is not None:
        owned = {}
        for t in request.topic_partitions:
            owned[t.topic_id] = owned.get(t.topic_id, frozenset()) | frozenset(t.partitions)
    hb = Heartbeat(
        member_id=request.member_id, member_epoch=request.member_epoch,
        instance_id=request.instance_id, rack_id=request.rack_id,
        rebalance_timeout_ms=request.rebalance_timeout_ms,
        subscribed_topic_names=request.subscribed_topic_names,
        subscribed_topic_regex=request.subscribed_topic_regex if version >= REGEX_VERSION else None,
        server_assignor=request.server_assignor, owned=owned,
        client_id=ctx.header.client_id or "", client_host=client_host(ctx))
    coordinator = ctx.broker.groups
    result = await coordinator.consumer_group_heartbeat(request.group_id, hb, version)
    assignment = None
    if result.assignment is not None:
        assignment = R.Assignment(topic_partitions=[
            R.Assignment.TopicPartitions(topic_id=topic_id, partitions=sorted(ps))
            for topic_id, ps in sorted(result.assignment.items())])
    return R(throttle_time_ms=0, error_code=result.error, error_message=result.message,
             member_id=result.member_id if not result.error else None,
             member_epoch=result.member_epoch if not result.error else 0,
             heartbeat_interval_ms=(coordinator.consumer_config_of(request.group_id).heartbeat_interval_ms
                                    if not result.error else 0),
             assignment=assignment)

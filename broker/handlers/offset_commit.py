"""OffsetCommit (v2-v10, as Kafka 4 after KIP-896): store a group's committed offsets in ``__consumer_offsets``.

Acknowledged only once the records are committed (``wait_committed``). A member of
an active group commits with its generation and member id; generation -1 with an
empty member id (a consumer that assigns itself partitions, or an admin) is
accepted while the group has no members, creating the group if needed. For a
group that does not exist and a generation >= 0, v9+ gets GROUP_ID_NOT_FOUND and
older versions ILLEGAL_GENERATION, as in Kafka. Per partition:
OFFSET_METADATA_TOO_LARGE (offset.metadata.max.bytes), UNKNOWN_TOPIC_OR_PARTITION;
a group-level failure (INVALID_GROUP_ID for an empty group id, UNKNOWN_MEMBER_ID,
ILLEGAL_GENERATION, FENCED_INSTANCE_ID, REBALANCE_IN_PROGRESS, NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS) is every partition's error and nothing is written.
Version notes: v1's commit_timestamp and v2-v4's retention_time_ms are ignored
(offsets.retention.minutes rules); v6 adds the leader epoch, v7 group_instance_id,
v9 (KIP-848) carries a consumer-protocol member's epoch in generation_id_or_member_epoch:
it must be the member's current one (STALE_MEMBER_EPOCH), the member known
(UNKNOWN_MEMBER_ID), and such members must use v9+ (UNSUPPORTED_VERSION);
v10 (KIP-848) names topics by id only: an id this cluster does not know is UNKNOWN_TOPIC_ID
on each of its partitions, and the others are committed.
Authorization (broker.authorizer): READ on the group, else every partition is
GROUP_AUTHORIZATION_FAILED and nothing is written; READ on each topic, else its
partitions are TOPIC_AUTHORIZATION_FAILED and the others are committed.
"""

import uuid

from kafka.protocol.consumer.group import OffsetCommitRequest, OffsetCommitResponse

from odradek.broker.authorizer import GROUP, TOPIC
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

TOPIC_ID_VERSION = 10

R = OffsetCommitResponse
Topic = R.OffsetCommitResponseTopic
Partition = Topic.OffsetCommitResponsePartition


def topic_name(image, topic_id: uuid.UUID) -> str | None:
    topic = image.topics_by_id.get(str(topic_id))
    return topic.name if topic else None


@handles(OffsetCommitRequest, 2, 10)
async def handle(ctx, request):
    version = ctx.header.api_version
    by_id = version >= TOPIC_ID_VERSION
    names = [topic_name(ctx.broker.image, t.topic_id) if by_id else t.name for t in request.topics]
    group_allowed = ctx.may(GROUP, request.group_id)
    denied = {name for name in names if name is not None and not ctx.may(TOPIC, name)}
    offsets = [(name, p.partition_index, p.committed_offset,
                p.committed_leader_epoch if version >= 6 else -1, p.committed_metadata)
               for name, t in zip(names, request.topics, strict=True) if name is not None and name not in denied
               for p in t.partitions]
    results = {(name, p.partition_index): ErrorCode.TOPIC_AUTHORIZATION_FAILED
               for name, t in zip(names, request.topics, strict=True) if name in denied
               for p in t.partitions}
    if not group_allowed:
        results = {(name, p.partition_index): ErrorCode.GROUP_AUTHORIZATION_FAILED
                   for name, t in zip(names, request.topics, strict=True) for p in t.partitions}
    else:
        results |= await ctx.broker.groups.commit_offsets(
            request.group_id,
            generation_id=request.generation_id_or_member_epoch if version >= 1 else -1,
            member_id=request.member_id if version >= 1 else "",
            group_instance_id=request.group_instance_id if version >= 7 else None,
            offsets=offsets, api_version=version)
    return R(throttle_time_ms=0, topics=[
        Topic(name=t.name if not by_id else None, topic_id=t.topic_id if by_id else None,
              partitions=[Partition(partition_index=p.partition_index,
                                    error_code=results.get((name, p.partition_index),
                                                           ErrorCode.UNKNOWN_TOPIC_ID))
                          for p in t.partitions])
        for name, t in zip(names, request.topics, strict=True)])

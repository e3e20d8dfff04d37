"""DescribeTopicPartitions (v0, KIP-966): topics and their partitions, paged by a cursor.

Kafka 4's admin client describes topics with this API whenever the broker offers it
(kafka-topics --describe), instead of Metadata: it never auto-creates a topic, and its
partitions carry the eligible leader replicas (ELR) of KIP-966. Odradek has no ELR, so
both ELR lists are empty, as Kafka's are for a partition whose ISR is whole.

Paging (Kafka's rules, held against Kafka 4.4 in tests/peers): the requested topics, or
every topic when none is named, sorted by name, from the cursor's topic on; at most
response_partition_limit partitions (clamped to 1..2000, Kafka's
max.request.partition.size.limit) per answer. Where a topic is cut, next_cursor names it and
the first partition left out; where the limit is used up exactly at a topic's end,
next_cursor names the next topic at partition 0. Named topics that do not exist are answered
with UNKNOWN_TOPIC_OR_PARTITION (or INVALID_TOPIC_EXCEPTION for an illegal name) while the
limit lasts. A cursor whose topic is not among the named ones, or whose partition is
negative, makes the whole request INVALID_REQUEST, each named topic carrying that error.

Authorization (broker.authorizer): a named topic the principal may not DESCRIBE is
TOPIC_AUTHORIZATION_FAILED with no partitions; unnamed, such topics are left out. Every
topic carries the principal's authorized operations on it (with no authorizer, all of
the topic operations Kafka supports: 3576).
"""

import uuid
from dataclasses import dataclass

from kafka.protocol.admin import DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse

from odradek.broker.authorizer import TOPIC
from odradek.broker.handlers import handles
from odradek.broker.handlers.metadata import INTERNAL_TOPICS
from odradek.protocol.errors import ErrorCode
from odradek.replication.acls import operations_bits
from odradek.replication.controller import topic_name_error

R = DescribeTopicPartitionsResponse
MAX_PARTITIONS = 2000  # max.request.partition.size.limit
# Kafka fills topic_authorized_operations in every answer, unasked: without an authorizer
# that is every topic operation (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
# DESCRIBE_CONFIGS, ALTER_CONFIGS: bits 3-8, 10, 11).
NOT_COMPUTED = -2147483648  # INT32_MIN, as in Kafka's answer to an invalid request
ZERO_UUID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class Page:
    """What one answer holds: (topic, first partition, end) per known topic, or
    (topic, None, None) for a named topic that does not exist; and the next cursor."""
    topics: list[tuple[str, int | None, int | None]]
    next_cursor: tuple[str, int] | None


def page(topics: list[tuple[str, int | None]], cursor: tuple[str, int] | None, limit: int,
         fetch_all: bool) -> Page:
    """Cut the sorted (name, partition count or None when unknown) list into one answer."""
    cursor_topic, cursor_partition = cursor if cursor is not None else ("", 0)
    remaining = max(min(MAX_PARTITIONS, limit), 1)
    out = []
    for name, count in topics:
        if name < cursor_topic:
            continue
        if remaining == 0:
            return Page(out, (name, 0))
        if count is None:
            if not fetch_all:
                out.append((name, None, None))
            continue
        start = cursor_partition if name == cursor_topic else 0
        end = min(count, start + remaining)
        out.append((name, start, max(start, end)))
        if end < count:
            return Page(out, (name, end))
        remaining -= max(0, end - start)
    return Page(out, None)


def _partition(p, live: set[int]) -> R.DescribeTopicPartitionsResponseTopic.DescribeTopicPartitionsResponsePartition:
    leader = p.leader if p.leader in live else -1
    return R.DescribeTopicPartitionsResponseTopic.DescribeTopicPartitionsResponsePartition(
        error_code=ErrorCode.NONE if leader >= 0 else ErrorCode.LEADER_NOT_AVAILABLE,
        partition_index=p.partition, leader_id=leader, leader_epoch=p.leader_epoch,
        replica_nodes=list(p.replicas), isr_nodes=list(p.isr),
        eligible_leader_replicas=[], last_known_elr=[],
        offline_replicas=[r for r in p.replicas if r not in live])


def _topic(code: ErrorCode, name: str, operations: int, topic_id: uuid.UUID = ZERO_UUID, partitions=()):
    return R.DescribeTopicPartitionsResponseTopic(
        error_code=code, name=name, topic_id=topic_id, is_internal=name in INTERNAL_TOPICS,
        partitions=list(partitions), topic_authorized_operations=operations)


def _cursor(request) -> tuple[str, int] | None:
    c = request.cursor
    return None if c is None else (c.topic_name, c.partition_index)


@handles(DescribeTopicPartitionsRequest, 0, 0)
async def handle(ctx, request):
    image = ctx.broker.image
    cursor = _cursor(request)
    named = sorted({t.name for t in request.topics})
    if (cursor is not None and cursor[1] < 0) or (named and cursor is not None
                                                   and cursor[0] not in named):
        return R(throttle_time_ms=0, next_cursor=None,
                 topics=[_topic(ErrorCode.INVALID_REQUEST, n, NOT_COMPUTED)
                         for n in named])
    names = named or [n for n in sorted(image.topics) if ctx.may(TOPIC, n)]
    allowed = {n for n in names if ctx.may(TOPIC, n)}
    counts = [(n, len(image.topics[n].partitions) if n in image.topics and n in allowed else None)
              for n in names]
    result = page(counts, cursor, request.response_partition_limit, fetch_all=not named)
    live = {b.node_id for b in image.brokers.values() if not b.fenced}
    topics = []
    for name, start, end in result.topics:
        topic = image.topics.get(name)
        operations = operations_bits(ctx.authorized_operations(TOPIC, name))  # a plain int32 here
        if name not in allowed:
            topics.append(_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, name, NOT_COMPUTED))
            continue
        if topic is None:
            code = (ErrorCode.INVALID_TOPIC_EXCEPTION if topic_name_error(name)
                    else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            topics.append(_topic(code, name, operations))
            continue
        partitions = [_partition(topic.partitions[i], live) for i in range(start, end)
                      if i in topic.partitions]
        topics.append(_topic(ErrorCode.NONE, name, operations, topic.uuid, partitions))
    next_cursor = None if result.next_cursor is None else R.Cursor(
        topic_name=result.next_cursor[0], partition_index=result.next_cursor[1])
    return R(throttle_time_ms=0, topics=topics, next_cursor=next_cursor)

"""ListOffsets (v1-v11): offsets by time (v0 went with Kafka 4.0, KIP-896).

timestamp -2: the log start offset (earliest); -1: the high watermark (latest), or
for isolation_level 1 (read_committed) the last stable offset; -3 (v7+, KIP-734): the
offset and timestamp of the first record carrying the largest timestamp; otherwise
the offset and timestamp of the first record whose timestamp is at or after the
one asked for, or -1 when there is none. Both read into the batch the indexes find,
as Kafka does, so two records of one batch get their own offsets (librdkafka's tests
0054 and 0081). A record at or above the high watermark is not answered (-1), as in
Kafka. Tiered storage (KIP-405) is not built, so every offset is local: -4 (v8+,
earliest local) is the log start offset, and -5 (v9+, latest tiered) and -6 (v11+,
earliest pending upload) find nothing (offset -1), as Kafka answers for a topic
without remote storage. v10's timeout_ms bounds remote lookups, which never happen
here. A partition named twice in one request is INVALID_REQUEST for both, as in Kafka.
A topic the principal may not DESCRIBE is TOPIC_AUTHORIZATION_FAILED (broker.authorizer).
"""

from kafka.protocol.consumer import ListOffsetsRequest, ListOffsetsResponse

from odradek.broker.authorizer import TOPIC
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode, KafkaError

R = ListOffsetsResponse
PartitionResponse = R.ListOffsetsTopicResponse.ListOffsetsPartitionResponse
EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3
EARLIEST_LOCAL, LATEST_TIERED, EARLIEST_PENDING_UPLOAD = -4, -5, -6


def lookup(partition, timestamp: int, read_committed: bool = False) -> tuple[int, int, int]:
    """(timestamp, offset, leader epoch) for a ListOffsets query on one partition.

    The epoch beside an offset the log found is that of the leader that wrote it (Kafka
    answers the batch's partition leader epoch), so a client can validate the offset
    after a failover; latest answers the current leader epoch; nothing found, -1.
    """
    log_ = partition.log
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        start = log_.log_start_offset
        return -1, start, log_.leader_epoch_cache.epoch_for_offset(start)
    if timestamp in (LATEST_TIERED, EARLIEST_PENDING_UPLOAD):
        return -1, -1, -1
    state = partition.isr_state
    if state is not None and log_.high_watermark < state.leader_epoch_start_offset:
        # KIP-207: a new leader's high watermark may lag until its followers report.
        raise KafkaError(ErrorCode.OFFSET_NOT_AVAILABLE, "The new leader's high watermark is not known yet")
    if timestamp == LATEST:
        latest = partition.last_stable_offset if read_committed else log_.high_watermark
        return -1, latest, partition.leader_epoch
    if timestamp == MAX_TIMESTAMP:
        found = log_.max_timestamp()
    else:
        found = log_.offset_for_timestamp(timestamp)
    if found is None or found[0] >= log_.high_watermark:
        return -1, -1, -1
    return found[1], found[0], log_.leader_epoch_cache.epoch_for_offset(found[0])


@handles(ListOffsetsRequest, 1, 11)
async def handle(ctx, request):
    replicas = ctx.broker.replicas
    topics = []
    for t in request.topics:
        partitions = []
        allowed = ctx.may(TOPIC, t.name)
        indexes = [p.partition_index for p in t.partitions]
        for i, p in enumerate(t.partitions):
            if p.partition_index in indexes[:i]:
                continue  # answered once, as Kafka does
            try:
                if not allowed:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                if indexes.count(p.partition_index) > 1:
                    raise KafkaError(ErrorCode.INVALID_REQUEST, "partition named twice")
                partition = replicas.leader_partition(t.name, p.partition_index)
                replicas.check_leader_epoch(partition, p.current_leader_epoch)
                timestamp, offset, epoch = lookup(partition, p.timestamp,
                                                  request.isolation_level == 1)
                code = ErrorCode.NONE
            except KafkaError as e:
                code, timestamp, offset, epoch = e.code, -1, -1, -1
            partitions.append(PartitionResponse(
                partition_index=p.partition_index, error_code=code,
                old_style_offsets=[offset] if offset >= 0 else [], timestamp=timestamp,
                offset=offset, leader_epoch=epoch))
        topics.append(R.ListOffsetsTopicResponse(name=t.name, partitions=partitions))
    return R(throttle_time_ms=0, topics=topics)

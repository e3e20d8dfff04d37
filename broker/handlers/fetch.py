"""Fetch (v4-v18): records from the partitions' logs, sent without copying them.

- Long polling: the response waits up to max_wait_ms until min_bytes are
  available, woken by appends to any requested partition; an error on any
  partition answers at once.
- Limits: max_bytes for the response, partition_max_bytes per partition, and
  KIP-74: the first partition with data returns at least one whole batch even
  when it is larger than either limit, so a consumer never gets stuck.
- Consumers read up to the high watermark; read_committed ones (isolation_level 1)
  up to the last stable offset (the first offset of the earliest open transaction),
  with the aborted transactions that overlap what they read (from the partition's
  ``.txnindex``), so the client drops those records. Control batches (markers) are
  served in place: clients skip them.
  Followers read up to the log end; their fetch offset tells the leader how far
  they have replicated (replication.isr). A follower is a replica id that names a
  registered broker in the partition's replica set; any other replica id (a broker
  that is no replica of it, an id no broker has) is read as a consumer, up to the
  high watermark, and moves nothing.
- current_leader_epoch fences clients and followers that lag behind a leader
  change (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH); a partition this node does
  not lead is NOT_LEADER_OR_FOLLOWER.
- Topics are named up to v12 and identified by topic id from v13.
- v17 (KIP-853: ReplicaDirectoryId) and v18 (KIP-1166: the follower's HighWatermark) add
  tagged fields that only a follower sends; a consumer's v17/v18 request is v16's, and
  the response is v16's. Odradek's own followers do not send them.
- Fetch sessions (KIP-227) are declined: every response has session id 0, so
  clients send full fetch requests; a session id we never gave is
  FETCH_SESSION_ID_NOT_FOUND.
- A zstd batch asked for below v10 gets UNSUPPORTED_COMPRESSION_TYPE (KIP-110).
- Record bytes go from the segment file to the socket as file slices
  (``protocol.fetch`` splices them into the body; the server sends them).
- Client quotas (broker.quotas): a consumer's response (its record bytes) counts against
  consumer_byte_rate; one that would go over it is answered empty with the throttle
  time (and not counted), and the connection is muted that long, as Kafka does.
- Authorization (broker.authorizer): a follower (replica id >= 0) needs CLUSTER_ACTION on
  the cluster, a consumer READ on each topic; a denied partition is
  TOPIC_AUTHORIZATION_FAILED and nothing of it is read.
"""

import asyncio
import os
import uuid

from kafka.protocol.consumer import FetchRequest

from odradek.broker.authorizer import CLUSTER, TOPIC
from odradek.broker.handlers import handles
from odradek.broker.quotas import CONSUMER_BYTE_RATE
from odradek.broker.server import ChunkedResponse, CloseConnection
from odradek.protocol import records as rec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.fetch import FetchPartition, FetchTopic, encode_fetch_response
from odradek.replication.acls import CLUSTER_NAME

ZSTD = 4
ZSTD_MIN_FETCH_VERSION = 10
READ_COMMITTED = 1
ZERO_UUID = uuid.UUID(int=0)
# (and a denied topic, which Kafka answers as one it does not know)
UNKNOWN_PARTITION_CODES = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_ID,
                           ErrorCode.TOPIC_AUTHORIZATION_FAILED)


def _has_zstd(slices) -> bool:
    """Whether any batch in these file slices is zstd-compressed (reads only headers)."""
    for s in slices:
        pos, end = s.position, s.position + s.size
        while pos + rec.HEADER_SIZE <= end:
            header = rec.parse_header(os.pread(s.fd, rec.HEADER_SIZE, pos))
            if header.compression == ZSTD:
                return True
            pos += header.size
    return False


class _Read:
    """One attempt at answering: per-partition results plus the slices to release."""

    def __init__(self):
        self.topics: list[FetchTopic] = []
        self.reads: list = []
        self.bytes = 0
        self.error = False

    def release(self) -> None:
        for r in self.reads:
            r.release()
        self.reads = []


def _read_all(ctx, request, wanted, version: int, replica_id: int, denied: set) -> _Read:
    replicas = ctx.broker.replicas
    out = _Read()
    remaining = request.max_bytes
    read_committed = request.isolation_level == READ_COMMITTED
    for name, topic_id, partitions in wanted:
        topic = FetchTopic(name or "", topic_id, [])
        out.topics.append(topic)
        for fp in partitions:
            result = FetchPartition(fp.partition, aborted_transactions=[] if read_committed else None)
            topic.partitions.append(result)
            follower = False
            try:
                if name is None:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID, f"Unknown topic id {topic_id}")
                if name in denied:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                partition = replicas.leader_partition(name, fp.partition)
                replicas.check_leader_epoch(partition, fp.current_leader_epoch)
                follower = replica_id >= 0 and replicas.is_follower(partition, replica_id)
                if follower:  # its fetch offset is its log end offset: maybe a new HW
                    replicas.on_follower_fetch(name, fp.partition, replica_id, fp.fetch_offset,
                                               fp.log_start_offset)
                log_ = partition.log
                result.high_watermark = log_.high_watermark
                result.last_stable_offset = lso = partition.last_stable_offset
                result.log_start_offset = log_.log_start_offset
                read = replicas.read(name, fp.partition, fp.fetch_offset,
                                     max(0, min(fp.partition_max_bytes, remaining)),
                                     min_one=out.bytes == 0, up_to_high_watermark=not follower,
                                     max_offset=lso if read_committed and not follower else None)
                if read_committed and not follower:
                    result.aborted_transactions = [
                        (t.producer_id, t.first_offset)
                        for t in partition.txn_index.collect(fp.fetch_offset, lso)]
            except KafkaError as e:
                # As Kafka answers a consumer's failed read: no offsets; and a partition it
                # does not know at all gets an empty aborted-transactions list rather than
                # null. A follower keeps them: on OFFSET_OUT_OF_RANGE Odradek's followers
                # restart at the leader's log start offset (replication.partition), where
                # Kafka's would ask ListOffsets.
                result.error_code = e.code
                if not follower:
                    result.high_watermark = result.last_stable_offset = result.log_start_offset = -1
                if e.code in UNKNOWN_PARTITION_CODES:
                    result.aborted_transactions = []
                out.error = True
                continue
            if read.slices and version < ZSTD_MIN_FETCH_VERSION and _has_zstd(read.slices):
                read.release()
                result.error_code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
                out.error = True
                continue
            out.reads.append(read)
            result.records = read.slices
            out.bytes += read.size
            remaining -= read.size
    return out


@handles(FetchRequest, 4, 18)
async def handle(ctx, request):
    broker = ctx.broker
    version = ctx.header.api_version
    if version >= 7 and request.session_id != 0:
        return ChunkedResponse(encode_fetch_response(version, [], error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND))
    wanted = []
    for t in request.topics:
        if version >= 13:
            topic = broker.image.topics_by_id.get(str(t.topic_id))
            wanted.append((topic.name if topic else None, t.topic_id, t.partitions))
        else:
            topic = broker.image.topics.get(t.topic)
            wanted.append((t.topic, topic.uuid if topic else ZERO_UUID, t.partitions))
    # A follower sends its replica id (in replica_state from v15): it reads up to the
    # log end, and its fetch offsets drive the ISR and the high watermark.
    if version >= 15:  # a tagged field, absent for consumers
        replica_id = request.replica_state.replica_id if request.replica_state else -1
    else:
        replica_id = request.replica_id
    named = {name for name, _, _ in wanted if name}
    if replica_id >= 0 and broker.config.node_ids_by_principal is not None \
            and ctx.connection.node_id != replica_id:
        # Nodes authenticate as themselves (node.principals): a replica's fetch offsets move
        # the ISR and the high watermark, so only that node may fetch as it.
        raise CloseConnection(f"{ctx.principal} fetches as replica {replica_id}, which is not its node")
    if replica_id >= 0:
        denied = set() if ctx.may(CLUSTER, CLUSTER_NAME) else named
    else:
        denied = {name for name in named if not ctx.may(TOPIC, name)}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request.max_wait_ms, 0) / 1000
    keys = [(name, p.partition) for name, _, ps in wanted if name and name not in denied for p in ps]
    while True:
        attempt = _read_all(ctx, request, wanted, version, replica_id, denied)
        left = deadline - loop.time()
        if attempt.bytes >= request.min_bytes or attempt.error or left <= 0 or not keys:
            break
        attempt.release()
        await broker.replicas.wait_for_data(keys, left)
    throttle_ms = 0
    if replica_id < 0 and attempt.bytes:
        throttle_ms = ctx.record_quota(CONSUMER_BYTE_RATE, attempt.bytes)
        if throttle_ms:
            ctx.unrecord_quota(CONSUMER_BYTE_RATE, attempt.bytes)
            attempt.release()
            return ChunkedResponse(encode_fetch_response(version, [], throttle_time_ms=throttle_ms))
    _count(broker.stats, attempt.topics, replica_id >= 0 and replica_id in broker.image.brokers)
    chunks = encode_fetch_response(version, attempt.topics)
    return ChunkedResponse(chunks, attempt.release)


def _count(stats, topics: list[FetchTopic], follower: bool) -> None:
    """Kafka's BrokerTopicMetrics of the answer: bytes out (to followers: replication
    bytes), fetches and failed fetches per partition, by topic."""
    for t in topics:
        topic_stats = stats.topic(t.topic)
        for p in t.partitions:
            topic_stats.fetch_requests += 1
            if p.error_code:
                topic_stats.failed_fetch += 1
            elif p.records:
                n = sum(c.size if hasattr(c, "size") else len(c) for c in p.records)
                if follower:
                    topic_stats.replication_bytes_out += n
                else:
                    topic_stats.bytes_out += n

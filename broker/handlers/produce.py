"""Produce (v3-v12): append record batches as the partition leader.

acks: 0 (no response at all; if any partition failed, the connection is closed,
as Kafka does, so the client refreshes its metadata), 1 (after the leader's
append, and its fsync when flush.messages asks for one), -1 (once the high
watermark passed the batch, i.e. every ISR member has it, and it is as durable as
flush.messages asks; REQUEST_TIMED_OUT after the request's timeout;
NOT_ENOUGH_REPLICAS, with nothing appended, while the ISR is smaller than
min.insync.replicas). Anything else is INVALID_REQUIRED_ACKS.

Per-partition failures are error codes, never a dropped connection: CORRUPT_MESSAGE,
INVALID_RECORD, MESSAGE_TOO_LARGE, UNSUPPORTED_COMPRESSION_TYPE (zstd before v7),
INVALID_TIMESTAMP (message.timestamp.before/after.max.ms, checked on each batch's
first and max timestamps), UNKNOWN_TOPIC_OR_PARTITION, KAFKA_STORAGE_ERROR. A
compacted topic refuses records without a key (INVALID_RECORD, naming each one, as
Kafka's LogValidator). Batches are stored as sent (compressed or not) under the
default compression.type=producer; a topic whose compression.type names a codec (or
uncompressed) gets each batch sent in another codec rewritten in it, in a thread, as
Kafka's broker recompresses. Nothing of a failed partition is appended.

Transactional batches are accepted from a request that names its transactional id
(otherwise every partition gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka's
authorization of the id answers a null one); when this node coordinates the producer's
transactional id, the partition must have been added to its ongoing transaction
(KIP-890 part 1: TRANSACTION_ABORTABLE otherwise from v11, INVALID_TXN_STATE before;
INVALID_PRODUCER_EPOCH for another epoch),
so a late write cannot open a transaction that never ends; when another node coordinates
it, that node is asked (AddPartitionsToTxn v5, verify_only) for the partitions where the
producer has no transaction open yet, NOT_ENOUGH_REPLICAS (retriable) when it cannot
answer. v12 (transactions v2, KIP-890 part 2): the producer sends no AddPartitionsToTxn;
the leader adds those partitions to the ongoing transaction itself (at the coordinator,
here or over AddPartitionsToTxn v5) before appending. Control batches (markers) are
the leader's own: a client's gets INVALID_RECORD.

Client quotas (broker.quotas): the request's bytes count against producer_byte_rate; the
response carries the throttle time they earn, and the connection is muted that long.

Authorization (broker.authorizer): a transactional_id needs WRITE on it, else every
partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED; each topic needs WRITE, else its
partitions are TOPIC_AUTHORIZATION_FAILED (nothing of them is appended). As in Kafka 4
(KIP-679) an idempotent batch needs no IDEMPOTENT_WRITE here: InitProducerId checked it.
"""

import asyncio

import structlog
from kafka.protocol.producer import ProduceRequest
from kafka.record import MemoryRecords

from odradek.broker.authorizer import TOPIC, TXN
from odradek.broker.handlers import handles
from odradek.broker.quotas import PRODUCER_BYTE_RATE
from odradek.broker.server import CloseConnection, Deferred
from odradek.broker.transactions.state import abortable_for
from odradek.protocol import records as rec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.produce import PartitionProduceResponse, ProduceResponse

ZSTD = 4
ZSTD_MIN_PRODUCE_VERSION = 7  # KIP-110
# compression.type -> the batch codec the broker rewrites batches in; "producer" is absent
TOPIC_CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
# Kafka's RecordValidationException: the record errors say what was wrong with which
# record; the partition's message sums them up (rejected_message).
RECORD_LEVEL_ERRORS = (ErrorCode.INVALID_TIMESTAMP, ErrorCode.INVALID_RECORD)


class RecordErrors(KafkaError):
    """INVALID_RECORD for some records of a batch: [(index in the batch, why)]."""

    def __init__(self, errors: list[tuple[int, str]]):
        super().__init__(ErrorCode.INVALID_RECORD, errors[0][1])
        self.record_errors = errors


def rejected_message(code: ErrorCode, errors: list[tuple[int, str]]) -> str:
    """The partition-level message Kafka's LogValidator gives a batch with record errors."""
    if code == ErrorCode.INVALID_TIMESTAMP:
        return "One or more records have been rejected due to invalid timestamp"
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
    return (f"One or more records have been rejected due to {len(errors)} record errors in total, "
            f"and only showing the first three errors at most: [{shown}]")


def check_keys_for_compaction(topic: str, index: int, records) -> None:
    """A compacted topic keeps the last record per key, so Kafka refuses keyless records
    (INVALID_RECORD, each keyless record named). Reads every record, decompressing: done
    only for compacted topics."""
    errors = [(i, f"Compacted topic cannot accept message without key in topic partition {topic}-{index}")
              for i, record in enumerate(_records_of(records)) if record.key is None]
    if errors:
        raise RecordErrors(errors)


def _records_of(records):
    """The batch's records, or none when it cannot be read: the append's own validation
    then answers CORRUPT_MESSAGE (or whatever is wrong with it) as for any topic."""
    try:
        batch = MemoryRecords(bytes(records)).next_batch() if records else None
        return list(batch or ())
    except Exception:
        return []
# Errors for which Kafka's answer has no log start offset (ReplicaManager answers these with
# UNKNOWN_LOG_APPEND_INFO); every other failure of an append carries it.
NO_LOG_START_OFFSET = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER,
                       ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE,
                       ErrorCode.CORRUPT_MESSAGE, ErrorCode.KAFKA_STORAGE_ERROR,
                       ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.INVALID_REQUIRED_ACKS,
                       ErrorCode.TOPIC_AUTHORIZATION_FAILED, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
SEQUENCE_ERRORS = (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.INVALID_PRODUCER_EPOCH)
NOT_ADDED = "Partition was not added to the transaction"  # Kafka's message for KIP-890's refusal
NOT_ADDED_ERRORS = (ErrorCode.INVALID_TXN_STATE, ErrorCode.TRANSACTION_ABORTABLE)
REFUSED = "Refused by the transaction coordinator"  # any other of its answers (a fenced epoch, ...)
ABORTABLE_VERSION = 11  # the first Produce version that knows TRANSACTION_ABORTABLE
ADD_PARTITIONS_VERSION = 12  # transactions v2: the leader adds the partition (KIP-890 part 2)

log = structlog.get_logger(__name__)


def batch_checker(version: int, topic_config: dict, now_ms: int):
    """Checks on each batch header that depend on the request version and topic config."""
    before = topic_config["message.timestamp.before.max.ms"]
    after = topic_config["message.timestamp.after.max.ms"]
    create_time = topic_config["message.timestamp.type"] == "CreateTime"

    def check(header: rec.BatchHeader) -> None:
        if header.compression == ZSTD and version < ZSTD_MIN_PRODUCE_VERSION:
            raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
                             f"zstd batches need Produce v{ZSTD_MIN_PRODUCE_VERSION}+, got v{version}")
        if header.is_control:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Clients cannot write control batches")
        if create_time and (now_ms - header.base_timestamp > before
                            or header.max_timestamp - now_ms > after):
            # Checked on the batch header, not per record: name the batch's earliest or
            # latest timestamp, whichever is out, in Kafka's words.
            late = header.max_timestamp - now_ms > after
            raise KafkaError(ErrorCode.INVALID_TIMESTAMP,
                             f"Timestamp {header.max_timestamp if late else header.base_timestamp} of "
                             f"message with offset {header.last_offset_delta if late else 0} is out of "
                             f"range. The timestamp should be within [{now_ms - before}, {now_ms + after}]")
    return check


async def _ask_coordinator(broker, request, add: bool, allowed) -> dict[tuple[str, int], ErrorCode]:
    """For the partitions led here whose producer has no transaction open here yet at its
    epoch (once one is open, its batches were checked when it opened): KIP-890 part 1
    asks another node coordinating the request's transactional id whether they are in the
    transaction (the local coordinator is checked in _with_txn_check); part 2 (``add``,
    Produce v12) adds them to it, here or there. Only errors and remote answers are
    returned; a partition without an entry gets the local check. Topics not ``allowed``
    (not authorized: refused anyway) are never added."""
    tid = request.transactional_id
    coordinator = broker.transactions.coordinator_node(tid) if tid is not None else None
    local = coordinator is not None and coordinator.node_id == broker.node_id
    if local and not add:
        return {}
    by_producer: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for topic in request.topic_data:
        if not allowed(topic.name):
            continue
        for data in topic.partition_data:
            if len(data.records or b"") < rec.HEADER_SIZE:
                continue
            header = rec.parse_header(data.records)
            partition = broker.replicas.partitions.get((topic.name, data.index))
            if not header.is_transactional or partition is None or partition.isr_state is None:
                continue
            entry = partition.producer_state.producers.get(header.producer_id)
            if entry is not None and entry.txn_first_offset >= 0 and entry.epoch == header.producer_epoch:
                continue
            by_producer.setdefault((header.producer_id, header.producer_epoch), []).append((topic.name, data.index))
    out: dict[tuple[str, int], ErrorCode] = {}
    for (producer_id, epoch), tps in by_producer.items():
        if add:
            answers = await broker.transactions.add_for_leader(tid, producer_id, epoch, tps)
            out.update({tp: e for tp, e in answers.items() if e or not local})
        else:
            out.update(await broker.transactions.verify_remote(tid, producer_id, epoch, tps))
    return out


def _with_txn_check(broker, tid: str | None, topic: str, index: int, check,
                    remote: dict[tuple[str, int], ErrorCode], version: int):
    """``check``, then for a transactional batch KIP-890's verification: with the local
    transaction coordinator, or the answer of the remote one (``_ask_coordinator``)."""
    def checked(header: rec.BatchHeader) -> None:
        check(header)
        if header.is_transactional and broker.transactions is not None:
            error = remote.get((topic, index))
            if error is None:
                error = broker.transactions.verify(tid, header.producer_id, header.producer_epoch, (topic, index))
            if error:
                error = abortable_for(error, version, ABORTABLE_VERSION)
                raise KafkaError(error, NOT_ADDED if error in NOT_ADDED_ERRORS else REFUSED)
    return checked


def _log_start_offset(replicas, topic: str, index: int, code: ErrorCode) -> int:
    if code in NO_LOG_START_OFFSET:
        return -1
    try:
        return replicas.leader_partition(topic, index).log.log_start_offset
    except KafkaError:
        return -1


def _failure(index: int, e: KafkaError, log_start_offset: int) -> PartitionProduceResponse:
    """Kafka carries a message only with record errors (INVALID_RECORD and its kin) and
    the refusal of a partition not added to the transaction; the rest (unknown
    partition, bad acks, ...) say it with the code alone."""
    if e.message in (NOT_ADDED, REFUSED):  # refused before the log was looked at: no log
        # start offset; Kafka says why with INVALID_TXN_STATE only (the rest come bare)
        return PartitionProduceResponse(index, e.code, error_message=NOT_ADDED
                                        if e.code == ErrorCode.INVALID_TXN_STATE else None)
    if e.code not in RECORD_LEVEL_ERRORS:
        return PartitionProduceResponse(index, e.code, log_start_offset=log_start_offset)
    errors = e.record_errors if isinstance(e, RecordErrors) else [(0, e.message)]
    return PartitionProduceResponse(index, e.code, log_start_offset=log_start_offset,
                                    record_errors=errors, error_message=rejected_message(e.code, errors))


def _has_transactional_records(request) -> bool:
    """Whether any partition's (first) batch is transactional, read from its header."""
    return any(len(data.records or b"") >= rec.HEADER_SIZE
               and rec.parse_header(data.records).is_transactional
               for topic in request.topic_data for data in topic.partition_data)


@handles(ProduceRequest, 3, 12)
async def handle(ctx, request):
    broker = ctx.broker
    version = ctx.header.api_version
    acks = request.acks
    if request.transactional_id is None and _has_transactional_records(request):
        if acks == 0:
            raise CloseConnection("acks=0 transactional produce without a transactional id")
        return ProduceResponse([(topic.name, [
            PartitionProduceResponse(data.index, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            for data in topic.partition_data]) for topic in request.topic_data])
    txn_denied = (request.transactional_id is not None
                  and not ctx.may(TXN, request.transactional_id))
    remote = (await _ask_coordinator(broker, request, version >= ADD_PARTITIONS_VERSION,
                                     lambda topic: ctx.may(TOPIC, topic))
              if request.transactional_id is not None and not txn_denied else {})
    now = broker.replicas.clock_ms()
    stats = broker.stats
    responses = []
    durable_waits = []  # (partition response, coroutine) for acks=-1, or 1 with flush.messages
    failed = False
    for topic in request.topic_data:
        denied = (KafkaError(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED) if txn_denied else
                  None if ctx.may(TOPIC, topic.name) else KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED))
        partitions = []
        topic_config = broker.replicas.topic_config(topic.name)
        check = batch_checker(version, topic_config, now)
        compacted = "compact" in topic_config["cleanup.policy"]
        codec = TOPIC_CODECS.get(topic_config["compression.type"])  # None: as the producer sent
        topic_stats = stats.topic(topic.name)
        for data in topic.partition_data:
            topic_stats.produce_requests += 1
            try:
                if denied is not None:
                    raise denied
                if acks not in (0, 1, -1):
                    raise KafkaError(ErrorCode.INVALID_REQUIRED_ACKS, f"acks={acks}: use 0, 1 or -1")
                if compacted:
                    check_keys_for_compaction(topic.name, data.index, data.records)
                if codec is not None and data.records:
                    # CPU work (decompress, compress): off the loop. This connection's next
                    # request waits for this one, so appends keep their order.
                    rewritten = await asyncio.get_running_loop().run_in_executor(
                        None, rec.recompress_batches, data.records, codec,
                        topic_config["max.message.bytes"])
                    if rewritten is not None:
                        data.records = rewritten
                partition, result = broker.replicas.append_records(
                    topic.name, data.index, data.records, required_acks=acks,
                    check=_with_txn_check(broker, request.transactional_id, topic.name, data.index,
                                          check, remote, version))
            except KafkaError as e:
                failed = True
                topic_stats.failed_produce += 1
                # A producer and this node disagreeing on sequences is rare and worth seeing;
                # the rest (NOT_LEADER_OR_FOLLOWER during a failover, ...) is routine.
                (log.info if e.code in SEQUENCE_ERRORS else log.debug)(
                    "produce_failed", topic=topic.name, partition=data.index, error=e.code.name,
                    message=e.message, client_id=ctx.header.client_id)
                partitions.append(_failure(data.index, e, _log_start_offset(
                    broker.replicas, topic.name, data.index, e.code)))
                continue
            topic_stats.bytes_in += len(data.records)
            topic_stats.messages_in += result.last_offset - result.base_offset + 1
            response = PartitionProduceResponse(data.index, ErrorCode.NONE, result.base_offset,
                                                result.log_append_time_ms, result.log_start_offset)
            partitions.append(response)
            if acks == -1 and not broker.replicas.is_committed(partition, result):
                durable_waits.append((response, broker.replicas.wait_committed(partition, result)))
            elif acks == 1 and partition.log.needs_flush(result):
                # Kafka fsyncs inside the append when flush.messages is reached, whatever acks.
                durable_waits.append((response, partition.log.wait_durable(result)))
        responses.append((topic.name, partitions))
    throttle_ms = ctx.record_quota(PRODUCER_BYTE_RATE, ctx.size)
    if acks == 0:
        for _, wait in durable_waits:
            wait.close()
        if failed:
            raise CloseConnection("acks=0 produce failed for a partition")
        return None
    if durable_waits:  # appended: the connection may start the next Produce meanwhile
        return Deferred(_when_durable(ProduceResponse(responses, throttle_ms), durable_waits,
                                      request.timeout_ms))
    return ProduceResponse(responses, throttle_ms)


async def _when_durable(response: ProduceResponse, durable_waits: list, timeout_ms: int) -> ProduceResponse:
    """The response once every waiting partition is committed (or failed, or timed out)."""
    tasks = {asyncio.ensure_future(wait): partition for partition, wait in durable_waits}
    _, pending = await asyncio.wait(tasks, timeout=max(timeout_ms, 0) / 1000)
    for task, partition in tasks.items():
        if task in pending:
            task.cancel()
            partition.error_code = ErrorCode.REQUEST_TIMED_OUT
            partition.error_message = f"Not replicated to the ISR within timeout_ms={timeout_ms}"
        elif isinstance(task.exception(), KafkaError):
            partition.error_code = task.exception().code
            partition.error_message = task.exception().message
        elif task.exception() is not None:
            partition.error_code = ErrorCode.KAFKA_STORAGE_ERROR
            partition.error_message = f"Flush failed: {task.exception()}"
        if partition.error_code:
            # Kafka answers a failed partition with no offsets (-1), whatever was appended
            partition.base_offset = partition.log_append_time_ms = partition.log_start_offset = -1
            log.info("produce_not_acknowledged", partition=partition.index,
                     error=ErrorCode(partition.error_code).name, message=partition.error_message)
    return response

"""AddPartitionsToTxn (v0-v5): partitions join a producer's ongoing transaction.

The transaction coordinator of the id answers (broker.transactions): the transaction
becomes (or stays) Ongoing with these partitions. A topic or partition the cluster does
not know is UNKNOWN_TOPIC_OR_PARTITION and the request's other partitions get
OPERATION_NOT_ATTEMPTED, with nothing added, as in Kafka; so is a topic the client may not
WRITE (TOPIC_AUTHORIZATION_FAILED), and without WRITE on the transactional id every
partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED. v4+ (brokers) needs CLUSTER_ACTION on
the cluster, else the top-level error is CLUSTER_AUTHORIZATION_FAILED. Other errors are every
partition's: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS
(markers of the previous transaction still being written: clients retry),
INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2).

v0-v3 carry one transaction (clients); v4+ a batch of them (KIP-890: brokers), with
verify_only asking whether the partitions are already in the ongoing transaction
(TRANSACTION_ABORTABLE for those that are not from v5, INVALID_TXN_STATE before) without
adding them. Without verify_only, a partition leader adds them for a transactions v2
producer (Produce v12, TxnOffsetCommit v5: KIP-890 part 2), so the transaction is marked
as a v2 one (its EndTxn bumps the epoch), as Kafka's coordinator does.
"""

from kafka.protocol.producer import AddPartitionsToTxnRequest, AddPartitionsToTxnResponse

from odradek.broker.authorizer import CLUSTER, TOPIC, TXN
from odradek.broker.handlers import handles
from odradek.broker.handlers.metadata import INTERNAL_TOPICS
from odradek.broker.transactions import state as st
from odradek.broker.transactions.coordinator import client_error
from odradek.protocol.errors import ErrorCode
from odradek.replication.acls import CLUSTER_NAME

R = AddPartitionsToTxnResponse
TopicResult = R.AddPartitionsToTxnTopicResult
PartitionResult = TopicResult.AddPartitionsToTxnPartitionResult
FENCED_VERSION = 2
BATCHED_VERSION = 4
ABORTABLE_VERSION = 5  # the first that knows TRANSACTION_ABORTABLE


def _results(errors: dict[tuple[str, int], ErrorCode]) -> list:
    by_topic: dict[str, list] = {}
    for (topic, index), error in errors.items():
        by_topic.setdefault(topic, []).append(PartitionResult(partition_index=index, partition_error_code=error))
    return [TopicResult(name=t, results_by_partition=ps) for t, ps in by_topic.items()]


def _refused(ctx, tid: str, wanted: list[tuple[str, int]], version: int) -> dict[tuple[str, int], ErrorCode]:
    """Kafka's checks before the coordinator (empty: none failed). A client (v0-v3) needs
    WRITE on the transactional id (else every partition is refused) and on each topic;
    internal topics are never a client's to add (TOPIC_AUTHORIZATION_FAILED even with no
    authorizer, as Kafka's code). Any failed partition fails the transaction: the others
    are OPERATION_NOT_ATTEMPTED."""
    if version < BATCHED_VERSION and not ctx.may(TXN, tid):
        return dict.fromkeys(wanted, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    image_topics = ctx.broker.image.topics
    errors = {}
    for topic, index in wanted:
        if version < BATCHED_VERSION and (topic in INTERNAL_TOPICS or not ctx.may(TOPIC, topic)):
            errors[(topic, index)] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        elif topic not in image_topics or index not in image_topics[topic].partitions:
            errors[(topic, index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if errors:
        return {tp: errors.get(tp, ErrorCode.OPERATION_NOT_ATTEMPTED) for tp in wanted}
    return {}


async def add(ctx, tid: str, producer_id: int, epoch: int, topics, verify_only: bool, version: int
              ) -> dict[tuple[str, int], ErrorCode]:
    coordinator = ctx.broker.transactions
    wanted = [(t.name, p) for t in topics for p in t.partitions]
    refused = _refused(ctx, tid, wanted, version)
    if refused:
        return refused
    if verify_only:
        error = coordinator.id_error(tid)
        if error:
            return dict.fromkeys(wanted, error)
        meta = coordinator.txns.get(tid)
        return {tp: st.abortable_for(st.verify_partition(meta, producer_id, epoch, tp), version, ABORTABLE_VERSION)
                for tp in wanted}
    client_tv = st.TV_2 if version >= BATCHED_VERSION else 0  # v4+: a broker for a v2 producer
    error = await coordinator.add_partitions(tid, producer_id, epoch, set(wanted), client_tv)
    return dict.fromkeys(wanted, client_error(error, version, FENCED_VERSION))


@handles(AddPartitionsToTxnRequest, 0, 5)
async def handle(ctx, request):
    version = ctx.header.api_version
    if version < BATCHED_VERSION:
        errors = await add(ctx, request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
                           request.v3_and_below_producer_epoch, request.v3_and_below_topics, False, version)
        return R(throttle_time_ms=0, results_by_topic_v3_and_below=_results(errors))
    if not ctx.may(CLUSTER, CLUSTER_NAME):  # v4+ batches come from brokers
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results_by_transaction=[])
    results = []
    for txn in request.transactions:
        errors = await add(ctx, txn.transactional_id, txn.producer_id, txn.producer_epoch, txn.topics,
                           txn.verify_only, version)
        results.append(R.AddPartitionsToTxnResult(transactional_id=txn.transactional_id,
                                                   topic_results=_results(errors)))
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, results_by_transaction=results)

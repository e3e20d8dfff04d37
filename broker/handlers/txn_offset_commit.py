"""TxnOffsetCommit (v0-v5): a group's offsets, committed with a producer's transaction.

Sent to the group's coordinator after AddOffsetsToTxn. The offsets are written to
``__consumer_offsets`` as the producer's transactional batch and held pending until the
transaction's marker lands there (applied on COMMIT, dropped on ABORT; see
broker.groups.coordinator). When this node also coordinates the transactional id, the
producer id and epoch are checked against it (INVALID_PRODUCER_ID_MAPPING,
PRODUCER_FENCED; INVALID_PRODUCER_EPOCH before v3). KIP-447 (v3+): a member id or
generation, when given, must be the group's current ones (UNKNOWN_MEMBER_ID,
ILLEGAL_GENERATION, FENCED_INSTANCE_ID), so a zombie member cannot commit. KIP-890
part 1: the group's ``__consumer_offsets`` partition must be in the ongoing transaction
(AddOffsetsToTxn), as the id's coordinator (here or on another node) says, else nothing is
written: INVALID_TXN_STATE, TRANSACTION_ABORTABLE from v4 (Kafka 4.4's answers); without
this, offsets committed outside any transaction the coordinator knows would stay pending
forever. v5 (transactions v2, KIP-890 part 2): the producer sends no AddOffsetsToTxn; the
group's offsets partition is added to its transaction here (at the id's coordinator, this
node or another) before the offsets are written.

Authorization as Kafka's: without WRITE on the transactional id or READ on the group every
partition carries TRANSACTIONAL_ID_AUTHORIZATION_FAILED or GROUP_AUTHORIZATION_FAILED; a
topic without READ TOPIC_AUTHORIZATION_FAILED, and the other topics' offsets are committed.
"""

from kafka.protocol.producer import TxnOffsetCommitRequest, TxnOffsetCommitResponse

from odradek.broker.authorizer import GROUP, TOPIC, TXN
from odradek.broker.groups.offsets_topic import OFFSETS_TOPIC
from odradek.broker.handlers import handles
from odradek.broker.transactions import state as st
from odradek.broker.transactions.coordinator import client_error
from odradek.protocol.errors import ErrorCode

R = TxnOffsetCommitResponse
Topic = R.TxnOffsetCommitResponseTopic
Partition = Topic.TxnOffsetCommitResponsePartition
FENCED_VERSION = 3
KIP_447_VERSION = 3
ABORTABLE_VERSION = 4  # the first that knows TRANSACTION_ABORTABLE
ADD_PARTITION_VERSION = 5  # transactions v2: the offsets partition is added here


async def _verify(broker, tid: str, producer_id: int, producer_epoch: int, group_id: str,
                  add: bool) -> ErrorCode:
    """Is the group's offsets partition in the producer's ongoing transaction? (``add``:
    put it there.)"""
    coordinator = broker.transactions
    tp = (OFFSETS_TOPIC, broker.groups.partition_for(group_id))
    if add:
        error = (await coordinator.add_for_leader(tid, producer_id, producer_epoch, [tp]))[tp]
    else:
        error = coordinator.verify(tid, producer_id, producer_epoch, tp)
        if error is None:  # another node coordinates tid
            error = (await coordinator.verify_remote(tid, producer_id, producer_epoch, [tp]))[tp]
    # the coordinator could not be asked: retriable, as Kafka's group coordinator says it
    return ErrorCode.COORDINATOR_NOT_AVAILABLE if error == ErrorCode.NOT_ENOUGH_REPLICAS else error


@handles(TxnOffsetCommitRequest, 0, 5)
async def handle(ctx, request):
    version = ctx.header.api_version
    tps = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    refused = _refused(ctx, request)
    if refused is not None:
        return _response(request, version, dict.fromkeys(tps, refused))
    denied = {t.name for t in request.topics if not ctx.may(TOPIC, t.name)}
    topics = [t for t in request.topics if t.name not in denied]
    results = dict.fromkeys(((n, i) for n, i in tps if n in denied), ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    if topics:
        results.update(await _commit(ctx, request, topics, version))
    return _response(request, version, results)


def _refused(ctx, request) -> ErrorCode | None:
    """Kafka's checks of the whole request: WRITE on the transactional id, READ on the group."""
    if not ctx.may(TXN, request.transactional_id):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    if not ctx.may(GROUP, request.group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED
    return None


async def _commit(ctx, request, topics, version: int) -> dict[tuple[str, int], ErrorCode]:
    """The authorized topics' offsets, written with the transaction (or the error of each)."""
    broker = ctx.broker
    tps = [(t.name, p.partition_index) for t in topics for p in t.partitions]
    error = broker.transactions.check_producer(request.transactional_id, request.producer_id,
                                               request.producer_epoch)
    if not error:
        error = st.abortable_for(await _verify(broker, request.transactional_id, request.producer_id,
                                               request.producer_epoch, request.group_id,
                                               version >= ADD_PARTITION_VERSION),
                                 version, ABORTABLE_VERSION)
    if error:
        results = dict.fromkeys(tps, error)
    else:
        offsets = [(t.name, p.partition_index, p.committed_offset,
                    p.committed_leader_epoch if version >= 2 else -1, p.committed_metadata)
                   for t in topics for p in t.partitions]
        member = ((request.generation_id, request.member_id, request.group_instance_id)
                  if version >= KIP_447_VERSION else (-1, "", None))
        results = await broker.groups.commit_txn_offsets(
            request.group_id, request.producer_id, request.producer_epoch, *member, offsets)
    return results


def _response(request, version: int, results: dict[tuple[str, int], ErrorCode]):
    return R(throttle_time_ms=0, topics=[
        Topic(name=t.name, partitions=[
            Partition(partition_index=p.partition_index,
                      error_code=client_error(results[(t.name, p.partition_index)], version, FENCED_VERSION))
            for p in t.partitions])
        for t in request.topics])

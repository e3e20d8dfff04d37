"""DescribeTransactions (v0): the state of transactional ids this node coordinates.

Per id: its state by Kafka's name (Empty, Ongoing, PrepareCommit, ...), timeout, start
time, producer id and epoch, and the partitions of its transaction; NOT_COORDINATOR on
another node, COORDINATOR_LOAD_IN_PROGRESS while loading, TRANSACTIONAL_ID_NOT_FOUND for
an id it does not know (Kafka's kafka-transactions describe sends it to the coordinator). With an authorizer, an id the
principal may not DESCRIBE is TRANSACTIONAL_ID_AUTHORIZATION_FAILED and topics it may not
DESCRIBE are left out of the partitions, as Kafka does.
"""

from kafka.protocol.admin import DescribeTransactionsRequest, DescribeTransactionsResponse

from odradek.broker.authorizer import TOPIC, TXN
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

R = DescribeTransactionsResponse
State = R.TransactionState


@handles(DescribeTransactionsRequest, 0, 0)
async def handle(ctx, request):
    states = []
    for tid in request.transactional_ids:
        if not ctx.may(TXN, tid):  # Kafka's answer: the id and the error, every other field zero
            states.append(State(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, transactional_id=tid,
                                transaction_state="", transaction_timeout_ms=0, transaction_start_time_ms=0,
                                producer_id=0, producer_epoch=0, topics=[]))
            continue
        error, meta = ctx.broker.transactions.describe(tid)
        if meta is None:
            states.append(State(error_code=error, transactional_id=tid, transaction_state="",
                                transaction_timeout_ms=0, transaction_start_time_ms=-1,
                                producer_id=-1, producer_epoch=-1, topics=[]))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, index in sorted(meta.partitions):
            if ctx.may(TOPIC, topic):
                by_topic.setdefault(topic, []).append(index)
        states.append(State(
            error_code=error, transactional_id=tid, transaction_state=meta.state.kafka_name,
            transaction_timeout_ms=meta.timeout_ms, transaction_start_time_ms=meta.txn_start_ms,
            producer_id=meta.producer_id, producer_epoch=meta.producer_epoch,
            topics=[State.TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()]))
    return R(throttle_time_ms=0, transaction_states=states)

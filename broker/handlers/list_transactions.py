"""ListTransactions (v0-v2): the transactional ids this node coordinates.

Filters as Kafka's: states by Kafka's names (an unknown name comes back in
unknown_state_filters), producer ids, v1's duration (only transactions running longer
than that many ms), v2's transactional id pattern (a regular expression, Python's dialect of it; one that
does not compile is INVALID_REQUEST). COORDINATOR_LOAD_IN_PROGRESS
while a partition of ``__transaction_state`` loads. Only the ids the principal may
DESCRIBE are listed (Kafka's filter; no error).
"""

import re

from kafka.protocol.admin import ListTransactionsRequest, ListTransactionsResponse

from odradek.broker.authorizer import TXN
from odradek.broker.handlers import handles
from odradek.broker.transactions.state import TxnState
from odradek.protocol.errors import ErrorCode

R = ListTransactionsResponse
STATES = {s.kafka_name: s for s in TxnState}


@handles(ListTransactionsRequest, 0, 2)
async def handle(ctx, request):
    version = ctx.header.api_version
    states = [s for s in request.state_filters or [] if s in STATES]
    unknown = [s for s in request.state_filters or [] if s not in STATES]
    pattern = None
    if version >= 2 and request.transactional_id_pattern:
        try:
            pattern = re.compile(request.transactional_id_pattern)
        except re.error:
            return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST, unknown_state_filters=[],
                     transaction_states=[])
    duration = request.duration_filter if version >= 1 else -1
    error, txns = ctx.broker.transactions.list()
    now = ctx.broker.transactions.scheduler.now_ms()
    out = [R.TransactionState(transactional_id=m.transactional_id, producer_id=m.producer_id,
                              transaction_state=m.state.kafka_name)
           for m in txns
           if (not states or m.state.kafka_name in states)
           and (not request.producer_id_filters or m.producer_id in request.producer_id_filters)
           and (duration < 0 or (m.txn_start_ms >= 0 and now - m.txn_start_ms > duration))
           and (pattern is None or pattern.fullmatch(m.transactional_id))
           and ctx.may(TXN, m.transactional_id)]
    return R(throttle_time_ms=0, error_code=error, unknown_state_filters=unknown, transaction_states=out)

"""EndTxn (v0-v4): commit or abort a producer's ongoing transaction.

The coordinator writes PrepareCommit/PrepareAbort to ``__transaction_state``, then every
partition's leader writes the COMMIT/ABORT marker, then CompleteCommit/CompleteAbort;
the answer comes once the markers are written (or after a bound: the Prepare record
is durable and the markers go on, as in Kafka). A retry after the end answers NONE; the
other outcome, or an Empty transaction, INVALID_TXN_STATE; an epoch other than the
producer's current one PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2); markers still
being written CONCURRENT_TRANSACTIONS. v5 belongs to transactions v2 (KIP-890 part 2),
not served.
"""

from kafka.protocol.producer import EndTxnRequest, EndTxnResponse

from odradek.broker.handlers import handles
from odradek.broker.transactions.coordinator import client_error

R = EndTxnResponse
FENCED_VERSION = 2


@handles(EndTxnRequest, 0, 4)
async def handle(ctx, request):
    error = await ctx.broker.transactions.end_txn(request.transactional_id, request.producer_id,
                                                  request.producer_epoch, request.committed)
    return R(throttle_time_ms=0, error_code=client_error(error, ctx.header.api_version, FENCED_VERSION))

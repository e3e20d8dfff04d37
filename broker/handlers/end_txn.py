"""EndTxn (v0-v5): commit or abort a producer's ongoing transaction.

The coordinator writes PrepareCommit/PrepareAbort to ``__transaction_state``, then every
partition's leader writes the COMMIT/ABORT marker, then CompleteCommit/CompleteAbort;
the answer comes once the markers are written (or after a bound: the Prepare record
is durable and the markers go on, as in Kafka). A retry after the end answers NONE; the
other outcome, or an Empty transaction, INVALID_TXN_STATE; an epoch other than the
producer's current one PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2); markers still
being written CONCURRENT_TRANSACTIONS.

v5 is transactions v2 (KIP-890 part 2; Java clients send it when transaction.version 2 is
finalized): the coordinator bumps the producer epoch with every transaction (the markers
carry the bumped epoch, so a late write of the ended transaction is refused) and the answer
carries the producer id and epoch to go on with (a new producer id at epoch 0 when the
epoch is exhausted); an abort needs no partition in the transaction. Rules in
broker.transactions.state.
"""

from kafka.protocol.producer import EndTxnRequest, EndTxnResponse

from odradek.broker.handlers import handles
from odradek.broker.transactions.coordinator import client_error

R = EndTxnResponse
FENCED_VERSION = 2
V2_VERSION = 5  # transactions v2: the epoch bumped, the producer id and epoch answered


@handles(EndTxnRequest, 0, 5)
async def handle(ctx, request):
    version = ctx.header.api_version
    error, producer_id, epoch = await ctx.broker.transactions.end_txn(
        request.transactional_id, request.producer_id, request.producer_epoch, request.committed,
        v2=version >= V2_VERSION)
    return R(throttle_time_ms=0, error_code=client_error(error, version, FENCED_VERSION),
             producer_id=producer_id, producer_epoch=epoch)

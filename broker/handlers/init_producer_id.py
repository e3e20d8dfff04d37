"""InitProducerId (v0-v5): producer ids for idempotent producers.

Ids come from blocks that the controller commits to the metadata log, so they stay
unique across restarts. A producer that asks again with its id and epoch (KIP-360,
v3+) gets the same id with the next epoch, or a new id once the epoch is exhausted.
Transactions are not supported: a transactional id gets INVALID_REQUEST.
"""

from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse

from broker.handlers import handles
from protocol.errors import ErrorCode

R = InitProducerIdResponse
MAX_EPOCH = 32767


@handles(InitProducerIdRequest, 0, 5)
async def handle(ctx, request):
    if request.transactional_id is not None:
        return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST, producer_id=-1,
                 producer_epoch=-1)
    if request.producer_id >= 0 and 0 <= request.producer_epoch < MAX_EPOCH:
        return R(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=request.producer_id,
                 producer_epoch=request.producer_epoch + 1)
    producer_id = await ctx.broker.next_producer_id()
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=producer_id, producer_epoch=0)

"""AddOffsetsToTxn (v0-v4): a group's offsets join a producer's ongoing transaction.

The group's ``__consumer_offsets`` partition is added to the transaction (its marker
later applies or drops the TxnOffsetCommit offsets), as Kafka's coordinator does. Errors
as AddPartitionsToTxn's; an empty group id is INVALID_GROUP_ID. PRODUCER_FENCED is
INVALID_PRODUCER_EPOCH before v2.
"""

from kafka.protocol.producer import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse

from odradek.broker.broker import CONTROLLER_WAIT_S
from odradek.broker.groups.offsets_topic import OFFSETS_TOPIC
from odradek.broker.handlers import handles
from odradek.broker.transactions.coordinator import client_error
from odradek.protocol.errors import ErrorCode

R = AddOffsetsToTxnResponse
FENCED_VERSION = 2


@handles(AddOffsetsToTxnRequest, 0, 4)
async def handle(ctx, request):
    broker = ctx.broker
    if not request.group_id:
        return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_GROUP_ID)
    await broker.groups.ensure_topic(CONTROLLER_WAIT_S)
    if OFFSETS_TOPIC not in broker.image.topics:
        return R(throttle_time_ms=0, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE)
    partition = (OFFSETS_TOPIC, broker.groups.partition_for(request.group_id))
    error = await broker.transactions.add_partitions(request.transactional_id, request.producer_id,
                                                     request.producer_epoch, {partition})
    return R(throttle_time_ms=0, error_code=client_error(error, ctx.header.api_version, FENCED_VERSION))

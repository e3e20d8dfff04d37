"""InitProducerId (v0-v5): producer ids for idempotent producers.

Ids come from blocks that the controller commits to the metadata log, so they stay
unique across restarts (and, with the quorum, across nodes). As in Kafka, a
producer without a transactional id always gets a fresh id at epoch 0, also when
it asks again with its old id and epoch (KIP-360: that is how it recovers from
an OUT_OF_ORDER_SEQUENCE_NUMBER or an expired producer state). Transactions are
not supported: a transactional id gets INVALID_REQUEST. While this node waits for a
block from the controller the answer is COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
Authorization (broker.authorizer): a transactional id needs WRITE on it
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer IDEMPOTENT_WRITE on the
cluster or, as Kafka allows since KIP-679, WRITE on any topic (CLUSTER_AUTHORIZATION_FAILED).
"""

from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse

from odradek.broker.authorizer import CLUSTER, TOPIC, TXN
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.acls import CLUSTER_NAME, AclOperation

R = InitProducerIdResponse


@handles(InitProducerIdRequest, 0, 5)
async def handle(ctx, request):
    if request.transactional_id is not None:
        if not ctx.may(TXN, request.transactional_id):
            return R(throttle_time_ms=0, error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                     producer_id=-1, producer_epoch=-1)
        return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST, producer_id=-1,
                 producer_epoch=-1)
    if not ctx.may(CLUSTER, CLUSTER_NAME) and not ctx.may_on_any(TOPIC, AclOperation.WRITE):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, producer_id=-1,
                 producer_epoch=-1)
    try:
        producer_id = await ctx.broker.next_producer_id()
    except KafkaError as e:
        return R(throttle_time_ms=0, error_code=e.code, producer_id=-1, producer_epoch=-1)
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=producer_id, producer_epoch=0)

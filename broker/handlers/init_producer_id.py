"""InitProducerId (v0-v5): producer ids for idempotent and transactional producers.

Ids come from blocks that the controller commits to the metadata log, so they stay
unique across restarts (and, with the quorum, across nodes). As in Kafka, a
producer without a transactional id always gets a fresh id at epoch 0, also when
it asks again with its old id and epoch (KIP-360: that is how it recovers from
an OUT_OF_ORDER_SEQUENCE_NUMBER or an expired producer state). While this node waits
for a block from the controller the answer is COORDINATOR_LOAD_IN_PROGRESS, which
clients retry.

With a transactional id the transaction coordinator answers (broker.transactions): the
id's producer id with its epoch bumped, fencing the previous producer and aborting its
open transaction (CONCURRENT_TRANSACTIONS until that abort completed; the client
retries); INVALID_TRANSACTION_TIMEOUT beyond transaction.max.timeout.ms; NOT_COORDINATOR
on another node. PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v4.
Authorization (broker.authorizer): a transactional id needs WRITE on it
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer IDEMPOTENT_WRITE on the
cluster or, as Kafka allows since KIP-679, WRITE on any topic (CLUSTER_AUTHORIZATION_FAILED).
"""

from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse

from odradek.broker.authorizer import CLUSTER, TOPIC, TXN
from odradek.broker.handlers import handles
from odradek.broker.transactions.coordinator import client_error
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.acls import CLUSTER_NAME, AclOperation

R = InitProducerIdResponse
FENCED_VERSION = 4
KIP_360_VERSION = 3


@handles(InitProducerIdRequest, 0, 5)
async def handle(ctx, request):
    version = ctx.header.api_version
    if request.transactional_id is not None:
        if not ctx.may(TXN, request.transactional_id):
            return R(throttle_time_ms=0, error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                     producer_id=-1, producer_epoch=-1)
        expected = ((request.producer_id, request.producer_epoch) if version >= KIP_360_VERSION
                    else (-1, -1))
        try:
            error, producer_id, epoch = await ctx.broker.transactions.init_producer_id(
                request.transactional_id, request.transaction_timeout_ms, *expected)
        except KafkaError as e:
            error, producer_id, epoch = e.code, -1, -1
        return R(throttle_time_ms=0, error_code=client_error(error, version, FENCED_VERSION),
                 producer_id=producer_id, producer_epoch=epoch)
    if not ctx.may(CLUSTER, CLUSTER_NAME) and not ctx.may_on_any(TOPIC, AclOperation.WRITE):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, producer_id=-1,
                 producer_epoch=-1)
    try:
        producer_id = await ctx.broker.next_producer_id()
    except KafkaError as e:
        return R(throttle_time_ms=0, error_code=e.code, producer_id=-1, producer_epoch=-1)
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=producer_id, producer_epoch=0)

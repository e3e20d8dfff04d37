"""ShareAcknowledge (v1-v2, KIP-932): acknowledge records acquired by ShareFetch, in the
member's share session (broker.share.session), without fetching more.

Epoch 0 is INVALID_SHARE_SESSION_EPOCH (only ShareFetch opens a session); -1
acknowledges and closes the session, releasing what the member still holds. Each
partition answers its own code: INVALID_RECORD_STATE for records this member does not
hold now (its lock expired, another member holds them, they are done), NOT_LEADER_OR_FOLLOWER,
UNKNOWN_TOPIC_ID. v2 adds RENEW (type 4, KIP-1222: the records stay the member's, their
lock starts again), valid only with IsRenewAck set (else, and at v1, that partition's
INVALID_REQUEST, as Kafka 4.4 answers), and reports the lock duration. Authorization as
ShareFetch.
"""

from odradek.broker.authorizer import GROUP
from odradek.broker.handlers import handles
from odradek.broker.handlers.share_fetch import (
    ack_batches,
    check_request,
    leader_of,
    share_partition,
)
from odradek.broker.share.session import CLOSE_EPOCH
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.messages import ShareAcknowledgeRequest, ShareAcknowledgeResponse

R = ShareAcknowledgeResponse
T = R.ShareAcknowledgeTopicResponse
P = T.PartitionData


@handles(ShareAcknowledgeRequest, 1, 2)
async def handle(ctx, request):
    shares = ctx.broker.shares
    group_id, member_id = request.group_id, request.member_id

    def answer(error, topics=()):
        return R(throttle_time_ms=0, error_code=error,
                 acquisition_lock_timeout_ms=shares.lock_duration_ms(group_id) if group_id and not error else 0,
                 responses=list(topics), node_endpoints=[])

    error, _ = check_request(request, ctx)
    if error:
        return answer(error)
    if not ctx.may(GROUP, group_id):
        return answer(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    error, session = shares.sessions.acknowledge(group_id, member_id, request.share_session_epoch)
    if error:
        return answer(error)
    assert session is not None
    renew = ctx.header.api_version >= 2 and request.is_renew_ack
    topics = []
    for t in request.topics:
        partitions = []
        for p in t.partitions:
            code, message, name = ErrorCode.NONE, None, None
            try:
                name, sp = share_partition(ctx, group_id, t.topic_id, p.partition_index)
                if sp is None:  # loading on a new leader: nothing is acquired here yet
                    code = ErrorCode.INVALID_RECORD_STATE
                else:
                    code, message = await shares.acknowledge(sp, member_id, ack_batches(p), renew)
            except KafkaError as e:
                code = e.code
            partitions.append(P(partition_index=p.partition_index, error_code=code, error_message=message,
                                current_leader=leader_of(ctx, name, p.partition_index, P.LeaderIdAndEpoch)))
        topics.append(T(topic_id=t.topic_id, partitions=partitions))
    if request.share_session_epoch == CLOSE_EPOCH:
        shares.release_session(session)
        shares.sessions.close(session)
    return answer(ErrorCode.NONE, topics)

"""JoinGroup (v0-v9): join a group and wait for its rebalance to complete.

The response comes when the rebalance completes (every member rejoined, or the
rebalance timeout passed), so the request may wait up to the rebalance timeout.
Version notes: v0 has no rebalance timeout (the session timeout serves as one,
as in Kafka); from v4 a member without an id first gets MEMBER_ID_REQUIRED with
the id to rejoin with (KIP-394); v5 adds group_instance_id (static membership,
KIP-345); v7 returns the protocol type; v9 can tell a static leader that rejoined
to skip the assignment (KIP-814). Errors: INVALID_GROUP_ID, NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS, INVALID_SESSION_TIMEOUT, INCONSISTENT_GROUP_PROTOCOL,
UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED.
"""

from kafka.protocol.consumer.group import JoinGroupRequest, JoinGroupResponse

from odradek.broker.authorizer import GROUP
from odradek.broker.handlers import error_response, handles
from odradek.protocol.errors import ErrorCode

R = JoinGroupResponse
MEMBER_ID_REQUIRED_VERSION = 4
SKIP_ASSIGNMENT_VERSION = 9


def client_host(ctx) -> str:
    """Kafka shows a member's address as '/ip'."""
    peer = ctx.connection.peer
    return f"/{peer[0]}" if peer else ""


@handles(JoinGroupRequest, 0, 9)
async def handle(ctx, request):
    version = ctx.header.api_version
    if not ctx.may(GROUP, request.group_id):
        response = error_response(R, request, version, ErrorCode.GROUP_AUTHORIZATION_FAILED)
        response.protocol_name = None if version >= 7 else ""  # (as Kafka: null where it may be)
        return response
    rebalance_timeout_ms = request.session_timeout_ms if version == 0 else request.rebalance_timeout_ms
    result = await ctx.broker.groups.join_group(
        request.group_id, request.member_id,
        group_instance_id=request.group_instance_id if version >= 5 else None,
        client_id=ctx.header.client_id or "", client_host=client_host(ctx),
        session_timeout_ms=request.session_timeout_ms, rebalance_timeout_ms=rebalance_timeout_ms,
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        require_known_member_id=version >= MEMBER_ID_REQUIRED_VERSION,
        supports_skip_assignment=version >= SKIP_ASSIGNMENT_VERSION)
    return R(throttle_time_ms=0, error_code=result.error, generation_id=result.generation_id,
             protocol_type=result.protocol_type,
             # Before v7 the name is not nullable: an error answer carries "".
             protocol_name=result.protocol_name if result.protocol_name is not None or version >= 7
             else "",
             leader=result.leader_id, skip_assignment=result.skip_assignment,
             member_id=result.member_id,
             members=[R.JoinGroupResponseMember(member_id=m, group_instance_id=i, metadata=md)
                      for m, i, md in result.members])

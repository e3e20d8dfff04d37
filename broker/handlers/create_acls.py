"""CreateAcls (v1-v3): add ACL bindings, as records of the metadata log.

SECURITY_DISABLED for every creation while no authorizer is configured, as Kafka answers
(see describe_acls). The principal needs ALTER on the cluster, else every creation is
CLUSTER_AUTHORIZATION_FAILED. An invalid binding (UNKNOWN or ANY codes, a pattern type
other than LITERAL/PREFIXED, an operation its resource type does not support, a
CLUSTER not named kafka-cluster, a principal without a type) is INVALID_REQUEST for that
creation only; one that exists already succeeds without a second copy.
v0 is not served, as in Kafka 4.
"""

from kafka.protocol.admin import CreateAclsRequest, CreateAclsResponse

from odradek.broker.authorizer import CLUSTER, access, needs_permission
from odradek.broker.handlers import handles, time_left
from odradek.broker.handlers.describe_acls import NO_AUTHORIZER
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.acls import CLUSTER_NAME

R = CreateAclsResponse
TIMEOUT_MS = 30000  # the request has no timeout of its own


def _results(count: int, code: ErrorCode, message: str | None) -> R:
    return R(throttle_time_ms=0, results=[R.AclCreationResult(error_code=code, error_message=message)
                                          for _ in range(count)])


@handles(CreateAclsRequest, 1, 3)
async def handle(ctx, request):
    if ctx.broker.authorizer is None:
        return _results(len(request.creations), ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)
    if not ctx.may(CLUSTER, CLUSTER_NAME):
        return _results(len(request.creations), ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                        needs_permission(ctx, access(30, CLUSTER).operation))
    bindings = [[c.resource_type, c.resource_name, c.resource_pattern_type, c.principal, c.host,
                 c.operation, c.permission_type] for c in request.creations]
    try:
        errors = await ctx.broker.controller.create_acls(bindings, timeout_s=time_left(TIMEOUT_MS)())
    except KafkaError as e:
        return _results(len(bindings), e.code, e.message)
    return R(throttle_time_ms=0, results=[
        R.AclCreationResult(error_code=ErrorCode.NONE if e is None else e.code,
                            error_message=None if e is None else e.message) for e in errors])

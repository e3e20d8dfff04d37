"""CreateAcls (v1-v3): SECURITY_DISABLED for every creation while no authorizer is
configured, as Kafka answers (see describe_acls). v0 is not served, as in Kafka 4."""

from kafka.protocol.admin import CreateAclsRequest, CreateAclsResponse

from odradek.broker.handlers import handles
from odradek.broker.handlers.describe_acls import NO_AUTHORIZER
from odradek.protocol.errors import ErrorCode

R = CreateAclsResponse


@handles(CreateAclsRequest, 1, 3)
async def handle(ctx, request):
    return R(throttle_time_ms=0, results=[
        R.AclCreationResult(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER)
        for _ in request.creations])

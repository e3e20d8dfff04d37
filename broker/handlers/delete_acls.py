"""DeleteAcls (v1-v3): SECURITY_DISABLED for every filter while no authorizer is
configured, as Kafka answers (see describe_acls). v0 is not served, as in Kafka 4."""

from kafka.protocol.admin import DeleteAclsRequest, DeleteAclsResponse

from odradek.broker.handlers import handles
from odradek.broker.handlers.describe_acls import NO_AUTHORIZER
from odradek.protocol.errors import ErrorCode

R = DeleteAclsResponse


@handles(DeleteAclsRequest, 1, 3)
async def handle(ctx, request):
    return R(throttle_time_ms=0, filter_results=[
        R.DeleteAclsFilterResult(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER,
                                 matching_acls=[])
        for _ in request.filters])

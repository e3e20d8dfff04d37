"""DescribeAcls (v1-v3): SECURITY_DISABLED, since no authorizer can be configured yet.

Kafka answers this way when ``authorizer.class.name`` is unset (AclApis); clients
treat it as "ACLs are off" and go on, whereas a closed connection made sarama's admin
client fail every later call. v0 is not served, as in Kafka 4 (KIP-896).
"""

from kafka.protocol.admin import DescribeAclsRequest, DescribeAclsResponse

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

NO_AUTHORIZER = "No Authorizer is configured."  # Kafka's message


@handles(DescribeAclsRequest, 1, 3)
async def handle(ctx, request):
    return DescribeAclsResponse(throttle_time_ms=0, error_code=ErrorCode.SECURITY_DISABLED,
                                error_message=NO_AUTHORIZER, resources=[])

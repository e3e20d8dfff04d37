"""DescribeAcls (v1-v3): the ACL bindings that match a filter, grouped by resource pattern.

With no authorizer configured (``authorizer.class.name`` unset) the answer is
SECURITY_DISABLED, as Kafka's AclApis answers; clients treat it as "ACLs are off" and go
on, whereas a closed connection made sarama's admin client fail every later call. The
principal needs DESCRIBE on the cluster (checked before, see broker.authorizer).
A filter with an UNKNOWN field is INVALID_REQUEST. v0 is not served, as in Kafka 4 (KIP-896).
"""

from kafka.protocol.admin import DescribeAclsRequest, DescribeAclsResponse

from odradek.broker.authorizer import CLUSTER, access, needs_permission
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode
from odradek.replication.acls import CLUSTER_NAME, AclFilter

NO_AUTHORIZER = "No Authorizer is configured."  # Kafka's message
R = DescribeAclsResponse


def acl_filter(f) -> AclFilter:
    """A request's filter fields (DescribeAcls' request, DeleteAcls' filters) as an AclFilter."""
    return AclFilter(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter,
                     f.principal_filter, f.host_filter, f.operation, f.permission_type)


@handles(DescribeAclsRequest, 1, 3)
async def handle(ctx, request):
    if ctx.broker.authorizer is None:
        return R(throttle_time_ms=0, error_code=ErrorCode.SECURITY_DISABLED,
                 error_message=NO_AUTHORIZER, resources=[])
    if not ctx.may(CLUSTER, CLUSTER_NAME):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                 error_message=needs_permission(ctx, access(29, CLUSTER).operation), resources=[])
    f = acl_filter(request)
    invalid = f.invalid()
    if invalid is not None:
        return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST, error_message=invalid,
                 resources=[])
    by_pattern: dict[tuple, list] = {}
    for record in ctx.broker.image.acls.values():
        b = record.binding()
        if f.matches(b):
            by_pattern.setdefault((b.resource_type, b.resource_name, b.pattern_type), []).append(
                R.DescribeAclsResource.AclDescription(principal=b.principal, host=b.host,
                                                      operation=b.operation,
                                                      permission_type=b.permission_type))
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, resources=[
        R.DescribeAclsResource(resource_type=rtype, resource_name=name, pattern_type=ptype, acls=acls)
        for (rtype, name, ptype), acls in sorted(by_pattern.items())])

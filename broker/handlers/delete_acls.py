"""DeleteAcls (v1-v3): remove the ACL bindings each filter matches, answering them.

SECURITY_DISABLED for every filter while no authorizer is configured, as Kafka answers
(see describe_acls). The principal needs ALTER on the cluster, else every filter is
CLUSTER_AUTHORIZATION_FAILED. A filter with an UNKNOWN field is INVALID_REQUEST; a
binding matched by two filters is reported by the first. v0 is not served, as in Kafka 4.
"""

from dataclasses import astuple

from kafka.protocol.admin import DeleteAclsRequest, DeleteAclsResponse

from odradek.broker.authorizer import CLUSTER, access, needs_permission
from odradek.broker.handlers import handles, time_left
from odradek.broker.handlers.create_acls import TIMEOUT_MS
from odradek.broker.handlers.describe_acls import NO_AUTHORIZER, acl_filter
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.acls import CLUSTER_NAME

R = DeleteAclsResponse
Result = R.DeleteAclsFilterResult


def _failed(count: int, code: ErrorCode, message: str | None) -> R:
    return R(throttle_time_ms=0, filter_results=[
        Result(error_code=code, error_message=message, matching_acls=[]) for _ in range(count)])


@handles(DeleteAclsRequest, 1, 3)
async def handle(ctx, request):
    if ctx.broker.authorizer is None:
        return _failed(len(request.filters), ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)
    if not ctx.may(CLUSTER, CLUSTER_NAME):
        return _failed(len(request.filters), ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                       needs_permission(ctx, access(31, CLUSTER).operation))
    filters = [acl_filter(f) for f in request.filters]
    invalid = {i: f.invalid() for i, f in enumerate(filters) if f.invalid() is not None}
    valid = [list(astuple(f)) for i, f in enumerate(filters) if i not in invalid]
    try:
        matched = iter(await ctx.broker.controller.delete_acls(valid, timeout_s=time_left(TIMEOUT_MS)())
                       if valid else [])
    except KafkaError as e:
        return _failed(len(filters), e.code, e.message)
    results = []
    for i in range(len(filters)):
        if i in invalid:
            results.append(Result(error_code=ErrorCode.INVALID_REQUEST, error_message=invalid[i],
                                  matching_acls=[]))
            continue
        results.append(Result(error_code=ErrorCode.NONE, error_message=None, matching_acls=[
            Result.DeleteAclsMatchingAcl(error_code=ErrorCode.NONE, error_message=None, resource_type=rtype,
                                         resource_name=name, pattern_type=ptype, principal=principal,
                                         host=host, operation=op, permission_type=perm)
            for rtype, name, ptype, principal, host, op, perm in next(matched)]))
    return R(throttle_time_ms=0, filter_results=results)

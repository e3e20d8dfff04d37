"""DescribeCluster (v0-v1): the cluster id, the controller and the brokers.

Brokers are listed with their endpoints on the listener the request came in on.
endpoint_type 1 (brokers) is the only kind this cluster has (v1+).
"""

from kafka.protocol.admin import DescribeClusterRequest, DescribeClusterResponse

from odradek.broker.handlers import handles
from odradek.broker.handlers.metadata import live_brokers
from odradek.protocol.errors import ErrorCode

R = DescribeClusterResponse
BROKERS_ENDPOINT_TYPE = 1


@handles(DescribeClusterRequest, 0, 1)
async def handle(ctx, request):
    broker = ctx.broker
    if ctx.header.api_version >= 1 and request.endpoint_type != BROKERS_ENDPOINT_TYPE:
        return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST,
                 error_message="Only broker endpoints (endpoint_type 1) are served",
                 endpoint_type=request.endpoint_type, cluster_id=broker.cluster_id,
                 controller_id=-1, brokers=[], authorized_operations=None)
    brokers = [R.DescribeClusterBroker(broker_id=b.node_id, host=b.endpoints[ctx.listener_name][0],
                                       port=b.endpoints[ctx.listener_name][1], rack=b.rack,
                                       is_fenced=b.fenced)
               for b in live_brokers(broker, ctx.listener_name)]
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None,
             endpoint_type=BROKERS_ENDPOINT_TYPE, cluster_id=broker.cluster_id,
             controller_id=broker.controller_id, brokers=brokers, authorized_operations=None)

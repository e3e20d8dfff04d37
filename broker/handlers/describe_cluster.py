"""DescribeCluster (v0-v2): the cluster id, the controller and the brokers.

Brokers are listed with their endpoints on the listener the request came in on.
endpoint_type 1 (brokers) is the only kind this listener serves (v1+): asking it for
controllers (2) is MISMATCHED_ENDPOINT_TYPE, with Kafka's message and an empty cluster id.
v2 (KIP-1073) lists fenced brokers too when include_fenced_brokers asks for them, each
with is_fenced. Not authorized, as in Kafka; the cluster's authorized operations are filled
when include_cluster_authorized_operations asks: none without DESCRIBE on the cluster, and
with no authorizer every cluster operation Kafka supports (broker.authorizer).
"""

from kafka.protocol.admin import DescribeClusterRequest, DescribeClusterResponse

from odradek.broker.handlers import handles
from odradek.broker.handlers.metadata import cluster_operations, live_brokers
from odradek.protocol.errors import ErrorCode

R = DescribeClusterResponse
BROKERS_ENDPOINT_TYPE = 1


@handles(DescribeClusterRequest, 0, 2)
async def handle(ctx, request):
    broker = ctx.broker
    version = ctx.header.api_version
    if version >= 1 and request.endpoint_type != BROKERS_ENDPOINT_TYPE:
        return R(throttle_time_ms=0, error_code=ErrorCode.MISMATCHED_ENDPOINT_TYPE,
                 error_message="The request was sent to an endpoint of type BROKER, "
                               "but we wanted an endpoint of type CONTROLLER",
                 endpoint_type=BROKERS_ENDPOINT_TYPE, cluster_id="",
                 controller_id=-1, brokers=[], authorized_operations=None)
    fenced_too = version >= 2 and request.include_fenced_brokers
    listed = (sorted((b for b in broker.image.brokers.values() if ctx.listener_name in b.endpoints),
                     key=lambda b: b.node_id)
              if fenced_too else live_brokers(broker, ctx.listener_name))
    brokers = [R.DescribeClusterBroker(broker_id=b.node_id, host=b.endpoints[ctx.listener_name][0],
                                       port=b.endpoints[ctx.listener_name][1], rack=b.rack,
                                       is_fenced=b.fenced)
               for b in listed]
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None,
             endpoint_type=BROKERS_ENDPOINT_TYPE, cluster_id=broker.cluster_id,
             controller_id=broker.controller_id, brokers=brokers,
             authorized_operations=cluster_operations(ctx) if request.include_cluster_authorized_operations
             else None)


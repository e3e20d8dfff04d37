"""ListGroups (v0-v5): the groups this node coordinates.

v4 adds states_filter (case-insensitive state names) and each group's state; v5
adds types_filter and each group's type: "classic", or "consumer" for the groups of
the consumer group protocol (KIP-848), whose protocol type is "consumer" and whose
states are Kafka's Empty, Assigning, Reconciling, Stable, or "share" for share groups
(KIP-932: protocol type "share", states Empty and Stable). While a partition of ours is
loading the answer is COORDINATOR_LOAD_IN_PROGRESS, as in Kafka. Groups deleted or
expired are not listed. Authorization (broker.authorizer): DESCRIBE on the cluster lists
every group, else only those the principal may DESCRIBE; never an authorization error.
"""

from kafka.protocol.admin.groups import ListGroupsRequest, ListGroupsResponse

from odradek.broker.authorizer import CLUSTER, GROUP
from odradek.broker.groups.consumer_group import CONSUMER_PROTOCOL_TYPE
from odradek.broker.handlers import handles
from odradek.broker.share.share_group import SHARE_PROTOCOL_TYPE
from odradek.replication.acls import CLUSTER_NAME

R = ListGroupsResponse
CLASSIC_TYPE = "classic"
CONSUMER_TYPE = "consumer"


@handles(ListGroupsRequest, 0, 5)
async def handle(ctx, request):
    version = ctx.header.api_version
    states = {s.lower() for s in request.states_filter} if version >= 4 else set()
    types = {t.lower() for t in request.types_filter} if version >= 5 else set()
    coordinator = ctx.broker.groups
    error, groups = coordinator.list_groups()
    listed = []
    if not types or CLASSIC_TYPE in types:
        listed += [(g.group_id, g.protocol_type or "", g.state.value, CLASSIC_TYPE) for g in groups]
    if not error and (not types or CONSUMER_TYPE in types):
        listed += [(g.group_id, CONSUMER_PROTOCOL_TYPE, g.state.value, CONSUMER_TYPE)
                   for g in coordinator.list_consumer_groups()]
    if not error and (not types or SHARE_PROTOCOL_TYPE in types):
        listed += [(g.group_id, SHARE_PROTOCOL_TYPE, g.state.value, SHARE_PROTOCOL_TYPE)
                   for g in coordinator.list_share_groups()]
    if not ctx.may(CLUSTER, CLUSTER_NAME):
        listed = [g for g in listed if ctx.may(GROUP, g[0])]
    return R(throttle_time_ms=0, error_code=error, groups=[
        R.ListedGroup(group_id=group_id, protocol_type=protocol_type, group_state=state, group_type=kind)
        for group_id, protocol_type, state, kind in listed if not states or state.lower() in states])

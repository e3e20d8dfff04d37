"""AlterConfigs (v0-v2) and IncrementalAlterConfigs (v0-v1) for topic configs.

AlterConfigs replaces a topic's whole set of overrides (keys not named go back to
their defaults); IncrementalAlterConfigs SETs, DELETEs, APPENDs to or SUBTRACTs from
single keys (APPEND and SUBTRACT only for list keys such as cleanup.policy). Every
value is validated before anything changes.

A broker resource (its id, or "" for the cluster-wide default) holds dynamic broker
configs: the controller validates them (only the keys Kafka lets change at run time) and
commits them to the metadata log, from which every node applies them (Broker.on_metadata).
A change of this node's listener key or trust stores (listener.name.<listener>.ssl.*) is
first checked here, by the node that will use it, as Kafka's broker does.
A group resource (KIP-848, its group id) holds group-level configs (config.GROUP_CONFIGS),
committed to the metadata log too; the group coordinator reads them from the image.
Authorization (broker.authorizer): ALTER_CONFIGS on the topic, on the group for a group,
or on the cluster for a broker, else TOPIC_AUTHORIZATION_FAILED /
GROUP_AUTHORIZATION_FAILED / CLUSTER_AUTHORIZATION_FAILED for that resource.
"""

from kafka.protocol.admin import (
    AlterConfigsRequest,
    AlterConfigsResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)

from odradek.broker.config import BROKER_CONFIGS, GROUP_CONFIGS, LIST, TOPIC_CONFIGS
from odradek.broker.handlers import handles
from odradek.broker.handlers.describe_configs import config_access_error
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.metadata import BROKER, GROUP

SET, DELETE, APPEND, SUBTRACT = range(4)


def _incremental_changes(broker, resource) -> dict[str, str | None]:
    current = broker.image.configs.get((resource.resource_type, resource.resource_name), {})
    definitions = {BROKER: BROKER_CONFIGS, GROUP: GROUP_CONFIGS}.get(resource.resource_type, TOPIC_CONFIGS)
    changes: dict[str, str | None] = {}
    for c in resource.configs:
        if c.config_operation == SET:
            changes[c.name] = c.value
        elif c.config_operation == DELETE:
            changes[c.name] = None
        elif c.config_operation in (APPEND, SUBTRACT):
            d = definitions.get(c.name)
            if d is None or d.type != LIST:
                raise KafkaError(ErrorCode.INVALID_CONFIG,
                                 f"APPEND and SUBTRACT apply only to list configs, not {c.name}")
            items = changes.get(c.name) or current.get(c.name) or ",".join(d.default)
            values = [v for v in items.split(",") if v]
            new = [v for v in (c.value or "").split(",") if v]
            if c.config_operation == APPEND:
                values += [v for v in new if v not in values]
            else:
                values = [v for v in values if v not in new]
            changes[c.name] = ",".join(values)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Unknown config operation {c.config_operation} for {c.name}")
    return changes


async def _alter(ctx, request, response_class, incremental: bool):
    results = []
    for resource in request.resources:
        try:
            denied = config_access_error(ctx, resource.resource_type, resource.resource_name)
            if denied is not None:
                raise KafkaError(denied)
            if incremental:
                changes, replace = _incremental_changes(ctx.broker, resource), False
            else:
                changes, replace = {c.name: c.value for c in resource.configs}, True
            if resource.resource_type == BROKER and resource.resource_name == str(ctx.broker.node_id):
                await ctx.broker.validate_listener_ssl(changes, replace)  # the new stores must load
            await ctx.broker.controller.alter_configs(resource.resource_type, resource.resource_name,
                                                      changes, replace, request.validate_only)
            code, message = ErrorCode.NONE, None
        except KafkaError as e:
            code, message = e.code, e.message
        results.append(response_class.AlterConfigsResourceResponse(
            error_code=code, error_message=message, resource_type=resource.resource_type,
            resource_name=resource.resource_name))
    return response_class(throttle_time_ms=0, responses=results)


@handles(AlterConfigsRequest, 0, 2)
async def handle_alter_configs(ctx, request):
    return await _alter(ctx, request, AlterConfigsResponse, incremental=False)


@handles(IncrementalAlterConfigsRequest, 0, 1)
async def handle_incremental_alter_configs(ctx, request):
    return await _alter(ctx, request, IncrementalAlterConfigsResponse, incremental=True)

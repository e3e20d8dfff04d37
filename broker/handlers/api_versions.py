"""ApiVersions (v0-v4): the versions this broker serves, built from the handler registry.

KIP-511: a client may open with a version newer than ours (kafka-python sends v4,
librdkafka v3). We cannot decode that body, so the server calls us with
``request=None`` and we answer UNSUPPORTED_VERSION with our ranges in a v0 body;
the client retries at a version we listed and the connection stays open.
Inter-node APIs are never offered to clients.

v3+ carry the feature flags (KIP-584), which `kafka-features describe` and Admin's
describeFeatures read: the features this node implements (replication/features.py), the
levels the metadata log finalized, and, as their epoch, the metadata offset this node's
image has applied (Kafka answers the same: its image's offset).
group.version 1 says the consumer group protocol (KIP-848, ConsumerGroupHeartbeat) is on.
"""

from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse

from odradek.broker.handlers import HANDLERS, handles
from odradek.protocol.errors import ErrorCode
from odradek.replication import features

R = ApiVersionsResponse

# feature -> (min supported, max supported, finalized level)


def api_keys() -> list:
    return [ApiVersionsResponse.ApiVersion(api_key=h.api_key, min_version=h.min_version,
                                           max_version=h.max_version)
            for h in sorted(HANDLERS.values(), key=lambda h: h.api_key) if h.client_facing]


@handles(ApiVersionsRequest, 0, 4)
async def handle(ctx, request):
    error = ErrorCode.NONE
    name = getattr(request, "client_software_name", None)  # v3+ (KIP-511)
    if name:
        ctx.connection.client_software = (name, request.client_software_version or "unknown")
    if request is None:
        ctx.response_version = 0
        error = ErrorCode.UNSUPPORTED_VERSION
    image = ctx.broker.image
    return R(error_code=error, api_keys=api_keys(), throttle_time_ms=0,
             supported_features=[R.SupportedFeatureKey(name=f.name, min_version=f.min_level,
                                                       max_version=f.max_level)
                                 for f in features.supported()],
             finalized_features_epoch=image.offset if image.features else -1,
             finalized_features=[R.FinalizedFeatureKey(name=name, max_version_level=level,
                                                       min_version_level=level)
                                 for name, level in image.features.items()],
             zk_migration_ready=False)

"""ApiVersions (v0-v4): the versions this broker serves, built from the handler registry.

KIP-511: a client may open with a version newer than ours (kafka-python sends v4,
librdkafka v3). We cannot decode that body, so the server calls us with
``request=None`` and we answer UNSUPPORTED_VERSION with our ranges in a v0 body;
the client retries at a version we listed and the connection stays open.
Inter-node APIs are never offered to clients.

v3+ carry the KIP-584 features: the versions this node supports and the levels
finalized for the cluster. group.version=1 says the consumer group protocol (KIP-848,
ConsumerGroupHeartbeat) is on; the finalized epoch is the metadata image's offset, as
Kafka's. (Finalized levels are not yet records of the metadata log: they are fixed.)
"""

from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse

from odradek.broker.handlers import HANDLERS, handles
from odradek.protocol.errors import ErrorCode

# feature -> (min supported, max supported, finalized level)
FEATURES = {"group.version": (0, 1, 1)}


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
    R = ApiVersionsResponse
    return R(error_code=error, api_keys=api_keys(), throttle_time_ms=0,
             supported_features=[R.SupportedFeatureKey(name=n, min_version=lo, max_version=hi)
                                 for n, (lo, hi, _) in FEATURES.items()],
             finalized_features_epoch=max(ctx.broker.image.offset, 0),
             finalized_features=[R.FinalizedFeatureKey(name=n, min_version_level=level,
                                                       max_version_level=level)
                                 for n, (_, _, level) in FEATURES.items()])

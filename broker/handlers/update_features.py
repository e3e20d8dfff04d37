"""UpdateFeatures (v0-v2, KIP-584): change finalized feature levels, carried out by the
active controller (``Controller.update_features``, rules in replication/features.py).

All or nothing, as in Kafka: one refused update fails every one with INVALID_UPDATE_VERSION
and the message naming it, at the top level only. v0 says allow_downgrade (a safe
downgrade), v1+ upgrade_type; v0-v1 list each feature's success, v2 has no per-feature
results. A feature named twice is INVALID_REQUEST.
"""

from kafka.protocol.admin import UpdateFeaturesRequest, UpdateFeaturesResponse

from odradek.broker.handlers import handles, time_left
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.features import SAFE_DOWNGRADE, UPGRADE

R = UpdateFeaturesResponse


@handles(UpdateFeaturesRequest, 0, 2)
async def handle(ctx, request):
    updates = []
    for u in request.feature_updates:
        upgrade_type = getattr(u, "upgrade_type", None)
        if upgrade_type is None:  # v0
            upgrade_type = SAFE_DOWNGRADE if u.allow_downgrade else UPGRADE
        updates.append([u.feature, u.max_version_level, upgrade_type])
    names = [name for name, _, _ in updates]
    try:
        if len(set(names)) != len(names):
            raise KafkaError(ErrorCode.INVALID_REQUEST, "A feature may be named once per request")
        await ctx.broker.controller.update_features(updates, bool(getattr(request, "validate_only", False)),
                                                    timeout_s=time_left(request.timeout_ms)())
        code, message = ErrorCode.NONE, None
    except KafkaError as e:
        code, message = e.code, e.message
    # v0-v1: one result per feature on success; with a top-level error Kafka lists none.
    results = [R.UpdatableFeatureResult(feature=name, error_code=code, error_message=message)
               for name in dict.fromkeys(names)] if code == ErrorCode.NONE and ctx.header.api_version < 2 else []
    return R(throttle_time_ms=0, error_code=code, error_message=message, results=results)

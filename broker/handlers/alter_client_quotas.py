"""AlterClientQuotas (v0-v1): set or remove client quotas, as records of the metadata log.

An entity is a ``user`` and/or a ``client-id``, each named or the default (a null name);
a type named twice keeps its last name, as Kafka reads it. Keys are ``producer_byte_rate``
and ``consumer_byte_rate`` (whole bytes per second) and ``request_percentage``. A bad
entity (empty, or another type: ``ip`` quotas are not enforced here) or a bad key or value is INVALID_REQUEST for that entry; the
other entries apply. validate_only checks and changes nothing. The principal needs
ALTER_CONFIGS on the cluster, else each entry is CLUSTER_AUTHORIZATION_FAILED
(broker.authorizer). Enforcement: broker.quotas.
"""

import math

from kafka.protocol.admin import AlterClientQuotasRequest, AlterClientQuotasResponse

from odradek.broker.authorizer import CLUSTER, DENIED_MESSAGE
from odradek.broker.handlers import handles, time_left
from odradek.broker.handlers.create_acls import TIMEOUT_MS
from odradek.broker.quotas import ENTITY_TYPES, QUOTA_KEYS, REQUEST_PERCENTAGE
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.acls import CLUSTER_NAME

R = AlterClientQuotasResponse


def entry_error(entry) -> str | None:
    """Why an entry cannot be applied, in Kafka's words where it has them (None: it can)."""
    types = [e.entity_type for e in entry.entity]
    if not types:
        return "Invalid empty client quota entity"
    for t in types:
        if t not in ENTITY_TYPES:
            return f"Unsupported client quota entity type {t!r} (use user or client-id)"
    for op in entry.ops:
        if op.key not in QUOTA_KEYS:
            return f"Invalid configuration key {op.key}"
        if op.remove:
            continue
        if not math.isfinite(op.value) or op.value < 0:
            return f"Invalid value {op.value} for configuration {op.key}: must be at least 0"
        if op.key != REQUEST_PERCENTAGE and op.value != math.floor(op.value):
            return f"{op.key} cannot be a fractional value."  # Kafka's words
    return None


@handles(AlterClientQuotasRequest, 0, 1)
async def handle(ctx, request):
    allowed = ctx.may(CLUSTER, CLUSTER_NAME)
    codes, changes = [], []
    for entry in request.entries:
        entity = entity_of(entry)
        error = None if allowed else DENIED_MESSAGE[ErrorCode.CLUSTER_AUTHORIZATION_FAILED]
        code = ErrorCode.NONE if allowed else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        if allowed and (error := entry_error(entry)) is not None:
            code = ErrorCode.INVALID_REQUEST
        codes.append((code, error))
        if code == ErrorCode.NONE:
            changes += [[entity, op.key, None if op.remove else float(op.value)] for op in entry.ops]
    if changes:
        try:
            await ctx.broker.controller.alter_client_quotas(changes, request.validate_only,
                                                            timeout_s=time_left(TIMEOUT_MS)())
        except KafkaError as e:
            codes = [(e.code, e.message) if code == ErrorCode.NONE else (code, m) for code, m in codes]
    return R(throttle_time_ms=0, entries=[
        R.EntryData(error_code=code, error_message=message, entity=[
            R.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in sorted(entity_of(entry).items())])
        for (code, message), entry in zip(codes, request.entries, strict=True)])


def entity_of(entry) -> dict[str, str | None]:
    """An entry's entity as Kafka reads it: a map, where a type named twice keeps its last
    name; it is answered in type order, as Kafka echoes it."""
    return {e.entity_type: e.entity_name for e in entry.entity}

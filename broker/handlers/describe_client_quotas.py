"""DescribeClientQuotas (v0-v1): the client quotas whose entity matches a filter.

Each component names an entity type (``user`` or ``client-id``) and how its name must
match: 0 exactly ``match``, 1 the type's default entity (``<default>``), 2 any name.
``strict`` asks for entities with exactly the components' types; otherwise they may have
more. A type named twice, an unknown one or a bad match type is INVALID_REQUEST (no entries). The
principal needs DESCRIBE_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED:
broker.authorizer). Quotas are records of the metadata log (broker.quotas).
"""

from kafka.protocol.admin import DescribeClientQuotasRequest, DescribeClientQuotasResponse

from odradek.broker.authorizer import CLUSTER
from odradek.broker.handlers import handles
from odradek.broker.quotas import ENTITY_TYPES
from odradek.protocol.errors import ErrorCode
from odradek.replication.acls import CLUSTER_NAME

R = DescribeClientQuotasResponse
EXACT, DEFAULT, ANY = 0, 1, 2


def _invalid(message: str) -> R:
    return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST, error_message=message, entries=None)


def matches(names: dict, components, strict: bool) -> bool:
    """Whether an entity ({type: name or None}) passes every component of the filter."""
    for c in components:
        if c.entity_type not in names:
            return False
        name = names[c.entity_type]
        if (c.match_type == EXACT and name != c.match) or (c.match_type == DEFAULT and name is not None):
            return False
    return not strict or set(names) == {c.entity_type for c in components}


@handles(DescribeClientQuotasRequest, 0, 1)
async def handle(ctx, request):
    if not ctx.may(CLUSTER, CLUSTER_NAME):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None,
                 entries=None)
    seen = set()
    for c in request.components:
        if c.entity_type in seen:  # Kafka's words
            return _invalid(f"Entity type {c.entity_type} cannot appear more than once in the filter.")
        seen.add(c.entity_type)
        if c.entity_type not in ENTITY_TYPES:
            return _invalid(f"Unsupported entity type {c.entity_type!r} (use user or client-id)")
        if c.match_type not in (EXACT, DEFAULT, ANY) or (c.match_type == EXACT and c.match is None):
            return _invalid(f"Invalid match type {c.match_type} for {c.entity_type}")
    entries = []
    for entity, quotas in sorted(ctx.broker.image.client_quotas.items(), key=lambda kv: repr(kv[0])):
        if matches(dict(entity), request.components, request.strict):
            entries.append(R.EntryData(
                entity=[R.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                values=[R.EntryData.ValueData(key=k, value=v) for k, v in sorted(quotas.items())]))
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message="", entries=entries)

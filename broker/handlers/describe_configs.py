"""DescribeConfigs (v1-v4; v0 went with Kafka 4.0, KIP-896): topic and broker configs with their sources and synonyms.

A topic key's value comes from the topic's own override (source TOPIC_CONFIG), else
from its broker-level synonym when the operator set it (STATIC_BROKER_CONFIG), else
the default (DEFAULT_CONFIG); with include_synonyms (v1+) that chain is listed, most
specific first, as Kafka does.
Broker configs are static (read-only): they are set on the command line.
"""

from dataclasses import dataclass

from kafka.protocol.admin import DescribeConfigsRequest, DescribeConfigsResponse

from odradek.broker.config import BROKER_CONFIGS, TOPIC_CONFIGS, ConfigDef
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode
from odradek.replication.metadata import BROKER, TOPIC

R = DescribeConfigsResponse
Entry = R.DescribeConfigsResult.DescribeConfigsResourceResult

# Broker keys Kafka defines without a default: their effective value comes from a coarser
# key (log.retention.hours, log.roll.hours) or the flush scheduler, so Kafka lists no
# default synonym under them.
NO_DEFAULT_IN_KAFKA = frozenset({"log.retention.ms", "log.roll.ms", "log.flush.interval.ms"})

# ConfigSource values of DescribeConfigs v1+
TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5


def render(value) -> str | None:
    """A typed config value as Kafka prints it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, float):
        # Java's Double.toString: 0.5, 1.7976931348623157E308 (Python: ...e+308)
        mantissa, _, exponent = repr(value).partition("e")
        return f"{mantissa if '.' in mantissa else mantissa + '.0'}E{int(exponent)}" if exponent else mantissa
    return str(value)


@dataclass(slots=True)
class ConfigEntry:
    name: str
    value: str | None
    config_source: int
    read_only: bool
    synonyms: list[tuple[str, str | None, int]]
    definition: ConfigDef


def topic_config_entries(broker, overrides: dict[str, str], include_synonyms: bool) -> list[ConfigEntry]:
    entries = []
    config = broker.config
    for key, d in TOPIC_CONFIGS.items():
        chain = []
        if key in overrides:
            chain.append((key, render(d.parse(overrides[key])), TOPIC_CONFIG))
        if d.synonym in config.explicit:
            chain.append((d.synonym, render(config[d.synonym]), STATIC_BROKER_CONFIG))
        if d.synonym not in NO_DEFAULT_IN_KAFKA:
            chain.append((d.synonym or key, render(d.default), DEFAULT_CONFIG))
        value, source = (chain[0][1], chain[0][2]) if chain else (render(d.default), DEFAULT_CONFIG)
        entries.append(ConfigEntry(key, value, source, False, chain if include_synonyms else [], d))
    return entries


def broker_config_entries(broker, include_synonyms: bool) -> list[ConfigEntry]:
    config = broker.config
    entries = []
    for key, d in BROKER_CONFIGS.items():
        source = STATIC_BROKER_CONFIG if key in config.explicit else DEFAULT_CONFIG
        # Kafka shows its keys without a default as null until set (NO_DEFAULT_IN_KAFKA)
        unset = source == DEFAULT_CONFIG and key in NO_DEFAULT_IN_KAFKA
        value = None if unset else render(config[key])
        entries.append(ConfigEntry(key, value, source, True,
                                   [(key, value, source)] if include_synonyms else [], d))
    return entries


def _result(resource, entries: list[ConfigEntry], include_documentation: bool):
    keys = resource.configuration_keys
    return R.DescribeConfigsResult(
        error_code=ErrorCode.NONE, error_message="", resource_type=resource.resource_type,
        resource_name=resource.resource_name,
        configs=[Entry(name=e.name, value=e.value, read_only=e.read_only,
                       config_source=e.config_source, is_default=e.config_source == DEFAULT_CONFIG,
                       is_sensitive=False,
                       synonyms=[Entry.DescribeConfigsSynonym(name=n, value=v, source=s)
                                 for n, v, s in e.synonyms],
                       config_type=e.definition.type,
                       documentation=e.definition.doc if include_documentation else None)
                 for e in entries if keys is None or e.name in keys])


def _error(resource, code: ErrorCode, message: str):
    return R.DescribeConfigsResult(error_code=code, error_message=message,
                                   resource_type=resource.resource_type,
                                   resource_name=resource.resource_name, configs=[])


@handles(DescribeConfigsRequest, 1, 4)
async def handle(ctx, request):
    broker = ctx.broker
    results = []
    for resource in request.resources:
        if resource.resource_type == TOPIC:
            if resource.resource_name not in broker.image.topics:
                # Kafka 4.4 answers with an empty message (the code says it all).
                results.append(_error(resource, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ""))
                continue
            entries = topic_config_entries(broker, broker.image.topic_configs(resource.resource_name),
                                           request.include_synonyms)
        elif resource.resource_type == BROKER:
            if resource.resource_name not in ("", str(broker.node_id)):
                results.append(_error(resource, ErrorCode.INVALID_REQUEST,
                                      f"Broker {resource.resource_name} is not this node "
                                      f"({broker.node_id}); ask that broker"))
                continue
            entries = broker_config_entries(broker, request.include_synonyms)
        else:
            results.append(_error(resource, ErrorCode.INVALID_REQUEST,
                                  f"Resource type {resource.resource_type} is not supported "
                                  "(use 2 for a topic or 4 for a broker)"))
            continue
        results.append(_result(resource, entries, request.include_documentation))
    return R(throttle_time_ms=0, results=results)

"""DescribeConfigs (v1-v4; v0 went with Kafka 4.0, KIP-896): topic and broker configs with their sources and synonyms.

A broker key's value comes from, most specific first: this broker's dynamic config
(DYNAMIC_BROKER_CONFIG), the cluster-wide dynamic default (DYNAMIC_DEFAULT_BROKER_CONFIG),
the node's own settings (STATIC_BROKER_CONFIG), Kafka's default (DEFAULT_CONFIG). A topic
key's comes from the topic's override (DYNAMIC_TOPIC_CONFIG), else from its broker synonym
by that same chain. With include_synonyms the chain is listed as Kafka builds it: source by
source, each over the key's synonyms (log.retention.ms, .minutes, .hours), dropping what
comes before the first entry of the key itself (so a default of log.retention.hours alone
is not listed under log.retention.ms).

The broker resource "" is the cluster-wide default: only the keys set there are listed.
Dynamic keys are writable (read_only false); a key Kafka does not know, set dynamically,
is listed as Kafka lists it: sensitive, without its value.
Authorization (broker.authorizer): DESCRIBE_CONFIGS on the topic, or on the cluster for a
broker, else TOPIC_AUTHORIZATION_FAILED / CLUSTER_AUTHORIZATION_FAILED for that resource.
"""

from dataclasses import dataclass
from decimal import Decimal

from kafka.protocol.admin import DescribeConfigsRequest, DescribeConfigsResponse

from odradek.broker.authorizer import CLUSTER, DENIED_MESSAGE
from odradek.broker.authorizer import GROUP as ACL_GROUP
from odradek.broker.authorizer import TOPIC as ACL_TOPIC
from odradek.broker.config import (
    AUTHORIZER_KEYS,
    BROKER_CONFIGS,
    BROKER_SYNONYMS,
    DYNAMIC_BROKER_CONFIGS,
    DYNAMIC_ONLY_CONFIGS,
    DYNAMIC_SSL_CONFIGS,
    GROUP_CONFIGS,
    TOPIC_CONFIGS,
    ConfigDef,
    ConfigError,
    group_config_default,
    listener_key,
)
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode
from odradek.replication.acls import CLUSTER_NAME
from odradek.replication.metadata import BROKER, GROUP, TOPIC
from odradek.storage.config import PASSWORD, STRING

R = DescribeConfigsResponse
Entry = R.DescribeConfigsResult.DescribeConfigsResourceResult

# Broker keys Kafka defines without a default: their effective value comes from a coarser
# key (log.retention.hours, log.roll.hours) or the flush scheduler, so Kafka lists no
# default synonym under them.
NO_DEFAULT_IN_KAFKA = frozenset({"log.retention.ms", "log.roll.ms", "log.flush.interval.ms"})

# ConfigSource values of DescribeConfigs v1+
TOPIC_CONFIG, DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG, \
    DEFAULT_CONFIG = 1, 2, 3, 4, 5
GROUP_CONFIG = 8  # DYNAMIC_GROUP_CONFIG
UNKNOWN_KEY = ConfigDef("", STRING, None)  # a dynamic key Kafka does not define
GROUP_CONFIG = 8  # ConfigSource of a group's own config (KIP-848, KIP-932)


def render(value) -> str | None:
    """A typed config value as Kafka prints it (doubles as Java's Double.toString)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, float):
        return java_double(value)
    return str(value)


def java_double(value: float) -> str:
    """Java's Double.toString: shortest digits, scientific (1.0E7) outside [1e-3, 1e7)."""
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()  # repr: shortest digits
    text = "".join(map(str, digits))
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{len(digits) - 1 + int(exponent)}"


def _rendered(d: ConfigDef, raw: str) -> str | None:
    try:
        return render(d.parse(raw))
    except ConfigError:
        return raw


def broker_chain(config, key: str) -> list[tuple[str, str | None, int]]:
    """Kafka's synonyms of broker key ``key``: source by source, each over its synonyms,
    from the first entry of ``key`` itself on (ConfigHelper's dropWhile)."""
    names = BROKER_SYNONYMS.get(key, (key,))
    chain = []
    for layer, source in ((config.dynamic_node, DYNAMIC_BROKER_CONFIG),
                          (config.dynamic_default, DYNAMIC_DEFAULT_BROKER_CONFIG)):
        chain += [(n, _rendered(BROKER_CONFIGS.get(n) or DYNAMIC_ONLY_CONFIGS.get(n, UNKNOWN_KEY),
                                layer[n]), source) for n in names if n in layer]
    chain += [(n, render(config.values[n]), STATIC_BROKER_CONFIG) for n in names if n in config.explicit]
    chain += [(n, render(BROKER_CONFIGS[n].default), DEFAULT_CONFIG) for n in names
              if n in BROKER_CONFIGS and BROKER_CONFIGS[n].default is not None
              and n not in NO_DEFAULT_IN_KAFKA]
    while chain and chain[0][0] != key:
        chain.pop(0)
    return chain


@dataclass(slots=True)
class ConfigEntry:
    name: str
    value: str | None
    config_source: int
    read_only: bool
    synonyms: list[tuple[str, str | None, int]]
    definition: ConfigDef
    sensitive: bool = False


def topic_config_entries(broker, overrides: dict[str, str], include_synonyms: bool) -> list[ConfigEntry]:
    entries = []
    config = broker.config
    effective = config.topic_config(overrides)
    for key, d in TOPIC_CONFIGS.items():
        chain = [(key, render(d.parse(overrides[key])), TOPIC_CONFIG)] if key in overrides else []
        chain += broker_chain(config, d.synonym or key)
        source = chain[0][2] if chain else DEFAULT_CONFIG
        entries.append(ConfigEntry(key, render(effective[key]), source, False,
                                   chain if include_synonyms else [], d))
    return entries


def broker_config_entries(broker, include_synonyms: bool) -> list[ConfigEntry]:
    """This broker's every key, then the dynamic keys set for it that Kafka lists only when set."""
    config = broker.config
    entries = []
    for key, d in BROKER_CONFIGS.items():
        if key in AUTHORIZER_KEYS:
            continue
        chain = broker_chain(config, key)
        if d.type == PASSWORD:  # a password's value is never shown (Kafka: null, is_sensitive)
            chain = [(name, None, source) for name, _, source in chain]
        # Kafka shows its keys without a default as null until set (NO_DEFAULT_IN_KAFKA)
        unset = not chain and key in NO_DEFAULT_IN_KAFKA
        value = None if unset or d.type == PASSWORD else render(config[key])
        entries.append(ConfigEntry(key, value, chain[0][2] if chain else DEFAULT_CONFIG,
                                   key not in DYNAMIC_BROKER_CONFIGS and key not in DYNAMIC_SSL_CONFIGS,
                                   chain if include_synonyms else [], d))
    for key in sorted((config.dynamic_node.keys() | config.dynamic_default.keys()) - BROKER_CONFIGS.keys()):
        split = listener_key(key)
        if split is not None and split[1] in BROKER_CONFIGS and key in config.dynamic_node:
            entries.append(_listener_entry(config, key, split[1], include_synonyms))
        else:
            entries.append(_extra_entry(config, key, broker_chain(config, key), include_synonyms))
    return entries


def _listener_entry(config, key: str, base: str, include_synonyms: bool) -> ConfigEntry:
    """A listener.name.<listener>.<key> set for this broker, as Kafka lists it: read-only,
    its value (null for a password) from DYNAMIC_BROKER_CONFIG, the base key's chain as
    its synonyms."""
    d = BROKER_CONFIGS[base]
    chain = [(key, _rendered(d, config.dynamic_node[key]), DYNAMIC_BROKER_CONFIG), *broker_chain(config, base)]
    if d.type == PASSWORD:
        chain = [(name, None, source) for name, _, source in chain]
    return ConfigEntry(key, chain[0][1], DYNAMIC_BROKER_CONFIG, True, chain if include_synonyms else [], d)


def _extra_entry(config, key: str, chain: list, include_synonyms: bool) -> ConfigEntry:
    """A dynamic key outside BROKER_CONFIGS: a throttle, or one Kafka does not know (then
    sensitive, as Kafka treats an unknown key, and without its value)."""
    d = DYNAMIC_ONLY_CONFIGS.get(key)
    if d is None:
        chain = [(n, None, s) for n, _, s in chain]
    return ConfigEntry(key, chain[0][1], chain[0][2], False, chain if include_synonyms else [],
                       d or UNKNOWN_KEY, sensitive=d is None)


def default_broker_entries(broker, include_synonyms: bool) -> list[ConfigEntry]:
    """The cluster-wide default resource (""): only the keys set there."""
    config = broker.config
    entries = []
    for key in sorted(config.dynamic_default):
        chain = [(key, _rendered(BROKER_CONFIGS.get(key) or DYNAMIC_ONLY_CONFIGS.get(key, UNKNOWN_KEY),
                                 config.dynamic_default[key]), DYNAMIC_DEFAULT_BROKER_CONFIG)]
        if key in BROKER_CONFIGS:
            entries.append(ConfigEntry(key, chain[0][1], DYNAMIC_DEFAULT_BROKER_CONFIG, False,
                                       chain if include_synonyms else [], BROKER_CONFIGS[key]))
        else:
            entries.append(_extra_entry(config, key, chain, include_synonyms))
    return entries


def _result(resource, entries: list[ConfigEntry], include_documentation: bool):
    keys = resource.configuration_keys
    return R.DescribeConfigsResult(
        error_code=ErrorCode.NONE, error_message="", resource_type=resource.resource_type,
        resource_name=resource.resource_name,
        configs=[Entry(name=e.name, value=e.value, read_only=e.read_only,
                       config_source=e.config_source, is_default=e.config_source == DEFAULT_CONFIG,
                       is_sensitive=e.sensitive or e.definition.type == PASSWORD,
                       synonyms=[Entry.DescribeConfigsSynonym(name=n, value=v, source=s)
                                 for n, v, s in e.synonyms],
                       config_type=e.definition.type,
                       documentation=e.definition.doc if include_documentation else None)
                 for e in entries if keys is None or e.name in keys])


def group_config_entries(broker, overrides: dict[str, str], include_synonyms: bool) -> list[ConfigEntry]:
    """A group's every key (Kafka 4.4's GroupConfig): its own value (GROUP_CONFIG), else
    the broker key behind it (static or default), which is its synonym."""
    entries = []
    for key, d in GROUP_CONFIGS.items():
        synonym, default, explicit = group_config_default(broker.config, key)
        chain = [(key, render(d.parse(overrides[key])), GROUP_CONFIG)] if key in overrides else []
        chain.append((synonym, render(default), STATIC_BROKER_CONFIG if explicit else DEFAULT_CONFIG))
        entries.append(ConfigEntry(key, chain[0][1], chain[0][2], False, chain if include_synonyms else [], d))
    return entries


def config_access_error(ctx, resource_type: int, name: str) -> ErrorCode | None:
    """The authorization error for a config resource: a topic's configs are the topic's,
    a broker's (or broker logger's) the cluster's (broker.authorizer's row for the API)."""
    if resource_type == TOPIC:
        return None if ctx.may(ACL_TOPIC, name) else ErrorCode.TOPIC_AUTHORIZATION_FAILED
    if resource_type == GROUP:
        return None if ctx.may(ACL_GROUP, name) else ErrorCode.GROUP_AUTHORIZATION_FAILED
    return None if ctx.may(CLUSTER, CLUSTER_NAME) else ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def _error(resource, code: ErrorCode, message: str):
    return R.DescribeConfigsResult(error_code=code, error_message=message,
                                   resource_type=resource.resource_type,
                                   resource_name=resource.resource_name, configs=[])


@handles(DescribeConfigsRequest, 1, 4)
async def handle(ctx, request):
    broker = ctx.broker
    results = []
    for resource in request.resources:
        denied = config_access_error(ctx, resource.resource_type, resource.resource_name)
        if denied is not None:
            results.append(_error(resource, denied, DENIED_MESSAGE[denied]))
            continue
        if resource.resource_type == TOPIC:
            if resource.resource_name not in broker.image.topics:
                # Kafka 4.4 answers with an empty message (the code says it all).
                results.append(_error(resource, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ""))
                continue
            entries = topic_config_entries(broker, broker.image.topic_configs(resource.resource_name),
                                           request.include_synonyms)
        elif resource.resource_type == BROKER:
            if resource.resource_name == "":
                entries = default_broker_entries(broker, request.include_synonyms)
                results.append(_result(resource, entries, request.include_documentation))
                continue
            if resource.resource_name != str(broker.node_id):
                results.append(_error(resource, ErrorCode.INVALID_REQUEST,
                                      f"Broker {resource.resource_name} is not this node "
                                      f"({broker.node_id}); ask that broker"))
                continue
            entries = broker_config_entries(broker, request.include_synonyms)
        elif resource.resource_type == GROUP:
            entries = group_config_entries(broker, broker.image.configs.get((GROUP, resource.resource_name), {}),
                                           request.include_synonyms)
        else:
            results.append(_error(resource, ErrorCode.INVALID_REQUEST,
                                  f"Resource type {resource.resource_type} is not supported "
                                  "(use 2 for a topic, 4 for a broker or 32 for a group)"))
            continue
        results.append(_result(resource, entries, request.include_documentation))
    return R(throttle_time_ms=0, results=results)

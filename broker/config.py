"""Broker configuration: Kafka's keys, defaults, parsing and validation.

Settings come from built-in defaults, then ``--config FILE`` (Java properties, like
Kafka's server.properties), then ``-o KEY=VALUE``, then the ``--listen``/
``--advertised`` shorthands. An unknown key or a bad value is a ``ConfigError``
whose message names the key and the expected form; the CLI exits with status 2.

Topic-level keys (``TOPIC_CONFIGS``) each name the broker key that supplies their
default (``segment.bytes`` <- ``log.segment.bytes``), as Kafka's synonyms do.
"""

import socket
from dataclasses import dataclass
from typing import Any

from odradek.storage.config import (
    BOOLEAN,
    INT,
    INT32_MAX,
    INT64_MAX,
    LIST,
    LOG_CONFIG_DEFS,
    LONG,
    SHORT,
    STRING,
    ConfigDef,
    ConfigError,
    at_least,
    defs,
    one_of,
)

__all__ = ["BROKER_CONFIGS", "TOPIC_CONFIGS", "BrokerConfig", "ConfigDef", "ConfigError", "LIST",
           "Listener", "parse_properties", "validate_topic_configs"]

COMPRESSION_TYPES = ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")

# Every topic key: the log's own (storage.config) and those the broker applies.
TOPIC_CONFIGS = dict(sorted({**LOG_CONFIG_DEFS, **defs(
    ConfigDef("compression.type", STRING, "producer",
              "only 'producer' (store batches as sent) is supported", one_of("producer"),
              "compression.type"),
    ConfigDef("delete.retention.ms", LONG, 86400000, "", at_least(0), "log.cleaner.delete.retention.ms"),
    ConfigDef("message.timestamp.before.max.ms", LONG, INT64_MAX, "", at_least(0),
              "log.message.timestamp.before.max.ms"),
    # One hour since Kafka 4.0 (KIP-1079): a timestamp far in the future is refused.
    ConfigDef("message.timestamp.after.max.ms", LONG, 3600000, "", at_least(0),
              "log.message.timestamp.after.max.ms"),
    ConfigDef("min.insync.replicas", INT, 1, "", at_least(1), "min.insync.replicas"),
    ConfigDef("unclean.leader.election.enable", BOOLEAN, False, "", None,
              "unclean.leader.election.enable"),
)}.items()))

BROKER_CONFIGS = defs(
    ConfigDef("node.id", INT, 1, "this node's id", at_least(0)),
    ConfigDef("listeners", LIST, ["PLAINTEXT://127.0.0.1:9092"], "NAME://HOST:PORT,..."),
    ConfigDef("advertised.listeners", LIST, [], "NAME://HOST:PORT,...; defaults to listeners"),
    ConfigDef("inter.broker.listener.name", STRING, "", "the listener other nodes use"),
    ConfigDef("controller.listener.names", LIST, [],
              "listeners that also serve the controller quorum's inter-node requests"),
    ConfigDef("listener.security.protocol.map", LIST, [], "NAME:PLAINTEXT,... (only PLAINTEXT)"),
    ConfigDef("controller.quorum.voters", LIST, [], "ID@HOST:PORT,..."),
    ConfigDef("num.partitions", INT, 1, "partitions of auto-created topics", at_least(1)),
    ConfigDef("default.replication.factor", SHORT, 1, "", at_least(1)),
    ConfigDef("auto.create.topics.enable", BOOLEAN, True),
    ConfigDef("delete.topic.enable", BOOLEAN, True),
    ConfigDef("socket.request.max.bytes", INT, 104857600, "largest request frame", at_least(1)),
    ConfigDef("queued.max.requests", INT, 500, "requests waiting per connection", at_least(1)),
    ConfigDef("queued.max.request.bytes", LONG, 104857600,
              "bytes of requests held in memory, all connections together, before reading pauses; "
              "-1: unbounded (Kafka's default)",
              lambda v: None if v == -1 or v >= 1 else "must be -1 or at least 1"),
    ConfigDef("max.connections", INT, INT32_MAX, "connections beyond it are closed", at_least(0)),
    ConfigDef("max.connections.per.ip", INT, INT32_MAX, "connections from one address beyond it are closed",
              at_least(0)),
    ConfigDef("max.connections.per.ip.overrides", LIST, [], "HOST_OR_IP:COUNT,... (per-address limits)"),
    ConfigDef("connections.max.idle.ms", LONG, 600000, "idle connections are closed after this",
              at_least(1)),
    ConfigDef("log.retention.hours", INT, 168, "", at_least(-1)),
    ConfigDef("log.retention.minutes", INT, None, "", at_least(-1)),
    ConfigDef("log.retention.check.interval.ms", LONG, 300000, "", at_least(1)),
    ConfigDef("log.max.open.files", INT, -1,
              "descriptors that segment files may hold open, least recently used closed first; "
              "-1: half the open-file limit, ulimit -n (Odradek's own)",
              lambda v: None if v == -1 or v >= 3 else "must be -1 or at least 3"),
    ConfigDef("offsets.topic.num.partitions", INT, 50, "", at_least(1)),
    ConfigDef("offsets.topic.replication.factor", SHORT, 3,
              "capped at the number of live brokers", at_least(1)),
    ConfigDef("offsets.retention.minutes", INT, 10080, "", at_least(1)),
    ConfigDef("offsets.retention.check.interval.ms", LONG, 600000, "", at_least(1)),
    ConfigDef("offset.metadata.max.bytes", INT, 4096, "longest commit metadata", at_least(0)),
    ConfigDef("group.initial.rebalance.delay.ms", INT, 3000, "", at_least(0)),
    ConfigDef("group.min.session.timeout.ms", INT, 6000, "", at_least(0)),
    ConfigDef("group.max.session.timeout.ms", INT, 1800000, "", at_least(0)),
    ConfigDef("group.max.size", INT, INT32_MAX, "", at_least(1)),
    ConfigDef("replica.lag.time.max.ms", LONG, 30000, "", at_least(1)),
    ConfigDef("broker.session.timeout.ms", INT, 9000, "", at_least(1)),
    ConfigDef("auto.leader.rebalance.enable", BOOLEAN, True,
              "the controller moves leadership back to preferred replicas"),
    ConfigDef("leader.imbalance.check.interval.seconds", LONG, 300, "", at_least(1)),
    ConfigDef("leader.imbalance.per.broker.percentage", INT, 10,
              "a broker's share of preferred partitions led elsewhere that triggers a rebalance",
              at_least(0)),
    ConfigDef("broker.heartbeat.interval.ms", INT, 2000, "", at_least(1)),
    ConfigDef("controller.quorum.election.timeout.ms", INT, 1000, "", at_least(10)),
    ConfigDef("controller.quorum.fetch.timeout.ms", INT, 2000, "", at_least(10)),
    ConfigDef("metadata.log.max.record.bytes.between.snapshots", LONG, 20971520,
              "metadata applied between snapshots of the image", at_least(1)),
    ConfigDef("producer.id.expiration.ms", INT, 86400000, "", at_least(1)),
    # Odradek's own: Prometheus' port list gives 9404 to the JMX exporter, which is how
    # Kafka's metrics are usually scraped (Strimzi, Confluent's examples).
    ConfigDef("http.listener", STRING, "127.0.0.1:9404",
              "HOST:PORT of /metrics, /livez and /readyz; empty: no HTTP listener (Odradek's own)",
              lambda v: None if not v.strip() or _is_host_port(v) else "expected HOST:PORT or empty"),
    ConfigDef("log.json", BOOLEAN, False, "log JSON lines instead of key=value (Odradek's own)"),
    ConfigDef("log.level", STRING, "info", "Odradek's own", one_of("debug", "info", "warning", "error")),
    # Broker-side names of topic defaults (synonyms) not already above.
    *(ConfigDef(d.synonym, d.type, d.default, d.doc, d.check)
      for d in TOPIC_CONFIGS.values() if d.synonym and d.synonym != d.name),
    *(d for d in TOPIC_CONFIGS.values() if d.synonym == d.name),
)
# log.retention.ms has no default of its own: hours and minutes fill it in, as in Kafka.
BROKER_CONFIGS["log.retention.ms"] = ConfigDef("log.retention.ms", LONG, None, "", at_least(-1))


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.name}://{self.host}:{self.port}"


def parse_host_port(text: str, key: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"Invalid value {text!r} for {key}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _is_host_port(text: str) -> bool:
    try:
        parse_host_port(text, "")
    except ConfigError:
        return False
    return True


def parse_listeners(items: list[str], key: str) -> list[Listener]:
    listeners = []
    for item in items:
        name, sep, address = item.partition("://")
        if not sep or not name:
            raise ConfigError(f"Invalid value {item!r} for {key}: expected NAME://HOST:PORT")
        host, port = parse_host_port(address, key)
        listeners.append(Listener(name.upper(), host, port))
    names = [lst.name for lst in listeners]
    if len(set(names)) != len(names):
        raise ConfigError(f"Invalid value for {key}: each listener name may appear once")
    return listeners


def parse_voters(items: list[str]) -> dict[int, tuple[str, int]]:
    """controller.quorum.voters: ID@HOST:PORT,... -> {id: (host, port)}."""
    voters = {}
    for item in items:
        node, sep, address = item.partition("@")
        if not sep or not node.strip().isdigit():
            raise ConfigError(f"Invalid value {item!r} for controller.quorum.voters: expected ID@HOST:PORT")
        voters[int(node)] = parse_host_port(address, "controller.quorum.voters")
    return voters


def parse_properties(text: str, source: str) -> dict[str, str]:
    """Java properties, the subset server.properties files use: key=value or key: value lines."""
    props = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep <= 0:
            raise ConfigError(f"{source}:{lineno}: expected KEY=VALUE, got {line!r}")
        props[line[:sep].strip()] = line[sep + 1:].strip()
    return props


class BrokerConfig:
    """Typed broker settings. Look keys up by Kafka's name: ``config["num.partitions"]``."""

    def __init__(self, overrides: dict[str, Any] | None = None):
        self.values: dict[str, Any] = {}
        self.explicit: set[str] = set()
        for key, raw in (overrides or {}).items():
            if key not in BROKER_CONFIGS:
                raise ConfigError(f"Unknown configuration {key!r}; see the README's configuration reference")
            self.values[key] = BROKER_CONFIGS[key].parse(raw)
            self.explicit.add(key)
        for key, d in BROKER_CONFIGS.items():
            self.values.setdefault(key, d.default)
        self._resolve_retention()
        self.listeners = parse_listeners(self["listeners"], "listeners")
        self.advertised_listeners = self._resolve_advertised()
        self.inter_broker_listener_name = self._resolve_inter_broker()
        self.voters = parse_voters(self["controller.quorum.voters"])
        if self.voters and self["node.id"] not in self.voters:
            raise ConfigError(f"node.id {self['node.id']} is not one of the voters "
                              f"{sorted(self.voters)} (controller.quorum.voters / --voters)")
        self.internode_listeners = self._resolve_internode()
        self.max_connections_per_ip_overrides = self._resolve_per_ip_overrides()
        for name, proto in (entry.split(":", 1) for entry in self["listener.security.protocol.map"]
                            if ":" in entry):
            if proto.upper() != "PLAINTEXT":
                raise ConfigError(f"listener.security.protocol.map: {name} uses {proto}; "
                                  "only PLAINTEXT is supported")

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def _resolve_retention(self) -> None:
        if self.values["log.retention.ms"] is None:
            minutes = self.values["log.retention.minutes"]
            if minutes is None:
                minutes = self.values["log.retention.hours"] * 60
            self.values["log.retention.ms"] = -1 if minutes < 0 else minutes * 60000

    def _resolve_advertised(self) -> dict[str, Listener]:
        advertised = {lst.name: lst for lst in parse_listeners(self["advertised.listeners"],
                                                         "advertised.listeners")}
        for listener in self.listeners:
            if listener.name in advertised:
                continue
            if listener.host in ("", "0.0.0.0", "::"):
                raise ConfigError(
                    f"listener {listener} listens on all interfaces; give it an advertised "
                    f"address (--advertised HOST:PORT or advertised.listeners={listener.name}://HOST:PORT)")
            advertised[listener.name] = listener
        unknown = set(advertised) - {lst.name for lst in self.listeners}
        if unknown:
            raise ConfigError(f"advertised.listeners names {sorted(unknown)} that listeners does not define")
        return advertised

    def _resolve_inter_broker(self) -> str:
        name = self["inter.broker.listener.name"].upper() or self.listeners[0].name
        if name not in {lst.name for lst in self.listeners}:
            raise ConfigError(f"inter.broker.listener.name {name!r} is not one of listeners")
        return name

    def _resolve_internode(self) -> frozenset[str]:
        """The listeners that serve our inter-node request keys (1000 and above): the
        inter-broker listener and the controller listeners. A node without voters has no
        peers, so none. Where other nodes connect (this node's voter address) must be one
        of them, or the quorum could never form."""
        names = {name.upper() for name in self["controller.listener.names"]}
        unknown = names - {lst.name for lst in self.listeners}
        if unknown:
            raise ConfigError(f"controller.listener.names names {sorted(unknown)} that listeners does not define")
        if not self.voters:
            return frozenset()
        names.add(self.inter_broker_listener_name)
        port = self.voters[self["node.id"]][1]
        on_port = {lst.name for lst in self.listeners if lst.port == port}
        if on_port and not on_port & names:
            raise ConfigError(
                f"controller.quorum.voters gives this node port {port}, which is listener "
                f"{sorted(on_port)[0]}: it serves clients only; name it in inter.broker.listener.name "
                "or controller.listener.names, or give the voters the inter-node listener's port")
        return frozenset(names)

    def _resolve_per_ip_overrides(self) -> dict[str, int]:
        """max.connections.per.ip.overrides: HOST_OR_IP:COUNT,... -> {ip: count}; a host name
        counts for each of its addresses, resolved once at start (as Kafka does)."""
        overrides = {}
        for item in self["max.connections.per.ip.overrides"]:
            host, sep, count = item.strip().rpartition(":")
            if not sep or not host or not count.isdigit():
                raise ConfigError(f"Invalid value {item!r} for max.connections.per.ip.overrides: "
                                  "expected HOST_OR_IP:COUNT")
            try:
                addresses = {info[4][0] for info in socket.getaddrinfo(host.strip("[]"), None)}
            except OSError as e:
                raise ConfigError(f"max.connections.per.ip.overrides: cannot resolve {host!r}: {e}") from None
            for address in addresses:
                overrides[address] = int(count)
        return overrides

    def topic_default(self, key: str) -> Any:
        """The broker-wide default of a topic-level key (its synonym's value)."""
        d = TOPIC_CONFIGS[key]
        return self.values.get(d.synonym, d.default)

    def topic_config(self, overrides: dict[str, str]) -> dict[str, Any]:
        """Every topic-level key's effective value for a topic with these overrides."""
        return {key: d.parse(overrides[key]) if key in overrides else self.topic_default(key)
                for key, d in TOPIC_CONFIGS.items()}


def validate_topic_configs(configs: dict[str, str | None]) -> None:
    """Raise ConfigError naming the first unknown key or bad value (None means 'delete')."""
    for key, value in configs.items():
        if key not in TOPIC_CONFIGS:
            raise ConfigError(f"Unknown topic config name: {key}")
        if value is not None:
            TOPIC_CONFIGS[key].parse(value)

"""Broker configuration: Kafka's keys, defaults, parsing and validation.

Settings come from built-in defaults, then ``--config FILE`` (Java properties, like
Kafka's server.properties), then ``-o KEY=VALUE``, then the ``--listen``/
``--advertised`` shorthands. An unknown key or a bad value is a ``ConfigError``
whose message names the key and the expected form; the CLI exits with status 2.

Topic-level keys (``TOPIC_CONFIGS``) each name the broker key that supplies their
default (``segment.bytes`` <- ``log.segment.bytes``), as Kafka's synonyms do.
"""

import socket
import ssl
from dataclasses import dataclass
from typing import Any

from odradek.broker.sasl import parse_jaas, plain_users
from odradek.broker.tls import PrincipalMapper, server_context
from odradek.storage.config import (
    BOOLEAN,
    DOUBLE,
    INT,
    INT32_MAX,
    INT64_MAX,
    LIST,
    LOG_CONFIG_DEFS,
    LONG,
    PASSWORD,
    SHORT,
    STRING,
    ConfigDef,
    ConfigError,
    at_least,
    defs,
    one_of,
)

__all__ = ["BROKER_CONFIGS", "DYNAMIC_BROKER_CONFIGS", "DYNAMIC_SSL_CONFIGS", "DYNAMIC_ONLY_CONFIGS", "TOPIC_CONFIGS",
           "BrokerConfig", "ConfigDef", "ConfigError", "LIST", "Listener", "SECURITY_PROTOCOLS",
           "parse_properties", "validate_broker_configs", "validate_topic_configs"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")  # the ones we serve

ACCEPTED = "accepted for compatibility; changes nothing in Odradek"
COMPRESSION_TYPES = ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")

# Every topic key: the log's own (storage.config) and those the broker applies.
TOPIC_CONFIGS = dict(sorted({**LOG_CONFIG_DEFS, **defs(
    ConfigDef("compression.type", STRING, "producer",
              "producer: store batches as sent (zero-copy); a codec or uncompressed: the broker "
              "rewrites batches sent in another codec", one_of(*COMPRESSION_TYPES),
              "compression.type"),
    ConfigDef("message.timestamp.before.max.ms", LONG, INT64_MAX, "", at_least(0),
              "log.message.timestamp.before.max.ms"),
    # One hour since Kafka 4.0 (KIP-1079): a timestamp far in the future is refused.
    ConfigDef("message.timestamp.after.max.ms", LONG, 3600000, "", at_least(0),
              "log.message.timestamp.after.max.ms"),
    ConfigDef("min.insync.replicas", INT, 1, "", at_least(1), "min.insync.replicas"),
    ConfigDef("unclean.leader.election.enable", BOOLEAN, False, "", None,
              "unclean.leader.election.enable"),
    # kafka-reassign-partitions sets these with --throttle and always clears them afterwards;
    # accepted, not enforced (Odradek does not throttle replication).
    ConfigDef("leader.replication.throttled.replicas", LIST, [],
              "PARTITION:BROKER,... or *; accepted, replication is not throttled"),
    ConfigDef("follower.replication.throttled.replicas", LIST, [],
              "PARTITION:BROKER,... or *; accepted, replication is not throttled"),
)}.items()))

# TLS and SASL, under Kafka's keys. Each may also be set for one listener as
# listener.name.<lower-case listener name>.<key> (BrokerConfig.listener_value).
SECURITY_CONFIGS = (
    ConfigDef("ssl.keystore.type", STRING, "JKS", "only PEM is supported", one_of("JKS", "PKCS12", "PEM")),
    ConfigDef("ssl.keystore.location", STRING, None,
              "PEM file with the PKCS#8 private key and the certificate chain"),
    ConfigDef("ssl.keystore.password", PASSWORD, None, "refused with PEM, as Kafka does"),
    ConfigDef("ssl.key.password", PASSWORD, None, "password of an encrypted private key"),
    ConfigDef("ssl.keystore.key", PASSWORD, None, "inline PEM private key (KIP-651)"),
    ConfigDef("ssl.keystore.certificate.chain", PASSWORD, None, "inline PEM certificate chain (KIP-651)"),
    ConfigDef("ssl.truststore.type", STRING, "JKS", "only PEM is supported", one_of("JKS", "PKCS12", "PEM")),
    ConfigDef("ssl.truststore.location", STRING, None, "PEM file of the CA certificates that verify clients"),
    ConfigDef("ssl.truststore.password", PASSWORD, None, "refused with PEM, as Kafka does"),
    ConfigDef("ssl.truststore.certificates", PASSWORD, None, "inline PEM CA certificates (KIP-651)"),
    ConfigDef("ssl.client.auth", STRING, "none", "", one_of("none", "requested", "required")),
    ConfigDef("ssl.enabled.protocols", LIST, ["TLSv1.2", "TLSv1.3"], "", one_of("TLSv1.2", "TLSv1.3")),
    ConfigDef("ssl.protocol", STRING, "TLSv1.3", ""),
    ConfigDef("ssl.cipher.suites", LIST, [], "OpenSSL cipher names for TLSv1.2; empty: the defaults"),
    ConfigDef("ssl.endpoint.identification.algorithm", STRING, "https",
              "https: a node checks its peers' certificates name the host it dialled; empty: not"),
    ConfigDef("ssl.allow.dn.changes", BOOLEAN, False,
              "whether a key store changed at run time may carry another subject"),
    ConfigDef("ssl.allow.san.changes", BOOLEAN, False,
              "whether a key store changed at run time may carry other subjectAltNames"),
    ConfigDef("ssl.principal.mapping.rules", STRING, "DEFAULT",
              "RULE:pattern/replacement/[LU],...,DEFAULT applied to the certificate's subject"),
    ConfigDef("sasl.enabled.mechanisms", LIST, ["GSSAPI"],
              f"mechanisms served on SASL listeners: {', '.join(SASL_MECHANISMS)}"),
    ConfigDef("sasl.mechanism.inter.broker.protocol", STRING, "GSSAPI", ""),
    ConfigDef("sasl.mechanism.controller.protocol", STRING, "GSSAPI", ""),
    ConfigDef("sasl.server.max.receive.size", INT, 524288,
              "largest frame before authentication completes", at_least(1)),
    ConfigDef("connections.max.reauth.ms", LONG, 0,
              "0: sessions never expire; else clients re-authenticate within it (KIP-368)", at_least(0)),
)

NODE_PRINCIPALS = ConfigDef(
    "node.principals", LIST, [],
    "ID=PRINCIPAL,...: the principal each node authenticates as on the inter-node listeners; a "
    "node's Raft messages and controller requests must then claim its own id (Odradek's own)")

BROKER_CONFIGS = defs(
    ConfigDef("node.id", INT, 1, "this node's id", at_least(0)),
    ConfigDef("broker.rack", STRING, None,
              "this broker's rack: consumer-protocol members giving the same rack are assigned its partitions first"),
    ConfigDef("listeners", LIST, ["PLAINTEXT://127.0.0.1:9092"], "NAME://HOST:PORT,..."),
    ConfigDef("advertised.listeners", LIST, [], "NAME://HOST:PORT,...; defaults to listeners"),
    ConfigDef("inter.broker.listener.name", STRING, "", "the listener other nodes use"),
    ConfigDef("controller.listener.names", LIST, [],
              "listeners that also serve the controller quorum's inter-node requests"),
    ConfigDef("listener.security.protocol.map", LIST, [],
              "NAME:PROTOCOL,... with PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; a listener named "
              "after a protocol uses it, and without a map any other name is PLAINTEXT"),
    ConfigDef("controller.quorum.voters", LIST, [], "ID@HOST:PORT,..."),
    ConfigDef("process.roles", LIST, ["broker", "controller"],
              "broker,controller: a voter of the controller quorum that also serves clients; "
              "broker: not a voter (it follows the voters' metadata log), only in a cluster"),
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
    *SECURITY_CONFIGS,
    NODE_PRINCIPALS,
    ConfigDef("authorizer.class.name", STRING, "",
              "org.apache.kafka.metadata.authorizer.StandardAuthorizer turns ACLs on; empty: off"),
    ConfigDef("super.users", STRING, "", "principals allowed everything: User:a;User:b"),
    ConfigDef("allow.everyone.if.no.acl.found", BOOLEAN, False,
              "allow a resource that no ACL names to everyone"),
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
    ConfigDef("offsets.topic.segment.bytes", INT, 104857600, "segment.bytes of __consumer_offsets",
              at_least(1)),
    ConfigDef("offsets.retention.minutes", INT, 10080, "", at_least(1)),
    ConfigDef("transaction.state.log.num.partitions", INT, 50, "", at_least(1)),
    ConfigDef("transaction.state.log.replication.factor", SHORT, 3,
              "capped at the number of live brokers", at_least(1)),
    ConfigDef("transaction.state.log.min.isr", INT, 2, "capped at the replication factor", at_least(1)),
    ConfigDef("transaction.state.log.segment.bytes", INT, 104857600, "", at_least(1)),
    ConfigDef("share.coordinator.state.topic.num.partitions", INT, 50, "", at_least(1)),
    ConfigDef("share.coordinator.state.topic.replication.factor", SHORT, 3,
              "capped at the live brokers when __share_group_state is created", at_least(1)),
    ConfigDef("share.coordinator.state.topic.min.isr", INT, 2, "capped at the replication factor", at_least(1)),
    ConfigDef("share.coordinator.state.topic.segment.bytes", INT, 104857600, "", at_least(1)),
    ConfigDef("transaction.max.timeout.ms", INT, 900000,
              "longer transaction.timeout.ms get INVALID_TRANSACTION_TIMEOUT", at_least(1)),
    ConfigDef("transaction.abort.timed.out.transaction.cleanup.interval.ms", INT, 10000,
              "how often timed-out transactions are aborted", at_least(1)),
    ConfigDef("transactional.id.expiration.ms", INT, 604800000,
              "a transactional id without a transaction for this long is forgotten", at_least(1)),
    ConfigDef("transaction.remove.expired.transaction.cleanup.interval.ms", INT, 3600000,
              "how often expired transactional ids are removed", at_least(1)),
    ConfigDef("offsets.retention.check.interval.ms", LONG, 600000, "", at_least(1)),
    ConfigDef("offset.metadata.max.bytes", INT, 4096, "longest commit metadata", at_least(0)),
    ConfigDef("group.initial.rebalance.delay.ms", INT, 3000, "", at_least(0)),
    ConfigDef("group.min.session.timeout.ms", INT, 6000, "", at_least(0)),
    ConfigDef("group.max.session.timeout.ms", INT, 1800000, "", at_least(0)),
    ConfigDef("group.max.size", INT, INT32_MAX, "", at_least(1)),
    # The consumer group protocol (KIP-848); the coordinator checks the timeouts against
    # their min/max as Kafka's GroupCoordinatorConfig does.
    ConfigDef("group.consumer.session.timeout.ms", INT, 45000, "", at_least(1)),
    ConfigDef("group.consumer.min.session.timeout.ms", INT, 45000, "", at_least(1)),
    ConfigDef("group.consumer.max.session.timeout.ms", INT, 60000, "", at_least(1)),
    ConfigDef("group.consumer.heartbeat.interval.ms", INT, 5000, "", at_least(1)),
    ConfigDef("group.consumer.min.heartbeat.interval.ms", INT, 5000, "", at_least(1)),
    ConfigDef("group.consumer.max.heartbeat.interval.ms", INT, 15000, "", at_least(1)),
    ConfigDef("group.consumer.max.size", INT, INT32_MAX, "", at_least(1)),
    ConfigDef("group.consumer.assignors", LIST, ["uniform", "range"],
              "uniform, range (or Kafka's class names); the first is the default"),
    ConfigDef("group.consumer.migration.policy", STRING, "bidirectional",
              "whether a classic group with members becomes a consumer group when a consumer-protocol "
              "member joins it (upgrade), and back when the last one leaves (downgrade)",
              one_of("bidirectional", "upgrade", "downgrade", "disabled")),
    # Share groups (KIP-932): membership, then the share partitions' locks and limits.
    ConfigDef("group.share.session.timeout.ms", INT, 45000, "", at_least(1)),
    ConfigDef("group.share.heartbeat.interval.ms", INT, 5000, "", at_least(1)),
    ConfigDef("group.share.max.size", INT, 200, "", at_least(1)),
    ConfigDef("group.share.record.lock.duration.ms", INT, 30000, "", at_least(1)),
    ConfigDef("group.share.min.record.lock.duration.ms", INT, 15000, "", at_least(1)),
    ConfigDef("group.share.max.record.lock.duration.ms", INT, 60000, "", at_least(1)),
    ConfigDef("group.share.delivery.count.limit", INT, 5, "", at_least(2)),
    ConfigDef("group.share.partition.max.record.locks", INT, 2000, "", at_least(100)),
    ConfigDef("group.share.max.share.sessions", INT, 2000, "", at_least(1)),
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
    # Kafka's thread pools: accepted (statically and dynamically, with Kafka's defaults and
    # rules) so that operators' files and kafka-configs work; Odradek runs one event loop.
    *(ConfigDef(name, INT, default, ACCEPTED, at_least(1)) for name, default in (
        ("num.io.threads", 8), ("num.network.threads", 3), ("num.recovery.threads.per.data.dir", 2),
        ("num.replica.fetchers", 1), ("background.threads", 10))),
    # The log cleaner (storage.cleaner). log.cleaner.enable is deprecated since Kafka 4.1
    # and the cleaner always runs there; accepted here for old server.properties files.
    ConfigDef("log.cleaner.enable", BOOLEAN, True, "accepted; the cleaner always runs (Kafka 4.1)"),
    ConfigDef("log.cleaner.threads", INT, 1, "threads cleaning logs at once", at_least(0)),
    ConfigDef("log.cleaner.io.max.bytes.per.second", DOUBLE, 1.7976931348623157e308,
              "read plus write bytes per second of all cleaner threads together", at_least(0)),
    ConfigDef("log.cleaner.dedupe.buffer.size", LONG, 134217728,
              "memory for the offset maps of all cleaner threads", at_least(0)),
    ConfigDef("log.cleaner.io.buffer.size", INT, 524288, "accepted (Kafka's read buffer size)",
              at_least(0)),
    ConfigDef("log.cleaner.io.buffer.load.factor", DOUBLE, 0.9, "share of the offset map filled",
              lambda v: None if 0 < v <= 1 else "must be in (0, 1]"),
    ConfigDef("log.cleaner.backoff.ms", LONG, 15000, "sleep when no log needs cleaning",
              at_least(0)),
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
# Keys the authorizer reads, not Kafka's broker config (KafkaConfig): its DescribeConfigs
# never lists them.
AUTHORIZER_KEYS = frozenset({"super.users", "allow.everyone.if.no.acl.found"})
# log.retention.ms has no default of its own: hours and minutes fill it in, as in Kafka.
BROKER_CONFIGS["log.retention.ms"] = ConfigDef("log.retention.ms", LONG, None, "", at_least(-1))

# The broker keys an operator may change at run time (kafka-configs --alter --entity-type
# brokers, per broker or as the cluster-wide default), as in Kafka's DynamicBrokerConfig:
# the topic defaults (every topic's effective config follows at once), connection quotas,
# producer expiry, and the thread and cleaner keys Odradek only accepts. Kafka's other
# dynamic keys (listeners, SSL and SASL settings, metric reporters, per-address connection
# overrides) are refused here, as any read-only key: "Cannot update these configs dynamically".
DYNAMIC_BROKER_CONFIGS = frozenset({
    *(d.synonym for d in TOPIC_CONFIGS.values() if d.synonym),
    "max.connections", "max.connections.per.ip", "producer.id.expiration.ms",
    "num.io.threads", "num.network.threads", "num.recovery.threads.per.data.dir",
    "num.replica.fetchers", "background.threads",
    *(k for k in BROKER_CONFIGS if k.startswith("log.cleaner.")),
})
# The key and trust store keys Kafka reconfigures at run time (its SslConfigs.RECONFIGURABLE_CONFIGS),
# only per broker and per listener: listener.name.<listener>.<key>. New TLS connections of
# that listener then use them; open ones keep theirs (Broker.reload_tls).
DYNAMIC_SSL_CONFIGS = frozenset({
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.keystore.key", "ssl.keystore.certificate.chain", "ssl.truststore.type",
    "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.certificates",
})


def listener_key(key: str) -> tuple[str, str] | None:
    """(LISTENER NAME, key) of a listener.name.<listener>.<key> name, else None."""
    if not key.startswith("listener.name."):
        return None
    name, _, sub = key[len("listener.name."):].partition(".")
    return (name.upper(), sub) if name and sub else None


# Dynamic keys outside Kafka's static broker config (DynamicConfig.Broker): DescribeConfigs
# lists them only once set. Throttles are accepted, not enforced (kafka-reassign-partitions
# always sets and clears them).
DYNAMIC_ONLY_CONFIGS = defs(*(ConfigDef(name, LONG, INT64_MAX, "accepted; Odradek does not throttle",
                                        at_least(0)) for name in (
    "leader.replication.throttled.rate", "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second")))
# A broker key's synonyms, most specific first: Kafka describes each with the first set.
BROKER_SYNONYMS = {"log.retention.ms": ("log.retention.ms", "log.retention.minutes", "log.retention.hours")}


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

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


def _logical_lines(text: str):
    """(line number, line) with Java's continuations joined: a line ending in an odd number
    of backslashes goes on with the next, whose leading blanks are dropped."""
    pending, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip() if pending else raw.strip()
        if not pending:
            start = lineno
            if not line or line[0] in "#!":
                continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            pending += line[:-1]
            continue
        yield start, pending + line.rstrip()
        pending = ""
    if pending:
        yield start, pending


def parse_properties(text: str, source: str) -> dict[str, str]:
    """Java properties, the subset server.properties files use: key=value or key: value
    lines, a trailing backslash continuing a value on the next line."""
    props = {}
    for lineno, line in _logical_lines(text):
        if not line:
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
        # SCRAM users to create on a new data dir (serve --add-scram, as KIP-900):
        # (mechanism, name, password, iterations)
        self.scram_seeds: list[tuple[str, str, str, int]] = []
        # (LISTENER NAME, key) -> value of listener.name.<name>.<key> (see listener_value)
        self.listener_values: dict[tuple[str, str], Any] = {}
        # Dynamic broker configs from the metadata log (``set_dynamic``), raw strings by key:
        # this node's own, then the cluster-wide default; both lie over the static values.
        self.dynamic_node: dict[str, str] = {}
        self.dynamic_default: dict[str, str] = {}
        self._dynamic: dict[str, Any] = {}  # typed effective dynamic values
        # (LISTENER NAME, key) -> this node's dynamic listener.name.<name>.<key> (DYNAMIC_SSL_CONFIGS)
        self.dynamic_listener_values: dict[tuple[str, str], Any] = {}
        for key, raw in (overrides or {}).items():
            if key.startswith("listener.name."):
                self._set_listener_value(key, raw)
                continue
            if key not in BROKER_CONFIGS:
                raise ConfigError(f"Unknown configuration {key!r}; see the README's configuration reference")
            self.values[key] = BROKER_CONFIGS[key].parse(raw)
            self.explicit.add(key)
        for key, d in BROKER_CONFIGS.items():
            self.values.setdefault(key, d.default)
        self._resolve_retention()
        self.listeners = self._resolve_security(parse_listeners(self["listeners"], "listeners"))
        self.advertised_listeners = self._resolve_advertised()
        self.inter_broker_listener_name = self._resolve_inter_broker()
        self.voters = parse_voters(self["controller.quorum.voters"])
        self.is_voter = self._resolve_process_roles()
        self.internode_listeners = self._resolve_internode()
        self._check_consumer_group_timeouts()
        self.max_connections_per_ip_overrides = self._resolve_per_ip_overrides()
        self._check_security()

    def __getitem__(self, key: str) -> Any:
        if key in self._dynamic:
            return self._dynamic[key]
        return self.values[key]

    def _check_consumer_group_timeouts(self) -> None:
        """Kafka's GroupCoordinatorConfig rules: each timeout within its min and max, and the
        heartbeat interval below the session timeout."""
        for kind in ("session.timeout.ms", "heartbeat.interval.ms"):
            value = self[f"group.consumer.{kind}"]
            low, high = self[f"group.consumer.min.{kind}"], self[f"group.consumer.max.{kind}"]
            if not low <= value <= high:
                raise ConfigError(f"group.consumer.{kind} {value} must be between "
                                  f"group.consumer.min.{kind} {low} and group.consumer.max.{kind} {high}")
        if self["group.consumer.heartbeat.interval.ms"] >= self["group.consumer.session.timeout.ms"]:
            raise ConfigError("group.consumer.heartbeat.interval.ms must be less than "
                              "group.consumer.session.timeout.ms")

    def listener(self, name: str) -> Listener:
        return next(lst for lst in self.listeners if lst.name == name)

    def with_listener_changes(self, changes: dict[str, str | None], replace: bool) -> "ListenerOverlay":
        """This config as it would read its listeners' keys with ``changes`` (listener.name.*
        names; None deletes) made to its dynamic ones (``replace``: instead of them)."""
        dynamic = {} if replace else dict(self.dynamic_listener_values)
        for key, raw in changes.items():
            split = listener_key(key)
            if split is None or split[1] not in DYNAMIC_SSL_CONFIGS:
                continue
            if raw is None:
                dynamic.pop(split, None)
            else:
                dynamic[split] = BROKER_CONFIGS[split[1]].parse(raw)
        return ListenerOverlay(self, dynamic)

    def listener_value(self, listener: str, key: str) -> Any:
        """``key`` for one listener: ``listener.name.<name>.<key>`` if set, else the
        node-wide ``key`` (as Kafka's listener-prefixed configs); a dynamic one (set for this
        node at run time) lies over the static one."""
        return ListenerOverlay(self, self.dynamic_listener_values).listener_value(listener, key)

    def _set_listener_value(self, key: str, raw: Any) -> None:
        """listener.name.<name>.<key>: an SSL/SASL key, or <mechanism>.sasl.jaas.config."""
        rest = key[len("listener.name."):]
        name, _, sub = rest.partition(".")
        mechanism, _, jaas = sub.partition(".")
        if jaas == "sasl.jaas.config" and mechanism.upper() in SASL_MECHANISMS:
            self.listener_values[(name.upper(), f"{mechanism.lower()}.sasl.jaas.config")] = str(raw)
        elif sub in {d.name for d in SECURITY_CONFIGS}:
            self.listener_values[(name.upper(), sub)] = BROKER_CONFIGS[sub].parse(raw)
        else:
            raise ConfigError(f"Unknown configuration {key!r}: listener.name.<listener>. takes the "
                              "ssl.* and sasl.* keys and <mechanism>.sasl.jaas.config "
                              f"(mechanisms {', '.join(m.lower() for m in SASL_MECHANISMS)})")
        self.explicit.add(key)

    def _resolve_security(self, listeners: list[Listener]) -> list[Listener]:
        """Each listener's security protocol: from listener.security.protocol.map, else its
        name when it is a protocol's; without a map, other names are PLAINTEXT (the map
        is then required only for the protocols' own names)."""
        mapping = {}
        for entry in self["listener.security.protocol.map"]:
            name, sep, proto = entry.partition(":")
            if not sep or proto.strip().upper() not in SECURITY_PROTOCOLS:
                raise ConfigError(f"Invalid value {entry!r} for listener.security.protocol.map: expected "
                                  f"NAME:PROTOCOL with PROTOCOL one of {', '.join(SECURITY_PROTOCOLS)}")
            mapping[name.strip().upper()] = proto.strip().upper()
        resolved = []
        for lst in listeners:
            proto = mapping.get(lst.name) or (lst.name if lst.name in SECURITY_PROTOCOLS else None)
            if proto is None:
                if mapping:
                    raise ConfigError(f"listener {lst.name} has no security protocol in "
                                      "listener.security.protocol.map")
                proto = "PLAINTEXT"
            resolved.append(Listener(lst.name, lst.host, lst.port, proto))
        return resolved

    def _check_security(self) -> None:
        """What a TLS or SASL listener needs, checked at start so that a bad setting is a
        message naming it, not a failed handshake later."""
        self.ssl_contexts: dict[str, ssl.SSLContext] = {}  # TLS listener -> its server context
        self.principal_mappers: dict[str, PrincipalMapper] = {}
        self.plain_users: dict[str, dict[str, str]] = {}  # SASL listener -> PLAIN user -> password
        names = {lst.name for lst in self.listeners}
        unknown = {name for name, _ in self.listener_values} - names
        if unknown:
            raise ConfigError(f"listener.name.{sorted(unknown)[0].lower()}.* configures a listener "
                              "that listeners does not define")
        for lst in self.listeners:
            if lst.sasl:
                mechanisms = self.listener_value(lst.name, "sasl.enabled.mechanisms")
                bad = [m for m in mechanisms if m not in SASL_MECHANISMS]
                if bad or not mechanisms:
                    raise ConfigError(
                        f"sasl.enabled.mechanisms for listener {lst.name}: {', '.join(bad) or 'none'} "
                        f"not supported; set it to some of {', '.join(SASL_MECHANISMS)}")
                if "PLAIN" in mechanisms:
                    key = f"listener.name.{lst.name.lower()}.plain.sasl.jaas.config"
                    jaas = self.listener_values.get((lst.name, "plain.sasl.jaas.config"))
                    if jaas is None:
                        raise ConfigError(f"listener {lst.name} enables PLAIN and needs its users in {key} "
                                          '(PlainLoginModule required user_<name>="<password>" ...;)')
                    try:
                        self.plain_users[lst.name] = plain_users(jaas, key)
                    except ValueError as e:
                        raise ConfigError(str(e)) from None
                oauth = self.listener_values.get((lst.name, "oauthbearer.sasl.jaas.config"))
                if "OAUTHBEARER" in mechanisms and oauth is not None:
                    key = f"listener.name.{lst.name.lower()}.oauthbearer.sasl.jaas.config"
                    try:
                        int(parse_jaas(oauth, key)[1].get("unsecuredValidatorAllowableClockSkewMs", "0"))
                    except ValueError as e:
                        raise ConfigError(f"{key}: {e}") from None
            if lst.tls:
                self.ssl_contexts[lst.name] = server_context(self, lst.name)
                self.principal_mappers[lst.name] = PrincipalMapper(
                    self.listener_value(lst.name, "ssl.principal.mapping.rules"))
        self.peer_principals, self.node_credentials = self._resolve_internode_security()
        self.node_ids_by_principal = self._resolve_node_principals()
        if self.node_ids_by_principal is not None:  # only the nodes named are nodes
            self.peer_principals = frozenset(self.node_ids_by_principal)

    def _resolve_internode_security(self) -> tuple[frozenset[str] | None, tuple[str, str] | None]:
        """Who may send our inter-node requests, and how this node authenticates to its
        peers. PLAINTEXT: anyone who reaches the listener (None). SSL: a client certificate
        the trust store verifies (ssl.client.auth=required; an empty set: any verified
        principal). SASL: the node's own user, the username/password pair of the
        listener's PLAIN JAAS line (as Kafka's inter-broker credentials), which must also
        be one of its user_<name> entries."""
        listeners = [lst for lst in self.listeners if lst.name in self.internode_listeners]
        protocols = {lst.security_protocol for lst in listeners}
        if len(protocols) > 1:
            raise ConfigError(f"the inter-node listeners {sorted(lst.name for lst in listeners)} use "
                              f"different security protocols {sorted(protocols)}; give them one")
        protocol = protocols.pop() if protocols else "PLAINTEXT"
        if protocol == "PLAINTEXT":
            return None, None
        for lst in listeners:
            if lst.tls and not lst.sasl and self.listener_value(lst.name, "ssl.client.auth") != "required":
                raise ConfigError(f"listener {lst.name} serves other nodes over SSL: set "
                                  f"listener.name.{lst.name.lower()}.ssl.client.auth=required, so "
                                  "that nodes prove who they are with their certificates")
        if protocol == "SSL":
            return frozenset(), None
        mechanism = self["sasl.mechanism.inter.broker.protocol"]
        controller = self["sasl.mechanism.controller.protocol"]
        if "sasl.mechanism.controller.protocol" in self.explicit and controller != mechanism and any(
                lst.sasl and lst.name in self["controller.listener.names"] for lst in listeners):
            raise ConfigError(f"sasl.mechanism.controller.protocol={controller}: nodes use one mechanism "
                              f"on every inter-node listener, sasl.mechanism.inter.broker.protocol ({mechanism})")
        if mechanism != "PLAIN":
            raise ConfigError(f"sasl.mechanism.inter.broker.protocol={mechanism}: nodes authenticate "
                              "to each other with PLAIN (SCRAM credentials live in the metadata log, "
                              "which needs the quorum first)")
        credentials = set()
        for lst in listeners:
            key = f"listener.name.{lst.name.lower()}.plain.sasl.jaas.config"
            if "PLAIN" not in self.listener_value(lst.name, "sasl.enabled.mechanisms"):
                raise ConfigError(f"listener {lst.name} serves other nodes, which use PLAIN: "
                                  "enable it in its sasl.enabled.mechanisms")
            _, options = parse_jaas(self.listener_values[(lst.name, "plain.sasl.jaas.config")], key)
            user, password = options.get("username"), options.get("password")
            if not user or password is None or self.plain_users[lst.name].get(user) != password:
                raise ConfigError(f"{key} needs the node's own username=\"...\" password=\"...\", "
                                  'and the same pair among its user_<name>="<password>" entries')
            credentials.add((user, password))
        if len(credentials) > 1:
            raise ConfigError("the inter-node listeners name different node credentials")
        user, password = credentials.pop()
        return frozenset({f"User:{user}"}), (user, password)

    def _resolve_node_principals(self) -> dict[str, int] | None:
        """node.principals as principal -> node id: who each node is on the inter-node
        listeners, so that a request's claimed sender can be held to the authenticated one.
        None when not set: the nodes share an identity (or the listener is PLAINTEXT) and a
        claimed sender cannot be checked."""
        entries = self["node.principals"]
        if not entries:
            return None
        if self.peer_principals is None:
            raise ConfigError("node.principals needs a secured inter-node listener (SSL with "
                              "ssl.client.auth=required, SASL_PLAINTEXT or SASL_SSL): on PLAINTEXT "
                              "nobody is authenticated")
        by_principal: dict[str, int] = {}
        for entry in entries:
            node, sep, principal = entry.partition("=")
            if not sep or not node.strip().isdigit() or ":" not in principal:
                raise ConfigError(f"Invalid value {entry!r} for node.principals: expected ID=PRINCIPAL "
                                  "such as 1=User:node1")
            principal = principal.strip()
            if principal in by_principal:
                raise ConfigError(f"node.principals names {principal} for two nodes")
            by_principal[principal] = int(node)
        own = next((p for p, n in by_principal.items() if n == self["node.id"]), None)
        if own is None:
            raise ConfigError(f"node.principals does not name this node's principal (node.id {self['node.id']})")
        if self.node_credentials is not None:
            if own != f"User:{self.node_credentials[0]}":
                raise ConfigError(f"node.principals names {own} for node {self['node.id']}, but its inter-node "
                                  f"JAAS line authenticates as User:{self.node_credentials[0]}")
            for lst in self.listeners:
                if lst.name in self.internode_listeners and lst.sasl:
                    missing = [p for p in by_principal if p.partition(":")[2] not in self.plain_users[lst.name]]
                    if missing:
                        raise ConfigError(f"node.principals names {missing[0]}, which listener {lst.name}'s "
                                          "plain.sasl.jaas.config has no user_<name> entry for")
        return by_principal

    def set_dynamic(self, default: dict[str, str], node: dict[str, str]) -> list[str]:
        """Take the dynamic configs the metadata log holds for this node and for the cluster;
        return the keys whose effective value changed. A stored value that does not parse
        (written by a newer version, say) is skipped with the static value kept."""
        before = dict(self._dynamic)
        before_listeners = dict(self.dynamic_listener_values)
        self.dynamic_default, self.dynamic_node = dict(default), dict(node)
        self.dynamic_listener_values = {}
        for key, raw in node.items():  # listener SSL keys: per broker only (validate_broker_configs)
            split = listener_key(key)
            if split is not None and split[1] in DYNAMIC_SSL_CONFIGS:
                try:
                    self.dynamic_listener_values[split] = BROKER_CONFIGS[split[1]].parse(raw)
                except ConfigError:
                    continue
        typed: dict[str, Any] = {}
        for layer in (default, node):
            for key, raw in layer.items():
                if key not in DYNAMIC_BROKER_CONFIGS and key not in DYNAMIC_ONLY_CONFIGS:
                    continue  # a key Kafka does not know: kept in the log, described, unused
                d = BROKER_CONFIGS.get(key) or DYNAMIC_ONLY_CONFIGS[key]
                try:
                    typed[key] = d.parse(raw)
                except ConfigError:
                    continue
        self._dynamic = typed
        changed = {k for k in before.keys() | typed.keys()  # (throttles have no static value)
                   if before.get(k, self.values.get(k)) != typed.get(k, self.values.get(k))}
        changed |= {f"listener.name.{name.lower()}.{sub}"
                    for name, sub in before_listeners.keys() | self.dynamic_listener_values.keys()
                    if before_listeners.get((name, sub)) != self.dynamic_listener_values.get((name, sub))}
        return sorted(changed)

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

    def _resolve_process_roles(self) -> bool:
        """process.roles: is this node a voter of the controller quorum? A broker-only node
        (Kafka's process.roles=broker) follows the voters' log as a Raft observer. Odradek
        has no controller-only nodes: every voter also serves clients."""
        roles = {role.strip().lower() for role in self["process.roles"]}
        if not roles or roles - {"broker", "controller"}:
            raise ConfigError(f"Invalid value {','.join(self['process.roles'])!r} for process.roles: "
                              "expected broker,controller or broker")
        if "broker" not in roles:
            raise ConfigError("process.roles=controller (a controller-only node) is not supported: "
                              "every Odradek controller also serves clients; use broker,controller")
        node_id = self["node.id"]
        if "controller" not in roles:
            if not self.voters:
                raise ConfigError("process.roles=broker needs controller.quorum.voters (--voters): "
                                  "the controllers whose metadata log this node follows")
            if node_id in self.voters:
                raise ConfigError(f"node.id {node_id} is one of controller.quorum.voters, but "
                                  "process.roles=broker: a broker-only node is not a voter")
            return False
        if self.voters and node_id not in self.voters:
            raise ConfigError(f"node.id {node_id} is not one of the voters "
                              f"{sorted(self.voters)} (controller.quorum.voters / --voters); "
                              "a node that is not a voter has process.roles=broker")
        return True

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
        if not self.is_voter:
            return frozenset(names)
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
        if d.synonym in self._dynamic:
            return self._dynamic[d.synonym]
        return self.values.get(d.synonym, d.default)

    def topic_config(self, overrides: dict[str, str]) -> dict[str, Any]:
        """Every topic-level key's effective value for a topic with these overrides."""
        return {key: d.parse(overrides[key]) if key in overrides else self.topic_default(key)
                for key, d in TOPIC_CONFIGS.items()}


@dataclass(frozen=True, slots=True)
class ListenerOverlay:
    """A BrokerConfig's listener keys with other dynamic values (BrokerConfig.with_listener_changes)."""
    config: BrokerConfig
    dynamic: dict[tuple[str, str], Any]

    def listener_value(self, listener: str, key: str) -> Any:
        if (listener.upper(), key) in self.dynamic:
            return self.dynamic[(listener.upper(), key)]
        value = self.config.listener_values.get((listener.upper(), key))
        return self.config.values.get(key) if value is None else value


def validate_topic_configs(configs: dict[str, str | None]) -> None:
    """Raise ConfigError naming the first unknown key or bad value (None means 'delete')."""
    for key, value in configs.items():
        if key not in TOPIC_CONFIGS:
            raise ConfigError(f"Unknown topic config name: {key}")
        if value is not None:
            TOPIC_CONFIGS[key].parse(value)


def validate_broker_configs(configs: dict[str, str | None], per_broker: bool = True) -> None:
    """Raise ConfigError for the first key that cannot change at run time (Kafka's words) or
    bad value (None means 'delete'). Keys Kafka does not know are accepted, as Kafka does.
    The key and trust store keys change only per listener (listener.name.<name>.<key>) and
    per broker (``per_broker``: not the cluster-wide default); whether the new store loads
    is checked by the broker itself (Broker.validate_listener_ssl)."""
    def refuse(keys, message):
        if keys:
            raise ConfigError(f"{message}: [{', '.join(sorted(keys))}]")

    refuse([k for k in configs if k in BROKER_CONFIGS and k not in DYNAMIC_BROKER_CONFIGS
            and k not in DYNAMIC_SSL_CONFIGS], "Cannot update these configs dynamically")
    refuse([k for k in configs if k in DYNAMIC_SSL_CONFIGS],
           "These security configs can be dynamically updated only per-listener using the listener prefix")
    listener_ssl = [k for k in configs if (listener_key(k) or ("", ""))[1] in DYNAMIC_SSL_CONFIGS]
    if not per_broker:
        refuse(listener_ssl, "Cannot update these configs at default cluster level, broker id must be specified")
    for key, value in configs.items():
        split = listener_key(key)
        d = BROKER_CONFIGS.get(split[1] if split else key) or DYNAMIC_ONLY_CONFIGS.get(key)
        if d is not None and value is not None:
            d.parse(value)


# Group-level configs (KIP-848; DescribeConfigs / IncrementalAlterConfigs on resource type
# GROUP), Kafka 4.4's GroupConfig: each key with its type, its default when the broker has
# no key behind it, and the broker key that gives its default (its synonym; itself when
# there is none). Odradek acts on consumer.session.timeout.ms and
# consumer.heartbeat.interval.ms; the share.* and streams.* keys are stored and described
# for the groups of those protocols.
GROUP_CONFIGS: dict[str, ConfigDef] = {d.name: d for d in (
    ConfigDef("consumer.assignment.interval.ms", INT, 1000, synonym="group.consumer.assignment.interval.ms"),
    ConfigDef("consumer.heartbeat.interval.ms", INT, 5000, synonym="group.consumer.heartbeat.interval.ms"),
    ConfigDef("consumer.session.timeout.ms", INT, 45000, synonym="group.consumer.session.timeout.ms"),
    ConfigDef("errors.deadletterqueue.copy.record.enable", BOOLEAN, False),
    ConfigDef("errors.deadletterqueue.topic.name", STRING, ""),
    ConfigDef("share.assignment.interval.ms", INT, 1000, synonym="group.share.assignment.interval.ms"),
    ConfigDef("share.auto.offset.reset", STRING, "latest"),
    ConfigDef("share.delivery.count.limit", INT, 5, synonym="group.share.delivery.count.limit"),
    ConfigDef("share.heartbeat.interval.ms", INT, 5000, synonym="group.share.heartbeat.interval.ms"),
    ConfigDef("share.isolation.level", STRING, "read_uncommitted"),
    ConfigDef("share.partition.max.record.locks", INT, 2000, synonym="group.share.partition.max.record.locks"),
    ConfigDef("share.record.lock.duration.ms", INT, 30000, synonym="group.share.record.lock.duration.ms"),
    ConfigDef("share.renew.acknowledge.enable", BOOLEAN, True),
    ConfigDef("share.session.timeout.ms", INT, 45000, synonym="group.share.session.timeout.ms"),
    ConfigDef("streams.assignment.interval.ms", INT, 1000, synonym="group.streams.assignment.interval.ms"),
    ConfigDef("streams.assignor.name", STRING, "sticky", synonym="group.streams.assignors"),
    ConfigDef("streams.heartbeat.interval.ms", INT, 5000, synonym="group.streams.heartbeat.interval.ms"),
    ConfigDef("streams.initial.rebalance.delay.ms", INT, 3000, synonym="group.streams.initial.rebalance.delay.ms"),
    ConfigDef("streams.num.standby.replicas", INT, 0, synonym="group.streams.num.standby.replicas"),
    ConfigDef("streams.rack.aware.assignment.tags", LIST, [], synonym="group.streams.rack.aware.assignment.tags"),
    ConfigDef("streams.session.timeout.ms", INT, 45000, synonym="group.streams.session.timeout.ms"),
)}
_KAFKA_TYPE_NAMES = {INT: "INT", BOOLEAN: "BOOLEAN", STRING: "STRING", LIST: "LIST"}


def group_config_default(config: "BrokerConfig", key: str) -> tuple[str, Any, bool]:
    """(the key's synonym, its value, whether the broker's config names it explicitly)."""
    d = GROUP_CONFIGS[key]
    synonym = d.synonym or key
    if synonym in BROKER_CONFIGS:
        return synonym, config[synonym], synonym in config.explicit
    return synonym, d.default, False


def validate_group_configs(configs: dict[str, str | None], config: "BrokerConfig") -> None:
    """Raise ConfigError, in Kafka's words, for an unknown key, a value of the wrong type, or
    a timeout outside the broker's bounds (GroupConfig.validate); None means 'delete'."""
    for key, raw in configs.items():
        d = GROUP_CONFIGS.get(key)
        if d is None:
            raise ConfigError(f"Unknown group config name: {key}")
        if raw is None:
            continue
        try:
            value = d.parse(raw)
        except ConfigError:
            raise ConfigError(f"Invalid value {raw} for configuration {key}: Not a number of type "
                              f"{_KAFKA_TYPE_NAMES.get(d.type, 'STRING')}") from None
        for kind in ("session.timeout.ms", "heartbeat.interval.ms"):
            if key == f"consumer.{kind}":
                low, high = config[f"group.consumer.min.{kind}"], config[f"group.consumer.max.{kind}"]
                if not low <= value <= high:
                    raise ConfigError(f"{key} must be in the range {low} to {high} inclusive.")

"""Dynamic broker configs in BrokerConfig and their description (Kafka's sources and synonyms)."""

from types import SimpleNamespace

import pytest

from odradek.broker.config import BrokerConfig, ConfigError, validate_broker_configs
from odradek.broker.handlers.describe_configs import (
    broker_chain,
    broker_config_entries,
    java_double,
    topic_config_entries,
)

NODE, DEFAULT_LAYER, STATIC, DEFAULT = 2, 3, 4, 5


def test_the_node_lies_over_the_cluster_default_over_the_static_value():
    c = BrokerConfig({"log.retention.hours": "24", "message.max.bytes": "5000"})
    assert c.set_dynamic({"message.max.bytes": "6000", "log.retention.ms": "1000"}, {}) == [
        "log.retention.ms", "message.max.bytes"]
    assert (c["message.max.bytes"], c.topic_default("retention.ms")) == (6000, 1000)
    assert c.set_dynamic({"message.max.bytes": "6000"}, {"message.max.bytes": "7000"}) == [
        "log.retention.ms", "message.max.bytes"]
    assert (c["message.max.bytes"], c["log.retention.ms"]) == (7000, 24 * 3600 * 1000)
    assert c.set_dynamic({}, {}) == ["message.max.bytes"]
    assert c["message.max.bytes"] == 5000


def test_a_stored_value_that_does_not_parse_or_a_read_only_key_changes_nothing():
    c = BrokerConfig({})
    assert c.set_dynamic({"message.max.bytes": "x", "num.partitions": "9", "no.such": "1"}, {}) == []
    assert (c["message.max.bytes"], c["num.partitions"]) == (1048588, 1)


def test_only_dynamic_keys_and_good_values_pass_validation():
    validate_broker_configs({"log.retention.ms": "5", "log.cleaner.threads": "2", "no.such": "x",
                             "leader.replication.throttled.rate": "100", "message.max.bytes": None})
    with pytest.raises(ConfigError, match=r"^Cannot update these configs dynamically: \[listeners, num.partitions\]$"):
        validate_broker_configs({"num.partitions": "3", "listeners": "PLAINTEXT://:1", "log.retention.ms": "5"})
    with pytest.raises(ConfigError, match="message.max.bytes"):
        validate_broker_configs({"message.max.bytes": "abc"})


def test_synonyms_are_listed_source_by_source_from_the_key_itself_on():
    c = BrokerConfig({"log.retention.hours": "24"})
    # Only log.retention.hours is set: Kafka lists nothing under log.retention.ms (dropWhile).
    assert broker_chain(c, "log.retention.ms") == []
    c.set_dynamic({"log.retention.ms": "3600000"}, {"log.retention.ms": "7200000"})
    assert broker_chain(c, "log.retention.ms") == [
        ("log.retention.ms", "7200000", NODE), ("log.retention.ms", "3600000", DEFAULT_LAYER),
        ("log.retention.hours", "24", STATIC), ("log.retention.hours", "168", DEFAULT)]


def test_entries_mark_dynamic_keys_writable_and_topics_follow_their_synonyms():
    c = BrokerConfig({})
    c.set_dynamic({"message.max.bytes": "2000"}, {"custom.key": "secret"})
    broker = SimpleNamespace(config=c)
    entries = {e.name: e for e in broker_config_entries(broker, include_synonyms=True)}
    assert (entries["message.max.bytes"].value, entries["message.max.bytes"].config_source,
            entries["message.max.bytes"].read_only) == ("2000", DEFAULT_LAYER, False)
    assert entries["num.partitions"].read_only and entries["log.retention.ms"].value is None
    custom = entries["custom.key"]
    assert (custom.value, custom.sensitive, custom.synonyms) == (None, True, [("custom.key", None, NODE)])
    topic = {e.name: e for e in topic_config_entries(broker, {}, include_synonyms=True)}
    assert (topic["max.message.bytes"].value, topic["max.message.bytes"].config_source) == ("2000", DEFAULT_LAYER)
    assert (topic["retention.ms"].value, topic["retention.ms"].synonyms) == ("604800000", [])


@pytest.mark.parametrize(("value", "java"), [
    (1.7976931348623157e308, "1.7976931348623157E308"), (0.9, "0.9"), (100.0, "100.0"),
    (1e7, "1.0E7"), (123456789.0, "1.23456789E8"), (1e-4, "1.0E-4"), (-2.5e-5, "-2.5E-5"), (0.0, "0.0")])
def test_doubles_render_as_java_prints_them(value, java):
    assert java_double(value) == java


def test_key_and_trust_store_keys_change_only_per_listener_and_per_broker():
    """Kafka's DynamicBrokerConfig rules for its reconfigurable SSL keys, in its words."""
    key = "listener.name.ssl.ssl.keystore.location"
    validate_broker_configs({key: "/new.pem", "listener.name.ssl.ssl.key.password": "x",
                             "listener.name.ssl.ssl.client.auth": "required"})  # Kafka accepts these
    with pytest.raises(ConfigError, match=r"^These security configs can be dynamically updated only "
                                          r"per-listener using the listener prefix: \[ssl.key.password, "
                                          r"ssl.keystore.location\]$"):
        validate_broker_configs({"ssl.keystore.location": "/a", "ssl.key.password": "b"})
    with pytest.raises(ConfigError, match=r"^Cannot update these configs at default cluster level, broker "
                                          rf"id must be specified: \[{key}\]$"):
        validate_broker_configs({key: "/new.pem"}, per_broker=False)
    with pytest.raises(ConfigError, match="ssl.keystore.type"):
        validate_broker_configs({"listener.name.ssl.ssl.keystore.type": "XML"})


def test_a_dynamic_listener_key_lies_over_the_static_one_for_that_listener_only():
    c = BrokerConfig({"ssl.keystore.location": "/static.pem", "ssl.key.password": "p"})
    assert c.set_dynamic({"listener.name.ssl.ssl.keystore.location": "/ignored.pem"},  # default layer
                         {"listener.name.ssl.ssl.keystore.location": "/node.pem",
                          "listener.name.ssl.ssl.client.auth": "required"}) == [
        "listener.name.ssl.ssl.keystore.location"]
    assert c.listener_value("SSL", "ssl.keystore.location") == "/node.pem"
    assert c.listener_value("SSL", "ssl.client.auth") == "none"  # not reconfigurable: stored, unused
    assert c.listener_value("OTHER", "ssl.keystore.location") == "/static.pem"
    changed = c.with_listener_changes({"listener.name.ssl.ssl.keystore.location": None,
                                       "listener.name.ssl.ssl.key.password": "q"}, replace=False)
    assert changed.listener_value("SSL", "ssl.keystore.location") == "/static.pem"
    assert changed.listener_value("SSL", "ssl.key.password") == "q"
    assert c.listener_value("SSL", "ssl.key.password") == "p"
    assert c.set_dynamic({}, {}) == ["listener.name.ssl.ssl.keystore.location"]
    assert c.listener_value("SSL", "ssl.keystore.location") == "/static.pem"


def test_a_listener_key_is_described_read_only_with_the_base_key_as_its_synonym():
    c = BrokerConfig({"ssl.keystore.location": "/static.pem"})
    c.set_dynamic({}, {"listener.name.ssl.ssl.keystore.location": "/node.pem",
                       "listener.name.ssl.ssl.key.password": "secret"})
    entries = {e.name: e for e in broker_config_entries(SimpleNamespace(config=c), True)}
    location = entries["listener.name.ssl.ssl.keystore.location"]
    assert (location.value, location.config_source, location.read_only) == ("/node.pem", NODE, True)
    assert location.synonyms == [("listener.name.ssl.ssl.keystore.location", "/node.pem", NODE),
                                 ("ssl.keystore.location", "/static.pem", STATIC)]
    password = entries["listener.name.ssl.ssl.key.password"]
    assert (password.value, password.synonyms) == (None, [("listener.name.ssl.ssl.key.password", None, NODE)])
    assert entries["ssl.keystore.location"].read_only is False
    assert entries["ssl.client.auth"].read_only is True

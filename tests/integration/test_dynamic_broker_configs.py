"""Dynamic broker configs (IncrementalAlterConfigs on resource type BROKER) on one node:
committed to the metadata log, applied at once to the live logs, described with Kafka's
sources and synonyms, and still there after a restart."""

import pytest
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError
from kafka.protocol.admin import AlterConfigsRequest, AlterConfigsResponse

from tests.rawclient import RawConnection
from tests.rawclient import alter_broker_configs as alter
from tests.rawclient import described_configs as describe

BROKER, TOPIC = 4, 2
SET, DELETE = 0, 1
DYNAMIC_BROKER, DYNAMIC_DEFAULT, DEFAULT = 2, 3, 5
INVALID_REQUEST = 42


def send(bootstrap: str, topic: str, size: int):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0, retries=0,
                      max_request_size=10 * size)
    try:
        return p.send(topic, b"x" * size).get(10)
    finally:
        p.close()


def test_a_dynamic_broker_config_applies_at_once_is_described_and_survives_a_restart(broker_factory):
    broker = broker_factory()
    b = broker.bootstrap
    send(b, "dyn", 3000)  # creates the topic
    assert alter(b, "1", ("message.max.bytes", SET, "1000")) == (0, None)
    with pytest.raises(MessageSizeTooLargeError):
        send(b, "dyn", 3000)
    assert describe(b, BROKER, "1", ["message.max.bytes"]) == {"message.max.bytes": (
        "1000", DYNAMIC_BROKER, False, False,
        [("message.max.bytes", "1000", DYNAMIC_BROKER), ("message.max.bytes", "1048588", DEFAULT)])}
    topic = describe(b, TOPIC, "dyn", ["max.message.bytes"])["max.message.bytes"]
    assert topic[:2] == ("1000", DYNAMIC_BROKER)

    # The cluster-wide default: listed alone under the resource "", beneath the node's own.
    assert alter(b, "", ("log.retention.ms", SET, "3600000"), ("message.max.bytes", SET, "500000"),
                 ("follower.replication.throttled.rate", SET, "1000")) == (0, None)
    assert describe(b, BROKER, "") == {
        "follower.replication.throttled.rate": ("1000", DYNAMIC_DEFAULT, False, False,
                                                [("follower.replication.throttled.rate", "1000",
                                                  DYNAMIC_DEFAULT)]),
        "log.retention.ms": ("3600000", DYNAMIC_DEFAULT, False, False,
                             [("log.retention.ms", "3600000", DYNAMIC_DEFAULT)]),
        "message.max.bytes": ("500000", DYNAMIC_DEFAULT, False, False,
                              [("message.max.bytes", "500000", DYNAMIC_DEFAULT)])}
    node = describe(b, BROKER, "1", ["log.retention.ms", "message.max.bytes", "num.partitions"])
    assert node["log.retention.ms"] == ("3600000", DYNAMIC_DEFAULT, False, False, [
        ("log.retention.ms", "3600000", DYNAMIC_DEFAULT), ("log.retention.hours", "168", DEFAULT)])
    assert node["message.max.bytes"][:2] == ("1000", DYNAMIC_BROKER)
    assert node["num.partitions"][:3] == ("1", DEFAULT, True)
    assert describe(b, TOPIC, "dyn", ["retention.ms"])["retention.ms"][:2] == ("3600000", DYNAMIC_DEFAULT)

    # Kafka's refusals: a read-only key, a bad value; nothing of the request is applied.
    code, message = alter(b, "1", ("num.partitions", SET, "3"), ("log.retention.ms", SET, "5"))
    assert (code, message) == (INVALID_REQUEST, "Cannot update these configs dynamically: [num.partitions]")
    code, message = alter(b, "1", ("message.max.bytes", SET, "abc"))
    assert code == INVALID_REQUEST and "message.max.bytes" in message
    assert describe(b, BROKER, "1", ["log.retention.ms"])["log.retention.ms"][0] == "3600000"
    # A key Kafka does not know is kept (as Kafka does), sensitive and without its value.
    assert alter(b, "1", ("custom.key", SET, "secret")) == (0, None)
    assert describe(b, BROKER, "1")["custom.key"] == (None, DYNAMIC_BROKER, False, True,
                                                    [("custom.key", None, DYNAMIC_BROKER)])

    broker.restart()
    with pytest.raises(MessageSizeTooLargeError):
        send(b, "dyn", 3000)
    assert describe(b, BROKER, "1", ["message.max.bytes"])["message.max.bytes"][0] == "1000"

    # Deleted, the node's value falls back to the default's, then to the static default.
    assert alter(b, "1", ("message.max.bytes", DELETE, None)) == (0, None)
    assert describe(b, BROKER, "1", ["message.max.bytes"])["message.max.bytes"][:2] == ("500000", DYNAMIC_DEFAULT)
    send(b, "dyn", 3000)
    # AlterConfigs (legacy) replaces the default resource's whole set.
    AC = AlterConfigsRequest
    with RawConnection(b) as conn:
        resp = conn.roundtrip(AC(resources=[AC.AlterConfigsResource(
            resource_type=BROKER, resource_name="", configs=[
                AC.AlterConfigsResource.AlterableConfig(name="log.cleaner.threads", value="2")])],
            validate_only=False), 2, AlterConfigsResponse)
    assert resp.responses[0].error_code == 0
    assert describe(b, BROKER, "") == {"log.cleaner.threads": (
        "2", DYNAMIC_DEFAULT, False, False, [("log.cleaner.threads", "2", DYNAMIC_DEFAULT)])}
    assert describe(b, BROKER, "1", ["message.max.bytes"])["message.max.bytes"][:2] == ("1048588", DEFAULT)

"""odradek.testing.Broker and the pytest plugin's one-node fixtures, with real clients.

The fixtures come from the installed plugin (entry point pytest11), as an application's
suite gets them.
"""

import asyncio
import select
import socket

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.protocol.metadata import MetadataRequest, MetadataResponse

from odradek.broker.client import KafkaConnection
from odradek.testing import Broker
from odradek.testing.api import leaks

# An exception on the broker's thread (at start or at stop) fails the test that caused it.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000)
    try:
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == count:
                break
        return values
    finally:
        consumer.close()


def metadata(conn: KafkaConnection):
    return conn.roundtrip(MetadataRequest(topics=None, allow_auto_topic_creation=False), 12,
                          MetadataResponse)


def test_produce_and_consume_through_the_fixture(odradek_broker):
    odradek_broker.create_topic("orders", partitions=2)
    producer = KafkaProducer(bootstrap_servers=odradek_broker.bootstrap_servers)
    for i in range(10):
        producer.send("orders", f"order-{i}".encode(), partition=i % 2)
    producer.flush(10)
    producer.close()
    assert sorted(consume(odradek_broker.bootstrap_servers, "orders", 10)) == sorted(
        f"order-{i}".encode() for i in range(10))


def test_a_producer_retries_through_injected_not_leader_errors(odradek_broker):
    odradek_broker.create_topic("payments")
    odradek_broker.inject("Produce", error="NOT_LEADER_OR_FOLLOWER", count=3, topic="payments")
    producer = KafkaProducer(bootstrap_servers=odradek_broker.bootstrap_servers, retries=5,
                             retry_backoff_ms=50)
    producer.send("payments", b"paid").get(timeout=15)
    producer.close()
    [rule] = odradek_broker.faults()
    assert (rule["hits"], rule["count"]) == (3, 0)
    assert consume(odradek_broker.bootstrap_servers, "payments", 1) == [b"paid"]


def test_a_request_for_another_topic_is_served(odradek_broker):
    odradek_broker.create_topic("a")
    odradek_broker.create_topic("b")
    odradek_broker.inject("Produce", error="NOT_LEADER_OR_FOLLOWER", topic="a")
    producer = KafkaProducer(bootstrap_servers=odradek_broker.bootstrap_servers, retries=0)
    producer.send("b", b"x").get(timeout=10)
    with pytest.raises(Exception, match="NotLeaderForPartition|NOT_LEADER"):
        producer.send("a", b"x").get(timeout=10)
    producer.close()
    assert odradek_broker.faults()[0]["hits"] == 1


def test_an_injected_drop_closes_the_connection_and_a_delay_still_answers(odradek_broker):
    odradek_broker.inject("Metadata", drop=True)
    odradek_broker.inject("Metadata", delay_s=0.2)
    with KafkaConnection(odradek_broker.bootstrap_servers, timeout=5) as conn:
        with pytest.raises(ConnectionError):
            metadata(conn)
    with KafkaConnection(odradek_broker.bootstrap_servers, timeout=5) as conn:
        assert metadata(conn).brokers[0].port == odradek_broker.port
    assert [r["hits"] for r in odradek_broker.faults()] == [1, 1]


def test_isolate_refuses_connections_until_heal(odradek_broker):
    odradek_broker.isolate()
    with pytest.raises(OSError):
        with KafkaConnection(odradek_broker.bootstrap_servers, timeout=5) as conn:
            metadata(conn)
    odradek_broker.heal()
    with KafkaConnection(odradek_broker.bootstrap_servers, timeout=5) as conn:
        assert metadata(conn).brokers


def test_a_blackholed_or_paused_broker_answers_only_after_heal(odradek_broker):
    for fault, undo in ((lambda: odradek_broker.isolate(mode="blackhole"), odradek_broker.heal),
                        (odradek_broker.pause, odradek_broker.resume)):
        with KafkaConnection(odradek_broker.bootstrap_servers, timeout=5) as conn:
            fault()
            conn.send(MetadataRequest(topics=None, allow_auto_topic_creation=False), 12)
            assert select.select([conn.sock], [], [], 0.3)[0] == []  # nothing can answer
            undo()
            assert conn.receive(MetadataResponse, 12).brokers


def test_restart_keeps_the_port_and_the_data():
    with Broker() as broker:
        broker.create_topic("kept")
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        producer.send("kept", b"before").get(timeout=10)
        producer.close()
        port = broker.port
        broker.kill()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        broker.restart()
        assert broker.port == port
        assert consume(broker.bootstrap_servers, "kept", 1) == [b"before"]
    assert leaks(broker) == []


def test_in_memory_data_lives_on_tmpfs_and_is_removed():
    with Broker(in_memory=True) as broker:
        data_dir = broker.data_dir
        assert data_dir.startswith("/dev/shm/")
    assert leaks(broker) == []
    assert broker.data_dir is None


def test_an_unknown_api_or_error_is_refused(odradek_broker_session):
    with pytest.raises(ValueError, match="unknown API"):
        odradek_broker_session.inject("Produse", error="NOT_LEADER_OR_FOLLOWER")
    with pytest.raises(ValueError, match="unknown error code"):
        odradek_broker_session.inject("Produce", error="NOT_A_CODE")


async def test_the_async_fixture_serves_aiokafka(odradek_broker_async):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    await asyncio.to_thread(odradek_broker_async.create_topic, "events")
    odradek_broker_async.inject("Produce", error="NOT_LEADER_OR_FOLLOWER", count=1)
    producer = AIOKafkaProducer(bootstrap_servers=odradek_broker_async.bootstrap_servers,
                                retry_backoff_ms=50)
    await producer.start()
    try:
        await producer.send_and_wait("events", b"e1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer("events", bootstrap_servers=odradek_broker_async.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 15)
    finally:
        await consumer.stop()
    assert record.value == b"e1"
    assert odradek_broker_async.faults()[0]["hits"] == 1


@pytest.mark.odradek(config={"num.partitions": "4"}, in_memory=True)
def test_the_marker_configures_the_fixture(odradek_broker):
    assert odradek_broker.data_dir.startswith("/dev/shm/")
    producer = KafkaProducer(bootstrap_servers=odradek_broker.bootstrap_servers)
    producer.send("auto-created", b"x").get(timeout=10)  # auto.create.topics.enable
    assert len(producer.partitions_for("auto-created")) == 4
    producer.close()


def test_a_session_broker_left_faulty_and_killed(odradek_broker_session):
    odradek_broker_session.inject("Metadata", error="NOT_LEADER_OR_FOLLOWER", count=-1)
    odradek_broker_session.isolate()
    odradek_broker_session.kill()


def test_is_revived_for_the_next_test(odradek_broker_session):
    assert odradek_broker_session.faults() == []
    with KafkaConnection(odradek_broker_session.bootstrap_servers, timeout=5) as conn:
        assert metadata(conn).brokers


def test_a_broker_has_only_node_1(odradek_broker_session):
    with pytest.raises(ValueError, match="one node"):
        odradek_broker_session.kill(2)

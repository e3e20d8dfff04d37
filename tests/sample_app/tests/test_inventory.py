"""The inventory's tests, on Odradek's fixtures (the installed pytest plugin provides
odradek_broker, odradek_broker_async and odradek_cluster; nothing here starts a broker)."""

import asyncio
import time

from inventory.events import (
    apply_events,
    encode,
    publish_aiokafka,
    publish_confluent,
    publish_with_retry,
    read_confluent,
)
from kafka import KafkaConsumer, KafkaProducer

import storage


def read_kafka_python(bootstrap: str, topic: str, count: int, group: str | None = None):
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             auto_offset_reset="earliest", consumer_timeout_ms=20000)
    values = []
    try:
        for record in consumer:
            values.append(record.value)
            if len(values) == count:
                break
    finally:
        consumer.close()
    return values


def test_our_storage_package_is_ours():
    import odradek.storage

    assert storage.OWNER == "inventory"
    assert odradek.storage.__name__ == "odradek.storage"
    assert storage.__file__ != odradek.storage.__file__


def test_kafka_python(odradek_broker):
    odradek_broker.create_topic("stock", partitions=2)
    producer = KafkaProducer(bootstrap_servers=odradek_broker.bootstrap_servers)
    for sku, delta in (("apple", 5), ("pear", 2), ("apple", -1)):
        producer.send("stock", encode(sku, delta), key=sku.encode())
    producer.flush(10)
    producer.close()
    values = read_kafka_python(odradek_broker.bootstrap_servers, "stock", 3)
    assert apply_events(values).levels == {"apple": 4, "pear": 2}


def test_confluent_kafka(odradek_broker):
    odradek_broker.create_topic("stock")
    publish_confluent(odradek_broker.bootstrap_servers, "stock", [("fig", 3), ("fig", 4)])
    values = read_confluent(odradek_broker.bootstrap_servers, "stock", 2, group="levels")
    assert apply_events(values).levels == {"fig": 7}


async def test_aiokafka(odradek_broker_async):
    from aiokafka import AIOKafkaConsumer

    await asyncio.to_thread(odradek_broker_async.create_topic, "stock")
    await publish_aiokafka(odradek_broker_async.bootstrap_servers, "stock", [("kiwi", 9)])
    consumer = AIOKafkaConsumer("stock", bootstrap_servers=odradek_broker_async.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    assert apply_events([record.value]).levels == {"kiwi": 9}


def test_publish_retries_on_not_leader_or_follower(odradek_broker):
    odradek_broker.create_topic("stock")
    odradek_broker.inject("Produce", error="NOT_LEADER_OR_FOLLOWER", count=2, topic="stock")
    attempts = publish_with_retry(odradek_broker.bootstrap_servers, "stock", "plum", 1)
    assert attempts == 3
    assert [r["hits"] for r in odradek_broker.faults()] == [2]
    assert read_kafka_python(odradek_broker.bootstrap_servers, "stock", 1) == [b"plum:1"]


def test_a_consumer_group_carries_on_across_a_killed_node(odradek_cluster):
    odradek_cluster.create_topic("stock", partitions=3)
    bootstrap = odradek_cluster.bootstrap_servers
    publish_confluent(bootstrap, "stock", [(f"sku{i}", 1) for i in range(30)])
    first = read_kafka_python(bootstrap, "stock", 30, group="levels")  # commits as it reads
    assert len(first) == 30
    odradek_cluster.kill(2)
    publish_confluent(bootstrap, "stock", [(f"sku{i}", 1) for i in range(30, 60)])
    deadline, rest = time.monotonic() + 60, []
    while len(rest) < 30 and time.monotonic() < deadline:  # the group resumes where it was
        rest += read_kafka_python(bootstrap, "stock", 30 - len(rest), group="levels")
    assert sorted(first + rest) == sorted(encode(f"sku{i}", 1) for i in range(60))

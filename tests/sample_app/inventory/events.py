"""Publishing and reading stock-change events with kafka-python, confluent-kafka and
aiokafka. Events are ``sku:delta`` values keyed by sku."""

import time

from kafka import KafkaProducer
from kafka.errors import NotLeaderForPartitionError

from storage import StockLevels


def encode(sku: str, delta: int) -> bytes:
    return f"{sku}:{delta}".encode()


def apply_events(values, levels: StockLevels | None = None) -> StockLevels:
    levels = levels or StockLevels()
    for value in values:
        sku, delta = value.decode().split(":")
        levels.apply(sku, int(delta))
    return levels


def publish_with_retry(bootstrap: str, topic: str, sku: str, delta: int,
                       attempts: int = 5, backoff_s: float = 0.05) -> int:
    """Publish one event, retrying on NOT_LEADER_OR_FOLLOWER ourselves (the producer's
    own retries are off, as in an application that must log every failover); returns
    the number of attempts it took."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, retries=0, acks="all")
    try:
        for attempt in range(1, attempts + 1):
            try:
                producer.send(topic, encode(sku, delta), key=sku.encode()).get(timeout=10)
                return attempt
            except NotLeaderForPartitionError:
                if attempt == attempts:
                    raise
                time.sleep(backoff_s)
    finally:
        producer.close()
    raise AssertionError("unreachable")


def publish_confluent(bootstrap: str, topic: str, events: list[tuple[str, int]]) -> None:
    from confluent_kafka import Producer

    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True})
    for sku, delta in events:
        producer.produce(topic, encode(sku, delta), key=sku.encode(),
                         on_delivery=lambda err, _msg: err and errors.append(err))
    if producer.flush(30) or errors:
        raise RuntimeError(f"not delivered: {errors}")


def read_confluent(bootstrap: str, topic: str, count: int, group: str) -> list[bytes]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values, deadline = [], time.monotonic() + 30
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                values.append(msg.value())
    finally:
        consumer.close()
    return values


async def publish_aiokafka(bootstrap: str, topic: str, events: list[tuple[str, int]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for sku, delta in events:
            await producer.send_and_wait(topic, encode(sku, delta), key=sku.encode())
    finally:
        await producer.stop()

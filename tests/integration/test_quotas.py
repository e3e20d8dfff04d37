"""Client quotas (issue 16): AlterClientQuotas / DescribeClientQuotas as records of the
metadata log, and producer_byte_rate enforced with throttle times and a muted connection.

The throughput test is slow by nature: it measures what the broker lets through over a
10 s window (after a warm-up in which the first burst of Kafka's 10-second rate window
passes), with librdkafka producing as fast as it can.
"""

import threading
import time

from confluent_kafka import Producer
from kafka.protocol.admin import (
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
)

from odradek.protocol.errors import ErrorCode
from tests.clients import create_topics
from tests.rawclient import RawConnection

A = AlterClientQuotasRequest
D = DescribeClientQuotasRequest


def alter(bootstrap: str, entity: dict, ops: dict, validate_only: bool = False) -> list:
    request = A(entries=[A.EntryData(
        entity=[A.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in entity.items()],
        ops=[A.EntryData.OpData(key=k, value=v or 0.0, remove=v is None) for k, v in ops.items()])],
        validate_only=validate_only)
    with RawConnection(bootstrap) as conn:
        return [(e.error_code, e.error_message) for e in conn.roundtrip(request, 1, AlterClientQuotasResponse).entries]


def describe(bootstrap: str, components: list, strict: bool = False):
    request = D(components=[D.ComponentData(entity_type=t, match_type=m, match=n) for t, m, n in components],
                strict=strict)
    with RawConnection(bootstrap) as conn:
        response = conn.roundtrip(request, 1, DescribeClientQuotasResponse)
    return response.error_code, {tuple((e.entity_type, e.entity_name) for e in entry.entity):
                                 {v.key: v.value for v in entry.values} for entry in response.entries or []}


def test_alter_and_describe_quotas_survive_a_restart(broker):
    b = broker.bootstrap
    assert alter(b, {"client-id": "app"}, {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}) == \
        [(ErrorCode.NONE, None)]
    assert alter(b, {"user": "alice", "client-id": None}, {"request_percentage": 12.5}) == [(ErrorCode.NONE, None)]
    assert alter(b, {"user": None}, {"producer_byte_rate": 10.0}, validate_only=True) == [(ErrorCode.NONE, None)]
    # bad entries: each its own INVALID_REQUEST
    assert alter(b, {"client-id": "app"}, {"no_such_quota": 1.0})[0][0] == ErrorCode.INVALID_REQUEST
    assert alter(b, {"client-id": "app"}, {"producer_byte_rate": 1.5})[0][0] == ErrorCode.INVALID_REQUEST
    assert alter(b, {"ip": "1.2.3.4"}, {"producer_byte_rate": 1.0})[0][0] == ErrorCode.INVALID_REQUEST

    broker.restart()
    assert describe(b, []) == (ErrorCode.NONE, {
        (("client-id", "app"),): {"consumer_byte_rate": 2048.0, "producer_byte_rate": 1024.0},
        (("client-id", None), ("user", "alice")): {"request_percentage": 12.5}})
    assert describe(b, [("user", 0, "alice")]) == (ErrorCode.NONE, {
        (("client-id", None), ("user", "alice")): {"request_percentage": 12.5}})
    assert describe(b, [("user", 0, "alice")], strict=True) == (ErrorCode.NONE, {})
    assert describe(b, [("client-id", 1, None)])[1] == {
        (("client-id", None), ("user", "alice")): {"request_percentage": 12.5}}
    assert describe(b, [("client-id", 2, None)], strict=True)[1] == {
        (("client-id", "app"),): {"consumer_byte_rate": 2048.0, "producer_byte_rate": 1024.0}}
    assert describe(b, [("user", 0, "x"), ("user", 2, None)])[0] == ErrorCode.INVALID_REQUEST

    assert alter(b, {"client-id": "app"}, {"consumer_byte_rate": None}) == [(ErrorCode.NONE, None)]
    assert describe(b, [("client-id", 0, "app")])[1] == {(("client-id", "app"),): {"producer_byte_rate": 1024.0}}


def test_a_producer_is_held_to_its_byte_rate(broker):
    """Within 10% of producer_byte_rate over 10 s, as measured by what was acknowledged.

    The producer offers twice its quota. Kafka's rate window lets a new client's first
    10 s worth through at once, and that credit comes back when its sample leaves the
    11 windows, so the first 11 s are a warm-up; the 10 s after them are measured.
    """
    quota = 200_000.0  # bytes per second
    value = b"x" * 10_000
    create_topics(broker.bootstrap, ["quota-topic"])
    assert alter(broker.bootstrap, {"client-id": "throttled"}, {"producer_byte_rate": quota}) == \
        [(ErrorCode.NONE, None)]
    acked: list[tuple[float, int]] = []
    lock = threading.Lock()

    def delivered(err, msg):
        if err is None:
            with lock:
                acked.append((time.monotonic(), len(msg.value())))

    p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "throttled", "linger.ms": 5,
                  "queue.buffering.max.kbytes": 100, "compression.type": "none"})
    warm_up, window = 12.0, 10.0
    offered, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < warm_up + window + 0.5:
        if offered * len(value) < elapsed * 2 * quota:
            offered += 1
            try:
                p.produce("quota-topic", value, on_delivery=delivered)
            except BufferError:
                pass  # the producer's buffer is full: this record is offered and dropped
        p.poll(0.005)
    p.flush(30)
    t0, t1 = start + warm_up, start + warm_up + window
    measured = sum(n for t, n in acked if t0 <= t < t1) / window
    print(f"producer_byte_rate {quota:.0f} B/s: {measured:.0f} B/s let through over {window:.0f} s")
    assert abs(measured - quota) / quota < 0.10, measured


def test_a_consumer_over_its_byte_rate_gets_an_empty_throttled_fetch(broker):
    """As Kafka answers: no data, the throttle time, and the bytes not counted."""
    from kafka import KafkaProducer
    from kafka.protocol.consumer import FetchResponse

    from tests.rawclient import fetch_request
    create_topics(broker.bootstrap, ["fetched"])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for _ in range(5):
        producer.send("fetched", b"y" * 10_000)
    producer.flush(10)
    producer.close(1)
    with RawConnection(broker.bootstrap) as conn:
        first = conn.roundtrip(fetch_request("fetched", 0), 11, FetchResponse)
        assert first.throttle_time_ms == 0 and first.responses[0].partitions[0].records
    assert alter(broker.bootstrap, {"client-id": None}, {"consumer_byte_rate": 1000.0}) == [(ErrorCode.NONE, None)]
    with RawConnection(broker.bootstrap) as conn:
        throttled = conn.roundtrip(fetch_request("fetched", 0), 11, FetchResponse)
    assert throttled.throttle_time_ms > 0 and throttled.responses == []


def test_request_percentage_throttles_within_one_window(broker):
    """Request time counts against request_percentage; its throttle is at most one window."""
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse
    assert alter(broker.bootstrap, {"client-id": None}, {"request_percentage": 0.0001}) == [(ErrorCode.NONE, None)]
    with RawConnection(broker.bootstrap) as conn:
        throttles = [conn.roundtrip(MetadataRequest(topics=None, allow_auto_topic_creation=False), 12,
                                    MetadataResponse).throttle_time_ms for _ in range(3)]
    assert all(0 < t <= 1000 for t in throttles), throttles

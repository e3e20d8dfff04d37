"""Idempotent producers: no duplicates and no reordering when they retry."""

import random
import threading
import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer
from kafka.protocol.admin import DescribeProducersRequest, DescribeProducersResponse

from odradek.protocol.records import build_batch
from tests.brokerproc import BrokerProcess, free_port
from tests.clients import create_topics, read_values
from tests.proxy import FrameProxy
from tests.rawclient import RawConnection, fetch, produce

PRODUCE = 0
RECORDS = 20_000


def idempotent_batch(pid, epoch, seq, count=1):
    return build_batch([(None, b"s%d" % (seq + i), (), int(time.time() * 1000)) for i in range(count)],
                       producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def test_sequence_gap_stale_epoch_and_old_duplicate(broker):
    create_topics(broker.bootstrap, ["seq"])
    for i in range(7):
        assert produce(broker.bootstrap, "seq", {0: idempotent_batch(9, 1, i * 2, count=2)})[0].error_code == 0
    retry = produce(broker.bootstrap, "seq", {0: idempotent_batch(9, 1, 10, count=2)})[0]
    assert (retry.error_code, retry.base_offset) == (0, 10)  # the original offset
    assert fetch(broker.bootstrap, "seq", 0).high_watermark == 14  # nothing appended
    assert produce(broker.bootstrap, "seq", {0: idempotent_batch(9, 1, 20)})[0].error_code == 45  # gap
    assert produce(broker.bootstrap, "seq", {0: idempotent_batch(9, 0, 14)})[0].error_code == 47  # stale epoch
    assert produce(broker.bootstrap, "seq", {0: idempotent_batch(9, 1, 2, count=2)})[0].error_code == 45
    assert produce(broker.bootstrap, "seq", {0: idempotent_batch(9, 2, 3)})[0].error_code == 45  # new epoch, seq != 0
    assert produce(broker.bootstrap, "seq", {0: idempotent_batch(9, 2, 0)})[0].error_code == 0
    # A producer id of -1 is not checked (aiokafka writes base_sequence 0 regardless).
    for _ in range(2):
        assert produce(broker.bootstrap, "seq", {0: build_batch([(None, b"x", (), 1)], base_sequence=0)})[0].error_code == 0

    describe = DescribeProducersRequest(topics=[DescribeProducersRequest.TopicRequest(
        name="seq", partition_indexes=[0])])
    with RawConnection(broker.bootstrap) as conn:
        resp = conn.roundtrip(describe, 0, DescribeProducersResponse)
    (state,) = resp.topics[0].partitions[0].active_producers
    assert (state.producer_id, state.producer_epoch, state.last_sequence) == (9, 2, 0)


def test_producer_state_survives_restart(broker):
    create_topics(broker.bootstrap, ["state"])
    for i in range(3):
        produce(broker.bootstrap, "state", {0: idempotent_batch(5, 0, i)})
    broker.kill()  # unclean: the state is rebuilt from the log
    broker.start()
    retry = produce(broker.bootstrap, "state", {0: idempotent_batch(5, 0, 2)})[0]
    assert (retry.error_code, retry.base_offset) == (0, 2)
    assert produce(broker.bootstrap, "state", {0: idempotent_batch(5, 0, 9)})[0].error_code == 45
    broker.restart()  # clean: from the snapshot
    assert produce(broker.bootstrap, "state", {0: idempotent_batch(5, 0, 3)})[0].error_code == 0
    assert fetch(broker.bootstrap, "state", 0).high_watermark == 4


@pytest.fixture
def proxied_broker(tmp_path):
    """A broker that advertises a proxy's address, so every client connection goes through it."""
    proxy_port = free_port()
    broker = BrokerProcess(tmp_path / "data", extra_args=["--advertised", f"127.0.0.1:{proxy_port}"]).start()
    rng = random.Random(11)
    budget = {"drops": 40}

    def drop(api_key, _correlation_id):
        if api_key == PRODUCE and budget["drops"] > 0 and rng.random() < 0.08:
            budget["drops"] -= 1
            return True
        return False

    proxy = FrameProxy(broker.bootstrap, drop, port=proxy_port).start()
    yield broker, proxy
    proxy.stop()
    broker.kill()


def test_kafka_python_retries_are_exactly_once(proxied_broker):
    broker, proxy = proxied_broker
    create_topics(broker.bootstrap, ["kp-idem"])
    producer = KafkaProducer(bootstrap_servers=proxy.address, max_in_flight_requests_per_connection=5,
                             linger_ms=2, batch_size=4096, retry_backoff_ms=50)
    futures = [producer.send("kp-idem", b"%d" % i, partition=0) for i in range(RECORDS)]
    producer.flush(120)
    assert all(f.succeeded() for f in futures)
    producer.close()
    assert proxy.dropped > 0
    assert read_values(broker.bootstrap, "kp-idem") == [b"%d" % i for i in range(RECORDS)]


def test_confluent_retries_are_exactly_once(proxied_broker):
    broker, proxy = proxied_broker
    create_topics(broker.bootstrap, ["ck-idem"])
    producer = Producer({"bootstrap.servers": proxy.address, "enable.idempotence": True,
                         "max.in.flight": 5, "linger.ms": 2, "batch.size": 4096,
                         "retry.backoff.ms": 50})
    errors = []
    for i in range(RECORDS):
        producer.produce("ck-idem", b"%d" % i, partition=0,
                         on_delivery=lambda err, _m: err and errors.append(err))
        producer.poll(0)
    assert producer.flush(120) == 0 and not errors
    assert proxy.dropped > 0
    assert read_values(broker.bootstrap, "ck-idem") == [b"%d" % i for i in range(RECORDS)]


def test_restart_while_producer_retries(tmp_path):
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        create_topics(broker.bootstrap, ["restart-idem"])
        producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                             "linger.ms": 2, "batch.size": 4096, "message.timeout.ms": 60000})
        errors = []

        def restart():
            time.sleep(0.5)
            broker.kill()  # mid-stream, with requests in flight
            time.sleep(0.5)
            broker.start()

        restarter = threading.Thread(target=restart)
        restarter.start()
        for i in range(RECORDS):
            producer.produce("restart-idem", b"%d" % i, partition=0,
                             on_delivery=lambda err, _m: err and errors.append(err))
            producer.poll(0)
            if i % 1000 == 0:
                time.sleep(0.05)  # spread the sends across the restart
        restarter.join()
        assert producer.flush(120) == 0 and not errors, errors[:3]
        assert read_values(broker.bootstrap, "restart-idem") == [b"%d" % i for i in range(RECORDS)]
    finally:
        broker.kill()

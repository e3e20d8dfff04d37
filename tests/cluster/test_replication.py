"""Partition replication: acks=all writes survive failovers, with real processes on 127.0.0.N."""

import os
import signal
import threading
import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer

from tests.clients import create_topics, read_values
from tests.local_cluster import Cluster
from tests.replicas import log_batches

TOPIC = "replicated"


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop_all()
    for n in c.nodes:
        print(f"--- node {n} ---\n" + "".join(c.logs[n][-400:]))


def create(cluster, name, partitions=1, rf=3, config=None):
    create_topics(cluster.live_bootstrap, [name], partitions, rf, config)


def leader_of(cluster, topic, partition=0) -> int:
    md = cluster.admin().list_topics(timeout=10)
    return md.topics[topic].partitions[partition].leader


def wait_isr(cluster, topic, size, timeout_s=30):
    cluster.wait_for(lambda: len(cluster.admin().list_topics(timeout=5).topics[topic]
                                 .partitions[0].isrs) == size, timeout_s, f"an ISR of {size}")


class Producers:
    """An idempotent acks=all confluent-kafka producer and a kafka-python one, each writing
    its own numbered values, recording which were acknowledged, until stopped."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.acked = {"ck": [], "kp": []}
        self.errors = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._confluent), threading.Thread(target=self._kafka_python)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(180)

    def _confluent(self):
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 120000, "retry.backoff.ms": 100})
        i = 0
        while not self._stop.is_set() and i < 200_000:
            value = b"ck-%d" % i

            def report(err, msg, value=value):
                if err is None:
                    self.acked["ck"].append(value)
                else:
                    self.errors.append(("ck", err))
            try:
                p.produce(TOPIC, value, on_delivery=report)
                i += 1
            except BufferError:
                pass
            p.poll(0.002)
        p.flush(120)

    def _kafka_python(self):
        p = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                          delivery_timeout_ms=120000, request_timeout_ms=10000, retry_backoff_ms=100)
        i = 0
        while not self._stop.is_set() and i < 200_000:
            value = b"kp-%d" % i
            future = p.send(TOPIC, value)
            future.add_callback(lambda _md, value=value: self.acked["kp"].append(value))
            future.add_errback(lambda e: self.errors.append(("kp", e)))
            i += 1
            time.sleep(0.002)
        p.flush(120)
        p.close()


def test_acks_all_survives_leader_kills_pauses_and_a_full_restart(cluster):
    cluster.start()
    cluster.wait_formed()
    create(cluster, TOPIC, config={"min.insync.replicas": "2"})
    producers = Producers(cluster.bootstrap).start()
    try:
        time.sleep(2)
        for _ in range(5):  # the partition leader is killed five times in a row
            victim = leader_of(cluster, TOPIC)
            cluster.kill(victim)
            cluster.wait_for(lambda v=victim: leader_of(cluster, TOPIC) not in (-1, v), 30, "a new leader")
            time.sleep(1)
            cluster.restart(victim)
            wait_isr(cluster, TOPIC, 3, timeout_s=60)
        # A follower paused past replica.lag.time.max.ms leaves the ISR, then rejoins.
        follower = next(n for n in cluster.live() if n != leader_of(cluster, TOPIC))
        os.kill(cluster.nodes[follower].proc.pid, signal.SIGSTOP)
        wait_isr(cluster, TOPIC, 2, timeout_s=30)
        os.kill(cluster.nodes[follower].proc.pid, signal.SIGCONT)
        wait_isr(cluster, TOPIC, 3, timeout_s=60)
        # The whole cluster is killed and restarted.
        cluster.stop_all()
        time.sleep(1)
        cluster.start()
        cluster.wait_formed(timeout_s=90)
        time.sleep(3)
    finally:
        producers.stop()
    assert producers.acked["ck"] and producers.acked["kp"], producers.errors[:5]
    values = read_values(cluster.bootstrap, TOPIC)
    assert len(values) == len(set(values)), "a value was written twice"
    for name, acked in producers.acked.items():
        got = [v for v in values if v.startswith(name.encode())]
        missing = set(acked) - set(got)
        assert not missing, f"{len(missing)} acknowledged {name} records lost, e.g. {sorted(missing)[:3]}"
        assert got == sorted(got, key=lambda v: int(v.split(b"-")[1])), f"{name} records out of order"
    # The replicas hold the same batches below the high watermark.
    wait_isr(cluster, TOPIC, 3, timeout_s=60)
    time.sleep(2)  # followers fetch up to the leader's log end
    cluster.stop_all()
    logs = {n: log_batches(b.data_dir, TOPIC, 0) for n, b in cluster.nodes.items()}
    end = min(batches[-1][1] + 1 for batches in logs.values())
    trimmed = {n: [b for b in batches if b[1] < end] for n, batches in logs.items()}
    assert trimmed[1] == trimmed[2] == trimmed[3], "replicas diverge below the high watermark"
    assert end >= len(values) * 0.9


def test_both_followers_down_refuses_acks_all_but_serves_reads(cluster):
    cluster.start()
    cluster.wait_formed()
    create(cluster, "nr", config={"min.insync.replicas": "2"})
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.timeout.ms": 15000})
    acked = []
    for i in range(100):
        p.produce("nr", b"%d" % i, on_delivery=lambda err, m: err is None and acked.append(m.value()))
    assert p.flush(30) == 0 and len(acked) == 100
    leader = leader_of(cluster, "nr")
    for n in cluster.live():
        if n != leader:
            cluster.kill(n)
    time.sleep(4)  # past replica.lag.time.max.ms
    errors = []
    p2 = Producer({"bootstrap.servers": cluster.nodes[leader].bootstrap, "acks": "all",
                   "message.timeout.ms": 8000, "retries": 0})
    p2.produce("nr", b"refused", on_delivery=lambda err, m: errors.append(err))
    p2.flush(20)
    assert errors and errors[0] is not None and "NOT_ENOUGH_REPLICAS" in errors[0].name()
    values = read_values(cluster.nodes[leader].bootstrap, "nr")
    assert sorted(values) == sorted(acked) and b"refused" not in values


def _group_consumer(bootstrap):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g1", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 1000})
    c.subscribe(["grouped"])
    return c


def _consume(consumer, limit, idle_s, done=lambda values: False):
    """Up to ``limit`` values, until ``done(values)`` or idle_s pass without one."""
    values, idle_since = [], time.monotonic()
    while len(values) < limit and not done(values) and time.monotonic() - idle_since < idle_s:
        m = consumer.poll(0.5)
        if m is None or m.error() is not None:
            continue
        values.append(m.value())
        idle_since = time.monotonic()
    return values


def test_group_consumes_through_a_coordinator_failover(cluster):
    """confluent-kafka's consumer: kafka-python 3.0.12 retries a dead coordinator in a busy
    loop that starves three brokers sharing two cores."""
    from confluent_kafka import TopicPartition as CkTP
    cluster.start()
    cluster.wait_formed()
    create(cluster, "grouped", partitions=3)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(3000):
        p.produce("grouped", b"%d" % i, partition=i % 3)
    assert p.flush(30) == 0
    consumer = _group_consumer(cluster.bootstrap)
    seen = _consume(consumer, 1500, idle_s=30)
    consumer.commit(asynchronous=False)
    committed = {(tp.partition, tp.offset) for tp in consumer.committed(
        [CkTP("grouped", i) for i in range(3)], timeout=10)}
    consumer.close()
    admin = cluster.admin()
    (group,) = admin.describe_consumer_groups(["g1"]).values()
    coordinator = group.result(10).coordinator.id
    cluster.kill(coordinator)
    consumer = _group_consumer(cluster.bootstrap)
    # Rejoining waits out the fencing; done once every value was seen (another would be a
    # duplicate, which the asserts below allow: they count distinct values).
    rest = _consume(consumer, 3000, idle_s=30,
                    done=lambda rest: len(rest) >= 3000 - len(seen) and len(set(seen) | set(rest)) == 3000)
    after = {(tp.partition, tp.offset) for tp in consumer.committed(
        [CkTP("grouped", i) for i in range(3)], timeout=20)}
    consumer.close()
    assert after == committed  # the new coordinator loaded the commits
    assert len(set(seen) | set(rest)) == 3000  # resumed at the commit: nothing skipped
    assert len(seen) == 1500

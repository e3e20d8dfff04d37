"""Produce and consume the same records with every client, for cross-client tests.

Records are dicts: key and value (str or None), headers (list of (str, str)),
timestamp (ms, or None to let the client pick). Values are text so that kcat's
JSON output can carry them; what matters is that every client reads exactly the
bytes every other client wrote.
"""

import asyncio
import contextlib
import json
import subprocess
import time

from tests.conftest import require_tool

MAX_BYTES = 2_000_000  # message.max.bytes on the test broker; client limits raised to fit


def _b(s):
    return None if s is None else s.encode()


def _s(b):
    return None if b is None else bytes(b).decode()


def create_topics(bootstrap: str, names, partitions: int = 1, rf: int = 1, config: dict | None = None,
                  timeout_s: float = 30) -> None:
    """Create topics and wait for each (the admin handle must outlive its futures)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(n, partitions, rf, config=config or {})
                                  for n in names]).values():
        f.result(timeout_s)


def read_values(bootstrap: str, topic: str, partitions: int = 1, idle_ms: int = 8000) -> list[bytes]:
    """Every value of the topic's partitions, from the start (``read_assigned``)."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False)
    c.assign([TopicPartition(topic, p) for p in range(partitions)])
    values = [m.value for m in read_assigned(c, idle_ms)]
    c.close()
    return values


def read_assigned(consumer, idle_ms: int) -> list:
    """Every record of a kafka-python consumer's assigned partitions: up to their end
    offsets (high watermarks) as ListOffsets gives them when the read starts, or until
    idle_ms pass without a record. For a topic no longer written to: a new leader answers
    OFFSET_NOT_AVAILABLE (KIP-207) until its high watermark covers every committed record,
    so the end offsets miss nothing committed; where they are not given (or would be last
    stable offsets: read_committed), or a control record ends the log (the position stops
    short), idle_ms ends the read as before."""
    tps = list(consumer.assignment())
    end = None  # idle_ms alone ends the read
    if consumer.config["isolation_level"] == "read_uncommitted":  # else end offsets are LSOs
        with contextlib.suppress(Exception):
            end = consumer.end_offsets(tps)
    records: list = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < idle_ms / 1000:
        if end is not None and all(consumer.position(tp) >= end[tp] for tp in tps):
            break
        for batch in consumer.poll(timeout_ms=200).values():
            records += batch
            idle_since = time.monotonic()
    return records


def confluent_values(bootstrap: str, topic: str, isolation: str, expect: int, partitions: int = 1,
                     timeout_s: float = 15, settle_s: float = 1.0, with_keys: bool = False) -> list:
    """Values (``with_keys``: (key, value) pairs) read from the start of the topic's
    partitions with a confluent-kafka consumer at this isolation.level, until ``expect``
    arrived and either every partition was read up to its high watermark as it was at the
    start (read_committed too: nothing a fetch can return lies beyond it), or ``settle_s``
    passed without more (so an extra record would be seen); or ``timeout_s``."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    config = {"bootstrap.servers": bootstrap, "group.id": f"read-{time.time()}", "enable.auto.commit": False}
    watermarks = Consumer({**config, "isolation.level": "read_uncommitted"})
    try:  # a new leader answers OFFSET_NOT_AVAILABLE until it covers every committed record
        ends: list[int] | None = [watermarks.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                                  for p in range(partitions)]
    except KafkaException:
        ends = None  # settle_s alone
    finally:
        watermarks.close()
    c = Consumer({**config, "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

    def read_to_the_end() -> bool:
        positions = c.position([TopicPartition(topic, p) for p in range(partitions)])
        return ends is not None and all(end == 0 or tp.offset >= end
                                        for tp, end in zip(positions, ends, strict=True))

    got, deadline, quiet_until = [], time.time() + timeout_s, None
    try:
        while time.time() < deadline:
            if len(got) >= expect and read_to_the_end():
                break
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append((m.key(), m.value()) if with_keys else m.value())
                quiet_until = None
            if len(got) >= expect:
                quiet_until = quiet_until or time.time() + settle_s
                if time.time() >= quiet_until:
                    break
    finally:
        c.close()
    return got


def produce_kafka_python(bootstrap, topic, records, codec):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec,
                      max_request_size=MAX_BYTES, linger_ms=5)
    futures = [p.send(topic, key=_b(r["key"]), value=_b(r["value"]), partition=0,
                      headers=[(k, _b(v)) for k, v in r["headers"]], timestamp_ms=r["timestamp"])
               for r in records]
    p.flush(30)
    offsets = [f.get(30).offset for f in futures]
    p.close()
    return offsets


def produce_aiokafka(bootstrap, topic, records, codec):
    from aiokafka import AIOKafkaProducer

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec,
                             max_request_size=MAX_BYTES, linger_ms=5)
        await p.start()
        try:
            futures = [await p.send(topic, key=_b(r["key"]), value=_b(r["value"]), partition=0,
                                    headers=[(k, _b(v)) for k, v in r["headers"]],
                                    timestamp_ms=r["timestamp"]) for r in records]
            return [(await f).offset for f in futures]
        finally:
            await p.stop()
    return asyncio.run(run())


def produce_confluent(bootstrap, topic, records, codec):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": codec or "none",
                  "message.max.bytes": MAX_BYTES, "linger.ms": 5})
    offsets, errors = [], []

    def report(err, msg):
        (errors if err else offsets).append(err or msg.offset())
    for r in records:
        kwargs = {"timestamp": r["timestamp"]} if r["timestamp"] is not None else {}
        p.produce(topic, value=_b(r["value"]), key=_b(r["key"]), partition=0,
                  headers=[(k, _b(v)) for k, v in r["headers"]], on_delivery=report, **kwargs)
        p.poll(0)
    assert p.flush(30) == 0 and not errors, errors
    return offsets


def produce_kcat(bootstrap, topic, records, codec):
    """kcat takes one key/value per line and the same headers for all; -Z makes '' null."""
    kcat = require_tool("kcat")
    lines = "".join(f"{r['key'] or ''}\t{r['value'] or ''}\n" for r in records)
    cmd = [kcat, "-b", bootstrap, "-P", "-t", topic, "-p", "0", "-K", "\t", "-Z",
           "-X", f"message.max.bytes={MAX_BYTES}", "-X", "acks=all"]
    if codec:
        cmd += ["-z", codec]
    for k, v in records[0]["headers"]:
        cmd += ["-H", f"{k}={v}"]
    subprocess.run(cmd, input=lines, text=True, check=True, timeout=60)


def kcat_shape(records):
    """What a kcat producer actually writes for these records (see produce_kcat)."""
    headers = records[0]["headers"]
    return [{"key": r["key"] or None, "value": r["value"] or None, "headers": headers,
             "timestamp": None} for r in records]


def consume_kafka_python(bootstrap, topic, count):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, max_partition_fetch_bytes=MAX_BYTES,
                      fetch_max_bytes=50 * MAX_BYTES, consumer_timeout_ms=10000)
    c.assign([TopicPartition(topic, 0)])
    out = []
    for m in c:
        out.append({"offset": m.offset, "key": _s(m.key), "value": _s(m.value),
                    "headers": [(k, _s(v)) for k, v in m.headers], "timestamp": m.timestamp})
        if len(out) == count:
            break
    c.close()
    return out


def consume_aiokafka(bootstrap, topic, count):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, max_partition_fetch_bytes=MAX_BYTES,
                             fetch_max_bytes=50 * MAX_BYTES)
        await c.start()
        out = []
        try:
            c.assign([TopicPartition(topic, 0)])
            await c.seek_to_beginning()
            deadline = time.monotonic() + 30
            while len(out) < count and time.monotonic() < deadline:
                for batch in (await c.getmany(timeout_ms=1000)).values():
                    out += [{"offset": m.offset, "key": _s(m.key), "value": _s(m.value),
                             "headers": [(k, _s(v)) for k, v in m.headers],
                             "timestamp": m.timestamp} for m in batch]
        finally:
            await c.stop()
        return out
    return asyncio.run(run())


def consume_confluent(bootstrap, topic, count):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "fetch.max.bytes": 50 * MAX_BYTES, "max.partition.fetch.bytes": MAX_BYTES,
                  "receive.message.max.bytes": 60 * MAX_BYTES})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.monotonic() + 30
    while len(out) < count and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append({"offset": m.offset(), "key": _s(m.key()), "value": _s(m.value()),
                    "headers": [(k, _s(v)) for k, v in (m.headers() or [])],
                    "timestamp": m.timestamp()[1]})
    c.close()
    return out


def consume_kcat(bootstrap, topic, count):
    kcat = require_tool("kcat")
    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning",
                          "-e", "-J", "-c", str(count), "-X", f"fetch.message.max.bytes={MAX_BYTES}"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    records = []
    for line in out.splitlines():
        m = json.loads(line)
        h = m.get("headers") or []
        records.append({"offset": m["offset"], "key": m["key"], "value": m["payload"],
                        "headers": list(zip(h[::2], h[1::2], strict=True)), "timestamp": m["ts"]})
    return records


PRODUCERS = {"kafka-python": produce_kafka_python, "aiokafka": produce_aiokafka,
             "confluent-kafka": produce_confluent, "kcat": produce_kcat}
CONSUMERS = {"kafka-python": consume_kafka_python, "aiokafka": consume_aiokafka,
             "confluent-kafka": consume_confluent, "kcat": consume_kcat}

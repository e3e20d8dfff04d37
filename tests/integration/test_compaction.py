"""Log compaction end to end: a broker process cleans compacted topics while real clients
write and read them (storage.cleaner).

The broker runs with log.cleaner.backoff.ms=100 so passes come quickly; segments are small
so a changelog spans many of them.  The SIGKILL test runs COMPACTION_KILL_RUNS seeded runs
(1 in ``make test``, whose time is bounded; ``make compaction-kill`` runs 30), each killing a throttled pass at a random
moment (``-s`` prints which .cleaned files each kill left).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from odradek.protocol.records import build_batch
from tests.brokerproc import free_port
from tests.clients import confluent_values, create_topics
from tests.metrics_http import sample, scrape
from tests.rawclient import produce

TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "4096",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1500",
    # retention never shortens a compacted topic (Kafka's rule): these must change nothing
    "retention.ms": "1",
    "retention.bytes": "100",
}
BROKER = {"log.cleaner.backoff.ms": "100", "log.retention.check.interval.ms": "200"}


def read_all(bootstrap: str, topic: str, timeout_s: float = 20, **consumer_config
             ) -> tuple[int, list[tuple[int, bytes, bytes | None]]]:  # fmt: skip
    """(log start offset, every (offset, key, value) from the beginning) read by librdkafka."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-check",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **consumer_config})
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:  # a new leader answers OFFSET_NOT_AVAILABLE until its high watermark caught up
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list = []
        deadline = time.monotonic() + timeout_s
        position = low
        while position < high and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                position = max(position, (consumer.position([TopicPartition(topic, 0)])[0].offset))
                continue
            out.append((msg.offset(), msg.key(), msg.value()))
            position = msg.offset() + 1
        assert position >= high, f"read up to {position} of {high}"
        return low, out
    finally:
        consumer.close()


def write_changelog(bootstrap: str, topic: str, rng: random.Random, count: int, keys: int,
                    compression: str = "none", **producer_config) -> dict[bytes, tuple[int, bytes | None]]:
    """Keys written many times with tombstones among them, by an idempotent producer;
    returns each key's latest (offset, value) as acknowledged. ``compression`` names a
    codec, or several joined by "+": each writes 100 records in turn (flushed before the
    next), so the cleaner reads and rewrites segments that mix them."""
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    errors = []

    def delivered(err, msg) -> None:
        if err is not None:
            errors.append(err)
        else:
            latest[msg.key()] = (msg.offset(), msg.value())

    producers = [Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                           "compression.type": codec, "linger.ms": 5, **producer_config})
                 for codec in compression.split("+")]
    for i in range(count):
        producer = producers[i // 100 % len(producers)]
        if len(producers) > 1 and i % 100 == 0:
            assert producers[(i // 100 - 1) % len(producers)].flush(20) == 0  # keep the order
        key = b"key-%d" % rng.randrange(keys)
        value = None if rng.random() < 0.2 else b"value-%d-" % i + b"x" * rng.randrange(60)
        producer.produce(topic, key=key, value=value, partition=0, on_delivery=delivered)
        if i % 200 == 0:
            producer.poll(0)
    assert all(p.flush(20) == 0 for p in producers) and not errors
    # the active segment is never cleaned: fill it with other keys
    for i in range(80):
        producer.produce(topic, key=b"filler-%d" % i, value=b"f" * 60, partition=0)
    assert producer.flush(20) == 0
    return latest


def compacted_view(records) -> dict[bytes, list[tuple[int, bytes | None]]]:
    view: dict[bytes, list] = {}
    for offset, key, value in records:
        if not key.startswith(b"filler-"):
            view.setdefault(key, []).append((offset, value))
    return view


def wait_compacted(bootstrap: str, topic: str, latest, timeout_s: float = 40, done=None):
    """Read until each key shows only its latest record and no deleted key is left (or
    until ``done(records, want)``)."""
    want = {k: [v] for k, v in latest.items() if v[1] is not None}
    done = done or (lambda records, want: compacted_view(records) == want)
    deadline = time.monotonic() + timeout_s
    while True:
        low, records = read_all(bootstrap, topic)
        if done(records, want) or time.monotonic() > deadline:
            return low, records, want
        time.sleep(0.5)


def cleaned_to_the_active_segment(data_dir, topic: str) -> bool:
    """The cleaner's checkpoint for partition 0 reached the active segment's base offset,
    where cleaning stops: no pass is left to run (or running) until more is written."""
    active = max(int(p.stem) for p in (Path(data_dir) / f"{topic}-0").glob("*.log"))
    checkpoint = Path(data_dir) / "cleaner-offset-checkpoint"
    return checkpoint.exists() and f"{topic} 0 {active}" in checkpoint.read_text().split("\n")


@pytest.mark.parametrize("compression", ["none", "gzip+snappy+lz4+zstd"])
def test_consumer_sees_the_latest_value_of_each_live_key_at_its_offset(broker_factory, compression):
    broker = broker_factory(overrides=BROKER)
    create_topics(broker.bootstrap, ["changelog"], config=TOPIC_CONFIG)
    latest = write_changelog(broker.bootstrap, "changelog", random.Random(7), 1500, 40, compression)
    assert any(v is None for _, v in latest.values())  # some keys end deleted
    low, records, want = wait_compacted(broker.bootstrap, "changelog", latest)
    assert compacted_view(records) == want  # latest value per live key, original offset, no deleted key
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(offsets) == len(set(offsets))
    assert low == 0  # retention.ms=1 and retention.bytes=100 shortened nothing
    assert len(list((Path(broker.data_dir) / "changelog-0").glob("*.log"))) < 1500 * 80 // 4096
    checkpoint = (Path(broker.data_dir) / "cleaner-offset-checkpoint").read_text().split("\n")
    assert any(line.startswith("changelog 0 ") for line in checkpoint)
    # the same producer, and a new idempotent one, go on writing after cleaning
    more = write_changelog(broker.bootstrap, "changelog", random.Random(8), 200, 40)
    assert all(offset > max(o for o, _, _ in records) for offset, _ in more.values())


def test_aborted_transactions_stay_aborted_through_cleaning_and_a_restart(broker_factory):
    """An aborted value never replaces the committed one before it, and read_committed
    consumers never see aborted records, after cleaning and after a restart (the cleaned
    segment keeps the .txnindex entries of the segments it replaced).  The cleaner's
    gauges (Kafka's kafka.log:type=LogCleaner/LogCleanerManager) show on /metrics."""
    http = f"127.0.0.1:{free_port()}"
    broker = broker_factory(overrides={**BROKER, "http.listener": http})
    create_topics(broker.bootstrap, ["txn-changelog"], config=TOPIC_CONFIG)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    plain.produce("txn-changelog", key=b"k1", value=b"committed", partition=0)
    assert plain.flush(10) == 0
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "compaction-txn"})
    txn.init_transactions(10)
    for round_ in range(3):
        txn.begin_transaction()
        for key in (b"k1", b"k2"):
            txn.produce("txn-changelog", key=key, value=b"aborted-%d" % round_ + b"x" * 1500, partition=0)
        txn.flush(10)
        txn.abort_transaction(10)
    txn.begin_transaction()
    txn.produce("txn-changelog", key=b"k3", value=b"in a commit", partition=0)
    txn.commit_transaction(10)
    for i in range(8):  # the active segment is never cleaned: fill it with other keys
        plain.produce("txn-changelog", key=b"filler-%d" % i, value=b"f" * 1000, partition=0)
    assert plain.flush(10) == 0

    def live(isolation: str = "read_uncommitted") -> dict[bytes, bytes]:
        """The latest value of each key a consumer sees (librdkafka defaults to read_committed)."""
        _, records = read_all(broker.bootstrap, "txn-changelog", **{"isolation.level": isolation})
        return {k: v for _, k, v in records if not k.startswith(b"filler-")}

    want = {b"k1": b"committed", b"k3": b"in a commit"}
    assert live("read_committed") == want
    deadline = time.monotonic() + 30
    while live() != want and time.monotonic() < deadline:  # until the aborted records are gone
        time.sleep(0.5)
    assert live() == want
    assert live("read_committed") == want
    samples = scrape(f"http://{http}")
    assert 0 <= sample(samples, "kafka_log_logcleaner_cleaner_recopy_percent") <= 100
    assert sample(samples, "kafka_log_logcleaner_max_clean_time_secs") > 0
    assert 0 <= sample(samples, "kafka_log_logcleaner_max_buffer_utilization_percent") <= 100
    assert 0 <= sample(samples, "kafka_log_logcleanermanager_time_since_last_run_ms") < 30_000
    assert sample(samples, "kafka_log_logcleanermanager_max_dirty_percent") >= 0
    for name in ("uncleanable_partitions_count", "uncleanable_bytes"):
        assert sample(samples, f"kafka_log_logcleanermanager_{name}", logDirectory=broker.data_dir) == 0
    broker.restart()
    assert live("read_committed") == want
    txn.flush(1)


def idempotent(pid: int, seq: int, key: bytes) -> bytes:
    return build_batch([(key, b"v%d" % seq, (), int(time.time() * 1000))], producer_id=pid,
                       producer_epoch=0, base_sequence=seq)


def test_idempotent_producer_keeps_deduplicating_after_its_batches_are_cleaned(broker_factory):
    broker = broker_factory(overrides=BROKER)
    create_topics(broker.bootstrap, ["idem"], config=TOPIC_CONFIG)
    for seq in range(200):  # one key, overwritten: every batch but the last goes
        assert produce(broker.bootstrap, "idem", {0: idempotent(77, seq, b"k")})[0].error_code == 0
    for i in range(80):
        produce(broker.bootstrap, "idem", {0: build_batch([(b"f%d" % i, b"f" * 60)])})
    low, records = read_all(broker.bootstrap, "idem")
    deadline = time.monotonic() + 30
    while len([r for r in records if r[1] == b"k"]) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
        low, records = read_all(broker.bootstrap, "idem")
    assert [(o, v) for o, k, v in records if k == b"k"] == [(199, b"v199")]
    # a restart that has to rebuild producer state from the cleaned log (no snapshots)
    broker.kill()
    for snapshot in (Path(broker.data_dir) / "idem-0").glob("*.snapshot"):
        snapshot.unlink()
    broker.restart()
    retry = produce(broker.bootstrap, "idem", {0: idempotent(77, 199, b"k")})[0]
    assert (retry.error_code, retry.base_offset) == (0, 199)  # a duplicate: the original offset
    assert produce(broker.bootstrap, "idem", {0: idempotent(77, 201, b"k")})[0].error_code == 45
    assert produce(broker.bootstrap, "idem", {0: idempotent(77, 200, b"k")})[0].error_code == 0


KILL_RUNS = int(os.environ.get("COMPACTION_KILL_RUNS", "1"))  # make compaction-kill: 30


@pytest.mark.parametrize("seed", range(KILL_RUNS))
def test_sigkill_during_cleaning_leaves_a_valid_log(broker_factory, seed):
    """Killed at a random moment of a cleaning pass (held back until the log is written,
    then throttled to make it last), the broker restarts with a log in which every key's
    latest record is at its offset and offsets strictly increase; the .cleaned or .swap
    files the kill left are rolled back or completed."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
    rng = random.Random(seed)
    broker = broker_factory(overrides={**BROKER, "log.cleaner.io.max.bytes.per.second": "40000"})
    held = {**TOPIC_CONFIG, "delete.retention.ms": "600000", "min.cleanable.dirty.ratio": "1.0"}
    create_topics(broker.bootstrap, ["crashy"], config=held)  # a ratio of 1.0 is never exceeded
    # small batches: many segments, so the kill falls among the pass's groups too
    latest = write_changelog(broker.bootstrap, "crashy", rng, 3000, 100, **{"batch.size": 1500})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    start = ConfigResource("TOPIC", "crashy", incremental_configs=[ConfigEntry(
        "min.cleanable.dirty.ratio", "0.01", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([start]).values():
        f.result(10)
    time.sleep(rng.uniform(0.2, 7.0))  # the pass reads ~280 KB at 40 KB/s: the map, then groups
    broker.kill()
    left = [n for n in os.listdir(Path(broker.data_dir) / "crashy-0") if n.endswith((".cleaned", ".swap"))]
    print(f"seed {seed}: killed with {left or 'no'} cleaner files")  # where the kill fell
    del broker.overrides["log.cleaner.io.max.bytes.per.second"]  # the rest at full speed
    broker.restart()
    low, records = read_all(broker.bootstrap, "crashy")
    assert low == 0
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(offsets) == len(set(offsets))
    present = {(o, k, v) for o, k, v in records}
    for key, (offset, value) in latest.items():
        assert (offset, key, value) in present, f"seed {seed}: lost {key!r}@{offset}"
    # and cleaning goes on to the end after the restart (the tombstones stay: delete.retention.ms)
    def cleaned(records, want) -> bool:
        return ({k: v for k, v in compacted_view(records).items() if k in want} == want
                and cleaned_to_the_active_segment(broker.data_dir, "crashy"))
    _, records, want = wait_compacted(broker.bootstrap, "crashy",
                                      {k: v for k, v in latest.items() if v[1] is not None}, done=cleaned)
    view = compacted_view(records)
    assert {k: v for k, v in view.items() if k in want} == want
    names = os.listdir(Path(broker.data_dir) / "crashy-0")
    assert not [n for n in names if n.endswith((".cleaned", ".swap"))]


def test_compaction_keeps_committed_values_over_aborted_and_open_transactions(broker_factory):
    """Transactions on a compacted topic (Kafka's cleaner rules): an aborted transaction's
    records never shadow a committed value of their key (they are dropped, and never enter
    the offset map), and nothing at or above the last stable offset is cleaned, since an
    open transaction may still abort. Read committed, each key keeps its committed value."""
    broker = broker_factory(overrides={**BROKER, "transaction.state.log.num.partitions": "1",
                                       "offsets.topic.num.partitions": "1"})
    create_topics(broker.bootstrap, ["txlog"], config=TOPIC_CONFIG)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "compacting", "linger.ms": 5})
    p.init_transactions(15)
    keys = [b"k%d" % i for i in range(40)]
    for outcome in (b"committed", b"aborted", b"open"):
        p.begin_transaction()
        for k in keys:
            p.produce("txlog", key=k, value=outcome + b"-" + k + b"-" + b"x" * 60, partition=0)
        p.flush(10)
        if outcome == b"committed":
            p.commit_transaction(15)
        elif outcome == b"aborted":
            p.abort_transaction(15)
    filler = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(80):  # the active segment is never cleaned: other keys fill it
        filler.produce("txlog", key=b"filler-%d" % i, value=b"f" * 60, partition=0)
    assert filler.flush(20) == 0

    def stable_view(isolation: str) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in confluent_values(broker.bootstrap, "txlog", isolation, 0, settle_s=1.0,
                                                    with_keys=True) if not k.startswith(b"filler-")]

    deadline = time.monotonic() + 30
    while True:  # until the cleaner compacted what lies below the open transaction
        view = stable_view("read_uncommitted")
        below = [k for k, v in view if not v.startswith(b"open")]
        if len(below) == len(set(below)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(below) == sorted(keys)  # one record per key below the open transaction
    assert all(v.startswith(b"open") for _, v in view[len(below):]) and len(view) - len(below) == len(keys)
    p.abort_transaction(15)  # the open transaction aborts: the committed values stand
    assert sorted(stable_view("read_committed")) == sorted((k, b"committed-" + k + b"-" + b"x" * 60)
                                                          for k in keys)

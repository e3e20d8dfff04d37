"""Every client produces and consumes through Odradek, byte for byte, with every codec."""

import random
import struct
import time
import zlib

import pytest

from odradek.protocol.records import build_batch, compute_crc
from tests import clients
from tests.rawclient import fetch, produce

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
BIG = 900 * 1024


def make_records(seed: int, count: int = 40) -> list[dict]:
    """Keys, null keys, null values, headers, explicit timestamps; compressible text."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    records = []
    for i in range(count):
        size = rng.choice([0, 1, 10, 100, 1000, 10 * 1024])
        value = (f"odradek-{i:04d}-" * (size // 13 + 1))[:size]
        records.append({
            "key": None if i % 7 == 3 else f"key-{i}",
            "value": None if i % 11 == 5 and i % 7 != 3 else value,  # never both null
            "headers": [] if i % 3 else [("trace", f"t{i}"), ("empty", "")],
            "timestamp": now - 1000 + i,
        })
    for j in range(2):  # two records near the 1 MB limits
        records.append({"key": f"big-{j}", "value": (f"B{j}" * BIG)[:BIG], "headers": [],
                        "timestamp": now + j})
    return records


def _normalise(records, keep_timestamp=True):
    return [{"key": r["key"], "value": r["value"], "headers": [tuple(h) for h in r["headers"]],
             **({"timestamp": r["timestamp"]} if keep_timestamp else {})} for r in records]


@pytest.mark.parametrize("producer", list(clients.PRODUCERS))
def test_cross_client_matrix(data_broker, producer):
    """Records from this producer, in each codec, read back identically by every consumer."""
    for codec in CODECS:
        topic = f"matrix-{producer}-{codec or 'none'}"
        records = make_records(zlib.crc32(topic.encode()) % 1000)  # same seed every run
        if producer == "kcat":
            records = [r for r in records if r["value"] is None or len(r["value"]) < BIG]
        clients.PRODUCERS[producer](data_broker.bootstrap, topic, records, codec)
        expected = clients.kcat_shape(records) if producer == "kcat" else records
        keep_ts = producer != "kcat"
        views = {}
        for consumer, consume in clients.CONSUMERS.items():
            got = consume(data_broker.bootstrap, topic, len(expected))
            assert [r["offset"] for r in got] == list(range(len(expected))), (consumer, codec)
            assert _normalise(got, keep_ts) == _normalise(expected, keep_ts), (consumer, codec)
            views[consumer] = _normalise(got)
        # Whatever timestamps the producer chose, every consumer sees the same ones.
        assert len({repr(v) for v in views.values()}) == 1, codec


# --- raw protocol: bad batches in one request do not hurt the other partitions -----


def test_bad_batches_fail_alone(broker_factory):
    b = broker_factory(overrides={"message.max.bytes": "10000"})
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic("bad", 4, 1)]).values():
        f.result(10)
    good = build_batch([(b"k", b"v", (), int(time.time() * 1000))])
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF
    too_big = build_batch([(b"k", b"x" * 20000, (), int(time.time() * 1000))])
    zstd = bytearray(good)
    zstd[22] |= 4  # attributes low byte: codec zstd (CRC recomputed below)
    struct.pack_into(">I", zstd, 17, compute_crc(zstd, 0, len(zstd)))
    results = produce(b.bootstrap, "bad", {0: good, 1: bytes(corrupt), 2: too_big, 3: bytes(zstd)},
                      version=3)
    assert results[0].error_code == 0 and results[0].base_offset == 0
    assert results[1].error_code == 2  # CORRUPT_MESSAGE
    assert results[2].error_code == 10  # MESSAGE_TOO_LARGE
    assert results[3].error_code == 76  # UNSUPPORTED_COMPRESSION_TYPE (zstd needs v7)
    assert fetch(b.bootstrap, "bad", 0).records  # the good one landed
    for p in (1, 2, 3):
        fetched = fetch(b.bootstrap, "bad", p)
        assert not fetched.records and fetched.high_watermark == 0, p
    # Unknown partitions and invalid timestamps answer per partition, too.
    results = produce(b.bootstrap, "bad", {7: good}, version=9)
    assert results[7].error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION

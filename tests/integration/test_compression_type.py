"""Topic compression.type: the broker rewrites batches that arrive in another codec, as
Kafka does (broker/handlers/produce.py, protocol.records.recompress_batches), and every
client reads them back."""

import pytest

from odradek.protocol.records import CODEC_NAMES, iter_batches
from tests import clients
from tests.clients import create_topics
from tests.integration.test_data_path import _normalise, make_records
from tests.rawclient import fetch

TOPIC_CODECS = ["uncompressed", "gzip", "snappy", "lz4", "zstd"]


def stored_codecs(bootstrap: str, topic: str) -> set[str]:
    """The codec of every batch as the broker serves it (raw Fetch, so no client decodes)."""
    data = fetch(bootstrap, topic, 0).records or b""
    return {CODEC_NAMES[h.compression] for _, h in iter_batches(data, None, produced=False)}


@pytest.mark.parametrize("topic_codec", TOPIC_CODECS)
def test_batches_come_back_in_the_topic_codec(data_broker, topic_codec):
    bootstrap = data_broker.bootstrap
    expected_codec = "none" if topic_codec == "uncompressed" else topic_codec
    for producer, codec in (("confluent-kafka", "gzip"), ("kafka-python", None), ("aiokafka", "lz4")):
        topic = f"ct-{topic_codec}-{producer}"
        create_topics(bootstrap, [topic], config={"compression.type": topic_codec})
        records = make_records(7, count=30)[:30]  # not the two 900 KiB records
        clients.PRODUCERS[producer](bootstrap, topic, records, codec)
        assert stored_codecs(bootstrap, topic) == {expected_codec}, (producer, codec)
        for consumer, consume in clients.CONSUMERS.items():
            got = consume(bootstrap, topic, len(records))
            assert [r["offset"] for r in got] == list(range(len(records))), (consumer, producer)
            assert _normalise(got) == _normalise(records), (consumer, producer)


def test_producer_keeps_batches_as_sent(data_broker):
    bootstrap = data_broker.bootstrap
    create_topics(bootstrap, ["ct-producer"])
    clients.PRODUCERS["confluent-kafka"](bootstrap, "ct-producer", make_records(3, count=20)[:20], "snappy")
    assert stored_codecs(bootstrap, "ct-producer") == {"snappy"}

"""Kafka 4.4's kafka-transactions tool against Odradek: list, describe, describe-producers,
find-hanging, and abort of an open transaction (its WriteTxnMarkers goes to the partition
leader from the admin client)."""

import pytest

from tests.clients import confluent_values, create_topics
from tests.integration.test_transactions import OVERRIDES, end_offsets
from tests.peers.test_tools import run


@pytest.fixture
def odradek(broker_factory):
    return broker_factory(overrides=dict(OVERRIDES))


def test_kafka_transactions_lists_describes_and_aborts(odradek):
    from confluent_kafka import Producer
    bootstrap = odradek.bootstrap
    create_topics(bootstrap, ["tt"])
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tool-tx"})
    p.init_transactions(15)
    p.begin_transaction()
    p.produce("tt", b"open", partition=0)
    p.flush(10)
    assert end_offsets(bootstrap, "tt") == (1, 0)

    listed = run(bootstrap, "kafka-transactions", "list").stdout
    assert "tool-tx" in listed and "Ongoing" in listed, listed
    described = run(bootstrap, "kafka-transactions", "describe", "--transactional-id", "tool-tx").stdout
    assert "Ongoing" in described and "tt-0" in described, described
    producers = run(bootstrap, "kafka-transactions", "describe-producers", "--topic", "tt",
                    "--partition", "0").stdout
    lines = [line.split() for line in producers.splitlines()]
    header, row = lines[0], lines[1]
    assert row[header.index("CurrentTransactionStartOffset")] == "0", producers
    hanging = run(bootstrap, "kafka-transactions", "find-hanging", "--broker-id", "1").stdout
    assert "tt" not in hanging, hanging  # younger than transaction.max.timeout.ms: not hanging

    run(bootstrap, "kafka-transactions", "abort", "--topic", "tt", "--partition", "0",
        "--start-offset", "0")
    assert end_offsets(bootstrap, "tt") == (2, 2)  # the ABORT marker moved the LSO
    assert confluent_values(bootstrap, "tt", "read_committed", 0, timeout_s=2, settle_s=1) == []
    assert confluent_values(bootstrap, "tt", "read_uncommitted", 1) == [b"open"]

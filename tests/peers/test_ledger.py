"""COMPATIBILITY.md is generated (python -m tests.peers.ledger): the committed file must be
what the tests, the handler registry and Kafka 4.4's recorded ApiVersions give today.
Needs neither Kafka nor Java."""

from tests.peers import ledger


def test_the_compatibility_ledger_is_up_to_date():
    assert ledger.main(["--check"]) == 0, "run: python -m tests.peers.ledger"


def test_the_ledger_lists_every_api_kafka_serves_and_why_ours_is_lower():
    text = ledger.render()
    assert "| 0 | Produce | 0-13 | 3-12 |" in text
    assert "| 1 | Fetch | 4-18 | 4-18 |" in text
    assert "transactions v2" in text

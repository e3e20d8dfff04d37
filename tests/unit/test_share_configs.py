"""The share-group configs Odradek checks as Kafka 4.4 does (broker/share/manager.py):
share.auto.offset.reset's by_duration:<ISO-8601 duration> and share.isolation.level.
The accepted and refused values are those the Kafka 4.4 peer answered."""

import pytest

from odradek.broker.share.manager import duration_ms, group_config_error

BOUNDS = {"group.share.min.record.lock.duration.ms": 15000, "group.share.max.record.lock.duration.ms": 60000}


@pytest.mark.parametrize(("text", "ms"), [
    ("PT1H", 3_600_000), ("P1D", 86_400_000), ("P1DT2H", 93_600_000), ("pt1h", 3_600_000), ("PT0S", 0),
    ("PT1.5S", 1500), ("-P-1D", 86_400_000), ("-PT1H", -3_600_000), ("PT-0.5S", -500), ("PT2M3,25S", 123_250),
    ("", None), ("1h", None), (" PT1H", None), ("P1Y", None), ("P1W", None), ("P", None), ("PT", None),
    ("P1DT", None), ("P99999999999999999999D", None)])
def test_iso_durations_as_java_parses_them(text, ms):
    assert duration_ms(text) == ms


@pytest.mark.parametrize("value", ["earliest", "latest", "by_duration:PT1H", "by_duration:P1D", "by_duration:PT0S",
                                   "by_duration:pt1h", "by_duration:-P-1D"])
def test_auto_offset_reset_values_kafka_accepts(value):
    assert group_config_error(BOUNDS, {"share.auto.offset.reset": value}) is None


@pytest.mark.parametrize("value", ["by_duration:", "by_duration:-PT1H", "by_duration:1h", "BY_DURATION:PT1H",
                                   "by_duration: PT1H", "by_duration:P1Y", "EARLIEST", "Latest", "sideways"])
def test_auto_offset_reset_values_kafka_refuses_in_its_words(value):
    assert group_config_error(BOUNDS, {"share.auto.offset.reset": value}) == (
        f"Invalid value {value} for configuration share.auto.offset.reset: Invalid value `{value}` for "
        "configuration share.auto.offset.reset. The value must be either 'earliest', 'latest' or of the "
        "format 'by_duration:<PnDTnHnMn.nS>'.")


def test_isolation_levels():
    assert group_config_error(BOUNDS, {"share.isolation.level": "read_committed"}) is None
    assert group_config_error(BOUNDS, {"share.isolation.level": "read_uncommitted"}) is None
    assert group_config_error(BOUNDS, {"share.isolation.level": "READ_COMMITTED"}) == (
        "Invalid value READ_COMMITTED for configuration share.isolation.level: "
        "String must be one of: read_committed, read_uncommitted")

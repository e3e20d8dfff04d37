"""The records of ``__share_group_state``: a snapshot's key and value read back as written,
and the coordinator key places a share partition as Kafka's does (group:topicId:partition)."""

import uuid

import pytest

from odradek.broker.groups.offsets_topic import RecordFormatError
from odradek.broker.share.coordinator import (
    ShareState,
    coordinator_key,
    parse_record_key,
    parse_record_value,
    record_key,
    record_value,
)


def test_a_snapshot_reads_back():
    topic_id = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    assert coordinator_key("g", topic_id, 3) == "g:1b4e28ba-2fa1-11d2-883f-0016d3cca427:3"
    assert parse_record_key(record_key("g", topic_id, 3)) == coordinator_key("g", topic_id, 3)
    state = ShareState(4, 10, ((10, 11, 2, 1), (12, 12, 0, 3)))
    assert parse_record_value(record_value(state)) == state


def test_unknown_versions_and_bad_values_are_refused():
    with pytest.raises(RecordFormatError):
        parse_record_key(b"\x00\x01\x00\x01g")
    with pytest.raises(RecordFormatError):
        parse_record_value(b"\x00\x00{}")
    with pytest.raises(RecordFormatError):
        parse_record_value(b"\x00\x07{}")

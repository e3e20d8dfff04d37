"""Our hand-written Produce response encoder produces exactly kafka-python's bytes,
for every served version, and clients decode it back to what we meant."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.protocol.producer import ProduceResponse as KafkaProduceResponse

from odradek.protocol.produce import (
    MAX_VERSION,
    MIN_VERSION,
    PartitionProduceResponse,
    ProduceResponse,
)

Topic = KafkaProduceResponse.TopicProduceResponse
Partition = Topic.PartitionProduceResponse

text = st.text(min_size=0, max_size=30)
partitions = st.builds(
    PartitionProduceResponse,
    index=st.integers(0, 2**31 - 1), error_code=st.sampled_from([0, 2, 6, 10, 19, 32, 56, 87]),
    base_offset=st.integers(-1, 2**62), log_append_time_ms=st.integers(-1, 2**45),
    log_start_offset=st.integers(-1, 2**62),
    record_errors=st.lists(st.tuples(st.integers(0, 1000), st.none() | text), max_size=3),
    error_message=st.none() | text,
)
responses = st.builds(
    ProduceResponse,
    responses=st.lists(st.tuples(st.text("abc-._", min_size=1, max_size=20),
                                 st.lists(partitions, max_size=3)), max_size=3),
    throttle_time_ms=st.integers(0, 2**31 - 1),
)


def kafka_python(ours: ProduceResponse) -> KafkaProduceResponse:
    return KafkaProduceResponse(throttle_time_ms=ours.throttle_time_ms, responses=[
        Topic(name=name, partition_responses=[
            Partition(index=p.index, error_code=p.error_code, base_offset=p.base_offset,
                      log_append_time_ms=p.log_append_time_ms, log_start_offset=p.log_start_offset,
                      record_errors=[Partition.BatchIndexAndErrorMessage(
                          batch_index=i, batch_index_error_message=m) for i, m in p.record_errors],
                      error_message=p.error_message)
            for p in parts])
        for name, parts in ours.responses])


@pytest.mark.parametrize("version", range(MIN_VERSION, MAX_VERSION + 1))
@settings(max_examples=150, deadline=None)
@given(response=responses)
def test_same_bytes_as_kafka_python(version, response):
    assert response.encode(version) == kafka_python(response).encode(version=version)


@pytest.mark.parametrize("version", [3, 8, 9, 11])
def test_decodes_to_what_we_meant(version):
    ours = ProduceResponse([("t", [PartitionProduceResponse(3, 0, 41, -1, 7),
                                   PartitionProduceResponse(4, 87, record_errors=[(0, "bad ts")],
                                                            error_message="bad ts")])], 5)
    decoded = KafkaProduceResponse.decode(ours.encode(version), version=version)
    (topic,) = decoded.responses
    ok, failed = topic.partition_responses
    assert (topic.name, ok.index, ok.base_offset, decoded.throttle_time_ms) == ("t", 3, 41, 5)
    assert (failed.index, failed.error_code) == (4, 87)
    if version >= 5:
        assert ok.log_start_offset == 7
    if version >= 8:
        assert failed.error_message == "bad ts"
        assert failed.record_errors[0].batch_index_error_message == "bad ts"


def test_versions_outside_the_served_range_are_refused():
    with pytest.raises(ValueError, match="v2"):
        ProduceResponse([]).encode(2)

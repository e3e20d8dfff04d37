"""A null where the schema allows none (array or string length -1, or 0 in a compact
encoding) is a decode error, as in Kafka: the connection closes.  kafka-python's codec
decodes it as None, and handlers that iterate a topic list or read a name then raised
(found by tests/integration/test_fuzz.py)."""

import pytest
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.producer import ProduceRequest

from odradek.protocol.api import DecodeError, decode_body

P = ProduceRequest


def produce(topic_data, version: int) -> bytes:
    return bytes(P(transactional_id=None, acks=1, timeout_ms=1000, topic_data=topic_data)
                 .encode(version=version))


@pytest.mark.parametrize("version", [3, 9])  # classic and compact (flexible) encodings
def test_null_nested_array_is_a_decode_error(version: int) -> None:
    body = produce([P.TopicProduceData(name="t", partition_data=None)], version)
    with pytest.raises(DecodeError, match="partition_data"):
        decode_body(P, version, memoryview(body))


@pytest.mark.parametrize("version", [4, 12, 16])
def test_null_top_level_array_is_a_decode_error(version: int) -> None:
    F = FetchRequest
    body = bytes(F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1, isolation_level=0,
                   session_id=0, session_epoch=-1, topics=None, forgotten_topics_data=[],
                   rack_id="").encode(version=version))
    with pytest.raises(DecodeError, match="topics"):
        decode_body(F, version, memoryview(body))


def test_null_non_nullable_string_is_a_decode_error() -> None:
    body = produce([P.TopicProduceData(name=None, partition_data=[])], 9)
    with pytest.raises(DecodeError, match="name"):
        decode_body(P, 9, memoryview(body))


def test_nulls_the_schema_allows_stay() -> None:
    # Metadata topics null means "all topics" (nullable from v1); transactional_id is nullable
    assert decode_body(MetadataRequest, 12, memoryview(bytes(
        MetadataRequest(topics=None, allow_auto_topic_creation=False,
                        include_topic_authorized_operations=False).encode(version=12)))).topics is None
    assert decode_body(P, 9, memoryview(produce([], 9))).transactional_id is None


def test_null_element_of_a_string_array_is_a_decode_error() -> None:
    """FindCoordinator v4+ with a null group id among its keys (found by the fuzzer: the
    coordinator hashed None)."""
    from kafka.protocol.metadata import FindCoordinatorRequest as FC

    body = bytes(FC(key_type=0, coordinator_keys=["g", None]).encode(version=6))
    with pytest.raises(DecodeError, match="coordinator_keys"):
        decode_body(FC, 6, memoryview(body))


def test_our_inter_node_requests_still_decode() -> None:
    """Raft and controller requests are JSON bodies of our own, not kafka-python schemas:
    the null check has no schema to walk for them (it raised AttributeError on every Raft
    message, so a three-node cluster never formed)."""
    from odradek.protocol.internode import ControllerRequest, RaftRequest, encode_body

    payload = {"op": "vote", "term": 1}
    for cls in (RaftRequest, ControllerRequest):
        assert decode_body(cls, 0, memoryview(encode_body(payload))) == payload

"""Our chunked Fetch response encoder produces exactly kafka-python's bytes, every version."""

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import FetchResponse

from odradek.protocol.fetch import FetchPartition, FetchTopic, encode_fetch_response


class FakeSlice:
    """Stands in for a storage file slice: only a size, bytes supplied separately."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)


def joined(chunks) -> bytes:
    return b"".join(c.data if isinstance(c, FakeSlice) else bytes(c) for c in chunks)


partitions = st.builds(
    FetchPartition,
    partition_index=st.integers(0, 1000), error_code=st.sampled_from([0, 1, 3, 6]),
    high_watermark=st.integers(-1, 2**40), last_stable_offset=st.integers(-1, 2**40),
    log_start_offset=st.integers(-1, 2**40),
    aborted_transactions=st.none() | st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
                                              max_size=2),
    preferred_read_replica=st.integers(-1, 5),
    records=st.lists(st.binary(min_size=1, max_size=50).map(FakeSlice), max_size=3),
    diverging_epoch=st.none() | st.tuples(st.integers(-1, 100), st.integers(-1, 2**40)),
    current_leader=st.none() | st.tuples(st.integers(-1, 5), st.integers(-1, 100)),
)
topics = st.builds(FetchTopic, topic=st.text("abc-._", min_size=1, max_size=20),
                   topic_id=st.uuids(), partitions=st.lists(partitions, max_size=3))


def reference(version, ts, throttle, error_code, session_id, endpoints):
    R = FetchResponse
    T = R.FetchableTopicResponse
    P = T.PartitionData
    resp = R(throttle_time_ms=throttle, error_code=error_code, session_id=session_id,
             responses=[T(topic=t.topic, topic_id=t.topic_id, partitions=[
                 P(partition_index=p.partition_index, error_code=p.error_code,
                   high_watermark=p.high_watermark, last_stable_offset=p.last_stable_offset,
                   log_start_offset=p.log_start_offset,
                   aborted_transactions=None if p.aborted_transactions is None else [
                       P.AbortedTransaction(producer_id=a, first_offset=b) for a, b in p.aborted_transactions],
                   preferred_read_replica=p.preferred_read_replica,
                   records=b"".join(s.data for s in p.records),
                   **({"diverging_epoch": P.EpochEndOffset(epoch=p.diverging_epoch[0],
                                                           end_offset=p.diverging_epoch[1])}
                      if p.diverging_epoch and version >= 12 else {}),
                   **({"current_leader": P.LeaderIdAndEpoch(leader_id=p.current_leader[0],
                                                            leader_epoch=p.current_leader[1])}
                      if p.current_leader and version >= 12 else {}))
                 for p in t.partitions]) for t in ts],
             **({"node_endpoints": [R.NodeEndpoint(node_id=n, host=h, port=pt, rack=r)
                                    for n, h, pt, r in endpoints]} if endpoints and version >= 16 else {}))
    return bytes(resp.encode(version=version))


@settings(max_examples=300, deadline=None)
@given(version=st.integers(4, 18), ts=st.lists(topics, max_size=3), throttle=st.integers(0, 1000),
       error_code=st.sampled_from([0, 70]), session_id=st.integers(0, 2**31 - 1),
       endpoints=st.lists(st.tuples(st.integers(0, 5), st.just("h"), st.integers(1, 65535),
                                    st.none() | st.just("r")), max_size=2))
def test_matches_kafka_python(version, ts, throttle, error_code, session_id, endpoints):
    if version < 13:
        for t in ts:  # names only exist up to v12, ids from v13
            t.topic_id = uuid.UUID(int=0)
    if version < 7:
        error_code, session_id = 0, 0
    ours = encode_fetch_response(version, ts, throttle_time_ms=throttle, error_code=error_code,
                                 session_id=session_id, node_endpoints=endpoints)
    assert joined(ours) == reference(version, ts, throttle, error_code, session_id, endpoints)


def test_record_slices_are_not_copied():
    piece = FakeSlice(b"x" * 100)
    chunks = encode_fetch_response(16, [FetchTopic("t", uuid.uuid4(), [FetchPartition(0, records=[piece])])])
    assert any(c is piece for c in chunks)


def test_unsupported_version():
    with pytest.raises(ValueError):
        encode_fetch_response(3, [])

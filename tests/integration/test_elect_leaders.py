"""ElectLeaders (key 43) on one node: Kafka's per-partition error codes over a real socket.

A one-node cluster has only preferred leaders, so every election is ELECTION_NOT_NEEDED;
the elections that move leadership are in tests/cluster/test_elect_leaders.py."""

from kafka.protocol.admin import (
    CreateTopicsRequest,
    CreateTopicsResponse,
    ElectLeadersRequest,
    ElectLeadersResponse,
)

from odradek.protocol.errors import ErrorCode
from tests.rawclient import RawConnection

E = ElectLeadersRequest


def elect(conn, election_type: int, topic_partitions, version: int = 2):
    request = E(election_type=election_type, timeout_ms=5000,
                topic_partitions=None if topic_partitions is None else
                [E.TopicPartitions(topic=t, partitions=ps) for t, ps in topic_partitions])
    response = conn.roundtrip(request, version, ElectLeadersResponse)
    return response.error_code, {(r.topic, p.partition_id): p.error_code
                                 for r in response.replica_election_results for p in r.partition_result}


def test_elect_leaders_answers_kafkas_error_codes(broker):
    C = CreateTopicsRequest
    with RawConnection(broker.bootstrap, timeout=10) as conn:
        created = conn.roundtrip(C(topics=[C.CreatableTopic(name="el", num_partitions=2, replication_factor=1,
                                                            assignments=[], configs=[])],
                                   timeout_ms=5000, validate_only=False), 5, CreateTopicsResponse)
        assert created.topics[0].error_code == ErrorCode.NONE
        top, results = elect(conn, 0, [("el", [0, 1, 7]), ("nope", [0])])
        assert top == ErrorCode.NONE
        assert results == {("el", 0): ErrorCode.ELECTION_NOT_NEEDED, ("el", 1): ErrorCode.ELECTION_NOT_NEEDED,
                           ("el", 7): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                           ("nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        # A partition named twice, even in two entries of its topic, is refused.
        _, results = elect(conn, 1, [("el", [0, 0]), ("el", [1])])
        assert results == {("el", 0): ErrorCode.INVALID_REQUEST, ("el", 1): ErrorCode.ELECTION_NOT_NEEDED}
        # All partitions: those that need no election are left out of the answer (Kafka's way).
        top, results = elect(conn, 0, None)
        assert (top, results) == (ErrorCode.NONE, {})
        _, results = elect(conn, 0, [("el", [0])], version=0)  # v0: no election type, preferred
        assert results == {("el", 0): ErrorCode.ELECTION_NOT_NEEDED}

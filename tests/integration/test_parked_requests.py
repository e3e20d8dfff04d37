"""A request that parks on its connection does not hold back the responses made before
it (broker/server.py, ``Connection._send``): Kafka sends each response before it reads
the next request."""

import time

from kafka.protocol.consumer.group import (
    JoinGroupRequest,
    JoinGroupResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from tests.clients import create_topics
from tests.rawclient import RawConnection

F = OffsetFetchRequest
J = JoinGroupRequest


def test_an_offset_fetch_answer_is_not_held_behind_a_join_group(broker):
    """As librdkafka did in chaos run follower-paused seed 6: committed() sent OffsetFetch,
    then the consumer's JoinGroup followed on the same coordinator connection. The
    OffsetFetch was answered at once but its response waited in the connection's buffer
    until the rebalance completed, and arrived after other clients had read a newer
    committed offset. Here the JoinGroup parks for group.initial.rebalance.delay.ms (3 s)."""
    create_topics(broker.bootstrap, ["t"])
    fetch = F(group_id="parked", topics=[F.OffsetFetchRequestTopic(name="t", partition_indexes=[0])],
              require_stable=False)
    join = J(group_id="parked", session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="",
             group_instance_id=None, protocol_type="consumer",
             protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"")], reason=None)
    with RawConnection(broker.bootstrap) as conn:
        deadline = time.monotonic() + 20
        while (conn.roundtrip(FindCoordinatorRequest(key="parked", key_type=0), 3,
                              FindCoordinatorResponse).error_code
               or conn.roundtrip(fetch, 7, OffsetFetchResponse).error_code):
            assert time.monotonic() < deadline, "no coordinator for the group"
            time.sleep(0.1)
        conn.sock.sendall(conn.frame(fetch, 7) + conn.frame(join, 3))  # queued together
        started = time.monotonic()
        assert conn.receive(OffsetFetchResponse, 7).error_code == 0
        answered = time.monotonic() - started
        joined = conn.receive(JoinGroupResponse, 3)
        parked = time.monotonic() - started
    assert joined.error_code == 0 and parked > 2
    assert answered < 1.5, f"the OffsetFetch answer waited {answered:.1f} s for the JoinGroup"

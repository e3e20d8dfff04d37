"""Produce requests pipelined on one connection: while one waits (acks=-1 for its
flush or the ISR), the next Produce on the connection is appended, and the responses
still leave in request order (broker/server.py, Deferred)."""

import struct

import pytest
from kafka.protocol.producer import ProduceResponse

from odradek.protocol.records import build_batch
from odradek.storage import FaultyIO
from tests.clients import create_topics
from tests.rawclient import RawConnection, produce_request, recv_frame
from tests.threaded_broker import ThreadedBroker

FSYNC_DELAY_S = 0.3
VERSION = 9


@pytest.fixture
def broker_with_slow_fsync(tmp_path):
    b = ThreadedBroker(tmp_path / "data").start()
    io = FaultyIO()
    io.fsync_delay = FSYNC_DELAY_S
    b.broker.replicas.log_manager.io = io  # logs created from now on use it
    try:
        yield b, io
    finally:
        b.stop()


def test_pipelined_produces_share_a_flush_and_answer_in_order(broker_with_slow_fsync):
    broker, io = broker_with_slow_fsync
    create_topics(broker.bootstrap, ["piped"], config={"flush.messages": "1"})
    acks = [-1, 1, -1, -1, 1, -1]
    with RawConnection(broker.bootstrap) as conn:
        sent = [conn.send(produce_request("piped", {0: build_batch([(None, b"v%d" % i, (), 0)])},
                                          acks=a), VERSION)
                for i, a in enumerate(acks)]
        frames = [recv_frame(conn.sock) for _ in acks]
    correlation_ids = [struct.unpack_from(">i", f)[0] for f in frames]
    assert correlation_ids == sent  # in request order, although they completed together
    offsets = []
    for frame in frames:
        (topic,) = ProduceResponse.decode(frame[5:], version=VERSION).responses
        (partition,) = topic.partition_responses
        assert partition.error_code == 0, partition
        offsets.append(partition.base_offset)
    assert offsets == list(range(len(acks)))  # appended in request order
    # Served one at a time, each append would wait for its own fsync: one per request.
    # Pipelined, the appends behind the first share the next group commit.
    assert io.fsync_calls < len(acks), io.fsync_calls

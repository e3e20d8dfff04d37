"""The Produce handler's answer for partitions that wait (acks=-1), without a broker."""

import asyncio

from odradek.broker.handlers.produce import _when_durable
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.produce import PartitionProduceResponse, ProduceResponse


async def test_a_produce_that_fails_while_waiting_answers_without_offsets():
    """Kafka answers a failed partition with base offset -1 (and no log append time or log
    start offset), though its batch was appended before the wait failed: an offset next to
    an error would name a position that the new leader may fill with other records."""
    async def moved():
        raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER, "Leadership of t-0 moved")

    async def never():
        await asyncio.Event().wait()

    failed = PartitionProduceResponse(0, ErrorCode.NONE, 41, 1234, 7)
    timed_out = PartitionProduceResponse(1, ErrorCode.NONE, 42, 1235, 7)
    await _when_durable(ProduceResponse([("t", [failed, timed_out])]),
                        [(failed, moved()), (timed_out, never())], timeout_ms=50)
    assert failed.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert timed_out.error_code == ErrorCode.REQUEST_TIMED_OUT
    for p in (failed, timed_out):
        assert (p.base_offset, p.log_append_time_ms, p.log_start_offset) == (-1, -1, -1)

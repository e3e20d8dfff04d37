"""The Fetch response body (v4-v18; v17 and v18 are v16 again), encoded as chunks so record bytes stay on disk.

kafka-python's codec would need the records as a Python bytes object. Here the
body is a list of chunks: ``bytes`` for everything we encode, and the caller's
record slices (any object with a ``size``, e.g. a storage file slice) placed
as-is, so the server can ``os.sendfile`` them from the segment file to the socket.

Layout (flexible versions, v12+, use compact arrays/strings/bytes: unsigned
varint of length+1, and end every struct with a tagged-field section)::

    throttle_time_ms int32 | error_code int16 (v7+) | session_id int32 (v7+)
    responses: [ topic string (v4-12) | topic_id uuid (v13+)
                 partitions: [ partition_index int32 | error_code int16 | high_watermark int64
                               last_stable_offset int64 | log_start_offset int64 (v5+)
                               aborted_transactions nullable [producer_id int64, first_offset int64]
                               preferred_read_replica int32 (v11+)
                               records nullable bytes
                               (v12+ tags: 0 diverging_epoch, 1 current_leader) ] ]
    (v16+ tag 0: node_endpoints [node_id int32, host string, port int32, rack nullable string])
"""

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from odradek.protocol.body import I16, I32, I64, BodyWriter

_PARTITION_HEAD = struct.Struct(">ihqq")  # partition_index, error_code, high_watermark, lso


@dataclass(slots=True)
class FetchPartition:
    partition_index: int
    error_code: int = 0
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    aborted_transactions: list[tuple[int, int]] | None = None  # None: not read_committed
    preferred_read_replica: int = -1
    records: Sequence = ()  # chunks: bytes-like or objects with .size; empty: no records
    diverging_epoch: tuple[int, int] | None = None  # (epoch, end_offset) for a follower
    current_leader: tuple[int, int] | None = None  # (leader_id, leader_epoch)


@dataclass(slots=True)
class FetchTopic:
    topic: str
    topic_id: uuid.UUID
    partitions: list[FetchPartition] = field(default_factory=list)


def encode_fetch_response(version: int, topics: list[FetchTopic], *, throttle_time_ms: int = 0,
                          error_code: int = 0, session_id: int = 0,
                          node_endpoints: Sequence[tuple[int, str, int, str | None]] = ()) -> list:
    """The body of a FetchResponse at ``version`` (4-18) as a list of chunks."""
    if not 4 <= version <= 18:
        raise ValueError(f"FetchResponse v{version} is not encoded here")
    flexible = version >= 12
    w = BodyWriter(flexible)
    w.buf += I32.pack(throttle_time_ms)
    if version >= 7:
        w.buf += I16.pack(error_code) + I32.pack(session_id)
    w.array_len(len(topics))
    for t in topics:
        if version >= 13:
            w.buf += t.topic_id.bytes
        else:
            w.string(t.topic)
        w.array_len(len(t.partitions))
        for p in t.partitions:
            w.buf += _PARTITION_HEAD.pack(p.partition_index, p.error_code, p.high_watermark,
                                          p.last_stable_offset)
            if version >= 5:
                w.buf += I64.pack(p.log_start_offset)
            aborted = p.aborted_transactions
            w.array_len(None if aborted is None else len(aborted))
            for producer_id, first_offset in aborted or ():
                w.buf += I64.pack(producer_id) + I64.pack(first_offset)
                w.tags()
            if version >= 11:
                w.buf += I32.pack(p.preferred_read_replica)
            w.records(p.records)
            tagged = []
            if p.diverging_epoch is not None:
                epoch, end_offset = p.diverging_epoch
                tagged.append((0, I32.pack(epoch) + I64.pack(end_offset) + b"\x00"))
            if p.current_leader is not None:
                leader_id, leader_epoch = p.current_leader
                tagged.append((1, I32.pack(leader_id) + I32.pack(leader_epoch) + b"\x00"))
            w.tags(tagged)
        w.tags()
    tagged = []
    if version >= 16 and node_endpoints:
        inner = BodyWriter(True)
        inner.array_len(len(node_endpoints))
        for node_id, host, port, rack in node_endpoints:
            inner.buf += I32.pack(node_id)
            inner.string(host)
            inner.buf += I32.pack(port)
            inner.string(rack)
            inner.tags()
        tagged.append((0, bytes(inner.buf)))
    w.tags(tagged)
    return w.finish()

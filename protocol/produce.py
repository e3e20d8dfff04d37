"""The Produce response body (v3-v12), encoded by hand.

Produce is the request a broker answers most often: a producer with linger.ms=0 sends
one per record. Building kafka-python's response objects and running its generic
encoder cost about 25 us per response (v9+), more than appending the batch; this
encoder costs a few. tests/unit/test_produce_encoding.py checks it byte for byte against
kafka-python's codec over random responses.

Layout (flexible versions, v9+, use compact arrays/strings and end every struct
with a tagged-field section; see protocol.body)::

    responses: [ name string
                 partition_responses: [ index int32 | error_code int16 | base_offset int64
                                        log_append_time_ms int64 | log_start_offset int64 (v5+)
                                        record_errors [batch_index int32,
                                                       batch_index_error_message nullable string] (v8+)
                                        error_message nullable string (v8+) ] ]
    throttle_time_ms int32

The v10+ tagged fields current_leader and node_endpoints (KIP-951) are optional and
not sent: clients fall back to a Metadata request.
"""

import struct
from dataclasses import dataclass, field

from odradek.protocol.body import I32, BodyWriter

_PARTITION_HEAD = struct.Struct(">ihqq")  # index, error_code, base_offset, log_append_time_ms
_PARTITION_HEAD_V5 = struct.Struct(">ihqqq")  # ... and log_start_offset
MIN_VERSION, MAX_VERSION = 3, 12  # v12 is v11 (KIP-890 part 2 changes the broker only)


@dataclass(slots=True)
class PartitionProduceResponse:
    index: int
    error_code: int = 0
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    record_errors: list[tuple[int, str | None]] = field(default_factory=list)  # (batch_index, message)
    error_message: str | None = None


@dataclass(slots=True)
class ProduceResponse:
    """``responses``: (topic name, its partitions' responses) in request order.
    ``encode`` makes it a drop-in for a kafka-python response in the server."""

    responses: list[tuple[str, list[PartitionProduceResponse]]]
    throttle_time_ms: int = 0

    def encode(self, version: int) -> bytes:
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise ValueError(f"ProduceResponse v{version} is not encoded here")
        w = BodyWriter(flexible=version >= 9)
        w.array_len(len(self.responses))
        for name, partitions in self.responses:
            w.string(name)
            w.array_len(len(partitions))
            for p in partitions:
                if version >= 5:
                    w.buf += _PARTITION_HEAD_V5.pack(p.index, p.error_code, p.base_offset,
                                                     p.log_append_time_ms, p.log_start_offset)
                else:
                    w.buf += _PARTITION_HEAD.pack(p.index, p.error_code, p.base_offset,
                                                  p.log_append_time_ms)
                if version >= 8:
                    w.array_len(len(p.record_errors))
                    for batch_index, message in p.record_errors:
                        w.buf += I32.pack(batch_index)
                        w.string(message)
                        w.tags()
                    w.string(p.error_message)
                w.tags()
            w.tags()
        w.buf += I32.pack(self.throttle_time_ms)
        w.tags()
        return bytes(w.buf)

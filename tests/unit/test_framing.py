"""The sans-IO frame decoder: any split of a byte stream yields the same frames."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.protocol.framing import FrameDecoder, FrameError


def framed(payloads):
    return b"".join(struct.pack(">i", len(p)) + p for p in payloads)


@given(payloads=st.lists(st.binary(max_size=200), max_size=10), cuts=st.lists(st.integers(0, 3000)),
       stage=st.sampled_from([8, 16, 64, 1024]))
def test_any_split_yields_the_same_frames(payloads, cuts, stage):
    """Small stages force the compaction and own-buffer paths for larger frames."""
    stream = framed(payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder(max_frame=1000, stage_bytes=stage)
    frames = []
    for a, b in zip(points, points[1:], strict=False):
        frames += [bytes(f) for f in decoder.feed(stream[a:b])]
    assert frames == payloads
    assert decoder.buffered == 0


@pytest.mark.parametrize("size", [-1, -2**31, 1001])
def test_bad_size_is_refused_before_buffering(size):
    decoder = FrameDecoder(max_frame=1000)
    with pytest.raises(FrameError, match="socket.request.max.bytes"):
        decoder.feed(struct.pack(">i", size))


def test_frame_at_the_limit_is_accepted():
    decoder = FrameDecoder(max_frame=1000)
    assert [bytes(f) for f in decoder.feed(framed([b"x" * 1000]))] == [b"x" * 1000]


def test_large_frame_is_filled_in_place_through_the_buffer_interface():
    from odradek.protocol.framing import STAGE_BYTES
    payload = bytes(range(256)) * (STAGE_BYTES // 64)  # four times the staging buffer
    stream = framed([b"small", payload, b"after"])
    decoder = FrameDecoder(max_frame=10 * STAGE_BYTES)
    frames, pos = [], 0
    while pos < len(stream):
        buf = decoder.get_buffer()
        n = min(len(buf), 7000, len(stream) - pos)
        buf[:n] = stream[pos:pos + n]
        pos += n
        frames += decoder.buffer_updated(n)
    assert [bytes(f) for f in frames] == [b"small", payload, b"after"]

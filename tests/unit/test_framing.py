"""The sans-IO frame decoder: any split of a byte stream yields the same frames."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.protocol.framing import FrameDecoder, FrameError


def framed(payloads):
    return b"".join(struct.pack(">i", len(p)) + p for p in payloads)


@given(payloads=st.lists(st.binary(max_size=200), max_size=10), cuts=st.lists(st.integers(0, 3000)))
def test_any_split_yields_the_same_frames(payloads, cuts):
    """Cuts inside the size field and inside payloads take the partial-frame paths."""
    stream = framed(payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder(max_frame=1000)
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


def test_large_frame_arrives_through_the_buffer_interface():
    from odradek.protocol.framing import SCRATCH_BYTES
    payload = bytes(range(256)) * (SCRATCH_BYTES // 64)  # four times the scratch buffer
    stream = framed([b"small", payload, b"after"])
    decoder = FrameDecoder(max_frame=10 * SCRATCH_BYTES)
    frames, pos = [], 0
    while pos < len(stream):
        buf = decoder.get_buffer()
        n = min(len(buf), 7000, len(stream) - pos)
        buf[:n] = stream[pos:pos + n]
        pos += n
        frames += decoder.buffer_updated(n)
    assert [bytes(f) for f in frames] == [b"small", payload, b"after"]


def _traced_bytes(make) -> int:
    """Bytes still allocated after ``make()``, whose result is kept alive meanwhile."""
    import tracemalloc
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = make()  # noqa: F841  (alive while measured)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_idle_decoders_hold_no_receive_buffer():
    """Issue 16: each connection had a 256 KiB staging buffer; idle ones must cost little."""
    assert _traced_bytes(lambda: [FrameDecoder() for _ in range(100)]) < 100 * 1024


def test_declared_size_is_not_allocated_up_front():
    """Issue 16: 1,000 peers declaring 50 MiB and sending 4 bytes of it drove RSS to 7.9 GB."""
    def declare():
        decoders = [FrameDecoder() for _ in range(20)]
        for d in decoders:
            assert d.feed(struct.pack(">i", 50 * 2**20) + b"abcd") == []
            assert d.buffered == 8
        return decoders
    assert _traced_bytes(declare) < 20 * 16 * 1024


def test_a_partial_frame_grows_with_what_arrives():
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">i", 50 * 2**20))
    for _ in range(10):
        decoder.feed(b"x" * 1000)
    assert decoder.buffered == 4 + 10_000
    size = _traced_bytes(lambda: decoder.feed(b"y" * 100_000))
    assert size < 2 * 2**20  # what arrived and some slack, never the 50 MiB declared


def test_missing_counts_what_the_incomplete_frame_still_needs():
    decoder = FrameDecoder()
    assert decoder.missing == 0
    decoder.feed(b"\x00\x00")
    assert decoder.missing == 2
    decoder.feed(b"\x00\x0a" + b"x" * 3)
    assert decoder.missing == 7
    decoder.feed(b"x" * 7)
    assert decoder.missing == 0

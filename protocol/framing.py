"""Sans-IO framing of the Kafka wire protocol.

Every request and response is a frame::

    +----------------+---------------------------+
    | size: int32 BE | size bytes of payload     |
    +----------------+---------------------------+

Memory grows with the bytes that arrived, never with the size a peer declares, and
an idle connection holds no receive buffer: the kernel copies received bytes into
one scratch buffer per thread, shared by every decoder (a buffered protocol's
``get_buffer`` and ``buffer_updated`` run back to back on the event loop's thread,
so no other connection touches it in between). Whole frames are copied out of it;
only an incomplete frame is kept, in a bytearray of its own that grows as its bytes
arrive and is handed out in place once complete. A peer that declares a 50 MiB frame
and sends 4 bytes of it costs 4 bytes. A size above ``max_frame`` (Kafka's
``socket.request.max.bytes``) or below 0 is refused before anything of it is kept.
"""

import struct
import threading

MAX_FRAME = 100 * 2**20  # socket.request.max.bytes default (100 MiB)
SCRATCH_BYTES = 256 * 2**10  # one recv at most; shared by the decoders of a thread

_SIZE = struct.Struct(">i")
_local = threading.local()


def _scratch() -> bytearray:
    try:
        return _local.scratch
    except AttributeError:
        _local.scratch = bytearray(SCRATCH_BYTES)
        return _local.scratch


class FrameError(Exception):
    """The peer sent a size that no valid frame has; the connection must close."""


class FrameDecoder:
    """Assembles frames from a byte stream; yields each payload (without its size)."""

    __slots__ = ("max_frame", "_partial")

    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        # An incomplete frame: its size field (maybe not all 4 bytes yet), then its payload so far.
        self._partial = bytearray()

    def get_buffer(self) -> bytearray:
        """Where the next received bytes should be written (valid until ``buffer_updated``)."""
        return _scratch()

    def buffer_updated(self, nbytes: int) -> list:
        """``nbytes`` were written into the buffer; return the frames completed.

        Raises FrameError on a negative or oversized frame size.
        """
        return self._consume(memoryview(_scratch())[:nbytes])

    def feed(self, data: bytes) -> list:
        """The same for callers that have bytes (no scratch buffer involved)."""
        return self._consume(memoryview(data))

    def _check(self, size: int) -> int:
        if size < 0 or size > self.max_frame:
            raise FrameError(f"frame size {size} outside 0..{self.max_frame} (socket.request.max.bytes)")
        return size

    def _consume(self, view: memoryview) -> list:
        frames: list[bytes | memoryview] = []
        pos, end = 0, len(view)
        partial = self._partial
        if partial:
            if len(partial) < 4:
                take = min(4 - len(partial), end)
                partial += view[:take]
                pos = take
                if len(partial) < 4:
                    return frames
            size = self._check(_SIZE.unpack_from(partial)[0])
            take = min(4 + size - len(partial), end - pos)
            partial += view[pos:pos + take]
            pos += take
            if len(partial) < 4 + size:
                return frames
            frames.append(memoryview(partial)[4:])
            self._partial = bytearray()
        while end - pos >= 4:
            size = self._check(_SIZE.unpack_from(view, pos)[0])
            if end - pos - 4 < size:
                break
            frames.append(bytes(view[pos + 4:pos + 4 + size]))
            pos += 4 + size
        if pos < end:
            self._partial = bytearray(view[pos:end])
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held (its size field included)."""
        return len(self._partial)

    @property
    def missing(self) -> int:
        """Bytes still to arrive before the incomplete frame is whole (0: none is)."""
        have = len(self._partial)
        if not have:
            return 0
        if have < 4:
            return 4 - have
        return 4 + _SIZE.unpack_from(self._partial)[0] - have

"""Sans-IO framing of the Kafka wire protocol.

Every request and response is a frame::

    +----------------+---------------------------+
    | size: int32 BE | size bytes of payload     |
    +----------------+---------------------------+

The decoder is fed whatever bytes the socket delivered and yields whole frames.
It refuses a size above ``max_frame`` (Kafka's ``socket.request.max.bytes``) or
below 0 *before* buffering the payload, so a hostile size never allocates.
"""

import struct

MAX_FRAME = 100 * 2**20  # socket.request.max.bytes default (100 MiB)

_SIZE = struct.Struct(">i")


class FrameError(Exception):
    """The peer sent a size that no valid frame has; the connection must close."""


class FrameDecoder:
    """Accumulates bytes and yields complete frame payloads (without the size prefix)."""

    __slots__ = ("max_frame", "_buf", "_need")

    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need = -1  # payload size of the frame being assembled, -1 while reading the size

    def feed(self, data: bytes) -> list[memoryview]:
        """Add ``data`` and return the frames it completed, in order.

        Raises FrameError on a negative or oversized frame size.
        """
        buf = self._buf
        buf += data
        frames = []
        pos = 0
        end = len(buf)
        while True:
            if self._need < 0:
                if end - pos < 4:
                    break
                (size,) = _SIZE.unpack_from(buf, pos)
                if size < 0 or size > self.max_frame:
                    raise FrameError(f"frame size {size} outside 0..{self.max_frame} (socket.request.max.bytes)")
                self._need = size
                pos += 4
            if end - pos < self._need:
                break
            # bytes() copies out of the shared buffer, which is compacted below.
            frames.append(memoryview(bytes(buf[pos:pos + self._need])))
            pos += self._need
            self._need = -1
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buf)


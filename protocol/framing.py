"""Sans-IO framing of the Kafka wire protocol.

Every request and response is a frame::

    +----------------+---------------------------+
    | size: int32 BE | size bytes of payload     |
    +----------------+---------------------------+

The decoder owns the receive buffers, so a buffered protocol lets the kernel copy
bytes straight into them (``get_buffer`` / ``buffer_updated``): small frames are
assembled in a fixed staging buffer and copied out once; a frame larger than the
staging buffer gets a buffer of exactly its size, filled in place and handed out
without another copy. A size above ``max_frame`` (Kafka's
``socket.request.max.bytes``) or below 0 is refused *before* anything is
allocated for it.
"""

import struct

MAX_FRAME = 100 * 2**20  # socket.request.max.bytes default (100 MiB)
STAGE_BYTES = 256 * 2**10  # frames up to this size are assembled in the staging buffer

_SIZE = struct.Struct(">i")


class FrameError(Exception):
    """The peer sent a size that no valid frame has; the connection must close."""


class FrameDecoder:
    """Assembles frames from a byte stream; yields each payload (without its size)."""

    __slots__ = ("max_frame", "_stage", "_start", "_end", "_big", "_big_filled")

    def __init__(self, max_frame: int = MAX_FRAME, stage_bytes: int = STAGE_BYTES):
        self.max_frame = max_frame
        self._stage = bytearray(stage_bytes)
        self._start = 0  # unconsumed bytes are _stage[_start:_end]
        self._end = 0
        self._big: bytearray | None = None  # a large frame being filled in place
        self._big_filled = 0

    def get_buffer(self) -> memoryview:
        """Where the next received bytes should be written."""
        if self._big is not None:
            return memoryview(self._big)[self._big_filled:]
        if self._end == len(self._stage):
            self._compact()
        return memoryview(self._stage)[self._end:]

    def buffer_updated(self, nbytes: int) -> list:
        """``nbytes`` were written into the last buffer; return the frames completed.

        Raises FrameError on a negative or oversized frame size.
        """
        if self._big is not None:
            self._big_filled += nbytes
            if self._big_filled < len(self._big):
                return []
            frame, self._big = memoryview(self._big), None
            return [frame]
        self._end += nbytes
        frames = []
        stage = self._stage
        while self._end - self._start >= 4:
            (size,) = _SIZE.unpack_from(stage, self._start)
            if size < 0 or size > self.max_frame:
                raise FrameError(f"frame size {size} outside 0..{self.max_frame} (socket.request.max.bytes)")
            begin = self._start + 4
            if self._end - begin >= size:
                frames.append(bytes(memoryview(stage)[begin:begin + size]))
                self._start = begin + size
                continue
            if size + 4 > len(stage):
                # Too big to stage: give it its own buffer, seeded with what has arrived.
                have = self._end - begin
                self._big = bytearray(size)
                self._big[:have] = memoryview(stage)[begin:self._end]
                self._big_filled = have
                self._start = self._end = 0
            elif size + 4 > len(stage) - self._start:
                self._compact()
            break
        if self._start == self._end:
            self._start = self._end = 0
        return frames

    def _compact(self) -> None:
        pending = self._end - self._start
        self._stage[:pending] = self._stage[self._start:self._end]
        self._start, self._end = 0, pending

    def feed(self, data: bytes) -> list:
        """Push ``data`` through the buffer interface (for callers that get bytes)."""
        frames = []
        view, done = memoryview(data), 0
        while done < len(view):
            buf = self.get_buffer()
            n = min(len(buf), len(view) - done)
            buf[:n] = view[done:done + n]
            done += n
            frames += self.buffer_updated(n)
        return frames

    @property
    def buffered(self) -> int:
        return (self._end - self._start) + (self._big_filled if self._big is not None else 0)

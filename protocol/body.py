"""Primitives for the response bodies we encode by hand (Fetch, Produce), where
kafka-python's generic codec costs too much per request or would need the records
as Python bytes.

Non-flexible versions use int32 array lengths and int16 string lengths (-1: null);
flexible versions use compact forms (unsigned varint of length + 1, 0: null) and end
every struct with a tagged-field section (a varint count, then tag, size, bytes).
"""

import struct
from collections.abc import Sequence

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]  # most lengths and counts: no loop


def uvarint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _chunk_size(chunk) -> int:
    return len(chunk) if isinstance(chunk, (bytes, bytearray, memoryview)) else chunk.size


class BodyWriter:
    """Accumulates encoded bytes; record chunks (file slices) are spliced in between."""

    def __init__(self, flexible: bool):
        self.flexible = flexible
        self.chunks: list = []
        self.buf = bytearray()

    def array_len(self, n: int | None) -> None:
        if self.flexible:
            self.buf += uvarint(0 if n is None else n + 1)
        else:
            self.buf += I32.pack(-1 if n is None else n)

    def string(self, s: str | None) -> None:
        data = None if s is None else s.encode()
        if self.flexible:
            self.buf += uvarint(0 if data is None else len(data) + 1)
        else:
            self.buf += I16.pack(-1 if data is None else len(data))
        if data:
            self.buf += data

    def records(self, chunks: Sequence) -> None:
        size = sum(_chunk_size(c) for c in chunks)
        if self.flexible:
            self.buf += uvarint(size + 1)
        else:
            self.buf += I32.pack(size)
        if size:
            self.chunks.append(bytes(self.buf))
            self.buf = bytearray()
            self.chunks.extend(chunks)

    def tags(self, tagged: Sequence[tuple[int, bytes]] = ()) -> None:
        if self.flexible:
            if not tagged:
                self.buf += b"\x00"
                return
            self.buf += uvarint(len(tagged))
            for tag, payload in tagged:
                self.buf += uvarint(tag) + uvarint(len(payload)) + payload

    def finish(self) -> list:
        if self.buf:
            self.chunks.append(bytes(self.buf))
        return self.chunks

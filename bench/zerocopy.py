"""Fetch's zero-copy choice, measured: os.sendfile vs an mmap'd memoryview through
the transport.

A uvloop server answers each 4-byte request from a client thread with one frame:
a 4-byte size and FRAME_BYTES of a segment-like file, as FETCH_SLICE_BYTES slices
(one per partition of a Fetch response). Two ways to send the slices:

- ``sendfile``: broker/server.py's path. Wait until the transport's buffer is
  empty, then os.sendfile each slice from the file to the socket, waiting for
  writability when the socket is full. Record bytes never enter Python.
- ``mmap``: ``transport.write(mm[position:position + size])`` of a memoryview of
  the mmap'd file. uvloop writes what the socket takes at once and copies the
  rest into its own buffer, so under load most bytes are copied once in user space.

The client drains with recv_into on a blocking socket. Both run ROUNDS alternating
rounds and keep their best (the machine is shared). The file is in the page cache,
as the tail of a log being consumed is.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvloop

FILE_BYTES = 64 * 2**20
FETCH_SLICE_BYTES = 2**20  # max.partition.fetch.bytes
FRAME_BYTES = 16 * 2**20  # fetch.max.bytes-like: 16 slices per response
REQUESTS = 48  # frames per round: 768 MiB
ROUNDS = 3
REPO = Path(__file__).resolve().parent.parent


class _Server(asyncio.BufferedProtocol):
    def __init__(self, mode: str, fd: int, mm: mmap.mmap) -> None:
        self.mode, self.fd, self.mm = mode, fd, mm
        self.buf = bytearray(4)
        self.position = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.sock_fd = transport.get_extra_info("socket").fileno()
        self.writer_fd = os.dup(self.sock_fd)  # uvloop refuses add_writer on a transport's fd

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buf)

    def buffer_updated(self, nbytes: int) -> None:
        asyncio.ensure_future(self.respond())

    def connection_lost(self, exc) -> None:
        os.close(self.writer_fd)

    def _slices(self):
        for _ in range(FRAME_BYTES // FETCH_SLICE_BYTES):
            if self.position + FETCH_SLICE_BYTES > FILE_BYTES:
                self.position = 0
            yield self.position, FETCH_SLICE_BYTES
            self.position += FETCH_SLICE_BYTES

    async def respond(self) -> None:
        head = FRAME_BYTES.to_bytes(4, "big")
        if self.mode == "mmap":
            self.transport.write(head)
            for position, size in self._slices():
                self.transport.write(self.mm[position : position + size])
            return
        while self.transport.get_write_buffer_size():
            await self._writable()
        os.write(self.sock_fd, head)  # 4 bytes into an empty socket buffer
        for position, size in self._slices():
            sent = 0
            while sent < size:
                try:
                    sent += os.sendfile(self.sock_fd, self.fd, position + sent, size - sent)
                except BlockingIOError:
                    await self._writable()

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.add_writer(self.writer_fd, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            loop.remove_writer(self.writer_fd)


def _client(port: int, result: list[float]) -> None:
    buf = bytearray(2**20)
    view = memoryview(buf)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.perf_counter()
        for _ in range(REQUESTS):
            sock.sendall(b"go!!")
            remaining = FRAME_BYTES + 4
            while remaining:
                n = sock.recv_into(view[: min(remaining, len(buf))])
                if not n:
                    raise ConnectionError("server closed")
                remaining -= n
        result.append(time.perf_counter() - start)


def _round(mode: str, fd: int, mm: mmap.mmap) -> float:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Server(mode, fd, mm), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        result: list[float] = []
        client = threading.Thread(target=_client, args=(port, result))
        client.start()
        while client.is_alive():
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return REQUESTS * FRAME_BYTES / 2**20 / result[0]

    return uvloop.run(run())


def main() -> None:
    with tempfile.NamedTemporaryFile(prefix=".bench-", dir=REPO) as f:
        chunk = os.urandom(2**20)
        for _ in range(FILE_BYTES // len(chunk)):
            f.write(chunk)
        f.flush()
        fd = f.fileno()
        with mmap.mmap(fd, FILE_BYTES, access=mmap.ACCESS_READ) as mm:
            best = {"sendfile": 0.0, "mmap": 0.0}
            for _ in range(ROUNDS):
                for mode in best:
                    best[mode] = max(best[mode], _round(mode, fd, mm))
    print(f"{'benchmark':44} {'MiB/s':>10}")
    for mode, rate in best.items():
        print(f"{'fetch slices over loopback, ' + mode:44} {rate:10.0f}")
    print(f"sendfile / mmap: {best['sendfile'] / best['mmap']:.2f}")

"""A TCP proxy for fault tests: forwards Kafka frames and can swallow responses.

It runs on its own thread and event loop. ``drop_response(api_key, correlation_id)``
decides, per response, whether to close the client's connection (and the upstream
one) instead of delivering it: the broker has done the work, the client never
hears of it and must retry. Loops are bounded by the test's own run.
"""

import asyncio
import struct
import threading
from collections.abc import Callable

from tests.brokerproc import free_port

_SIZE = struct.Struct(">i")


async def _frames(reader: asyncio.StreamReader):
    while True:
        head = await reader.readexactly(4)
        yield head + await reader.readexactly(_SIZE.unpack(head)[0])


class FrameProxy:
    def __init__(self, upstream: str, drop_response: Callable[[int, int], bool] | None = None,
                 port: int | None = None):
        self.upstream_host, upstream_port = upstream.rsplit(":", 1)
        self.upstream_port = int(upstream_port)
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.drop_response = drop_response or (lambda api_key, correlation_id: False)
        self.dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._stop: asyncio.Event | None = None

    async def _main(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _client(self, c_reader, c_writer):
        try:
            u_reader, u_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            c_writer.close()
            return
        api_keys: dict[int, int] = {}

        async def upstream():
            async for frame in _frames(c_reader):
                api_key, _, correlation_id = struct.unpack_from(">hhi", frame, 4)
                api_keys[correlation_id] = api_key
                u_writer.write(frame)

        async def downstream():
            async for frame in _frames(u_reader):
                (correlation_id,) = struct.unpack_from(">i", frame, 4)
                if self.drop_response(api_keys.pop(correlation_id, -1), correlation_id):
                    self.dropped += 1
                    return
                c_writer.write(frame)
                await c_writer.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in (c_writer, u_writer):
                w.transport.abort()

    def start(self) -> "FrameProxy":
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

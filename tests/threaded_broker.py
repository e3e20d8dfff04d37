"""A broker on its own thread and event loop inside the test process.

For tests that must observe the broker's internals (e.g. which syscalls move record
bytes). Blocking clients are safe: the broker never shares their thread or loop.
"""

import asyncio
import threading

import uvloop

from odradek.broker.broker import Broker
from odradek.broker.config import BrokerConfig
from tests.brokerproc import free_port


class ThreadedBroker:
    def __init__(self, data_dir, overrides: dict[str, str] | None = None):
        self.port = free_port()
        settings = {"listeners": f"PLAINTEXT://127.0.0.1:{self.port}", **(overrides or {})}
        self.broker = Broker(BrokerConfig(settings), str(data_dir))
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: uvloop.run(self._main()), daemon=True)
        self.error: BaseException | None = None

    async def _main(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.broker.start()
        except BaseException as e:
            self.error = e
            self._ready.set()
            raise
        self._ready.set()
        await self._stop.wait()
        await self.broker.stop()

    def start(self) -> "ThreadedBroker":
        self._thread.start()
        self._ready.wait(20)
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

"""Capture golden frames: real clients talk to a real Odradek node through a recording
proxy, and the first request and response of each (API, version) each client sends
are written to ``tests/unit/golden/<client>/``.  test_golden.py decodes and re-encodes
them byte for byte; the fuzzer (tests/integration/test_fuzz.py) mutates them.

    python -m tests.unit.golden.capture [kafka-python aiokafka confluent java]

The broker advertises the proxy's address, so every connection a client opens after
bootstrapping passes through the proxy too.  Frames above MAX_FRAME bytes are not kept
(the files stay small); client ids and host names are whatever the client sends.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from odradek.protocol.api import MESSAGE_CLASSES
from tests.brokerproc import free_port
from tests.threaded_broker import ThreadedBroker

HERE = Path(__file__).resolve().parent
MAX_FRAME = 4096
_SIZE = struct.Struct(">i")


def file_name(seq: int, api_key: int, version: int, kind: str) -> str:
    """``03-Metadata-v12-request.bin``: what test_golden.py needs to decode it."""
    name = MESSAGE_CLASSES[api_key][0].__name__.removesuffix("Request")
    return f"{seq:02d}-{name}-v{version}-{kind}.bin"


class Recorder:
    """A TCP proxy on its own thread that keeps one request/response pair per (API, version)."""

    def __init__(self, upstream_port: int, port: int) -> None:
        self.upstream_port, self.port = upstream_port, port
        self.pairs: dict[tuple[int, int], list[bytes]] = {}  # (key, version) -> [req, resp]
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await server.serve_forever()

    async def _client(self, c_reader, c_writer) -> None:
        u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        sent: dict[int, tuple[int, int, bytes]] = {}  # correlation id -> key, version, request

        async def frames(reader):
            while True:
                head = await reader.readexactly(4)
                yield head + await reader.readexactly(_SIZE.unpack(head)[0])

        async def up() -> None:
            async for frame in frames(c_reader):
                key, version, correlation = struct.unpack_from(">hhi", frame, 4)
                sent[correlation] = (key, version, frame)
                u_writer.write(frame)

        async def down() -> None:
            async for frame in frames(u_reader):
                key, version, request = sent.pop(_SIZE.unpack_from(frame, 4)[0])
                if (key, version) not in self.pairs and max(len(request), len(frame)) <= MAX_FRAME:
                    self.pairs[(key, version)] = [request[4:], frame[4:]]
                c_writer.write(frame)

        try:
            await asyncio.gather(up(), down())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            c_writer.close()
            u_writer.close()

    def start(self) -> Recorder:
        self._thread.start()
        self._ready.wait(10)
        return self


def kafka_python(bootstrap: str) -> None:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("golden-kp", 1, 1)])
    admin.describe_cluster()
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(3):
        producer.send("golden-kp", key=b"k%d" % i, value=b"v%d" % i, timestamp_ms=1_700_000_000_000 + i)
    producer.flush()
    producer.close()
    consume_kafka_python(bootstrap, "golden-kp")


def consume_kafka_python(bootstrap: str, topic: str) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-g",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=4000)
    got = [m for _, m in zip(range(3), consumer, strict=False)]
    assert len(got) == 3, got
    consumer.commit()
    consumer.close()


def aiokafka(bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("golden-aio", 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        for i in range(3):
            await producer.send_and_wait("golden-aio", key=b"k%d" % i, value=b"v%d" % i,
                                         timestamp_ms=1_700_000_000_000 + i)
        await producer.stop()
        consumer = AIOKafkaConsumer("golden-aio", bootstrap_servers=bootstrap, group_id="golden-aio-g",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        for _ in range(3):
            await asyncio.wait_for(consumer.getone(), 20)
        await consumer.commit()
        await consumer.stop()

    asyncio.run(run())


def confluent(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic("golden-rd", 1, 1)]).values():
        future.result(20)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(3):
        producer.produce("golden-rd", key=b"k%d" % i, value=b"v%d" % i, timestamp=1_700_000_000_000 + i)
    assert producer.flush(20) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "golden-rd-g",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["golden-rd"])
    got, deadline = 0, time.monotonic() + 30
    while got < 3 and time.monotonic() < deadline:
        msg = consumer.poll(1)
        if msg is not None and msg.error() is None:
            got += 1
    assert got == 3
    consumer.commit(asynchronous=False)
    consumer.close()


def java(bootstrap: str) -> None:
    """Kafka 4.4's console tools (tests/peers/kafka.py caches the jars): a producer, a
    group consumer, kafka-topics."""
    from tests.peers.kafka import tool_command

    subprocess.run(tool_command("kafka-topics", "--bootstrap-server", bootstrap, "--create",
                                "--topic", "golden-java", "--partitions", "1",
                                "--replication-factor", "1"), check=True, timeout=120)
    subprocess.run(tool_command("kafka-console-producer", "--bootstrap-server", bootstrap,
                                "--topic", "golden-java"), input=b"v0\nv1\nv2\n", check=True, timeout=120)
    subprocess.run(tool_command("kafka-console-consumer", "--bootstrap-server", bootstrap,
                                "--topic", "golden-java", "--group", "golden-java-g",
                                "--from-beginning", "--max-messages", "3"),
                   check=True, timeout=120, stdout=subprocess.DEVNULL)


CLIENTS = {"kafka-python": kafka_python, "aiokafka": aiokafka, "confluent": confluent, "java": java}


def capture(client: str) -> list[Path]:
    """Run one client against a fresh node through a fresh recorder; write its frames."""
    proxy_port = free_port()
    with tempfile.TemporaryDirectory() as data:
        broker = ThreadedBroker(data, {"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy_port}"})
        broker.start()
        recorder = Recorder(broker.port, proxy_port).start()
        try:
            CLIENTS[client](f"127.0.0.1:{proxy_port}")
        finally:
            broker.stop()
    out = HERE / client.replace("-", "_")
    out.mkdir(exist_ok=True)
    for old in out.glob("*.bin"):
        old.unlink()
    written = []
    for seq, ((key, version), (request, response)) in enumerate(sorted(recorder.pairs.items())):
        for kind, frame in (("request", request), ("response", response)):
            path = out / file_name(seq, key, version, kind)
            path.write_bytes(frame)
            written.append(path)
    return written


def main(argv: list[str]) -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for client in argv or list(CLIENTS):
        paths = capture(client)
        apis = sorted({p.name.split("-")[1] for p in paths})
        print(f"{client}: {len(paths)} files, {sum(p.stat().st_size for p in paths)} bytes: {' '.join(apis)}")


if __name__ == "__main__":
    main(sys.argv[1:])

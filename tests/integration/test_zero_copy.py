"""Record bytes of a fetch go from the segment file to the socket without entering Python."""

import os
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from odradek.protocol.records import HEADER_SIZE
from odradek.storage.log import FileSlice
from tests.threaded_broker import ThreadedBroker


@pytest.fixture
def threaded_broker(tmp_path):
    b = ThreadedBroker(tmp_path / "data").start()
    yield b
    b.stop()


def test_fetch_sends_records_with_sendfile_only(threaded_broker, monkeypatch):
    bootstrap = threaded_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("zc", 1, 1)]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "none"})
    payload = os.urandom(1000)
    for _ in range(3000):
        p.produce("zc", value=payload, partition=0)
    assert p.flush(30) == 0
    log_bytes = threaded_broker.broker.replicas.partition("zc", 0).log.size

    sent = []
    real_sendfile, real_pread = os.sendfile, os.pread

    def spy_sendfile(out_fd, in_fd, offset, count):
        n = real_sendfile(out_fd, in_fd, offset, count)
        sent.append(n)
        return n

    def guarded_pread(fd, n, offset):
        assert n <= HEADER_SIZE, f"pread of {n} bytes: record bytes copied through Python"
        return real_pread(fd, n, offset)

    def no_copy(self):
        raise AssertionError("FileSlice.read_bytes: record bytes copied through Python")

    monkeypatch.setattr(os, "sendfile", spy_sendfile)
    monkeypatch.setattr(os, "pread", guarded_pread)
    monkeypatch.setattr(FileSlice, "read_bytes", no_copy)

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "zc", "enable.auto.commit": False})
    c.assign([TopicPartition("zc", 0, 0)])
    received, deadline = 0, time.monotonic() + 30
    while received < 3000 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None:
            assert m.error() is None, m.error()
            assert m.value() == payload
            received += 1
    c.close()
    assert received == 3000
    assert sum(sent) >= log_bytes  # every record byte went out through sendfile

"""The open-file budget (storage.handles) on a real broker process run under a small
RLIMIT_NOFILE: thousands of partitions are created, served and reopened after a restart
within it; running out of descriptors fails a CreateTopics cleanly (nothing created);
and the start says what to raise."""

from __future__ import annotations

import socket
import time

from kafka.protocol.admin import CreateTopicsResponse

from odradek.protocol.errors import ErrorCode
from tests.rawclient import (
    RawConnection,
    create_request,
    fetch_offsets,
    produce_and_fetch,
    topic_names,
)


def test_2000_partitions_start_serve_and_restart_under_ulimit_400(broker_factory) -> None:
    limit = 400  # 5 descriptors per partition (before) ran out at 80 partitions
    b = broker_factory(open_file_limit=limit)
    names = [f"fd-{i}" for i in range(20)]
    with RawConnection(b.bootstrap, timeout=60) as conn:
        created = conn.roundtrip(create_request(names, 100), 5, CreateTopicsResponse)
        assert {(t.name, t.error_code) for t in created.topics} == {(n, 0) for n in names}
        for i, name in enumerate(names):
            assert produce_and_fetch(conn, name, i * 5, b"before %d" % i) == [0]
        assert b.open_descriptors() < limit
    assert "descriptor_budget" in b.log_text()
    assert b.stop(timeout=120) == 0  # a clean stop fsyncs every partition: not quick
    b.start(timeout=60)
    assert "open_file_limit=400" in b.log_text()
    assert "open_file_limit_low" in b.log_text() and "ulimit -n" in b.log_text()  # what to raise
    with RawConnection(b.bootstrap, timeout=60) as conn:
        assert set(names) <= topic_names(conn)
        for i, name in enumerate(names):
            assert produce_and_fetch(conn, name, i * 5, b"after %d" % i) == [0, 1]
        assert b.open_descriptors() < limit
    assert "Too many open files" not in b.log_text()


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_out_of_descriptors_create_topics_fails_whole_and_works_once_freed(broker_factory) -> None:
    limit = 128
    b = broker_factory(open_file_limit=limit, overrides={"log.max.open.files": "3"})
    fillers: list[socket.socket] = []
    with RawConnection(b.bootstrap, timeout=20) as conn:
        try:
            # connections until the broker holds every descriptor it may (the rest wait in
            # the listen backlog, unaccepted)
            for _ in range(limit + 20):
                fillers.append(socket.create_connection((b.host, b.port), timeout=5))
            wait_for(lambda: b.open_descriptors() >= limit - 1)
            refused = conn.roundtrip(create_request(["starved"], 4), 5, CreateTopicsResponse)
            [topic] = refused.topics
            assert topic.error_code == ErrorCode.KAFKA_STORAGE_ERROR
            # refused up front, or rolled back after its partitions failed to open: either
            # way the message names the limit and what to raise
            assert f"open-file limit {limit}" in topic.error_message.replace("is ", "")
            assert "ulimit -n" in topic.error_message
            assert "starved" not in topic_names(conn)  # nothing half-way
            # no partition directory: one that was opened and then failed is renamed to a
            # "-delete" directory, removed in the background (or at the next start)
            assert not [d for d in b.data_dir_path().glob("starved-*") if not d.name.endswith("-delete")]
        finally:
            for s in fillers:
                s.close()
        wait_for(lambda: b.open_descriptors() < limit // 2)
        created = conn.roundtrip(create_request(["starved"], 4), 5, CreateTopicsResponse)
        assert created.topics[0].error_code == ErrorCode.NONE
        assert produce_and_fetch(conn, "starved", 3, b"fed") == [0]
    b.stop()
    b.start()  # and it starts again
    with RawConnection(b.bootstrap, timeout=20) as conn:
        assert fetch_offsets(conn, "starved", 3) == [0]

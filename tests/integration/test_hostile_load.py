"""Bounded resources under hostile load (issue 16): idle connections, declared-but-unsent
frames and clients that never read cost the broker bounded memory, and another client
is served while the load is on. Loopback only; every loop stops by itself.

Slow for integration tests (several seconds each): they open thousands of sockets.
"""

import errno
import resource
import socket
import ssl
import struct
import time

import pytest
from kafka.admin import KafkaAdminClient
from kafka.protocol.consumer import FetchRequest

from odradek.protocol.records import build_batch
from tests.brokerproc import free_port
from tests.clients import create_topics
from tests.local_cluster import poll_until
from tests.rawclient import fetch, fetch_request, produce

MB = 2**20


@pytest.fixture
def nofile():
    """Raise this process's RLIMIT_NOFILE to the hard limit (brokers started after inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def api_versions(correlation_id: int = 1) -> bytes:
    body = struct.pack(">hhih", 18, 0, correlation_id, 4) + b"test"
    return struct.pack(">i", len(body)) + body


def connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def recv_exact(s: socket.socket, n: int) -> bytes:
    """n bytes (a loop, not MSG_WAITALL, which a TLS socket refuses)."""
    data = b""
    while len(data) < n:
        piece = s.recv(n - len(data))
        assert piece, "the broker closed the connection"
        data += piece
    return data


def roundtrip_api_versions(s: socket.socket) -> None:
    s.sendall(api_versions())
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    assert len(recv_exact(s, size)) == size


def served(bootstrap: str, topic: str, n: int) -> None:
    """Another client produces and fetches back (raw requests: no client start-up cost)."""
    batch = build_batch([(b"k", f"served-{n}".encode(), (), int(time.time() * 1000))])
    result = produce(bootstrap, topic, {0: batch})[0]
    assert result.error_code == 0
    fetched = fetch(bootstrap, topic, 0, offset=result.base_offset)
    assert fetched.error_code == 0 and f"served-{n}".encode() in bytes(fetched.records)


def test_idle_connections_cost_little(broker_factory, nofile):
    """3,000 idle connections add under 64 MB (each had a 256 KiB staging buffer: 807 MB)."""
    b = broker_factory()
    create_topics(b.bootstrap, ["idle"])
    served(b.bootstrap, "idle", 0)
    before = rss(b.proc.pid)
    sockets = []
    try:
        for _ in range(3000):
            s = connect(b.bootstrap)
            sockets.append(s)
        for s in sockets:  # each is served once (so it was accepted), then stays idle
            roundtrip_api_versions(s)
        added = rss(b.proc.pid) - before
        print(f"3000 idle connections: RSS {before / MB:.1f} MB -> +{added / MB:.1f} MB")
        assert added < 64 * MB
        served(b.bootstrap, "idle", 1)
    finally:
        for s in sockets:
            s.close()


def test_idle_tls_connections_cost_little(broker_factory, nofile, certs):
    """500 idle TLS connections add under 36 KiB each (they took 44-50 KiB: uvloop's
    256 KiB read buffer per connection came from heap memory already dirtied by earlier
    handshakes; see tls.keep_tls_read_buffers_lazy). OpenSSL's own state of a server
    connection after its handshake is about 18 KiB, so this cannot reach a plain one's.
    An EC key (certs.node_keystore: SAN IP:127.0.0.1) keeps the handshakes quick."""
    port, tls_port = free_port(), free_port()
    b = broker_factory(port=port, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{tls_port}",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.node_keystore(1))})
    context = ssl.create_default_context(cafile=str(certs.ca))

    def tls_connection() -> socket.socket:
        s = context.wrap_socket(connect(f"127.0.0.1:{tls_port}"), server_hostname="127.0.0.1")
        roundtrip_api_versions(s)  # served once (handshake done, a request read), then idle
        return s

    tls_connection().close()
    create_topics(b.bootstrap, ["idle-tls"])
    before = rss(b.proc.pid)
    sockets = []
    try:
        for _ in range(500):
            sockets.append(tls_connection())
        added = rss(b.proc.pid) - before
        print(f"500 idle TLS connections: RSS {before / MB:.1f} MB, +{added / 500 / 1024:.1f} KiB each")
        assert added < 500 * 36 * 1024
        served(b.bootstrap, "idle-tls", 0)
    finally:
        for s in sockets:
            s.close()


def test_declared_frames_are_not_allocated(broker_factory, nofile):
    """1,000 connections each declaring a 50 MiB frame and sending 4 bytes of it keep RSS
    under 1 GiB (it reached 7.9 GB), and another client bootstraps, produces and fetches."""
    b = broker_factory()
    create_topics(b.bootstrap, ["declared"])
    before = rss(b.proc.pid)
    sockets = []
    try:
        for _ in range(1000):
            s = connect(b.bootstrap)
            s.sendall(struct.pack(">i", 50 * MB) + b"\x00\x03\x00\x0c")
            sockets.append(s)
        roundtrip_api_versions(connect(b.bootstrap))  # accepted in order: every one before it was read
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=5000)
        assert admin.describe_cluster()["cluster_id"]  # a real client bootstraps
        admin.close()
        served(b.bootstrap, "declared", 0)
        after = rss(b.proc.pid)
        print(f"1000 declared 50 MiB frames: RSS {before / MB:.1f} MB -> {after / MB:.1f} MB")
        assert after < 1024 * MB
        assert after - before < 64 * MB
    finally:
        for s in sockets:
            s.close()
    assert b.proc.poll() is None


def framed_request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation_id, 1) + b"x"
    return struct.pack(">i", len(header) + len(body)) + header + body


@pytest.mark.parametrize("responses", ["fetch", "api_versions"])
def test_client_that_never_reads_is_bounded_and_closed(broker_factory, responses):
    """Pipelined requests whose responses are never read (fetches of 4 MiB, sent with
    sendfile; or small ApiVersions responses, buffered): the broker stops reading from
    that client, holds a bounded write buffer, serves others, and closes it after
    connections.max.idle.ms."""
    b = broker_factory(overrides={"connections.max.idle.ms": "2000"})
    create_topics(b.bootstrap, ["bulk", "other"])
    if responses == "fetch":
        value = b"v" * (512 * 1024)
        for _ in range(8):
            batch = build_batch([(b"k", value, (), int(time.time() * 1000))])
            assert produce(b.bootstrap, "bulk", {0: batch})[0].error_code == 0
        api_key, version, body = FetchRequest.API_KEY, 11, bytes(
            fetch_request("bulk", 0, max_bytes=64 * MB).encode(version=11))
    else:
        api_key, version, body = 18, 0, b""
    before = rss(b.proc.pid)
    s = connect(b.bootstrap)
    s.setblocking(False)
    sent_requests, deadline = 0, time.monotonic() + 15
    stalled_since, rest = None, memoryview(b"")
    while time.monotonic() < deadline:  # send until the broker stops reading for 1 s
        if not rest:
            rest = memoryview(framed_request(api_key, version, sent_requests, body))
            sent_requests += 1
        try:
            rest = rest[s.send(rest):]
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 1:
                break
            time.sleep(0.05)
    assert stalled_since is not None, "the broker kept reading from a client that never reads"
    served(b.bootstrap, "other", 0)
    held = rss(b.proc.pid) - before
    print(f"never-reading client ({responses}): {sent_requests} requests sent, RSS +{held / MB:.1f} MB")
    assert held < 64 * MB
    closed = None
    deadline = time.monotonic() + 15
    while closed is None and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            s.send(b"\x00")
        except BlockingIOError:
            continue
        except OSError as e:
            closed = e.errno
    s.close()
    assert closed in (errno.ECONNRESET, errno.EPIPE), "the broker did not close the client"
    assert poll_until(lambda: "connections.max.idle.ms" in b.log_text(), 5)
    served(b.bootstrap, "other", 1)


def test_queued_request_bytes_are_bounded(broker_factory, nofile):
    """40 connections each send 5 MiB of a declared 50 MiB frame: reading pauses once the
    bytes held pass queued.max.request.bytes; they are given back when the connections go."""
    b = broker_factory(overrides={"queued.max.request.bytes": str(4 * MB)})
    create_topics(b.bootstrap, ["held"])
    served(b.bootstrap, "held", 0)
    before = rss(b.proc.pid)
    chunk = b"\x00" * (64 * 1024)
    sockets = []
    try:
        for _ in range(40):
            s = connect(b.bootstrap)
            s.sendall(struct.pack(">i", 50 * MB))
            s.setblocking(False)
            sockets.append([s, 0])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(sent < 5 * MB for _, sent in sockets):
            progress = False
            for entry in sockets:
                s, sent = entry
                if sent < 5 * MB:
                    try:
                        entry[1] += s.send(chunk)
                        progress = True
                    except BlockingIOError:
                        pass
            if not progress:
                time.sleep(0.05)
        total = sum(sent for _, sent in sockets)
        time.sleep(0.5)  # let the broker read what it will
        held = rss(b.proc.pid) - before
        print(f"40 x 5 MiB of 50 MiB frames: {total / MB:.0f} MiB sent, RSS +{held / MB:.1f} MB")
        assert held < 48 * MB
    finally:
        for s, _ in sockets:
            s.close()
    served(b.bootstrap, "held", 1)


def test_frames_larger_than_the_request_memory_still_complete(broker_factory):
    """Reading pauses beyond queued.max.request.bytes, yet frames bigger than all of it,
    arriving at once on several connections, each complete: one at a time reads on."""
    import threading
    b = broker_factory(overrides={"queued.max.request.bytes": str(1 * MB), "message.max.bytes": str(8 * MB)})
    create_topics(b.bootstrap, ["big"])
    results = []

    def produce_big(n: int) -> None:
        batch = build_batch([(b"k", bytes([n]) * (3 * MB), (), int(time.time() * 1000))])
        results.append(produce(b.bootstrap, "big", {0: batch})[0].error_code)

    threads = [threading.Thread(target=produce_big, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [0, 0, 0, 0]

"""max.connections, max.connections.per.ip (with overrides) and connections.max.idle.ms,
with Kafka's names: a new connection beyond a limit is closed at once (with a log line),
and a connection idle for connections.max.idle.ms is closed."""

import socket
import ssl
import struct
import time

from tests.local_cluster import poll_until


def api_versions() -> bytes:
    body = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    return struct.pack(">i", len(body)) + body


def connect(bootstrap: str, source: str = "127.0.0.1") -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))


def is_served(s: socket.socket) -> bool:
    """One ApiVersions round trip; False if the broker closed the connection instead."""
    try:
        s.sendall(api_versions())
        head = s.recv(4, socket.MSG_WAITALL)
        if len(head) < 4:
            return False
        size = struct.unpack(">i", head)[0]
        return len(s.recv(size, socket.MSG_WAITALL)) == size
    except OSError:
        return False


def test_max_connections(broker_factory):
    b = broker_factory(overrides={"max.connections": "5"})
    kept = [connect(b.bootstrap) for _ in range(5)]
    assert all(is_served(s) for s in kept)
    extra = connect(b.bootstrap)
    assert not is_served(extra)
    extra.close()
    assert poll_until(lambda: "max.connections" in b.log_text(), 5)
    kept.pop().close()
    # The slot is free once the broker has seen the close.
    assert poll_until(lambda: is_served(connect(b.bootstrap)), 5)
    for s in kept:
        s.close()


def test_max_connections_per_ip_with_overrides(broker_factory):
    b = broker_factory(overrides={"max.connections.per.ip": "2",
                                  "max.connections.per.ip.overrides": "127.0.0.2:4"})
    ones = [connect(b.bootstrap, "127.0.0.1") for _ in range(2)]
    twos = [connect(b.bootstrap, "127.0.0.2") for _ in range(4)]
    assert all(is_served(s) for s in ones + twos)
    assert not is_served(connect(b.bootstrap, "127.0.0.1"))
    assert not is_served(connect(b.bootstrap, "127.0.0.2"))
    assert is_served(connect(b.bootstrap, "127.0.0.3"))  # another address has its own count
    assert poll_until(lambda: "max.connections.per.ip" in b.log_text(), 5)
    for s in ones + twos:
        s.close()


def test_idle_connections_are_closed(broker_factory):
    b = broker_factory(overrides={"connections.max.idle.ms": "500"})
    idle, busy = connect(b.bootstrap), connect(b.bootstrap)
    assert is_served(idle)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # busy keeps talking for four idle periods
        assert is_served(busy)
        time.sleep(0.1)
    idle.settimeout(10)
    try:
        assert idle.recv(1) == b""
    except ConnectionResetError:
        pass
    assert poll_until(lambda: "connections.max.idle.ms" in b.log_text(), 5)


def tls_served(context: ssl.SSLContext, address: str, source: str) -> bool:
    """An ApiVersions round trip over TLS from ``source``."""
    with context.wrap_socket(connect(address, source), server_hostname="localhost") as s:
        s.sendall(api_versions())
        answer = s.makefile("rb")
        (size,) = struct.unpack(">i", answer.read(4))
        return len(answer.read(size)) == size


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_tls_clients_that_never_finish_the_handshake_are_bounded(broker_factory, certs):
    """A TLS connection counts against max.connections.per.ip from its first byte, not once
    its handshake is done, and one that does not finish it within connections.max.idle.ms
    (at most 10 s) is closed: silent clients cannot hold descriptors beyond the limits."""
    from tests.brokerproc import free_port

    plain, tls_port = free_port(), free_port()
    b = broker_factory(port=plain, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls_port}",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server_keystore),
        "max.connections.per.ip": "10", "connections.max.idle.ms": "3000"})
    address = f"127.0.0.1:{tls_port}"
    silent = [connect(address, "127.0.0.2") for _ in range(10)]  # TCP only: no ClientHello
    extra = connect(address, "127.0.0.2")
    assert _closed(extra), "an 11th connection from the address was not refused"
    # Another address is served over TLS meanwhile.
    context = ssl.create_default_context(cafile=str(certs.ca))
    assert tls_served(context, address, "127.0.0.1")
    # The silent ones are closed once the handshake time is up, and their slots come free.
    for s in silent:
        s.settimeout(15)
        assert _closed(s)
    assert poll_until(lambda: "TLS handshake" in b.log_text(), 5), b.log_text()[-2000:]
    assert tls_served(context, address, "127.0.0.2")

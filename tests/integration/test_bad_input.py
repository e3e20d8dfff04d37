"""Bad bytes close only their own connection; every other client keeps working."""

import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.admin import KafkaAdminClient
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse

from tests.rawclient import RawConnection, recv_frame

TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100a5010000a10303" + "00" * 32 + "000020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035"
    "c012000a0100005800000014001200000f6578616d706c652e636f6d")


def exchange(bootstrap: str, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes; return whatever comes back before the broker closes (b'' if nothing)."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def still_serves(bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    assert admin.describe_cluster()["cluster_id"]
    admin.close()


def api_versions_request(version: int, correlation_id: int = 7) -> bytes:
    body = struct.pack(">hhih", 18, version, correlation_id, 4) + b"test"
    if version >= 3:
        body += b"\x00" + b"\x05odr\x00" + b"\x020\x00" + b"\x00"  # tagged, name, version, tagged
    return struct.pack(">i", len(body)) + body


def test_bad_frames_close_only_their_connection(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
    bad_inputs = {
        "oversized": struct.pack(">i", 100 * 2**20 + 1) + b"x" * 100,
        "negative": struct.pack(">i", -5) + b"x" * 100,
        "http": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "tls": TLS_CLIENT_HELLO,
        "unknown api key": struct.pack(">ihhih", 10, 999, 0, 1, -1),
        "unsupported version": struct.pack(">ihhih", 10, 3, 99, 1, -1),
        "truncated body": struct.pack(">ihhih", 10, 3, 12, 1, -1),
        "header only half": struct.pack(">ihh", 4, 3, 0),
    }
    for name, payload in bad_inputs.items():
        assert exchange(broker.bootstrap, payload) == b"", name
        assert admin.describe_cluster()["cluster_id"], name  # the other connection is unaffected
    admin.close()
    assert "connection_closed" in broker.log_text()
    assert broker.proc.poll() is None


def test_truncated_frame_then_close_is_harmless(broker):
    full = api_versions_request(3)
    assert exchange(broker.bootstrap, full[: len(full) // 2]) == b""
    still_serves(broker.bootstrap)


def test_api_versions_newer_than_ours_gets_v0_fallback(broker):
    """KIP-511: UNSUPPORTED_VERSION with our ranges in a v0 body, header v0, connection open."""
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(api_versions_request(9, correlation_id=41))
        frame = recv_frame(s)
        assert struct.unpack_from(">i", frame)[0] == 41
        response = ApiVersionsResponse.decode(frame[4:], version=0)
        assert response.error_code == 35
        keys = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        assert keys[18] == (0, 4)
        # The same connection answers the retry at a version we serve.
        s.sendall(api_versions_request(3, correlation_id=42))
        frame = recv_frame(s)
        assert struct.unpack_from(">i", frame)[0] == 42
        assert ApiVersionsResponse.decode(frame[4:], version=3).error_code == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(min_size=1, max_size=300))
def test_random_bytes_never_hurt_other_connections(broker, payload):
    """While a connection holds random bytes (sent, still open), a connection made
    before it and a new one are both served; then the bad one is answered or closed."""
    host, port = broker.bootstrap.rsplit(":", 1)
    with RawConnection(broker.bootstrap, timeout=5) as good, \
            socket.create_connection((host, int(port)), timeout=5) as bad:
        bad.sendall(payload)
        assert good.roundtrip(ApiVersionsRequest(), 0, ApiVersionsResponse).error_code == 0
        still_serves(broker.bootstrap)
        bad.shutdown(socket.SHUT_WR)
        try:
            while bad.recv(65536):
                pass
        except ConnectionResetError:
            pass
    assert broker.proc.poll() is None


def test_random_bytes_leave_broker_serving(broker):
    import random
    rng = random.Random(5)
    for _ in range(30):
        exchange(broker.bootstrap, rng.randbytes(rng.randint(1, 2000)))
    still_serves(broker.bootstrap)

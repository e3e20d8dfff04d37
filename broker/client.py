"""A minimal blocking Kafka client over one socket, for the command line and tests.

It speaks request header v1/v2 with kafka-python's message classes as the codec,
and reads whole frames (MSG_WAITALL would not wait on a socket with a timeout:
Python makes those non-blocking underneath).
"""

import socket
import struct

CLIENT_ID = b"odradek-cli"


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError(f"connection closed after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    return recv_exact(sock, struct.unpack(">i", recv_exact(sock, 4))[0])


class KafkaConnection:
    def __init__(self, address: str, timeout: float = 10, source_host: str | None = None):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout,
                                             source_address=(source_host, 0) if source_host else None)
        self.correlation_id = 0

    def frame(self, request, version: int) -> bytes:
        """The request as a frame with the next correlation id, not sent: several can go
        out in one write, so the broker finds them queued together."""
        self.correlation_id += 1
        body = request.encode(version=version)
        header = struct.pack(">hhih", request.API_KEY, version, self.correlation_id,
                             len(CLIENT_ID)) + CLIENT_ID
        if request.flexible_version_q(version):
            header += b"\x00"
        return struct.pack(">i", len(header) + len(body)) + header + bytes(body)

    def send(self, request, version: int) -> int:
        self.sock.sendall(self.frame(request, version))
        return self.correlation_id

    def receive(self, response_cls, version: int):
        frame = recv_frame(self.sock)
        skip = 5 if response_cls.flexible_version_q(version) else 4
        return response_cls.decode(frame[skip:], version=version)

    def roundtrip(self, request, version: int, response_cls):
        self.send(request, version)
        return self.receive(response_cls, version)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""A minimal raw Kafka client for tests that need exact requests (kafka-python's schemas)."""

import socket
import struct

from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly n bytes. (MSG_WAITALL does not wait on a socket with a timeout:
    Python makes those non-blocking underneath.)"""
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


class RawConnection:
    def __init__(self, bootstrap: str, timeout: float = 10):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def send(self, request, version: int) -> int:
        self.correlation_id += 1
        body = request.encode(version=version)
        header = struct.pack(">hhih", request.API_KEY, version, self.correlation_id, 4) + b"test"
        if request.flexible_version_q(version):
            header += b"\x00"
        self.sock.sendall(struct.pack(">i", len(header) + len(body)) + header + bytes(body))
        return self.correlation_id

    def receive(self, response_cls, version: int):
        frame = recv_frame(self.sock)
        skip = 5 if response_cls.flexible_version_q(version) else 4
        return response_cls.decode(frame[skip:], version=version)

    def roundtrip(self, request, version: int, response_cls):
        self.send(request, version)
        return self.receive(response_cls, version)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def produce_request(topic: str, partitions: dict[int, bytes], acks: int = -1, timeout_ms: int = 5000):
    P = ProduceRequest
    return P(transactional_id=None, acks=acks, timeout_ms=timeout_ms, topic_data=[
        P.TopicProduceData(name=topic, partition_data=[
            P.TopicProduceData.PartitionProduceData(index=i, records=data)
            for i, data in partitions.items()])])


def produce(bootstrap: str, topic: str, partitions: dict[int, bytes], version: int = 9, acks: int = -1):
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(produce_request(topic, partitions, acks), version, ProduceResponse)
    return {p.index: p for p in resp.responses[0].partition_responses}


def fetch_request(topic: str, partition: int, offset: int = 0, max_wait_ms: int = 0,
                  min_bytes: int = 0, max_bytes: int = 10**7, isolation_level: int = 0):
    F = FetchRequest
    return F(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
             isolation_level=isolation_level, session_id=0, session_epoch=-1,
             topics=[F.FetchTopic(topic=topic, partitions=[F.FetchTopic.FetchPartition(
                 partition=partition, current_leader_epoch=-1, fetch_offset=offset,
                 log_start_offset=-1, partition_max_bytes=max_bytes)])],
             forgotten_topics_data=[], rack_id="")


def fetch(bootstrap: str, topic: str, partition: int, offset: int = 0, version: int = 11, **kwargs):
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(fetch_request(topic, partition, offset, **kwargs), version, FetchResponse)
    return resp.responses[0].partitions[0]

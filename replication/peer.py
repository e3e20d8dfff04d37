"""A connection to another node, with reconnects: our JSON inter-node requests and
Kafka requests (a follower's Fetch and OffsetForLeaderEpoch) alike.

Requests are pipelined on one connection and matched to responses by correlation
id. A lost connection fails the requests in flight (their callers decide whether
to retry: Raft simply resends later) and the next request reconnects.
"""

import asyncio
import itertools
import json
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from odradek.protocol.internode import INTERNODE_VERSION, encode_body

log = structlog.get_logger(__name__)

_HEADER = struct.Struct(">ihhih")  # size, api_key, api_version, correlation_id, client_id length
CLIENT_ID = b"odradek-node"


# odradek.testing's network faults, by the node whose peers they cut: "refuse" fails a
# call at once, "blackhole" after its timeout, as a partitioned network would.
NETWORK_FAULTS: dict[int, str] = {}


class PeerUnavailable(Exception):
    """The peer could not be reached or the connection dropped."""


@dataclass(frozen=True)
class PeerSecurity:
    """How a node connects to its peers when the inter-node listener is secured: TLS with
    this context (the node's own certificate, the CAs it trusts), then ``authenticate``
    (SASL, done by the broker, which knows the node's credentials) on the new streams
    before any request. Set per node in SECURITY by the broker, as NETWORK_FAULTS is."""
    ssl_context: ssl.SSLContext | None = None
    authenticate: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None = None


SECURITY: dict[int, PeerSecurity] = {}  # node id -> how it connects to its peers


class Peer:
    def __init__(self, node_id: int, host: str, port: int, *, from_node: int,
                 connect_timeout_s: float = 2.0):
        self.node_id = node_id
        self.host, self.port = host, port
        self.from_node = from_node
        self.client_id = CLIENT_ID + b"-%d" % from_node
        self.connect_timeout_s = connect_timeout_s
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> asyncio.StreamWriter:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            security = SECURITY.get(self.from_node)
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port,
                                            ssl=security.ssl_context if security else None),
                    self.connect_timeout_s)
            except (OSError, TimeoutError) as e:
                raise PeerUnavailable(f"node {self.node_id} at {self.host}:{self.port}: {e}") from None
            if security is not None and security.authenticate is not None:
                try:
                    await asyncio.wait_for(security.authenticate(reader, writer), self.connect_timeout_s)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                    writer.close()
                    raise PeerUnavailable(f"node {self.node_id} at {self.host}:{self.port}: "
                                          f"authentication failed: {e}") from None
            self._writer = writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader, writer))
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = await reader.readexactly(size)
                (correlation_id,) = struct.unpack_from(">i", frame, 0)
                fut = self._pending.pop(correlation_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(frame[4:])
        except (OSError, asyncio.IncompleteReadError, struct.error):
            pass
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(PeerUnavailable(f"connection to node {self.node_id} lost"))
            self._pending.clear()

    async def call(self, api_key: int, version: int, body: bytes, flexible: bool,
                   timeout_s: float) -> bytes:
        """Send one framed request; return the response after its correlation id."""
        cut = NETWORK_FAULTS.get(self.from_node)
        if cut is not None:
            if cut == "blackhole":
                await asyncio.sleep(timeout_s)
            self.close()
            raise PeerUnavailable(f"node {self.from_node} is isolated ({cut})")
        writer = await self._connect()
        correlation_id = next(self._ids)
        tags = b"\x00" if flexible else b""  # request header v2's empty tagged fields
        header = _HEADER.pack(2 + 2 + 4 + 2 + len(self.client_id) + len(tags) + len(body), api_key,
                              version, correlation_id, len(self.client_id))
        fut = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = fut
        writer.write(header + self.client_id + tags + body)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            self._pending.pop(correlation_id, None)
            # Give up the connection, as Kafka's NetworkClient does: the peer may be behind
            # a network partition, where TCP holds what we write for as long as its
            # retransmission backoff has grown; a new connection goes out as soon as it heals.
            writer.transport.abort()
            raise PeerUnavailable(f"node {self.node_id} did not answer within {timeout_s}s") from None

    async def request(self, api_key: int, payload: dict, timeout_s: float = 5.0) -> dict:
        """One of our JSON inter-node requests; returns the decoded JSON response."""
        return json.loads(await self.call(api_key, INTERNODE_VERSION, encode_body(payload), False,
                                          timeout_s))

    async def send(self, request, version: int, response_class, timeout_s: float = 10.0):
        """A Kafka request through kafka-python's classes; returns the decoded response."""
        flexible = request.flexible_version_q(version)
        body = await self.call(request.API_KEY, version, bytes(request.encode(version=version)),
                               flexible, timeout_s)
        if response_class.flexible_version_q(version):
            body = body[1:]  # response header v1: an empty tagged-field section
        return response_class.decode(memoryview(body), version=version)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()

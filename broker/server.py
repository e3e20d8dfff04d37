"""The TCP server: one asyncio protocol per client connection.

Bytes go through the sans-IO frame decoder; whole frames queue on the connection
and one task per connection serves them one at a time, so responses leave in
request order (clients pipeline). Reading pauses while ``queued.max.requests``
frames wait or while the transport's write buffer is above its high-water mark,
so a client that sends faster than it reads cannot grow the broker's memory.

One exception to one-at-a-time, for Produce: a handler that has appended and now
only waits (acks=-1 for the ISR or a flush) returns a ``Deferred``, and the next
request starts at once if it is a Produce too, while the waiting responses still
leave in request order. librdkafka pipelines many Produce requests per connection;
served strictly one at a time, each would wait a whole replication round trip
behind the one before. Any other request waits until every deferred response is
sent, so it sees the effects of the produces before it, as in Kafka.

An undecodable frame (bad size, unknown API key or version, a body the schema
cannot read) closes that connection only, with one warning in the log. Handlers
answer every other failure as an error code; an exception that escapes one anyway
is a bug, logged with its API, and answered UNKNOWN_SERVER_ERROR where the response
can carry it, at the top or per topic (else the connection closes, the only way to tell).
"""

import asyncio
import collections
import os

import structlog

from odradek.broker.handlers import Handler, error_response
from odradek.protocol.api import (
    API_VERSIONS_KEY,
    PRODUCE_KEY,
    DecodeError,
    RequestHeader,
    decode_body,
    decode_header,
    is_flexible,
    peek_header,
    response_header,
)
from odradek.protocol.errors import ErrorCode
from odradek.protocol.framing import FrameDecoder, FrameError

log = structlog.get_logger(__name__)

COALESCE_BYTES = 256 * 1024  # flush buffered responses at this size even if requests wait


class CloseConnection(Exception):
    """Raised by a handler to close the connection instead of answering
    (an acks=0 produce that failed: Kafka closes so the client refreshes metadata)."""


class ChunkedResponse:
    """A response body as chunks: bytes, and file slices (``fd``, ``position``,
    ``size``) sent with os.sendfile so record bytes never enter Python.
    ``release`` runs once the chunks are sent (or the connection is gone)."""

    __slots__ = ("chunks", "release")

    def __init__(self, chunks: list, release=None):
        self.chunks = chunks
        self.release = release


class Deferred:
    """A handler's response that is not ready: ``awaitable`` returns it (see the module
    docstring). What must happen in request order (the appends) is done already."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable):
        self.awaitable = awaitable


class RequestContext:
    __slots__ = ("header", "broker", "connection", "response_version")

    def __init__(self, header: RequestHeader, broker, connection: "Connection"):
        self.header = header
        self.broker = broker
        self.connection = connection
        self.response_version = header.api_version

    @property
    def listener_name(self) -> str:
        return self.connection.listener_name


class Connection(asyncio.BufferedProtocol):
    def __init__(self, broker, listener_name: str):
        self.broker = broker
        self.listener_name = listener_name
        self.max_queued = broker.config["queued.max.requests"]
        self.decoder = FrameDecoder(broker.config["socket.request.max.bytes"])
        self.frames: collections.deque = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.peer = None
        self._wakeup = asyncio.Event()
        self._queue_full = False
        self._write_paused = False
        self._drained: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self._sock_fd = -1  # the socket's fd, for os.sendfile
        self._writer_fd = -1  # a dup of it: uvloop refuses add_writer on a transport's own fd
        self._out: list[bytes] = []  # responses not yet handed to the transport
        self._out_bytes = 0
        # responses not sent yet because a Deferred before them waits: (handler, ctx, future)
        self._pending: collections.deque = collections.deque()
        self._sender: asyncio.Task | None = None  # sends self._pending in order
        self.closed = False

    # -- asyncio.BufferedProtocol ---------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        self._sock_fd = sock.fileno() if sock is not None else -1
        self.broker.connections.add(self)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def get_buffer(self, sizehint):
        return self.decoder.get_buffer()

    def buffer_updated(self, nbytes):
        if self.closed:
            return
        try:
            frames = self.decoder.buffer_updated(nbytes)
        except FrameError as e:
            self.abort(str(e))
            return
        if frames:
            self.frames.extend(frames)
            self._wakeup.set()
            if len(self.frames) >= self.max_queued and not self._queue_full:
                self._queue_full = True
                self._update_reading()

    def eof_received(self):
        return False  # close our side too; pending responses have nowhere to go

    def connection_lost(self, exc):
        self.closed = True
        self.broker.connections.discard(self)
        if self._task is not None:
            self._task.cancel()
        if self._sender is not None:
            self._sender.cancel()
        for _, _, future in self._pending:
            future.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self._writer_fd >= 0:
            asyncio.get_running_loop().remove_writer(self._writer_fd)
            os.close(self._writer_fd)
            self._writer_fd = -1

    def pause_writing(self):
        self._write_paused = True
        self._drained = asyncio.get_running_loop().create_future()
        self._update_reading()

    def resume_writing(self):
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._update_reading()

    # -- serving ----------------------------------------------------------------
    def _update_reading(self):
        if self.closed:
            return
        if self._queue_full or self._write_paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def abort(self, reason: str) -> None:
        """Close this connection at once, logging why (once)."""
        if not self.closed:
            log.warning("connection_closed", peer=self.peer, reason=reason)
            self.closed = True
            self.transport.abort()

    async def _serve(self):
        try:
            while not self.closed:
                while not self.frames:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                frame = self.frames.popleft()
                if self._queue_full and len(self.frames) < self.max_queued:
                    self._queue_full = False
                    self._update_reading()
                if self._sender is not None and (peek_header(frame)[0] != PRODUCE_KEY
                                      or len(self._pending) >= self.max_queued):
                    await self._sender  # every earlier response is sent first
                await self._handle(frame)
                if not self.frames or self._out_bytes >= COALESCE_BYTES:
                    self._flush()
                if self._write_paused and not self.closed:
                    await self._drained
        except asyncio.CancelledError:
            pass
        except DecodeError as e:
            self.abort(str(e))
        except CloseConnection as e:
            self.abort(str(e) or "closed by handler")
        except ConnectionError as e:
            self.abort(f"peer went away: {e}")
        except Exception:
            log.exception("request_failed", peer=self.peer)
            self.abort("internal error while serving a request")

    async def _handle(self, frame: memoryview) -> None:
        api_key, api_version, correlation_id = peek_header(frame)
        handler: Handler | None = self.broker.handlers.get(api_key)
        if handler is None:
            raise DecodeError(f"unknown API key {api_key}")
        if not handler.min_version <= api_version <= handler.max_version:
            if api_key == API_VERSIONS_KEY and api_version > handler.max_version:
                # KIP-511: a newer client's ApiVersions gets our ranges in a v0 body
                # (with UNSUPPORTED_VERSION) and the connection stays open.
                header = RequestHeader(api_key, api_version, correlation_id, None)
                await self._respond(handler, RequestContext(header, self.broker, self), None)
                return
            raise DecodeError(f"API key {api_key} version {api_version} is not served "
                              f"({handler.min_version}..{handler.max_version})")
        header, pos = decode_header(frame, is_flexible(handler.request_class, api_version))
        log.debug("request", api_key=api_key, api_version=api_version, client_id=header.client_id)
        request = decode_body(handler.request_class, api_version, frame[pos:])
        await self._respond(handler, RequestContext(header, self.broker, self), request)

    async def _respond(self, handler: Handler, ctx: RequestContext, request) -> None:
        try:
            response = await handler.handle(ctx, request)
        except (DecodeError, CloseConnection):
            raise
        except Exception:
            response = self._failed(handler, ctx, request)
        if isinstance(response, Deferred) or self._sender is not None:
            if isinstance(response, Deferred):
                future = asyncio.ensure_future(response.awaitable)
            else:
                future = asyncio.get_running_loop().create_future()
                future.set_result(response)
            self._pending.append((handler, ctx, future))
            if self._sender is None:
                self._sender = asyncio.get_running_loop().create_task(self._send_pending())
            return
        await self._send(handler, ctx, response)

    async def _send_pending(self) -> None:
        """Send deferred responses, and those queued behind them, in request order."""
        try:
            while self._pending and not self.closed:
                handler, ctx, future = self._pending[0]
                try:
                    response = await future
                except (CloseConnection, asyncio.CancelledError):
                    raise
                except Exception:
                    response = self._failed(handler, ctx, None)
                self._pending.popleft()
                await self._send(handler, ctx, response)
                if not self._pending or self._out_bytes >= COALESCE_BYTES:
                    self._flush()
        except asyncio.CancelledError:
            pass
        except CloseConnection as e:
            self.abort(str(e) or "closed by handler")
        except Exception:
            log.exception("request_failed", peer=self.peer)
            self.abort("internal error while serving a request")
        finally:
            self._sender = None

    def _failed(self, handler: Handler, ctx: RequestContext, request):
        """The answer to a request whose handler raised (a bug: see the module docstring)."""
        log.exception("handler_failed", peer=self.peer, api_key=handler.api_key,
                      api=handler.request_class.__name__, api_version=ctx.header.api_version)
        response = error_response(handler.response_class, request, ctx.response_version,
                                  ErrorCode.UNKNOWN_SERVER_ERROR)
        if response is None:
            raise CloseConnection(f"{handler.request_class.__name__} failed and its response "
                                  "has no error code to say so")
        return response

    async def _send(self, handler: Handler, ctx: RequestContext, response) -> None:
        if response is None or self.closed:
            return  # acks=0 produce: no response at all
        version = ctx.response_version
        # ApiVersions responses always use header v0 (see protocol.api).
        flexible = handler.api_key != API_VERSIONS_KEY and is_flexible(handler.response_class, version)
        head = response_header(ctx.header.correlation_id, flexible)
        if isinstance(response, ChunkedResponse):
            try:
                await self._send_chunks(head, response.chunks)
            finally:
                if response.release is not None:
                    response.release()
            return
        body = response.encode(version=version)
        self._out.append((len(head) + len(body)).to_bytes(4, "big") + head + body)
        self._out_bytes += len(self._out[-1])

    def _flush(self) -> None:
        """Hand the buffered responses to the transport in one write.

        Responses to pipelined requests are held until the queue of waiting
        requests is empty (or COALESCE_BYTES have built up), so a burst of small
        requests costs one send syscall instead of one each.
        """
        if self._out and not self.closed:
            self.transport.writelines(self._out)
        self._out, self._out_bytes = [], 0

    async def _send_chunks(self, head: bytes, chunks: list) -> None:
        """Send a frame of bytes and file slices.

        Slices go out with os.sendfile straight from the segment file. That writes
        to the socket behind the transport's back, so it starts only once the
        transport's own buffer is empty, and the rest of the frame follows on the
        same path; when the socket is full we wait for it to drain.
        (Measured against writing a memoryview of an mmap'd segment through the
        transport: bench/zerocopy.py.)
        """
        self._flush()  # earlier responses go first
        size = len(head) + sum(len(c) if isinstance(c, (bytes, bytearray)) else c.size
                               for c in chunks)
        first = size.to_bytes(4, "big") + head
        if self._sock_fd < 0 or all(isinstance(c, (bytes, bytearray)) for c in chunks):
            # No socket (a transport without one) or nothing on disk: the plain path.
            self.transport.write(first + b"".join(
                c if isinstance(c, (bytes, bytearray)) else c.read_bytes() for c in chunks))
            return
        while self.transport.get_write_buffer_size() and not self.closed:
            await self._writable()
        for chunk in [first, *chunks]:
            if isinstance(chunk, (bytes, bytearray)):
                view, sent = memoryview(chunk), 0
                while sent < len(view) and not self.closed:
                    try:
                        sent += os.write(self._sock_fd, view[sent:])
                    except BlockingIOError:
                        await self._writable()
            else:
                sent = 0
                while sent < chunk.size and not self.closed:
                    try:
                        n = os.sendfile(self._sock_fd, chunk.fd, chunk.position + sent,
                                        chunk.size - sent)
                    except BlockingIOError:
                        await self._writable()
                        continue
                    if n == 0:  # the file is shorter than the slice: the frame cannot be completed
                        raise CloseConnection("segment shrank while being sent")
                    sent += n
            if self.closed:
                return

    async def _writable(self) -> None:
        """Wait until the socket accepts more bytes."""
        loop = asyncio.get_running_loop()
        if self._writer_fd < 0:
            self._writer_fd = os.dup(self._sock_fd)
        fd = self._writer_fd
        fut = loop.create_future()
        loop.add_writer(fd, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            if not self.closed:
                loop.remove_writer(fd)


async def start_listeners(broker) -> list[asyncio.AbstractServer]:
    """Listen on every configured listener; each connection knows its listener's name."""
    loop = asyncio.get_running_loop()
    servers = []
    for listener in broker.config.listeners:
        server = await loop.create_server(
            lambda name=listener.name: Connection(broker, name),
            listener.host or None, listener.port, reuse_address=True)
        servers.append(server)
    return servers

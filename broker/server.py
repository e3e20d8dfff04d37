"""The TCP server: one asyncio protocol per client connection.

Bytes go through the sans-IO frame decoder; whole frames queue on the connection
and one task per connection serves them one at a time, so responses leave in
request order (clients pipeline). Reading pauses while ``queued.max.requests``
frames wait or while the transport's write buffer is above its high-water mark,
so a client that sends faster than it reads cannot grow the broker's memory; and
while the bytes of all requests held pass ``queued.max.request.bytes``
(``RequestMemory``). A connection beyond ``max.connections`` or
``max.connections.per.ip`` is closed as it opens (``ConnectionLimits``), and one
idle for ``connections.max.idle.ms`` is closed (``close_idle_connections``).

One exception to one-at-a-time, for Produce: a handler that has appended and now
only waits (acks=-1 for the ISR or a flush) returns a ``Deferred``, and the next
request starts at once if it is a Produce too, while the waiting responses still
leave in request order. librdkafka pipelines many Produce requests per connection;
served strictly one at a time, each would wait a whole replication round trip
behind the one before. Any other request waits until every deferred response is
sent, so it sees the effects of the produces before it, as in Kafka.

An undecodable frame (bad size, unknown API key or version, a body the schema
cannot read) closes that connection only, with one warning in the log. So does
one of our inter-node keys (1000 and above) on a listener that is not for other
nodes (``BrokerConfig.internode_listeners``). Handlers answer every other failure as
an error code; an exception that escapes one anyway is a bug, logged with its API,
and answered UNKNOWN_SERVER_ERROR where the response can carry it, at the top or per
topic (else the connection closes, the only way to tell).

Security (Kafka's listener model): a listener's protocol is PLAINTEXT, SSL, SASL_PLAINTEXT
or SASL_SSL (``Listener.security_protocol``). TLS listeners wrap the transport
(``odradek.broker.tls``); a client certificate gives the principal on SSL. On SASL
listeners a ``SaslSession`` (``odradek.broker.sasl``) decides what is served before
authentication (ApiVersions and the SASL requests, in frames of at most
``sasl.server.max.receive.size``); a failed authentication is answered, then closed.
``Connection.principal`` is what the authorizer reads ("User:ANONYMOUS" until known).
"""

import asyncio
import base64
import collections
import os
import time

import structlog

from odradek.broker import sasl, tls
from odradek.broker.authorizer import access, authorized_operations, denied_before
from odradek.broker.handlers import Handler, error_response
from odradek.broker.quotas import REQUEST_PERCENTAGE
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
# A file slice crosses TLS in reads of at most this: a piece and its encrypted copy (16 KiB
# records, 22 bytes more each) stay below the mmap threshold tls.keep_tls_read_buffers_lazy sets,
# so they are not mmapped and unmapped (and faulted in) each time.
TLS_READ_BYTES = 240 * 1024
# A TLS client has this long (or connections.max.idle.ms if shorter) to finish its handshake.
TLS_HANDSHAKE_TIMEOUT_S = 10.0


class ConnectionLimits:
    """Kafka's connection quotas: ``max.connections`` for the node and
    ``max.connections.per.ip`` (with ``max.connections.per.ip.overrides``) per client
    address. A new connection beyond a limit is closed at once, as Kafka does; so
    that clients cannot lock other nodes out, connections on a listener that serves
    only other nodes do not count against ``max.connections`` (Kafka exempts the
    inter-broker listener likewise)."""

    LOG_EVERY_S = 1.0  # a flood of refused connections logs one line per second

    def __init__(self, config):
        self.reconfigure(config)
        self.overrides = config.max_connections_per_ip_overrides
        self.total = 0
        self.per_ip: collections.Counter = collections.Counter()
        self._logged_at = -self.LOG_EVERY_S
        self._unlogged = 0

    def reconfigure(self, config) -> None:
        """Take the limits again (dynamic broker configs); open connections beyond a lowered
        limit stay, as in Kafka: only new ones are refused."""
        self.max_connections = config["max.connections"]
        self.max_per_ip = config["max.connections.per.ip"]

    def admit(self, ip: str, exempt: bool) -> str | None:
        """Count a new connection from ``ip``, or return why it must be closed."""
        limit = self.overrides.get(ip, self.max_per_ip)
        if self.per_ip[ip] >= limit:
            return f"{ip} has {self.per_ip[ip]} connections (max.connections.per.ip {limit})"
        if not exempt and self.total >= self.max_connections:
            return f"the node has {self.total} connections (max.connections {self.max_connections})"
        self.per_ip[ip] += 1
        self.total += not exempt
        return None

    def release(self, ip: str, exempt: bool) -> None:
        self.per_ip[ip] -= 1
        if not self.per_ip[ip]:
            del self.per_ip[ip]
        self.total -= not exempt

    def log_refusal(self, peer, reason: str) -> None:
        now = time.monotonic()
        if now - self._logged_at < self.LOG_EVERY_S:
            self._unlogged += 1
            return
        log.warning("connection_refused", peer=peer, reason=reason, also_refused_since_last=self._unlogged)
        self._logged_at, self._unlogged = now, 0


class RequestMemory:
    """Kafka's ``queued.max.request.bytes``: the bytes of requests held in memory,
    all connections together, from their arrival until their handler is done (an
    incomplete frame's bytes count as they arrive, never its declared size).

    Past the limit every connection stops reading, with one exception so that frames
    larger than what is left still complete: the connection whose incomplete frame
    needs the fewest bytes (the *finisher*) reads on until that frame is whole, one
    connection at a time. So memory stays within the limit plus one frame (up to
    ``socket.request.max.bytes``) plus one read. Below the limit all read again.
    One connection's complete requests waiting to be served may hold at most
    1/``SHARE`` of the limit, so one slow connection cannot hold it all.
    A finisher whose client stops sending blocks the others until
    ``connections.max.idle.ms`` closes it.
    """

    SHARE = 8

    def __init__(self, limit: int, connections: set):
        self.limit = limit if limit > 0 else float("inf")  # -1: unbounded
        self.share = self.limit / self.SHARE
        self.connections = connections
        self.held = 0
        self.over = False
        self.finisher: Connection | None = None

    def charge(self, conn: "Connection", nbytes: int) -> None:
        conn.held += nbytes
        self.held += nbytes
        if not self.over and self.held > self.limit:
            self.over = True
            self._pick_finisher()
            for c in self.connections:
                c.update_reading()

    def release(self, conn: "Connection", nbytes: int) -> None:
        conn.held -= nbytes
        self.held -= nbytes
        if self.over and self.held <= self.limit:
            self.over = False
            self.finisher = None
            for c in self.connections:
                c.update_reading()
        elif self.finisher is conn and conn.closed:
            self._pick_finisher()

    def frames_completed(self, conn: "Connection") -> None:
        """The finisher's frame is whole: another incomplete frame may finish next."""
        if self.over and self.finisher is conn:
            self._pick_finisher()

    def may_read(self, conn: "Connection") -> bool:
        """Whether ``conn``, which is not waiting on itself, may read now."""
        if not self.over or self.finisher is conn:
            return True
        if self.finisher is None and conn.decoder.missing:
            self.finisher = conn  # no other frame is being finished: this one may be
            return True
        return False

    def step_down(self, conn: "Connection") -> None:
        """``conn`` waits on itself now (its responses, its queue): another frame may finish."""
        if self.finisher is conn:
            self._pick_finisher()

    def _pick_finisher(self) -> None:
        waiting = [c for c in self.connections
                   if c.decoder.missing and not c.closed and not c.waits_on_itself()]
        self.finisher = min(waiting, key=lambda c: c.decoder.missing, default=None)
        if self.finisher is not None:
            self.finisher.update_reading()


async def close_idle_connections(broker) -> None:
    """Close connections idle for ``connections.max.idle.ms`` (Kafka's default: 10
    minutes): nothing read, and no response bytes leaving, while no handler runs. A
    client that stopped reading its responses is idle by that measure, so it cannot
    pin its write buffer longer than that."""
    idle_s = broker.config["connections.max.idle.ms"] / 1000
    while True:
        await asyncio.sleep(min(max(idle_s / 10, 0.05), 10.0))
        now = time.monotonic()
        for conn in list(broker.connections):
            conn.check_idle(now, idle_s)


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
    __slots__ = ("header", "broker", "connection", "response_version", "received", "arrived", "handled",
                 "size", "throttle_ms")

    def __init__(self, header: RequestHeader, broker, connection: "Connection",
                 arrived: float = 0.0, size: int = 0, received: float | None = None):
        self.header = header
        self.size = size  # the request frame's bytes, for the request trace
        self.broker = broker
        self.connection = connection
        self.response_version = header.api_version
        # perf_counter() times: the frame was read off the socket; its handling began
        # (RequestQueueTimeMs between them); its handler returned (LocalTimeMs, then RemoteTimeMs).
        self.received = arrived if received is None else received
        self.arrived = arrived
        self.handled = arrived  # when its handler returned: LocalTimeMs, then RemoteTimeMs
        self.size = size  # the request's bytes (its frame), for producer_byte_rate as Kafka counts it
        self.throttle_ms = 0  # what client quotas make this client wait (broker.quotas)

    @property
    def listener_name(self) -> str:
        return self.connection.listener_name

    @property
    def principal(self) -> str:
        return self.connection.principal

    @property
    def host(self) -> str:
        return self.connection.peer[0] if self.connection.peer else ""

    def may(self, resource_type, name: str, operation=None) -> bool:
        """Whether this request's principal may act on ``name`` as this API's row of
        broker.authorizer.ACCESS says (or with ``operation``); always, with no authorizer."""
        authorizer = self.broker.authorizer
        if authorizer is None:
            return True
        if operation is None:
            operation = access(self.header.api_key, resource_type).operation
        return authorizer.allowed(self.principal, self.host, operation, resource_type, name)

    def may_on_any(self, resource_type, operation) -> bool:
        """Whether the principal may do ``operation`` on some resource of the type (Kafka's
        authorizeByResourceType); always, with no authorizer."""
        authorizer = self.broker.authorizer
        return authorizer is None or authorizer.decider.allowed_on_any(self.principal, self.host, operation,
                                                                       resource_type)

    def record_quota(self, key: str, amount: float) -> int:
        """Count ``amount`` against this client's quota ``key`` (broker.quotas); the throttle
        time it earns (ms), which the connection then waits out (muted)."""
        if not self.broker.image.client_quotas:
            return 0  # (the common case, on every request: no quota is set anywhere)
        ms = self.broker.quotas.record(key, self.quota_user, self.header.client_id or "", amount,
                                       time.monotonic())
        self.throttle_ms = max(self.throttle_ms, ms)
        return ms

    def unrecord_quota(self, key: str, amount: float) -> None:
        self.broker.quotas.unrecord(key, self.quota_user, self.header.client_id or "", amount,
                                    time.monotonic())

    @property
    def quota_user(self) -> str:
        """The user of quota entities: the principal's name (User:alice -> alice), as Kafka."""
        return self.principal.partition(":")[2]

    def authorized_operations(self, resource_type, name: str) -> set[int]:
        """The codes of the operations allowed on a resource (see broker.authorizer)."""
        return authorized_operations(self.broker.authorizer, self.principal, self.host, resource_type, name)


def scram_credential(image, user: str, mechanism: str) -> sasl.ScramCredential | None:
    """A user's SCRAM credential from the metadata image (UserScramCredentialRecord)."""
    r = image.scram.get((user, sasl.SCRAM_MECHANISMS[mechanism]))
    if r is None:
        return None
    return sasl.ScramCredential(base64.b64decode(r.salt), base64.b64decode(r.stored_key),
                                base64.b64decode(r.server_key), r.iterations)


def sasl_session(broker, listener: str) -> sasl.SaslSession:
    """A new connection's SASL state on a SASL listener: PLAIN users from the listener's
    JAAS line (``BrokerConfig.plain_users``), SCRAM credentials from the metadata image."""
    config = broker.config

    def make(mechanism: str) -> sasl.SaslServer:
        if mechanism == sasl.PLAIN:
            return sasl.PlainServer(config.plain_users.get(listener, {}))
        if mechanism == sasl.OAUTHBEARER:  # the JAAS line's options, if any (unsecuredValidator...)
            jaas = config.listener_values.get((listener, "oauthbearer.sasl.jaas.config"))
            return sasl.OAuthBearerUnsecuredServer(
                sasl.parse_jaas(jaas, "oauthbearer.sasl.jaas.config")[1] if jaas else None)
        return sasl.ScramServer(mechanism, lambda user: scram_credential(broker.image, user, mechanism))
    return sasl.SaslSession(config.listener_value(listener, "sasl.enabled.mechanisms"), make,
                            config.listener_value(listener, "connections.max.reauth.ms"))


class Connection(asyncio.BufferedProtocol):
    def __init__(self, broker, listener_name: str):
        self.broker = broker
        self.listener_name = listener_name
        listener = broker.config.listener(listener_name)
        self.tls = listener.tls  # no sendfile: file slices are read and written through TLS
        # Who is on the other end, for the authorizer: set once SASL or TLS authenticates;
        # until then (and on PLAINTEXT) User:ANONYMOUS, as in Kafka.
        self.principal = tls.ANONYMOUS
        self.sasl = sasl_session(broker, listener_name) if listener.sasl else None
        self._close_after: str | None = None  # close once this response is sent (why)
        self.internode = listener_name in broker.config.internode_listeners  # serves keys 1000+
        self.max_queued = broker.config["queued.max.requests"]
        self.decoder = FrameDecoder(broker.config["socket.request.max.bytes"])
        if self.sasl is not None:  # until authenticated, frames are small
            self.decoder.max_frame = broker.config.listener_value(listener_name, "sasl.server.max.receive.size")
        self.frames: collections.deque = collections.deque()
        self.frame_times: collections.deque = collections.deque()  # perf_counter() each was read
        self.transport: asyncio.Transport | None = None
        self.peer = None
        self._wakeup = asyncio.Event()
        self._queue_full = False
        self._write_paused = False
        self._drained: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self._handshaking: asyncio.Task | None = None  # TLS listeners: see _start_tls
        self._sock_fd = -1  # the socket's fd, for os.sendfile
        self._writer_fd = -1  # a dup of it: uvloop refuses add_writer on a transport's own fd
        self._out: list[bytes] = []  # responses not yet handed to the transport
        self._out_timing: list[tuple] = []  # (RequestStats, received, ready) of those responses
        self._out_bytes = 0
        self._flush_soon = False  # a _flush is scheduled (call_soon): see _send
        # responses not sent yet because a Deferred before them waits: (handler, ctx, future)
        self._pending: collections.deque = collections.deque()
        self._sender: asyncio.Task | None = None  # sends self._pending in order
        self.closed = False
        # Whether this connection counts against max.connections: not on a listener
        # that serves only other nodes (see ConnectionLimits).
        self._exempt = self.internode and len(broker.config.listeners) > 1
        self._admitted = False
        self.last_active = time.monotonic()
        self._handling = 0  # handlers running: a connection waiting on one is not idle
        self._write_buffer_seen = 0
        self.memory: RequestMemory = broker.request_memory
        self.held = 0  # bytes of this connection's requests in memory (see RequestMemory)
        # (name, version) of the client software, from ApiVersions v3+ (KIP-511), for metrics
        self.client_software = ("unknown", "unknown")
        self._muted_until = 0.0  # time.monotonic() until which a quota's throttle mutes this connection
        self.client_id: str | None = None  # of the last request (clients keep one per connection)
        self.requests = 0
        self.connected_at = time.time()
        # one debug line per request (log.level=debug): see _trace
        self.trace = broker.config["log.level"].lower() == "debug"

    # -- asyncio.BufferedProtocol ---------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        ip = self.peer[0] if self.peer else ""
        refusal = self.broker.limits.admit(ip, self._exempt)
        if refusal is not None:
            self.closed = True
            self.broker.limits.log_refusal(self.peer, refusal)
            transport.abort()
            return
        self._admitted = True
        context = self.broker.config.ssl_contexts.get(self.listener_name)
        if context is not None:
            # The handshake runs on an admitted connection, so a client that never finishes
            # it counts against max.connections(.per.ip) like any other, for a bounded time.
            self._start_tls(transport, context)
            return
        self._established()

    def _start_tls(self, raw: asyncio.Transport, context) -> None:
        """Hand the accepted TCP connection to TLS, within min(connections.max.idle.ms, 10 s).

        loop.start_tls's first step (up to its ``await``) swaps the TLS protocol in for this
        one; it must run here, synchronously: uvloop starts reading once connection_made
        returns (a pause_reading here is ignored), and a task's first step would run after
        the loop's next read, which would hand the ClientHello to this protocol. So the
        coroutine is stepped by hand: once now, and again when its waiter is done."""
        timeout = min(self.broker.config["connections.max.idle.ms"] / 1000, TLS_HANDSHAKE_TIMEOUT_S)
        starting = asyncio.get_running_loop().start_tls(raw, self, context, server_side=True,
                                                        ssl_handshake_timeout=timeout)
        try:
            waiter = starting.send(None)  # the future start_tls awaits: the handshake's end
        except Exception as e:  # (StopIteration cannot happen: start_tls awaits the handshake)
            self._handshake_failed(raw, f"TLS failed to start: {e}")
            return
        # Not self._task: the TLS protocol passes a failed handshake's loss on to
        # connection_lost, which cancels that, and this task is to say why it failed.
        self._handshaking = asyncio.get_running_loop().create_task(
            self._handshake(raw, starting, waiter, timeout))

    async def _handshake(self, raw: asyncio.Transport, starting, waiter, timeout: float) -> None:
        try:
            await asyncio.wait([waiter])  # (not `await waiter`: a cancel here must not cancel it)
        except asyncio.CancelledError:
            starting.close()  # start_tls closes the transport on its way out
            raise
        try:
            starting.send(None)
            raise RuntimeError("start_tls awaited twice")
        except StopIteration as done:
            self.transport = done.value
        except Exception as e:  # a timeout, an SSL alert, a reset: the client is gone either way
            self._handshake_failed(raw, f"TLS handshake not completed within {timeout:g} s"
                                   if isinstance(e, (TimeoutError, ConnectionAbortedError))
                                   else f"TLS handshake failed: {e}")
            return
        self._established()

    def _handshake_failed(self, raw: asyncio.Transport, reason: str) -> None:
        # (logged even when closed: the TLS protocol may have passed its loss on already)
        log.warning("connection_closed", peer=self.peer, reason=reason, listener=self.listener_name)
        self.closed = True
        raw.abort()
        self.connection_lost(None)  # (idempotent: the TLS protocol may have called it already)

    def _established(self) -> None:
        """The connection is admitted and, on TLS, its handshake done: serve it."""
        transport = self.transport
        if self.memory.over:
            transport.pause_reading()
        sock = transport.get_extra_info("socket")
        self._sock_fd = sock.fileno() if sock is not None and not self.tls else -1
        if self.tls and self.sasl is None:
            principal = tls.certificate_principal(transport.get_extra_info("peercert"),
                                                  self.broker.config.principal_mappers[self.listener_name])
            if principal is None:
                self.abort("no ssl.principal.mapping.rules rule maps the client certificate's subject")
                return
            self.principal = principal
            if principal != tls.ANONYMOUS:
                log.info("authenticated", peer=self.peer, principal=principal, listener=self.listener_name,
                         mechanism="certificate")
        self.broker.connections.add(self)
        if self.broker.faults is not None and not self.broker.faults.accept(self):
            return  # odradek.testing: an isolated node closed the connection
        self._task = asyncio.get_running_loop().create_task(self._serve())

    @property
    def node_id(self) -> int | None:
        """The node this connection authenticated as (node.principals); None when that is
        not configured or the principal is not a node's."""
        nodes = self.broker.config.node_ids_by_principal
        return None if nodes is None else nodes.get(self.principal)

    def get_buffer(self, sizehint):
        return self.decoder.get_buffer()

    def buffer_updated(self, nbytes):
        if self.closed:
            return
        self.last_active = time.monotonic()
        try:
            frames = self.decoder.buffer_updated(nbytes)
        except FrameError as e:
            self.abort(str(e))
            return
        self.memory.charge(self, nbytes)  # after decoding: the finisher is chosen by what is missing
        if frames:
            self.frames.extend(frames)
            self.frame_times.extend([time.perf_counter()] * len(frames))
            self._wakeup.set()
            if len(self.frames) >= self.max_queued:
                self._queue_full = True
            self.memory.frames_completed(self)
        self.update_reading()

    def eof_received(self):
        return False  # close our side too; pending responses have nowhere to go

    def connection_lost(self, exc):
        self.closed = True
        if self._admitted:
            self._admitted = False
            self.broker.limits.release(self.peer[0] if self.peer else "", self._exempt)
        self.memory.release(self, self.held)
        self.broker.connections.discard(self)
        shares = getattr(self.broker, "shares", None)
        if shares is not None:  # its share sessions end (broker.share.session)
            shares.connection_closed(self)
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
        self.update_reading()

    def resume_writing(self):
        self.last_active = time.monotonic()
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self.update_reading()

    # -- serving ----------------------------------------------------------------
    def waits_on_itself(self) -> bool:
        """Whether this connection's own backlog stops it reading: its queue of requests,
        its unsent responses, or its share of queued.max.request.bytes (RequestMemory)."""
        return (self._queue_full or self._write_paused
                or self.held - self.decoder.buffered >= self.memory.share)

    def update_reading(self):
        """Read unless this connection waits on itself, is muted by a quota's throttle, or the
        total of queued request bytes is over its limit (RequestMemory)."""
        if self.closed:
            return
        if self._muted_until > time.monotonic():
            self.memory.step_down(self)
            self.transport.pause_reading()  # _serve reads on once the throttle time is over
        elif self.waits_on_itself():
            self.memory.step_down(self)
            self.transport.pause_reading()
        elif not self.memory.may_read(self):
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def check_idle(self, now: float, idle_s: float) -> None:
        """Close this connection if idle for ``idle_s`` (see close_idle_connections)."""
        if self.closed:
            return
        buffered = self.transport.get_write_buffer_size()
        if buffered < self._write_buffer_seen or self._handling:
            self.last_active = now
        self._write_buffer_seen = buffered
        if now - self.last_active > idle_s:
            self.abort(f"idle for more than connections.max.idle.ms ({idle_s * 1000:.0f} ms)")

    def abort(self, reason: str) -> None:
        """Close this connection at once, logging why (once)."""
        if not self.closed:
            log.warning("connection_closed", peer=self.peer, reason=reason)
            self.closed = True
            self.transport.abort()

    async def _serve(self):
        try:
            while not self.closed:
                if self._muted_until > time.monotonic():
                    # A quota's throttle time (broker.quotas): nothing is read or served. A timer
                    # may fire a little early, and update_reading would then pause again for good.
                    while (muted := self._muted_until - time.monotonic()) > 0:
                        await asyncio.sleep(muted + 0.001)
                    self.update_reading()
                while not self.frames:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                frame, received = self.frames.popleft(), self.frame_times.popleft()
                if self._queue_full and len(self.frames) < self.max_queued:
                    self._queue_full = False
                    self.update_reading()
                if self._sender is not None and (peek_header(frame)[0] != PRODUCE_KEY
                                      or len(self._pending) >= self.max_queued):
                    await self._sender  # every earlier response is sent first
                await self._handle(frame, received)
                self.memory.release(self, 4 + len(frame))
                if self._close_after is not None:
                    self._flush()  # the answer (a failed authentication) goes out first
                    log.warning("connection_closed", peer=self.peer, reason=self._close_after)
                    self.closed = True
                    self.transport.close()
                    return
                self.update_reading()
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

    def close_after_response(self, reason: str) -> None:
        """Close once the response being made is sent (a failed SASL authentication)."""
        self._close_after = reason

    def authenticated(self, principal: str) -> None:
        """SASL completed: ``principal`` holds, and frames may be large again."""
        self.principal = principal
        self.decoder.max_frame = self.broker.config["socket.request.max.bytes"]
        log.info("authenticated", peer=self.peer, principal=principal, listener=self.listener_name,
                 mechanism=self.sasl.mechanism if self.sasl else None)

    async def _raw_sasl_token(self, frame: memoryview) -> None:
        """After a v0 SaslHandshake: a bare token in, a bare token out (no headers)."""
        assert self.sasl is not None
        try:
            answer = self.sasl.authenticate(bytes(frame), time.monotonic())
        except sasl.AuthenticationFailed as e:
            raise CloseConnection(f"SASL authentication failed: {e}") from None
        if self.sasl.authenticated:
            self.authenticated(self.sasl.principal or tls.ANONYMOUS)
        self._out.append(len(answer).to_bytes(4, "big") + answer)
        self._out_bytes += 4 + len(answer)
        self._flush()

    async def _handle(self, frame: memoryview, received: float) -> None:
        arrived = time.perf_counter()
        if self.sasl is not None and self.sasl.expired(time.monotonic()) and (
                peek_header(frame)[0] not in (sasl.SASL_HANDSHAKE, sasl.SASL_AUTHENTICATE)):
            raise CloseConnection("the SASL session ended (connections.max.reauth.ms) and the "
                                  "client did not re-authenticate")
        if self.sasl is not None and not self.sasl.authenticated:
            if self.sasl.raw_tokens and self.sasl.state == sasl.AUTHENTICATING:
                await self._raw_sasl_token(frame)
                return
            if not self.sasl.allows(peek_header(frame)[0]):
                raise CloseConnection(f"API key {peek_header(frame)[0]} before SASL authentication "
                                      f"completed (state {self.sasl.state})")
        api_key, api_version, correlation_id = peek_header(frame)
        handler: Handler | None = self.broker.handlers.get(api_key)
        if handler is None:
            raise DecodeError(f"unknown API key {api_key}")
        if not handler.client_facing and not self.internode:
            raise CloseConnection(f"inter-node request on client listener {self.listener_name} "
                                  f"(API key {api_key}); only {sorted(self.broker.config.internode_listeners)} "
                                  "serve other nodes")
        peers = self.broker.config.peer_principals  # None: the inter-node listener is PLAINTEXT
        if not handler.client_facing and peers is not None and (
                self.principal == tls.ANONYMOUS or (peers and self.principal not in peers)):
            raise CloseConnection(f"inter-node request (API key {api_key}) from {self.principal}, "
                                  "which is not a node's principal")
        if not handler.min_version <= api_version <= handler.max_version:
            if api_key == API_VERSIONS_KEY and api_version > handler.max_version:
                # KIP-511: a newer client's ApiVersions gets our ranges in a v0 body
                # (with UNSUPPORTED_VERSION) and the connection stays open.
                header = RequestHeader(api_key, api_version, correlation_id, None)
                await self._respond(handler, RequestContext(header, self.broker, self, arrived,
                                                            received=received), None)
                return
            raise DecodeError(f"API key {api_key} version {api_version} is not served "
                              f"({handler.min_version}..{handler.max_version})")
        header, pos = decode_header(frame, is_flexible(handler.request_class, api_version))
        self.client_id = header.client_id
        self.requests += 1
        request = decode_body(handler.request_class, api_version, frame[pos:])
        await self._respond(handler, RequestContext(header, self.broker, self, arrived, 4 + len(frame), received),
                            request)

    async def _respond(self, handler: Handler, ctx: RequestContext, request) -> None:
        faults = self.broker.faults  # odradek.testing's injected faults; None outside tests
        self._handling += 1
        try:
            denied = (None if request is None or not handler.client_facing else
                      denied_before(handler.api_key, self.broker.authorizer, self.principal, ctx.host, request))
            if denied is not None:
                response = error_response(handler.response_class, request, ctx.response_version, denied)
                if response is None:
                    raise CloseConnection(f"{handler.request_name} denied ({denied.name}) and its response "
                                          "cannot carry the error")
            else:
                response = await (handler.handle(ctx, request) if faults is None
                                  else faults.handle(handler, ctx, request))
        except (DecodeError, CloseConnection):
            raise
        except Exception:
            response = self._failed(handler, ctx, request)
        finally:
            self._handling -= 1
        ctx.handled = time.perf_counter()
        if handler.client_facing and request is not None:
            self._throttle(ctx, response)
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

    def _throttle(self, ctx: RequestContext, response) -> None:
        """Client quotas (broker.quotas): count the handler's time against request_percentage,
        put the throttle time in the response (a handler that counted bytes may have set it
        already) and mute this connection for that long, as Kafka does (KIP-219)."""
        ctx.record_quota(REQUEST_PERCENTAGE, (ctx.handled - ctx.arrived) * 100)
        if ctx.throttle_ms <= 0:
            return
        if response is not None and not isinstance(response, (Deferred, ChunkedResponse)) \
                and hasattr(response, "throttle_time_ms"):
            response.throttle_time_ms = max(response.throttle_time_ms or 0, ctx.throttle_ms)
        self._muted_until = max(self._muted_until, time.monotonic() + ctx.throttle_ms / 1000)
        self.update_reading()

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

    def _trace(self, handler: Handler, ctx: RequestContext, now: float, error_code) -> None:
        """The live view of the protocol (log.level=debug): who sent what, how big, how long.
        Logged when the response leaves, so the latency is the whole of it."""
        software, software_version = self.client_software
        log.debug("request", client_id=self.client_id, client_software=software,
                  client_software_version=software_version,
                  principal=getattr(self, "principal", "User:ANONYMOUS"),
                  listener=self.listener_name, peer=self.peer, api=handler.request_name,
                  api_version=ctx.header.api_version, correlation_id=ctx.header.correlation_id,
                  request_bytes=ctx.size, latency_ms=round((now - ctx.arrived) * 1000, 3),
                  error_code=error_code)

    def describe(self) -> dict:
        """This connection for /connections and ``odradek cluster connections``."""
        software, software_version = self.client_software
        peer = f"{self.peer[0]}:{self.peer[1]}" if self.peer else None
        return {"listener": self.listener_name, "peer": peer, "client_id": self.client_id,
                "client_software_name": software, "client_software_version": software_version,
                "principal": getattr(self, "principal", "User:ANONYMOUS"), "requests": self.requests,
                "age_s": round(time.time() - self.connected_at, 1)}

    async def _send(self, handler: Handler, ctx: RequestContext, response) -> None:
        now = time.perf_counter()
        error_code = getattr(response, "error_code", None) if handler.top_error else None
        timing = self.broker.stats.request_done(handler.request_name, ctx.header.api_version, ctx.received,
                                                ctx.arrived, ctx.handled, now, error_code)
        if self.trace:
            self._trace(handler, ctx, now, error_code)
        if response is None or self.closed:
            timing.sent(ctx.received, now, now)
            return  # acks=0 produce: no response at all
        version = ctx.response_version
        # ApiVersions responses always use header v0 (see protocol.api).
        flexible = handler.api_key != API_VERSIONS_KEY and is_flexible(handler.response_class, version)
        head = response_header(ctx.header.correlation_id, flexible)
        if isinstance(response, ChunkedResponse):
            try:
                await self._send_chunks(head, response.chunks)
                timing.sent(ctx.received, now, time.perf_counter())  # on the socket (sendfile)
            finally:
                if response.release is not None:
                    response.release()
            return
        body = response.encode(version=version)
        self._out.append((len(head) + len(body)).to_bytes(4, "big") + head + body)
        self._out_bytes += len(self._out[-1])
        self._out_timing.append((timing, ctx.received, now))
        if not self._flush_soon:
            # At the latest when this connection's task next waits: the request queued
            # behind this one may park (a Fetch long poll, a JoinGroup until the
            # rebalance), and this response must not wait with it. Requests served
            # without waiting still share one write.
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Hand the buffered responses to the transport in one write.

        Responses to pipelined requests are held until the queue of waiting
        requests is empty (or COALESCE_BYTES have built up), so a burst of small
        requests costs one send syscall instead of one each; but never past the
        next time the connection's task waits (see ``_send``).
        """
        if self._out and not self.closed:
            self.last_active = time.monotonic()
            self.transport.writelines(self._out)
            if self._out_timing:  # ResponseSendTimeMs: from ready to handed to the transport
                sent = time.perf_counter()
                for timing, received, ready in self._out_timing:
                    timing.sent(received, ready, sent)
        self._out, self._out_bytes, self._out_timing = [], 0, []
        self._flush_soon = False

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
        if self.tls:
            await self._send_chunks_read(first, chunks)
            return
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
                        continue
                    self.last_active = time.monotonic()
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
                    self.last_active = time.monotonic()
            if self.closed:
                return

    async def _send_chunks_read(self, first: bytes, chunks: list) -> None:
        """The frame through the transport (TLS, which sendfile would bypass): each file
        slice is read off the event loop in pieces of TLS_READ_BYTES, and the next piece
        waits while the transport's buffer is above its high-water mark, so no more than
        a piece and that buffer are held, whatever the slice's size."""
        loop = asyncio.get_running_loop()
        self.transport.write(first)
        for chunk in chunks:
            if isinstance(chunk, (bytes, bytearray)):
                self.transport.write(chunk)
                continue
            done = 0
            while done < chunk.size and not self.closed:
                piece = await loop.run_in_executor(None, os.pread, chunk.fd,
                                                   min(TLS_READ_BYTES, chunk.size - done),
                                                   chunk.position + done)
                if not piece:  # the file is shorter than the slice: the frame cannot be completed
                    raise CloseConnection("segment shrank while being sent")
                if self.closed:
                    return
                self.transport.write(piece)
                done += len(piece)
                self.last_active = time.monotonic()
                if self._write_paused and self._drained is not None:
                    await self._drained

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
        # TLS listeners too accept plain TCP: Connection starts TLS once it admitted the client
        server = await loop.create_server(
            lambda name=listener.name: Connection(broker, name),
            listener.host or None, listener.port, reuse_address=True)
        servers.append(server)
    return servers

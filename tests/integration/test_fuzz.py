"""In-process fuzzing of the request path: the frame decoder, the request header and body
decoders and the handlers, fed mutated golden frames (tests/unit/golden) and random
frames by hypothesis, against a broker on its own thread and loop in this process.

For every input: the broker logs no ``handler_failed`` or ``request_failed`` (an
exception other than a decode error escaped the codec or a handler: a bug), another
client that stays connected throughout is served after it, and the process's memory
stays bounded.  The fuzzed connection itself may be answered, closed, or left waiting
(a Fetch may long-poll): it gets MAX_WAIT_S, then is dropped.

``make test`` runs it for FUZZ_SECONDS (default a few seconds); ``make fuzz`` longer.
A failure prints the shrunk frame; add it as a regression test before fixing.
"""

import os
import resource
import socket
import struct
import time
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse

from odradek.broker import server
from odradek.broker.handlers import load_handlers
from tests.rawclient import RawConnection
from tests.threaded_broker import ThreadedBroker

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "4"))
MAX_WAIT_S = 1.0  # how long a fuzzed connection may keep the broker's answer
MEMORY_BOUND = 256 * 2**20  # growth of this process's peak RSS over a run
GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "golden"
SEEDS = [p.read_bytes() for p in sorted(GOLDEN.glob("*/*-request.bin"))]
SERVED = {key: (h.min_version, h.max_version) for key, h in load_handlers().items() if h.client_facing}
BUGS = {"handler_failed", "request_failed"}
PROBE = "fuzz_oracle_probe"


@st.composite
def mutated_golden(draw) -> bytes:
    """A real client's request with a few bytes changed, inserted, removed or cut."""
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "insert", "delete", "cut", "version", "int"]))
        at = draw(st.integers(0, len(frame)))
        if op == "set" and at < len(frame):
            frame[at] = draw(st.integers(0, 255))
        elif op == "insert":
            frame[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del frame[at:at + draw(st.integers(1, 8))]
        elif op == "cut":
            del frame[at:]
        elif op == "version" and len(frame) >= 4:  # another served version of the same API
            lo, hi = SERVED.get(struct.unpack_from(">h", frame)[0], (0, 0))
            struct.pack_into(">h", frame, 2, draw(st.integers(lo, hi)))
        elif op == "int" and at + 4 <= len(frame):  # a count, length or size at its extremes
            value = draw(st.sampled_from([-2, -1, 0, 1, 2**15 - 1, 2**31 - 1, -(2**31)]))
            struct.pack_into(">i", frame, at, value)
    return bytes(frame)


@st.composite
def random_request(draw) -> bytes:
    """A valid header for a served API and version, then random bytes for its body."""
    key = draw(st.sampled_from(sorted(SERVED)))
    version = draw(st.integers(*SERVED[key]))
    client = draw(st.one_of(st.none(), st.text(max_size=10)))
    client_bytes = b"" if client is None else client.encode()
    head = struct.pack(">hhih", key, version, draw(st.integers(-(2**31), 2**31 - 1)),
                       -1 if client is None else len(client_bytes)) + client_bytes
    return head + draw(st.binary(max_size=200))


FRAMES = st.one_of(mutated_golden(), random_request(), st.binary(max_size=64))
STREAMS = st.one_of(  # the frame decoder: any size field, any cut; pipelined requests
    st.lists(FRAMES, min_size=1, max_size=4).map(
        lambda fs: b"".join(struct.pack(">i", len(f)) + f for f in fs)),
    st.binary(min_size=1, max_size=64),
    st.tuples(st.integers(-(2**31), 2**31 - 1), st.binary(max_size=32)).map(
        lambda t: struct.pack(">i", t[0]) + t[1]),
)


class Events:
    """Collects the broker's log events (structlog is process-wide; the broker's thread
    logs through it); what a test needs is the events that name bugs."""

    def __init__(self) -> None:
        self.bugs: list[dict] = []
        self.probed = False

    def __call__(self, _logger, method: str, event: dict):
        if event.get("event") in BUGS:
            self.bugs.append(dict(event))
        self.probed = self.probed or event.get("event") == PROBE
        raise structlog.DropEvent


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    events = Events()
    previous = structlog.get_config()
    structlog.configure(processors=[structlog.processors.format_exc_info, events],
                        cache_logger_on_first_use=False)
    broker = None
    try:
        server.log.warning(PROBE)  # the server's own logger reaches us (none cached earlier)
        assert events.probed, "structlog was configured with cached loggers: the oracle is blind"
        broker = ThreadedBroker(tmp_path_factory.mktemp("fuzz"), {"num.partitions": "1"}).start()
        yield broker, events
    finally:
        if broker is not None:
            broker.stop()
        structlog.configure(**previous)


def whole_frames(stream: bytes) -> int:
    """How many frames ``stream`` is, if it is whole frames and nothing else (else 0)."""
    pos = count = 0
    while len(stream) - pos >= 4:
        size = struct.unpack_from(">i", stream, pos)[0]
        if size < 0 or pos + 4 + size > len(stream):
            return 0
        pos, count = pos + 4 + size, count + 1
    return count if pos == len(stream) else 0


def send_and_drop(bootstrap: str, stream: bytes) -> None:
    """Send ``stream`` on a new connection.  If it is whole frames, wait up to MAX_WAIT_S
    for as many answers or the close; else half-close at once (the broker would wait for
    the rest of a frame) and read until it closes too."""
    host, port = bootstrap.rsplit(":", 1)
    frames = whole_frames(stream)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(stream)
        if frames:
            s.settimeout(MAX_WAIT_S)
        else:
            s.shutdown(socket.SHUT_WR)
        got = b""
        try:
            while data := s.recv(65536):
                got += data
                if whole_frames(got) >= frames > 0:
                    return  # the answers (the broker may still be working as we close)
        except (TimeoutError, ConnectionResetError):
            pass


def check_served(good: RawConnection) -> None:
    """The connection opened before the fuzzing still gets answers (socket timeout: 10 s)."""
    assert good.roundtrip(ApiVersionsRequest(), 0, ApiVersionsResponse).error_code == 0


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_fuzzed_requests_hurt_nobody(fuzzed) -> None:
    broker, events = fuzzed
    good = RawConnection(broker.bootstrap, timeout=10)
    start_rss = peak_rss()

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(stream=STREAMS)
    def one_round(stream: bytes) -> None:
        events.bugs.clear()
        send_and_drop(broker.bootstrap, stream)
        check_served(good)  # also lets the broker log what this input did
        assert not events.bugs, f"input {stream.hex()} raised in the broker: {events.bugs[0]}"

    try:
        end = time.monotonic() + FUZZ_SECONDS
        rounds = 0
        while rounds == 0 or time.monotonic() < end:  # at least one round of 40 inputs
            one_round()
            rounds += 1
        assert peak_rss() - start_rss < MEMORY_BOUND
        print(f"{rounds * 40} inputs in {rounds} rounds")
    finally:
        good.close()

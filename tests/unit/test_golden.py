"""Golden frames: requests and responses that kafka-python, aiokafka, librdkafka and the
Java client exchanged with Odradek (captured by ``python -m tests.unit.golden.capture``),
decoded with our codec and re-encoded byte for byte.  A codec change that reads or
writes one field differently from what real clients send or expect fails here."""

import re
import struct
from pathlib import Path

import pytest

from odradek.broker.handlers import load_handlers
from odradek.protocol.api import (
    API_VERSIONS_KEY,
    MESSAGE_CLASSES,
    DecodeError,
    decode_body,
    decode_header,
    is_flexible,
    peek_header,
    response_header,
)

GOLDEN = Path(__file__).resolve().parent / "golden"
NAME = re.compile(r"\d+-(\w+)-v(\d+)-(request|response)\.bin")
BY_NAME = {req.__name__.removesuffix("Request"): key for key, (req, _) in MESSAGE_CLASSES.items()}
FILES = sorted(GOLDEN.glob("*/*.bin"))


def parse_name(path: Path) -> tuple[int, int, str]:
    api, version, kind = NAME.fullmatch(path.name).groups()
    return BY_NAME[api], int(version), kind


def test_every_client_has_golden_frames() -> None:
    clients = {p.parent.name for p in FILES}
    assert {"kafka_python", "aiokafka", "confluent", "java"} <= clients
    for client in clients:
        apis = {parse_name(p)[0] for p in FILES if p.parent.name == client}
        assert {0, 1, 3, 8, 9, 11, 14, 18} <= apis, client  # Produce ... ApiVersions


def encode_request_header(api_key: int, version: int, correlation_id: int,
                          client_id: str | None, flexible: bool) -> bytes:
    """Request header v1/v2 (no tagged fields): what the codec's decode_header reads."""
    cid = b"" if client_id is None else client_id.encode()
    head = struct.pack(">hhih", api_key, version, correlation_id, -1 if client_id is None else len(cid))
    return head + cid + (b"\x00" if flexible else b"")


def reencode(message, version: int) -> bytes:
    """kafka-python's decode leaves the message's ``_header`` slot unset, and encode reads
    it: a decoded message cannot be encoded as it is (kafka-python 3.0.x)."""
    message._header = None
    return bytes(message.encode(version=version))


@pytest.mark.parametrize("path", [p for p in FILES if p.name.endswith("request.bin")],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_request_reencodes_byte_identically(path: Path) -> None:
    api_key, version, _ = parse_name(path)
    frame = memoryview(path.read_bytes())
    request_cls = MESSAGE_CLASSES[api_key][0]
    if api_key == API_VERSIONS_KEY and version > request_cls.max_version:
        # the Java client tries a version newer than any we know; the server answers it
        # from peek_header alone (KIP-511), so the body is never decoded
        assert peek_header(frame)[:2] == (api_key, version)
        with pytest.raises(DecodeError):
            decode_body(request_cls, version, frame[8:])
        return
    flexible = is_flexible(request_cls, version)
    header, pos = decode_header(frame, flexible)
    assert (header.api_key, header.api_version) == (api_key, version)
    request = decode_body(request_cls, version, frame[pos:])
    again = encode_request_header(api_key, version, header.correlation_id, header.client_id, flexible)
    assert again + reencode(request, version) == bytes(frame)


@pytest.mark.parametrize("path", [p for p in FILES if p.name.endswith("response.bin")],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_response_reencodes_byte_identically(path: Path) -> None:
    api_key, version, _ = parse_name(path)
    frame = path.read_bytes()
    response_cls = MESSAGE_CLASSES[api_key][1]
    if api_key == API_VERSIONS_KEY:
        # header v0 always; a version above ours is answered in a v0 body (KIP-511)
        flexible = False
        version = min(version, load_handlers()[API_VERSIONS_KEY].max_version)
        if version < int(NAME.fullmatch(path.name).group(2)):
            version = 0
    else:
        flexible = is_flexible(response_cls, version)
    correlation_id = struct.unpack_from(">i", frame)[0]
    head = response_header(correlation_id, flexible)
    assert frame.startswith(head)
    response = response_cls.decode(frame[len(head):], version=version)
    assert head + reencode(response, version) == frame

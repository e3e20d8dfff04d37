"""Request/response codec: the Kafka request header, and message bodies through
kafka-python's generated schemas (``kafka.protocol``, built from Kafka's JSON specs).

Request header (v1 for non-flexible versions, v2 for flexible ones)::

    api_key int16 | api_version int16 | correlation_id int32 | client_id nullable string (int16 length)
    [v2: tagged fields (unsigned varint count, then tag, size, bytes)]

client_id stays a non-compact string even in header v2 (a Kafka quirk kept for
ApiVersions negotiation). Response header v0 is the correlation id alone; v1 adds
an empty tagged-field section. ApiVersions responses always use header v0, whatever
the version, because the client parses them before it knows our versions (KIP-511).

kafka-python's classes declare a minimum version of 0 for every API, so our served
ranges are declared by the handlers, never derived from these classes.
"""

import importlib
import inspect
import pkgutil
import struct
from dataclasses import dataclass
from typing import Any

import kafka.protocol.admin
import kafka.protocol.consumer
import kafka.protocol.metadata
import kafka.protocol.producer
import kafka.protocol.sasl
from kafka.protocol.api_message import ApiMessage

from odradek.protocol.internode import (
    CONTROLLER_API_KEY,
    RAFT_API_KEY,
    SHARE_STATE_API_KEY,
    ControllerRequest,
    ControllerResponse,
    RaftRequest,
    RaftResponse,
    ShareStateRequest,
    ShareStateResponse,
)
from odradek.protocol.messages import CLASSES as KIP848_CLASSES

PRODUCE_KEY = 0
API_VERSIONS_KEY = 18

_HEADER = struct.Struct(">hhih")
_CORRELATION = struct.Struct(">i")


class DecodeError(Exception):
    """A frame that is not a request we can decode; the connection must close."""


@dataclass(slots=True, frozen=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def _is_message_class(cls: Any) -> bool:
    return (inspect.isclass(cls) and issubclass(cls, ApiMessage)
            and getattr(cls, "_json", None) is not None)


def _load_classes() -> dict[int, tuple[Any, Any]]:
    """Map api key -> (request class, response class) from kafka-python's schemas."""
    requests: dict[int, type[Any]] = {}
    responses: dict[int, type[Any]] = {}
    for pkg in (kafka.protocol.admin, kafka.protocol.consumer, kafka.protocol.metadata,
                kafka.protocol.producer):
        for info in pkgutil.iter_modules(pkg.__path__):
            module = importlib.import_module(f"{pkg.__name__}.{info.name}")
            for cls in vars(module).values():
                if _is_message_class(cls):
                    (requests if cls.is_request() else responses)[cls.API_KEY] = cls
    for cls in vars(kafka.protocol.sasl).values():  # a module of its own, not a package
        if _is_message_class(cls):
            (requests if cls.is_request() else responses)[cls.API_KEY] = cls
    return {key: (requests[key], responses[key]) for key in requests if key in responses}


MESSAGE_CLASSES: dict[int, tuple[Any, Any]] = _load_classes()  # kafka-python's (untyped) classes
# Our inter-node requests (never offered to clients; see protocol.internode).
# The APIs kafka-python lacks, from Kafka 4.4's specs (see protocol.messages).
MESSAGE_CLASSES.update({req.API_KEY: (req, resp) for req, resp in KIP848_CLASSES})
MESSAGE_CLASSES[RAFT_API_KEY] = (RaftRequest, RaftResponse)
MESSAGE_CLASSES[CONTROLLER_API_KEY] = (ControllerRequest, ControllerResponse)
MESSAGE_CLASSES[SHARE_STATE_API_KEY] = (ShareStateRequest, ShareStateResponse)


def _skip_tagged_fields(buf: memoryview, pos: int) -> int:
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise DecodeError("tagged field runs past the end of the frame")
    return pos


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode an unsigned varint (at most 5 bytes, as Kafka's int32 varints are)."""
    result = shift = 0
    for _i in range(5):
        if pos >= len(buf):
            raise DecodeError("varint runs past the end of the frame")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise DecodeError("varint longer than 5 bytes")


def peek_header(frame: memoryview) -> tuple[int, int, int]:
    """api_key, api_version, correlation_id: enough to answer or refuse a request."""
    if len(frame) < 8:
        raise DecodeError(f"frame of {len(frame)} bytes is shorter than a request header")
    api_key, api_version, correlation_id = struct.unpack_from(">hhi", frame, 0)
    return api_key, api_version, correlation_id


def decode_header(frame: memoryview, flexible: bool) -> tuple[RequestHeader, int]:
    """Decode the request header; return it and the offset of the body."""
    if len(frame) < _HEADER.size:
        raise DecodeError(f"frame of {len(frame)} bytes is shorter than a request header")
    api_key, api_version, correlation_id, client_len = _HEADER.unpack_from(frame, 0)
    pos = _HEADER.size
    client_id = None
    if client_len >= 0:
        end = pos + client_len
        if end > len(frame):
            raise DecodeError("client_id runs past the end of the frame")
        try:
            client_id = str(frame[pos:end], "utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"client_id is not UTF-8: {e}") from None
        pos = end
    elif client_len != -1:
        raise DecodeError(f"client_id length {client_len}")
    if flexible:
        pos = _skip_tagged_fields(frame, pos)
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def decode_body(request_cls: Any, version: int, body: memoryview):
    """Decode a request body; any failure of the schema codec becomes DecodeError, and so
    does a null where the schema allows none (see ``_refuse_nulls``)."""
    try:
        request = request_cls.decode(body, version=version)
    except DecodeError:
        raise
    except Exception as e:  # the generated codec raises struct.error, ValueError, IndexError...
        raise DecodeError(f"undecodable {request_cls.__name__} v{version}: {type(e).__name__}: {e}") from None
    schema = getattr(request_cls, "_struct", None)  # None: our JSON inter-node bodies
    if schema is not None:
        _refuse_nulls(request, schema.fields, version)
    return request


# (id of a struct's field dict, version) -> (fields that may not be null, struct fields to
# descend into); the field dicts live as long as kafka-python's classes, i.e. forever.
_NULL_CHECKS: dict[tuple[int, int], tuple[tuple[str, ...], tuple[str, ...],
                                          tuple[tuple[str, dict, bool], ...]]] = {}


_NULLABLE_TYPES = {"string", "bytes", "records"}  # and arrays, structs; numbers never decode to None


def _null_checks(fields: dict, version: int):
    key = (id(fields), version)
    checks = _NULL_CHECKS.get(key)
    if checks is None:
        required, elements, nested = [], [], []
        for name, field in fields.items():
            if not field.for_version_q(version) or field.tagged_field_q(version):
                continue
            if not field.nullable_for_version_q(version) and (
                    field.is_array() or field.is_struct() or field.type_str in _NULLABLE_TYPES):
                required.append(name)
            if field.is_struct_array() or field.is_struct():
                nested.append((name, field.fields, field.is_struct_array()))
            elif field.is_array() and field.type_str[2:] in _NULLABLE_TYPES:
                elements.append(name)  # the elements of a []string are never null in Kafka
        checks = _NULL_CHECKS[key] = (tuple(required), tuple(elements), tuple(nested))
    return checks


def _refuse_nulls(message, fields: dict, version: int) -> None:
    """Kafka refuses a null (length -1, or 0 when compact) in a field whose schema is not
    nullable at this version; kafka-python decodes it as None, which handlers would
    trip over (``for t in request.topics``).  Refuse it here, as a decode error."""
    required, elements, nested = _null_checks(fields, version)
    for name in required:
        if getattr(message, name) is None:
            raise DecodeError(f"null {name} in {type(message).__name__} v{version}, "
                              "whose schema does not allow it")
    for name in elements:
        if None in (getattr(message, name) or ()):
            raise DecodeError(f"null element in {name} of {type(message).__name__} v{version}")
    for name, inner, is_array in nested:
        value = getattr(message, name)
        for item in (value or ()) if is_array else (() if value is None else (value,)):
            _refuse_nulls(item, inner, version)


def response_header(correlation_id: int, flexible: bool) -> bytes:
    """Response header v0, or v1 (an empty tagged-field section) for flexible versions."""
    head = _CORRELATION.pack(correlation_id)
    return head + b"\x00" if flexible else head


def is_flexible(message_cls: Any, version: int) -> bool:
    return message_cls.flexible_version_q(version)

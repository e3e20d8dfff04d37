"""The request handlers, one module per API, and the registry they declare into.

A handler module decorates its coroutine with ``@handles(RequestClass, min, max)``:
the versions it serves are declared once, there, and ApiVersions is built from
this registry. kafka-python's classes report a minimum version of 0 for every
API, so the declared range is ours and is checked against Kafka's specs by a test.
"""

import importlib
import pkgutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from odradek.protocol.api import MESSAGE_CLASSES


@dataclass(frozen=True, slots=True)
class Handler:
    api_key: int
    min_version: int
    max_version: int
    request_class: type
    response_class: type
    handle: Callable[..., Awaitable[Any]]
    client_facing: bool  # False for our inter-node APIs, which ApiVersions never offers
    request_name: str = ""  # Kafka's name for metrics: ProduceRequest -> Produce
    top_error: bool = False  # whether responses have a top-level error_code (for metrics)


HANDLERS: dict[int, Handler] = {}


def handles(request_class: type, min_version: int, max_version: int, *, client_facing: bool = True):
    """Register the decorated ``async def handle(ctx, request)`` for this API's versions."""
    api_key = request_class.API_KEY

    def register(fn):
        if api_key in HANDLERS:
            raise RuntimeError(f"two handlers for API key {api_key}")
        HANDLERS[api_key] = Handler(api_key, min_version, max_version, request_class,
                                    MESSAGE_CLASSES[api_key][1], fn, client_facing,
                                    request_class.__name__.removesuffix("Request"),
                                    "error_code" in getattr(MESSAGE_CLASSES[api_key][1], "fields", {}))
        return fn
    return register


def time_left(timeout_ms: int):
    """A request's timeout_ms as a function giving the seconds left of it, for controller
    calls made one after another (None when timeout_ms <= 0: the controller's default)."""
    deadline = time.monotonic() + timeout_ms / 1000
    return lambda: max(0.001, deadline - time.monotonic()) if timeout_ms > 0 else None


def error_response(response_class: type, request, version: int, code: int):
    """A response that carries only ``code``: in its top-level error_code, else (as Kafka's
    getErrorResponse does for Metadata, CreateTopics, DeleteTopics, CreatePartitions) in one
    entry per topic the request names; None when it can carry neither at ``version`` (then
    only closing the connection can tell the client)."""
    fields = getattr(response_class, "fields", {})  # (our inter-node JSON responses: none)
    field = fields.get("error_code")
    if field is not None and field.for_version_q(version):
        response = response_class()
        response.error_code = code
        return response
    names = getattr(request, "topic_names", None) or [
        t.name for t in getattr(request, "topics", None) or [] if getattr(t, "name", None)]
    for name, field in fields.items():
        if (names and field.is_struct_array() and field.for_version_q(version)
                and {"name", "error_code"} <= field.data_class.fields.keys()):
            return response_class(**{name: [field.data_class(name=n, error_code=code) for n in names]})
    return None


def load_handlers() -> dict[int, Handler]:
    """Import every handler module of this package, which registers them."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return HANDLERS

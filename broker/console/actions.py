"""The console's few write actions: create a topic, delete a topic, delete a group.

The console is read-only unless the node runs an authorizer (``authorizer.class.name``):
only then can a change be tied to a principal that Kafka's ACLs allow it. So a POST is
taken only when, in this order (``refusal``):

1. the node has an authorizer, else 403 saying the console is read-only;
2. it carries the ``X-Odradek-Console`` header, else 403: a cross-site form cannot set a
   header, and a cross-site script that sets one needs a CORS preflight (OPTIONS),
   which this server refuses, so only the console's own page (static/console.js) can;
3. it carries HTTP Basic credentials of a SCRAM user the node stores (the users of
   ``odradek users`` / AlterUserScramCredentials), checked by the same derivation as a
   SCRAM exchange (``sasl.password_matches``), else 401, which asks the browser to log in.

The principal is then ``User:<name>``, as a SASL/SCRAM client's, and the action is the
Kafka API's own handler (CreateTopics, DeleteTopics, DeleteGroups) called with a
``RequestContext`` whose connection is this HTTP request: the same authorization
(``ctx.may``, broker.authorizer.ACCESS), validation and controller call a Kafka client
meets. The answer is its error as an HTTP status and a line of text.
"""

import asyncio
import base64
import binascii
from typing import Any
from urllib.parse import parse_qs, unquote

import structlog

from odradek.broker import sasl
from odradek.protocol.api import RequestHeader
from odradek.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

HEADER = "x-odradek-console"  # (lower case: http.parse_headers)
TIMEOUT_MS = 10_000
LISTENER = "http.listener"
TEXT = "text/plain; charset=utf-8"
READ_ONLY = ("read-only: this node runs no authorizer (authorizer.class.name), so no change can be "
             "authorized; use a Kafka client or the odradek commands")
STATUS = {ErrorCode.NONE: 200, ErrorCode.TOPIC_AUTHORIZATION_FAILED: 403,
          ErrorCode.GROUP_AUTHORIZATION_FAILED: 403, ErrorCode.CLUSTER_AUTHORIZATION_FAILED: 403,
          ErrorCode.TOPIC_ALREADY_EXISTS: 409, ErrorCode.NON_EMPTY_GROUP: 409,
          ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: 404, ErrorCode.GROUP_ID_NOT_FOUND: 404,
          ErrorCode.REQUEST_TIMED_OUT: 504}


class HttpCaller:
    """What a ``RequestContext`` reads of its connection, for an HTTP request."""

    __slots__ = ("principal", "peer", "listener_name")

    def __init__(self, principal: str, peer):
        self.principal, self.peer, self.listener_name = principal, peer, LISTENER


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header; None if absent or bad."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user else None


def refusal(has_authorizer: bool, headers: dict[str, str]) -> tuple[int, str] | None:
    """Why a POST is refused before any credential is checked (steps 1-2), or None."""
    if not has_authorizer:
        return 403, READ_ONLY
    if headers.get(HEADER) is None:
        return 403, (f"refused: a console action needs the {HEADER} header (sent by the console's "
                     "page; a cross-site request cannot send it)")
    return None


async def principal(broker, authorization: str | None) -> str | None:
    """``User:<name>`` for Basic credentials matching a SCRAM credential of the node; else None."""
    from odradek.broker.server import scram_credential  # (lazy, as http.py imports this module)

    found = basic_credentials(authorization)
    if found is None:
        return None
    user, password = found
    for mechanism in sasl.SCRAM_MECHANISMS:
        credential = scram_credential(broker.image, user, mechanism)
        if credential is not None and await asyncio.to_thread(sasl.password_matches, mechanism, credential,
                                                              password):
            return f"User:{user}"
    return None


def _form(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _int(form: dict, key: str, default: int) -> int:
    value = form.get(key, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"{key} must be a whole number, not {value!r}") from None


def request_for(parts: list[str], form: dict[str, str]):
    """The Kafka request (api key, version, request) a console POST stands for; None: no
    such action; ValueError: a bad form."""
    from kafka.protocol.admin import CreateTopicsRequest, DeleteTopicsRequest
    from kafka.protocol.admin.groups import DeleteGroupsRequest

    if parts == ["topics"]:
        name = form.get("name", "").strip()
        if not name:
            raise ValueError("a topic needs a name")
        topic = CreateTopicsRequest.CreatableTopic(
            name=name, num_partitions=_int(form, "partitions", -1),
            replication_factor=_int(form, "replication_factor", -1), assignments=[], configs=[])
        return 19, 7, CreateTopicsRequest(topics=[topic], timeout_ms=TIMEOUT_MS, validate_only=False)
    if len(parts) == 3 and parts[0] == "topics" and parts[2] == "delete":
        return 20, 5, DeleteTopicsRequest(topic_names=[parts[1]], timeout_ms=TIMEOUT_MS)
    if len(parts) == 3 and parts[0] == "groups" and parts[2] == "delete":
        return 42, 2, DeleteGroupsRequest(groups_names=[parts[1]])
    return None


def _result(api_key: int, response) -> tuple[int, str | None]:
    if api_key == 19:
        r = response.topics[0]
        return r.error_code, r.error_message
    if api_key == 20:
        r = response.responses[0]
        return r.error_code, r.error_message
    return response.results[0].error_code, None


async def answer(broker, path: str, headers: dict[str, str], body: bytes, peer) -> tuple[int, bytes, str]:
    """(status, body, content type) for a POST of ``path`` under /console."""
    from odradek.broker.handlers import HANDLERS
    from odradek.broker.server import RequestContext

    def text(status: int, message: str) -> tuple[int, bytes, str]:
        return status, (message + "\n").encode(), TEXT

    refused = refusal(broker.authorizer is not None, headers)
    if refused is not None:
        return text(*refused)
    who = await principal(broker, headers.get("authorization"))
    if who is None:
        return text(401, "log in as a SCRAM user of this cluster (odradek users)")
    parts = [unquote(p) for p in path.split("/")[2:] if p]
    try:
        found = request_for(parts, _form(body))
    except ValueError as e:
        return text(400, f"bad form: {e}")
    if found is None:
        return text(404, f"no console action at {path}")
    api_key, version, request = found
    caller: Any = HttpCaller(who, peer)  # (what RequestContext reads of a Connection)
    ctx = RequestContext(RequestHeader(api_key, version, 0, "odradek-console"), broker, caller)
    code, message = _result(api_key, await HANDLERS[api_key].handle(ctx, request))
    error = ErrorCode(code)
    log.info("console_action", principal=who, path=path, error=error.name)
    what = f"{HANDLERS[api_key].request_name} {' '.join(parts[1:2]) or request.topics[0].name}"
    if error == ErrorCode.NONE:
        return text(200, f"done: {what}")
    return text(STATUS.get(error, 400), f"{what} failed: {error.name}" + (f": {message}" if message else ""))

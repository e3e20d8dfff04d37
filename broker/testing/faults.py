"""Faults inside a node's own networking layer, for odradek.testing (no root, no netns).

A node started by odradek.testing has a ``Faults`` as ``broker.faults`` (None
otherwise, and then nothing here runs). The server hands it each new connection
(``accept``) and each decoded request (``handle``), so it can:

- answer the next N requests of an API, optionally only those naming a topic or a
  partition, with an error code, without running the handler (a Produce answered
  NOT_LEADER_OR_FOLLOWER appended nothing, as in Kafka), in the spirit of franz-go
  kfake's ``ControlKey``. The error response mirrors the request: every topic and
  partition entry in it gets the code, and so does a top-level ``error_code``;
- delay them (then serve them), or drop the connection instead of answering;
- isolate the node: close ("refuse") or stop reading ("blackhole") every client and
  inter-node connection, and fail its own calls to other nodes (replication.peer's
  ``NETWORK_FAULTS``), until ``heal``.

A matching request is answered entirely by the rule: librdkafka puts every partition
a broker leads into one Produce, so a rule for one topic fails the others sent with it.
"""

import asyncio
from dataclasses import asdict, dataclass

import structlog

from odradek.broker.server import CloseConnection
from odradek.protocol.api import MESSAGE_CLASSES, PRODUCE_KEY
from odradek.protocol.errors import ErrorCode
from odradek.replication import peer

log = structlog.get_logger(__name__)

TOPIC_FIELDS = {"name", "topic", "topic_name"}
PARTITION_FIELDS = {"partition_index", "index", "partition", "partition_id"}
API_KEYS = {request.__name__.removesuffix("Request"): key
            for key, (request, _) in MESSAGE_CLASSES.items()}
ISOLATION_MODES = ("refuse", "blackhole")


@dataclass
class Rule:
    """Answer the next ``count`` matching requests of ``api_key`` this way (-1: every one)."""

    api_key: int
    count: int = 1
    error: int | None = None
    delay_s: float = 0.0
    drop: bool = False
    topic: str | None = None
    partition: int | None = None
    hits: int = 0


def api_key_of(api: str | int) -> int:
    """Kafka's API name without 'Request' ('Produce', 'Fetch', 'FindCoordinator') or key."""
    if isinstance(api, int):
        return api
    try:
        return API_KEYS[api]
    except KeyError:
        raise ValueError(f"unknown API {api!r}; one of {sorted(API_KEYS)}") from None


def error_code_of(error: str | int) -> int:
    """An ErrorCode name ('NOT_LEADER_OR_FOLLOWER') or number."""
    if isinstance(error, str):
        try:
            return ErrorCode[error]
        except KeyError:
            raise ValueError(f"unknown error code {error!r}: use ErrorCode's names") from None
    return int(error)


class Faults:
    """One node's injected faults: its rules, and whether (and how) it is isolated."""

    def __init__(self, broker):
        self.broker = broker
        self.rules: list[Rule] = []
        self.isolation: str | None = None
        self._healed = asyncio.Event()
        self._healed.set()

    # -- control (called on the node's loop) ------------------------------------------
    def inject(self, api: str | int, *, error: str | int | None = None, delay_s: float = 0.0,
               drop: bool = False, count: int = 1, topic: str | None = None,
               partition: int | None = None) -> dict:
        if error is None and not delay_s and not drop:
            raise ValueError("a fault needs error=, delay_s= or drop=True")
        rule = Rule(api_key_of(api), count, None if error is None else error_code_of(error),
                    delay_s, drop, topic, partition)
        self.rules.append(rule)
        log.warning("fault_injected", node_id=self.broker.node_id, **asdict(rule))
        return asdict(rule)

    def report(self) -> list[dict]:
        """Every rule with its hits; used-up rules stay listed (count 0) until ``clear``."""
        return [asdict(r) for r in self.rules]

    def clear(self) -> None:
        self.rules.clear()

    def isolate(self, mode: str = "refuse") -> None:
        if mode not in ISOLATION_MODES:
            raise ValueError(f"isolation mode {mode!r}; one of {ISOLATION_MODES}")
        self.isolation = mode
        self._healed.clear()
        peer.NETWORK_FAULTS[self.broker.node_id] = mode
        for conn in list(self.broker.connections):
            self._cut(conn)
        log.warning("isolated", node_id=self.broker.node_id, mode=mode)

    def heal(self) -> None:
        if self.isolation is None:
            return
        self.isolation = None
        self._healed.set()
        peer.NETWORK_FAULTS.pop(self.broker.node_id, None)
        for conn in list(self.broker.connections):
            conn.update_reading()  # reads again unless its own backpressure says not yet
        log.warning("healed", node_id=self.broker.node_id)

    # -- hooks called by broker.server ------------------------------------------------
    def accept(self, conn) -> bool:
        """False when the isolated node closed the connection; a blackholed one is
        served, but not read until ``heal``."""
        if self.isolation is not None:
            self._cut(conn)
        return self.isolation != "refuse"

    def _cut(self, conn) -> None:
        if self.isolation == "refuse":
            conn.abort("odradek.testing: node isolated")
        elif not conn.closed:
            conn.transport.pause_reading()

    async def handle(self, handler, ctx, request):
        """Serve a request, unless a rule answers it."""
        if self.isolation == "blackhole":  # read before the isolation began
            await self._healed.wait()
        rule = self._take(handler.api_key, request)
        if rule is None:
            return await handler.handle(ctx, request)
        if rule.delay_s:
            await asyncio.sleep(rule.delay_s)
        if rule.drop:
            raise CloseConnection("odradek.testing: injected drop")
        if rule.error is None:
            return await handler.handle(ctx, request)
        if handler.api_key == PRODUCE_KEY and request.acks == 0:  # no response to carry it
            raise CloseConnection("odradek.testing: injected error on an acks=0 produce")
        return mirror(handler.response_class, request, rule.error)

    def _take(self, api_key: int, request) -> Rule | None:
        for rule in self.rules:
            if rule.api_key == api_key and rule.count != 0 and _names(request, rule, self.broker.image):
                rule.count -= rule.count > 0
                rule.hits += 1
                return rule
        return None


def _names(request, rule: Rule, image) -> bool:
    """Whether the request names the rule's topic and partition (any request, if none)."""
    if rule.topic is None and rule.partition is None:
        return True
    if request is None:  # an ApiVersions of a version we do not serve
        return False
    for topic, partitions in _topic_partitions(request, image):
        if rule.topic in (None, topic) and (rule.partition is None or rule.partition in partitions):
            return True
    return False


def _topic_partitions(request, image):
    for field in _struct_fields(request):
        if field.is_struct_array() and _role(field.fields.values()) == "topic":
            for item in getattr(request, field.name) or ():
                name = _value(item, "topic")
                if not name and _value(item, "topic_id") is not None:
                    topic = image.topics_by_id.get(str(_value(item, "topic_id")))
                    name = topic.name if topic else None
                yield name, set(_partitions(item))


def _partitions(item):
    for field in _struct_fields(item):
        if field.is_struct_array() and _role(field.fields.values()) == "partition":
            yield from (_value(p, "partition") for p in getattr(item, field.name) or ())
        elif field.is_array() and not field.is_struct_array() and "partition" in field.name:
            yield from getattr(item, field.name) or ()


def _struct_fields(obj):
    return obj._struct.fields.values()


def _field_role(field) -> str | None:
    if field.is_array() or field.is_struct():
        return None
    if field.name in TOPIC_FIELDS or field._entity_type == "topicName":
        return "topic"
    if field.name == "topic_id":
        return "topic_id"
    if field.name in PARTITION_FIELDS:
        return "partition"
    if field._entity_type == "groupId" or field.name == "key":
        return "key"
    return None


def _role(fields) -> str | None:
    """What an array's elements stand for: a topic, a partition or a key (group id)."""
    roles = {_field_role(f) for f in fields}
    if "topic_id" in roles:
        roles.add("topic")  # Fetch v13+ names topics by id alone
    return next((r for r in ("topic", "partition", "key") if r in roles), None)


def _value(source, role: str):
    if not hasattr(source, "_struct"):  # an element of an array of strings or ints
        wanted = int if role == "partition" else str
        return source if isinstance(source, wanted) and role != "topic_id" else None
    for field in _struct_fields(source):
        if _field_role(field) == role:
            return getattr(source, field.name)
    return None


def _items(source, role: str) -> list:
    """The request's array whose elements stand for ``role``."""
    if not hasattr(source, "_struct"):
        return []
    for field in _struct_fields(source):
        if field.is_struct_array():
            if _role(field.fields.values()) == role:
                return list(getattr(source, field.name) or ())
        elif field.is_array():
            kind = "partition" if "partition" in field.name else (
                "topic" if field.array_of._entity_type == "topicName" or "topic" in field.name
                else "key")
            if kind == role:
                return list(getattr(source, field.name) or ())
    return []


def mirror(response_class, request, error: int):
    """A response with ``error`` for every topic and partition the request names."""
    return _build(response_class, response_class._struct.fields.values(), request, error)


def _build(data_class, fields, source, error: int):
    values = {}
    for field in fields:
        if field.name == "error_code":
            values[field.name] = error
        elif field.is_struct_array():
            role = _role(field.fields.values())
            if role is not None:
                values[field.name] = [_build(field.data_class, field.fields.values(), item, error)
                                      for item in _items(source, role)]
        else:
            role = _field_role(field)
            value = _value(source, role) if role else None
            if value is not None:
                values[field.name] = value
    return data_class(**values)

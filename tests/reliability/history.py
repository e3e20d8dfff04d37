"""The history format of the reliability suite: what the workload records, and how the
checker loads it back.

A history is a JSON-lines file, one event per line, in the order the events happened.
Each event is one of the small dataclasses below, written as its fields plus a ``type``
tag. Every event carries ``process`` (the client thread or logical process that saw it,
e.g. ``"producer-1"``) and ``time`` (``time.monotonic()`` seconds, stamped by the
recorder, non-decreasing within one recorder and comparable across processes of one
machine).

Sends follow Jepsen's invoke/complete convention, joined by ``value`` because values are
unique per send (a producer has up to five sends in flight, so completions do not arrive
in invoke order):

- ``send_invoke`` before the client is asked to send;
- ``send_ok`` when the broker acknowledged it at ``(topic, partition, offset)``;
- ``send_fail`` only when the send *definitely* did not happen (e.g. a non-retriable
  error returned before any append could have happened);
- ``send_info`` when the outcome is unknown: timeouts, REQUEST_TIMED_OUT,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND, failure after client retries, lost connection.
  A ``send_invoke`` with no completion at all counts as ``send_info``.

A transactional producer's sends carry ``txn``, and ``txn_end`` records how that
transaction ended; the checker then holds each of its records to the transaction's
outcome (committed: like send_ok; aborted: like send_fail; unknown: like send_info).

Reads are ``poll`` (one event per partition per poll, records as ``(offset, value)``
pairs in the order the client returned them) and, at the end, ``drain`` (a fresh
consumer's read of a whole partition, with the log start offset and high watermark it
saw). ``rebalance`` and ``seek`` are recorded so the checker knows when a consumer's
position may legitimately jump. ``commit`` and ``committed_read`` record offset commits
and committed offsets read back (OffsetFetch). ``replica_dump`` is a node's list of
batches ``(base_offset, last_offset, crc)`` below its high watermark.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

TopicPartition = tuple[str, int]
Record = tuple[int, str]  # (offset, value)
Batch = tuple[int, int, int]  # (base_offset, last_offset, crc)


@dataclass(kw_only=True)
class Event:
    process: str
    time: float = 0.0
    type: ClassVar[str] = ""


@dataclass(kw_only=True)
class SendInvoke(Event):
    type: ClassVar[str] = "send_invoke"
    producer: str
    topic: str
    value: str
    key: str | None = None
    partition: int | None = None  # None: the client's partitioner chooses
    # The transaction the send belongs to (a transactional producer's ``<producer>/t<n>``),
    # None outside transactions. Its visibility is the transaction's outcome (TxnEnd),
    # not the send's acknowledgement.
    txn: str | None = None


@dataclass(kw_only=True)
class SendOk(Event):
    type: ClassVar[str] = "send_ok"
    value: str
    topic: str
    partition: int
    offset: int | None  # None where the client acknowledged without an offset


@dataclass(kw_only=True)
class SendFail(Event):
    type: ClassVar[str] = "send_fail"
    value: str
    error: str = ""


@dataclass(kw_only=True)
class SendInfo(Event):
    type: ClassVar[str] = "send_info"
    value: str
    error: str = ""


@dataclass(kw_only=True)
class TxnEnd(Event):
    """How a transaction ended, as its producer saw it: ``commit`` (commit_transaction
    returned), ``abort`` (abort_transaction returned, no commit was tried before) or
    ``info`` (unknown: a commit or abort raised, the producer was fenced or died). A
    transaction with send_invokes and no TxnEnd counts as ``info``."""

    type: ClassVar[str] = "txn_end"
    producer: str
    txn: str
    outcome: str
    error: str = ""


@dataclass(kw_only=True)
class Poll(Event):
    type: ClassVar[str] = "poll"
    consumer: str
    topic: str
    partition: int
    records: list[Record] = field(default_factory=list)


@dataclass(kw_only=True)
class Rebalance(Event):
    """The consumer's assignment changed (or was confirmed): its position on every
    partition may restart anywhere, typically at the group's committed offset."""

    type: ClassVar[str] = "rebalance"
    consumer: str
    group: str | None = None
    assigned: list[TopicPartition] = field(default_factory=list)


@dataclass(kw_only=True)
class Seek(Event):
    """A seek (or an offset reset) on one partition. ``offset`` None: seek to an unknown
    position (beginning/end, auto.offset.reset). ``consumer`` None with a ``group``: an
    administrative reset of the group's committed offset."""

    type: ClassVar[str] = "seek"
    consumer: str | None
    topic: str
    partition: int
    offset: int | None = None
    group: str | None = None


@dataclass(kw_only=True)
class Commit(Event):
    type: ClassVar[str] = "commit"
    consumer: str
    group: str
    topic: str
    partition: int
    offset: int
    outcome: str = "ok"  # ok, fail or info, as for sends


@dataclass(kw_only=True)
class CommittedRead(Event):
    type: ClassVar[str] = "committed_read"
    group: str
    topic: str
    partition: int
    offset: int | None  # None: the group has no committed offset for the partition
    # When the read was asked for (same clock as ``time``, which is when it returned);
    # None in histories written before it was recorded. Reads that overlap may return
    # in either order: see the checker's committed_offsets_backwards.
    invoked: float | None = None


@dataclass(kw_only=True)
class Drain(Event):
    type: ClassVar[str] = "drain"
    consumer: str
    topic: str
    partition: int
    log_start_offset: int
    high_watermark: int
    records: list[Record] = field(default_factory=list)


@dataclass(kw_only=True)
class ReplicaDump(Event):
    type: ClassVar[str] = "replica_dump"
    node: int
    topic: str
    partition: int
    high_watermark: int
    batches: list[Batch] = field(default_factory=list)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        SendInvoke,
        SendOk,
        SendFail,
        SendInfo,
        TxnEnd,
        Poll,
        Rebalance,
        Seek,
        Commit,
        CommittedRead,
        Drain,
        ReplicaDump,
    )
}

# Fields stored as JSON arrays of arrays that the dataclasses hold as lists of tuples.
_TUPLE_LISTS = ("records", "batches", "assigned")


def to_json(event: Event) -> str:
    return json.dumps({"type": event.type, **dataclasses.asdict(event)}, separators=(",", ":"))


def from_json(line: str) -> Event:
    data = json.loads(line)
    if not isinstance(data, dict) or data.get("type") not in EVENT_TYPES:
        raise ValueError(f"not a history event: {line.strip()[:200]}")
    cls = EVENT_TYPES[data.pop("type")]
    for name in _TUPLE_LISTS:
        if name in data:
            data[name] = [tuple(item) for item in data[name]]
    return cls(**data)


class Recorder:
    """Appends events to a JSON-lines file; safe to call from several threads (client
    callbacks run on the clients' own threads).

    Stamping ``time`` and writing happen under one lock, so file order is time order.
    Each line is flushed at once so a workload that dies still leaves its history.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")
        self._last_time = 0.0

    def record(self, event: Event) -> Event:
        with self._lock:
            self._last_time = max(self._last_time, time.monotonic())
            event.time = self._last_time
            self._file.write(to_json(event) + "\n")
            self._file.flush()
        return event

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_events(lines: Iterable[str]) -> Iterator[Event]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield from_json(line)
        except (ValueError, TypeError) as e:
            raise ValueError(f"line {number}: {e}") from e


def load(*paths: str | os.PathLike[str]) -> list[Event]:
    """The events of one or more history files, merged in time order.

    The sort is stable, so events of one file keep their file order even when their
    times are equal (or all zero in hand-written histories).
    """
    events: list[Event] = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            events.extend(iter_events(f))
    if len(paths) > 1:
        events.sort(key=lambda e: e.time)
    return events


def dump(events: Iterable[Event], path: str | os.PathLike[str]) -> None:
    """Write events as they are (times untouched): for tests and hand-built histories."""
    with open(path, "w", encoding="utf-8") as f:
        for event in events:
            f.write(to_json(event) + "\n")

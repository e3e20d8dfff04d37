"""The history checker: finds the anomalies of a reliability run in its history.

``check(events) -> Report`` takes the events of ``history.load()`` in the order they
happened and returns every anomaly found plus some counts. Each check states one
property a correct Kafka-compatible log keeps (idempotent acks=all producers, no
transactions, no compaction):

- inconsistent_offsets: one (topic, partition, offset) holds one value, across every
  read and every acknowledgement.
- duplicates: one value (values are unique per send) sits at one position only.
- lost_writes: an acknowledged send is read, unless no later offset of its partition
  was ever read (then it is reported as unseen instead); and a value once read is still
  there in the final drain (the last drain of the partition ending at or below its
  offset means the log lost it; below the high watermark a loss shows up as
  offset_gaps or inconsistent_offsets instead).
- unseen: an acknowledged send is read by the end of the final drain.
- aborted_reads: nobody reads a value whose send definitely failed.
- nonmonotonic_sends: one producer's acknowledged offsets on one partition increase in
  send (invoke) order; idempotence with max.in.flight <= 5 keeps that order.
- poll_skips / nonmonotonic_polls: a consumer's reads of a partition continue at the next
  offset that exists and never go back, unless a rebalance or seek of that consumer is
  recorded in between. "Exists" means some read or acknowledgement saw the offset; a
  jump over offsets nobody ever saw is allowed (they may never have existed).
- offset_gaps: a drain's records cover every offset from log_start_offset up to its
  high_watermark; these topics have no transaction markers or compaction holes.
- replica_divergence: where two nodes' dumps cover the same offsets they hold the very
  same batches (base offset, last offset, CRC); segment boundaries may differ.
- committed_offsets_backwards: a group's committed offset of a partition, as read back,
  never decreases (nor vanishes) unless a seek/reset for that group is recorded between.
  A read is held to every read that returned before it was asked for (its ``invoked``
  time): two reads that overlap may be answered in one order and return in the other
  (the coordinator answers one before a commit completes, the other after). Without
  ``invoked`` (older histories) every read before it in the history counts.

Transactions (sends with ``txn``, ended by ``txn_end``): each record counts as its
transaction's outcome, so the rules above hold committed records like acknowledged
sends (lost_writes, unseen, duplicates), aborted ones like failed sends (aborted_reads:
a read_committed reader saw a record of an aborted transaction) and records of
transactions of unknown outcome like info sends. Offsets of records that were never
committed (and never read) do not count as existing for poll_skips, and offset_gaps
skips topics written by transactions (markers and aborted records are holes to a
read_committed reader). Three rules are for transactions only:

- txn_lost_writes: a committed transaction is in the final drains (read_committed, from
  the beginning): reported when none of its records whose offsets lie within the drains
  is there (when only some are missing, that is txn_partial).
- txn_partial: a transaction is visible whole or not at all: some of its records in the
  final drains and others (within the drains' offsets) missing is a G1-like atomicity
  break, whatever its producer saw of its outcome (aborted ones are aborted_reads).
- txn_order: where transaction T1 ended (commit or abort returned) before T2's first
  send was invoked, every partition both wrote holds all of T1's records before T2's;
  offsets ordered against real time are a G0-like write cycle.

Sends whose outcome is unknown (send_info, or no completion) are fine whether or not
they were read; when read they count as acknowledged in effect, but only send_ok gives
an offset to hold the broker to.

``python -m tests.reliability.checker HISTORY.jsonl [...]`` prints a summary and exits
with status 1 when it finds anomalies.
"""

from __future__ import annotations

import argparse
import bisect
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.reliability.history import (
    Commit,
    CommittedRead,
    Drain,
    Event,
    Poll,
    Rebalance,
    ReplicaDump,
    Seek,
    SendFail,
    SendInfo,
    SendInvoke,
    SendOk,
    TxnEnd,
    load,
)

ANOMALY_TYPES = (
    "inconsistent_offsets",
    "duplicates",
    "lost_writes",
    "unseen",
    "aborted_reads",
    "nonmonotonic_sends",
    "poll_skips",
    "nonmonotonic_polls",
    "offset_gaps",
    "replica_divergence",
    "committed_offsets_backwards",
    "txn_lost_writes",
    "txn_partial",
    "txn_order",
)

Position = tuple[str, int, int]  # (topic, partition, offset)


@dataclass(frozen=True)
class Anomaly:
    """One violation. ``events`` are indexes into the checked history (the line number
    minus one for a single loaded file) of the events that show it."""

    type: str
    topic: str | None = None
    partition: int | None = None
    offsets: tuple[int, ...] = ()
    values: tuple[str, ...] = ()
    events: tuple[int, ...] = ()
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.topic}/{self.partition}" if self.topic is not None else "-"
        return f"{self.type} {where}: {self.detail}"


@dataclass
class Counts:
    events: int = 0
    operations: int = 0  # sends, polls, commits and committed-offset reads
    sends: int = 0
    acknowledged_sends: int = 0
    info_sends: int = 0  # send_info or never completed
    info_sends_read: int = 0  # acknowledged in effect
    failed_sends: int = 0
    polls: int = 0
    values_read: int = 0  # distinct values in polls and drains
    txns_committed: int = 0
    txns_aborted: int = 0
    txns_unknown: int = 0  # txn_end info, or no txn_end


@dataclass
class Report:
    anomalies: list[Anomaly] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def of_type(self, anomaly_type: str) -> list[Anomaly]:
        return [a for a in self.anomalies if a.type == anomaly_type]

    @property
    def types(self) -> set[str]:
        return {a.type for a in self.anomalies}

    def summary(self, per_type: int = 20) -> str:
        c = self.counts
        lines = [
            f"{c.events} events, {c.operations} operations, {c.polls} polls",
            f"sends: {c.sends} = {c.acknowledged_sends} acknowledged + {c.info_sends} info"
            f" ({c.info_sends_read} of them read) + {c.failed_sends} failed",
            f"values read: {c.values_read}",
        ]
        if c.txns_committed or c.txns_aborted or c.txns_unknown:
            lines.append(f"transactions: {c.txns_committed} committed, {c.txns_aborted} aborted,"
                         f" {c.txns_unknown} unknown")
        if self.ok:
            lines.append("no anomalies")
            return "\n".join(lines)
        lines.append(f"{len(self.anomalies)} anomalies (#n: the history's n-th event, from 0):")
        for anomaly_type in ANOMALY_TYPES:
            found = self.of_type(anomaly_type)
            if not found:
                continue
            lines.append(f"  {anomaly_type} ({len(found)}):")
            lines.extend(f"    {a}" for a in found[:per_type])
            if len(found) > per_type:
                lines.append(f"    ... and {len(found) - per_type} more")
        return "\n".join(lines)


@dataclass
class _Send:
    value: str
    producer: str | None = None
    invoke: int | None = None  # event index
    outcome: str | None = None  # ok, fail, info; None: never completed
    completion: int | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    txn: str | None = None


@dataclass
class _Txn:
    name: str
    producer: str | None = None
    values: list[str] = field(default_factory=list)
    begin: int | None = None  # index of its first send_invoke
    outcome: str | None = None  # commit, abort, info; None: no txn_end
    end: int | None = None  # index of its txn_end


class _History:
    """The indexes every check shares, built in one pass."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.sends: dict[str, _Send] = {}
        # position -> value -> indexes of the events (acks and reads) that put it there
        self.at_position: dict[Position, dict[str, list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.positions_of: dict[str, dict[Position, list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.read_values: dict[str, list[int]] = defaultdict(list)
        self.max_read_offset: dict[tuple[str, int], int] = {}
        self.txns: dict[str, _Txn] = {}
        for i, e in enumerate(events):
            if isinstance(e, SendInvoke):
                send = self._send(e.value)
                send.producer, send.invoke, send.txn = e.producer, i, e.txn
                if e.txn is not None:
                    txn = self._txn(e.txn)
                    txn.producer = e.producer
                    txn.values.append(e.value)
                    if txn.begin is None:
                        txn.begin = i
            elif isinstance(e, TxnEnd):
                txn = self._txn(e.txn)
                txn.producer, txn.outcome, txn.end = e.producer, e.outcome, i
            elif isinstance(e, SendOk):
                send = self._send(e.value)
                # ok is the most telling completion; a later fail/info cannot undo it
                send.outcome, send.completion = "ok", i
                send.topic, send.partition, send.offset = e.topic, e.partition, e.offset
                if e.offset is not None:  # None: acknowledged, offset not reported
                    self._place(e.value, (e.topic, e.partition, e.offset), i)
            elif isinstance(e, SendFail | SendInfo):
                send = self._send(e.value)
                outcome = "fail" if isinstance(e, SendFail) else "info"
                if send.outcome is None or (send.outcome, outcome) == ("info", "fail"):
                    send.outcome, send.completion = outcome, i
            elif isinstance(e, Poll | Drain):
                tp = (e.topic, e.partition)
                for offset, value in e.records:
                    self._place(value, (e.topic, e.partition, offset), i)
                    self.read_values[value].append(i)
                    self.max_read_offset[tp] = max(self.max_read_offset.get(tp, -1), offset)
        # A transaction's records take its outcome: committed ones stay acknowledged,
        # aborted ones are failed sends, those of an unknown outcome are info sends.
        self.txn_topics: set[str] = set()
        for send in self.sends.values():
            if send.txn is None:
                continue
            txn = self.txns[send.txn]
            if send.topic is not None:
                self.txn_topics.add(send.topic)
            if send.invoke is not None:
                self.txn_topics.add(events[send.invoke].topic)
            if txn.outcome == "abort":
                send.outcome, send.completion = "fail", txn.end
            elif txn.outcome != "commit" and send.outcome == "ok":
                send.outcome = "info"
        # Offsets known to exist, per partition, sorted: for telling skips from holes. A
        # record of a transaction not known to be committed exists only once read.
        existing: dict[tuple[str, int], set[int]] = defaultdict(set)
        for (topic, partition, offset), values in self.at_position.items():
            if any(self._visible(v) for v in values):
                existing[(topic, partition)].add(offset)
        self.existing = {tp: sorted(offsets) for tp, offsets in existing.items()}

    def _visible(self, value: str) -> bool:
        send = self.sends.get(value)
        if send is None or send.txn is None or value in self.read_values:
            return True
        return self.txns[send.txn].outcome == "commit"

    def _txn(self, name: str) -> _Txn:
        if name not in self.txns:
            self.txns[name] = _Txn(name)
        return self.txns[name]

    def final_drains(self) -> dict[tuple[str, int], tuple[int, Drain]]:
        """The last drain of each partition, with its event index."""
        return {(e.topic, e.partition): (i, e) for i, e in enumerate(self.events)
                if isinstance(e, Drain)}

    def _send(self, value: str) -> _Send:
        if value not in self.sends:
            self.sends[value] = _Send(value)
        return self.sends[value]

    def _place(self, value: str, position: Position, index: int) -> None:
        self.at_position[position][value].append(index)
        self.positions_of[value][position].append(index)

    def existing_between(self, tp: tuple[str, int], low: int, high: int) -> list[int]:
        """Offsets known to exist strictly between low and high."""
        offsets = self.existing.get(tp, [])
        return offsets[bisect.bisect_right(offsets, low) : bisect.bisect_left(offsets, high)]


def check(events: Iterable[Event]) -> Report:
    h = _History(list(events))
    anomalies = [
        *_inconsistent_offsets(h),
        *_duplicates(h),
        *_lost_writes_and_unseen(h),
        *_reads_lost_by_drain(h),
        *_aborted_reads(h),
        *_nonmonotonic_sends(h),
        *_poll_order(h),
        *_offset_gaps(h),
        *_replica_divergence(h),
        *_committed_offsets_backwards(h),
        *_txn_lost_writes(h),
        *_txn_partial(h),
        *_txn_order(h),
    ]
    return Report(anomalies, _counts(h))


def _counts(h: _History) -> Counts:
    c = Counts(events=len(h.events))
    for e in h.events:
        if isinstance(e, SendInvoke | Poll | Commit | CommittedRead):
            c.operations += 1
        c.polls += isinstance(e, Poll)
    for send in h.sends.values():
        c.sends += 1
        if send.outcome == "ok":
            c.acknowledged_sends += 1
        elif send.outcome == "fail":
            c.failed_sends += 1
        else:
            c.info_sends += 1
            c.info_sends_read += send.value in h.read_values
    c.values_read = len(h.read_values)
    for txn in h.txns.values():
        c.txns_committed += txn.outcome == "commit"
        c.txns_aborted += txn.outcome == "abort"
        c.txns_unknown += txn.outcome not in ("commit", "abort")
    return c


def _ranges(offsets: Iterable[int]) -> str:
    """Offsets as compact ranges: 3-7, 9."""
    parts: list[str] = []
    run: list[int] = []
    for o in sorted(offsets):
        if run and o == run[-1] + 1:
            run.append(o)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [o]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(parts)


def _sources(h: _History, indexes: Iterable[int]) -> str:
    return ", ".join(f"{h.events[i].type} #{i}" for i in sorted(set(indexes)))


def _inconsistent_offsets(h: _History) -> Iterable[Anomaly]:
    for (topic, partition, offset), values in sorted(h.at_position.items()):
        if len(values) < 2:
            continue
        held = "; ".join(f"{v!r} ({_sources(h, idx)})" for v, idx in sorted(values.items()))
        yield Anomaly(
            "inconsistent_offsets",
            topic,
            partition,
            (offset,),
            tuple(sorted(values)),
            tuple(sorted({i for idx in values.values() for i in idx})),
            f"offset {offset} holds {len(values)} values: {held}",
        )


def _duplicates(h: _History) -> Iterable[Anomaly]:
    for value, positions in h.positions_of.items():
        if len(positions) < 2:
            continue
        (topic, partition, _), *_ = sorted(positions)
        where = "; ".join(
            f"{t}/{p}@{o} ({_sources(h, idx)})" for (t, p, o), idx in sorted(positions.items())
        )
        yield Anomaly(
            "duplicates",
            topic,
            partition,
            tuple(sorted(o for _, _, o in positions)),
            (value,),
            tuple(sorted({i for idx in positions.values() for i in idx})),
            f"value {value!r} at {len(positions)} positions: {where}",
        )


def _lost_writes_and_unseen(h: _History) -> Iterable[Anomaly]:
    drains = {(e.topic, e.partition): i for i, e in enumerate(h.events) if isinstance(e, Drain)}
    for send in h.sends.values():
        if send.outcome != "ok" or send.value in h.read_values:
            continue
        assert send.topic is not None and send.partition is not None
        tp = (send.topic, send.partition)
        max_read = h.max_read_offset.get(tp, -1)
        events = tuple(i for i in (send.invoke, send.completion) if i is not None)
        if send.offset is None:
            yield Anomaly(
                "unseen",
                *tp,
                (),
                (send.value,),
                events,
                f"{send.value!r} acknowledged without an offset (#{send.completion}) never read",
            )
        elif max_read > send.offset:
            yield Anomaly(
                "lost_writes",
                *tp,
                (send.offset,),
                (send.value,),
                events,
                f"{send.value!r} acknowledged at offset {send.offset} (#{send.completion})"
                f" never read, though offsets up to {max_read} were",
            )
        else:
            drained = f"drain #{drains[tp]}" if tp in drains else "no drain of the partition"
            yield Anomaly(
                "unseen",
                *tp,
                (send.offset,),
                (send.value,),
                events,
                f"{send.value!r} acknowledged at offset {send.offset} (#{send.completion})"
                f" never read ({drained}; highest offset read {max_read})",
            )


def _reads_lost_by_drain(h: _History) -> Iterable[Anomaly]:
    final: dict[tuple[str, int], tuple[int, Drain]] = {}
    for i, e in enumerate(h.events):
        if isinstance(e, Drain):
            final[(e.topic, e.partition)] = (i, e)
    for (topic, partition, offset), values in sorted(h.at_position.items()):
        if (topic, partition) not in final:
            continue
        drain_event, drain = final[(topic, partition)]
        if offset < drain.high_watermark:
            continue
        drained = {value for _, value in drain.records}
        for value, indexes in sorted(values.items()):
            reads = [i for i in indexes if isinstance(h.events[i], Poll)]
            if reads and value not in drained:
                yield Anomaly(
                    "lost_writes",
                    topic,
                    partition,
                    (offset,),
                    (value,),
                    (*reads, drain_event),
                    f"{value!r} read at offset {offset} ({_sources(h, reads)}) but the final"
                    f" drain (#{drain_event}) ends at high watermark {drain.high_watermark}",
                )


def _aborted_reads(h: _History) -> Iterable[Anomaly]:
    for value, reads in h.read_values.items():
        send = h.sends.get(value)
        if send is None or send.outcome != "fail":
            continue
        positions = sorted(h.positions_of[value])
        topic, partition, _ = positions[0]
        yield Anomaly(
            "aborted_reads",
            topic,
            partition,
            tuple(o for _, _, o in positions),
            (value,),
            (send.completion, *sorted(set(reads))),
            f"{value!r} failed ({h.events[send.completion].error or 'no error'}, #{send.completion})"
            f" but was read ({_sources(h, reads)})",
        )


def _nonmonotonic_sends(h: _History) -> Iterable[Anomaly]:
    by_producer: dict[tuple[str | None, str, int], list[_Send]] = defaultdict(list)
    for send in h.sends.values():
        if send.outcome == "ok" and send.offset is not None:
            by_producer[(send.producer, send.topic, send.partition)].append(send)
    for (producer, topic, partition), sends in by_producer.items():
        sends.sort(key=lambda s: s.invoke if s.invoke is not None else s.completion)
        for before, after in zip(sends, sends[1:], strict=False):
            if after.offset > before.offset:
                continue
            yield Anomaly(
                "nonmonotonic_sends",
                topic,
                partition,
                (before.offset, after.offset),
                (before.value, after.value),
                (before.invoke, after.invoke),
                f"producer {producer}: {before.value!r} sent first (#{before.invoke}) acknowledged"
                f" at {before.offset}, {after.value!r} sent next (#{after.invoke}) at {after.offset}",
            )


def _poll_order(h: _History) -> Iterable[Anomaly]:
    # (consumer, topic, partition) -> (last offset read, index of that read's event).
    # After a seek to n the consumer behaves as if it had just read n - 1.
    last: dict[tuple[str, str, int], tuple[int, int]] = {}
    for i, e in enumerate(h.events):
        if isinstance(e, Rebalance):
            for key in [k for k in last if k[0] == e.consumer]:
                del last[key]
        elif isinstance(e, Seek) and e.consumer is not None:
            key = (e.consumer, e.topic, e.partition)
            last.pop(key, None)
            if e.offset is not None:
                last[key] = (e.offset - 1, i)
        elif isinstance(e, Poll):
            key = (e.consumer, e.topic, e.partition)
            for offset, value in e.records:
                if key in last:
                    yield from _poll_step(h, e, i, last[key], offset, value)
                last[key] = (offset, i)
        elif isinstance(e, Drain):
            # A fresh consumer reading one partition: it must only go forward; the holes
            # it leaves are offset_gaps.
            for (before, _), (offset, value) in zip(e.records, e.records[1:], strict=False):
                if offset <= before:
                    yield Anomaly(
                        "nonmonotonic_polls",
                        e.topic,
                        e.partition,
                        (before, offset),
                        (value,),
                        (i,),
                        f"drain by {e.consumer} (#{i}) read offset {offset} after {before}",
                    )


def _poll_step(
    h: _History, e: Poll, i: int, previous: tuple[int, int], offset: int, value: str
) -> Iterable[Anomaly]:
    before, before_event = previous
    what = "seek" if isinstance(h.events[before_event], Seek) else "read"
    tp = (e.topic, e.partition)
    if offset <= before:
        shown = before + 1 if what == "seek" else before
        yield Anomaly(
            "nonmonotonic_polls",
            *tp,
            (shown, offset),
            (value,),
            (before_event, i),
            f"consumer {e.consumer} read offset {offset} (#{i}) after"
            f" {'seeking to' if what == 'seek' else 'reading'} {shown} (#{before_event})"
            " with no rebalance or seek between",
        )
        return
    skipped = h.existing_between(tp, before, offset)
    if skipped:
        after = f"seeking to {before + 1}" if what == "seek" else f"reading {before}"
        yield Anomaly(
            "poll_skips",
            *tp,
            tuple(skipped),
            (value,),
            (before_event, i),
            f"consumer {e.consumer} read offset {offset} (#{i}) after {after} (#{before_event}),"
            f" skipping existing offsets {_ranges(skipped)}",
        )


def _offset_gaps(h: _History) -> Iterable[Anomaly]:
    for i, e in enumerate(h.events):
        if not isinstance(e, Drain) or e.topic in h.txn_topics:
            continue
        read = {offset for offset, _ in e.records}
        missing = [o for o in range(e.log_start_offset, e.high_watermark) if o not in read]
        if missing:
            yield Anomaly(
                "offset_gaps",
                e.topic,
                e.partition,
                tuple(missing),
                (),
                (i,),
                f"drain by {e.consumer} (#{i}) of [{e.log_start_offset}, {e.high_watermark})"
                f" is missing offsets {_ranges(missing)}",
            )


def _replica_divergence(h: _History) -> Iterable[Anomaly]:
    # The latest dump of each node wins.
    dumps: dict[tuple[str, int], dict[int, tuple[int, ReplicaDump]]] = defaultdict(dict)
    for i, e in enumerate(h.events):
        if isinstance(e, ReplicaDump):
            dumps[(e.topic, e.partition)][e.node] = (i, e)
    for (topic, partition), nodes in sorted(dumps.items()):
        ordered = sorted(nodes.items())
        for n, (node_a, (i_a, a)) in enumerate(ordered):
            for node_b, (i_b, b) in ordered[n + 1 :]:
                for batch_a, batch_b in _overlapping(sorted(a.batches), sorted(b.batches)):
                    if batch_a == batch_b:
                        continue
                    low, high = max(batch_a[0], batch_b[0]), min(batch_a[1], batch_b[1])
                    yield Anomaly(
                        "replica_divergence",
                        topic,
                        partition,
                        (low, high),
                        (),
                        (i_a, i_b),
                        f"offsets {_ranges(range(low, high + 1))}: node {node_a} has batch {_batch(batch_a)},"
                        f" node {node_b} has {_batch(batch_b)}",
                    )


def _batch(batch: tuple[int, int, int]) -> str:
    base, last, crc = batch
    return f"[{base}-{last} crc={crc:#010x}]"


def _overlapping(
    a: list[tuple[int, int, int]], b: list[tuple[int, int, int]]
) -> Iterable[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Pairs of batches, one from each sorted list, whose offset ranges intersect."""
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            yield a[i], b[j]
            # advance whichever ends first; the other may overlap the next batch too
            if a[i][1] <= b[j][1]:
                i += 1
            else:
                j += 1


def _committed_offsets_backwards(h: _History) -> Iterable[Anomaly]:
    group_of: dict[str, str] = {}  # consumer -> group, learnt from its rebalances/commits
    # (group, topic, partition) -> the reads since the last seek/reset, in history order:
    # when each returned, and the highest (offset, event index) read up to it
    reads: dict[tuple[str, str, int], tuple[list[float], list[tuple[int | None, int]]]] = {}
    for i, e in enumerate(h.events):
        if isinstance(e, Rebalance | Commit) and e.group is not None:
            group_of[e.consumer] = e.group
        elif isinstance(e, Seek):
            group = e.group or group_of.get(e.consumer or "")
            if group is not None:
                reads.pop((group, e.topic, e.partition), None)
        elif isinstance(e, CommittedRead):
            key = (e.group, e.topic, e.partition)
            times, highest = reads.setdefault(key, ([], []))
            # the reads that returned before this one was asked for
            n = len(highest) if e.invoked is None else bisect.bisect_left(times, e.invoked)
            if n:
                before, before_event = highest[n - 1]
                if before is not None and (e.offset is None or e.offset < before):
                    now = "no committed offset" if e.offset is None else f"{e.offset}"
                    yield Anomaly(
                        "committed_offsets_backwards",
                        e.topic,
                        e.partition,
                        (before,) if e.offset is None else (before, e.offset),
                        (),
                        (before_event, i),
                        f"group {e.group}: committed offset read as {before} (#{before_event}),"
                        f" then {now} (#{i}) with no seek/reset between",
                    )
            times.append(e.time)
            top = highest[-1] if highest else (None, i)
            higher = e.offset is not None and (top[0] is None or e.offset >= top[0])
            highest.append((e.offset, i) if higher else top)


def _txn_records_in_drains(
    h: _History, txn: _Txn
) -> Iterable[tuple[_Send, int, Drain, bool]]:
    """(send, drain event index, drain, whether the drain holds it) for each acknowledged
    record of the transaction whose offset lies within its partition's final drain."""
    drains = h.final_drains()
    for value in txn.values:
        send = h.sends[value]
        if send.offset is None or (send.topic, send.partition) not in drains:
            continue
        i, drain = drains[(send.topic, send.partition)]
        if drain.log_start_offset <= send.offset < drain.high_watermark:
            yield send, i, drain, any(v == value for _, v in drain.records)


def _txn_lost_writes(h: _History) -> Iterable[Anomaly]:
    for txn in h.txns.values():
        if txn.outcome != "commit":
            continue
        records = list(_txn_records_in_drains(h, txn))
        if not records or any(held for *_, held in records):
            continue  # nothing to check, or partly there: txn_partial
        send, i, drain, _ = records[0]
        yield Anomaly(
            "txn_lost_writes",
            send.topic,
            send.partition,
            tuple(s.offset for s, *_ in records if s.offset is not None),
            tuple(s.value for s, *_ in records),
            tuple(x for x in (txn.end, *(i for _, i, _, _ in records)) if x is not None),
            f"transaction {txn.name}, committed (#{txn.end}): none of its records is in the"
            f" final drains, e.g. {send.value!r} acknowledged at offset {send.offset}"
            f" missing from drain #{i} of [{drain.log_start_offset}, {drain.high_watermark})",
        )


def _txn_partial(h: _History) -> Iterable[Anomaly]:
    for txn in h.txns.values():
        if txn.outcome == "abort":
            continue  # any read of it is an aborted read
        records = list(_txn_records_in_drains(h, txn))
        held = [s for s, _, _, there in records if there]
        missing = [(s, i) for s, i, _, there in records if not there]
        if not held or not missing:
            continue
        send, i = missing[0]
        yield Anomaly(
            "txn_partial",
            send.topic,
            send.partition,
            tuple(s.offset for s, _ in missing if s.offset is not None),
            tuple(s.value for s, _ in missing),
            tuple(sorted({i for _, i, _, _ in records} | ({txn.end} if txn.end is not None else set()))),
            f"transaction {txn.name} ({txn.outcome or 'no end'}) is partly visible at the end:"
            f" {', '.join(repr(s.value) for s in held)} in the final drains, but"
            f" {', '.join(f'{s.value!r} at {s.topic}/{s.partition}@{s.offset}' for s, _ in missing)}"
            " missing",
        )


def _txn_order(h: _History) -> Iterable[Anomaly]:
    # partition -> [(txn, lowest offset, highest offset)] of every transaction's records
    spans: dict[tuple[str, int], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for txn in h.txns.values():
        for value in txn.values:
            send = h.sends[value]
            if send.offset is not None and send.topic is not None and send.partition is not None:
                spans[(send.topic, send.partition)][txn.name].append(send.offset)
    for (topic, partition), by_txn in sorted(spans.items()):
        txns = [h.txns[name] for name in by_txn]
        ended = sorted((t for t in txns if t.outcome in ("commit", "abort") and t.end is not None),
                       key=lambda t: h.events[t.end].time)
        begun = sorted((t for t in txns if t.begin is not None),
                       key=lambda t: h.events[t.begin].time)
        n = 0
        top: tuple[int, _Txn] | None = None  # the highest offset of the txns ended so far
        for t2 in begun:
            start = h.events[t2.begin].time
            while n < len(ended) and h.events[ended[n].end].time < start:
                high = max(by_txn[ended[n].name])
                if top is None or high > top[0]:
                    top = (high, ended[n])
                n += 1
            low = min(by_txn[t2.name])
            if top is None or top[0] < low:
                continue
            high, t1 = top
            yield Anomaly(
                "txn_order",
                topic,
                partition,
                (high, low),
                (),
                (t1.end, t2.begin),
                f"transaction {t1.name} ended (#{t1.end}) before {t2.name} began (#{t2.begin}),"
                f" yet its record at offset {high} follows {t2.name}'s at {low}",
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.checker",
        description="Check reliability histories; exit status 1 when anomalies are found.",
    )
    parser.add_argument("history", nargs="+", help="JSON-lines history file(s), merged by time")
    parser.add_argument("--per-type", type=int, default=20, help="anomalies shown per type")
    args = parser.parse_args(argv)
    try:
        events = load(*args.history)
    except (OSError, ValueError) as e:
        print(f"cannot load history: {e}", file=sys.stderr)
        return 2
    report = check(events)
    print(report.summary(args.per_type))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

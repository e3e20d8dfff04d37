"""The share-group scale scenario of issue 20 (KIP-932), for both clients: five consumers
in one share group on a two-partition topic process every record, and a sixth, in a
process of its own, is SIGKILLed mid-batch holding records it acquired.

Each consumer prints one line per fact, in the same words from Python and from Java
(tests/peers/java/JavaClient.java, scenarios ``sharescale`` and ``sharevictim``)::

    D <consumer> <time ms> <partition> <offset> <delivery count>   a record delivered
    A <consumer> <time ms> <partition> <offset> <1|0>              its ACCEPT committed (1) or refused (0)
    HOLDING <consumer>                                             the victim holds records: kill it now

``check`` reads those lines and asserts what the issue asks: every record accepted
exactly once; each record held by one consumer at a time (the broker's delivery counts
of its deliveries distinct and rising in time order, and no delivery while a successful
acquisition is held: from its delivery to its committed ACCEPT); what the victim held
when killed redelivered to the others with a higher delivery count. At the end the
broker's share-partition start offsets (DescribeShareGroupOffsets) are past every record.
(The victim's connection closes with it, and the broker then releases its records at
once, as Kafka's ShareSessionCache does on a disconnection; else their lock would expire.)

The scenario's size comes from SHARE_SCALE_RECORDS, the issue's 20,000 by default (a few
seconds a client, most of it starting the consumers); ``make share-scale`` runs both
clients' tests alone and prints their time and throughput.

Run as ``python -m tests.share_scale confluent-worker BOOTSTRAP GROUP TOPIC NAME
[victim]``, this module is one confluent-kafka ShareConsumer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

RECORDS = int(os.environ.get("SHARE_SCALE_RECORDS", "20000"))
CONSUMERS = 5
LOCK_MS = 1000  # the group's share.record.lock.duration.ms
BATCH = 50  # records a produced batch (acquisition hands out whole batches)
MAX_POLL_RECORDS = 100


@dataclass
class Report:
    records: int
    seconds: float  # first delivery to last committed ACCEPT
    accepted_by: dict[str, int]
    redelivered: int  # records delivered more than once
    victim_held: int  # what the victim held when it was killed
    wall_seconds: float = 0.0  # from starting the consumers (processes, JVMs) to the last ACCEPT seen

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def line(self, client: str) -> str:
        return (f"{client}: {self.records} records in {self.seconds:.1f} s from the first delivery to the last "
                f"ACCEPT, {self.per_second:.0f} records/s ({self.wall_seconds:.1f} s with the consumers' start); "
                f"accepted by {dict(sorted(self.accepted_by.items()))}; victim held {self.victim_held}, "
                f"{self.redelivered} redelivered")


@dataclass
class _Delivery:
    consumer: str
    at_ms: int
    count: int
    accepted_ms: int | None = None  # its ACCEPT committed
    refused: bool = False


@dataclass
class _Record:
    deliveries: list[_Delivery] = field(default_factory=list)


def check(lines: list[str], expected: set[tuple[int, int]], victim: str) -> Report:
    """Assert the scenario's invariants over the consumers' lines (see the module docstring)."""
    records: dict[tuple[int, int], _Record] = defaultdict(_Record)
    open_: dict[tuple[str, int, int], _Delivery] = {}  # (consumer, partition, offset) -> last delivery
    for line in lines:
        parts = line.split()
        if not parts or parts[0] not in ("D", "A"):
            continue
        kind, consumer, at_ms, partition, offset, n = parts[0], parts[1], *map(int, parts[2:])
        key = (partition, offset)
        if kind == "D":
            d = _Delivery(consumer, at_ms, n)
            records[key].deliveries.append(d)
            open_[(consumer, partition, offset)] = d
        else:
            d = open_.pop((consumer, partition, offset), None)
            assert d is not None, f"{consumer} acknowledged {key} it was not delivered: {line}"
            if n:
                d.accepted_ms = at_ms
            else:
                d.refused = True
    assert set(records) == expected, (f"never delivered: {sorted(expected - set(records))[:10]}, "
                                      f"not produced: {sorted(set(records) - expected)[:10]}")
    accepted_by: dict[str, int] = defaultdict(int)
    victim_held = redelivered = 0
    first = min(d.at_ms for r in records.values() for d in r.deliveries)
    last = first
    for key, r in records.items():
        ds = sorted(r.deliveries, key=lambda d: d.count)
        # One acquisition at a time: the broker numbers them and they come in that order. A
        # number may be missing: a client acquires ahead of what it returns from poll (its
        # buffer), and what it never returned goes back when it closes, dies or its lock ends.
        counts = [d.count for d in ds]
        assert len(set(counts)) == len(counts) and min(counts) >= 1, f"{key} acquired twice at once: {ds}"
        assert all(a.at_ms <= b.at_ms for a, b in zip(ds, ds[1:], strict=False)), f"{key} counts out of order: {ds}"
        accepted = [d for d in ds if d.accepted_ms is not None]
        assert len(accepted) == 1, f"{key} accepted {len(accepted)} times: {ds}"
        (done,) = accepted
        assert done is ds[-1], f"{key} delivered again after its ACCEPT was committed: {ds}"
        # no other delivery while that acquisition was held
        assert not [d for d in ds if d is not done and done.at_ms < d.at_ms <= done.accepted_ms], (key, ds)
        accepted_by[done.consumer] += 1
        last = max(last, done.accepted_ms or last)
        if len(ds) > 1:
            redelivered += 1
        held = [d for d in ds if d.consumer == victim and d.accepted_ms is None]
        if held:
            victim_held += 1
            later = ds[ds.index(held[-1]) + 1:]
            assert later and all(d.consumer != victim for d in later), f"{key} held by the victim: {ds}"
    assert victim_held, "the victim was killed holding nothing"
    return Report(len(records), (last - first) / 1000, dict(accepted_by), redelivered, victim_held)


# -- the scenario's driver, whatever the client ------------------------------------------------
def prepare(bootstrap: str, topic: str, group: str, records: int) -> set[tuple[int, int]]:
    """The topic (two partitions) with ``records`` records in batches of BATCH, alternately to
    each partition, and the group's configs: start at the earliest record, LOCK_MS locks.
    Returns the (partition, offset) of every record."""
    from confluent_kafka import Producer

    from tests.clients import create_topics
    from tests.integration.test_share_groups import set_group_configs
    from tests.rawclient import RawConnection
    create_topics(bootstrap, [topic], partitions=2)
    with RawConnection(bootstrap) as c:
        set_group_configs(c, group, share_auto_offset_reset="earliest",
                          share_record_lock_duration_ms=str(LOCK_MS))
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1000, "batch.num.messages": BATCH})
    for i in range(records):
        p.produce(topic, value=b"v%d" % i, partition=(i // BATCH) % 2)
        if i % BATCH == BATCH - 1:
            p.flush(30)
    assert p.flush(30) == 0
    return {((i // BATCH) % 2, (i // (2 * BATCH)) * BATCH + i % BATCH) for i in range(records)}


class Consumers:
    """The consumer processes' stdout lines, read on threads; the victim killed on HOLDING."""

    def __init__(self, expected: int, victim: str):
        self.lines: list[str] = []
        self.accepted: set[tuple[int, int]] = set()
        self.expected, self.victim = expected, victim
        self.killed = threading.Event()
        self.lock = threading.Lock()
        self.procs: list[subprocess.Popen] = []

    def start(self, command: list[str], victim: bool = False) -> subprocess.Popen:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        threading.Thread(target=self._read, args=(proc, victim), daemon=True).start()
        threading.Thread(target=self._drain, args=(proc,), daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen, victim: bool) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            with self.lock:
                self.lines.append(line)
                if line.startswith("A ") and line.endswith(" 1"):
                    _, _, _, partition, offset, _ = line.split()
                    self.accepted.add((int(partition), int(offset)))
            if victim and line.startswith("HOLDING"):
                proc.send_signal(signal.SIGKILL)  # our own child: mid-batch, no leave, no ack
                proc.wait()
                self.killed.set()

    @staticmethod
    def _drain(proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        proc.errors = proc.stderr.read()  # type: ignore[attr-defined]

    def wait_all_accepted(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.accepted) >= self.expected and self.killed.is_set():
                    return
            if any(p.poll() not in (None, -signal.SIGKILL) for p in self.procs):
                break
            time.sleep(0.2)
        with self.lock:
            tail = self.lines[-20:]
        errors = [getattr(p, "errors", "")[-3000:] for p in self.procs]
        raise AssertionError(f"{len(self.accepted)} of {self.expected} accepted, victim killed: "
                             f"{self.killed.is_set()}; last lines {tail}; stderr {errors}")

    def stop(self) -> None:
        """Tell the survivors to close (a line on stdin), then make sure they are gone."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    assert p.stdin is not None
                    p.stdin.write("stop\n")
                    p.stdin.flush()
                except OSError:
                    pass
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run(bootstrap: str, topic: str, group: str, records: int, start_consumers, timeout_s: float) -> Report:
    """The scenario with the consumers ``start_consumers(consumers)`` starts (five survivors
    and the victim, named "victim"), checked."""
    expected = prepare(bootstrap, topic, group, records)
    consumers = Consumers(len(expected), "victim")
    started = time.monotonic()
    try:
        start_consumers(consumers)
        consumers.wait_all_accepted(timeout_s)
        wall = time.monotonic() - started
    finally:
        consumers.stop()
    with consumers.lock:
        lines = list(consumers.lines)
    report = check(lines, expected, "victim")
    report.wall_seconds = wall
    ends = {p: 1 + max(o for q, o in expected if q == p) for p in (0, 1)}
    assert share_start_offsets(bootstrap, group, topic) == ends  # the broker's view: all done
    assert len(set(report.accepted_by) - {"victim"}) >= 3, f"the records went to {report.accepted_by}"
    return report


def share_start_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """partition -> the share-partition start offset (DescribeShareGroupOffsets, as
    kafka-share-groups --describe): past every record once all are acknowledged."""
    from odradek.protocol.messages import DescribeShareGroupOffsetsRequest as D
    from odradek.protocol.messages import DescribeShareGroupOffsetsResponse
    from tests.rawclient import RawConnection
    with RawConnection(bootstrap) as c:
        r = c.roundtrip(D(groups=[D.DescribeShareGroupOffsetsRequestGroup(group_id=group, topics=None)]),
                        1, DescribeShareGroupOffsetsResponse)
    return {p.partition_index: p.start_offset for g in r.groups for t in g.topics if t.topic_name == topic
            for p in t.partitions}


def confluent_command(bootstrap: str, group: str, topic: str, name: str, victim: bool = False) -> list[str]:
    return [sys.executable, "-u", "-m", "tests.share_scale", "confluent-worker", bootstrap, group, topic, name,
            *(["victim"] if victim else [])]


def start_confluent(bootstrap: str, group: str, topic: str):
    def start(consumers: Consumers) -> None:
        consumers.start(confluent_command(bootstrap, group, topic, "victim", True), victim=True)
        for i in range(CONSUMERS):
            consumers.start(confluent_command(bootstrap, group, topic, f"c{i}"))
    return start


# -- one confluent-kafka ShareConsumer (a process) ----------------------------------------------
def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def confluent_worker(bootstrap: str, group: str, topic: str, name: str, victim: bool) -> None:
    """Poll, accept every record, commit, print what happened; the victim accepts half of
    its first batch, prints HOLDING and waits to be killed. Ends on a line on stdin."""
    from confluent_kafka import AcknowledgeType, ShareConsumer
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    sc = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                        "share.acknowledgement.mode": "explicit", "max.poll.records": MAX_POLL_RECORDS})
    out = sys.stdout
    sc.subscribe([topic])

    def commit(messages) -> None:
        for m in messages:
            sc.acknowledge(m, AcknowledgeType.ACCEPT)
        results = sc.commit_sync(30) if messages else {}
        failed = {(tp.topic, tp.partition) for tp, error in results.items() if error is not None}
        at = _now_ms()
        out.write("".join(f"A {name} {at} {m.partition()} {m.offset()} "
                          f"{0 if (m.topic(), m.partition()) in failed else 1}\n" for m in messages))
        out.flush()

    try:
        while not stop.is_set():
            got = [m for m in sc.poll(0.2) if m.error() is None]
            at = _now_ms()
            out.write("".join(f"D {name} {at} {m.partition()} {m.offset()} {m.delivery_count()}\n" for m in got))
            if victim and len(got) >= 2:
                commit(got[:len(got) // 2])
                out.write(f"HOLDING {name}\n")
                out.flush()
                stop.wait()
                return
            commit(got)
    finally:
        if not victim:
            sc.close()


if __name__ == "__main__":
    if sys.argv[1] == "confluent-worker":
        confluent_worker(*sys.argv[2:6], victim=sys.argv[6:7] == ["victim"])
    else:
        raise SystemExit(f"unknown command {sys.argv[1]}")

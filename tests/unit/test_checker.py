"""The reliability suite's history format and checker, on hand-built histories.

Each anomaly type gets a bad history it must catch; a clean history with everything a
real run has (interleaved producers and consumers, rebalances, seeks, info sends read and
unread, failed sends, commits, drains, replica dumps) must yield none. A hypothesis test
simulates a correct log and its clients, checks the history is clean, then breaks it in
one place and checks the checker notices.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import zlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.reliability.checker import ANOMALY_TYPES, check, main
from tests.reliability.history import (
    EVENT_TYPES,
    Commit,
    CommittedRead,
    Drain,
    Event,
    Poll,
    Rebalance,
    Recorder,
    ReplicaDump,
    Seek,
    SendFail,
    SendInfo,
    SendInvoke,
    SendOk,
    TxnEnd,
    dump,
    from_json,
    load,
    to_json,
)

T = "t"
GROUP = "g"


class History:
    """A hand-built history: each helper appends events, times are the event indexes."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, event: Event) -> History:
        event.time = float(len(self.events))
        self.events.append(event)
        return self

    def invoke(self, producer: str, value: str, partition: int = 0) -> History:
        return self.add(
            SendInvoke(
                process=producer, producer=producer, topic=T, value=value, partition=partition
            )
        )

    def ok(self, producer: str, value: str, offset: int, partition: int = 0) -> History:
        return self.add(
            SendOk(process=producer, value=value, topic=T, partition=partition, offset=offset)
        )

    def fail(self, producer: str, value: str) -> History:
        return self.add(SendFail(process=producer, value=value, error="INVALID_RECORD"))

    def info(self, producer: str, value: str) -> History:
        return self.add(SendInfo(process=producer, value=value, error="REQUEST_TIMED_OUT"))

    def send(self, producer: str, value: str, offset: int, partition: int = 0) -> History:
        return self.invoke(producer, value, partition).ok(producer, value, offset, partition)

    def poll(self, consumer: str, *records: tuple[int, str], partition: int = 0) -> History:
        return self.add(
            Poll(
                process=consumer,
                consumer=consumer,
                topic=T,
                partition=partition,
                records=list(records),
            )
        )

    def rebalance(self, consumer: str, *partitions: int) -> History:
        return self.add(
            Rebalance(
                process=consumer,
                consumer=consumer,
                group=GROUP,
                assigned=[(T, p) for p in partitions],
            )
        )

    def seek(self, consumer: str | None, offset: int | None, partition: int = 0) -> History:
        return self.add(
            Seek(
                process=consumer or "admin",
                consumer=consumer,
                topic=T,
                partition=partition,
                offset=offset,
                group=GROUP,
            )
        )

    def commit(self, consumer: str, offset: int, partition: int = 0) -> History:
        return self.add(
            Commit(
                process=consumer,
                consumer=consumer,
                group=GROUP,
                topic=T,
                partition=partition,
                offset=offset,
            )
        )

    def committed(
        self,
        offset: int | None,
        partition: int = 0,
        invoked: float | None = None,
        returned: float | None = None,
    ) -> History:
        """A read asked for at ``invoked`` that returned at ``returned`` (when given; add()
        numbers events otherwise)."""
        self.add(
            CommittedRead(
                process="admin", group=GROUP, topic=T, partition=partition, offset=offset,
                invoked=invoked,
            )
        )
        if returned is not None:
            self.events[-1].time = returned
        return self

    def drain(
        self,
        *values: str,
        partition: int = 0,
        log_start: int = 0,
        high_watermark: int | None = None,
        offsets: list[int] | None = None,
    ) -> History:
        offsets = (
            offsets if offsets is not None else list(range(log_start, log_start + len(values)))
        )
        hwm = high_watermark if high_watermark is not None else log_start + len(values)
        return self.add(
            Drain(
                process="drain",
                consumer="drain",
                topic=T,
                partition=partition,
                log_start_offset=log_start,
                high_watermark=hwm,
                records=list(zip(offsets, values, strict=True)),
            )
        )

    def replica(self, node: int, *batches: tuple[int, int, int], partition: int = 0) -> History:
        hwm = batches[-1][1] + 1 if batches else 0
        return self.add(
            ReplicaDump(
                process=f"node{node}",
                node=node,
                topic=T,
                partition=partition,
                high_watermark=hwm,
                batches=list(batches),
            )
        )


def only(history: History, anomaly_type: str):
    """The anomalies of the history, which must all be of the given type."""
    report = check(history.events)
    assert report.types == {anomaly_type}, report.summary()
    return report.of_type(anomaly_type)


def clean_history() -> History:
    h = History()
    # Two producers, five sends in flight between them, completions out of order.
    h.invoke("p1", "a0").invoke("p2", "b0").invoke("p1", "a1").invoke("p2", "b1", partition=1)
    h.ok("p2", "b0", 0).ok("p1", "a0", 1).ok("p2", "b1", 0, partition=1).ok("p1", "a1", 2)
    h.invoke("p1", "a2").info("p1", "a2")  # timed out, but written at offset 3
    h.invoke("p2", "b2").info("p2", "b2")  # timed out and never written
    h.invoke("p2", "b3").fail("p2", "b3")  # definitely failed
    h.invoke("p1", "a3")  # never completed: the workload stopped first
    h.rebalance("c1", 0, 1).rebalance("c2")
    h.poll("c1", (0, "b0"), (1, "a0")).poll("c1", (0, "b1"), partition=1)
    h.commit("c1", 2).committed(2)
    h.poll("c1", (2, "a1"))
    h.send("p2", "b4", 4)
    h.poll("c1", (3, "a2"), (4, "b4"))
    h.commit("c1", 5).committed(5)
    # c2 takes partition 0 over and resumes at the committed offset: c1 read 2 before,
    # c2 reads it again; and c1 starts again after its own rebalance.
    h.rebalance("c1", 1).rebalance("c2", 0)
    h.poll("c2", (4, "b4"))
    h.seek("c2", 1).poll("c2", (1, "a0"), (2, "a1"))  # a seek back
    h.commit("c2", 3).committed(3)  # lower, but after a recorded seek
    h.seek("c2", 0).poll("c2", (0, "b0"))
    h.poll("c1", (0, "b1"), partition=1)  # c1's position restarted after its rebalance
    h.send("p1", "a4", 5)  # sent after the polls, read only by the drain
    h.committed(3).committed(None, partition=1)
    h.drain("b0", "a0", "a1", "a2", "b4", "a4", high_watermark=6)
    h.drain("b1", partition=1)
    crc = [zlib.crc32(v.encode()) for v in ("b0a0", "a1a2", "b4", "a4")]
    # Node 3 lags; node 2's segments roll elsewhere but its batches are the same.
    h.replica(1, (0, 1, crc[0]), (2, 3, crc[1]), (4, 4, crc[2]), (5, 5, crc[3]))
    h.replica(2, (0, 1, crc[0]), (2, 3, crc[1]), (4, 4, crc[2]), (5, 5, crc[3]))
    h.replica(3, (0, 1, crc[0]), (2, 3, crc[1]))
    return h


# ---- the clean history ------------------------------------------------------------------


def test_clean_history_has_no_anomaly():
    report = check(clean_history().events)
    assert report.ok, report.summary()
    c = report.counts
    assert (c.sends, c.acknowledged_sends, c.info_sends, c.failed_sends) == (10, 6, 3, 1)
    assert c.info_sends_read == 1  # a2
    assert c.values_read == 7
    assert c.polls == 8
    assert c.operations == 10 + 8 + 3 + 5
    assert "no anomalies" in report.summary()


def test_jumping_over_offsets_nobody_saw_is_allowed():
    # Offset 1 may never have existed (an aborted send's hole would look like this);
    # with no drain nothing says it did.
    h = History().send("p", "a", 0).send("p", "c", 2).poll("c1", (0, "a"), (2, "c"))
    assert check(h.events).ok


# ---- one bad history per anomaly type ---------------------------------------------------


def test_inconsistent_offsets():
    h = History().send("p", "a", 0).invoke("p", "b").info("p", "b")
    h.poll("c1", (0, "b")).drain("a")
    [anomaly] = only(h, "inconsistent_offsets")
    assert (anomaly.topic, anomaly.partition, anomaly.offsets) == (T, 0, (0,))
    assert anomaly.values == ("a", "b")


def test_inconsistent_offsets_between_acks():
    h = History().send("p", "a", 0).send("q", "b", 0).drain("a")
    report = check(h.events)
    assert report.types == {"inconsistent_offsets", "unseen"}
    [anomaly] = report.of_type("inconsistent_offsets")
    assert anomaly.values == ("a", "b") and anomaly.offsets == (0,)


def test_duplicates():
    h = History().send("p", "a", 0).send("p", "b", 1).drain("a", "b", "a")
    [anomaly] = only(h, "duplicates")
    assert anomaly.values == ("a",) and anomaly.offsets == (0, 2)


def test_lost_writes():
    # b was acknowledged at 1; a new leader reused offset 1 for d.
    h = History().send("p", "a", 0).send("p", "b", 1).send("p", "c", 2)
    h.invoke("q", "d").info("q", "d").drain("a", "d", "c")
    report = check(h.events)
    assert report.types == {"lost_writes", "inconsistent_offsets"}, report.summary()
    [anomaly] = report.of_type("lost_writes")
    assert anomaly.values == ("b",) and anomaly.offsets == (1,)


def test_lost_writes_of_a_read_value_beyond_the_final_high_watermark():
    h = History().send("p", "a", 0).invoke("p", "b").info("p", "b")
    h.poll("c1", (0, "a"), (1, "b")).drain("a")
    [anomaly] = only(h, "lost_writes")
    assert anomaly.values == ("b",) and anomaly.offsets == (1,)


def test_unseen():
    h = History().send("p", "a", 0).send("p", "b", 1).drain("a")
    [anomaly] = only(h, "unseen")
    assert anomaly.values == ("b",) and anomaly.offsets == (1,)


def test_aborted_reads():
    h = History().send("p", "a", 0).invoke("p", "b").fail("p", "b").drain("a", "b")
    [anomaly] = only(h, "aborted_reads")
    assert anomaly.values == ("b",) and anomaly.offsets == (1,)


def test_nonmonotonic_sends():
    h = History().invoke("p", "a").invoke("q", "x").invoke("p", "b")
    h.ok("p", "b", 0).ok("q", "x", 1).ok("p", "a", 2).drain("b", "x", "a")
    [anomaly] = only(h, "nonmonotonic_sends")
    assert anomaly.values == ("a", "b") and anomaly.offsets == (2, 0)
    assert "producer p" in anomaly.detail


def test_sends_of_one_producer_to_different_partitions_are_independent():
    h = History().invoke("p", "a", partition=0).invoke("p", "b", partition=1)
    h.ok("p", "a", 5).ok("p", "b", 0, partition=1)
    assert "nonmonotonic_sends" not in check(h.events).types


def test_poll_skips():
    h = History().send("p", "a", 0).send("p", "b", 1).send("p", "c", 2)
    h.poll("c1", (0, "a")).poll("c1", (2, "c")).drain("a", "b", "c")
    [anomaly] = only(h, "poll_skips")
    assert anomaly.offsets == (1,) and anomaly.values == ("c",)
    assert "consumer c1" in anomaly.detail


def test_poll_skips_after_a_seek():
    h = History().send("p", "a", 0).send("p", "b", 1).send("p", "c", 2)
    h.poll("c1", (2, "c")).seek("c1", 0).poll("c1", (1, "b"), (2, "c")).drain("a", "b", "c")
    [anomaly] = only(h, "poll_skips")
    assert anomaly.offsets == (0,)


def test_nonmonotonic_polls():
    h = History().send("p", "a", 0).send("p", "b", 1)
    h.poll("c1", (0, "a"), (1, "b")).poll("c1", (1, "b")).drain("a", "b")
    [anomaly] = only(h, "nonmonotonic_polls")
    assert anomaly.offsets == (1, 1)


def test_polls_may_go_back_after_a_rebalance_or_seek_but_not_for_another_consumer():
    h = History().send("p", "a", 0).send("p", "b", 1)
    h.poll("c1", (0, "a"), (1, "b")).rebalance("c1").poll("c1", (0, "a"))
    h.seek("c1", 0).poll("c1", (0, "a"))
    h.poll("c2", (1, "b")).rebalance("c1").poll("c2", (0, "a"))  # c1's rebalance, not c2's
    h.drain("a", "b")
    [anomaly] = only(h, "nonmonotonic_polls")
    assert "consumer c2" in anomaly.detail


def test_offset_gaps():
    h = History().send("p", "a", 0).invoke("p", "b").info("p", "b").send("p", "c", 2)
    h.drain("a", "c", offsets=[0, 2], high_watermark=3)
    [anomaly] = only(h, "offset_gaps")
    assert anomaly.offsets == (1,)


def test_offset_gaps_from_the_log_start():
    h = History().send("p", "c", 7).drain("c", offsets=[7], log_start=5, high_watermark=8)
    [anomaly] = only(h, "offset_gaps")
    assert anomaly.offsets == (5, 6)


def test_replica_divergence():
    h = History().replica(1, (0, 1, 11), (2, 4, 22), (5, 5, 33))
    h.replica(2, (0, 1, 11), (2, 3, 99))  # lags, and its last batch differs
    h.replica(3, (0, 1, 11))
    [anomaly] = only(h, "replica_divergence")
    assert anomaly.offsets == (2, 3)
    assert "node 1" in anomaly.detail and "node 2" in anomaly.detail


def test_replica_divergence_in_batch_boundaries():
    h = History().replica(1, (0, 3, 11)).replica(2, (0, 1, 11), (2, 3, 12))
    assert {a.offsets for a in only(h, "replica_divergence")} == {(0, 1), (2, 3)}


def test_replicas_covering_different_ranges_agree():
    h = History().replica(1, (0, 1, 11), (2, 3, 12)).replica(2, (2, 3, 12), (4, 9, 13))
    assert check(h.events).ok


def test_committed_offsets_backwards():
    h = History().committed(None).commit("c1", 5).committed(5).committed(7).committed(3)
    [anomaly] = only(h, "committed_offsets_backwards")
    assert anomaly.offsets == (7, 3) and "group g" in anomaly.detail


def test_committed_offsets_vanishing():
    h = History().committed(5).committed(None)
    [anomaly] = only(h, "committed_offsets_backwards")
    assert anomaly.offsets == (5,)


def test_committed_offsets_may_go_back_after_a_seek_of_a_group_member():
    h = History().rebalance("c1", 0).committed(7).seek("c1", 2).commit("c1", 2).committed(2)
    h.seek(None, 0).committed(0)  # an administrative reset
    h.committed(3, partition=1).seek("c1", 0).committed(1, partition=1)  # seeked another one
    assert {a.partition for a in only(h, "committed_offsets_backwards")} == {1}


def test_committed_offsets_of_overlapping_reads_may_return_in_either_order():
    """follower-paused seed 6: c1 asked at 1.5, was answered before c2's commit of 2225
    completed, and its answer arrived at 3.0; c2 asked at 1.0, after the commit, and had
    2225 back at 2.0. Each read saw a state that existed while it was in flight."""
    h = History().committed(2215, invoked=0.1, returned=0.5)
    h.committed(2225, invoked=1.0, returned=2.0).committed(2215, invoked=1.5, returned=3.0)
    assert check(h.events).ok


def test_committed_offsets_read_after_a_read_returned_are_held_to_it():
    h = History().committed(2225, invoked=1.0, returned=2.0).committed(2215, invoked=2.5, returned=3.0)
    [anomaly] = only(h, "committed_offsets_backwards")
    assert anomaly.offsets == (2225, 2215) and anomaly.events == (0, 1)


def test_committed_offsets_are_held_to_every_read_before_not_only_the_last():
    h = History().committed(9, invoked=0.0, returned=1.0).committed(5, invoked=0.5, returned=2.0)
    h.committed(6, invoked=3.0, returned=4.0)  # 9 returned before it was asked for
    [anomaly] = only(h, "committed_offsets_backwards")
    assert anomaly.offsets == (9, 6) and anomaly.events == (0, 2)


def test_all_anomaly_types_are_tested():
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert set(ANOMALY_TYPES) <= tested


# ---- history format ---------------------------------------------------------------------


def test_every_event_type_round_trips(tmp_path):
    h = clean_history()
    h.events[:0] = clean_txn_history().events[:5]  # with a transaction's events
    path = tmp_path / "history.jsonl"
    dump(h.events, path)
    assert load(path) == h.events
    first = json.loads(path.read_text().splitlines()[0])
    assert first["type"] == "send_invoke" and first["process"] == "tp" and first["txn"] == "t1"
    assert {type(e) for e in h.events} == set(EVENT_TYPES.values())
    assert from_json(to_json(h.events[-1])).batches[0] == h.events[-1].batches[0]


def test_loader_names_the_bad_line(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(to_json(clean_history().events[0]) + '\n{"type": "nonsense"}\n')
    with pytest.raises(ValueError, match="line 2"):
        load(path)


def test_recorder_is_thread_safe_and_stamps_monotonic_times(tmp_path):
    path = tmp_path / "history.jsonl"

    def produce(recorder: Recorder, n: int) -> None:
        for i in range(200):
            value = f"{n}-{i}"
            recorder.record(SendInvoke(process=f"p{n}", producer=f"p{n}", topic=T, value=value))
            recorder.record(SendOk(process=f"p{n}", value=value, topic=T, partition=n, offset=i))

    with Recorder(path) as recorder:
        threads = [threading.Thread(target=produce, args=(recorder, n)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    events = load(path)
    assert len(events) == 6 * 200 * 2
    times = [e.time for e in events]
    assert times == sorted(times) and times[0] > 0
    report = check(events)
    assert report.counts.acknowledged_sends == 1200
    assert report.types == {"unseen"}  # nothing read them


def test_load_merges_files_by_time(tmp_path):
    a = [
        SendInvoke(process="p", producer="p", topic=T, value="x", time=1.0),
        SendOk(process="p", value="x", topic=T, partition=0, offset=0, time=3.0),
    ]
    b = [Poll(process="c", consumer="c", topic=T, partition=0, records=[(0, "x")], time=2.0)]
    dump(a, tmp_path / "a.jsonl")
    dump(b, tmp_path / "b.jsonl")
    assert [e.type for e in load(tmp_path / "a.jsonl", tmp_path / "b.jsonl")] == [
        "send_invoke",
        "poll",
        "send_ok",
    ]


def test_command_line(tmp_path, capsys):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    dump(clean_history().events, good)
    dump(History().send("p", "a", 0).send("p", "b", 1).drain("a").events, bad)
    assert main([str(good)]) == 0
    assert "no anomalies" in capsys.readouterr().out
    assert main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "unseen (1)" in out and "'b'" in out
    # and as a module, the way the workload's operator runs it
    run = subprocess.run(
        [sys.executable, "-m", "tests.reliability.checker", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "unseen" in run.stdout


# ---- simulated correct runs, then one mutation ------------------------------------------

PRODUCERS = ("p0", "p1")
CONSUMERS = ("c0", "c1")
PARTITIONS = (0, 1)
NODES = (1, 2, 3)


@st.composite
def simulated_histories(draw) -> list[Event]:
    """The history of clients of a correct log: in-memory partitions that producers append
    to in send order (with up to five sends of a producer in flight), consumers reading
    sequentially from their position, occasional rebalances (back to the committed
    offset) and seeks, commits that a correct group coordinator fences when they would go
    back without a seek, then a drain of each partition and agreeing replica dumps."""
    events: list[Event] = []
    logs: dict[int, list[str]] = {p: [] for p in PARTITIONS}
    # producer, value, outcome, partition, offset
    in_flight: list[tuple[str, str, str, int, int | None]] = []
    positions: dict[tuple[str, int], int] = {}
    committed: dict[int, int] = {}
    seek_since_read: set[int] = set()  # partitions whose committed offset may go back

    def add(event: Event) -> None:
        event.time = float(len(events))
        events.append(event)

    def complete(index: int) -> None:
        producer, value, outcome, partition, offset = in_flight.pop(index)
        if outcome == "ok":
            add(SendOk(process=producer, value=value, topic=T, partition=partition, offset=offset))
        elif outcome == "fail":
            add(SendFail(process=producer, value=value, error="INVALID_RECORD"))
        else:
            add(SendInfo(process=producer, value=value, error="REQUEST_TIMED_OUT"))

    # Sends outweigh polls so consumers have records to read rather than always being
    # caught up.
    actions = draw(
        st.lists(
            st.sampled_from(
                ["send"] * 6
                + ["complete"] * 4
                + ["poll"] * 3
                + ["rebalance", "seek", "commit", "commit", "committed_read", "committed_read"]
            ),
            min_size=20,
            max_size=80,
        )
    )
    for n, action in enumerate(actions):
        if action == "send":
            producer, partition = (
                draw(st.sampled_from(PRODUCERS)),
                draw(st.sampled_from(PARTITIONS)),
            )
            if sum(1 for f in in_flight if f[0] == producer) >= 5:
                continue
            value = f"{producer}-{n}"
            outcome = draw(st.sampled_from(["ok", "ok", "ok", "written", "unwritten", "fail"]))
            add(
                SendInvoke(
                    process=producer, producer=producer, topic=T, value=value, partition=partition
                )
            )
            offset = None
            if outcome in ("ok", "written"):
                offset = len(logs[partition])
                logs[partition].append(value)
            in_flight.append((producer, value, outcome, partition, offset))
        elif action == "complete" and in_flight:
            complete(draw(st.integers(0, len(in_flight) - 1)))
        elif action == "poll":
            # like a real poll: a batch of records from each partition, possibly none
            consumer = draw(st.sampled_from(CONSUMERS))
            for partition in PARTITIONS:
                position = positions.setdefault((consumer, partition), committed.get(partition, 0))
                end = min(position + draw(st.integers(0, 4)), len(logs[partition]))
                records = [(o, logs[partition][o]) for o in range(position, end)]
                positions[(consumer, partition)] = end
                add(
                    Poll(
                        process=consumer,
                        consumer=consumer,
                        topic=T,
                        partition=partition,
                        records=records,
                    )
                )
        elif action == "rebalance":
            consumer = draw(st.sampled_from(CONSUMERS))
            for key in [k for k in positions if k[0] == consumer]:
                del positions[key]
            add(
                Rebalance(
                    process=consumer,
                    consumer=consumer,
                    group=GROUP,
                    assigned=[(T, p) for p in PARTITIONS],
                )
            )
        elif action == "seek":
            consumer, partition = (
                draw(st.sampled_from(CONSUMERS)),
                draw(st.sampled_from(PARTITIONS)),
            )
            offset = draw(st.integers(0, len(logs[partition])))
            positions[(consumer, partition)] = offset
            seek_since_read.add(partition)
            add(
                Seek(
                    process=consumer,
                    consumer=consumer,
                    topic=T,
                    partition=partition,
                    offset=offset,
                    group=GROUP,
                )
            )
        elif action == "commit":
            consumer, partition = (
                draw(st.sampled_from(CONSUMERS)),
                draw(st.sampled_from(PARTITIONS)),
            )
            if (consumer, partition) not in positions:
                continue
            offset = positions[(consumer, partition)]
            fenced = offset < committed.get(partition, 0) and partition not in seek_since_read
            if not fenced:
                committed[partition] = offset
            add(
                Commit(
                    process=consumer,
                    consumer=consumer,
                    group=GROUP,
                    topic=T,
                    partition=partition,
                    offset=offset,
                    outcome="fail" if fenced else "ok",
                )
            )
        elif action == "committed_read":
            partition = draw(st.sampled_from(PARTITIONS))
            seek_since_read.discard(partition)
            add(
                CommittedRead(
                    process="admin",
                    group=GROUP,
                    topic=T,
                    partition=partition,
                    offset=committed.get(partition),
                )
            )
    while in_flight:
        complete(0)
    for p in PARTITIONS:
        add(
            Drain(
                process="drain",
                consumer="drain",
                topic=T,
                partition=p,
                log_start_offset=0,
                high_watermark=len(logs[p]),
                records=list(enumerate(logs[p])),
            )
        )
        batches, base = [], 0
        while base < len(logs[p]):
            last = min(base + draw(st.integers(0, 2)), len(logs[p]) - 1)
            batches.append((base, last, zlib.crc32("".join(logs[p][base : last + 1]).encode())))
            base = last + 1
        for node in NODES:
            # followers may lag: they dump a prefix of the leader's batches
            kept = batches if node == 1 else batches[: draw(st.integers(0, len(batches)))]
            add(
                ReplicaDump(
                    process=f"node{node}",
                    node=node,
                    topic=T,
                    partition=p,
                    high_watermark=kept[-1][1] + 1 if kept else 0,
                    batches=kept,
                )
            )
    return events


# Each mutation: candidates(events) lists where it applies, apply(events, candidate) breaks
# the history there in place and returns the anomaly types of which one must be reported.


def _drains(events):
    return [(i, e) for i, e in enumerate(events) if isinstance(e, Drain) and e.records]


def _acked(events):
    return {e.value for e in events if isinstance(e, SendOk)}


def _polled(events):
    return {v for e in events if isinstance(e, Poll) for _, v in e.records}


def _drop_acked_from_drain_candidates(events):
    acked = _acked(events)
    return [(i, k) for i, e in _drains(events) for k, (_, v) in enumerate(e.records) if v in acked]


def _drop_acked_from_drain(events, candidate):
    i, k = candidate
    del events[i].records[k]
    return {"offset_gaps"}


def _truncate_drain_candidates(events):
    seen = _acked(events) | _polled(events)
    return [(i, k) for i, e in _drains(events) for k, (_, v) in enumerate(e.records) if v in seen]


def _truncate_drain(events, candidate):
    # A log that lost its tail: the drain stops before a value someone knew about.
    i, k = candidate
    drain = events[i]
    drain.high_watermark = drain.records[k][0]
    del drain.records[k:]
    return {"unseen", "lost_writes"}


def _duplicate_value_candidates(events):
    return [(i, k) for i, e in _drains(events) for k in range(len(e.records))]


def _duplicate_value(events, candidate):
    i, k = candidate
    drain = events[i]
    drain.records.append((drain.high_watermark, drain.records[k][1]))
    drain.high_watermark += 1
    return {"duplicates"}


def _change_read_value_candidates(events):
    return [
        (i, k) for i, e in enumerate(events) if isinstance(e, Poll) for k in range(len(e.records))
    ]


def _change_read_value(events, candidate):
    i, k = candidate
    offset, _ = events[i].records[k]
    events[i].records[k] = (offset, "bogus")
    return {"inconsistent_offsets"}


def _fail_read_send_candidates(events):
    read = _polled(events) | {v for _, e in _drains(events) for _, v in e.records}
    return [i for i, e in enumerate(events) if isinstance(e, SendOk | SendInfo) and e.value in read]


def _fail_read_send(events, i):
    events[i] = SendFail(process=events[i].process, value=events[i].value, time=events[i].time)
    return {"aborted_reads"}


def _swap_ack_offsets_candidates(events):
    producer = {e.value: e.producer for e in events if isinstance(e, SendInvoke)}
    oks = [(i, e) for i, e in enumerate(events) if isinstance(e, SendOk)]
    return [
        (i, j)
        for n, (i, a) in enumerate(oks)
        for j, b in oks[n + 1 :]
        if producer[a.value] == producer[b.value] and a.partition == b.partition
    ]


def _swap_ack_offsets(events, candidate):
    i, j = candidate
    events[i].offset, events[j].offset = events[j].offset, events[i].offset
    return {"nonmonotonic_sends"}


def _poll_streams(events):
    """Consecutive non-empty polls of one consumer and partition with no rebalance or
    seek of that consumer between them."""
    last: dict[tuple[str, int], int] = {}
    pairs = []
    for i, e in enumerate(events):
        if isinstance(e, Rebalance | Seek):
            for key in [k for k in last if k[0] == e.consumer]:
                del last[key]
        elif isinstance(e, Poll) and e.records:
            key = (e.consumer, e.partition)
            if key in last:
                pairs.append((last[key], i))
            last[key] = i
    return pairs


def _swap_polls(events, candidate):
    i, j = candidate
    events[i], events[j] = events[j], events[i]
    return {"nonmonotonic_polls"}


def _reverse_poll_candidates(events):
    return [i for i, e in enumerate(events) if isinstance(e, Poll) and len(e.records) >= 2]


def _reverse_poll(events, i):
    events[i].records.reverse()
    return {"nonmonotonic_polls"}


def _drop_mid_poll_candidates(events):
    return [i for i, e in enumerate(events) if isinstance(e, Poll) and len(e.records) >= 3]


def _drop_mid_poll(events, i):
    del events[i].records[1]
    return {"poll_skips"}


def _skip_next_poll_start(events, candidate):
    # The later poll of a stream starts one record late.
    _, j = candidate
    del events[j].records[0]
    return {"poll_skips"}


def _skip_next_poll_start_candidates(events):
    return [(i, j) for i, j in _poll_streams(events) if len(events[j].records) >= 2]


def _diverge_replica_candidates(events):
    dumps = [(i, e) for i, e in enumerate(events) if isinstance(e, ReplicaDump)]
    # a batch of a follower is covered by the leader's (node 1) dump of the partition
    return [(i, k) for i, e in dumps if e.node != 1 for k in range(len(e.batches))]


def _diverge_replica(events, candidate):
    i, k = candidate
    base, last, crc = events[i].batches[k]
    events[i].batches[k] = (base, last, crc ^ 1)
    return {"replica_divergence"}


def _committed_backwards_candidates(events):
    last: dict[int, int] = {}
    found = []
    for i, e in enumerate(events):
        if isinstance(e, Seek):
            last.pop(e.partition, None)
        elif isinstance(e, CommittedRead):
            if e.partition in last and events[last[e.partition]].offset is not None:
                found.append((last[e.partition], i))
            last[e.partition] = i
    return found


def _committed_backwards(events, candidate):
    before, i = candidate
    previous = events[before].offset
    events[i].offset = previous - 1 if previous > 0 else None
    return {"committed_offsets_backwards"}


MUTATIONS = {
    "drop_acked_from_drain": (_drop_acked_from_drain_candidates, _drop_acked_from_drain),
    "truncate_drain": (_truncate_drain_candidates, _truncate_drain),
    "duplicate_value": (_duplicate_value_candidates, _duplicate_value),
    "change_read_value": (_change_read_value_candidates, _change_read_value),
    "fail_read_send": (_fail_read_send_candidates, _fail_read_send),
    "swap_ack_offsets": (_swap_ack_offsets_candidates, _swap_ack_offsets),
    "swap_polls": (_poll_streams, _swap_polls),
    "reverse_poll": (_reverse_poll_candidates, _reverse_poll),
    "drop_mid_poll": (_drop_mid_poll_candidates, _drop_mid_poll),
    "skip_next_poll_start": (_skip_next_poll_start_candidates, _skip_next_poll_start),
    "diverge_replica": (_diverge_replica_candidates, _diverge_replica),
    "committed_backwards": (_committed_backwards_candidates, _committed_backwards),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=simulated_histories())
def test_simulated_correct_history_is_clean(events):
    report = check(events)
    assert report.ok, report.summary()


# One test per mutation, rather than drawing the mutation, because hypothesis favours the
# first of a sampled_from's choices and the rarer mutations would hardly ever run.
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(events=simulated_histories(), data=st.data())
def test_simulated_history_with_one_mutation_is_caught(mutation, events, data):
    find, apply = MUTATIONS[mutation]
    candidates = find(events)
    assume(candidates)
    assert check(events).ok
    events = copy.deepcopy(events)
    candidate = data.draw(st.sampled_from(candidates), label="where")
    expected = apply(events, candidate)
    report = check(events)
    assert report.types & expected, f"{mutation} at {candidate}: {report.summary()}"


def test_an_acknowledgement_without_an_offset_is_checked_by_its_value():
    # librdkafka reports some acknowledged sends without an offset (Message.offset() is
    # None), for example a retry the broker recognised as a duplicate by another route.
    # The value must still be read; where it is, the send needs no offset.
    read = History().send("p", "a", 0).invoke("p", "b").ok("p", "b", None).drain("a", "b")
    assert check(read.events).types == set()
    unread = History().send("p", "a", 0).invoke("p", "b").ok("p", "b", None).drain("a")
    [anomaly] = only(unread, "unseen")
    assert anomaly.values == ("b",) and anomaly.offsets == ()


# ---- transactions -------------------------------------------------------------------------


def txn_send(h: History, producer: str, txn: str, value: str, offset: int | None,
             partition: int = 0) -> History:
    h.add(SendInvoke(process=producer, producer=producer, topic=T, value=value,
                     partition=partition, txn=txn))
    return h if offset is None else h.ok(producer, value, offset, partition)


def txn_end(h: History, producer: str, txn: str, outcome: str) -> History:
    return h.add(TxnEnd(process=producer, producer=producer, txn=txn, outcome=outcome))


def txn(h: History, producer: str, name: str, outcome: str,
        *records: tuple[str, int] | tuple[str, int, int]) -> History:
    """A whole transaction, one after the other: (value, offset[, partition]) records."""
    for value, offset, *partition in records:
        txn_send(h, producer, name, value, offset, *partition)
    return txn_end(h, producer, name, outcome)


def clean_txn_history() -> History:
    """A transactional producer: t1 (two partitions) committed, t2 aborted, t3 committed,
    t4 of unknown outcome and never visible. Markers take offsets 1 and 3 (and 5) of each
    partition; a read_committed consumer jumps over them and over t2's aborted records."""
    h = History()
    txn_send(h, "tp", "t1", "a0", 0)
    txn_send(h, "tp", "t1", "a1", 0, partition=1)
    txn_end(h, "tp", "t1", "commit")
    txn_send(h, "tp", "t2", "a2", 2)
    txn_send(h, "tp", "t2", "a3", 2, partition=1)
    txn_end(h, "tp", "t2", "abort")
    txn_send(h, "tp", "t3", "a4", 4)
    txn_end(h, "tp", "t3", "commit")
    txn_send(h, "tp", "t4", "a6", 6)
    txn_send(h, "tp", "t4", "a7", None, partition=1)
    txn_end(h, "tp", "t4", "info")
    h.rebalance("c1", 0, 1)
    h.poll("c1", (0, "a0")).poll("c1", (0, "a1"), partition=1).poll("c1", (4, "a4"))
    h.drain("a0", "a4", offsets=[0, 4], high_watermark=7)
    h.drain("a1", offsets=[0], high_watermark=4, partition=1)
    return h


def test_clean_transactional_history_has_no_anomaly():
    report = check(clean_txn_history().events)
    assert report.ok, report.summary()
    c = report.counts
    assert (c.txns_committed, c.txns_aborted, c.txns_unknown) == (2, 1, 1)
    # committed records count as acknowledged, aborted ones as failed, t4's as info
    assert (c.acknowledged_sends, c.failed_sends, c.info_sends) == (3, 2, 2)
    assert "2 committed, 1 aborted, 1 unknown" in report.summary()


def test_aborted_reads_of_an_aborted_transaction():
    h = clean_txn_history()
    h.poll("c1", (2, "a3"), partition=1)  # t2 was aborted
    [anomaly] = only(h, "aborted_reads")
    assert anomaly.values == ("a3",)


def test_a_read_committed_poll_skipping_a_committed_record_is_a_skip():
    h = History()
    txn(h, "tp", "t1", "commit", ("a0", 0))
    txn(h, "tp", "t2", "commit", ("a2", 2))
    txn(h, "tp", "t3", "commit", ("a4", 4))
    h.poll("c1", (0, "a0"), (4, "a4"))
    h.drain("a0", "a2", "a4", offsets=[0, 2, 4], high_watermark=6)
    [anomaly] = only(h, "poll_skips")
    assert anomaly.offsets == (2,)


def test_nonmonotonic_polls_of_a_transactional_topic():
    h = clean_txn_history()
    h.poll("c1", (0, "a0"))  # after reading 4, with no rebalance between
    only(h, "nonmonotonic_polls")


def test_duplicates_of_a_committed_record():
    h = clean_txn_history()
    h.poll("c1", (6, "a0"))  # a0 at offset 0 and again at 6
    assert "duplicates" in check(h.events).types


def test_txn_lost_writes():
    h = txn(History(), "tp", "t1", "commit", ("a0", 0), ("a1", 0, 1))
    h.poll("c1", (0, "a0"))  # read once, gone from the log at the end
    h.poll("c2", (0, "a1"), partition=1)
    h.drain(high_watermark=2).drain(high_watermark=2, partition=1)
    [anomaly] = only(h, "txn_lost_writes")
    assert set(anomaly.values) == {"a0", "a1"}


def test_txn_partial():
    # unknown to its producer, yet half of it is visible
    h = txn(History(), "tp", "t1", "info", ("a0", 0), ("a1", 0, 1))
    h.drain("a0", high_watermark=2).drain(high_watermark=2, partition=1)
    [anomaly] = only(h, "txn_partial")
    assert anomaly.values == ("a1",) and anomaly.partition == 1


def test_txn_partial_of_a_committed_transaction():
    h = clean_txn_history()
    h.events[-1].records = []  # a1 of the committed t1 gone; a0 is there
    [anomaly] = only(h, "txn_partial")
    assert anomaly.values == ("a1",)


def test_txn_order():
    h = History()
    txn(h, "p1", "t1", "commit", ("a0", 5))
    txn(h, "p2", "t2", "commit", ("b0", 3))  # began after t1 committed, written before it
    h.drain("b0", "a0", offsets=[3, 5], high_watermark=7)
    [anomaly] = only(h, "txn_order")
    assert anomaly.offsets == (5, 3)


def test_concurrent_transactions_may_interleave():
    h = History()
    txn_send(h, "p1", "t1", "a0", 5)
    txn_send(h, "p2", "t2", "b0", 3)  # t2 began before t1 ended
    txn_send(h, "p2", "t2", "b1", 0, partition=1)
    txn_send(h, "p1", "t1", "a1", 1, partition=1)
    txn_end(h, "p1", "t1", "commit")
    txn_end(h, "p2", "t2", "commit")
    h.drain("b0", "a0", offsets=[3, 5], high_watermark=7)
    h.drain("b1", "a1", offsets=[0, 1], high_watermark=3, partition=1)
    assert check(h.events).ok, check(h.events).summary()

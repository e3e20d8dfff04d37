"""The reliability workload: real clients against a cluster, every operation recorded.

``Workload(bootstrap, out_dir, config).start()`` runs, until ``stop()``:

- idempotent acks=all producers (confluent-kafka, plus one kafka-python producer unless
  turned off), each on its own thread, sending unique values (``<producer>-<n>``)
  round-robin over the partitions at a fixed rate;
- transactional producers (confluent-kafka, ``txn_producers`` of them, none by default),
  each writing transactions of 1 to ``txn_max_records`` records to random partitions of
  every topic, committed or (with probability ``txn_abort_ratio``, once its records were
  delivered) aborted, every record's send tagged with its transaction and every end
  recorded (``txn_end``);
- consumers of one group (read_committed, librdkafka's default, said explicitly), each a
  separate process (``python -m tests.reliability.workload consumer ...``) so that a
  scenario can SIGKILL one mid-batch; they poll, commit every ``commit_interval_s`` and
  read the group's committed offsets back.

Then ``drain()`` reads every partition from its start up to its high watermark with a
fresh consumer, and ``dump_replicas(data_dirs)`` records every node's batches below that
high watermark. Every process appends to its own JSON-lines history under ``out_dir``;
``merge()`` writes them, merged by time, to ``history.jsonl`` for the checker.

Outcomes of sends, as the checker needs them: ``send_ok`` with the partition and offset of
the delivery report; ``send_fail`` only when the value definitely never reached a broker
(purged from the client's queue, refused by the client itself, raised by ``produce``);
``send_info`` for everything else, above all librdkafka's ``_MSG_TIMED_OUT``, which is
reported for batches that were sent and maybe appended, and for any error after retries.

Everything is bounded: sends are rate-limited, producers flush with a deadline, consumer
processes stop on SIGTERM or after ``max_seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.reliability.history import (
    Commit,
    CommittedRead,
    Drain,
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
    load,
)

ROOT = Path(__file__).resolve().parents[2]

# librdkafka errors after which the message definitely was not appended: it never left
# the client. Everything else (timeouts, errors after retries, a broker error whose
# earlier attempts may have been appended) is unknown.
DEFINITE_FAILURES = {
    "_PURGE_QUEUE",
    "_MSG_SIZE_TOO_LARGE",
    "_UNKNOWN_PARTITION",
    "_UNKNOWN_TOPIC",
    "_INVALID_ARG",
    "_QUEUE_FULL",
}
# Commit errors that mean the coordinator refused the commit (it was not written).
COMMIT_REFUSED = {"REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID",
                  "FENCED_INSTANCE_ID", "_NO_OFFSET", "_ASSIGNMENT_LOST"}
# A consumer's own position jump that the client makes (and says so): recorded as a seek.
POSITION_RESETS = {"OFFSET_OUT_OF_RANGE", "_AUTO_OFFSET_RESET"}
# librdkafka's syslog level for our clients: only emergencies, since faults make every
# client log connection failures by the hundred (errors reach us through callbacks).
QUIET = 0


@dataclass
class WorkloadConfig:
    topics: list[str] = field(default_factory=lambda: ["chaos"])
    partitions: int = 3
    confluent_producers: int = 2
    kafka_python_producer: bool = True
    rate: float = 150.0  # sends per second per producer
    consumers: int = 2
    group: str = "chaos-group"
    commit_interval_s: float = 1.0
    committed_read_interval_s: float = 2.0
    message_timeout_ms: int = 20000  # a send's whole life; unknown after it
    request_timeout_ms: int = 5000
    consumer_max_seconds: float = 1200.0  # a consumer process's own watchdog
    txn_producers: int = 0
    txn_max_records: int = 6
    txn_abort_ratio: float = 0.3
    txn_pause_s: float = 0.01  # between one producer's transactions
    seed: int = 0  # the transactional producers' choices


def txn_config(seed: int = 0) -> WorkloadConfig:
    """The transactional workload: three transactional producers over two topics, the
    group's consumers reading both; no plain producers."""
    return WorkloadConfig(topics=["txn-a", "txn-b"], confluent_producers=0,
                          kafka_python_producer=False, txn_producers=3, group="chaos-txn",
                          seed=seed)


def topic_config() -> dict[str, str]:
    return {"min.insync.replicas": "2"}


class Workload:
    def __init__(self, bootstrap: str, out_dir: str | os.PathLike[str],
                 config: WorkloadConfig | None = None) -> None:
        self.bootstrap = bootstrap
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.config = config or WorkloadConfig()
        self.recorder = Recorder(self.out / "main.jsonl")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.consumers: dict[str, subprocess.Popen] = {}
        self._consumer_seq = 0
        self.client_errors: list[str] = []  # fatal/odd client errors, for the report
        self.acked = 0
        self._lock = threading.Lock()

    # --- producers ------------------------------------------------------------------

    def start(self) -> Workload:
        c = self.config
        for i in range(c.confluent_producers):
            self._threads.append(threading.Thread(target=self._confluent, args=(f"ck{i + 1}",),
                                                  daemon=True))
        for i in range(c.txn_producers):
            self._threads.append(threading.Thread(target=self._confluent_txn,
                                                  args=(f"tx{i + 1}", c.seed * 100 + i),
                                                  daemon=True))
        if c.kafka_python_producer:
            self._threads.append(threading.Thread(target=self._kafka_python, args=("kp1",),
                                                  daemon=True))
        for t in self._threads:
            t.start()
        for _ in range(c.consumers):
            self.start_consumer()
        return self

    def _note(self, text: str) -> None:
        with self._lock:
            if len(self.client_errors) < 200:
                self.client_errors.append(text)

    def _paced_sends(self, wait):
        """(i, topic, partition) for send i, at config.rate sends/s round-robin over every
        partition, until stop. ``wait(seconds)`` idles in between (the client's poll, or a
        sleep); a client that stalled catches up by at most a second's worth of sends."""
        c = self.config
        targets = itertools.cycle([(topic, p) for topic in c.topics for p in range(c.partitions)])
        interval = 1.0 / c.rate
        next_at = time.monotonic()
        i = 0
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_at:
                wait(min(next_at - now, 0.05))
                continue
            next_at = max(next_at + interval, now - 1.0)
            topic, p = next(targets)
            yield i, topic, p
            i += 1

    def _delivered(self, process: str, err, msg) -> None:
        """A confluent-kafka delivery report, recorded."""
        value = msg.value().decode()
        if err is None:
            self.recorder.record(SendOk(process=process, value=value, topic=msg.topic(),
                                        partition=msg.partition(), offset=msg.offset()))
            with self._lock:
                self.acked += 1
        elif err.name() in DEFINITE_FAILURES:
            self.recorder.record(SendFail(process=process, value=value, error=err.name()))
        else:
            self.recorder.record(SendInfo(process=process, value=value, error=err.name()))

    def _confluent(self, name: str) -> None:
        from confluent_kafka import KafkaException, Producer
        c = self.config
        rec = self.recorder
        fatal = threading.Event()

        def on_error(err):
            if err.fatal():
                self._note(f"{name}: fatal {err.name()}: {err.str()}")
                fatal.set()

        def make(instance: str):
            # reconnect.backoff.max.ms: librdkafka doubles its reconnect backoff (up to 10 s by
            # default) each time a connection dies within that long of opening. Under
            # produce-responses-dropped, where every swallowed response closes the
            # connection, retries then waited so long that sends reached message.timeout.ms;
            # librdkafka then bumps its epoch and resends what may already be written, which
            # duplicates records against any broker (Kafka's too). A short cap keeps the
            # retries, which the broker must deduplicate, flowing.
            return Producer({
                "bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                "max.in.flight": 5, "linger.ms": 5, "message.timeout.ms": c.message_timeout_ms,
                "reconnect.backoff.max.ms": 1000,
                "request.timeout.ms": c.request_timeout_ms, "retry.backoff.ms": 100,
                "socket.timeout.ms": c.request_timeout_ms, "topic.metadata.refresh.interval.ms": 5000,
                "error_cb": on_error, "client.id": instance, "log_level": QUIET})

        def report(err, msg):
            self._delivered(instance, err, msg)

        generation = 1
        instance = name
        producer = make(instance)

        def idle(seconds: float) -> None:
            producer.poll(seconds)  # whichever producer is current: a fatal error replaces it

        for i, topic, p in self._paced_sends(idle):
            if fatal.is_set():
                # An idempotent producer that hit a fatal error is unusable: replace it, as an
                # application would. Its unfinished sends stay unknown (no completion).
                with contextlib.suppress(Exception):
                    producer.purge(in_queue=True, in_flight=False)
                    producer.flush(1)
                generation += 1
                instance = f"{name}.{generation}"
                producer = make(instance)
                fatal.clear()
            value = f"{instance}-{i}"
            rec.record(SendInvoke(process=instance, producer=instance, topic=topic, value=value,
                                  partition=p))
            try:
                producer.produce(topic, value.encode(), partition=p, on_delivery=report)
            except BufferError:
                rec.record(SendFail(process=instance, value=value, error="BufferError"))
            except KafkaException as e:
                code = e.args[0]
                if code.name() in DEFINITE_FAILURES or code.fatal():
                    rec.record(SendFail(process=instance, value=value, error=code.name()))
                else:
                    rec.record(SendInfo(process=instance, value=value, error=code.name()))
            producer.poll(0)
        deadline = time.monotonic() + c.message_timeout_ms / 1000 + 10
        while len(producer) and time.monotonic() < deadline:
            producer.poll(0.1)

    def _txn_producer(self, name: str, report):
        """A transactional producer whose init_transactions succeeded (fencing any earlier
        one of the same transactional.id and ending its open transaction), or None once
        stopped. Retries through faults."""
        from confluent_kafka import KafkaException, Producer
        c = self.config
        while not self._stop.is_set():
            producer = Producer({
                "bootstrap.servers": self.bootstrap, "transactional.id": name, "acks": "all",
                "enable.idempotence": True, "linger.ms": 5,
                "message.timeout.ms": c.message_timeout_ms,
                "transaction.timeout.ms": c.message_timeout_ms + 10000,
                "reconnect.backoff.max.ms": 1000, "request.timeout.ms": c.request_timeout_ms,
                "retry.backoff.ms": 100, "socket.timeout.ms": c.request_timeout_ms,
                "topic.metadata.refresh.interval.ms": 5000, "on_delivery": report,
                "client.id": name, "log_level": QUIET})
            for _ in range(5):
                try:
                    producer.init_transactions(15)
                    return producer
                except KafkaException as e:
                    err = e.args[0]
                    self._note(f"{name}: init_transactions {err.name()}")
                    if not err.retriable() or self._stop.is_set():
                        break
            with contextlib.suppress(Exception):
                producer.purge()
            time.sleep(1)
        return None

    def _confluent_txn(self, name: str, seed: int) -> None:
        """Transactions until stop. Outcomes as recorded: ``commit`` when commit_transaction
        returned; ``abort`` when abort_transaction returned and no commit was tried (after
        a failed commit attempt the commit may have happened: ``info``); ``info`` for
        everything else. A producer whose transaction could not be ended is replaced; the
        new one's init_transactions ends it."""
        from confluent_kafka import KafkaException
        c = self.config
        rec = self.recorder
        rng = random.Random(seed)
        targets = [(topic, p) for topic in c.topics for p in range(c.partitions)]

        def report(err, msg):
            self._delivered(name, err, msg)

        producer = None
        n = 0
        while not self._stop.is_set():
            if producer is None:
                producer = self._txn_producer(name, report)
                if producer is None:
                    break
            n += 1
            txn = f"{name}/t{n}"
            outcome, error, commit_tried, usable = "info", "", False, True
            try:
                producer.begin_transaction()
                for k in range(rng.randint(1, c.txn_max_records)):
                    topic, p = rng.choice(targets)
                    value = f"{name}-{n}.{k}"
                    rec.record(SendInvoke(process=name, producer=name, topic=topic, value=value,
                                          partition=p, txn=txn))
                    producer.produce(topic, value.encode(), partition=p)
                    producer.poll(0)
                if rng.random() < c.txn_abort_ratio:
                    # Delivered first, so that the aborted records are in the log (an
                    # abort right away mostly purges them before they are sent).
                    producer.flush(10)
                    producer.abort_transaction(10)
                    outcome = "abort"
                else:
                    commit_tried = True
                    for attempt in range(3):
                        try:
                            producer.commit_transaction(10)
                            outcome = "commit"
                            break
                        except KafkaException as e:
                            if not e.args[0].retriable() or attempt == 2:
                                raise
            except (KafkaException, BufferError) as e:
                err = e.args[0] if isinstance(e, KafkaException) else None
                error = err.name() if err is not None else "BufferError"
                usable = err is None or not err.fatal()
                if usable:
                    try:
                        producer.abort_transaction(10)
                        outcome = "info" if commit_tried else "abort"
                    except KafkaException as abort_error:
                        error += f", abort: {abort_error.args[0].name()}"
                        usable = False
            rec.record(TxnEnd(process=name, producer=name, txn=txn, outcome=outcome, error=error))
            if not usable:
                self._note(f"{name}: replaced after {txn} ({error})")
                with contextlib.suppress(Exception):
                    producer.purge()
                    producer.flush(1)
                producer = None
            if producer is not None:
                producer.poll(c.txn_pause_s)

    def _kafka_python(self, name: str) -> None:
        import logging

        from kafka import KafkaProducer
        from kafka.errors import KafkaTimeoutError
        logging.getLogger("kafka").setLevel(logging.CRITICAL)  # faults make it log by the hundred
        c = self.config
        rec = self.recorder
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
            max_in_flight_requests_per_connection=5, linger_ms=5,
            delivery_timeout_ms=c.message_timeout_ms, request_timeout_ms=c.request_timeout_ms,
            retry_backoff_ms=100, max_block_ms=5000, metadata_max_age_ms=5000)

        def ok(md, value):
            rec.record(SendOk(process=name, value=value, topic=md.topic, partition=md.partition,
                              offset=md.offset))
            with self._lock:
                self.acked += 1

        def failed(exc, value):
            rec.record(SendInfo(process=name, value=value, error=type(exc).__name__))

        for i, topic, p in self._paced_sends(time.sleep):
            value = f"{name}-{i}"
            rec.record(SendInvoke(process=name, producer=name, topic=topic, value=value,
                                  partition=p))
            try:
                future = producer.send(topic, value.encode(), partition=p)
            except KafkaTimeoutError as e:  # no metadata within max_block_ms: never queued
                rec.record(SendFail(process=name, value=value, error=type(e).__name__))
                continue
            except Exception as e:  # noqa: BLE001 - anything else is unknown
                rec.record(SendInfo(process=name, value=value, error=type(e).__name__))
                continue
            future.add_callback(ok, value=value)
            future.add_errback(failed, value=value)
        with contextlib.suppress(Exception):
            producer.flush(c.message_timeout_ms / 1000 + 10)
        with contextlib.suppress(Exception):
            producer.close(timeout=5)

    # --- consumers ------------------------------------------------------------------

    def start_consumer(self) -> str:
        self._consumer_seq += 1
        name = f"c{self._consumer_seq}"
        c = self.config
        cmd = [sys.executable, "-m", "tests.reliability.workload", "consumer",
               "--bootstrap", self.bootstrap, "--group", c.group, "--name", name,
               "--history", str(self.out / f"consumer-{name}.jsonl"),
               "--commit-interval-s", str(c.commit_interval_s),
               "--committed-read-interval-s", str(c.committed_read_interval_s),
               "--max-seconds", str(c.consumer_max_seconds), "--topics", ",".join(c.topics),
               "--partitions", str(c.partitions)]
        log = open(self.out / f"consumer-{name}.log", "w")  # noqa: SIM115 - the child owns it
        self.consumers[name] = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return name

    def live_consumers(self) -> list[str]:
        return [n for n, p in self.consumers.items() if p.poll() is None]

    def kill_consumer(self, name: str) -> None:
        """SIGKILL: no commit, no LeaveGroup; the group notices by the session timeout."""
        proc = self.consumers[name]
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def stop_consumers(self, timeout_s: float = 20) -> None:
        for proc in self.consumers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.consumers.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    # --- the end --------------------------------------------------------------------

    def stop_producers(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.config.message_timeout_ms / 1000 + 30)

    def stop(self) -> None:
        self.stop_producers()
        self.stop_consumers()

    def drain(self, timeout_s: float = 60) -> dict[tuple[str, int], int]:
        """Read every partition from its start to its high watermark with a fresh consumer;
        returns the high watermarks."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        high_watermarks = {}
        for topic in self.config.topics:
            for p in range(self.config.partitions):
                consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "drain",
                                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                     "isolation.level": "read_committed",
                                     "enable.partition.eof": False, "log_level": QUIET})
                try:
                    tp = TopicPartition(topic, p)
                    low, high = self._watermarks(consumer, tp)
                    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
                    records: list[tuple[int, str]] = []
                    deadline = time.monotonic() + timeout_s
                    last = low - 1
                    # Control batches and aborted records hold offsets no record is read
                    # at: the consumer's position passing them tells the end.
                    while (last + 1 < high and time.monotonic() < deadline
                           and consumer.position([tp])[0].offset < high):
                        for m in consumer.consume(500, 1.0):
                            if m.error() is not None:
                                self._note(f"drain {topic}/{p}: {m.error().name()}")
                                continue
                            if m.offset() < high:
                                records.append((m.offset(), m.value().decode()))
                                last = max(last, m.offset())
                    if last + 1 < high and consumer.position([tp])[0].offset < high:
                        self._note(f"drain {topic}/{p}: timed out at {last + 1} of {high}")
                    self.recorder.record(Drain(process="drain", consumer=f"drain-{topic}-{p}",
                                               topic=topic, partition=p, log_start_offset=low,
                                               high_watermark=high, records=records))
                    high_watermarks[(topic, p)] = high
                finally:
                    consumer.close()
        return high_watermarks

    def _watermarks(self, consumer, tp, timeout_s: float = 60) -> tuple[int, int]:
        """The partition's log start offset and high watermark, asked of its leader (which
        may still be moving right after healing)."""
        from confluent_kafka import KafkaException
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return consumer.get_watermark_offsets(tp, timeout=10)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def dump_replicas(self, data_dirs: dict[int, str],
                      high_watermarks: dict[tuple[str, int], int]) -> None:
        from tests.replicas import log_batches
        for node, data_dir in sorted(data_dirs.items()):
            for (topic, p), high in sorted(high_watermarks.items()):
                batches = [b for b in log_batches(data_dir, topic, p) if b[1] < high]
                self.recorder.record(ReplicaDump(process="dump", node=node, topic=topic,
                                                 partition=p, high_watermark=high,
                                                 batches=batches))

    def merge(self) -> Path:
        """All histories of the run, merged by time, in ``history.jsonl``."""
        self.recorder.close()
        parts = [self.out / "main.jsonl", *sorted(self.out.glob("consumer-*.jsonl"))]
        events = load(*[p for p in parts if p.exists()])
        path = self.out / "history.jsonl"
        dump(events, path)
        (self.out / "workload.json").write_text(json.dumps(
            {"bootstrap": self.bootstrap, "config": asdict(self.config),
             "client_errors": self.client_errors}, indent=1))
        return path


# --- the consumer process -----------------------------------------------------------

def run_consumer(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    rec = Recorder(args.history)
    name, group = args.name, args.group
    topics = args.topics.split(",")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    positions: dict[tuple[str, int], int] = {}  # next offset to commit, from what was read
    assigned: set[tuple[str, int]] = set()

    def commit(consumer, tps) -> None:
        offsets = [TopicPartition(t, p, positions[(t, p)]) for t, p in sorted(tps)
                   if (t, p) in positions]
        if not offsets:
            return
        try:
            result = consumer.commit(offsets=offsets, asynchronous=False)
            for tp in result:
                err = tp.error
                outcome = "ok" if err is None else ("fail" if err.name() in COMMIT_REFUSED else "info")
                rec.record(Commit(process=name, consumer=name, group=group, topic=tp.topic,
                                  partition=tp.partition, offset=tp.offset, outcome=outcome))
        except KafkaException as e:
            outcome = "fail" if e.args[0].name() in COMMIT_REFUSED else "info"
            for tp in offsets:
                rec.record(Commit(process=name, consumer=name, group=group, topic=tp.topic,
                                  partition=tp.partition, offset=tp.offset, outcome=outcome))

    def on_assign(consumer, partitions):
        assigned.clear()
        assigned.update((tp.topic, tp.partition) for tp in partitions)
        positions.clear()
        rec.record(Rebalance(process=name, consumer=name, group=group,
                             assigned=sorted(assigned)))

    def on_revoke(consumer, partitions):
        commit(consumer, {(tp.topic, tp.partition) for tp in partitions})
        assigned.clear()
        positions.clear()
        rec.record(Rebalance(process=name, consumer=name, group=group, assigned=[]))

    def on_lost(consumer, partitions):
        assigned.clear()
        positions.clear()
        rec.record(Rebalance(process=name, consumer=name, group=group, assigned=[]))

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": group, "client.id": name,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 60000, "enable.partition.eof": False, "log_level": QUIET})
    consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    everything = [TopicPartition(t, p) for t in topics for p in range(args.partitions)]
    deadline = time.monotonic() + args.max_seconds
    next_commit = time.monotonic() + args.commit_interval_s
    next_read = time.monotonic() + args.committed_read_interval_s
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            messages = consumer.consume(500, 0.5)
            polled: dict[tuple[str, int], list[tuple[int, str]]] = {}
            for m in messages:
                err = m.error()
                if err is not None:
                    if err.name() in POSITION_RESETS and m.topic() is not None:
                        rec.record(Seek(process=name, consumer=name, topic=m.topic(),
                                        partition=m.partition(), offset=None))
                    continue
                polled.setdefault((m.topic(), m.partition()), []).append(
                    (m.offset(), m.value().decode()))
            for (t, p), records in polled.items():
                rec.record(Poll(process=name, consumer=name, topic=t, partition=p,
                                records=records))
                if (t, p) in assigned:
                    positions[(t, p)] = records[-1][0] + 1
            now = time.monotonic()
            if now >= next_commit:
                commit(consumer, set(assigned))
                next_commit = now + args.commit_interval_s
            if now >= next_read:
                next_read = now + args.committed_read_interval_s
                try:
                    invoked = time.monotonic()
                    for tp in consumer.committed(everything, timeout=5):
                        if tp.error is None:
                            rec.record(CommittedRead(
                                process=name, group=group, topic=tp.topic,
                                partition=tp.partition, offset=tp.offset if tp.offset >= 0 else None,
                                invoked=invoked))
                except KafkaException:
                    pass
    finally:
        with contextlib.suppress(Exception):
            consumer.close()  # commits nothing (auto commit is off); leaves the group
        rec.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.workload")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("consumer", help="one group consumer process (the workload starts these)")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--group", required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--history", required=True)
    c.add_argument("--topics", required=True)
    c.add_argument("--partitions", type=int, required=True)
    c.add_argument("--commit-interval-s", type=float, default=1.0)
    c.add_argument("--committed-read-interval-s", type=float, default=2.0)
    c.add_argument("--max-seconds", type=float, default=1200)
    args = parser.parse_args(argv)
    return run_consumer(args)


if __name__ == "__main__":
    sys.exit(main())

"""Data-path benchmark: one Odradek node driven by confluent-kafka (librdkafka).

Measured in one run, on this machine, with the load generator beside the broker:
- produce throughput (records/s, MB/s) for 100 B and 1 KiB records, acks=1 and -1;
- produce latency p50/p99 at a paced 10 MB/s with linger.ms=0, from produce()
  to the delivery report, paced as kafka-producer-perf-test paces (see
  produce_latency) and, for comparison, one record every 0.1 ms;
- consume throughput of 16 KiB records with a confluent-kafka consumer and with
  kcat, and of 1 KiB records with kcat, each after an os.sync() so that the
  writeback of the produce runs does not compete with it.  A Python consumer tops
  out near 40k large records/s whatever the broker does (it copies every value into
  a Python object), so kcat with 16 KiB records is the figure that measures the
  broker's fetch path;
- the machine's own limits: a loopback TCP copy and a page-cache append loop;
- a peer: librdkafka's built-in mock cluster (test.mock.num.brokers=1) under the
  same produce load.
The Python produce() loop itself tops out near 200k records/s, so throughput is
also measured with kcat, librdkafka's C command-line client, as the load
generator (producing, and consuming 1 KiB records). Latency runs first, on an
idle machine, before the bulk writes fill the page cache.
Prints one table with ratios and writes bench/results-produce.json.
Targets (issue: data path): 1 KiB acks=1 >= 250 MB/s; consume >= 600 MB/s;
p99 <= 2 ms at 10 MB/s.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.brokerproc import BrokerProcess
from tests.clients import create_topics

PRODUCE_BYTES = 400 * 2**20  # per throughput run
CONSUME_BYTES = 1 * 2**30
LATENCY_SECONDS = 5
LATENCY_RATE = 10 * 2**20  # bytes/s
MIN_SLEEP_S = 0.002  # kafka-producer-perf-test's ThroughputThrottler.MIN_SLEEP_NS
RESULTS = Path(__file__).resolve().parent / "results-produce.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PRODUCER_TUNING = {"linger.ms": 5, "batch.size": 1_000_000, "batch.num.messages": 100_000,
                   "queue.buffering.max.kbytes": 1_048_576, "queue.buffering.max.messages": 2_000_000,
                   "compression.type": "none", "message.max.bytes": 2_000_000}


def cpu_seconds(pids) -> float:
    """User plus system CPU seconds of the processes (every thread of each), from the
    utime and stime fields of /proc/<pid>/stat: what a broker spends, whatever it runs on."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
        ticks += int(fields[11]) + int(fields[12])  # stat fields 14 and 15
    return ticks / CLK_TCK


class BrokerCpu:
    """The broker processes' CPU seconds over a ``with`` block, so that one load generator
    measures any broker (Odradek's or Kafka's) given its pids; no pids, no figure."""

    def __init__(self, pids=()):
        self.pids = list(pids)
        self.seconds = None

    def __enter__(self) -> "BrokerCpu":
        self._start = cpu_seconds(self.pids) if self.pids else None
        return self

    def __exit__(self, *exc) -> None:
        if self.pids:
            self.seconds = cpu_seconds(self.pids) - self._start

    def add_to(self, result: dict, nbytes: int) -> dict:
        """The result with the broker's CPU seconds and CPU seconds per GiB of records."""
        if self.seconds is not None:
            result["broker_cpu_s"] = self.seconds
            result["broker_cpu_s_per_gb"] = self.seconds / (nbytes / 2**30)
        return result


def produce_throughput(config: dict, topic: str, size: int, acks: str,
                       total_bytes: int = PRODUCE_BYTES, pids=()) -> dict:
    """Produce ``total_bytes`` of ``size``-byte records as fast as confluent-kafka goes;
    ``pids``: the broker processes whose CPU the run also reports."""
    p = Producer({**config, **PRODUCER_TUNING, "acks": acks})
    value = os.urandom(size)
    count = total_bytes // size
    failures = []
    with BrokerCpu(pids) as cpu:
        started = time.perf_counter()
        for _ in range(count):
            while True:
                try:
                    p.produce(topic, value, on_delivery=lambda err, _m: err and failures.append(err))
                    break
                except BufferError:
                    p.poll(0.001)
        left = p.flush(120)
        elapsed = time.perf_counter() - started
    assert left == 0 and not failures, failures[:3]
    return cpu.add_to({"records_per_s": count / elapsed, "mb_per_s": count * size / elapsed / 2**20},
                      count * size)


def produce_latency(config: dict, topic: str, size: int = 1024, acks: str = "1",
                    min_sleep_s: float = MIN_SLEEP_S, max_in_flight: int | None = None,
                    seconds: float = LATENCY_SECONDS) -> dict:
    """Delivery latency at a paced LATENCY_RATE with linger.ms=0, from produce() to the
    delivery report.

    Pacing is that of Kafka's own kafka-producer-perf-test (ThroughputThrottler): send
    at full speed and, once ahead of the rate by ``min_sleep_s`` (2 ms there), wait that
    long; here the wait is a poll(), so delivery reports are timed as they arrive.
    ``min_sleep_s=0`` paces every record on its own (one every 0.1 ms at 10 MB/s): the
    pacing loop then wakes 10,000 times a second, and with librdkafka's threads the load
    generator alone takes more than one of the 2 cores.
    ``max_in_flight``: librdkafka lets 1,000,000 requests be in flight per connection
    (every record may go as its own request); the Java client's default, and the cap an
    idempotent producer of either client has, is 5, with which records that arrive while
    requests wait go together."""
    extra = {"max.in.flight.requests.per.connection": max_in_flight} if max_in_flight else {}
    p = Producer({**config, "acks": acks, "linger.ms": 0, "compression.type": "none", **extra})
    value = os.urandom(size)
    p.produce(topic, value)  # warm-up: metadata, connections, and a just-created topic's leader
    assert p.flush(30) == 0
    latencies = []
    interval = size / LATENCY_RATE
    count = int(seconds / interval)
    started = time.perf_counter()
    for i in range(count):
        sent = time.perf_counter()
        p.produce(topic, value,
                  on_delivery=lambda err, _m, sent=sent: latencies.append(time.perf_counter() - sent))
        p.poll(0)
        wake_at = started + (i + 1) * interval
        if wake_at - time.perf_counter() >= min_sleep_s:
            while (now := time.perf_counter()) < wake_at:
                p.poll(wake_at - now)
    p.flush(30)
    latencies.sort()
    return {"p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000, "records": len(latencies),
            "pacing_min_sleep_ms": min_sleep_s * 1000}


def fill_topic(bootstrap: str, topic: str, size: int = 16 * 1024,
               total_bytes: int = CONSUME_BYTES) -> int:
    """Write ``total_bytes`` of ``size``-byte records to partition 0; the record count."""
    p = Producer({"bootstrap.servers": bootstrap, **PRODUCER_TUNING, "acks": "1"})
    value = os.urandom(size)
    count = total_bytes // size
    for _ in range(count):
        while True:
            try:
                p.produce(topic, value, partition=0)
                break
            except BufferError:
                p.poll(0.001)
    assert p.flush(120) == 0
    os.sync()
    return count


def consume_throughput(bootstrap: str, topic: str, count: int, size: int = 16 * 1024, pids=(),
                       security: dict | None = None) -> dict:
    """``security``: the client's TLS/SASL settings (bench/tls.py)."""
    c = Consumer({"bootstrap.servers": bootstrap, **(security or {}), "group.id": "bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 64 * 2**20, "max.partition.fetch.bytes": 16 * 2**20,
                  "queued.max.messages.kbytes": 1_048_576})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    with BrokerCpu(pids) as cpu:
        started = time.perf_counter()
        while got < count:
            for m in c.consume(10_000, 1.0):
                if m.error() is None:
                    got += 1
        elapsed = time.perf_counter() - started
    c.close()
    return cpu.add_to({"records_per_s": got / elapsed, "mb_per_s": got * size / elapsed / 2**20,
                       "record_bytes": size, "client": "confluent-kafka"}, got * size)


KCAT_TUNING = ["-X", "linger.ms=5", "-X", "batch.size=1000000", "-X", "batch.num.messages=100000",
               "-X", "queue.buffering.max.kbytes=1048576"]


def kcat_produce(bootstrap: str | None, topic: str, lines: Path, acks: str, pids=()) -> dict:
    """kcat -P of a file of 1 KiB lines (one record each); bootstrap None: the mock cluster."""
    target = ["-b", bootstrap] if bootstrap else ["-b", "mock:9092", "-X", "test.mock.num.brokers=1"]
    size = lines.stat().st_size
    with BrokerCpu(pids) as cpu, open(lines, "rb") as f:
        started = time.perf_counter()
        subprocess.run(["kcat", "-P", *target, "-t", topic, "-p", "0", *KCAT_TUNING, "-X", f"acks={acks}"],
                       stdin=f, check=True, timeout=300, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
    return cpu.add_to({"records_per_s": size / 1024 / elapsed, "mb_per_s": size / elapsed / 2**20}, size)


def kcat_consume(bootstrap: str, topic: str, total_bytes: int, record_bytes: int, pids=()) -> dict:
    """kcat -C of the whole partition, printing nothing (librdkafka's default fetch sizes
    but fetch.max.bytes, as the Python consumer)."""
    with BrokerCpu(pids) as cpu:
        started = time.perf_counter()
        subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q",
                        "-X", "fetch.max.bytes=67108864", "-f", ""], check=True, timeout=300)
        elapsed = time.perf_counter() - started
    return cpu.add_to({"records_per_s": total_bytes / record_bytes / elapsed,
                       "mb_per_s": total_bytes / elapsed / 2**20,
                       "record_bytes": record_bytes, "client": "kcat"}, total_bytes)


def write_lines(path: Path, total: int) -> Path:
    line = b"x" * 1023 + b"\n"
    with open(path, "wb") as f:
        for _ in range(total // len(line)):
            f.write(line)
    return path


def loopback_copy_mb_s(total: int = 2 * 2**30, chunk: int = 2**20) -> float:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def drain():
        conn, _ = server.accept()
        while conn.recv(chunk):
            pass
        conn.close()
    t = threading.Thread(target=drain)
    t.start()
    data = os.urandom(chunk)
    s = socket.create_connection(("127.0.0.1", port))
    started = time.perf_counter()
    for _ in range(total // chunk):
        s.sendall(data)
    s.close()
    t.join()
    server.close()
    return total / (time.perf_counter() - started) / 2**20


def page_cache_append_mb_s(directory: Path, total: int = 1 * 2**30, chunk: int = 2**20) -> float:
    path = directory / "append.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    data = os.urandom(chunk)
    started = time.perf_counter()
    for _ in range(total // chunk):
        os.write(fd, data)
    elapsed = time.perf_counter() - started
    os.close(fd)
    path.unlink()
    return total / elapsed / 2**20


def main() -> None:
    results: dict = {}
    kcat = shutil.which("kcat")
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        tmp = Path(tmp)
        lines = write_lines(tmp / "lines.txt", PRODUCE_BYTES) if kcat else None
        broker = BrokerProcess(tmp / "data", overrides={"message.max.bytes": "2000000"}).start()
        try:
            config = {"bootstrap.servers": broker.bootstrap}
            create_topics(broker.bootstrap, ["p100", "p1k", "lat", "c16k", "k1k", "k1k-all"])
            os.sync()  # no writeback of earlier runs' dirty pages during the latency runs
            for acks in ("1", "-1"):
                results[f"latency_1KiB_10MBps_acks{acks}"] = produce_latency(config, "lat", acks=acks)
                results[f"latency_1KiB_10MBps_acks{acks}_per_record"] = produce_latency(
                    config, "lat", acks=acks, min_sleep_s=0)
            for size, topic in ((100, "p100"), (1024, "p1k")):
                for acks in ("1", "-1"):
                    results[f"produce_{size}B_acks{acks}"] = produce_throughput(config, topic, size, acks)
            if kcat:
                results["kcat_produce_1024B_acks1"] = kcat_produce(broker.bootstrap, "k1k", lines, "1")
                results["kcat_produce_1024B_acks-1"] = kcat_produce(broker.bootstrap, "k1k-all", lines, "-1")
                os.sync()
                results["kcat_consume_1KiB"] = kcat_consume(broker.bootstrap, "k1k", PRODUCE_BYTES, 1024)
            count = fill_topic(broker.bootstrap, "c16k")
            results["consume_16KiB"] = consume_throughput(broker.bootstrap, "c16k", count)
            if kcat:
                results["kcat_consume_16KiB"] = kcat_consume(broker.bootstrap, "c16k", CONSUME_BYTES,
                                                             16 * 1024)
        finally:
            broker.stop()
        results["mock_latency_1KiB_10MBps"] = produce_latency({"test.mock.num.brokers": 1}, "mocklat")
        results["mock_latency_1KiB_10MBps_per_record"] = produce_latency(
            {"test.mock.num.brokers": 1}, "mocklat", min_sleep_s=0)
        results["mock_produce_1024B_acks1"] = produce_throughput({"test.mock.num.brokers": 1},
                                                                 "mock1k", 1024, "1")
        if kcat:
            results["mock_kcat_produce_1024B_acks1"] = kcat_produce(None, "mock1k", lines, "1")
        results["machine"] = {"loopback_copy_mb_s": loopback_copy_mb_s(),
                              "page_cache_append_mb_s": page_cache_append_mb_s(tmp)}
    RESULTS.write_text(json.dumps(results, indent=2))
    _print_table(results)


def _print_table(r: dict) -> None:
    machine = r["machine"]
    loopback, append = machine["loopback_copy_mb_s"], machine["page_cache_append_mb_s"]
    rows = [("machine: loopback TCP copy", f"{loopback:.0f} MB/s", ""),
            ("machine: page-cache append", f"{append:.0f} MB/s", "")]

    def throughput(name, key, peer_key=None):
        if key not in r:
            return
        v = r[key]
        ratio = f"{v['mb_per_s'] / append:.2f}x page-cache append"
        if peer_key in r:
            ratio += f", {v['mb_per_s'] / r[peer_key]['mb_per_s']:.2f}x mock cluster"
        rows.append((name, f"{v['mb_per_s']:.0f} MB/s, {v['records_per_s']:.0f} rec/s", ratio))

    for size in (100, 1024):
        for acks in ("1", "-1"):
            throughput(f"produce {size} B acks={acks} (confluent-kafka)", f"produce_{size}B_acks{acks}",
                       "mock_produce_1024B_acks1" if size == 1024 else None)
    throughput("mock cluster 1 KiB acks=1 (confluent-kafka)", "mock_produce_1024B_acks1")
    for acks in ("1", "-1"):
        throughput(f"produce 1 KiB acks={acks} (kcat)", f"kcat_produce_1024B_acks{acks}",
                   "mock_kcat_produce_1024B_acks1")
    throughput("mock cluster 1 KiB acks=1 (kcat)", "mock_kcat_produce_1024B_acks1")
    for key, name in (("latency_1KiB_10MBps_acks1", "latency 1 KiB @10 MB/s acks=1"),
                      ("latency_1KiB_10MBps_acks1_per_record", "  same, paced per record"),
                      ("latency_1KiB_10MBps_acks-1", "latency 1 KiB @10 MB/s acks=-1"),
                      ("latency_1KiB_10MBps_acks-1_per_record", "  same, paced per record"),
                      ("mock_latency_1KiB_10MBps", "mock cluster latency @10 MB/s"),
                      ("mock_latency_1KiB_10MBps_per_record", "  same, paced per record")):
        v = r[key]
        rows.append((name, f"p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms", ""))
    for key, name in (("consume_16KiB", "consume 16 KiB (confluent-kafka)"),
                      ("kcat_consume_16KiB", "consume 16 KiB (kcat)"),
                      ("kcat_consume_1KiB", "consume 1 KiB (kcat)")):
        if key in r:
            c = r[key]
            rows.append((name, f"{c['mb_per_s']:.0f} MB/s, {c['records_per_s']:.0f} rec/s",
                         f"{c['mb_per_s'] / loopback:.2f}x loopback copy"))
    width = max(len(a) for a, _, _ in rows)
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:<34} {ratio}")
    print(f"(results: {RESULTS})")


if __name__ == "__main__":
    main()

"""Odradek beside Apache Kafka 4.4: the same load, the same clients, one run.

Each phase starts one broker (one node, then three nodes), measures it, stops it, and
only then starts the other: the two never share the 2 cores during a measurement. The
load generators are bench.produce's (confluent-kafka and kcat), given each broker's
bootstrap and pids, and Kafka's own ProducerPerformance and ConsumerPerformance:
- one node, acks=1: produce throughput of 100 B, 1 KiB and 16 KiB records
  (confluent-kafka), of 1 KiB records with kcat and ProducerPerformance; produce
  latency p50/p99 of 1 KiB records at 10 MB/s (confluent-kafka paced as the perf
  tool paces, with librdkafka's unbounded requests in flight, where every record of a
  burst may be a request of its own, and with 5, the Java client's default; and
  ProducerPerformance --throughput); consume of 16 KiB records
  (kcat, confluent-kafka, ConsumerPerformance);
- three nodes, topics with replication factor 3 and min.insync.replicas=2, acks=all:
  produce throughput of 1 KiB records (the three clients) and latency at 10 MB/s;
- the brokers' CPU seconds per GiB produced or consumed (utime+stime of every broker
  process from /proc/<pid>/stat, over the run), start-to-ready time (process start to
  every node answering Metadata with every broker and a controller; Kafka's storage
  format is not counted) and idle RSS after start.
Kafka runs with its launcher's JVM options (kafka-server-start.sh: -Xmx1G -Xms1G, G1)
and its default threads; both brokers get message.max.bytes=2000000 (the tuned
producers send 1 MB batches) and keep their default durability (no fsync per write).
Prints every figure for both with the ratio Odradek/Kafka and which way is better,
and writes bench-out/side_by_side.json. Each phase first runs an untimed warm-up (warm_up).
BENCH_QUICK=1 runs a few seconds per phase: a smoke run, not figures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from bench.produce import (
    BrokerCpu,
    consume_throughput,
    fill_topic,
    kcat_consume,
    kcat_produce,
    produce_latency,
    produce_throughput,
    write_lines,
)
from tests.brokerproc import BrokerProcess
from tests.clients import create_topics
from tests.local_cluster import Cluster
from tests.peers import kafka

QUICK = bool(os.environ.get("BENCH_QUICK"))
SCALE = 0.05 if QUICK else 1.0
MiB = 2**20
PRODUCE_BYTES = {100: int(40 * MiB * SCALE), 1024: int(200 * MiB * SCALE),
                 16 * 1024: int(400 * MiB * SCALE)}
CONSUME_BYTES = int(512 * MiB * SCALE)
LATENCY_SECONDS = 1 if QUICK else 5
WARMUP_SECONDS = 1 if QUICK else 3
LATENCY_RATE = 10 * MiB  # bytes/s, as bench.produce
# Kafka's peer nodes (tests/peers/kafka.py) start groups without the 3 s initial delay: so does
# Odradek here, or ConsumerPerformance's join would differ by that alone.
OVERRIDES = {"message.max.bytes": "2000000", "group.initial.rebalance.delay.ms": "0"}
THREE_NODE_TOPIC = {"min.insync.replicas": "2"}
OUT = Path(__file__).resolve().parent.parent / "bench-out" / "side_by_side.json"
# What bin/kafka-producer-perf-test.sh and kafka-run-class.sh give the perf tools.
PERF_TOOL_JVM_OPTS = ("-Xmx512M", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                      "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                      "-Djava.awt.headless=true")
KAFKA_DEFAULT_THREADS = {"num.network.threads": 3, "num.io.threads": 8, "num.replica.fetchers": 1}
PERF_SUMMARY = re.compile(r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
                          r"([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, "
                          r"(\d+) ms 95th, (\d+) ms 99th")


class Target:
    """A running broker, one or three nodes, as a load generator sees it."""

    def __init__(self, name: str, bootstrap: str, pids: list[int], ready_s: float, stop):
        self.name, self.bootstrap, self.pids, self.ready_s, self.stop = (
            name, bootstrap, pids, ready_s, stop)

    def idle_rss_mib(self) -> float:
        total = 0
        for pid in self.pids:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return total / 1024


def wait_metadata(bootstraps: list[str], brokers: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for b in bootstraps:
        while not kafka._metadata_ready(b, brokers):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{b} not ready after {timeout} s")
            time.sleep(0.05)


def start_odradek(work: Path, nodes: int) -> Target:
    started = time.monotonic()
    if nodes == 1:
        broker = BrokerProcess(work / "odradek", overrides=OVERRIDES).start()
        wait_metadata([broker.bootstrap], 1)
        return Target("odradek", broker.bootstrap, [broker.proc.pid], time.monotonic() - started,
                      broker.stop)
    cluster = Cluster(work / "odradek-cluster", overrides=OVERRIDES).start()
    wait_metadata([b.bootstrap for b in cluster.nodes.values()], nodes)
    return Target("odradek", cluster.bootstrap, [b.proc.pid for b in cluster.nodes.values()],
                  time.monotonic() - started, cluster.stop_all)


def start_kafka(work: Path, nodes: int) -> Target:
    cluster = kafka.KafkaCluster(nodes=nodes, work_dir=work / f"kafka-{nodes}", overrides=OVERRIDES,
                                 jvm_opts=kafka.LAUNCHER_BROKER_JVM_OPTS).start()
    return Target("kafka", cluster.bootstrap, [n.proc.pid for n in cluster.nodes], cluster.ready_s,
                  cluster.stop)


def producer_perf(t: Target, topic: str, size: int, total_bytes: int, acks: str,
                  throughput: int = -1) -> dict:
    """Kafka's ProducerPerformance (kafka-producer-perf-test) with the Java producer's
    defaults but acks; ``throughput`` records/s, -1 unthrottled. A throttled run reports
    its steady state (--warmup-records: the tool's first fifth, while its JVM warms up)."""
    count = total_bytes // size
    warmup = ["--warmup-records", str(count // 5)] if throughput > 0 else []
    with BrokerCpu(t.pids) as cpu:
        r = kafka.run_tool("kafka-producer-perf-test", "--bootstrap-server", t.bootstrap,
                           "--topic", topic, "--num-records", str(count), "--record-size", str(size),
                           "--throughput", str(throughput), *warmup,
                           "--command-property", f"acks={acks}",
                           timeout=300, jvm_opts=PERF_TOOL_JVM_OPTS)
    summary = PERF_SUMMARY.findall(r.stdout)
    if r.rc != 0 or not summary:
        raise RuntimeError(f"kafka-producer-perf-test failed ({r.rc}):\n{r.stdout[-2000:]}"
                           f"{r.stderr[-2000:]}")
    _sent, rec_s, mb_s, avg, _max, p50, _p95, p99 = summary[-1]
    return cpu.add_to({"records_per_s": float(rec_s), "mb_per_s": float(mb_s),
                       "avg_ms": float(avg), "p50_ms": float(p50), "p99_ms": float(p99),
                       "client": "ProducerPerformance"}, count * size)  # CPU: the whole run


def consumer_perf(t: Target, topic: str, count: int, size: int) -> dict:
    """Kafka's ConsumerPerformance (kafka-consumer-perf-test) in a fresh group; MB/s of
    the fetch phase (fetch.MB.sec: the group join is not counted)."""
    with BrokerCpu(t.pids) as cpu:
        r = kafka.run_tool("kafka-consumer-perf-test", "--bootstrap-server", t.bootstrap,
                           "--topic", topic, "--num-records", str(count), "--timeout", "30000",
                           "--group", f"perf-{t.name}-{time.time_ns()}", timeout=300,
                           jvm_opts=PERF_TOOL_JVM_OPTS)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    if r.rc != 0 or len(lines) < 2:
        raise RuntimeError(f"kafka-consumer-perf-test failed ({r.rc}):\n{r.stdout[-2000:]}"
                           f"{r.stderr[-2000:]}")
    stats = dict(zip([h.strip() for h in lines[-2].split(",")],
                     [v.strip() for v in lines[-1].split(",")], strict=False))
    got = int(stats["data.consumed.in.nMsg"])
    return cpu.add_to({"records_per_s": float(stats["fetch.nMsg.sec"]),
                       "mb_per_s": float(stats["fetch.MB.sec"]),
                       "rebalance_ms": float(stats["rebalance.time.ms"]),
                       "records": got, "client": "ConsumerPerformance"}, got * size)


def warm_up(t: Target, acks: str) -> None:
    """Untimed load before the figures: a JVM runs its hot paths interpreted until the
    JIT has compiled them (Kafka's first second of produce is 100 times slower than the
    next), and both brokers open their first segments and connections here."""
    cfg = {"bootstrap.servers": t.bootstrap}
    produce_latency(cfg, "warm-up", acks=acks, seconds=WARMUP_SECONDS)
    count = fill_topic(t.bootstrap, "warm-up", 1024, total_bytes=PRODUCE_BYTES[1024] // 4)
    kcat_consume(t.bootstrap, "warm-up", count * 1024, 1024)


def one_node(t: Target, lines: Path) -> dict:
    cfg = {"bootstrap.servers": t.bootstrap}
    r: dict = {"ready_s": t.ready_s}
    time.sleep(1)
    r["idle_rss_mib"] = t.idle_rss_mib()
    create_topics(t.bootstrap, ["warm-up", "lat", "perf-lat", "p100", "p1024", "p16384", "k1k",
                                "perf1k", "c16k"])
    warm_up(t, "1")
    os.sync()  # no writeback of earlier writes during the latency runs
    r["latency_1KiB_10MBps"] = produce_latency(cfg, "lat", acks="1", seconds=LATENCY_SECONDS)
    r["latency_1KiB_10MBps_inflight5"] = produce_latency(cfg, "lat", acks="1", max_in_flight=5,
                                                         seconds=LATENCY_SECONDS)
    r["perf_latency_1KiB_10MBps"] = producer_perf(t, "perf-lat", 1024, LATENCY_RATE * LATENCY_SECONDS,
                                                  "1", throughput=LATENCY_RATE // 1024)
    for size, total in PRODUCE_BYTES.items():
        r[f"produce_{size}B"] = produce_throughput(cfg, f"p{size}", size, "1", total, pids=t.pids)
    r["kcat_produce_1KiB"] = kcat_produce(t.bootstrap, "k1k", lines, "1", pids=t.pids)
    r["perf_produce_1KiB"] = producer_perf(t, "perf1k", 1024, PRODUCE_BYTES[1024], "1")
    count = fill_topic(t.bootstrap, "c16k", total_bytes=CONSUME_BYTES)  # syncs
    r["kcat_consume_16KiB"] = kcat_consume(t.bootstrap, "c16k", count * 16 * 1024, 16 * 1024,
                                           pids=t.pids)
    r["consume_16KiB"] = consume_throughput(t.bootstrap, "c16k", count, pids=t.pids)
    r["perf_consume_16KiB"] = consumer_perf(t, "c16k", count, 16 * 1024)
    return r


def three_nodes(t: Target, lines: Path) -> dict:
    cfg = {"bootstrap.servers": t.bootstrap}
    r: dict = {"ready_s": t.ready_s}
    time.sleep(1)
    r["idle_rss_mib"] = t.idle_rss_mib()
    create_topics(t.bootstrap, ["warm-up", "lat", "perf-lat", "rf3", "k1k", "perf1k"], rf=3,
                  config=THREE_NODE_TOPIC, timeout_s=60)
    warm_up(t, "-1")
    os.sync()
    r["latency_1KiB_10MBps"] = produce_latency(cfg, "lat", acks="-1", seconds=LATENCY_SECONDS)
    r["latency_1KiB_10MBps_inflight5"] = produce_latency(cfg, "lat", acks="-1", max_in_flight=5,
                                                         seconds=LATENCY_SECONDS)
    r["perf_latency_1KiB_10MBps"] = producer_perf(t, "perf-lat", 1024, LATENCY_RATE * LATENCY_SECONDS,
                                                  "all", throughput=LATENCY_RATE // 1024)
    r["produce_1024B"] = produce_throughput(cfg, "rf3", 1024, "-1", PRODUCE_BYTES[1024], pids=t.pids)
    r["kcat_produce_1KiB"] = kcat_produce(t.bootstrap, "k1k", lines, "-1", pids=t.pids)
    r["perf_produce_1KiB"] = producer_perf(t, "perf1k", 1024, PRODUCE_BYTES[1024], "all")
    return r


def run_phase(start, work: Path, nodes: int, measure, lines: Path) -> dict:
    print(f"-- {start.__name__[6:]}, {nodes} node(s)", flush=True)
    t = start(work, nodes)
    try:
        return measure(t, lines)
    finally:
        t.stop()


def main() -> None:
    kafka.ensure_kafka()
    OUT.parent.mkdir(exist_ok=True)
    results: dict = {"settings": settings(), "odradek": {}, "kafka": {}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=OUT.parent) as tmp:
        tmp = Path(tmp)
        lines = write_lines(tmp / "lines.txt", PRODUCE_BYTES[1024])
        for nodes, measure in ((1, one_node), (3, three_nodes)):
            for name, start in (("odradek", start_odradek), ("kafka", start_kafka)):
                work = tmp / f"{name}-{nodes}"
                results[name][f"{nodes}_node"] = run_phase(start, work, nodes, measure, lines)
                shutil.rmtree(work, ignore_errors=True)
                results["settings"]["run_s"] = time.monotonic() - started
                OUT.write_text(json.dumps(results, indent=2))  # a later failure keeps these
    print_table(results)


def settings() -> dict:
    return {"kafka_version": kafka.KAFKA_VERSION,
            "kafka_jvm_opts": " ".join(kafka.LAUNCHER_BROKER_JVM_OPTS),
            "kafka_threads": KAFKA_DEFAULT_THREADS, "broker_overrides": OVERRIDES,
            "three_node_topic": {"replication.factor": 3, **THREE_NODE_TOPIC},
            "perf_tool_jvm_opts": " ".join(PERF_TOOL_JVM_OPTS), "quick": QUICK,
            "produce_bytes": PRODUCE_BYTES, "consume_bytes": CONSUME_BYTES,
            "latency_seconds": LATENCY_SECONDS, "cpus": os.cpu_count(),
            "load_average": os.getloadavg()}


def _throughput(label: str, phase: str, key: str) -> list[tuple]:
    """A throughput row and the broker CPU row under it."""
    cpu = "  broker CPU per GiB" if phase == "1_node" else "  brokers' CPU per GiB (sum)"
    return [(label, phase, key, "mb_per_s", "MB/s", True),
            (cpu, phase, key, "broker_cpu_s_per_gb", "s", False)]


# (label, phase, result key, field, unit, higher is better)
ROWS = [
    ("start to ready", "1_node", None, "ready_s", "s", False),
    ("idle RSS", "1_node", None, "idle_rss_mib", "MiB", False),
    *_throughput("produce 100 B acks=1 (confluent-kafka)", "1_node", "produce_100B"),
    *_throughput("produce 1 KiB acks=1 (confluent-kafka)", "1_node", "produce_1024B"),
    *_throughput("produce 16 KiB acks=1 (confluent-kafka)", "1_node", "produce_16384B"),
    *_throughput("produce 1 KiB acks=1 (kcat)", "1_node", "kcat_produce_1KiB"),
    *_throughput("produce 1 KiB acks=1 (ProducerPerformance)", "1_node", "perf_produce_1KiB"),
    ("p50 1 KiB @10 MB/s acks=1 (confluent-kafka)", "1_node", "latency_1KiB_10MBps", "p50_ms", "ms",
     False),
    ("p99 1 KiB @10 MB/s acks=1 (confluent-kafka)", "1_node", "latency_1KiB_10MBps", "p99_ms", "ms",
     False),
    ("  same, max.in.flight=5 (confluent-kafka)", "1_node", "latency_1KiB_10MBps_inflight5",
     "p99_ms", "ms", False),
    ("p99 1 KiB @10 MB/s acks=1 (ProducerPerformance)", "1_node", "perf_latency_1KiB_10MBps",
     "p99_ms", "ms", False),
    *_throughput("consume 16 KiB (kcat)", "1_node", "kcat_consume_16KiB"),
    *_throughput("consume 16 KiB (confluent-kafka)", "1_node", "consume_16KiB"),
    *_throughput("consume 16 KiB (ConsumerPerformance)", "1_node", "perf_consume_16KiB"),
    ("3 nodes: start to ready", "3_node", None, "ready_s", "s", False),
    ("3 nodes: idle RSS (sum)", "3_node", None, "idle_rss_mib", "MiB", False),
    *_throughput("3 nodes RF3: produce 1 KiB acks=all (confluent-kafka)", "3_node", "produce_1024B"),
    *_throughput("3 nodes RF3: produce 1 KiB acks=all (kcat)", "3_node", "kcat_produce_1KiB"),
    *_throughput("3 nodes RF3: produce 1 KiB acks=all (ProducerPerformance)", "3_node",
                 "perf_produce_1KiB"),
    ("3 nodes RF3: p50 1 KiB @10 MB/s acks=all (confluent-kafka)", "3_node", "latency_1KiB_10MBps",
     "p50_ms", "ms", False),
    ("3 nodes RF3: p99 1 KiB @10 MB/s acks=all (confluent-kafka)", "3_node", "latency_1KiB_10MBps",
     "p99_ms", "ms", False),
    ("  same, max.in.flight=5 (confluent-kafka)", "3_node", "latency_1KiB_10MBps_inflight5",
     "p99_ms", "ms", False),
    ("3 nodes RF3: p99 @10 MB/s acks=all (ProducerPerformance)", "3_node",
     "perf_latency_1KiB_10MBps", "p99_ms", "ms", False),
]


def _figure(results: dict, broker: str, phase: str, key, field: str):
    r = results[broker].get(phase, {})
    r = r.get(key, {}) if key else r
    return r.get(field)


def print_table(results: dict) -> None:
    s = results["settings"]
    print(f"Kafka {s['kafka_version']} JVM: {s['kafka_jvm_opts']}")
    print("Kafka threads (defaults): " + ", ".join(f"{k}={v}" for k, v in s["kafka_threads"].items()))
    print(f"both brokers: {s['broker_overrides']}; 3-node topics: {s['three_node_topic']}; "
          f"perf tools' JVM: {s['perf_tool_jvm_opts']}")
    print(f"{s['cpus']} CPUs shared with other work, load average at start "
          f"{', '.join(f'{x:.1f}' for x in s['load_average'])}; run took {s['run_s']:.0f} s"
          + (" (BENCH_QUICK)" if s["quick"] else ""))
    width = max(len(r[0]) for r in ROWS)
    print(f"{'':<{width}}  {'Odradek':>10}  {'Kafka 4.4':>10}  {'Odradek/Kafka':>13}")
    for label, phase, key, field, unit, higher in ROWS:
        o, k = (_figure(results, b, phase, key, field) for b in ("odradek", "kafka"))
        if o is None and k is None:
            continue
        ratio = f"{o / k:.2f}x" if o is not None and k else "-"
        cells = [f"{v:.2f}" if isinstance(v, float) and v < 10 else
                 f"{v:.0f}" if v is not None else "-" for v in (o, k)]
        better = "higher is better" if higher else "lower is better"
        print(f"{label:<{width}}  {cells[0]:>10}  {cells[1]:>10}  {ratio:>13}  {unit}, {better}")
    print(f"(results: {OUT})")


if __name__ == "__main__":
    main()

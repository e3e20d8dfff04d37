"""Three-node benchmark: acks=all produce with replication factor 3, on one machine.

Three broker processes (127.0.0.1-3) and the load generator share the 2 cores.
Measured: acks=all produce throughput of 1 KiB records with confluent-kafka and
with kcat (librdkafka's C client), and produce latency p50/p99 at a paced
10 MB/s (linger.ms=0, produce() to delivery report; paced as kafka-producer-perf-test
paces, and one record every 0.1 ms for comparison: bench.produce.produce_latency), with
librdkafka's default max.in.flight and with 5, the Java client's default and an idempotent
producer's cap: acks=all waits for two follower fetches, and with unlimited requests in
flight each record of a burst is a request of its own that every replica handles. The
one-node acks=-1 figure from the same run is printed beside it as the ratio's reference.
Targets (issue: replication): >= 80 MB/s; p99 <= 10 ms at 10 MB/s.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from bench.produce import (
    PRODUCE_BYTES,
    kcat_produce,
    produce_latency,
    produce_throughput,
    write_lines,
)
from tests.brokerproc import BrokerProcess
from tests.clients import create_topics
from tests.local_cluster import Cluster

RESULTS = Path(__file__).resolve().parent / "results-cluster.json"


def main() -> None:
    results: dict = {}
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        tmp = Path(tmp)
        lines = write_lines(tmp / "lines.txt", PRODUCE_BYTES) if shutil.which("kcat") else None
        single = BrokerProcess(tmp / "single", overrides={"message.max.bytes": "2000000"}).start()
        try:
            create_topics(single.bootstrap, ["one"])
            results["one_node_acks-1"] = produce_throughput({"bootstrap.servers": single.bootstrap},
                                                            "one", 1024, "-1")
        finally:
            single.stop()
        cluster = Cluster(tmp / "cluster", overrides={"message.max.bytes": "2000000"}).start()
        try:
            cluster.wait_formed()
            create_topics(cluster.live_bootstrap, ["rf3", "rf3-lat", "rf3-kcat"], rf=3,
                          config={"min.insync.replicas": "2"}, timeout_s=60)
            config = {"bootstrap.servers": cluster.bootstrap}
            os.sync()  # the one-node run's writeback must not land in the latency run
            results["rf3_latency_1KiB_10MBps"] = produce_latency(config, "rf3-lat", acks="-1")
            results["rf3_latency_1KiB_10MBps_inflight5"] = produce_latency(config, "rf3-lat", acks="-1",
                                                                           max_in_flight=5)
            results["rf3_latency_1KiB_10MBps_per_record"] = produce_latency(config, "rf3-lat", acks="-1",
                                                                            min_sleep_s=0)
            results["rf3_acks-1"] = produce_throughput(config, "rf3", 1024, "-1")
            if lines:
                results["rf3_kcat_acks-1"] = kcat_produce(cluster.bootstrap, "rf3-kcat", lines, "-1")
        finally:
            cluster.stop_all()
    RESULTS.write_text(json.dumps(results, indent=2))
    one = results["one_node_acks-1"]["mb_per_s"]
    rows = [("one node, 1 KiB acks=-1 (confluent-kafka)", results["one_node_acks-1"]),
            ("3 nodes RF3, 1 KiB acks=-1 (confluent-kafka)", results["rf3_acks-1"])]
    if "rf3_kcat_acks-1" in results:
        rows.append(("3 nodes RF3, 1 KiB acks=-1 (kcat)", results["rf3_kcat_acks-1"]))
    for name, v in rows:
        print(f"{name:<46} {v['mb_per_s']:7.0f} MB/s  {v['mb_per_s'] / one:.2f}x one node")
    for key, name in (("rf3_latency_1KiB_10MBps", "3 nodes RF3 latency @10 MB/s acks=-1"),
                      ("rf3_latency_1KiB_10MBps_inflight5", "  same, max.in.flight=5"),
                      ("rf3_latency_1KiB_10MBps_per_record", "  same, paced per record")):
        lat = results[key]
        print(f"{name:<46} p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms")
    print(f"(results: {RESULTS})")


if __name__ == "__main__":
    main()

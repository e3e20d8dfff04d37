"""10,000 partitions on one node: create, serve, restart, within the open-file limit.

One broker process under ``ulimit -n`` LIMIT (soft and hard: this machine's hard limit):
100 topics of 100 partitions are created (CreateTopics of 10 topics at a time), one
partition of each topic gets a produce and a fetch, the node stops cleanly and starts
again, and the same partitions are read back and written once more. Reported per phase:
wall time, the broker's open descriptors (/proc/<pid>/fd), descriptors per partition,
and its RSS. Before the segment LRU (storage.handles) each partition held 5 descriptors
and a CreateTopics failed with EMFILE at about 4,000 partitions.
``python -m bench partitions`` (a few minutes; not part of make test).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from kafka.protocol.admin import CreateTopicsResponse

from tests.brokerproc import BrokerProcess
from tests.rawclient import RawConnection, create_request, fetch_offsets, produce_and_fetch

LIMIT = 20_000
TOPICS, PARTITIONS, TOPICS_PER_REQUEST = 100, 100, 10


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return -1.0


def _report(phase: str, seconds: float, broker: BrokerProcess) -> dict:
    fds = broker.open_descriptors()
    row = {"phase": phase, "seconds": round(seconds, 1), "open_fds": fds,
           "fds_per_partition": round(fds / (TOPICS * PARTITIONS), 3),
           "rss_mb": round(_rss_mb(broker.proc.pid), 1)}
    print(f"  {phase:<22} {row['seconds']:>7.1f} s  {fds:>6} fds  "
          f"{row['fds_per_partition']:.3f} fds/partition  {row['rss_mb']:>7.1f} MB RSS")
    return row


def run(tmp: Path) -> list[dict]:
    names = [f"p{t:03d}" for t in range(TOPICS)]
    broker = BrokerProcess(tmp / "data", open_file_limit=LIMIT)
    started = time.monotonic()
    broker.start(timeout=120)
    rows = [_report("start (empty)", time.monotonic() - started, broker)]
    try:
        with RawConnection(broker.bootstrap, timeout=600) as conn:
            started = time.monotonic()
            for i in range(0, TOPICS, TOPICS_PER_REQUEST):
                created = conn.roundtrip(create_request(names[i:i + TOPICS_PER_REQUEST], PARTITIONS),
                                         5, CreateTopicsResponse)
                failed = [(t.name, t.error_code) for t in created.topics if t.error_code]
                if failed:
                    raise RuntimeError(f"CreateTopics failed: {failed[:3]}")
            rows.append(_report("create 10,000", time.monotonic() - started, broker))
            started = time.monotonic()
            for t, name in enumerate(names):
                assert produce_and_fetch(conn, name, t % PARTITIONS, b"before") == [0]
            rows.append(_report("produce+fetch x100", time.monotonic() - started, broker))
        started = time.monotonic()
        if broker.stop(timeout=600) != 0:
            raise RuntimeError("unclean stop")
        rows.append({"phase": "stop", "seconds": round(time.monotonic() - started, 1)})
        print(f"  {'stop (clean)':<22} {rows[-1]['seconds']:>7.1f} s")
        started = time.monotonic()
        broker.start(timeout=600)
        rows.append(_report("restart", time.monotonic() - started, broker))
        with RawConnection(broker.bootstrap, timeout=600) as conn:
            started = time.monotonic()
            for t, name in enumerate(names):
                assert fetch_offsets(conn, name, t % PARTITIONS) == [0]
                assert produce_and_fetch(conn, name, t % PARTITIONS, b"after") == [0, 1]
            rows.append(_report("fetch+produce x100", time.monotonic() - started, broker))
        if "Too many open files" in broker.log_text():
            raise RuntimeError("the broker ran out of descriptors")
    finally:
        broker.kill()
    return rows


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="odradek-bench-partitions-"))
    try:
        print(f"{TOPICS} topics x {PARTITIONS} partitions, ulimit -n {LIMIT}")
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

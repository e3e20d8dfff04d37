"""The event loop's lag under a segment roll and under a follower truncation.

In one process, with the broker's own code (ReplicaManager, Log, LoopLagMonitor):

- rolls: idempotent batches appended as a leader with segment.bytes 64 KiB, so
  every few appends roll a segment and snapshot the producer state;
- truncation: a follower's log of 40 segments and 50 producers cut in the middle,
  then its producer state rebuilt by a replay of batch headers.

Each runs on this disk, and with every storage fsync slowed to SLOW_FSYNC_S (a disk
that really waits for the media), and is set beside the same work done the old
way, on the loop ("blocking": the snapshot, the epoch file and the replay in place).
The figure is the monitor's longest stall while the work ran (a 5 ms timer), in ms,
the median of ROUNDS runs. ``python -m bench loop_lag`` (about a minute).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import structlog

from odradek.broker.config import BrokerConfig
from odradek.broker.loop_lag import LoopLagMonitor
from odradek.broker.replica_manager import Partition, ReplicaManager
from odradek.protocol import records as rec
from odradek.replication.metadata import MetadataImage, PartitionState
from odradek.replication.partition import ReplicatedPartition
from odradek.storage import FaultyIO

SLOW_FSYNC_S = 0.05
ROUNDS = 3  # each figure is the median of this many runs (a shared machine is noisy)
ROLL_APPENDS = 400  # of 10 x 1 KB records: ~60 rolls at 64 KiB
TRUNCATE_BATCHES = 2000  # of 10 x 1 KB records: ~40 segments at 512 KiB
PRODUCERS = 50
REPO = Path(__file__).resolve().parent.parent


def _batch(producer_id: int, sequence: int) -> bytes:
    return rec.build_batch([rec.Record(b"k", b"v" * 1000, (), int(time.time() * 1000))
                            for _ in range(10)],
                           producer_id=producer_id, producer_epoch=0, base_sequence=sequence)


async def _measure(work) -> float:
    monitor = LoopLagMonitor(interval_s=0.005, warn_ms=10**9)
    task = asyncio.get_running_loop().create_task(monitor.run())
    await asyncio.sleep(0.02)
    await work()
    await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return monitor.max_lag_ms()


async def _rolls(directory: Path, io: FaultyIO, blocking: bool) -> float:
    rm = ReplicaManager(BrokerConfig({"log.segment.bytes": str(64 * 1024)}), MetadataImage(), 1,
                        str(directory), io=io)
    log_ = rm.log_manager.get_or_create_log("t", 0)
    replication = ReplicatedPartition(1, lag_time_max_ms=30000)
    replication.on_metadata(PartitionState("tid", 0, [1], [1], leader=1, leader_epoch=0,
                                           partition_epoch=0), 0, 0, rm.clock_ms())
    p = Partition("t", 0, log_, rm._load_producer_state(log_), replication)
    rm.partitions[("t", 0)] = p
    if blocking:  # the old roll: the snapshot written on the loop
        rm._snapshot_producer_state = lambda p, offset: p.producer_state.write_snapshot(
            offset, p.producer_state.snapshot_data(offset), io)

    async def work() -> None:
        for i in range(ROLL_APPENDS):
            rm.append_records("t", 0, _batch(i % PRODUCERS, (i // PRODUCERS) * 10))
            await asyncio.sleep(0)  # other requests get their turn, as in the server
        if p.snapshot_write is not None:
            await p.snapshot_write
    lag = await _measure(work)
    await rm.tasks.close()
    rm.log_manager.close()
    return lag


async def _truncation(directory: Path, io: FaultyIO, blocking: bool) -> float:
    rm = ReplicaManager(BrokerConfig({"log.segment.bytes": str(512 * 1024)}), MetadataImage(), 2,
                        str(directory), io=io)
    log_ = rm.log_manager.get_or_create_log("t", 0)
    for i in range(TRUNCATE_BATCHES):
        log_.append(_batch(i % PRODUCERS, (i // PRODUCERS) * 10), leader_epoch=1)
    log_.leader_epoch_cache.assign(2, TRUNCATE_BATCHES * 10 // 2)
    replication = ReplicatedPartition(2, lag_time_max_ms=30000)
    replication.on_metadata(PartitionState("tid", 0, [1, 2], [1, 2], leader=1, leader_epoch=2,
                                           partition_epoch=0), log_.log_end_offset, 0, rm.clock_ms())
    p = Partition("t", 0, log_, rm._load_producer_state(log_), replication)
    rm.partitions[("t", 0)] = p
    cut = TRUNCATE_BATCHES * 10 // 2 - 5000

    async def work() -> None:
        if blocking:  # the old truncation: epoch file, checkpoints and replay on the loop
            p.log.truncate_to(cut)
            p.producer_state = rm._load_producer_state(p.log)
        else:
            await rm.truncate_follower("t", 0, 2, 1, cut)
    lag = await _measure(work)
    assert log_.log_end_offset == cut
    await rm.tasks.close()
    rm.log_manager.close()
    return lag


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rows = []
    with tempfile.TemporaryDirectory(dir=REPO, prefix=".bench-loop-lag-") as tmp:
        for name, run in (("roll under load", _rolls), ("follower truncation", _truncation)):
            for fsync in (0.0, SLOW_FSYNC_S):
                figures = []
                for blocking in (True, False):
                    runs = []
                    for r in range(ROUNDS):
                        directory = Path(tmp) / f"{name[:4]}-{fsync}-{blocking}-{r}"
                        io = FaultyIO()
                        io.fsync_delay = fsync
                        runs.append(asyncio.run(run(directory, io, blocking)))
                        shutil.rmtree(directory, ignore_errors=True)
                    figures.append(statistics.median(runs))
                rows.append((name, fsync, *figures))
    print(f"{'loop lag, longest stall (ms)':32} {'fsync':>8} {'blocking':>10} {'now':>8}")
    for name, fsync, blocking, now in rows:
        disk = "this disk" if not fsync else f"+{fsync * 1000:.0f} ms"
        print(f"{name:32} {disk:>8} {blocking:10.1f} {now:8.1f}")


if __name__ == "__main__":
    main()

"""The loop-lag monitor (broker/loop_lag.py), and a follower truncation that must not stall the loop.

The truncation test slows every storage fsync to 300 ms (FaultyIO): the leader-epoch
file, the checkpoints and the producer-state replay of a truncation left on the event
loop would stall it by 600 ms or more. No fsync may run on the loop's thread; the loop's
longest stall is held to a bound loose enough for a loaded machine (a bound on blocking,
not on speed).
"""

import asyncio
import threading
import time

from structlog.testing import capture_logs

from odradek.broker.config import BrokerConfig
from odradek.broker.loop_lag import LoopLagMonitor
from odradek.broker.replica_manager import Partition, ReplicaManager
from odradek.protocol import records as rec
from odradek.replication.metadata import MetadataImage, PartitionState
from odradek.replication.partition import ReplicatedPartition
from odradek.storage import FaultyIO
from odradek.storage.producer_state import ProducerStateManager

BOUND_MS = 600


def test_the_window_keeps_the_longest_stall_of_the_last_minute():
    now = [1000.0]
    monitor = LoopLagMonitor(window_s=60, clock=lambda: now[0])
    monitor.record(1000.2, 3.0)
    monitor.record(1000.7, 150.0)
    monitor.record(1001.1, 7.0)
    assert monitor.max_lag_ms() == 150.0
    now[0] = 1059.9
    assert monitor.max_lag_ms() == 150.0
    now[0] = 1060.5  # the second of the 150 ms stall has left the window
    assert monitor.max_lag_ms() == 7.0


async def test_the_monitor_sees_and_logs_a_blocking_call():
    monitor = LoopLagMonitor(interval_s=0.01, warn_ms=100)
    with capture_logs() as logs:
        task = asyncio.get_running_loop().create_task(monitor.run())
        await asyncio.sleep(0.05)
        time.sleep(0.25)  # blocks the loop
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert 200 <= monitor.max_lag_ms() < 1000
    assert [e for e in logs if e["event"] == "event_loop_stall"]
    assert logs[-1]["event"] == "event_loop_lag" and logs[-1]["max_ms"] >= 200


def _batch(producer_id: int, sequence: int, n: int = 10) -> bytes:
    return rec.build_batch([rec.Record(b"k", b"v" * 100, (), 0) for _ in range(n)],
                           producer_id=producer_id, producer_epoch=0, base_sequence=sequence)


async def test_a_follower_truncation_does_not_stall_the_loop(tmp_path):
    io = FaultyIO()
    rm = ReplicaManager(BrokerConfig({"log.segment.bytes": "20000"}), MetadataImage(), 2,
                        str(tmp_path), io=io)
    log_ = rm.log_manager.get_or_create_log("t", 0)
    for i in range(300):  # 3000 records over ~15 segments, 30 idempotent producers, epoch 1
        log_.append(_batch(i % 30, (i // 30) * 10), leader_epoch=1)
    log_.leader_epoch_cache.assign(2, 2000)  # pretend records from 2000 on came in epoch 2
    following = ReplicatedPartition(2, lag_time_max_ms=30000)  # node 1 leads at epoch 2
    following.on_metadata(PartitionState("tid", 0, [1, 2], [1], 1, 2, 0), log_.log_end_offset,
                          0, rm.clock_ms())
    p = Partition("t", 0, log_, rm._load_producer_state(log_), following)
    rm.partitions[("t", 0)] = p
    monitor = LoopLagMonitor(interval_s=0.01)
    task = asyncio.get_running_loop().create_task(monitor.run())
    await asyncio.sleep(0.05)
    io.fsync_delay = 0.3
    started = time.monotonic()
    # We asked about epoch 2; the leader never had it and says epoch 1 ended at 1500.
    await rm.truncate_follower("t", 0, 2, 1, 1500)
    took = time.monotonic() - started
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    io.fsync_delay = 0
    assert log_.log_end_offset == 1500 and log_.leader_epoch_cache.latest_epoch == 1
    assert isinstance(p.producer_state, ProducerStateManager)
    assert max(e.batches[-1].last_offset for e in p.producer_state.producers.values()) == 1499
    assert took >= 0.3  # the slow fsyncs did happen, off the loop
    assert io.fsync_threads and threading.get_ident() not in io.fsync_threads
    assert monitor.max_lag_ms() < BOUND_MS, monitor.max_lag_ms()
    rm.log_manager.close()

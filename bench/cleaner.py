"""The log cleaner (storage.cleaner): its throughput, and what it costs the rest of the broker.

- throughput: one pass over a compacted log of LOG_MB (1 KiB values, KEYS keys, 16 records a
  batch, 4 MiB segments) in this process, uncompressed and lz4: MB of log read per second;
- thread or process: the event loop's p99 lag (a 1 ms timer's overshoot) while the same
  pass runs in a cleaner thread of this process (what the broker does) and while it runs in
  another process (what it could do): the GIL's price, measured;
- produce latency: a broker process with a compacted topic of BROKER_LOG_MB, p50/p99 of
  paced 1 KiB produces (acks=1, librdkafka) to another topic, before and while the cleaner
  cleans the first one (min.cleanable.dirty.ratio lowered from 1 to 0.01 to start it).

``python -m bench cleaner`` (about two minutes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

from odradek.protocol.records import build_batch
from odradek.storage import LogConfig, LogManager
from odradek.storage.cleaner import CleanerConfig

LOG_MB = 48
KEYS = 5000
RECORDS_PER_BATCH = 16
VALUE_BYTES = 1024
BROKER_LOG_MB = 64
REPO = Path(__file__).resolve().parent.parent
CONFIG = LogConfig(segment_bytes=4 * 2**20, cleanup_policy=["compact"], min_cleanable_dirty_ratio=0.01,
                   max_message_bytes=2**21)


def _fill(directory: Path, codec: int, mb: int = LOG_MB) -> None:
    manager = LogManager(directory, CONFIG)
    lg = manager.get_or_create_log("bench", 0)
    i = 0
    now = int(time.time() * 1000)
    while lg.size < mb * 2**20:
        records = [(b"key-%d" % ((i + j) * 7919 % KEYS), os.urandom(VALUE_BYTES // 2).hex().encode(), (), now)
                   for j in range(RECORDS_PER_BATCH)]
        lg.append(build_batch(records, compression=codec), leader_epoch=0)
        i += RECORDS_PER_BATCH
    lg.roll()
    lg.high_watermark = lg.log_end_offset
    manager.close()


def _clean(directory: Path) -> tuple[float, int]:
    """One pass over the log in ``directory``: (seconds, bytes of log cleaned)."""
    manager = LogManager(directory, CONFIG, cleaner_config=CleanerConfig())
    lg = manager.get_log("bench", 0)
    lg.high_watermark = lg.log_end_offset
    job = manager.cleaner.grab()
    assert job is not None
    started = time.perf_counter()
    asyncio.run(manager.cleaner.clean(job))
    elapsed = time.perf_counter() - started
    manager.close()
    return elapsed, sum(job.sizes[:-1])  # every segment but the active one


async def _loop_lag_while(work) -> list[float]:
    """Overshoots (ms) of a 1 ms sleep on this loop until ``work`` (a future) is done."""
    lags = []
    while not work.done():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - before - 0.001) * 1000)
    await work
    return lags


def _p99(values: list[float]) -> float:
    values = sorted(values)
    return values[int(len(values) * 0.99)] if values else 0.0


def loop_lag_thread_vs_process(base: Path) -> dict:
    source = base / "lag-source"
    _fill(source, 0, 24)
    out = {}

    async def in_thread() -> list[float]:
        loop = asyncio.get_running_loop()
        manager = LogManager(base / "lag-thread", CONFIG)
        lg = manager.get_log("bench", 0)
        lg.high_watermark = lg.log_end_offset
        job = manager.cleaner.grab()
        lags = await _loop_lag_while(loop.create_task(manager.cleaner.clean(job)))
        manager.close()
        return lags

    async def in_process() -> list[float]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", f"from bench.cleaner import _clean; _clean(__import__('pathlib').Path({str(base / 'lag-proc')!r}))",
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return await _loop_lag_while(asyncio.ensure_future(proc.wait()))

    async def idle() -> list[float]:
        return await _loop_lag_while(asyncio.ensure_future(asyncio.sleep(2)))

    for name, run, copy in (("idle", idle, None), ("thread", in_thread, "lag-thread"),
                            ("process", in_process, "lag-proc")):
        if copy:
            shutil.copytree(source, base / copy)
        lags = asyncio.run(run())
        out[name] = {"p99_ms": round(_p99(lags), 2), "max_ms": round(max(lags), 1),
                     "median_ms": round(statistics.median(lags), 3)}
    return out


def produce_latency_while_cleaning(base: Path) -> dict:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, ConfigResource

    from bench.produce import produce_latency
    from tests.brokerproc import BrokerProcess
    from tests.clients import create_topics

    broker = BrokerProcess(base / "broker", overrides={"log.cleaner.backoff.ms": "200"}).start()
    try:
        bootstrap = broker.bootstrap
        create_topics(bootstrap, ["changelog"], config={
            "cleanup.policy": "compact", "segment.bytes": str(4 * 2**20),
            "min.cleanable.dirty.ratio": "1.0"})  # not cleaned until lowered below
        create_topics(bootstrap, ["other"])
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "none"})
        value = os.urandom(VALUE_BYTES // 2).hex().encode()
        for i in range(BROKER_LOG_MB * 2**20 // VALUE_BYTES):
            p.produce("changelog", key=b"key-%d" % (i * 7919 % KEYS), value=value)
            if i % 1000 == 0:
                p.poll(0)
        assert p.flush(60) == 0
        config = {"bootstrap.servers": bootstrap}
        before = produce_latency(config, "other", seconds=5)
        admin = AdminClient(config)
        resource = ConfigResource("TOPIC", "changelog", set_config={
            "cleanup.policy": "compact", "segment.bytes": str(4 * 2**20),
            "min.cleanable.dirty.ratio": "0.01"})
        for f in admin.alter_configs([resource]).values():
            f.result(30)
        during = produce_latency(config, "other", seconds=5)
        deadline = time.monotonic() + 120
        while "log_cleaned" not in broker.log_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        cleaned = [line for line in broker.log_text().splitlines() if "log_cleaned" in line]
        return {"before": before, "during": during, "pass": cleaned[0] if cleaned else "none"}
    finally:
        broker.kill()


def main() -> None:
    logging.disable(logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    base = Path(tempfile.mkdtemp(prefix="bench-cleaner-", dir=REPO))
    try:
        for codec, name in ((0, "uncompressed"), (3, "lz4")):
            directory = base / f"tput-{name}"
            _fill(directory, codec)
            seconds, cleaned = _clean(directory)
            print(f"cleaner throughput {name:>12}: {cleaned / 2**20:6.1f} MB of log in {seconds:5.2f} s"
                  f" = {cleaned / 2**20 / seconds:6.1f} MB/s")
        lag = loop_lag_thread_vs_process(base)
        for name, figures in lag.items():
            print(f"event loop lag while cleaning ({name:>7}): p99 {figures['p99_ms']} ms, "
                  f"max {figures['max_ms']} ms, median {figures['median_ms']} ms")
        produced = produce_latency_while_cleaning(base)
        for when in ("before", "during"):
            r = produced[when]
            print(f"produce latency, other partition, {when:>6} cleaning: p50 {r['p50_ms']:.2f} ms, "
                  f"p99 {r['p99_ms']:.2f} ms ({r['records']} records)")
        print(f"broker's pass: {produced['pass']}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

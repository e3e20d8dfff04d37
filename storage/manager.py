"""The log manager: every partition log of one data directory.

At startup it opens each ``<topic>-<partition>/`` directory.  Whether the last
stop was clean is told by ``.kafka_cleanshutdown`` (written by ``close``,
removed once the logs are open): after a clean stop indexes are trusted;
otherwise each log re-validates every batch from its recovery point on.

It owns the data directory's checkpoint files (format in storage.checkpoint):

    recovery-point-offset-checkpoint   offsets below which a log was fsynced
    replication-offset-checkpoint      high watermarks
    log-start-offset-checkpoint        log start offsets (DeleteRecords)
    cleaner-offset-checkpoint          how far each compacted log is cleaned (storage.cleaner)

written by ``checkpoint()``: periodically from ``run()``, after DeleteRecords,
and at close.  A crash between two checkpoints only costs re-validation (stale
recovery point) or a high watermark that replication raises again.

``run()`` is the background coroutine: retention every
log.retention.check.interval.ms, checkpoints every
log.flush.offset.checkpoint.interval.ms, and the log cleaner (storage.cleaner).

Nothing here blocks the event loop on the disk while one runs: checkpoints, the
directory fsync of a new partition and the removal of a deleted one (renamed to
``<dir>.<id>-delete`` at once, as Kafka does, then removed in a thread; a crash
leaves it for the next start to remove) run in the default executor. Without a
running loop (tools, tests) they run in place.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from odradek.storage.checkpoint import fsync_dir, read_offsets, write_offsets
from odradek.storage.cleaner import CleanerConfig, LogCleaner
from odradek.storage.config import LogConfig
from odradek.storage.handles import (
    OUT_OF_DESCRIPTORS,
    OpenFiles,
    out_of_descriptors_hint,
    segment_budget,
    soft_limit,
)
from odradek.storage.io import FileIO
from odradek.storage.log import Log, wall_clock_ms

log = structlog.get_logger(__name__)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
RECOVERY_POINT_FILE = "recovery-point-offset-checkpoint"
HIGH_WATERMARK_FILE = "replication-offset-checkpoint"
LOG_START_OFFSET_FILE = "log-start-offset-checkpoint"
_PARTITION_DIR = re.compile(r"^(?P<topic>.+)-(?P<partition>\d+)$")
DELETE_DIR_SUFFIX = "-delete"  # Kafka's suffix for a partition directory being removed

TopicPartition = tuple[str, int]
_T = TypeVar("_T")
SHUTDOWN_THREADS = 16  # fsyncs at a clean close, many at once: the disk batches them


def in_parallel(work: Callable[[_T], object], items: Iterable[_T]) -> None:
    """``work(item)`` for every item on SHUTDOWN_THREADS threads; the first error is raised
    once all are done. For a clean close: each partition's fsyncs one after another took
    160 s for 10,000 partitions (about 8 fsyncs each), and the disk serves many at once."""
    with ThreadPoolExecutor(SHUTDOWN_THREADS, thread_name_prefix="odradek-close") as pool:
        for _ in pool.map(work, items):
            pass


class LogManager:
    def __init__(
        self,
        data_dir: str | Path,
        default_config: LogConfig | None = None,
        *,
        io: FileIO | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        retention_check_interval_ms: int = 300000,  # log.retention.check.interval.ms
        checkpoint_interval_ms: int = 60000,  # log.flush.offset.checkpoint.interval.ms
        cleaner_config: CleanerConfig | None = None,  # log.cleaner.*
        max_open_files: int = -1,  # log.max.open.files; -1: half the open-file limit
        on_flush: Callable[[float], None] | None = None,  # each log fsync's ms, see Log
    ) -> None:
        self.on_flush = on_flush
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The periodic checkpoint runs on an executor thread and close() writes one too:
        # both use the same .tmp files, so one must wait for the other.
        self._checkpoint_lock = threading.Lock()
        self.default_config = default_config or LogConfig()
        self.io = io or FileIO()
        self._clock_ms = clock_ms
        self.retention_check_interval_ms = retention_check_interval_ms
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self.logs: dict[TopicPartition, Log] = {}
        # the descriptor budget of every segment file here (storage.handles)
        self.open_files = OpenFiles(segment_budget(soft_limit(), max_open_files))
        self._closed = False
        marker = self.data_dir / CLEAN_SHUTDOWN_FILE
        self.was_clean_shutdown = marker.exists()
        self._load_logs()
        self.cleaner = LogCleaner(lambda: self.logs, self.data_dir, cleaner_config or CleanerConfig(),
                                  self.io, clock_ms)  # fmt: skip
        if self.was_clean_shutdown:
            marker.unlink()
            fsync_dir(self.data_dir)  # a crash from now on must read as unclean

    def _load_logs(self) -> None:
        recovery_points = read_offsets(self.data_dir / RECOVERY_POINT_FILE)
        high_watermarks = read_offsets(self.data_dir / HIGH_WATERMARK_FILE)
        log_starts = read_offsets(self.data_dir / LOG_START_OFFSET_FILE)
        for path in sorted(self.data_dir.iterdir()):
            if path.name.endswith(DELETE_DIR_SUFFIX) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)  # a removal a stop interrupted
                continue
            match = _PARTITION_DIR.match(path.name)
            if not path.is_dir() or match is None:
                continue
            tp = (match["topic"], int(match["partition"]))
            try:
                self.logs[tp] = self._open_log(
                    tp,
                    self.default_config,
                    recovery_point=recovery_points.get(tp, 0),
                    log_start_offset=log_starts.get(tp, 0),
                    high_watermark=high_watermarks.get(tp, 0),
                    needs_recovery=not self.was_clean_shutdown,
                )
            except OSError as exc:
                if exc.errno not in OUT_OF_DESCRIPTORS:
                    raise
                # the node starts without it (offline here, its files untouched); the
                # replica manager tries again when it hosts the partition
                log.error("log_load_failed", topic=tp[0], partition=tp[1], error=str(exc),
                          hint=out_of_descriptors_hint(exc).strip(" ()"))
        log.info(
            "logs_loaded", data_dir=str(self.data_dir), count=len(self.logs),
            clean_shutdown=self.was_clean_shutdown,
        )  # fmt: skip

    def log_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def _open_log(self, tp: TopicPartition, config: LogConfig, **state) -> Log:
        topic, partition = tp
        return Log(
            self.log_dir(topic, partition), config, topic=topic, partition=partition,
            io=self.io, clock_ms=self._clock_ms, checkpoint_hook=self.checkpoint,
            open_files=self.open_files, on_flush=self.on_flush, **state,
        )  # fmt: skip

    # --- partitions ----------------------------------------------------------------

    def get_log(self, topic: str, partition: int) -> Log | None:
        return self.logs.get((topic, partition))

    def get_or_create_log(
        self, topic: str, partition: int, config: LogConfig | None = None
    ) -> Log:
        """The partition's log, created empty if absent (``config`` applies when new)."""
        tp = (topic, partition)
        existing = self.logs.get(tp)
        if existing is not None:
            return existing
        created = self._open_log(tp, config or self.default_config, needs_recovery=False)
        self._off_loop("fsync_data_dir", fsync_dir, self.data_dir, self.io)
        self.logs[tp] = created
        log.info("log_created", topic=topic, partition=partition)
        return created

    def delete_log(self, topic: str, partition: int) -> None:
        """Remove the partition and its directory; open fetch slices stay readable."""
        removed = self.logs.pop((topic, partition), None)
        if removed is not None:
            trash = removed.dir.with_name(f"{removed.dir.name}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
            try:
                removed.dir.rename(trash)  # one rename now; open slices keep their descriptors
            except OSError:
                trash = removed.dir
            removed.delete()  # closes what no slice holds; the files went with the directory
            self._off_loop("remove_partition_dir", shutil.rmtree, trash)
            log.info("log_deleted", topic=topic, partition=partition)

    def _off_loop(self, what: str, work: Callable, *args) -> None:
        """Run blocking ``work(*args)`` in the default executor when a loop runs (a failure
        is logged), else now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work(*args)
            return

        def done(future: asyncio.Future) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.error("storage_background_failed", what=what, error=repr(future.exception()))
        loop.run_in_executor(None, work, *args).add_done_callback(done)

    async def delete_records(self, topic: str, partition: int, before_offset: int) -> int:
        """DeleteRecords on one partition; the new log start offset is checkpointed."""
        target = self.logs[(topic, partition)]
        new_start = target.delete_records(before_offset)
        await asyncio.get_running_loop().run_in_executor(None, self.checkpoint)
        return new_start

    # --- background work -------------------------------------------------------------

    def cleanup_logs(self, now_ms: int | None = None) -> int:
        """One retention pass over every log; returns the number of segments deleted."""
        return sum(lg.delete_retention_breached(now_ms) for lg in list(self.logs.values()))

    def checkpoint(self) -> None:
        """Write the three offset checkpoint files (blocking: tmp + fsync + rename). Executor
        threads take turns; the event loop calls it only at close."""
        logs = list(self.logs.items())
        with self._checkpoint_lock:
            write_offsets(self.data_dir / RECOVERY_POINT_FILE,
                          {tp: lg.recovery_point for tp, lg in logs}, self.io)
            write_offsets(self.data_dir / HIGH_WATERMARK_FILE,
                          {tp: lg.high_watermark for tp, lg in logs}, self.io)
            write_offsets(self.data_dir / LOG_START_OFFSET_FILE,
                          {tp: lg.log_start_offset for tp, lg in logs}, self.io)

    async def run(self) -> None:
        """Retention, checkpoints and the log cleaner until cancelled; start it as a task."""
        cleaner = asyncio.ensure_future(self.cleaner.run())
        try:
            await self._run_retention()
        finally:
            cleaner.cancel()

    async def _run_retention(self) -> None:
        loop = asyncio.get_running_loop()
        next_retention = next_checkpoint = loop.time()
        while True:
            now = loop.time()
            if now >= next_retention:
                next_retention = now + self.retention_check_interval_ms / 1000
                try:
                    deleted = self.cleanup_logs()
                    if deleted:
                        log.info("retention_deleted_segments", count=deleted)
                except Exception:
                    log.exception("retention_failed")
            if now >= next_checkpoint:
                next_checkpoint = now + self.checkpoint_interval_ms / 1000
                try:
                    await loop.run_in_executor(None, self.checkpoint)
                except OSError:
                    log.exception("checkpoint_failed")
            await asyncio.sleep(max(0.0, min(next_retention, next_checkpoint) - loop.time()))

    def close(self, *, clean: bool = True) -> None:
        """Flush and close every log, write the checkpoints and the clean-shutdown marker.

        ``clean=False`` only closes descriptors, writing nothing: the next open
        sees a crash (tests use it to simulate kill -9).
        """
        if self._closed:
            return
        self._closed = True
        self.cleaner.close()  # before the logs: its threads read their segments
        in_parallel(lambda lg: lg.close(clean=clean), list(self.logs.values()))
        if clean:
            self.checkpoint()
            (self.data_dir / CLEAN_SHUTDOWN_FILE).touch()
            fsync_dir(self.data_dir)
        log.info("logs_closed", data_dir=str(self.data_dir), clean=clean)

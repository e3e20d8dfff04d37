"""The partitions this node hosts: their logs, appends as leader, reads, and wake-ups.

Partition logs follow the metadata image: when a committed record assigns a
partition to this node its log is created; when the topic is removed, the log is
deleted; a config change reaches the partition's log config. Produce appends
through ``append_records``; Fetch reads through ``read`` and long-polls with
``wait_for_data``. On one node the high watermark is the log end offset once
an append is written; the replication issue replaces that rule with the ISR's.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from broker.config import BrokerConfig
from protocol import records as rec
from protocol.errors import ErrorCode, KafkaError
from replication.metadata import (
    TOPIC,
    ConfigRecord,
    MetadataImage,
    PartitionChangeRecord,
    PartitionRecord,
    RemoveTopicRecord,
)
from storage import LOG_CONFIG_DEFS, Log, LogConfig, LogManager
from storage.errors import KafkaStorageError, OffsetOutOfRangeError

log = structlog.get_logger(__name__)


@dataclass(slots=True, eq=False)
class Partition:
    topic: str
    index: int
    log: Log
    leader_epoch: int
    waiters: set = field(default_factory=set)  # futures of fetches waiting for new data

    def wake(self) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()


def log_config_for(config: BrokerConfig, overrides: dict[str, str]) -> LogConfig:
    """The storage config of a topic: its overrides over the broker's defaults."""
    effective = config.topic_config(overrides)
    return LogConfig.from_mapping({k: v for k, v in effective.items() if k in LOG_CONFIG_DEFS})


def _error_of(e: Exception) -> KafkaError:
    """A storage or record failure as the Kafka error the client gets."""
    if isinstance(e, KafkaError):
        return e
    return KafkaError(ErrorCode(e.error_code), str(e))


class ReplicaManager:
    def __init__(self, config: BrokerConfig, image: MetadataImage, node_id: int, data_dir: str,
                 clock_ms: Callable[[], int] | None = None):
        self.config = config
        self.image = image
        self.node_id = node_id
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.log_manager = LogManager(
            data_dir, log_config_for(config, {}),
            retention_check_interval_ms=config["log.retention.check.interval.ms"])
        self.partitions: dict[tuple[str, int], Partition] = {}
        # Called with (partition, is_leader) when this node starts or stops leading a
        # partition (is_leader False also when it no longer hosts it): the group
        # coordinator loads and unloads its __consumer_offsets partitions from this.
        self.leadership_listeners: list[Callable[[Partition, bool], None]] = []
        self._background: asyncio.Task | None = None

    # -- following the metadata image ------------------------------------------
    def start(self) -> None:
        self.sync_with_image()
        self._background = asyncio.get_running_loop().create_task(self.log_manager.run())

    def sync_with_image(self) -> None:
        """Host exactly the partitions the image assigns to this node."""
        wanted = set()
        for topic in self.image.topics.values():
            overrides = self.image.topic_configs(topic.name)
            for p in topic.partitions.values():
                if self.node_id not in p.replicas:
                    continue
                key = (topic.name, p.partition)
                wanted.add(key)
                if key not in self.partitions:
                    log_ = self.log_manager.get_or_create_log(topic.name, p.partition,
                                                              log_config_for(self.config, overrides))
                    log_.update_config(log_config_for(self.config, overrides))
                    partition = Partition(topic.name, p.partition, log_, p.leader_epoch)
                    self.partitions[key] = partition
                    if p.isr == [self.node_id]:
                        # The ISR is this node alone: all it has is committed (the checkpoint
                        # may lag after an unclean stop).
                        log_.high_watermark = log_.log_end_offset
                    self._notify(partition, p.leader == self.node_id)
                else:
                    self.partitions[key].leader_epoch = p.leader_epoch
        for key in set(self.partitions) - wanted:
            partition = self.partitions.pop(key)
            partition.wake()
            self._notify(partition, False)
            self.log_manager.delete_log(*key)
        for key in set(self.log_manager.logs) - wanted:
            self.log_manager.delete_log(*key)  # a topic deleted while this node was down

    def _notify(self, partition: Partition, is_leader: bool) -> None:
        for listener in self.leadership_listeners:
            listener(partition, is_leader)

    def on_metadata(self, records: list) -> None:
        if any(isinstance(r, (PartitionRecord, PartitionChangeRecord, RemoveTopicRecord))
               for r in records):
            self.sync_with_image()
        for r in records:
            if isinstance(r, ConfigRecord) and r.resource_type == TOPIC:
                config = log_config_for(self.config, self.image.topic_configs(r.resource_name))
                for (topic, _), partition in self.partitions.items():
                    if topic == r.resource_name:
                        partition.log.update_config(config)

    # -- produce ------------------------------------------------------------------
    def partition(self, topic: str, index: int) -> Partition:
        p = self.partitions.get((topic, index))
        if p is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                             f"This server does not host {topic}-{index}.")
        return p

    @staticmethod
    def check_leader_epoch(partition: Partition, requested: int) -> None:
        """A client's current_leader_epoch against ours (-1: the client does not know it)."""
        if requested < 0 or requested == partition.leader_epoch:
            return
        if requested < partition.leader_epoch:
            raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH,
                             f"Leader epoch {requested} is older than {partition.leader_epoch}")
        raise KafkaError(ErrorCode.UNKNOWN_LEADER_EPOCH,
                         f"Leader epoch {requested} is newer than {partition.leader_epoch}")

    def append_records(self, topic: str, index: int, records, *,
                       check: Callable[[rec.BatchHeader], None] | None = None):
        """Validate and append a Produce partition's batches as leader; KafkaError on failure.

        ``check`` sees every batch header first (policy checks that depend on the
        request version or topic config); nothing is written if it raises.
        """
        p = self.partition(topic, index)
        if not records:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Produce request carries no record batch")
        try:
            result = p.log.append(records, leader_epoch=p.leader_epoch, check=check)
        except (rec.RecordError, KafkaStorageError) as e:
            raise _error_of(e) from None
        p.log.high_watermark = p.log.log_end_offset  # one node: the ISR is us
        p.wake()
        return p, result

    async def wait_committed(self, partition: Partition, result) -> None:
        """Return once an append counts as committed for acks=-1.

        One node: when it is as durable as flush.messages asks. (Replication
        replaces this with the high watermark passing the batch.)
        """
        await partition.log.wait_durable(result)

    # -- fetch --------------------------------------------------------------------
    def read(self, topic: str, index: int, fetch_offset: int, max_bytes: int, min_one: bool,
             up_to_high_watermark: bool = True):
        p = self.partition(topic, index)
        try:
            return p.log.read(fetch_offset, max_bytes,
                              p.log.high_watermark if up_to_high_watermark else None, min_one)
        except OffsetOutOfRangeError as e:
            raise _error_of(e) from None

    async def wait_for_data(self, keys: list[tuple[str, int]], timeout_s: float) -> None:
        """Return when any of these partitions gets new data, or after ``timeout_s``."""
        fut = asyncio.get_running_loop().create_future()
        partitions = [self.partitions[k] for k in keys if k in self.partitions]
        for p in partitions:
            p.waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            pass
        finally:
            for p in partitions:
                p.waiters.discard(fut)

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
        for p in self.partitions.values():
            p.wake()
        self.log_manager.close()

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
from storage import LOG_CONFIG_DEFS, AppendResult, Log, LogConfig, LogManager
from storage.errors import KafkaStorageError, OffsetOutOfRangeError
from storage.producer_state import (
    DuplicateBatch,
    ProducerStateError,
    ProducerStateManager,
    iter_log_headers,
)

log = structlog.get_logger(__name__)


PRODUCER_EXPIRATION_CHECK_S = 60.0  # how often idle producers are expired


@dataclass(slots=True, eq=False)
class Partition:
    topic: str
    index: int
    log: Log
    leader_epoch: int
    producer_state: ProducerStateManager
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
        self._topic_configs: dict[str, dict] = {}  # effective topic configs, by topic name
        # Called with (partition, is_leader) when this node starts or stops leading a
        # partition (is_leader False also when it no longer hosts it): the group
        # coordinator loads and unloads its __consumer_offsets partitions from this.
        self.leadership_listeners: list[Callable[[Partition, bool], None]] = []
        self._background: list[asyncio.Task] = []

    # -- following the metadata image ------------------------------------------
    def start(self) -> None:
        self.sync_with_image()
        loop = asyncio.get_running_loop()
        self._background = [loop.create_task(self.log_manager.run()),
                            loop.create_task(self._expire_producers())]

    async def _expire_producers(self) -> None:
        """Forget producers idle for producer.id.expiration.ms (Kafka's check runs periodically)."""
        while True:
            await asyncio.sleep(PRODUCER_EXPIRATION_CHECK_S)
            now = self.clock_ms()
            for p in self.partitions.values():
                p.producer_state.remove_expired(now)

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
                    partition = Partition(topic.name, p.partition, log_, p.leader_epoch,
                                          self._load_producer_state(log_))
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

    def _load_producer_state(self, log_: Log) -> ProducerStateManager:
        state = ProducerStateManager(log_.dir, self.config["producer.id.expiration.ms"])
        state.load(log_.log_end_offset, lambda offset: iter_log_headers(log_, offset), self.clock_ms())
        return state

    def _notify(self, partition: Partition, is_leader: bool) -> None:
        for listener in self.leadership_listeners:
            listener(partition, is_leader)

    def topic_config(self, topic: str) -> dict:
        """Every topic key's effective value for ``topic`` (cached; refreshed on changes)."""
        config = self._topic_configs.get(topic)
        if config is None:
            config = self.config.topic_config(self.image.topic_configs(topic))
            self._topic_configs[topic] = config
        return config

    def on_metadata(self, records: list) -> None:
        if any(isinstance(r, (PartitionRecord, PartitionChangeRecord, RemoveTopicRecord))
               for r in records):
            self.sync_with_image()
        self._topic_configs.clear()  # rare: any committed metadata change refreshes them
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
        """Validate and append a Produce partition's batch as leader; KafkaError on failure.

        ``check`` sees the batch header after it passed validation (policy checks
        that depend on the request version or topic config); then the producer
        state checks it. Nothing is written if either raises. A retry of a recent
        batch of an idempotent producer appends nothing and returns the offsets
        it got the first time.
        """
        p = self.partition(topic, index)
        if not records:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Produce request carries no record batch")
        if len(records) >= rec.LOG_OVERHEAD and rec.peek_batch_size(records) < len(records):
            raise KafkaError(ErrorCode.INVALID_RECORD,
                             "A produce request must carry exactly one record batch per partition")
        headers = []

        def validate(header: rec.BatchHeader) -> None:
            if check is not None:
                check(header)
            if header.producer_id >= 0:
                p.producer_state.check(header)
            headers.append(header)

        active_segment = p.log.segments[-1]
        try:
            result = p.log.append(records, leader_epoch=p.leader_epoch, check=validate)
        except DuplicateBatch as dup:
            b = dup.batch
            return p, AppendResult(b.first_offset, b.last_offset, -1, p.log.log_start_offset,
                                   b.last_offset - b.first_offset + 1, 0)
        except (rec.RecordError, KafkaStorageError, ProducerStateError) as e:
            raise _error_of(e) from None
        if p.log.segments[-1] is not active_segment:
            # Rolled: snapshot the state as of the new segment's start, so recovery
            # replays at most one segment's batch headers.
            p.producer_state.take_snapshot(result.base_offset)
        (header,) = headers
        if header.producer_id >= 0:
            p.producer_state.update(header, result.base_offset, self.clock_ms())
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
        for task in self._background:
            task.cancel()
        for p in self.partitions.values():
            p.wake()
            p.producer_state.take_snapshot(p.log.log_end_offset)  # a clean restart replays nothing
        self.log_manager.close()

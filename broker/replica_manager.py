"""The partitions this node hosts: their logs, roles, appends, reads and wake-ups.

Partition logs follow the metadata image: when a committed record assigns a
partition to this node its log is created; when the topic is removed, the log is
deleted; a config change reaches the partition's log config.

Each hosted partition is led here or followed from its leader. What to do is decided by
its ``ReplicatedPartition`` (replication.partition, a pure state machine): this module feeds
it the metadata, appends, follower fetches, fetch responses and the time, and carries out
the actions it returns (``_apply``): logs, futures, fetchers and the controller are here.

- Leader: appends Produce batches (``append_records``), serves consumers up to
  the high watermark and followers up to its log end; follower fetches move the
  high watermark (the smallest log end among the ISR), acks=-1 completes when it
  passes the batch (``wait_committed``), min.insync.replicas refuses acks=-1 writes
  with NOT_ENOUGH_REPLICAS before anything is appended, and ISR changes go to the
  controller (AlterPartition), fenced by the partition epoch.
- Follower: a loop per leader (``_replicate``) sends, through that leader's
  ``ReplicaFetcher`` (replication.fetcher: the requests, no decisions), OffsetForLeaderEpoch
  and truncates (``truncate_follower``) under each new leadership, then fetches; the
  batches are appended as they are (``append_as_follower``), the producer state follows
  them, and the high watermark is the leader's.

On one node every partition is led here with an ISR of one, so the high watermark
is the log end offset as soon as an append is written.
"""

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from odradek.broker.config import BrokerConfig
from odradek.protocol import records as rec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.fetcher import EpochQuery, FetchTarget, ReplicaFetcher
from odradek.replication.isr import IsrState
from odradek.replication.metadata import (
    TOPIC,
    ConfigRecord,
    MetadataImage,
    PartitionChangeRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
)
from odradek.replication.partition import (
    Action,
    AdvanceHighWatermark,
    BecomeLeader,
    Follow,
    IncrementLogStart,
    IsrCommitted,
    ProposeIsr,
    ReplicatedPartition,
    StartAt,
    StopLeading,
    TruncateTo,
)
from odradek.replication.peer import PeerUnavailable
from odradek.replication.tasks import Supervisor
from odradek.storage import LOG_CONFIG_DEFS, AppendResult, Log, LogConfig, LogManager
from odradek.storage.cleaner import CleanerConfig
from odradek.storage.errors import KafkaStorageError, OffsetOutOfRangeError
from odradek.storage.handles import out_of_descriptors_hint, soft_limit
from odradek.storage.manager import in_parallel
from odradek.storage.producer_state import (
    CompletedTxn,
    DuplicateBatch,
    ProducerStateError,
    ProducerStateManager,
    iter_log_headers,
)
from odradek.storage.txn_index import AbortedTxn, AbortedTxnIndex

log = structlog.get_logger(__name__)


PRODUCER_EXPIRATION_CHECK_S = 60.0  # how often idle producers are expired
ISR_CHECK_S = 0.25  # how often leaders look for ISR changes to make
FETCH_RETRY_S = 0.2  # a follower's pause after an unreachable leader or an error answer
TRANSIENT_FETCH_ERRORS = (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH,
                          ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


@dataclass(slots=True, eq=False)
class Partition:
    """A hosted partition's I/O: its log, producer state and waiters, around ``replication``,
    the pure state machine that decides its replication (replication.partition)."""

    topic: str
    index: int
    log: Log
    producer_state: ProducerStateManager
    replication: ReplicatedPartition
    topic_id: str = ""
    waiters: set = field(default_factory=set)  # futures of fetches waiting for new data
    # (last offset, future) of acks=-1 produces, in offset order: appends add them in order
    hw_waiters: collections.deque = field(default_factory=collections.deque)
    # (offset, future) of DeleteRecords waiting for every live replica's log start offset
    low_watermark_waiters: list = field(default_factory=list)
    # The newest producer-state snapshot write (in a thread): the next waits for it, and a
    # truncation does, so no snapshot lands above a log end it just cut.
    snapshot_write: asyncio.Task | None = None

    def __post_init__(self) -> None:
        # the log cleaner stays below the last stable offset (storage.Log.last_stable_offset)
        self.log.last_stable_offset = lambda: self.last_stable_offset

    @property
    def txn_index(self) -> AbortedTxnIndex:
        """The aborted transactions of this log (storage.txn_index): held by the log, whose
        cleaner keeps it in step with the segments it replaces."""
        return self.log.txn_index

    @txn_index.setter
    def txn_index(self, index: AbortedTxnIndex) -> None:
        self.log.txn_index = index

    @property
    def leader(self) -> int:
        return self.replication.leader

    @property
    def leader_epoch(self) -> int:
        return self.replication.leader_epoch

    @property
    def isr_state(self) -> IsrState | None:
        """The leader's ISR and high-watermark state while this node leads, else None."""
        return self.replication.isr_state

    def wake(self) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()

    @property
    def last_stable_offset(self) -> int:
        """Where read_committed consumers stop: the first offset of the earliest open
        transaction (or one whose marker is not yet replicated), at most the high watermark."""
        return self.producer_state.last_stable_offset(self.log.high_watermark)

    def set_high_watermark(self, high_watermark: int, isr_size: int = 0) -> None:
        """Publish a new high watermark: consumers see more, acks=-1 waiters below it complete
        with ``isr_size`` (the copies the write has: see wait_committed), completed
        transactions below it stop holding the last stable offset back (on followers too,
        which would otherwise keep them all)."""
        self.log.high_watermark = high_watermark
        self.producer_state.on_high_watermark(self.log.high_watermark)
        waiters = self.hw_waiters  # only the ones now below the high watermark are touched
        while waiters and waiters[0][0] < high_watermark:
            fut = waiters.popleft()[1]
            if not fut.done():
                fut.set_result(isr_size)
        self.wake()

    def fail_waiters(self, error: KafkaError) -> None:
        for _, fut in [*self.hw_waiters, *self.low_watermark_waiters]:
            if not fut.done():
                fut.set_exception(error)
        self.hw_waiters.clear()
        self.low_watermark_waiters.clear()
        self.wake()


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
                 clock_ms: Callable[[], int] | None = None, controller=None, io=None,
                 on_flush: Callable[[float], None] | None = None):
        self.config = config
        self.image = image
        self.node_id = node_id
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.log_manager = LogManager(
            data_dir, log_config_for(config, {}), io=io,
            retention_check_interval_ms=config["log.retention.check.interval.ms"],
            cleaner_config=CleanerConfig(
                threads=config["log.cleaner.threads"],
                dedupe_buffer_size=config["log.cleaner.dedupe.buffer.size"],
                io_max_bytes_per_second=config["log.cleaner.io.max.bytes.per.second"],
                backoff_ms=config["log.cleaner.backoff.ms"],
                load_factor=config["log.cleaner.io.buffer.load.factor"]),
            max_open_files=config["log.max.open.files"], on_flush=on_flush)
        # Topics whose partitions this node could not create (out of descriptors, a disk
        # error), by name: CreateTopics rolls them back and answers the error.
        self.creation_failures: dict[str, KafkaError] = {}
        self.controller = controller  # for ISR changes (AlterPartition)
        self.fetchers: dict[int, ReplicaFetcher] = {}  # by leader node id
        self.partitions: dict[tuple[str, int], Partition] = {}
        self._unopened: set[tuple[str, int]] = set()  # assigned here; the log would not open
        self._topic_configs: dict[str, dict] = {}  # effective topic configs, by topic name
        # Called with (partition, is_leader) when this node starts or stops leading a
        # partition (is_leader False also when it no longer hosts it): the group
        # coordinator loads and unloads its __consumer_offsets partitions from this.
        self.leadership_listeners: list[Callable[[Partition, bool], None]] = []
        self.tasks = Supervisor("replica_manager")
        self.following_image = False  # see start()
        # Committed ISR changes of partitions led here, for broker.metrics (Kafka's
        # IsrShrinksPerSec / IsrExpandsPerSec); see IsrCommitted in _apply
        self.isr_shrinks = self.isr_expands = 0

    # -- following the metadata image ------------------------------------------
    def start(self, metadata_caught_up: asyncio.Event) -> None:
        """Follow the image once ``metadata_caught_up`` is set: until then a restarted node's
        image may be an old snapshot, and leading or following by it could acknowledge
        writes at a stale leader epoch (see replication.quorum)."""
        async def follow_when_caught_up() -> None:
            await metadata_caught_up.wait()
            self.following_image = True
            self.sync_with_image()

        self.tasks.spawn("follow_image", follow_when_caught_up)
        self.tasks.spawn("log_manager", self.log_manager.run)
        self.tasks.spawn("expire_producers", self._expire_producers)
        self.tasks.spawn("maintain_isr", self._maintain_isr)

    async def _expire_producers(self) -> None:
        """Forget producers idle for producer.id.expiration.ms (Kafka's check runs periodically)."""
        while True:
            await asyncio.sleep(PRODUCER_EXPIRATION_CHECK_S)
            now = self.clock_ms()
            for p in self.partitions.values():
                p.producer_state.remove_expired(now)

    def sync_with_image(self) -> None:
        """Host exactly the partitions the image assigns to this node, in their roles: the
        whole image, once, when this node starts following it (later commits are deltas:
        ``on_metadata``)."""
        assigned = [(topic.name, p.partition) for topic in self.image.topics.values()
                    for p in topic.partitions.values() if self.node_id in p.replicas]
        self._sync_partitions([*assigned, *(set(self.partitions) - set(assigned))])

    def _touched(self, records: list) -> list[tuple[str, int]]:
        """The partitions a committed delta may change here: those its records name, the
        hosted ones of topics that left the image (a RemoveTopicRecord, or a snapshot that
        no longer has them), those followed from a broker that registered again (its
        endpoints may have moved), and those whose log could not be opened before (retried
        at every commit, as the disk or the open-file limit may allow it now)."""
        image, touched = self.image, dict.fromkeys(self._unopened)
        orphans, followed_from = False, set()
        for r in records:
            if isinstance(r, (PartitionRecord, PartitionChangeRecord)):
                topic = image.topics_by_id.get(r.topic_id)
                if topic is not None:
                    touched[(topic.name, r.partition)] = None
            elif isinstance(r, TopicRecord) and r.name in image.topics:
                touched.update(dict.fromkeys((r.name, i) for i in image.topics[r.name].partitions))
            elif isinstance(r, RegisterBrokerRecord):
                followed_from.add(r.node_id)
            orphans |= isinstance(r, (TopicRecord, RemoveTopicRecord, RegisterBrokerRecord))
        if orphans or followed_from:
            for key, p in self.partitions.items():
                if p.topic_id not in image.topics_by_id or p.leader in followed_from:
                    touched[key] = None
        return list(touched)

    def _sync_partitions(self, keys: list[tuple[str, int]]) -> None:
        """Bring these partitions in line with the image: host and update the role of each
        one the image assigns to this node, stop hosting (and delete) the others."""
        removed = []
        for key in keys:
            topic = self.image.topics.get(key[0])
            p = topic.partitions.get(key[1]) if topic is not None else None
            if p is None or self.node_id not in p.replicas:
                removed.append(key)
                continue
            partition = self.partitions.get(key)
            if partition is None:
                partition = self._host(topic, p, self.image.topic_configs(topic.name))
                if partition is None:
                    self._unopened.add(key)
                    continue
                self._unopened.discard(key)
            self._update_role(partition, p)
        # Only partitions the image took away are deleted, never logs it does not
        # mention yet: a replay or a quorum catching up shows a partial image.
        for key in removed:
            self._unopened.discard(key)
            partition = self.partitions.pop(key, None)
            if partition is None:
                continue
            self._stop_following(partition)
            partition.fail_waiters(KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                                              f"{partition.topic}-{partition.index} was removed"))
            self._notify(partition, False)
            self.log_manager.delete_log(*key)

    def _host(self, topic, p, overrides: dict) -> Partition | None:
        """Open (or create) the partition's log; None if the disk or the open-file limit
        refuses (logged, and noted for CreateTopics): the partition stays offline here."""
        config = log_config_for(self.config, overrides)
        new = self.log_manager.get_log(topic.name, p.partition) is None \
            and not self.log_manager.log_dir(topic.name, p.partition).exists()
        try:
            log_ = self.log_manager.get_or_create_log(topic.name, p.partition, config)
            log_.update_config(config)
            state = self._load_producer_state(log_, log_.txn_index)
        except (OSError, KafkaStorageError) as e:
            error = KafkaError(ErrorCode.KAFKA_STORAGE_ERROR,
                               f"Cannot open partition {topic.name}-{p.partition}: {e}"
                               + out_of_descriptors_hint(e))
            self.creation_failures.setdefault(topic.name, error)
            if new and self.log_manager.get_log(topic.name, p.partition) is not None:
                self.log_manager.delete_log(topic.name, p.partition)  # nothing left half-way
            log.error("partition_open_failed", topic=topic.name, partition=p.partition,
                      error=str(e), open_file_limit=soft_limit())
            return None
        partition = Partition(topic.name, p.partition, log_, state,
                              ReplicatedPartition(self.node_id, self.config["replica.lag.time.max.ms"],
                                                  p.leader_epoch),
                              topic.topic_id)
        self.partitions[(topic.name, p.partition)] = partition
        return partition

    def _update_role(self, partition: Partition, p) -> None:
        self._apply(partition, partition.replication.on_metadata(
            p, partition.log.log_end_offset, partition.log.high_watermark, self.clock_ms()))

    def _apply(self, partition: Partition, actions: list[Action]) -> bool:
        """Carry out what the partition's state machine decided, in order; returns whether
        the high watermark was published."""
        published = notify_leader = False
        for action in actions:
            match action:
                case AdvanceHighWatermark(high_watermark, isr_size):
                    partition.set_high_watermark(high_watermark, isr_size)
                    published = True
                case BecomeLeader(leader_epoch, start_offset, first):
                    self._stop_following(partition)
                    partition.log.leader_epoch_cache.assign(leader_epoch, start_offset)
                    log.info("became_leader", topic=partition.topic, partition=partition.index,
                             leader_epoch=leader_epoch, isr=partition.isr_state.isr)
                    notify_leader = first  # once the high watermark that follows is published
                case StopLeading():
                    partition.fail_waiters(KafkaError(
                        ErrorCode.NOT_LEADER_OR_FOLLOWER,
                        f"Leadership of {partition.topic}-{partition.index} moved"))
                    self._notify(partition, False)
                case Follow(leader, _):
                    self._follow(partition, leader)
                case IncrementLogStart(offset):
                    partition.log.maybe_increment_log_start_offset(offset)
                case IsrCommitted(before, after):
                    if after < before:
                        self.isr_shrinks += 1
                    else:
                        self.isr_expands += 1
                case _:
                    raise AssertionError(f"{action} is carried out by its caller")
        if notify_leader:
            self._notify(partition, True)
        return published

    def _follow(self, partition: Partition, leader: int) -> None:
        for leader_id, fetcher in self.fetchers.items():
            if leader_id != leader:
                fetcher.unfollow(partition.topic, partition.index)
        broker = self.image.brokers.get(leader)
        if leader < 0 or broker is None:
            return  # no leader now: wait for the controller to elect one
        endpoint = broker.endpoints.get(self.config.inter_broker_listener_name) \
            or next(iter(broker.endpoints.values()))
        fetcher = self.fetchers.get(leader)
        if fetcher is None or fetcher.peer.host != endpoint[0] or fetcher.peer.port != endpoint[1]:
            if fetcher is not None:
                fetcher.close()
                for key in fetcher.partitions:  # a new connection truncates again first
                    if (p := self.partitions.get(key)) is not None:
                        p.replication.follow_again()
            fetcher = self.fetchers[leader] = ReplicaFetcher(self.node_id, leader, endpoint)
            fetcher.task = asyncio.get_running_loop().create_task(self._replicate(fetcher))
        fetcher.follow(partition.topic, partition.index)

    def _stop_following(self, partition: Partition) -> None:
        for fetcher in self.fetchers.values():
            fetcher.unfollow(partition.topic, partition.index)

    def _load_producer_state(self, log_: Log, txn_index: AbortedTxnIndex | None = None
                             ) -> ProducerStateManager:
        """Replay the producer state (blocking); ``txn_index`` is loaded from its files, cut
        where the replay starts and given the aborted transactions the replay completes."""
        state = ProducerStateManager(log_.dir, self.config["producer.id.expiration.ms"])
        if txn_index is None:
            txn_index = AbortedTxnIndex(log_.dir, log_.io)
        txn_index.load()

        def completed(done: CompletedTxn | None, offset: int) -> None:
            if done is None:
                txn_index.truncate(offset)
            else:
                self._index_completed(log_, state, txn_index, done)
        state.load(log_.log_end_offset, lambda offset: iter_log_headers(log_, offset), self.clock_ms(),
                   completed)
        return state

    @staticmethod
    def _index_completed(log_: Log, state: ProducerStateManager, txn_index: AbortedTxnIndex,
                         done: CompletedTxn) -> None:
        """An aborted transaction goes into the ``.txnindex`` of its marker's segment."""
        if not done.is_aborted:
            return
        segment = log_.segments[log_._segment_index(done.last_offset)]
        first = state.first_unstable_offset()
        lso = done.last_offset if first is None else min(first, done.last_offset)
        txn_index.append(AbortedTxn(done.producer_id, done.first_offset, done.last_offset, lso),
                         segment.base_offset)

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

    def reconfigure(self) -> None:
        """Dynamic broker configs changed (Broker.on_metadata): every hosted log takes its
        topic's effective config again, and producer expiry its new interval."""
        self._topic_configs.clear()
        for (topic, _), partition in self.partitions.items():
            partition.log.update_config(log_config_for(self.config, self.image.topic_configs(topic)))
            partition.producer_state.expiration_ms = self.config["producer.id.expiration.ms"]

    def on_metadata(self, records: list) -> None:
        if not self.following_image:
            return  # start() syncs once the metadata log has caught up
        self._sync_partitions(self._touched(records))
        self._topic_configs.clear()  # rare: any committed metadata change refreshes them
        for p in self.partitions.values():
            if p.low_watermark_waiters and p.isr_state is not None:
                self._complete_delete_records(p)  # a fenced broker no longer holds it back
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
            if topic in self.image.topics and index in self.image.topics[topic].partitions:
                raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                                 f"This server does not host {topic}-{index}.")
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                             f"This server does not host {topic}-{index}.")
        return p

    def leader_partition(self, topic: str, index: int) -> Partition:
        """The partition, if this node leads it (produce, consumer fetch, offsets)."""
        p = self.partition(topic, index)
        if p.leader != self.node_id:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                             f"Node {self.node_id} is not the leader of {topic}-{index} "
                             f"(leader: {p.leader}).")
        return p

    @staticmethod
    def check_leader_epoch(partition: Partition, requested: int) -> None:
        """A client's current_leader_epoch against ours (-1: the client does not know it)."""
        partition.replication.check_leader_epoch(requested)

    def append_records(self, topic: str, index: int, records, *, required_acks: int = 1,
                       check: Callable[[rec.BatchHeader], None] | None = None, client: bool = True):
        """Validate and append a Produce partition's batch as leader; KafkaError on failure.

        ``check`` sees the batch header after it passed validation (policy checks
        that depend on the request version or topic config); then the producer
        state checks it. Nothing is written if either raises. A retry of a recent
        batch of an idempotent producer appends nothing and returns the offsets
        it got the first time. ``client`` False: a coordinator's own batch, without
        sequences (its producer's epoch is still checked).
        """
        p = self.leader_partition(topic, index)
        if not records:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Produce request carries no record batch")
        if required_acks == -1:
            min_isr = self.topic_config(topic)["min.insync.replicas"]
            in_sync = p.isr_state.in_sync_count(self.clock_ms())
            if in_sync < min_isr:
                raise KafkaError(ErrorCode.NOT_ENOUGH_REPLICAS,
                                 f"{topic}-{index} has {in_sync} in-sync replicas, "
                                 f"fewer than min.insync.replicas={min_isr}")
        if len(records) >= rec.LOG_OVERHEAD and rec.peek_batch_size(records) < len(records):
            raise KafkaError(ErrorCode.INVALID_RECORD,
                             "A produce request must carry exactly one record batch per partition")
        headers = []

        def validate(header: rec.BatchHeader) -> None:
            if check is not None:
                check(header)
            if header.producer_id >= 0:
                p.producer_state.check(header, sequences=client)
            headers.append(header)

        active_segment = p.log.segments[-1]
        try:
            result = p.log.append(records, leader_epoch=p.leader_epoch, check=validate)
        except DuplicateBatch as dup:
            b = dup.batch
            log.debug("produce_duplicate", topic=topic, partition=index, first_seq=b.first_seq,
                      last_seq=b.last_seq, first_offset=b.first_offset)
            # Kafka answers a duplicate with the cached batch's max timestamp as its log
            # append time, whatever the topic's timestamp type (held by the oracle).
            return p, AppendResult(b.first_offset, b.last_offset, b.timestamp, p.log.log_start_offset,
                                   b.last_offset - b.first_offset + 1, 0)
        except (rec.RecordError, KafkaStorageError, ProducerStateError) as e:
            raise _error_of(e) from None
        (header,) = headers
        self._after_leader_append(p, active_segment, header, result)
        return p, result

    def _after_leader_append(self, p: Partition, active_segment, header: rec.BatchHeader,
                             result: AppendResult, control: int = -1) -> None:
        if p.log.segments[-1] is not active_segment:
            # Rolled: snapshot the state as of the new segment's start (Kafka's roll does),
            # so recovery replays at most one segment's batch headers.
            self._snapshot_producer_state(p, result.base_offset)
        if header.producer_id >= 0:
            done = p.producer_state.update(header, result.base_offset, self.clock_ms(), control)
            if done is not None:
                self._index_completed(p.log, p.producer_state, p.txn_index, done)
        if not self._apply(p, p.replication.on_append(p.log.log_end_offset)):
            p.wake()  # followers long-polling for new data

    def write_marker(self, topic: str, index: int, producer_id: int, producer_epoch: int,
                     commit: bool, coordinator_epoch: int):
        """Append a COMMIT or ABORT marker for a producer as leader (WriteTxnMarkers):
        (partition, result) to wait on with ``wait_committed``; KafkaError on failure.
        A marker from an epoch older than the producer's is INVALID_PRODUCER_EPOCH."""
        p = self.leader_partition(topic, index)
        entry = p.producer_state.producers.get(producer_id)
        if entry is not None and producer_epoch < entry.epoch:
            raise KafkaError(ErrorCode.INVALID_PRODUCER_EPOCH,
                             f"Marker epoch {producer_epoch} is older than {entry.epoch}")
        batch = rec.build_marker_batch(producer_id, producer_epoch, commit, coordinator_epoch,
                                       self.clock_ms())
        headers: list[rec.BatchHeader] = []
        active_segment = p.log.segments[-1]
        try:
            result = p.log.append(batch, leader_epoch=p.leader_epoch, check=headers.append)
        except (rec.RecordError, KafkaStorageError) as e:
            raise _error_of(e) from None
        self._after_leader_append(p, active_segment, headers[0], result,
                                  rec.CONTROL_COMMIT if commit else rec.CONTROL_ABORT)
        return p, result

    def _snapshot_producer_state(self, p: Partition, offset: int) -> None:
        """Copy the producer state now; write it (two fsyncs) in a thread, in order."""
        data = p.producer_state.snapshot_data(offset)
        state, previous, io = p.producer_state, p.snapshot_write, self.log_manager.io

        async def write() -> None:
            if previous is not None:
                await previous
            await asyncio.get_running_loop().run_in_executor(
                None, state.write_snapshot, offset, data, io)
        p.snapshot_write = self.tasks.spawn(f"producer_snapshot {p.topic}-{p.index}", write,
                                            retries=2)

    @staticmethod
    def is_committed(partition: Partition, result) -> bool:
        """Whether acks=-1 is already satisfied (no waiting needed): the common case on one
        node, where the high watermark moves with the append and nothing asks for an fsync."""
        return partition.log.high_watermark > result.last_offset and not partition.log.needs_flush(result)

    def wait_committed(self, partition: Partition, result) -> Awaitable[None]:
        """An awaitable that returns once an append counts as committed for acks=-1: the
        high watermark passed it (every ISR member has it) and it is as durable as
        flush.messages asks here. KafkaError NOT_LEADER_OR_FOLLOWER if leadership moves
        meanwhile.

        Call it right after the append: the waiter is registered now, while this node
        still leads at the epoch of the append, not when the awaitable first runs (a
        loop iteration or two later). A waiter registered after leadership moved would
        escape ``fail_waiters`` and be completed by this node's high watermark as a
        follower, acknowledging an offset that the new leader's batches now hold.
        """
        fut = None
        if partition.log.high_watermark <= result.last_offset:
            fut = asyncio.get_running_loop().create_future()
            partition.hw_waiters.append((result.last_offset, fut))
        min_isr = self.topic_config(partition.topic)["min.insync.replicas"]
        return self._committed(partition, result, fut, min_isr)

    @staticmethod
    async def _committed(partition: Partition, result, hw_waiter: asyncio.Future | None,
                         min_isr: int) -> None:
        if hw_waiter is not None:
            # The ISR when the high watermark passed the write: every member has it. If a
            # shrink the controller committed meanwhile took it below min.insync.replicas,
            # the write has fewer copies than promised (Kafka's DelayedProduce answers so too).
            isr_size = await hw_waiter
            if isr_size < min_isr:
                raise KafkaError(ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                                 f"{partition.topic}-{partition.index} committed the write with "
                                 f"{isr_size} in-sync replicas, fewer than min.insync.replicas={min_isr}")
        await partition.log.wait_durable(result)

    # -- replication: the leader's side ----------------------------------------
    def is_follower(self, partition: Partition, replica_id: int) -> bool:
        """Whether ``replica_id`` may fetch ``partition`` (led here) as its follower: a
        registered broker in its replica set. Only a follower reads past the high watermark."""
        return partition.replication.is_follower(replica_id) and replica_id in self.image.brokers

    def on_follower_fetch(self, topic: str, index: int, replica_id: int, fetch_offset: int,
                          log_start_offset: int = -1) -> None:
        """A follower fetches from ``fetch_offset``: that is its log end offset; its log
        starts at ``log_start_offset``."""
        p = self.leader_partition(topic, index)
        self._apply(p, p.replication.on_follower_fetch(replica_id, fetch_offset, log_start_offset,
                                                       self.clock_ms()))
        if p.low_watermark_waiters:
            self._complete_delete_records(p)

    def low_watermark(self, p: Partition) -> int:
        """The smallest log start offset among the replicas of ``p`` (led here) on live,
        unfenced brokers: how far DeleteRecords has taken effect."""
        alive = {b.node_id for b in self.image.brokers.values() if not b.fenced}
        return p.isr_state.low_watermark(p.log.log_start_offset, alive)

    async def wait_low_watermark(self, p: Partition, offset: int) -> int:
        """Return the low watermark once it reaches ``offset`` (Kafka's DelayedDeleteRecords);
        the caller bounds the wait. KafkaError NOT_LEADER_OR_FOLLOWER if leadership moves."""
        low = self.low_watermark(p)
        if low >= offset:
            return low
        fut = asyncio.get_running_loop().create_future()
        p.low_watermark_waiters.append((offset, fut))
        try:
            return await fut
        finally:
            p.low_watermark_waiters = [w for w in p.low_watermark_waiters if w[1] is not fut]

    def _complete_delete_records(self, p: Partition) -> None:
        low = self.low_watermark(p)
        for offset, fut in p.low_watermark_waiters:
            if low >= offset and not fut.done():
                fut.set_result(low)

    async def _maintain_isr(self) -> None:
        """Ask the controller to shrink or expand ISRs as followers fall behind or catch up."""
        while True:
            await asyncio.sleep(ISR_CHECK_S)
            now = self.clock_ms()
            for p in list(self.partitions.values()):
                if self.controller is None:
                    continue
                proposal = p.replication.proposed_isr(now)
                if proposal is not None:
                    log.info("isr_change", topic=p.topic, partition=p.index,
                             isr=proposal.state.isr, proposed=proposal.isr)
                    self.tasks.spawn(f"alter_isr {p.topic}-{p.index}",
                                     lambda p=p, proposal=proposal: self._alter_isr(p, proposal))

    async def _alter_isr(self, p: Partition, proposal: ProposeIsr) -> None:
        """Send one ISR change; supervised, so a failure is retried while it still applies
        (the state keeps the change pending until an answer comes: a lost one would
        stop every later change of this partition)."""
        if not p.replication.still_proposing(proposal):
            return  # leadership or the ISR moved on meanwhile: nothing to retry
        try:
            epoch = await self.controller.alter_partition(p.topic_id, p.index, self.node_id,
                                                          proposal.leader_epoch,
                                                          proposal.partition_epoch, proposal.isr)
        except KafkaError as e:
            log.warning("isr_change_refused", topic=p.topic, partition=p.index, error=e.message)
            p.replication.on_isr_refused(proposal)
            return
        self._apply(p, p.replication.on_isr_answer(proposal, epoch))

    # -- replication: the follower's side ------------------------------------
    async def _replicate(self, fetcher: ReplicaFetcher) -> None:
        """Follow the partitions of ``fetcher``'s leader, until the fetcher is closed: each
        truncates by OffsetForLeaderEpoch under a new leadership, then they are fetched."""
        while True:
            try:
                await self._truncate_from(fetcher, await fetcher.followed())
                await self._fetch_from(fetcher)
            except asyncio.CancelledError:
                raise
            except PeerUnavailable:
                await asyncio.sleep(FETCH_RETRY_S)
            except Exception:
                log.exception("replica_fetcher_error", leader=fetcher.leader_id)
                await asyncio.sleep(FETCH_RETRY_S)

    async def _truncate_from(self, fetcher: ReplicaFetcher, keys: list[tuple[str, int]]) -> None:
        """Ask the leader where our latest epoch ended, for the partitions that have not
        truncated for its leadership yet, and cut their logs there (KIP-279)."""
        queries = []
        for key in keys:
            p = self.partitions.get(key)
            if p is None:
                continue
            latest = p.log.leader_epoch_cache.latest_epoch
            epoch = p.replication.epoch_to_ask(-1 if latest is None else latest)
            if epoch is not None:
                queries.append(EpochQuery(key[0], key[1], p.leader_epoch, epoch))
        if not queries:
            return
        asked = {(q.topic, q.index): q for q in queries}
        for topic, result in await fetcher.offsets_for_leader_epoch(queries):
            q = asked.get((topic, result.partition))
            if q is None or (topic, result.partition) not in fetcher.partitions \
                    or result.error_code != ErrorCode.NONE:
                continue
            await self.truncate_follower(topic, result.partition, q.epoch, result.leader_epoch,
                                         result.end_offset, asked_under=q.current_leader_epoch)

    async def _fetch_from(self, fetcher: ReplicaFetcher) -> None:
        """One Fetch of the partitions followed from ``fetcher``'s leader that may fetch, and
        its answers carried out."""
        targets = []
        for key in fetcher.partitions:
            p = self.partitions.get(key)
            offset = p.replication.fetch_offset(p.log.log_end_offset) if p is not None else None
            if offset is not None:
                targets.append(FetchTarget(key[0], key[1], p.leader_epoch, offset,
                                           p.log.log_start_offset))
        if not targets:
            await asyncio.sleep(FETCH_RETRY_S)
            return
        transient = False
        for topic, data in await fetcher.fetch(targets):
            index = data.partition_index
            if (topic, index) not in fetcher.partitions:
                continue
            if data.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                await self.handle_out_of_range(topic, index, data.log_start_offset)
            elif data.error_code == ErrorCode.NONE:
                self.append_as_follower(topic, index, data.records, data.high_watermark,
                                        data.log_start_offset)
            elif data.error_code in TRANSIENT_FETCH_ERRORS:
                transient = True  # the metadata will tell us who leads now, or the
                # leader has not created the partition yet
            else:
                log.warning("follower_fetch_error", topic=topic, partition=index,
                            error=ErrorCode(data.error_code).name)
                transient = True
        if transient:
            await asyncio.sleep(FETCH_RETRY_S)  # errors come back at once; do not spin

    async def truncate_follower(self, topic: str, index: int, requested_epoch: int,
                                leader_epoch: int, leader_end_offset: int,
                                asked_under: int | None = None) -> None:
        """Cut a follower's log where the leader's answer about our latest epoch says (asked
        while following at leader epoch ``asked_under``; None: the current one).

        The cut is immediate; the leader-epoch file and the producer-state replay run in
        threads, and this returns once they are done, before the fetching goes on."""
        p = await self._follower_after_snapshots(topic, index)
        if p is None:
            return
        for action in p.replication.on_epoch_answer(
                requested_epoch, leader_epoch, leader_end_offset,
                lambda epoch: p.log.end_offset_for_epoch(epoch)[1], p.log.log_end_offset,
                asked_under):
            assert isinstance(action, TruncateTo)
            log.info("follower_truncate", topic=topic, partition=index,
                     log_end_offset=p.log.log_end_offset, truncate_to=action.offset)
            await p.log.truncate_to_async(action.offset)
            await self._reload_producer_state(p)

    async def handle_out_of_range(self, topic: str, index: int, leader_log_start: int) -> None:
        p = await self._follower_after_snapshots(topic, index)
        if p is None:
            return
        for action in p.replication.on_out_of_range(leader_log_start, p.log.log_end_offset):
            assert isinstance(action, StartAt)
            await p.log.truncate_fully_and_start_at_async(action.offset)
            # Nothing of the old log is left to replay: forget every producer and snapshot,
            # as Kafka's truncateFullyAndStartAt does (a reload brought an old snapshot back).
            p.producer_state.truncate_fully()
            p.txn_index.truncate(0)

    async def _follower_after_snapshots(self, topic: str, index: int) -> Partition | None:
        """The partition if this node follows it, once its snapshot writes (from when it
        led) are done: a truncation must not have one land above the log end it cuts."""
        p = self.partitions.get((topic, index))
        if p is not None and p.snapshot_write is not None:
            await p.snapshot_write
            p = self.partitions.get((topic, index))
        return p if p is not None and p.isr_state is None else None

    async def _reload_producer_state(self, p: Partition) -> None:
        """Rebuild the producer state from the log (a replay of batch headers) in a thread;
        batches appended meanwhile are replayed after it, here. The thread reads through
        file slices of a log that hardly anything else touches meanwhile: consumers read
        leaders and this follower's fetcher awaits the replay (only a flush.* fsync may
        hold one of its segments at the same time)."""
        end = p.log.log_end_offset
        txn_index = AbortedTxnIndex(p.log.dir, p.log.io)
        state = await asyncio.get_running_loop().run_in_executor(
            None, self._load_producer_state, p.log, txn_index)
        if p.log.log_end_offset > end:
            state.replay(iter_log_headers(p.log, end), self.clock_ms(),
                         lambda done, _: done and self._index_completed(p.log, state, txn_index, done))
        p.producer_state, p.txn_index = state, txn_index

    def append_as_follower(self, topic: str, index: int, records, leader_high_watermark: int,
                           leader_log_start_offset: int = -1) -> None:
        """Append a fetch response's batches, then take the leader's high watermark and log
        start offset (ReplicatedPartition.on_fetched)."""
        p = self.partitions.get((topic, index))
        if p is None or p.isr_state is not None:
            return
        if records:
            base = p.log.log_end_offset
            p.log.append_as_follower(records)
            now = self.clock_ms()
            pos = 0
            while pos < len(records):  # the producer state follows the leader's batches
                header = rec.parse_header(records, pos)
                if header.producer_id >= 0 and header.base_offset >= base:
                    control = rec.control_type(records, pos) if header.is_control else -1
                    done = p.producer_state.update(header, header.base_offset, now, control)
                    if done is not None:
                        self._index_completed(p.log, p.producer_state, p.txn_index, done)
                pos += header.size
        self._apply(p, p.replication.on_fetched(leader_high_watermark, p.log.log_end_offset,
                                                leader_log_start_offset, p.log.log_start_offset))

    # -- fetch --------------------------------------------------------------------
    def read(self, topic: str, index: int, fetch_offset: int, max_bytes: int, min_one: bool,
             up_to_high_watermark: bool = True, max_offset: int | None = None):
        """Batches from ``fetch_offset``: up to the high watermark (consumers), the log end
        (followers, coordinators), or ``max_offset`` (read_committed: the last stable offset)."""
        p = self.leader_partition(topic, index)
        if max_offset is None and up_to_high_watermark:
            max_offset = p.log.high_watermark
        try:
            return p.log.read(fetch_offset, max_bytes, max_offset, min_one)
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
        await self.tasks.close()
        for fetcher in self.fetchers.values():
            fetcher.close()
        for p in self.partitions.values():
            p.wake()
        # a clean restart replays nothing
        in_parallel(lambda p: p.producer_state.take_snapshot(p.log.log_end_offset),
                    list(self.partitions.values()))
        self.log_manager.close()

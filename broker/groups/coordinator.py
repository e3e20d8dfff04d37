"""The group coordinator: the groups of the ``__consumer_offsets`` partitions this node leads.

- Coordinator of a group: the leader of its partition (``offsets_topic.partition_for``).
  The topic is created on the first FindCoordinator, with replication factor
  min(offsets.topic.replication.factor, live brokers) so a one-node cluster works.
- Loading: when this node becomes leader of a partition (ReplicaManager's leadership
  listeners), a background task replays its log from the log start into groups
  and offsets; meanwhile its groups answer COORDINATOR_LOAD_IN_PROGRESS. Losing the
  partition drops its groups (NOT_COORDINATOR afterwards).
- Lease (``hold``): while the broker's lease has lapsed (broker.Lease: no heartbeat
  answered by the controller for broker.session.timeout.ms) this node coordinates
  nothing. It may have been fenced and its partitions led elsewhere, where members
  have committed since; answering OffsetFetch from the state it kept would hand a
  consumer an offset its group has moved past, and after a network partition heals
  its image can take a while to show that it lost the partition.
- Writes: commits and group metadata are appended as one uncompressed batch and
  acknowledged only after ``wait_committed`` (the ISR, once replication exists).
- Compaction: the topic is compacted (cleanup.policy=compact) and the log cleaner
  (storage.cleaner) keeps the latest record of every key, tombstones until
  delete.retention.ms, offsets unchanged; replaying from the log start therefore always
  rebuilds the state, as in Kafka. Segments roll at offsets.topic.segment.bytes.
- Transactional offsets (TxnOffsetCommit, KIP-98/447): written as a transactional batch
  of the producer (no sequence), held pending per producer and applied or dropped when
  the transaction's COMMIT or ABORT marker lands on the partition
  (``complete_txn_offsets``); replay does the same from the log. The cleaner keeps
  transactional records and markers as they are (storage.cleaner).
- Expiry (offsets.retention.minutes, checked every offsets.retention.check.interval.ms):
  Kafka's rule (see ``Group.expired_offsets``); expired offsets get tombstones, and an
  empty group left without offsets is removed.
"""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import re2
import structlog

from odradek.broker.config import ConfigError
from odradek.broker.groups import assignors as asg
from odradek.broker.groups import consumer_group_records as cgr
from odradek.broker.groups import offsets_topic as ot
from odradek.broker.groups.consumer_group import (
    CONSUMER_PROTOCOL_TYPE,
    ConsumerGroup,
    ConsumerGroupConfig,
    Heartbeat,
    HeartbeatResult,
    TopicInfo,
    Topics,
    validate,
)
from odradek.broker.groups.group import Group, GroupConfig, GroupState, JoinResult, SyncResult
from odradek.broker.share.share_group import ShareGroup, ShareGroupConfig, ShareHeartbeat
from odradek.broker.share.share_group import validate as validate_share
from odradek.protocol import records as rec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.controller import NewTopic
from odradek.replication.metadata import GROUP as GROUP_RESOURCE
from odradek.replication.peer import Peer
from odradek.replication.tasks import Supervisor

log = structlog.get_logger(__name__)

OFFSETS_TOPIC = ot.OFFSETS_TOPIC
OFFSETS_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    # Belt and braces: retention never deletes from a compact topic (storage honours
    # cleanup.policy), and -1 says so in DescribeConfigs too.
    "retention.ms": "-1",
}
LOAD_CHUNK_BYTES = 1 << 20
MEMBER_EPOCH_COMMIT_VERSION = 9  # OffsetCommit carries a member epoch from v9 (KIP-848)
REGEX_CACHE_SIZE = 1024
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a client's bad regex is its error, not ours to log

# Kafka's mapping of a coordinator's append failures to what its clients understand
# (the transaction coordinator uses it too)
COORDINATOR_WRITE_ERRORS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
}
# ... and of a group's
_WRITE_ERRORS = {
    **COORDINATOR_WRITE_ERRORS,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
}


class AsyncioScheduler:
    """Wall-clock time and event-loop timers for the group state machines."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def call_later(self, delay_ms: int, callback):
        return asyncio.get_running_loop().call_later(max(delay_ms, 0) / 1000, callback)


class LedPartition:
    """One partition of a coordinator's internal topic that this node leads: ``loading``
    (by ``task``) until its records are read, then serving its keys. Each coordinator's
    subclass adds what it keeps per partition."""

    def __init__(self, partition):
        self.partition = partition
        self.index: int = partition.index
        self.loading = True
        self.task: asyncio.Task | None = None


class PartitionCoordinator:
    """What the group, transaction and share coordinators share: each coordinates the keys
    of the partitions of its internal topic (``TOPIC``) that this node leads (a ``PARTITION``
    each), loading a partition's state (``_load``) when it becomes leader and dropping it
    (``_unload``) when it stops, or while the broker's lease has lapsed (``hold``)."""

    TOPIC = ""
    PARTITION: type[LedPartition] = LedPartition
    broker: Any
    partitions: dict
    held: bool
    tasks: Supervisor
    peers: dict

    @property
    def replicas(self):
        return self.broker.replicas

    def start(self) -> None:
        """Follow leadership (before the replica manager starts, so no partition is missed)."""
        self.broker.replicas.leadership_listeners.append(self.on_leadership)

    async def close(self) -> None:
        for p in list(self.partitions.values()):
            self._unload(p)
        await self.tasks.close()

    @staticmethod
    async def _every(interval_ms: int, work: Callable[[], Awaitable], failure_event: str) -> None:
        """Run ``work`` every ``interval_ms`` for ever; a failure is logged, not fatal."""
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                await work()
            except Exception:
                log.exception(failure_event)

    async def _log_chunks(self, p) -> AsyncIterator[bytes]:
        """The led partition's log from its start, in whole batches of about
        LOAD_CHUNK_BYTES; loading is background work: requests go through between chunks.
        It reads to the log end as it is when it gets there (no await between that check
        and the caller's end of loading), so a transaction marker appended meanwhile is
        read too, not missed by both the load and the live path."""
        log_ = p.partition.log
        offset = log_.log_start_offset
        while offset < log_.log_end_offset:
            read = self.replicas.read(self.TOPIC, p.index, offset, LOAD_CHUNK_BYTES,
                                      min_one=True, up_to_high_watermark=False)
            with read:
                data = read.read_bytes()
            if not data:
                return
            yield data
            for _, header in rec.iter_batches(data, None, produced=False):
                offset = header.next_offset
            await asyncio.sleep(0)

    def _key_error(self, key: str | None, invalid: ErrorCode) -> ErrorCode:
        """``invalid`` for an empty key, NOT_COORDINATOR when its partition is not led
        here, COORDINATOR_LOAD_IN_PROGRESS while it loads."""
        if not key:
            return invalid
        p = self.partitions.get(self.partition_for(key))
        if p is None:
            return ErrorCode.NOT_COORDINATOR
        if p.loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    def partition_for(self, key: str) -> int:
        raise NotImplementedError

    async def _load(self, p) -> None:
        raise NotImplementedError

    def _unload(self, p) -> None:
        raise NotImplementedError

    async def _ensure_topic(self, num_partitions: int, replication_factor: int,
                            configs: dict | Callable[[int], dict], wait_s: float) -> None:
        """Create the topic if it does not exist, waiting at most ``wait_s`` for it (the
        creation goes on; FindCoordinator answers not available meanwhile), with the
        replication factor capped at the live brokers so a one-node cluster works (``configs``
        may depend on it: a function of the replication factor). A node
        still catching up on the metadata log cannot tell (its image may lack the topic),
        and may have no controller to ask: it leaves it."""
        if self.TOPIC in self.broker.image.topics or not self.broker.metadata_log.caught_up.is_set():
            return
        live = sum(1 for b in self.broker.image.brokers.values() if not b.fenced)
        rf = max(1, min(replication_factor, live))
        await asyncio.wait({self.broker.create_topic_in_background(NewTopic(
            self.TOPIC, num_partitions, rf, configs=configs(rf) if callable(configs) else dict(configs)))},
            timeout=wait_s)

    async def _ensure_state_topic(self, num_partitions: int, replication_factor: int, min_isr: int,
                                  segment_bytes: int, wait_s: float) -> None:
        """``_ensure_topic`` for a compacted state topic (``__transaction_state``,
        ``__share_group_state``): kept for ever, no unclean election, min.insync.replicas
        capped at the replication factor."""
        def configs(rf: int) -> dict:
            return {"cleanup.policy": "compact", "segment.bytes": str(segment_bytes),
                    "min.insync.replicas": str(max(1, min(min_isr, rf))),
                    "unclean.leader.election.enable": "false", "retention.ms": "-1"}
        await self._ensure_topic(num_partitions, replication_factor, configs, wait_s)

    async def _write_committed(self, p, key: bytes, value: bytes | None, timestamp_ms: int) -> ErrorCode:
        """Append one record to the led partition ``p`` and wait for the ISR (acks=all); the
        coordinator's error if that fails or ``p`` was unloaded meanwhile."""
        batch = rec.build_batch([rec.Record(key, value, (), timestamp_ms)])
        event = self.TOPIC.strip("_")
        try:
            partition, result = self.replicas.append_records(self.TOPIC, p.index, batch, required_acks=-1)
            await self.replicas.wait_committed(partition, result)
        except KafkaError as e:
            log.warning(f"{event}_write_failed", partition=p.index, error=e.code.name)
            return COORDINATOR_WRITE_ERRORS.get(e.code, ErrorCode.UNKNOWN_SERVER_ERROR)
        except OSError:
            log.exception(f"{event}_write_not_durable", partition=p.index)
            return ErrorCode.NOT_COORDINATOR
        return ErrorCode.NOT_COORDINATOR if self.partitions.get(p.index) is not p else ErrorCode.NONE

    def coordinator_node(self, key: str):
        """The broker registration of the key's coordinator, or None if it has none now."""
        topic = self.broker.image.topics.get(self.TOPIC)
        if topic is None:
            return None
        p = topic.partitions.get(self.partition_for(key))
        node = self.broker.image.brokers.get(p.leader) if p is not None else None
        return node if node is not None and not node.fenced else None

    def _peer(self, node_id: int) -> Peer | None:
        """A connection to another live node's inter-broker listener (kept for reuse)."""
        node = self.broker.image.brokers.get(node_id)
        if node is None or node.fenced:
            return None
        endpoint = node.endpoints.get(self.broker.config.inter_broker_listener_name) \
            or next(iter(node.endpoints.values()))
        peer = self.peers.get(node_id)
        if peer is None or (peer.host, peer.port) != tuple(endpoint):
            if peer is not None:
                peer.close()
            peer = self.peers[node_id] = Peer(node_id, endpoint[0], endpoint[1], from_node=self.broker.node_id)
        return peer

    def hold(self, held: bool) -> None:
        """Coordinate the keys of the partitions this node leads (True), or none (False)."""
        if held == self.held:
            return
        self.held = held
        if not held:
            for p in list(self.partitions.values()):
                self._unload(p)
            return
        for partition in self.broker.replicas.partitions.values():
            if partition.topic == self.TOPIC and partition.isr_state is not None:
                self.on_leadership(partition, True)

    def on_leadership(self, partition, is_leader: bool) -> None:
        if partition.topic != self.TOPIC:
            return
        current = self.partitions.get(partition.index)
        if is_leader and current is None and self.held:
            p = self.PARTITION(partition)
            self.partitions[partition.index] = p
            p.task = self.tasks.spawn(f"load {self.TOPIC}-{p.index}", lambda: self._load(p))
        elif not is_leader and current is not None:
            self._unload(current)


class OffsetsPartition(LedPartition):
    """One led partition of __consumer_offsets."""

    def __init__(self, partition):
        super().__init__(partition)
        self.group_ids: set[str] = set()
        # producer id -> record key -> (group id, (topic, partition), value) of its open
        # transaction's offset commits
        self.pending_txn: dict[int, dict[bytes, tuple[str, tuple[str, int], ot.OffsetAndMetadata]]] = {}


def _record_key(group_id: str, tp: tuple[str, int]) -> bytes:
    return ot.offset_key(group_id, tp[0], tp[1])


class GroupCoordinator(PartitionCoordinator):
    TOPIC = OFFSETS_TOPIC
    PARTITION = OffsetsPartition

    def __init__(self, broker, scheduler=None):
        self.broker = broker
        config = broker.config
        self.config = GroupConfig(
            min_session_timeout_ms=config["group.min.session.timeout.ms"],
            max_session_timeout_ms=config["group.max.session.timeout.ms"],
            initial_rebalance_delay_ms=config["group.initial.rebalance.delay.ms"],
            max_size=config["group.max.size"])
        self.num_partitions: int = config["offsets.topic.num.partitions"]
        self.replication_factor: int = config["offsets.topic.replication.factor"]
        self.metadata_max_bytes: int = config["offset.metadata.max.bytes"]
        self.retention_ms: int = config["offsets.retention.minutes"] * 60_000
        self.retention_check_ms: int = config["offsets.retention.check.interval.ms"]
        self.scheduler = scheduler or AsyncioScheduler()
        self.groups: dict[str, Group] = {}
        # Consumer-protocol groups (KIP-848). Their offsets live in the classic Group of the
        # same id in ``groups`` (which then has no members), so commits, fetches, expiry and
        # deletion keep one path; a group id has members of one protocol at a time.
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        self.consumer_config = _consumer_config(config)
        # Share groups (KIP-932): membership and assignment, written to __consumer_offsets
        # as Kafka 4.4 writes them (consumer_group_records), so a new coordinator keeps them.
        self.share_groups: dict[str, ShareGroup] = {}
        self.share_config = ShareGroupConfig(
            session_timeout_ms=config["group.share.session.timeout.ms"],
            heartbeat_interval_ms=config["group.share.heartbeat.interval.ms"],
            max_size=config["group.share.max.size"])
        self._regex_cache: dict[str, object] = {}
        self._topics_cache: tuple[tuple[int, int], Topics] | None = None
        self.partitions: dict[int, OffsetsPartition] = {}
        self.tasks = Supervisor("group_coordinator")
        self.held = True  # see hold()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.tasks.spawn("expire_offsets", self._expire_loop)

    # -- the topic and who coordinates -------------------------------------------------
    def partition_for(self, group_id: str) -> int:
        return ot.partition_for(group_id, self.num_partitions)

    async def ensure_topic(self, wait_s: float) -> None:
        """Create ``__consumer_offsets`` if it does not exist (see ``_ensure_topic``)."""
        configs = {**OFFSETS_TOPIC_CONFIGS,
                   "segment.bytes": str(self.broker.config["offsets.topic.segment.bytes"])}
        await self._ensure_topic(self.num_partitions, self.replication_factor, configs, wait_s)

    def group_error(self, group_id: str | None) -> ErrorCode:
        """The errors every group request shares: a bad id, not the coordinator, still loading."""
        return self._key_error(group_id, ErrorCode.INVALID_GROUP_ID)

    def _group(self, group_id: str, create: bool = False) -> Group | None:
        group = self.groups.get(group_id)
        if group is None and create:
            group = Group(group_id, self.config, self.scheduler, self._persist)
            self.groups[group_id] = group
            self.partitions[self.partition_for(group_id)].group_ids.add(group_id)
        return group

    def _drop_group(self, group: Group) -> None:
        group.mark_dead()
        self.groups.pop(group.group_id, None)
        consumer_group = self.consumer_groups.pop(group.group_id, None)
        if consumer_group is not None:
            consumer_group.shut_down()
        p = self.partitions.get(self.partition_for(group.group_id))
        if p is not None:
            p.group_ids.discard(group.group_id)

    def _forget_if_unused(self, group: Group) -> None:
        """A group created by a join that failed at once leaves no trace."""
        if (group.state == GroupState.EMPTY and not group.members and not group.pending_members
                and not group.offsets and group.generation_id == 0
                and group.group_id not in self.consumer_groups):
            self._drop_group(group)

    # -- leadership, loading -----------------------------------------------------------
    def _unload(self, p: OffsetsPartition) -> None:
        self.partitions.pop(p.index, None)
        if p.task is not None and not p.task.done():
            p.task.cancel()
        for group_id in p.group_ids:
            group = self.groups.pop(group_id, None)
            if group is not None:
                group.shut_down(ErrorCode.NOT_COORDINATOR)
            consumer_group = self.consumer_groups.pop(group_id, None)
            if consumer_group is not None:
                consumer_group.shut_down()
            share_group = self.share_groups.pop(group_id, None)
            if share_group is not None:
                share_group.shut_down()
        log.info("offsets_partition_unloaded", partition=p.index, groups=len(p.group_ids))

    async def _load(self, p: OffsetsPartition) -> None:
        started = time.monotonic()
        records = 0
        # A failure propagates: the supervisor logs it and loads the partition again.
        async for data in self._log_chunks(p):
            for pos, header in rec.iter_batches(data, None, produced=False):
                if header.is_control:
                    self._txn_marker(p, header.producer_id, rec.control_type(data, pos) == rec.CONTROL_COMMIT)
                    continue
                for _, key, value in ot.batch_records(data, pos, header):
                    records += 1
                    if header.is_transactional:
                        self._replay_pending(p, header.producer_id, key, value)
                    else:
                        self._replay(p, key, value)
        topics = self._topics()
        for group_id in p.group_ids:
            group = self.groups.get(group_id)  # (a share group has no classic group)
            if group is not None:
                group.start_session_timers()
            consumer_group = self.consumer_groups.get(group_id)
            if consumer_group is not None:
                consumer_group.loaded(topics)
            share_group = self.share_groups.get(group_id)
            if share_group is not None:
                share_group.loaded(topics)
        p.loading = False
        (log.info if records else log.debug)("offsets_partition_loaded", partition=p.index, groups=len(p.group_ids),
                 records=records, seconds=round(time.monotonic() - started, 3))

    def _replay(self, p: OffsetsPartition, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the log to the partition's state."""
        if key is None:
            return
        try:
            parsed = ot.parse_key(key)
            if parsed[0] in ("consumer_group", "share_group"):
                self._replay_modern(parsed[0] == "share_group", parsed[1], parsed[2], parsed[3], value)
                return
            if parsed[0] == "offset":
                _, group_id, topic, partition = parsed
                group = self._group(group_id, create=value is not None)
                if group is None:
                    return
                if value is None:
                    group.offsets.pop((topic, partition), None)
                else:
                    group.offsets[(topic, partition)] = ot.parse_offset_value(value)
            else:
                group_id = parsed[1]
                if value is None:
                    # As in Kafka, a group's tombstone leaves its offsets (a deletion
                    # tombstones them first): written when the group became a consumer group.
                    group = self.groups.get(group_id)
                    if group is not None and group.offsets:
                        group.clear_members(ErrorCode.NOT_COORDINATOR)
                    elif group is not None:
                        self._drop_group(group)
                else:
                    self._group(group_id, create=True).load_record(ot.parse_group_value(value))
        except ot.RecordFormatError as e:
            log.warning("offsets_record_skipped", partition=p.index, reason=str(e))

    def _replay_modern(self, share: bool, group_id: str, record_type: int, member_id: str | None,
                       value: bytes | None) -> None:
        """One record of a consumer group (KIP-848) or a share group (KIP-932)."""
        groups: dict = self.share_groups if share else self.consumer_groups
        group = groups.get(group_id)
        if group is None:
            if value is None:
                return
            group = self._new_share_group(group_id) if share else self._new_consumer_group(group_id)
        parsed_value = None
        if value is not None:
            try:
                parsed_value = cgr.parse_value(record_type, value)
            except Exception as e:  # kafka-python's codec: struct.error, ValueError...
                raise ot.RecordFormatError(f"record type {record_type}: {e}") from None
        group.load_record(record_type, member_id, parsed_value)
        if record_type in (cgr.METADATA, cgr.SHARE_METADATA) and value is None and not group.members:
            # Its tombstone, after its members' (the group was deleted, an emptied group
            # changed protocol, or was downgraded to classic): as Kafka's removeGroup.
            del groups[group_id]
            group.shut_down()

    def _replay_pending(self, p: OffsetsPartition, producer_id: int, key: bytes | None,
                        value: bytes | None) -> None:
        """A transactional offset commit read back from the log: pending until its marker."""
        if key is None or value is None:
            return
        try:
            parsed = ot.parse_key(key)
            if parsed[0] == "offset":
                _, group_id, topic, partition = parsed
                p.pending_txn.setdefault(producer_id, {})[key] = (
                    group_id, (topic, partition), ot.parse_offset_value(value))
        except ot.RecordFormatError as e:
            log.warning("offsets_record_skipped", partition=p.index, reason=str(e))

    def _txn_marker(self, p: OffsetsPartition, producer_id: int, commit: bool) -> None:
        """Apply (COMMIT) or drop (ABORT) a producer's pending transactional offsets."""
        pending = p.pending_txn.pop(producer_id, None)
        if not pending or not commit:
            return
        for _key, (group_id, tp, value) in pending.items():
            self._group(group_id, create=True).offsets[tp] = value

    def pending_txn_offsets(self, group_id: str) -> set[tuple[str, int]]:
        """The group's partitions with an offset committed in a transaction not yet ended."""
        p = self.partitions.get(self.partition_for(group_id))
        if p is None:
            return set()
        return {tp for pending in p.pending_txn.values() for g, tp, _ in pending.values() if g == group_id}

    def complete_txn_offsets(self, partition_index: int, producer_id: int, commit: bool) -> None:
        """A transaction marker was written to this __consumer_offsets partition."""
        p = self.partitions.get(partition_index)
        if p is not None and not p.loading:
            self._txn_marker(p, producer_id, commit)

    # -- writing -----------------------------------------------------------------------
    async def _write(self, group_id: str, entries: list[tuple[bytes, bytes | None]],
                     producer: tuple[int, int] | None = None) -> ErrorCode:
        """Append records for this group's partition; NONE once committed. ``producer``
        (id, epoch): a transactional batch of that producer (TxnOffsetCommit)."""
        p = self.partitions.get(self.partition_for(group_id))
        if p is None:
            return ErrorCode.NOT_COORDINATOR
        now = self.scheduler.now_ms()
        records = [rec.Record(k, v, (), now) for k, v in entries]
        if producer is None:
            batch = rec.build_batch(records)
        else:
            batch = rec.build_batch(records, producer_id=producer[0], producer_epoch=producer[1],
                                    transactional=True)
        try:
            partition, result = self.replicas.append_records(OFFSETS_TOPIC, p.index, batch,
                                                             client=False)
        except KafkaError as e:
            log.warning("offsets_write_failed", partition=p.index, error=e.code.name)
            if e.code == ErrorCode.INVALID_PRODUCER_EPOCH:
                return ErrorCode.PRODUCER_FENCED
            return _WRITE_ERRORS.get(e.code, ErrorCode.UNKNOWN_SERVER_ERROR)
        try:
            await self.replicas.wait_committed(partition, result)
        except KafkaError as e:
            return _WRITE_ERRORS.get(e.code, ErrorCode.UNKNOWN_SERVER_ERROR)
        except OSError:
            log.exception("offsets_write_not_durable", partition=p.index)
            return ErrorCode.NOT_COORDINATOR
        return ErrorCode.NONE

    def _persist(self, group: Group, assignment: dict | None, done) -> None:
        """Group's hook: store its metadata (a tombstone once Dead), then ``done(error)``."""
        value = None if group.state == GroupState.DEAD else ot.group_value(group.to_record(assignment))

        async def run():
            done(await self._write(group.group_id, [(ot.group_key(group.group_id), value)]))
        # Retried if it fails unexpectedly: the group waits on ``done`` (members in SyncGroup).
        self.tasks.spawn(f"persist group {group.group_id}", run)

    # -- JoinGroup / SyncGroup / Heartbeat / LeaveGroup -------------------------------------
    async def join_group(self, group_id: str, member_id: str, **kwargs) -> JoinResult:
        error = self.group_error(group_id)
        if error:
            return JoinResult(error, member_id)
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None and consumer_group.members:
            return await self._classic_join(consumer_group, member_id, **kwargs)
        if consumer_group is not None:
            # An empty group changes protocol freely (Kafka 3.8+): its consumer-protocol
            # records go, its offsets stay.
            error = await self._write(group_id, [(k, None) for k in consumer_group.all_record_keys()])
            if error:
                return JoinResult(error, member_id)
            if self.consumer_groups.get(group_id) is consumer_group and not consumer_group.members:
                del self.consumer_groups[group_id]
                consumer_group.shut_down()
                log.info("consumer_group_converted_to_classic", group_id=group_id)
        group = self._group(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
            group = self._group(group_id, create=True)
        future = asyncio.get_running_loop().create_future()
        group.join(member_id=member_id, callback=lambda r: future.done() or future.set_result(r),
                   **kwargs)
        result = await future
        if result.error:
            self._forget_if_unused(group)
        return result

    async def _classic_join(self, group: ConsumerGroup, member_id: str, *, group_instance_id: str | None,
                            client_id: str, client_host: str, session_timeout_ms: int,
                            rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
                            require_known_member_id: bool, supports_skip_assignment: bool) -> JoinResult:
        """A classic member joins a consumer group that has members (Kafka's
        classicGroupJoinToConsumerGroup); answered once its records are committed."""
        if not (self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms):
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id)
        joined = group.classic_join(member_id, group_instance_id, client_id, client_host, session_timeout_ms,
                                    rebalance_timeout_ms, protocol_type, protocols, require_known_member_id,
                                    self._topics())
        if joined.error:
            return joined
        if group.downgrade:  # it replaced the last consumer-protocol member (a static one)
            error = await self._write(group.group_id, self._downgrade(group))
            return JoinResult(error, joined.member_id) if error else joined
        error = await self._write_modern_group(group)
        return JoinResult(error, joined.member_id) if error else joined

    async def _write_modern_group(self, group: ConsumerGroup | ShareGroup) -> ErrorCode:
        """Write what changed in a consumer or share group; on failure the records go with
        the next."""
        records = group.take_records()
        if not records:
            return ErrorCode.NONE
        error = await self._write(group.group_id, records)
        if error:
            group.write_failed(records)
        return error

    def _classic_in_consumer_group(self, group_id: str) -> ConsumerGroup | None:
        """The consumer group that serves this id's classic requests (it has members)."""
        group = self.consumer_groups.get(group_id)
        return group if group is not None and group.members else None

    async def sync_group(self, group_id: str, **kwargs) -> SyncResult:
        error = self.group_error(group_id)
        if error:
            return SyncResult(error)
        consumer_group = self._classic_in_consumer_group(group_id)
        if consumer_group is not None:
            error, assignment = consumer_group.classic_sync(
                kwargs["member_id"], kwargs["group_instance_id"], kwargs["generation_id"],
                kwargs["protocol_type"], kwargs["protocol_name"], self._topics())
            if error:
                return SyncResult(error)
            return SyncResult(ErrorCode.NONE, kwargs["protocol_type"], kwargs["protocol_name"], assignment)
        group = self._group(group_id)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        future = asyncio.get_running_loop().create_future()
        group.sync(callback=lambda r: future.done() or future.set_result(r), **kwargs)
        return await future

    def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> ErrorCode:
        error = self.group_error(group_id)
        if error:
            return error
        consumer_group = self._classic_in_consumer_group(group_id)
        if consumer_group is not None:
            return consumer_group.classic_heartbeat(member_id, group_instance_id, generation_id)
        group = self._group(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return group.heartbeat(member_id, group_instance_id, generation_id)

    async def leave_group(self, group_id: str, members: list[tuple[str, str | None]]
                          ) -> tuple[ErrorCode, list[ErrorCode]]:
        """(top-level error, one error per leaving member)."""
        error = self.group_error(group_id)
        if error:
            return error, [error] * len(members)
        consumer_group = self._classic_in_consumer_group(group_id)
        if consumer_group is not None:
            errors: list[ErrorCode] = []
            records: list[tuple[bytes, bytes | None]] = []
            for m, i in members:
                if consumer_group.downgrade:  # the rest leave the classic group it became
                    errors.append(self.groups[group_id].leave(m, i))
                    continue
                errors.append(consumer_group.classic_leave(m, i))
                if consumer_group.downgrade:
                    records = self._downgrade(consumer_group)
            if records:
                error = await self._write(group_id, records)
            else:
                error = await self._write_modern_group(consumer_group)
            return error, [error or e for e in errors]
        group = self._group(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID, [ErrorCode.UNKNOWN_MEMBER_ID] * len(members)
        return ErrorCode.NONE, [group.leave(m, i) for m, i in members]

    # -- offsets -----------------------------------------------------------------------------
    async def commit_offsets(self, group_id: str, generation_id: int, member_id: str,
                             group_instance_id: str | None, offsets: list[tuple],
                             api_version: int) -> dict[tuple[str, int], ErrorCode]:
        """Commit (topic, partition, offset, leader_epoch, metadata) tuples; an error per partition."""
        tps = [(o[0], o[1]) for o in offsets]
        error = self.group_error(group_id)
        group = None
        if not error:
            group = self._group(group_id)
            if group is None:
                if generation_id < 0:
                    group = self._group(group_id, create=True)  # a "simple" group: offsets only
                else:
                    # v9+ says so; older clients expect ILLEGAL_GENERATION (Kafka's choice).
                    error = (ErrorCode.GROUP_ID_NOT_FOUND if api_version >= 9
                             else ErrorCode.ILLEGAL_GENERATION)
            elif group_id in self.consumer_groups:
                error, _ = self.consumer_groups[group_id].check_commit(
                    member_id, generation_id, api_version, MEMBER_EPOCH_COMMIT_VERSION)
            else:
                error = group.check_commit(member_id, group_instance_id, generation_id)
        if error:
            return dict.fromkeys(tps, error)
        results, valid = self._valid_offsets(offsets)
        accepted = {tp: value for tp, value in valid}
        entries = [(_record_key(group_id, tp), ot.offset_value(value)) for tp, value in valid]
        if entries:
            error = await self._write(group_id, entries)
            current = self.groups.get(group_id)
            if not error and current is not None:
                current.offsets.update(accepted)
            elif not error:
                error = ErrorCode.NOT_COORDINATOR  # unloaded while writing
            for tp in accepted:
                results[tp] = error
        if group is not None:
            self._forget_if_unused(group)
        return results

    def _valid_offsets(self, offsets: list[tuple]) -> tuple[dict[tuple[str, int], ErrorCode], list]:
        """(errors of the refused partitions, [(tp, OffsetAndMetadata)] of the others):
        OFFSET_METADATA_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION."""
        results: dict[tuple[str, int], ErrorCode] = {}
        valid = []
        now = self.scheduler.now_ms()
        topics = self.broker.image.topics
        for topic, partition, offset, leader_epoch, metadata in offsets:
            metadata = metadata or ""
            t = topics.get(topic)
            if len(metadata) > self.metadata_max_bytes:
                results[(topic, partition)] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            elif t is None or partition not in t.partitions:
                results[(topic, partition)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                valid.append(((topic, partition), ot.OffsetAndMetadata(offset, leader_epoch, metadata, now)))
        return results, valid

    async def commit_txn_offsets(self, group_id: str, producer_id: int, producer_epoch: int,
                                 generation_id: int, member_id: str, group_instance_id: str | None,
                                 offsets: list[tuple]) -> dict[tuple[str, int], ErrorCode]:
        """TxnOffsetCommit: (topic, partition, offset, leader_epoch, metadata) tuples held
        pending in the producer's transaction; an error per partition. KIP-447: a member id
        and generation, when given, must be the group's."""
        tps = [(o[0], o[1]) for o in offsets]
        error = self.group_error(group_id)
        if not error:
            group = self._group(group_id)
            as_member = bool(member_id) or generation_id >= 0 or group_instance_id is not None
            if group is not None and group.state == GroupState.DEAD:
                error = ErrorCode.COORDINATOR_NOT_AVAILABLE
            elif group is not None and as_member and not (generation_id < 0 and group.state == GroupState.EMPTY):
                error = group.check_member(member_id, group_instance_id, generation_id)
            elif group is None and generation_id >= 0:
                error = ErrorCode.ILLEGAL_GENERATION
        if error:
            return dict.fromkeys(tps, error)
        results, valid = self._valid_offsets(offsets)
        accepted = {_record_key(group_id, tp): (group_id, tp, value) for tp, value in valid}
        entries = [(key, ot.offset_value(value)) for key, (_, _, value) in accepted.items()]
        if entries:
            error = await self._write(group_id, entries, producer=(producer_id, producer_epoch))
            p = self.partitions.get(self.partition_for(group_id))
            if not error and p is not None:
                p.pending_txn.setdefault(producer_id, {}).update(accepted)
            elif not error:
                error = ErrorCode.NOT_COORDINATOR
            for _, tp, _ in accepted.values():
                results[tp] = error
        return results

    def fetch_offsets(self, group_id: str, topics: list[tuple[str, list[int]]] | None,
                      member_id: str | None = None, member_epoch: int = -1,
                      ) -> tuple[ErrorCode, dict[str, dict[int, ot.OffsetAndMetadata | None]]]:
        """(group error, topic -> partition -> offset or None); ``topics`` None: all of them.
        A member epoch (OffsetFetch v9+, consumer-protocol members) must be the member's."""
        error = self.group_error(group_id)
        if error:
            return error, {}
        if member_epoch >= 0 or member_id:
            consumer_group = self.consumer_groups.get(group_id)
            if consumer_group is not None:
                error, _ = consumer_group.check_commit(member_id or "", member_epoch, 9, 9)
                if error:
                    return error, {}
        group = self._group(group_id)
        stored = group.offsets if group is not None else {}
        out: dict[str, dict[int, ot.OffsetAndMetadata | None]] = {}
        if topics is None:
            for (topic, partition), value in sorted(stored.items()):
                out.setdefault(topic, {})[partition] = value
        else:
            for topic, partitions in topics:
                out.setdefault(topic, {}).update({p: stored.get((topic, p)) for p in partitions})
        return ErrorCode.NONE, out

    async def delete_offsets(self, group_id: str, tps: list[tuple[str, int]]
                             ) -> tuple[ErrorCode, dict[tuple[str, int], ErrorCode]]:
        """OffsetDelete: refused for topics an active group subscribes to."""
        error = self.group_error(group_id)
        if error:
            return error, {}
        group = self._group(group_id)
        if group is None or group.state == GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND, {}
        results, deleting = {}, []
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None and consumer_group.members:
            subscribed = consumer_group.subscribed_topic_names()
            for tp in tps:
                if tp[0] in subscribed:
                    results[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    deleting.append(tp)
        elif group.state != GroupState.EMPTY:
            if group.protocol_type != "consumer":
                return ErrorCode.NON_EMPTY_GROUP, {}
            for tp in tps:
                if group.subscribed is None or tp[0] in group.subscribed:
                    results[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    deleting.append(tp)
        else:
            deleting = list(tps)
        present = [tp for tp in deleting if tp in group.offsets]
        write_error = ErrorCode.NONE
        if present:
            write_error = await self._write(group_id, [(_record_key(group_id, tp), None)
                                                       for tp in present])
            if not write_error:
                for tp in present:
                    group.offsets.pop(tp, None)
        for tp in deleting:
            results[tp] = write_error
        return ErrorCode.NONE, results

    # -- admin -----------------------------------------------------------------------------
    def describe_group(self, group_id: str) -> tuple[ErrorCode, Group | None]:
        error = self.group_error(group_id)
        if error:
            return error, None
        return ErrorCode.NONE, self._group(group_id)

    def list_groups(self) -> tuple[ErrorCode, list[Group]]:
        """The classic groups (those holding a consumer group's offsets excepted)."""
        if any(p.loading for p in self.partitions.values()):
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, []
        return ErrorCode.NONE, [g for g in self.groups.values() if g.state != GroupState.DEAD
                                and g.group_id not in self.consumer_groups]

    def lag(self, group: Group) -> dict[tuple[str, int], int]:
        """(topic, partition) -> lag of ``group``'s commits on the partitions with a replica
        here: the high watermark (what a consumer can read) minus the committed offset,
        never negative (a commit past the end, a truncation). Partitions without a replica
        here are left out (this node does not know their high watermark). The one
        definition of a group's lag, for /metrics (kafka_consumergroup_lag) and the console."""
        partitions = self.broker.replicas.partitions if self.broker.replicas is not None else {}
        lags = {}
        for tp, committed in group.offsets.items():
            p = partitions.get(tp)
            if p is not None:
                lags[tp] = max(0, p.log.high_watermark - committed.offset)
        return lags

    def list_consumer_groups(self) -> list[ConsumerGroup]:
        return list(self.consumer_groups.values())

    def describe_consumer_group(self, group_id: str) -> tuple[ErrorCode, ConsumerGroup | None]:
        return self._described(group_id, self.consumer_groups)

    def _described(self, group_id: str, groups: dict):
        error = self.group_error(group_id)
        return (error, None) if error else (ErrorCode.NONE, groups.get(group_id))

    def list_share_groups(self) -> list[ShareGroup]:
        return list(self.share_groups.values())

    def describe_share_group(self, group_id: str) -> tuple[ErrorCode, ShareGroup | None]:
        return self._described(group_id, self.share_groups)

    def is_share_group(self, group_id: str) -> bool:
        return group_id in self.share_groups

    # -- share groups (KIP-932) -----------------------------------------------------------------
    async def share_group_heartbeat(self, group_id: str, hb: ShareHeartbeat) -> HeartbeatResult:
        error, message = validate_share(hb, group_id)
        if error:
            return HeartbeatResult(error, message)
        error = self.group_error(group_id)
        if error:
            return HeartbeatResult(error)
        if self._not_share_group(group_id):
            return HeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a share group.")
        group = self.share_groups.get(group_id)
        if group is None:
            if hb.member_epoch != 0:
                return HeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND, f"Share group {group_id} not found.")
            group = self._new_share_group(group_id)
        result = group.heartbeat(hb, self._topics())
        # Answered once its records are committed, as Kafka does.
        error = await self._write_modern_group(group)
        return HeartbeatResult(error) if error else result

    def _new_share_group(self, group_id: str) -> ShareGroup:
        group = self.share_groups[group_id] = ShareGroup(group_id, self.share_config, self.scheduler)
        self.partitions[self.partition_for(group_id)].group_ids.add(group_id)

        def changed() -> None:  # a timer removed a member: store that
            self.tasks.spawn(f"persist share group {group_id}", lambda: self._write_modern_group(group), retries=0)
        group.on_change = changed
        return group

    def _not_share_group(self, group_id: str) -> bool:
        """The id is a consumer group's, or a classic group's with members or offsets."""
        classic = self.groups.get(group_id)
        return group_id in self.consumer_groups or (classic is not None and classic.state != GroupState.DEAD
                                                    and (not classic.is_empty or classic.offsets))

    async def share_group_offsets(self, group_id: str, create: bool
                                  ) -> tuple[ErrorCode, str | None, ShareGroup | None]:
        """The share group whose share-partition offsets AlterShareGroupOffsets (``create``:
        an unknown id becomes an empty share group, as Kafka 4.4's does, written to
        __consumer_offsets like any) or DeleteShareGroupOffsets changes, or why not, with
        Kafka's message: the group errors, GROUP_ID_NOT_FOUND (not a share group, or
        unknown), NON_EMPTY_GROUP (members)."""
        error = self.group_error(group_id)
        if error:
            return error, None, None
        if self._not_share_group(group_id):
            return ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a share group.", None
        group = self.share_groups.get(group_id)
        if group is None:
            if not create:
                return ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.", None
            group = self._new_share_group(group_id)
            group.created_by_offsets()
            error = await self._write_modern_group(group)
            if error:
                return error, None, None
        return group.offsets_alterable(), None, group

    async def _delete_share_group(self, group: ShareGroup) -> ErrorCode:
        """DeleteGroups of a share group: only empty; its share-partition states are
        tombstoned in __share_group_state first (a failure there keeps the group, as
        Kafka's persister delete does), then the group goes."""
        error = group.offsets_alterable()
        if error:
            return error
        errors = await self.broker.share_coordinator.delete_group_states(group.group_id, None)
        error = next((e for e in errors.values() if e), ErrorCode.NONE)
        if error:
            return error
        if group.members:  # a member joined meanwhile: it starts again at share.auto.offset.reset
            return ErrorCode.NON_EMPTY_GROUP
        error = await self._write(group.group_id, [(k, None) for k in group.all_record_keys()])
        if error:
            return error
        if self.share_groups.get(group.group_id) is group:
            del self.share_groups[group.group_id]
            group.shut_down()
            p = self.partitions.get(self.partition_for(group.group_id))
            if p is not None and group.group_id not in self.groups:
                p.group_ids.discard(group.group_id)
        log.info("share_group_deleted", group_id=group.group_id)
        return ErrorCode.NONE

    # -- the consumer group protocol (KIP-848) ------------------------------------------------
    def _compile_regex(self, pattern: str):
        """RE2 syntax, as Kafka's RE2/J; compiled patterns are cached (bounded)."""
        compiled = self._regex_cache.get(pattern)
        if compiled is None:
            compiled = re2.compile(pattern, _RE2_OPTIONS)
            if len(self._regex_cache) >= REGEX_CACHE_SIZE:
                self._regex_cache.clear()
            self._regex_cache[pattern] = compiled
        return compiled

    def _match_topics(self, pattern: str, names: list[str]) -> set[str]:
        """Kafka matches the whole name and never subscribes a regex to internal topics."""
        compiled = self._compile_regex(pattern)
        return {n for n in names if not n.startswith("__") and compiled.fullmatch(n) is not None}

    def _topics(self) -> Topics:
        """The image's topics as the assignors see them, rebuilt only when the image moved
        (every heartbeat asks)."""
        image = self.broker.image
        if self._topics_cache is None or self._topics_cache[0] != (id(image), image.offset):
            racks = {b.node_id: b.rack for b in image.brokers.values() if b.rack}

            def replica_racks(t) -> tuple[frozenset[str], ...]:
                if not racks:
                    return ()
                return tuple(frozenset(racks[r] for r in t.partitions[p].replicas if r in racks)
                             if p in t.partitions else frozenset() for p in range(len(t.partitions)))
            self._topics_cache = ((id(image), image.offset), Topics(
                {name: TopicInfo(t.uuid, len(t.partitions), replica_racks(t)) for name, t in image.topics.items()}))
        return self._topics_cache[1]

    def consumer_config_of(self, group_id: str) -> ConsumerGroupConfig:
        """The broker's group.consumer.* settings with the group's own configs (resource type
        GROUP, in the metadata image) over them."""
        overrides = self.broker.image.configs.get((GROUP_RESOURCE, group_id))
        if not overrides:
            return self.consumer_config
        config = self.consumer_config
        session = overrides.get("consumer.session.timeout.ms")
        interval = overrides.get("consumer.heartbeat.interval.ms")
        return dataclasses.replace(
            config, session_timeout_ms=int(session) if session is not None else config.session_timeout_ms,
            heartbeat_interval_ms=int(interval) if interval is not None else config.heartbeat_interval_ms)

    async def consumer_group_heartbeat(self, group_id: str, hb: Heartbeat, version: int) -> HeartbeatResult:
        error, message = validate(hb, group_id, version, self.consumer_config.assignors,
                                  self._compile_regex)
        if error:
            return HeartbeatResult(error, message)
        error = self.group_error(group_id)
        if error:
            return HeartbeatResult(error)
        classic = self.groups.get(group_id)
        if group_id in self.share_groups:
            return HeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
        upgrade: list[tuple[bytes, bytes | None]] = []
        if classic is not None and not classic.is_empty:
            if not (hb.member_epoch == 0 and self._may_upgrade(classic)):
                return HeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
            self._upgrade(classic)
            upgrade = [(ot.group_key(group_id), None)]  # the classic group's metadata goes
        group = self.consumer_groups.get(group_id)
        if group is None:
            if hb.member_epoch != 0:  # Kafka 4.4's answer (held against it)
                return HeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {group_id} not found.")
            group = self._new_consumer_group(group_id)
        group.config = self.consumer_config_of(group_id)
        result = group.heartbeat(hb, self._topics())
        if group.downgrade:  # it was the last consumer-protocol member: answered once written
            error = await self._write(group_id, self._downgrade(group))
            return HeartbeatResult(error) if error else result
        group.write_failed(upgrade)  # written first, with the group's records
        # Answered once its records are committed, as Kafka does.
        error = await self._write_modern_group(group)
        return HeartbeatResult(error) if error else result

    def _may_upgrade(self, classic: Group) -> bool:
        """Kafka's validateOnlineUpgrade: the policy allows it, the group uses the consumer
        protocol type, and its members fit in a consumer group."""
        if not self.consumer_config.upgrade_enabled:
            log.info("classic_group_not_upgraded", group_id=classic.group_id, reason="migration policy")
            return False
        if classic.protocol_type != CONSUMER_PROTOCOL_TYPE or classic.protocol_name is None:
            return False
        return len(classic.members) <= self.consumer_config.max_size

    def _upgrade(self, classic: Group) -> None:
        """Make a classic group with members a consumer group (Kafka's convertToConsumerGroup):
        its waiting JoinGroups and SyncGroups get REBALANCE_IN_PROGRESS (they rejoin, into the
        consumer group), its members become classic members of the consumer group."""
        members = list(classic.members.values())
        generation, protocol_name = classic.generation_id, classic.protocol_name or ""
        classic.clear_members(ErrorCode.REBALANCE_IN_PROGRESS)
        stale = self.consumer_groups.pop(classic.group_id, None)
        if stale is not None:
            stale.shut_down()
        group = ConsumerGroup.from_classic(classic.group_id, self.consumer_config, self.scheduler,
                                           self._match_topics, generation, protocol_name, members,
                                           self._topics())
        self._adopt(group)

    def _downgrade(self, group: ConsumerGroup) -> list[tuple[bytes, bytes | None]]:
        """The consumer group's last consumer-protocol member left, or a classic static member
        replaced it (Kafka's convertToClassicGroup): its classic members become the classic
        group's, which rebalances at once after a departure (they rejoin with their member
        ids: their generation is the group's). Returns the records to write: the consumer group's tombstones, then the
        classic group's metadata, so that a replay ends with the classic group."""
        group_id = group.group_id
        classic = self._group(group_id, create=True)
        records = group.to_classic(classic, self._topics())
        if self.consumer_groups.get(group_id) is group:
            del self.consumer_groups[group_id]
        records.append((ot.group_key(group_id), ot.group_value(classic.to_record())))
        classic.start_session_timers()
        if group.downgrade_rebalances:
            classic.prepare_rebalance(f"downgrade of group {group_id} from consumer to classic: "
                                      "its last consumer-protocol member left")
        return records

    def _new_consumer_group(self, group_id: str) -> ConsumerGroup:
        return self._adopt(ConsumerGroup(group_id, self.consumer_config, self.scheduler, self._match_topics))

    def _adopt(self, group: ConsumerGroup) -> ConsumerGroup:
        group_id = group.group_id
        self.consumer_groups[group_id] = group
        self._group(group_id, create=True)  # holds its offsets

        def changed() -> None:  # a timer removed a member: store that
            downgrade = self._downgrade(group) if group.downgrade else None

            async def run():
                if downgrade is None:
                    await self._write_modern_group(group)
                elif error := await self._write(group_id, downgrade):
                    log.warning("consumer_group_downgrade_not_written", group_id=group_id, error=error.name)
            self.tasks.spawn(f"persist consumer group {group_id}", run, retries=0)
        group.on_change = changed
        return group

    async def delete_group(self, group_id: str) -> ErrorCode:
        error = self.group_error(group_id)
        if error:
            return error
        share_group = self.share_groups.get(group_id)
        if share_group is not None:
            return await self._delete_share_group(share_group)
        group = self._group(group_id)
        if group is None or group.state == GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        consumer_group = self.consumer_groups.get(group_id)
        if group.state != GroupState.EMPTY or (consumer_group is not None and consumer_group.members):
            return ErrorCode.NON_EMPTY_GROUP
        return await self._remove_group(group, list(group.offsets))

    async def _remove_group(self, group: Group, tps: list[tuple[str, int]]) -> ErrorCode:
        """Tombstone these offsets and the group's metadata, then forget the group."""
        entries = [(_record_key(group.group_id, tp), None) for tp in tps]
        entries.append((ot.group_key(group.group_id), None))
        consumer_group = self.consumer_groups.get(group.group_id)
        if consumer_group is not None:
            entries += [(k, None) for k in consumer_group.all_record_keys()]
        self._drop_group(group)
        return await self._write(group.group_id, entries)

    # -- expiry ------------------------------------------------------------------------------
    async def _expire_loop(self) -> None:
        await self._every(self.retention_check_ms, self.expire_offsets, "offsets_expiry_failed")

    async def expire_offsets(self) -> int:
        """One expiry pass over the loaded groups; returns the offsets removed."""
        now = self.scheduler.now_ms()
        removed = 0
        for group in list(self.groups.values()):
            if self.group_error(group.group_id):
                continue
            expired = group.expired_offsets(now, self.retention_ms)
            consumer_group = self.consumer_groups.get(group.group_id)
            if consumer_group is not None and consumer_group.members:
                # Kafka keeps the offsets of topics an active consumer group subscribes to.
                subscribed = consumer_group.subscribed_topic_names()
                expired = [tp for tp in expired if tp[0] not in subscribed]
            if group.state == GroupState.EMPTY and len(expired) == len(group.offsets) \
                    and not group.pending_members \
                    and (consumer_group is None or not consumer_group.members):
                if not await self._remove_group(group, expired):
                    removed += len(expired)
                    log.info("group_expired", group_id=group.group_id, offsets=len(expired))
            elif expired:
                error = await self._write(group.group_id, [(_record_key(group.group_id, tp), None)
                                                           for tp in expired])
                if not error:
                    for tp in expired:
                        group.offsets.pop(tp, None)
                    removed += len(expired)
        return removed


def _consumer_config(config) -> ConsumerGroupConfig:
    names = []
    for configured in config["group.consumer.assignors"]:
        name = asg.assignor_name(configured)
        if name is None:
            raise ConfigError(f"group.consumer.assignors: unknown assignor {configured!r}; "
                              f"expected {', '.join(asg.ASSIGNORS)} or Kafka's class names")
        names.append(name)
    if not names:
        raise ConfigError("group.consumer.assignors must name at least one assignor")
    return ConsumerGroupConfig(
        session_timeout_ms=config["group.consumer.session.timeout.ms"],
        heartbeat_interval_ms=config["group.consumer.heartbeat.interval.ms"],
        max_size=config["group.consumer.max.size"], assignors=tuple(names),
        migration_policy=config["group.consumer.migration.policy"], classic_max_size=config["group.max.size"])

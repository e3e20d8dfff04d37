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
- Expiry (offsets.retention.minutes, checked every offsets.retention.check.interval.ms):
  Kafka's rule (see ``Group.expired_offsets``); expired offsets get tombstones, and an
  empty group left without offsets is removed.
"""

import asyncio
import time

import structlog

from odradek.broker.groups import offsets_topic as ot
from odradek.broker.groups.group import Group, GroupConfig, GroupState, JoinResult, SyncResult
from odradek.protocol import records as rec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.controller import NewTopic
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

# Kafka's mapping of append failures to what a group client understands.
_WRITE_ERRORS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
}


class AsyncioScheduler:
    """Wall-clock time and event-loop timers for the group state machines."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def call_later(self, delay_ms: int, callback):
        return asyncio.get_running_loop().call_later(max(delay_ms, 0) / 1000, callback)


class OffsetsPartition:
    """One led partition of __consumer_offsets."""

    def __init__(self, partition):
        self.partition = partition
        self.index: int = partition.index
        self.loading = True
        self.task: asyncio.Task | None = None
        self.group_ids: set[str] = set()


def _record_key(group_id: str, tp: tuple[str, int]) -> bytes:
    return ot.offset_key(group_id, tp[0], tp[1])


class GroupCoordinator:
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
        self.partitions: dict[int, OffsetsPartition] = {}
        self.tasks = Supervisor("group_coordinator")
        self.held = True  # see hold()

    @property
    def replicas(self):
        return self.broker.replicas

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Follow leadership (before the replica manager starts, so no partition is missed)."""
        self.broker.replicas.leadership_listeners.append(self.on_leadership)
        self.tasks.spawn("expire_offsets", self._expire_loop)

    async def close(self) -> None:
        for p in list(self.partitions.values()):
            self._unload(p)
        await self.tasks.close()

    # -- the topic and who coordinates -------------------------------------------------
    def partition_for(self, group_id: str) -> int:
        return ot.partition_for(group_id, self.num_partitions)

    async def ensure_offsets_topic(self, wait_s: float) -> None:
        """Create ``__consumer_offsets`` if it does not exist, waiting at most ``wait_s`` for
        it (the creation goes on; FindCoordinator answers not available meanwhile). A node
        still catching up on the metadata log cannot tell (its image may lack the topic),
        and may have no controller to ask: it leaves it."""
        if OFFSETS_TOPIC in self.broker.image.topics or not self.broker.metadata_log.caught_up.is_set():
            return
        live = sum(1 for b in self.broker.image.brokers.values() if not b.fenced)
        rf = max(1, min(self.replication_factor, live))
        await asyncio.wait({self.broker.create_topic_in_background(NewTopic(
            OFFSETS_TOPIC, self.num_partitions, rf, configs={
                **OFFSETS_TOPIC_CONFIGS,
                "segment.bytes": str(self.broker.config["offsets.topic.segment.bytes"])}))},
            timeout=wait_s)

    def coordinator_node(self, group_id: str):
        """The broker registration of the group's coordinator, or None if it has none now."""
        topic = self.broker.image.topics.get(OFFSETS_TOPIC)
        if topic is None:
            return None
        p = topic.partitions.get(self.partition_for(group_id))
        node = self.broker.image.brokers.get(p.leader) if p is not None else None
        return node if node is not None and not node.fenced else None

    def group_error(self, group_id: str | None) -> ErrorCode:
        """The errors every group request shares: a bad id, not the coordinator, still loading."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        p = self.partitions.get(self.partition_for(group_id))
        if p is None:
            return ErrorCode.NOT_COORDINATOR
        if p.loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

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
        p = self.partitions.get(self.partition_for(group.group_id))
        if p is not None:
            p.group_ids.discard(group.group_id)

    def _forget_if_unused(self, group: Group) -> None:
        """A group created by a join that failed at once leaves no trace."""
        if (group.state == GroupState.EMPTY and not group.members and not group.pending_members
                and not group.offsets and group.generation_id == 0):
            self._drop_group(group)

    # -- leadership, loading -----------------------------------------------------------
    def hold(self, held: bool) -> None:
        """Coordinate the groups of the partitions this node leads (True), or none (False)."""
        if held == self.held:
            return
        self.held = held
        if not held:
            for p in list(self.partitions.values()):
                self._unload(p)
            return
        for partition in self.replicas.partitions.values():
            if partition.topic == OFFSETS_TOPIC and partition.isr_state is not None:
                self.on_leadership(partition, True)

    def on_leadership(self, partition, is_leader: bool) -> None:
        if partition.topic != OFFSETS_TOPIC:
            return
        current = self.partitions.get(partition.index)
        if is_leader and current is None and self.held:
            p = OffsetsPartition(partition)
            self.partitions[partition.index] = p
            p.task = self.tasks.spawn(f"load {OFFSETS_TOPIC}-{p.index}", lambda: self._load(p))
        elif not is_leader and current is not None:
            self._unload(current)

    def _unload(self, p: OffsetsPartition) -> None:
        self.partitions.pop(p.index, None)
        if p.task is not None and not p.task.done():
            p.task.cancel()
        for group_id in p.group_ids:
            group = self.groups.pop(group_id, None)
            if group is not None:
                group.shut_down(ErrorCode.NOT_COORDINATOR)
        log.info("offsets_partition_unloaded", partition=p.index, groups=len(p.group_ids))

    async def _load(self, p: OffsetsPartition) -> None:
        started = time.monotonic()
        log_ = p.partition.log
        offset, end = log_.log_start_offset, log_.log_end_offset
        records = 0
        # A failure propagates: the supervisor logs it and loads the partition again.
        while offset < end:
            read = self.replicas.read(OFFSETS_TOPIC, p.index, offset, LOAD_CHUNK_BYTES,
                                      min_one=True, up_to_high_watermark=False)
            with read:
                data = read.read_bytes()
            if not data:
                break
            for _, key, value in ot.iter_records(data):
                records += 1
                self._replay(p, key, value)
            for _, header in rec.iter_batches(data, None, produced=False):
                offset = header.next_offset
            await asyncio.sleep(0)  # loading is background work: let requests through
        for group_id in p.group_ids:
            self.groups[group_id].start_session_timers()
        p.loading = False
        (log.info if records else log.debug)("offsets_partition_loaded", partition=p.index, groups=len(p.group_ids),
                 records=records, seconds=round(time.monotonic() - started, 3))

    def _replay(self, p: OffsetsPartition, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the log to the partition's state."""
        if key is None:
            return
        try:
            parsed = ot.parse_key(key)
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
                    group = self.groups.get(group_id)
                    if group is not None:
                        self._drop_group(group)
                else:
                    self._group(group_id, create=True).load_record(ot.parse_group_value(value))
        except ot.RecordFormatError as e:
            log.warning("offsets_record_skipped", partition=p.index, reason=str(e))

    # -- writing -----------------------------------------------------------------------
    async def _write(self, group_id: str, entries: list[tuple[bytes, bytes | None]]) -> ErrorCode:
        """Append records for this group's partition; NONE once committed."""
        p = self.partitions.get(self.partition_for(group_id))
        if p is None:
            return ErrorCode.NOT_COORDINATOR
        now = self.scheduler.now_ms()
        batch = rec.build_batch([rec.Record(k, v, (), now) for k, v in entries])
        try:
            partition, result = self.replicas.append_records(OFFSETS_TOPIC, p.index, batch)
        except KafkaError as e:
            log.warning("offsets_write_failed", partition=p.index, error=e.code.name)
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

    async def sync_group(self, group_id: str, **kwargs) -> SyncResult:
        error = self.group_error(group_id)
        if error:
            return SyncResult(error)
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
        group = self._group(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return group.heartbeat(member_id, group_instance_id, generation_id)

    def leave_group(self, group_id: str, members: list[tuple[str, str | None]]
                    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """(top-level error, one error per leaving member)."""
        error = self.group_error(group_id)
        if error:
            return error, [error] * len(members)
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
            else:
                error = group.check_commit(member_id, group_instance_id, generation_id)
        if error:
            return dict.fromkeys(tps, error)
        results: dict[tuple[str, int], ErrorCode] = {}
        entries, accepted = [], {}
        now = self.scheduler.now_ms()
        topics = self.broker.image.topics
        for topic, partition, offset, leader_epoch, metadata in offsets:
            metadata = metadata or ""
            if len(metadata) > self.metadata_max_bytes:
                results[(topic, partition)] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                continue
            t = topics.get(topic)
            if t is None or partition not in t.partitions:
                results[(topic, partition)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            value = ot.OffsetAndMetadata(offset, leader_epoch, metadata, now)
            accepted[(topic, partition)] = value
            entries.append((_record_key(group_id, (topic, partition)), ot.offset_value(value)))
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

    def fetch_offsets(self, group_id: str, topics: list[tuple[str, list[int]]] | None
                      ) -> tuple[ErrorCode, dict[str, dict[int, ot.OffsetAndMetadata | None]]]:
        """(group error, topic -> partition -> offset or None); ``topics`` None: all of them."""
        error = self.group_error(group_id)
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
        if group.state != GroupState.EMPTY:
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
        if any(p.loading for p in self.partitions.values()):
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, []
        return ErrorCode.NONE, [g for g in self.groups.values() if g.state != GroupState.DEAD]

    async def delete_group(self, group_id: str) -> ErrorCode:
        error = self.group_error(group_id)
        if error:
            return error
        group = self._group(group_id)
        if group is None or group.state == GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group.state != GroupState.EMPTY:
            return ErrorCode.NON_EMPTY_GROUP
        return await self._remove_group(group, list(group.offsets))

    async def _remove_group(self, group: Group, tps: list[tuple[str, int]]) -> ErrorCode:
        """Tombstone these offsets and the group's metadata, then forget the group."""
        entries = [(_record_key(group.group_id, tp), None) for tp in tps]
        entries.append((ot.group_key(group.group_id), None))
        self._drop_group(group)
        return await self._write(group.group_id, entries)

    # -- expiry ------------------------------------------------------------------------------
    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retention_check_ms / 1000)
            try:
                await self.expire_offsets()
            except Exception:
                log.exception("offsets_expiry_failed")

    async def expire_offsets(self) -> int:
        """One expiry pass over the loaded groups; returns the offsets removed."""
        now = self.scheduler.now_ms()
        removed = 0
        for group in list(self.groups.values()):
            if self.group_error(group.group_id):
                continue
            expired = group.expired_offsets(now, self.retention_ms)
            if group.state == GroupState.EMPTY and len(expired) == len(group.offsets) \
                    and not group.pending_members:
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

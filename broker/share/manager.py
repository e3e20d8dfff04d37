"""The share partitions this node leads and the share sessions of its ShareFetch and
ShareAcknowledge clients (Kafka's SharePartitionManager): the I/O around the pure
``SharePartition`` and ``ShareSessions``.

A share partition is created at the first fetch of a group from a topic partition,
starting where the group's share.auto.offset.reset says (latest: the high watermark,
as Kafka's default; earliest: the log start offset; by_duration:<ISO-8601 duration>: the
first record whose timestamp is at or after now minus the duration, as ListOffsets by
timestamp finds it; with none yet, the fetch answers OFFSET_NOT_AVAILABLE for the
partition and the next fetch looks again, as Kafka 4.4 does). share.isolation.level
read_committed bounds what is read by the last stable offset. Its settings are the group's
configs (IncrementalAlterConfigs on resource type GROUP) over the broker's
group.share.* keys: share.record.lock.duration.ms, share.delivery.count.limit and
group.share.partition.max.record.locks. Acquisition locks expire lazily: every fetch
and acknowledgement first releases the locks past their deadline (a fetch waiting
for data wakes at the next deadline), so no timer runs per record.

The state is held in memory on the partition leader and made durable at the share
coordinator (broker.share.coordinator, ``__share_group_state``): a new leader (failover,
restart, a new leader epoch) first loads the last state written (meanwhile the partition
has nothing to fetch and acknowledgements of it answer INVALID_RECORD_STATE, as nothing
is acquired there yet); without one it starts at share.auto.offset.reset and writes that
start, fencing the previous leader. Every acknowledgement is written (acks=all) before it
is answered, and every acquisition before its records are sent, so an acknowledged
record is never handed out again and delivery counts survive; records acquired when the
leader died are available again. Expired locks and released sessions are written with
the next change (acquired records are persisted as available anyway).
"""

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field

import structlog

from odradek.broker.handlers.list_offsets import lookup
from odradek.broker.share.coordinator import ShareState
from odradek.broker.share.partition import (
    AcknowledgeType,
    Acquired,
    AcquireMode,
    RecordState,
    SharePartition,
)
from odradek.broker.share.session import ShareSession, ShareSessions
from odradek.protocol.errors import ErrorCode, KafkaError

log = structlog.get_logger(__name__)

LOAD_RETRY_S = 0.2  # a share partition's state not readable yet (coordinator moving)
GROUP_RESOURCE = 32  # ConfigResource.Type.GROUP
AUTO_OFFSET_RESET = "share.auto.offset.reset"
LOCK_DURATION = "share.record.lock.duration.ms"
DELIVERY_COUNT_LIMIT = "share.delivery.count.limit"
ISOLATION_LEVEL = "share.isolation.level"
# Kafka's words for INVALID_RECORD_STATE on an acknowledgement
NOT_OWNER = "Member is not the owner of batch record"
NOT_ACQUIRED = "The batch cannot be acknowledged. The batch is not in the acquired state."
RENEW_DISABLED = "Renewing acquisition locks is not enabled for the group."
RENEW_ENABLE = "share.renew.acknowledge.enable"


BY_DURATION = "by_duration:"
# java.time.Duration.parse's grammar (case-insensitive): [-+]PnDTnHnMn.nS, each part signed
_ISO_DURATION = re.compile(r"([-+]?)P(?:([-+]?[0-9]+)D)?"
                           r"(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?",
                           re.IGNORECASE)


def duration_ms(text: str) -> int | None:
    """An ISO-8601 duration (PnDTnHnMn.nS, as java.time.Duration.parse reads it) in
    milliseconds, or None if ``text`` is not one."""
    m = _ISO_DURATION.fullmatch(text)
    if m is None:
        return None
    sign, days, t, hours, minutes, seconds, fraction = m.groups()
    if (days, hours, minutes, seconds) == (None, None, None, None) or t is not None and len(t) == 1:
        return None  # "P" or "PT" alone, or a T with nothing after it
    nanos = int((fraction or "").ljust(9, "0")) * (-1 if (seconds or "").startswith("-") else 1)
    total_s = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    if abs(total_s) >= 2**63:
        return None  # beyond java.time.Duration (an ArithmeticException there)
    return (total_s * 10**9 + nanos) * (-1 if sign == "-" else 1) // 10**6


def reset_error(key: str, value: str) -> str | None:
    """Kafka 4.4's words for a bad share.auto.offset.reset: earliest, latest or
    by_duration: followed by a duration that is not negative."""
    if value in ("earliest", "latest"):
        return None
    if value.startswith(BY_DURATION):
        ms = duration_ms(value.removeprefix(BY_DURATION))
        if ms is not None and ms >= 0:
            return None
    return (f"Invalid value {value} for configuration {key}: Invalid value `{value}` for configuration "
            f"{key}. The value must be either 'earliest', 'latest' or of the format "
            "'by_duration:<PnDTnHnMn.nS>'.")


def _why_not_acknowledged(sp: SharePartition, member_id: str, first: int, last: int, types: list[int]) -> str:
    """Renewals are off for the group, another member holds a record of the batch, or
    one is not acquired at all."""
    if not sp.renew_enabled and AcknowledgeType.RENEW in types:
        return RENEW_DISABLED
    for offset in range(first, last + 1):
        record = sp.records.get(offset)
        if record is not None and record.state is RecordState.ACQUIRED and record.member_id != member_id:
            return NOT_OWNER
    return NOT_ACQUIRED


def group_config_error(broker_config, changes: dict[str, str | None]) -> str | None:
    """Why these share-group config values are refused (the controller answers it as
    INVALID_CONFIG), or None: the values Odradek's share groups serve, within the broker's
    bounds. Kafka's group config names and types are config.validate_group_configs' job."""
    for key, value in changes.items():
        if value is None:
            continue
        if key == AUTO_OFFSET_RESET:
            problem = reset_error(key, value)
            if problem:
                return problem
        elif key == ISOLATION_LEVEL:
            if value not in ("read_committed", "read_uncommitted"):
                return (f"Invalid value {value} for configuration {key}: "
                        "String must be one of: read_committed, read_uncommitted")
        elif key in (LOCK_DURATION, DELIVERY_COUNT_LIMIT):
            try:
                number = int(value)
            except ValueError:
                return f"Invalid value {value} for configuration {key}: Not a number of type INT"
            if key == LOCK_DURATION:
                low = broker_config["group.share.min.record.lock.duration.ms"]
                high = broker_config["group.share.max.record.lock.duration.ms"]
            else:
                low, high = 2, 10
            if not low <= number <= high:
                return f"Invalid value {value} for configuration {key}: must be in [{low}, {high}]"
    return None


@dataclass(slots=True)
class Held:
    """A share partition this node leads, as loaded for one leader epoch."""
    leader_epoch: int  # written with each state: it fences an earlier leader's writes
    sp: SharePartition
    state_epoch: int  # as loaded (ShareState.state_epoch): AlterShareGroupOffsets moves it on
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one write at a time


class ShareManager:
    def __init__(self, broker):
        self.broker = broker
        config = broker.config
        self.sessions = ShareSessions(config["group.share.max.share.sessions"])
        self.partitions: dict[tuple[str, uuid.UUID, int], Held] = {}
        self.loading: dict[tuple[str, uuid.UUID, int], asyncio.Task] = {}
        # why the last load found no start (by_duration with no record that recent): told once
        self.load_errors: dict[tuple[str, uuid.UUID, int], ErrorCode] = {}

    @staticmethod
    def now_ms() -> int:
        return int(time.monotonic() * 1000)

    def group_configs(self, group_id: str) -> dict[str, str]:
        return self.broker.image.configs.get((GROUP_RESOURCE, group_id), {})

    def lock_duration_ms(self, group_id: str) -> int:
        value = self.group_configs(group_id).get(LOCK_DURATION)
        return int(value) if value is not None else self.broker.config["group.share.record.lock.duration.ms"]

    def read_committed(self, group_id: str) -> bool:
        """share.isolation.level=read_committed: records up to the last stable offset only,
        those of aborted transactions never handed out."""
        return self.group_configs(group_id).get(ISOLATION_LEVEL) == "read_committed"

    def partition(self, group_id: str, topic: str, topic_id: uuid.UUID, index: int) -> SharePartition | None:
        """The group's share partition of a topic partition this node leads (the caller has
        checked leadership), or None while its state loads from the share coordinator
        (started here at the first call of a leader epoch)."""
        p = self.broker.replicas.leader_partition(topic, index)
        key = (group_id, topic_id, index)
        known = self.partitions.get(key)
        if known is None or known.leader_epoch != p.leader_epoch:
            error = self.load_errors.pop(key, None)
            if error is not None:
                raise KafkaError(error)
            task = self.loading.get(key)
            if task is None or task.done():
                self.loading[key] = asyncio.get_running_loop().create_task(
                    self._load(group_id, topic, topic_id, index, p.leader_epoch))
            return None
        sp = known.sp
        sp.lock_duration_ms = self.lock_duration_ms(group_id)  # the group's config may change
        sp.renew_enabled = self.group_configs(group_id).get(RENEW_ENABLE, "true").lower() != "false"
        sp.move_start(p.log.log_start_offset)
        sp.expire_locks(self.now_ms())
        return sp

    def _still_leader(self, topic: str, index: int, epoch: int) -> bool:
        try:
            return self.broker.replicas.leader_partition(topic, index).leader_epoch == epoch
        except KafkaError:
            return False

    async def _load(self, group_id: str, topic: str, topic_id: uuid.UUID, index: int, epoch: int) -> None:
        """Read the share partition's last state (retried while the coordinator is not
        available), or start at share.auto.offset.reset; then write it under this leader
        epoch, which fences the previous leader's writes."""
        coordinator = self.broker.share_coordinator
        configs = self.group_configs(group_id)
        limit = configs.get(DELIVERY_COUNT_LIMIT)
        settings = {"delivery_count_limit": int(limit) if limit is not None
                    else self.broker.config["group.share.delivery.count.limit"],
                    "max_record_locks": self.broker.config["group.share.partition.max.record.locks"]}
        try:
            while self._still_leader(topic, index, epoch):
                error, state = await coordinator.read(group_id, topic_id, index)
                if not error:
                    log_ = self.broker.replicas.leader_partition(topic, index).log
                    if state is not None:
                        sp = SharePartition.recovered(state.start_offset, list(state.batches), **settings)
                    else:
                        sp = SharePartition(await self._reset_offset(topic, index, configs), **settings)
                    sp.move_start(log_.log_start_offset)
                    held = Held(epoch, sp, state.state_epoch if state is not None else 0)
                    error = await coordinator.write(group_id, topic_id, index, self._state(held),
                                                    create=state is None)
                    if not error and self._still_leader(topic, index, epoch):
                        self.partitions[(group_id, topic_id, index)] = held
                        log.info("share_partition_loaded", group_id=group_id, topic=topic, partition=index,
                                 start_offset=sp.start_offset, recovered=state is not None)
                        return
                log.info("share_partition_load_retry", group_id=group_id, topic=topic, partition=index,
                         error=error.name)
                await asyncio.sleep(LOAD_RETRY_S)
        except KafkaError as e:  # leadership moved meanwhile, or no start by duration
            if e.code == ErrorCode.OFFSET_NOT_AVAILABLE:
                self.load_errors[(group_id, topic_id, index)] = e.code
            log.info("share_partition_load_abandoned", group_id=group_id, topic=topic, partition=index,
                     error=e.code.name)
        except Exception:
            log.exception("share_partition_load_failed", group_id=group_id, topic=topic, partition=index)
        finally:
            key = (group_id, topic_id, index)
            if self.loading.get(key) is asyncio.current_task():
                del self.loading[key]

    async def _reset_offset(self, topic: str, index: int, configs: dict[str, str]) -> int:
        """Where a share partition without state starts (share.auto.offset.reset)."""
        partition = self.broker.replicas.leader_partition(topic, index)
        reset = configs.get(AUTO_OFFSET_RESET, "latest")
        if reset == "earliest":
            return partition.log.log_start_offset
        if not reset.startswith(BY_DURATION):
            return partition.log.high_watermark
        # (never below 0: negative timestamps are ListOffsets' special queries)
        since = max(0, int(time.time() * 1000) - (duration_ms(reset.removeprefix(BY_DURATION)) or 0))
        # reads the time index and a batch: disk I/O, off the event loop
        _, offset, _ = await asyncio.get_running_loop().run_in_executor(None, lookup, partition, since)
        if offset < 0:
            raise KafkaError(ErrorCode.OFFSET_NOT_AVAILABLE,
                             f"Offset for timestamp {since} not found for {topic}-{index}")
        return offset

    @staticmethod
    def _state(held: Held) -> ShareState:
        sp = held.sp
        return ShareState(held.leader_epoch, sp.start_offset, tuple(sp.state_batches()), held.state_epoch)

    async def persist(self, sp: SharePartition) -> ErrorCode:
        """Write ``sp``'s state to the share coordinator and wait for it (acks=all). Writes
        of one share partition go one at a time, each with the state as it is then, so
        the last written is the latest."""
        found = next(((k, h) for k, h in self.partitions.items() if h.sp is sp), None)
        if found is None:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        key, held = found
        group_id, topic_id, index = key
        async with held.write_lock:
            error = await self.broker.share_coordinator.write(group_id, topic_id, index, self._state(held))
        if error == ErrorCode.FENCED_STATE_EPOCH and self.partitions.get(key) is held:
            # The state epoch moved on at the share coordinator since this state was
            # loaded (offsets altered, or the state deleted and made again): load it.
            self._drop(key)
        return error

    def evict(self, group_id: str, topic_ids: set[uuid.UUID] | None) -> None:
        """Forget the group's share partitions (of ``topic_ids``; None: all): their state
        was altered or deleted at the share coordinator; the next fetch loads it again."""
        for key in [k for k in {*self.partitions, *self.loading}
                    if k[0] == group_id and (topic_ids is None or k[1] in topic_ids)]:
            self._drop(key)

    def _drop(self, key: tuple[str, uuid.UUID, int]) -> None:
        self.partitions.pop(key, None)
        task = self.loading.pop(key, None)
        if task is not None:
            task.cancel()

    async def acknowledge(self, sp: SharePartition, member_id: str, batches: list[tuple[int, int, list[int]]],
                          renew_allowed: bool = False) -> tuple[ErrorCode, str | None]:
        """Every batch of one partition, persisted before the answer; the first error
        (with Kafka's words for INVALID_RECORD_STATE) is the partition's answer.
        ``renew_allowed``: a v2 request with IsRenewAck (RENEW is INVALID_REQUEST otherwise)."""
        now = self.now_ms()
        error, message = ErrorCode.NONE, None
        changed = False
        for first, last, types in batches:
            result = sp.acknowledge(member_id, first, last, types, now, renew_allowed)
            changed = changed or not result
            if result and not error:
                error = result
                if result == ErrorCode.INVALID_RECORD_STATE:
                    message = _why_not_acknowledged(sp, member_id, first, last, types)
        if changed:
            written = await self.persist(sp)
            if written and not error:
                error = written
        return error, message

    async def acquire(self, sp: SharePartition, member_id: str, batches: list[tuple[int, int]],
                      max_records: int, mode: AcquireMode = AcquireMode.BATCH_OPTIMIZED,
                      skipped: frozenset[int] = frozenset()) -> tuple[ErrorCode, list[Acquired]]:
        """Acquire, then persist the delivery counts before the records go out; if that
        fails nothing is handed out (the write's error is the partition's). Skipped
        batches archived with nothing acquired are written too, best effort (they would
        be read and skipped again)."""
        window = (sp.start_offset, sp.end_offset)
        got = sp.acquire(member_id, batches, max_records, self.now_ms(), mode, skipped)
        if not got:
            if (sp.start_offset, sp.end_offset) != window:
                await self.persist(sp)
            return ErrorCode.NONE, got
        error = await self.persist(sp)
        if error:
            sp.undo_acquire(member_id, got)
            return error, []
        return ErrorCode.NONE, got

    def release_session(self, session: ShareSession) -> None:
        """A closed or replaced session: what its member held in its partitions goes back."""
        for (group_id, topic_id, index), held in self.partitions.items():
            if group_id == session.group_id and (topic_id, index) in session.partitions:
                held.sp.release_member(session.member_id)

    def connection_closed(self, connection) -> None:
        """The sessions opened over ``connection`` end; their members' records go back."""
        for session in self.sessions.owned_by(connection):
            self.release_session(session)
            self.sessions.close(session)

    def next_lock_deadline_ms(self, group_id: str) -> int | None:
        deadlines = [d for (g, _, _), held in self.partitions.items() if g == group_id
                     for d in (held.sp.next_lock_deadline_ms(),) if d is not None]
        return min(deadlines, default=None)

    def on_metadata(self, records: list) -> None:
        """Drop the share partitions of topics deleted or partitions this node no longer
        leads (their state would be stale if leadership came back: it is rebuilt then)."""
        image = self.broker.image
        for key in list(self.partitions):
            _, topic_id, index = key
            topic = image.topics_by_id.get(str(topic_id))
            p = topic.partitions.get(index) if topic is not None else None
            if p is None or p.leader != self.broker.node_id:
                self._drop(key)

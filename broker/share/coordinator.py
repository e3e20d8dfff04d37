"""The share coordinator: durable share-partition state in ``__share_group_state``
(KIP-932's share coordinator, in the group coordinator's design: broker.groups.coordinator).

Why: a share partition's state (its start offset, which offsets are acknowledged or
archived, delivery counts) lives in the memory of the topic partition's leader. Without
a durable copy a new leader (failover, restart) would start again at
share.auto.offset.reset and hand out acknowledged records again. So the share-partition
leader writes the state to the share coordinator, waiting for the ISR (acks=all), before
it answers an acknowledgement or hands out acquired records, and a new leader reads it
before it serves the partition.

- Key: ``group:topicId:partition``; its coordinator is the leader of partition
  ``abs(key.hashCode) % share.coordinator.state.topic.num.partitions`` (Kafka's
  SharePartitionKey.asCoordinatorKey and Utils.abs), with the topic id written in its
  dashed hex form where Kafka writes base64: a key lands on another partition than in
  Kafka, which only Odradek's own nodes use (FindCoordinator key type 2 reads Kafka's
  form and answers with this placement). The topic is compacted,
  created at the first share partition like ``__consumer_offsets`` (replication factor
  min(share.coordinator.state.topic.replication.factor, live brokers)).
- Loading: on leadership the partition's log is replayed (the last record per key wins);
  meanwhile reads and writes answer COORDINATOR_LOAD_IN_PROGRESS.
- Fencing: a write carries the share-partition leader's epoch; one older than the last
  written answers FENCED_LEADER_EPOCH (a deposed leader cannot overwrite its successor).
  It also carries the state epoch it loaded (Kafka's stateEpoch): AlterShareGroupOffsets
  writes a new start offset with the next state epoch, so a leader still holding the
  state from before (its eviction, see ``evict_everywhere``, raced with a write) is
  answered FENCED_STATE_EPOCH, drops it and loads the new one.
- Deletion (DeleteShareGroupOffsets, DeleteGroups of a share group): a tombstone (null
  value) for the key, so a compacted topic forgets it; the share partition then starts
  again at share.auto.offset.reset at its next fetch.
- Transport: in-process when this node coordinates the key, otherwise the private
  SHARE_STATE inter-node request (protocol.internode). Kafka's share-coordinator APIs
  (InitializeShareGroupState, Read/Write/DeleteShareGroupState, 83-87) are broker-to-broker
  only; no client sends them, so they are not served here.

Records: every write is a whole snapshot (Kafka's ShareSnapshot; no ShareUpdate deltas:
the window is bounded by group.share.partition.max.record.locks)::

    key    version=0 int16 | group_id string | topic_id uuid (16 bytes) | partition int32
    value  version=0 int16 | JSON {"leader_epoch", "start_offset",
                                    "batches": [[first, last, state, delivery_count], ...],
                                    "state_epoch" (absent: 0)}

The key has the fields of Kafka's ShareSnapshotKey; the value is Odradek's own (Kafka's
tools do not read this topic's values).
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
import uuid
from dataclasses import dataclass

import structlog

from odradek.broker.groups.coordinator import LedPartition, PartitionCoordinator
from odradek.broker.groups.offsets_topic import (
    RecordFormatError,
    _Reader,
    _str,
    iter_records,
    partition_for,
)
from odradek.protocol.errors import ErrorCode
from odradek.protocol.internode import SHARE_STATE_API_KEY
from odradek.replication.peer import Peer, PeerUnavailable
from odradek.replication.tasks import Supervisor

log = structlog.get_logger(__name__)

SHARE_STATE_TOPIC = "__share_group_state"
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
REMOTE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ShareState:
    """What a share-partition leader persists (SharePartition.state_batches)."""

    leader_epoch: int
    start_offset: int
    batches: tuple[tuple[int, int, int, int], ...]
    state_epoch: int = 0  # raised by each AlterShareGroupOffsets of the share partition

    def to_json(self) -> dict:
        return {"leader_epoch": self.leader_epoch, "start_offset": self.start_offset,
                "batches": [list(b) for b in self.batches], "state_epoch": self.state_epoch}

    @classmethod
    def from_json(cls, d: dict) -> ShareState:
        return cls(int(d["leader_epoch"]), int(d["start_offset"]),
                   tuple((int(a), int(b), int(c), int(e)) for a, b, c, e in d["batches"]),
                   int(d.get("state_epoch", 0)))

    def fences(self, write: ShareState) -> ErrorCode:
        """Why ``write`` may not replace this state (a stale share-partition leader's), or NONE."""
        if write.state_epoch < self.state_epoch:
            return ErrorCode.FENCED_STATE_EPOCH
        if write.state_epoch == self.state_epoch and write.leader_epoch < self.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        return ErrorCode.NONE

    def initialized_at(self, start_offset: int) -> ShareState:
        """This share partition started again at ``start_offset``: nothing in flight, the
        next state epoch (fencing the state a leader may still hold)."""
        return ShareState(self.leader_epoch, start_offset, (), self.state_epoch + 1)


def coordinator_key(group_id: str, topic_id: uuid.UUID, partition: int) -> str:
    return f"{group_id}:{topic_id}:{partition}"


# Kafka's Uuid.fromString: url-safe base64 of the 16 bytes, unpadded or padded (its
# decoder takes nothing else of 24 characters or fewer that makes 16 bytes).
_KAFKA_UUID = re.compile(r"[A-Za-z0-9_-]{22}(==)?")
_JAVA_INT = re.compile(r"[+-]?\d+")  # Integer.parseInt: any decimal digits (\d is Unicode's, as Java's)
_JAVA_TRIM = "".join(map(chr, range(0x21)))  # String.trim drops every char <= ' '


def parse_share_partition_key(key: str) -> tuple[str, uuid.UUID, int]:
    """A client's share-partition key (FindCoordinator key type 2) as Kafka 4.4's
    SharePartitionKey.getInstance reads it, or ValueError: ``groupId:topicId:partition``
    split at ':' as Java does (trailing empty fields dropped), the last field the partition
    (a Java int), the one before it the topic id in Kafka's form (url-safe base64), the
    rest the group id (colons and all; not blank)."""
    fields = key.split(":")
    while fields and not fields[-1]:
        fields.pop()
    if len(fields) < 3:
        raise ValueError(f"Invalid key format: expected - groupId:topicId:partition, found - {key}")
    group_id, topic, partition = ":".join(fields[:-2]), fields[-2], fields[-1]
    if not group_id.strip(_JAVA_TRIM):
        raise ValueError("GroupId must not be empty")
    if not _KAFKA_UUID.fullmatch(topic):
        raise ValueError(f"Invalid topicId: {topic}")
    if not _JAVA_INT.fullmatch(partition) or not -(1 << 31) <= int(partition) < 1 << 31:
        raise ValueError(f"Invalid partition: {partition}")
    return group_id, uuid.UUID(bytes=base64.urlsafe_b64decode(topic[:22] + "==")), int(partition)


def record_key(group_id: str, topic_id: uuid.UUID, partition: int) -> bytes:
    return _I16.pack(0) + _str(group_id) + topic_id.bytes + _I32.pack(partition)


def parse_record_key(data: bytes) -> str:
    r = _Reader(data)
    version = r.i16()
    if version != 0:
        raise RecordFormatError(f"unknown share state key version {version}")
    group_id = r.string()
    topic_id = uuid.UUID(bytes=r._raw(16))
    return coordinator_key(group_id or "", topic_id, r.i32())


def record_value(state: ShareState) -> bytes:
    return _I16.pack(0) + json.dumps(state.to_json(), separators=(",", ":")).encode()


def parse_record_value(data: bytes) -> ShareState:
    (version,) = _I16.unpack_from(data, 0)
    if version != 0:
        raise RecordFormatError(f"unknown share state value version {version}")
    try:
        return ShareState.from_json(json.loads(data[2:]))
    except (ValueError, KeyError, TypeError) as e:
        raise RecordFormatError(f"bad share state value: {e}") from None


class StatePartition(LedPartition):
    """One led partition of __share_group_state."""

    def __init__(self, partition):
        super().__init__(partition)
        self.keys: set[str] = set()


class ShareCoordinator(PartitionCoordinator):
    TOPIC = SHARE_STATE_TOPIC
    PARTITION = StatePartition

    def __init__(self, broker):
        self.broker = broker
        config = broker.config
        self.num_partitions: int = config["share.coordinator.state.topic.num.partitions"]
        self.replication_factor: int = config["share.coordinator.state.topic.replication.factor"]
        self.min_isr: int = config["share.coordinator.state.topic.min.isr"]
        self.segment_bytes: int = config["share.coordinator.state.topic.segment.bytes"]
        self.states: dict[str, ShareState] = {}
        self.partitions: dict[int, StatePartition] = {}
        self.peers: dict[int, Peer] = {}
        self.tasks = Supervisor("share_coordinator")
        self.held = True

    async def close(self) -> None:
        for peer in self.peers.values():
            peer.close()
        await super().close()

    def partition_for(self, key: str) -> int:
        return partition_for(key, self.num_partitions)

    async def ensure_topic(self, wait_s: float) -> None:
        await self._ensure_state_topic(self.num_partitions, self.replication_factor, self.min_isr,
                                       self.segment_bytes, wait_s)

    # -- leadership, loading -----------------------------------------------------------
    def _unload(self, p: StatePartition) -> None:
        self.partitions.pop(p.index, None)
        if p.task is not None and not p.task.done():
            p.task.cancel()
        for key in p.keys:
            self.states.pop(key, None)
        log.info("share_state_partition_unloaded", partition=p.index, keys=len(p.keys))

    async def _load(self, p: StatePartition) -> None:
        started = time.monotonic()
        async for data in self._log_chunks(p):
            for _, key, value in iter_records(data):
                if key is None:
                    continue
                try:
                    k = parse_record_key(key)
                    if value is None:
                        self.states.pop(k, None)
                        p.keys.discard(k)
                    else:
                        self.states[k] = parse_record_value(value)
                        p.keys.add(k)
                except RecordFormatError as e:
                    log.warning("share_state_record_skipped", partition=p.index, reason=str(e))
        p.loading = False
        log.info("share_state_partition_loaded", partition=p.index, keys=len(p.keys),
                 seconds=round(time.monotonic() - started, 3))

    # -- served to share-partition leaders (this node coordinates the key) --------------
    def read_local(self, key: str) -> tuple[ErrorCode, ShareState | None]:
        error = self._key_error(key, ErrorCode.INVALID_REQUEST)
        return error, None if error else self.states.get(key)

    async def write_local(self, group_id: str, topic_id: uuid.UUID, partition: int,
                          state: ShareState, create: bool = False) -> ErrorCode:
        """Only a write that ``create``s (a leader's first state, read as absent; an
        AlterShareGroupOffsets) may make a state: any other to a key without one is
        FENCED_STATE_EPOCH, so a leader that still holds a state deleted meanwhile (its
        drop request lost) drops it and loads again, instead of bringing it back."""
        key = coordinator_key(group_id, topic_id, partition)
        error = self._key_error(key, ErrorCode.INVALID_REQUEST)
        if error:
            return error
        known = self.states.get(key)
        if known is None and not create:
            return ErrorCode.FENCED_STATE_EPOCH
        fenced = known.fences(state) if known is not None else ErrorCode.NONE
        if fenced:
            return fenced
        p = self.partitions[self.partition_for(key)]
        error = await self._write_committed(p, record_key(group_id, topic_id, partition), record_value(state),
                                            int(time.time() * 1000))
        if error:
            return error
        known = self.states.get(key)
        if known is None or not known.fences(state):
            self.states[key] = state
            p.keys.add(key)
        return ErrorCode.NONE

    async def initialize_local(self, group_id: str, topic_id: uuid.UUID, partition: int,
                               start_offset: int) -> ErrorCode:
        """AlterShareGroupOffsets of one share partition: it starts again at ``start_offset``."""
        key = coordinator_key(group_id, topic_id, partition)
        error = self._key_error(key, ErrorCode.INVALID_REQUEST)
        if error:
            return error
        known = self.states.get(key) or ShareState(0, start_offset, (), -1)
        return await self.write_local(group_id, topic_id, partition, known.initialized_at(start_offset),
                                      create=True)

    async def delete_local(self, group_id: str, topic_id: uuid.UUID, partition: int) -> ErrorCode:
        """Tombstone the share partition's state (a compacted topic then forgets it)."""
        key = coordinator_key(group_id, topic_id, partition)
        error = self._key_error(key, ErrorCode.INVALID_REQUEST)
        if error or key not in self.states:
            return error
        p = self.partitions[self.partition_for(key)]
        error = await self._write_committed(p, record_key(group_id, topic_id, partition), None,
                                            int(time.time() * 1000))
        if not error:
            self.states.pop(key, None)
            p.keys.discard(key)
        return error

    # -- used by share-partition leaders (wherever the key's coordinator is) -----------
    async def read(self, group_id: str, topic_id: uuid.UUID, partition: int) -> tuple[ErrorCode, ShareState | None]:
        key = coordinator_key(group_id, topic_id, partition)
        await self.ensure_topic(5.0)
        node = self.coordinator_node(key)
        if node is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
        if node.node_id == self.broker.node_id:
            return self.read_local(key)
        answer = await self._remote(node.node_id, {"op": "read", "key": key})
        error = ErrorCode(answer.get("error", int(ErrorCode.COORDINATOR_NOT_AVAILABLE)))
        state = answer.get("state")
        return error, ShareState.from_json(state) if state and not error else None

    async def write(self, group_id: str, topic_id: uuid.UUID, partition: int, state: ShareState,
                    create: bool = False) -> ErrorCode:
        """Persist a leader's state (``create``: its first, the key had none; see write_local)."""
        return await self._keyed("write", group_id, topic_id, partition, state=state.to_json(), create=create)

    async def initialize(self, group_id: str, topic_id: uuid.UUID, partition: int, start_offset: int) -> ErrorCode:
        """The share partition starts again at ``start_offset`` (at its key's coordinator)."""
        await self.ensure_topic(5.0)
        return await self._keyed("initialize", group_id, topic_id, partition, start_offset=start_offset)

    async def delete(self, group_id: str, topic_id: uuid.UUID, partition: int) -> ErrorCode:
        """The share partition's state is tombstoned (at its key's coordinator)."""
        return await self._keyed("delete", group_id, topic_id, partition)

    async def _keyed(self, op: str, group_id: str, topic_id: uuid.UUID, partition: int, **args) -> ErrorCode:
        """A write op on one share partition's key, here or at the node coordinating it."""
        node = self.coordinator_node(coordinator_key(group_id, topic_id, partition))
        if node is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if node.node_id == self.broker.node_id:
            return await self._serve_keyed(op, group_id, topic_id, partition, args)
        answer = await self._remote(node.node_id, {"op": op, "group_id": group_id, "topic_id": str(topic_id),
                                                   "partition": partition, **args})
        return ErrorCode(answer.get("error", int(ErrorCode.COORDINATOR_NOT_AVAILABLE)))

    async def _serve_keyed(self, op: str, group_id: str, topic_id: uuid.UUID, partition: int,
                           args: dict) -> ErrorCode:
        if op == "write":
            return await self.write_local(group_id, topic_id, partition, ShareState.from_json(args["state"]),
                                          bool(args.get("create", False)))
        if op == "initialize":
            return await self.initialize_local(group_id, topic_id, partition, int(args["start_offset"]))
        return await self.delete_local(group_id, topic_id, partition)

    async def delete_group_states(self, group_id: str, topic_ids: set[uuid.UUID] | None
                                  ) -> dict[uuid.UUID, ErrorCode]:
        """Tombstone the group's share-partition states (of ``topic_ids``; None: all) and
        have their leaders forget them: topic id -> the first error of its partitions, for
        each topic that had a state."""
        errors: dict[uuid.UUID, ErrorCode] = {}
        for topic_id, partition in sorted(await self.group_states(group_id)):
            if topic_ids is None or topic_id in topic_ids:
                error = await self.delete(group_id, topic_id, partition)
                errors[topic_id] = errors.get(topic_id) or error
        if errors:
            await self.evict_everywhere(group_id, set(errors))
        return errors

    async def evict_everywhere(self, group_id: str, topic_ids: set[uuid.UUID] | None) -> None:
        """Every live node's share-partition leaders drop what they hold in memory of the
        group's share partitions (of ``topic_ids``; None: all), so the next fetch loads the
        state as the coordinator holds it now. A node that does not answer keeps it until
        its next write is fenced (FENCED_STATE_EPOCH) or, after a deletion, until its
        leadership changes."""
        ids = None if topic_ids is None else [str(t) for t in topic_ids]
        self.broker.shares.evict(group_id, topic_ids)
        for node_id, node in self.broker.image.brokers.items():
            if node_id != self.broker.node_id and not node.fenced:
                await self._remote(node_id, {"op": "evict", "group_id": group_id, "topic_ids": ids})

    async def serve(self, request: dict) -> dict:
        """A SHARE_STATE request from another node's share-partition leader."""
        try:
            if request["op"] == "read":
                error, state = self.read_local(str(request["key"]))
                return {"error": int(error), "state": state.to_json() if state else None}
            if request["op"] in ("write", "initialize", "delete"):
                return {"error": int(await self._serve_keyed(
                    request["op"], str(request["group_id"]), uuid.UUID(request["topic_id"]),
                    int(request["partition"]), request))}
            if request["op"] == "evict":
                ids = request["topic_ids"]
                self.broker.shares.evict(str(request["group_id"]),
                                         None if ids is None else {uuid.UUID(t) for t in ids})
                return {"error": 0}
            if request["op"] == "group":
                return {"states": {k: v.to_json() for k, v in self.group_states_local(str(request["group_id"])).items()}}
        except (KeyError, TypeError, ValueError):
            pass
        return {"error": int(ErrorCode.INVALID_REQUEST)}

    def group_states_local(self, group_id: str) -> dict[str, ShareState]:
        prefix = f"{group_id}:"
        return {k: v for k, v in self.states.items() if k.startswith(prefix)
                and not self.partitions[self.partition_for(k)].loading}

    async def group_states(self, group_id: str) -> dict[tuple[uuid.UUID, int], ShareState]:
        """Every share partition of the group with a state, from every live node's share
        coordinator (a group's keys are spread over the topic's partitions); a node that
        does not answer is left out."""
        found = dict(self.group_states_local(group_id))
        for node_id, node in self.broker.image.brokers.items():
            if node_id != self.broker.node_id and not node.fenced:
                answer = await self._remote(node_id, {"op": "group", "group_id": group_id})
                for k, v in (answer.get("states") or {}).items():
                    found[k] = ShareState.from_json(v)
        out = {}
        for k, state in found.items():
            _, topic_id, partition = k.rsplit(":", 2)
            out[(uuid.UUID(topic_id), int(partition))] = state
        return out

    async def _remote(self, node_id: int, payload: dict) -> dict:
        peer = self._peer(node_id)
        if peer is None:
            return {"error": int(ErrorCode.COORDINATOR_NOT_AVAILABLE)}
        try:
            answer = await peer.request(SHARE_STATE_API_KEY, payload, REMOTE_TIMEOUT_S)
        except PeerUnavailable as e:
            log.info("share_coordinator_unreachable", node_id=node_id, reason=str(e))
            return {"error": int(ErrorCode.COORDINATOR_NOT_AVAILABLE)}
        return answer if isinstance(answer, dict) else {"error": int(ErrorCode.UNKNOWN_SERVER_ERROR)}

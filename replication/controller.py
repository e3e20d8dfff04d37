"""The controller: validates metadata changes and commits them as records.

Admin requests (create/delete topics, add partitions, alter configs), broker
registrations and heartbeats arrive here on any node. Only the active controller
carries them out: on another node each operation is forwarded to it (a
CONTROLLER inter-node request) and its result comes back. The active controller
checks the operation against the ``MetadataImage``, turns it into metadata
records and commits them to the metadata log; every node applies committed
records to its image (``apply_committed``) and hands them to the subscribers
(the broker creates or deletes partition logs from them).

The metadata log is the only thing that differs between a one-node cluster
(``LocalMetadataLog``, a file on this node's disk) and a quorum
(``replication.quorum.RaftMetadataLog``).

Every operation carries a request id and a deadline (the client request's
timeout_ms, else FORWARD_TIMEOUT_S). Past the deadline the caller gets
REQUEST_TIMED_OUT, which handlers answer as an error code; an operation that
already runs on the active controller finishes there regardless. The result of
an operation that committed is committed with it (``OperationRecord``), so a
retry under the same request id, after a lost answer or a controller
re-election, gets the first answer instead of running twice. The active
controller answers a forwarded operation with the metadata offset of its commit,
and the forwarding node returns once its own image has applied that offset:
a client that changed something reads its own write on the node it asked.

The active controller also watches broker heartbeats: a broker silent for
broker.session.timeout.ms is fenced and its partitions get new leaders from
their ISR (never from outside it unless unclean.leader.election.enable); a
fenced broker that heartbeats again is unfenced and leads its leaderless
partitions again. A broker stopping cleanly asks for the same first
(controlled shutdown), so clients move before it goes.
"""

import asyncio
import contextvars
import functools
import inspect
import json
import os
import random
import re
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass, field

import crc32c
import structlog

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.internode import CONTROLLER_API_KEY
from odradek.replication import features, reassignment
from odradek.replication.acls import AclBinding, AclFilter, binding_error
from odradek.replication.elections import PartitionView, elect, partitions_to_rebalance
from odradek.replication.metadata import (
    BROKER,
    GROUP,
    TOPIC,
    AccessControlEntryRecord,
    BrokerFencingRecord,
    ClientQuotaRecord,
    ClusterIdRecord,
    ConfigRecord,
    FeatureLevelRecord,
    MetadataImage,
    OperationRecord,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveAccessControlEntryRecord,
    RemoveTopicRecord,
    RemoveUserScramCredentialRecord,
    TopicRecord,
    UserScramCredentialRecord,
    record_from_dict,
    record_to_dict,
)
from odradek.replication.peer import PeerUnavailable

log = structlog.get_logger(__name__)

MAX_TOPIC_NAME = 249  # Kafka's Topic.MAX_NAME_LENGTH
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
PRODUCER_ID_BLOCK = 1000  # producer ids handed out per ProducerIdsRecord
FORWARD_TIMEOUT_S = 30.0  # how long an operation without a deadline of its own may take
FORWARD_RETRY_S = 0.2
PEER_MARGIN_S = 1.0  # a forwarded request waits this much longer than the controller's bound
# The request id of the operation running in this task, for ``Controller.commit``.
_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_NO_RESULT = object()


def topic_name_error(name: str | None) -> str | None:
    """Why ``name`` is not a legal topic name (Kafka's rules), or None."""
    if not name:
        return "Topic name is empty"
    if name in (".", ".."):
        return f"Topic name cannot be {name!r}"
    if len(name) > MAX_TOPIC_NAME:
        return f"Topic name is longer than {MAX_TOPIC_NAME} characters"
    if not _LEGAL_TOPIC.fullmatch(name):  # Kafka 4.4's words
        return (f"Topic name is invalid: '{name}' contains one or more characters other than "
                "ASCII alphanumerics, '.', '_' and '-'")
    return None


class ForgedSender(Exception):
    """An inter-node request claims to come from another node than the one that sent it
    (the authenticated node, where nodes authenticate as themselves)."""


# The argument by which a controller operation says which node it acts for: only that
# node may ask for it (checked in Controller.execute when the sender is known).
NODE_CLAIMS = {"register_broker": "node_id", "heartbeat": "node_id", "controlled_shutdown": "node_id",
               "alter_partition": "leader_id"}


def check_claim(op: str, method, args: list, kwargs: dict, sender: int) -> None:
    """Raise ForgedSender when ``op`` acts for a node other than ``sender``."""
    name = NODE_CLAIMS.get(op)
    if name is None:
        return
    try:
        claimed = inspect.signature(method).bind(*args, **kwargs).arguments.get(name)
    except TypeError:
        return  # the call fails as it would anyway, without acting for anyone
    if claimed != sender:
        raise ForgedSender(f"node {sender} claims node {claimed} ({op})")


class NotController(Exception):
    """This node is not (or stopped being) the active controller; the operation did not
    commit here. ``leader_id`` may know better."""

    def __init__(self, leader_id: int | None):
        super().__init__(f"not the active controller (leader: {leader_id})")
        self.leader_id = leader_id


class BrokerSessions:
    """When the active controller last heard from each broker, within one term of its
    leadership.

    A controller that leads again starts every session afresh (a broker it has not heard
    from gets a whole session timeout from the first look), as Kafka's
    BrokerHeartbeatManager does on activation: in the terms it did not lead, heartbeats
    went to another controller, so the times it heard them itself say nothing. Without
    that, a controller paused past the session timeout that lost and won the quorum
    fenced a live broker at once (seen in CI: the broker's partitions fell to an ISR of
    one and acks=all producers got NOT_ENOUGH_REPLICAS).
    """

    def __init__(self) -> None:
        self._term: int | None = None
        self._seen: dict[int, float] = {}  # node id -> monotonic s

    def _in_term(self, term: int) -> None:
        if term != self._term:
            self._term, self._seen = term, {}

    def touch(self, node_id: int, term: int, now: float) -> None:
        self._in_term(term)
        self._seen[node_id] = now

    def forget(self, node_id: int) -> None:
        self._seen.pop(node_id, None)

    def expired(self, node_ids, term: int, now: float, timeout_s: float) -> list[tuple[int, float]]:
        """(node id, seconds silent) of each broker silent for longer than ``timeout_s``."""
        self._in_term(term)
        silent = [(n, now - self._seen.setdefault(n, now)) for n in list(node_ids)]
        return [(n, s) for n, s in silent if s > timeout_s]


@dataclass(slots=True)
class NewTopic:
    name: str
    num_partitions: int = -1  # -1: num.partitions
    replication_factor: int = -1  # -1: default.replication.factor
    assignments: dict[int, list[int]] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)


class LocalMetadataLog:
    """The metadata log of a one-node cluster: one file of framed JSON records.

    Each entry::

        length int32 | crc32c uint32 (of the JSON) | JSON of the record

    Appends are fsynced before they count. A torn or corrupt tail (a crash during
    an append) is cut off at start; everything before it was acknowledged.
    """

    _HEAD = struct.Struct(">iI")

    is_active = True  # the only node is the controller
    active_term = 0  # and always has been
    peers: dict = {}

    def __init__(self, directory: str, node_id: int, apply_records: Callable[[list, int], None]):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "metadata.log")
        self.leader_id = node_id
        self.apply_records = apply_records
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._offset = -1
        self.caught_up = asyncio.Event()  # the whole log is here: set once replayed

    async def start(self) -> None:
        records = self._replay()
        self._offset = len(records) - 1
        if records:
            self.apply_records(records, self._offset)  # one batch: subscribers see the whole image
        self.caught_up.set()

    async def stop(self) -> None:
        os.close(self._fd)

    async def confirm_leadership(self) -> None:
        """A quorum of one: always the leader."""

    def describe(self) -> dict:
        """DescribeQuorum's view: a quorum of one."""
        return {"leader_id": self.leader_id, "leader_epoch": 0, "high_watermark": self._offset + 1,
                "voters": [{"node_id": self.leader_id, "directory_id": None,
                            "log_end_offset": self._offset + 1, "last_fetch_ms": -1,
                            "last_caught_up_ms": -1}]}

    def _replay(self) -> list:
        with open(self.path, "rb") as f:
            data = f.read()
        records, pos = [], 0
        while pos + self._HEAD.size <= len(data):
            size, crc = self._HEAD.unpack_from(data, pos)
            body = data[pos + self._HEAD.size: pos + self._HEAD.size + size]
            if size < 0 or len(body) != size or crc32c.crc32c(body) != crc:
                break
            records.append(record_from_dict(json.loads(body)))
            pos += self._HEAD.size + size
        if pos != len(data):
            log.warning("metadata_log_truncated", path=self.path, valid_bytes=pos, file_bytes=len(data))
            os.truncate(self.path, pos)
        return records

    async def append(self, records: list) -> None:
        chunks = []
        for record in records:
            body = json.dumps(record_to_dict(record), separators=(",", ":")).encode()
            chunks.append(self._HEAD.pack(len(body), crc32c.crc32c(body)) + body)
        os.write(self._fd, b"".join(chunks))
        await asyncio.to_thread(os.fsync, self._fd)
        self._offset += len(records)
        self.apply_records(records, self._offset)


def _to_json(value):
    """Results and arguments of controller operations as JSON values."""
    if isinstance(value, KafkaError):
        return {"kafka_error": [int(value.code), value.message]}
    if isinstance(value, range):
        return {"range": [value.start, value.stop]}
    if isinstance(value, NewTopic):
        return asdict(value)
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


def _from_json(value):
    if isinstance(value, dict) and "kafka_error" in value:
        code, message = value["kafka_error"]
        return KafkaError(ErrorCode(code), message)
    if isinstance(value, dict) and "range" in value:
        return range(*value["range"])
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def controller_op(method=None, *, await_image: bool = True):
    """Run the operation here if this node is the active controller, else on it.

    Arguments and results cross the wire as JSON (``_to_json``); a KafkaError
    raised by the operation is raised again to the caller on the other node.
    ``timeout_s`` (keyword only, not passed to the operation) bounds the whole call;
    None or <= 0 means FORWARD_TIMEOUT_S. Forwarded, the call returns once this node's
    image has applied the operation's commit, unless ``await_image`` is False.
    """
    if method is None:
        return functools.partial(controller_op, await_image=await_image)

    @functools.wraps(method)
    async def run(self, *args, timeout_s: float | None = None, **kwargs):
        bound = timeout_s if timeout_s is not None and timeout_s > 0 else FORWARD_TIMEOUT_S
        return await self.run_op(method, args, kwargs, time.monotonic() + bound, await_image)
    run.controller_op = True
    return run


def _timed_out(op: str) -> KafkaError:
    return KafkaError(ErrorCode.REQUEST_TIMED_OUT,
                      f"The controller did not confirm {op} in time; it may still complete")


class Controller:
    """Turns admin requests into committed metadata records, on the active controller."""

    def __init__(self, image: MetadataImage, *, num_partitions: int,
                 default_replication_factor: int, validate_topic_configs: Callable[[dict], None],
                 validate_broker_configs: Callable[..., None] = lambda changes, per_broker=True: None,
                 validate_group_configs: Callable[[dict], None] = lambda changes: None,
                 broker_session_timeout_ms: int = 9000, unclean_leader_election: bool = False,
                 delete_topic_enable: bool = True):
        self.metadata_log = None  # LocalMetadataLog or RaftMetadataLog, set by the broker
        self.image = image
        self.num_partitions = num_partitions
        self.default_replication_factor = default_replication_factor
        self.validate_topic_configs = validate_topic_configs
        self.validate_broker_configs = validate_broker_configs
        self.validate_group_configs = validate_group_configs
        self.broker_session_timeout_ms = broker_session_timeout_ms
        self.unclean_leader_election = unclean_leader_election
        # Checked here, not only by DeleteTopics: an operation may arrive forwarded.
        self.delete_topic_enable = delete_topic_enable
        self.subscribers: list[Callable[[list], None]] = []
        self._lock = asyncio.Lock()  # one change at a time: validation sees the latest image
        self._sessions = BrokerSessions()  # on the active controller
        self._running: dict[str, asyncio.Task] = {}  # request id -> operation running here
        self._offset_waiters: list[tuple[int, asyncio.Future]] = []  # (image offset, woken at it)

    # -- the metadata log's side ----------------------------------------------------
    def apply_committed(self, records: list, offset: int) -> None:
        """Committed records, on every node: into the image, then to the subscribers."""
        for record in records:
            self.image.apply(record, offset)
        for subscriber in self.subscribers:
            subscriber(records)
        self._wake_offset_waiters()

    def restore(self, records: list, offset: int) -> None:
        """Replace the image with a snapshot's (a follower far behind the leader)."""
        self.image.reset(records, offset)
        for subscriber in self.subscribers:
            subscriber(records)
        self._wake_offset_waiters()

    def _wake_offset_waiters(self) -> None:
        waiting = []
        for offset, fut in self._offset_waiters:
            if offset <= self.image.offset:
                if not fut.done():
                    fut.set_result(None)
            else:
                waiting.append((offset, fut))
        self._offset_waiters = waiting

    async def wait_for_offset(self, offset: int, deadline: float) -> bool:
        """Until this node's image has applied ``offset`` (False if the deadline passes first)."""
        if self.image.offset >= offset:
            return True
        fut = asyncio.get_running_loop().create_future()
        self._offset_waiters.append((offset, fut))
        try:
            await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
            return True
        except TimeoutError:
            return False

    async def commit(self, records: list, result=_NO_RESULT) -> None:
        """Commit ``records`` as one entry. An operation that passes its ``result`` has it
        committed along (``OperationRecord``), so a retry of its request id gets it again."""
        request_id = _REQUEST_ID.get()
        if records and result is not _NO_RESULT and request_id is not None:
            records = [*records, OperationRecord(request_id, _to_json(result))]
        if records:
            await self.metadata_log.append(records)

    # -- forwarding --------------------------------------------------------------
    async def run_op(self, method, args: tuple, kwargs: dict, deadline: float, await_image: bool = True):
        """Carry out an operation on the active controller (this node or another),
        following leadership changes, until ``deadline`` (time.monotonic())."""
        op = method.__name__
        request_id = uuid.uuid4().hex
        while True:
            if self.metadata_log.is_active:
                try:
                    return await self._bounded(self._start_here(method, request_id, args, kwargs),
                                               deadline, op)
                except NotController:
                    pass  # leadership moved mid-operation: find the new controller
            leader = self.metadata_log.leader_id
            peer = self.metadata_log.peers.get(leader) if leader is not None else None
            if peer is not None:
                try:
                    reply = await self._forward(peer, leader, {
                        "op": op, "request_id": request_id, "args": _to_json(list(args)),
                        "kwargs": _to_json(kwargs),
                        "timeout_ms": int(max(0.0, deadline - time.monotonic()) * 1000)}, deadline, op)
                    if reply is None:
                        continue  # the quorum moved on: ask the new controller
                    if isinstance(reply.get("error"), dict):
                        raise _from_json(reply["error"])
                    if "not_controller" not in reply:  # (its value may be null: no known leader)
                        if await_image and reply.get("offset") is not None:  # read your own writes
                            await self.wait_for_offset(reply["offset"], deadline)
                        return _from_json(reply.get("result"))
                except PeerUnavailable:
                    pass
            if time.monotonic() >= deadline:
                raise _timed_out(op)
            await asyncio.sleep(min(FORWARD_RETRY_S, max(0.0, deadline - time.monotonic())))

    def _start_here(self, method, request_id: str, args, kwargs) -> asyncio.Future:
        """Start an operation on this node, the active controller, or join the attempt of
        the same request id that is running here; one that committed answers its result."""
        if request_id in self.image.operations:
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(_from_json(self.image.operations[request_id]))
            return fut
        task = self._running.get(request_id)
        if task is None:
            context = contextvars.copy_context()
            context.run(_REQUEST_ID.set, request_id)
            method = getattr(method, "__wrapped__", method)
            task = asyncio.get_running_loop().create_task(method(self, *args, **kwargs), context=context)
            self._running[request_id] = task
            task.add_done_callback(functools.partial(self._finished, request_id))
        return task

    def _finished(self, request_id: str, task: asyncio.Task) -> None:
        self._running.pop(request_id, None)
        if not task.cancelled():
            task.exception()  # retrieved: the caller that timed out is gone

    @staticmethod
    async def _bounded(fut: asyncio.Future, deadline: float, op: str):
        """The operation's result, or REQUEST_TIMED_OUT at the deadline (it runs on)."""
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise _timed_out(op) from None

    async def _forward(self, peer, leader: int, payload: dict, deadline: float, op: str) -> dict | None:
        """Send an operation to the controller `leader`; None if the quorum elects another
        before it answers. A controller cut off by the network never answers, and waiting
        out the request timeout there would make every broker's heartbeats miss their
        session at the new controller, which would fence them all."""
        timeout_s = max(0.0, deadline - time.monotonic()) + PEER_MARGIN_S
        request = asyncio.ensure_future(peer.request(CONTROLLER_API_KEY, payload, timeout_s=timeout_s))
        try:
            while True:
                done, _ = await asyncio.wait({request}, timeout=FORWARD_RETRY_S)
                if done:
                    return request.result()
                if self.metadata_log.leader_id != leader:
                    return None
                if time.monotonic() >= deadline:
                    raise _timed_out(op)
        finally:
            request.cancel()

    async def execute(self, op: str, args: list, kwargs: dict, request_id: str | None = None,
                      timeout_ms: int | None = None, sender: int | None = None) -> dict:
        """Run a forwarded operation (the CONTROLLER inter-node handler calls this). The
        answer carries the image offset that holds its effects, for the sender to wait on.
        ``sender``: the node that authenticated, when nodes authenticate as themselves; an
        operation for another node raises ForgedSender."""
        method = getattr(self, op, None)
        if method is None or not getattr(method, "controller_op", False):
            return {"error": _to_json(KafkaError(ErrorCode.INVALID_REQUEST, f"unknown operation {op}"))}
        if sender is not None:
            check_claim(op, method, _from_json(args), kwargs, sender)
        if not self.metadata_log.is_active:
            return {"not_controller": self.metadata_log.leader_id}
        bound = timeout_ms / 1000 if timeout_ms is not None else FORWARD_TIMEOUT_S
        try:
            # Run here only: forwarding again from here could loop between two nodes.
            result = await self._bounded(self._start_here(
                method, request_id or uuid.uuid4().hex, _from_json(args), kwargs),
                time.monotonic() + bound, op)
            return {"result": _to_json(result), "offset": self.image.offset}
        except NotController as e:
            return {"not_controller": e.leader_id}
        except KafkaError as e:
            return {"error": _to_json(e)}

    # -- brokers -------------------------------------------------------------------
    @controller_op
    async def register_broker(self, node_id: int, endpoints: dict, rack: str | None = None,
                              cluster_id: str | None = None) -> str:
        """Register (or re-register) a broker; returns the cluster's id, which the first
        registration sets to the ``cluster_id`` it proposes."""
        endpoints = {name: (host, int(port)) for name, (host, port) in endpoints.items()}
        async with self._lock:
            self._sessions.touch(node_id, self.metadata_log.active_term, time.monotonic())
            current = self.image.brokers.get(node_id)
            records = []
            if self.image.cluster_id is None and cluster_id:
                records.append(ClusterIdRecord(cluster_id))
            # A new cluster, or one formed before feature flags (no metadata.version): finalize
            # the bootstrap levels. Only then, as Kafka bootstraps features only when a cluster
            # forms: a feature turned off (level 0, gone from the image) stays off, and one
            # added by a later Odradek waits for `kafka-features upgrade`.
            if features.METADATA_VERSION not in self.image.features:
                records += [FeatureLevelRecord(name, level) for name, level in features.bootstrap_levels().items()]
            if not (current and current.endpoints == endpoints and current.rack == rack):
                records.append(RegisterBrokerRecord(
                    node_id, {k: list(v) for k, v in endpoints.items()}, rack))
            if current is not None and current.fenced:
                records += self._unfence(node_id)
            await self.commit(records)
            return self.image.cluster_id

    # Not awaiting the image: a node behind the controller would miss its session. The
    # lease waits for the image to reach the returned offset on its own (broker.Lease).
    @controller_op(await_image=False)
    async def heartbeat(self, node_id: int) -> int | None:
        """A live broker checks in (unfenced if it was fenced); returns the offset of the
        metadata log the broker must have applied to see the cluster as it is now (its
        unfencing included), or None if it is not registered."""
        if node_id not in self.image.brokers:
            return None
        # A deposed controller that does not know it yet would renew the broker's lease
        # from a stale image: answer only as a leader a quorum still acknowledges.
        await self.metadata_log.confirm_leadership()
        self._sessions.touch(node_id, self.metadata_log.active_term, time.monotonic())
        if self.image.brokers[node_id].fenced:
            async with self._lock:
                if self.image.brokers[node_id].fenced:
                    await self.commit(self._unfence(node_id))
        return self.image.offset

    @controller_op
    async def controlled_shutdown(self, node_id: int) -> None:
        """Move leadership and ISR membership away from a broker that is stopping."""
        async with self._lock:
            if node_id in self.image.brokers and not self.image.brokers[node_id].fenced:
                self._sessions.forget(node_id)
                await self.commit(self._fence(node_id))

    @controller_op
    async def alter_partition(self, topic_id: str, partition: int, leader_id: int, leader_epoch: int,
                              partition_epoch: int, isr: list[int]) -> int:
        """A leader's ISR change (Kafka's AlterPartition), fenced by both epochs.

        Returns the new partition epoch. A request from a deposed leader or built
        on an older ISR is refused, so stale leaders cannot undo newer changes.
        """
        async with self._lock:
            topic = self.image.topics_by_id.get(topic_id)
            p = topic.partitions.get(partition) if topic else None
            if p is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No partition {topic_id}-{partition}")
            if leader_id != p.leader or leader_epoch != p.leader_epoch:
                raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH,
                                 f"Leader {leader_id} epoch {leader_epoch} is not the current "
                                 f"leader {p.leader} epoch {p.leader_epoch}")
            if partition_epoch != p.partition_epoch:
                raise KafkaError(ErrorCode.INVALID_UPDATE_VERSION,
                                 f"Partition epoch {partition_epoch} is stale (now {p.partition_epoch})")
            live = set(self._live_brokers())
            if leader_id not in isr or not set(isr) <= set(p.replicas) or \
                    not set(isr) - set(p.isr) <= live:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 f"ISR {isr} must hold the leader, only replicas, and only live new members")
            new_epoch = p.partition_epoch + 1  # every PartitionChangeRecord moves it by one
            records = [PartitionChangeRecord(topic_id, partition, isr=list(isr))]
            # The replicas a reassignment adds are in sync: it completes (a second change).
            done = reassignment.maybe_complete(reassignment.Change(
                p.replicas, list(isr), p.leader, p.adding_replicas, p.removing_replicas), live)
            if done is not None:
                records.append(self._reassignment_record(p, done))
                log.info("reassignment_completed", topic=topic.name, partition=partition,
                         replicas=done.replicas, leader=done.leader)
            await self.commit(records, new_epoch)
            return new_epoch

    @staticmethod
    def _reassignment_record(p, step: reassignment.Change) -> PartitionChangeRecord:
        return PartitionChangeRecord(p.topic_id, p.partition,
                                     leader=step.leader if step.leader != p.leader else None,
                                     isr=step.isr, replicas=step.replicas,
                                     adding_replicas=step.adding, removing_replicas=step.removing)

    @controller_op
    async def alter_partition_reassignments(self, partitions: list, allow_replication_factor_change: bool = True
                                            ) -> list:
        """AlterPartitionReassignments: ``partitions`` as [topic, partition, target replicas or
        None to cancel]. Returns [topic, partition, error code, message] per entry, in order;
        the accepted ones are committed together (replication/reassignment.py decides)."""
        async with self._lock:
            live = set(self._live_brokers())
            results, records = [], []
            for name, index, target in partitions:
                topic = self.image.topics.get(name)
                p = topic.partitions.get(index) if topic else None
                try:
                    if p is None:  # Kafka's words
                        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                         f"Unable to find a topic named {name}." if topic is None
                                         else f"Unable to find partition {name}:{index}.")
                    if target is None:
                        step = reassignment.cancel(p.replicas, p.isr, p.leader, p.adding_replicas,
                                                   p.removing_replicas, live)
                    else:
                        reassignment.check_target(target, self.image.brokers)
                        original = reassignment.original_replicas(p.replicas, p.adding_replicas)
                        if not allow_replication_factor_change and len(target) != len(original):
                            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                                             "The replication factor is changed from "
                                             f"{len(original)} to {len(target)}")
                        step = reassignment.start(p.replicas, p.isr, p.leader, p.adding_replicas,
                                                  list(target), live)
                    records.append(self._reassignment_record(p, step))
                    results.append([name, index, int(ErrorCode.NONE), None])
                except KafkaError as e:
                    results.append([name, index, int(e.code), e.message])
            await self.commit(records, results)
            return results

    @controller_op
    async def elect_leaders(self, election_type: int, partitions: list | None) -> list:
        """ElectLeaders on the active controller: ``partitions`` as [topic, partition] pairs,
        or None for every partition. Returns [topic, [[partition, error code, message], ...]]
        per topic, in the order asked; with None, every topic, leaving out the partitions
        that need no election (as Kafka's controller answers).

        The decision is ``elections.elect``; every election that moves a leader is one
        ``PartitionChangeRecord`` (new leader epoch), all committed together.
        """
        async with self._lock:
            live = set(self._live_brokers())
            records: list = []
            results: list = []
            by_topic: dict[str, list] = {}
            everything = partitions is None
            if everything:
                partitions = [[t.name, p] for t in self.image.topics.values() for p in sorted(t.partitions)]
                for t in self.image.topics.values():
                    by_topic[t.name] = []
                    results.append([t.name, by_topic[t.name]])
            for name, partition in partitions:
                if name not in by_topic:
                    by_topic[name] = []
                    results.append([name, by_topic[name]])
                topic = self.image.topics.get(name)
                p = topic.partitions.get(partition) if topic else None
                if p is None:  # Kafka's messages
                    by_topic[name].append([partition, int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                                           f"No such topic as {name}" if topic is None else
                                           f"No such partition as {name}-{partition}"])
                    continue
                e = elect(election_type, p.replicas, p.isr, p.leader, live)
                if e.leader is not None:
                    records.append(PartitionChangeRecord(p.topic_id, p.partition, leader=e.leader, isr=e.isr))
                    by_topic[name].append([partition, int(ErrorCode.NONE), None])
                elif not (everything and e.error == ErrorCode.ELECTION_NOT_NEEDED):
                    by_topic[name].append([partition, int(e.error), e.message])
            await self.commit(records, results)
            return results

    def _fence(self, node_id: int) -> list:
        records = [BrokerFencingRecord(node_id, True)]
        live = set(self._live_brokers()) - {node_id}
        for topic in self.image.topics.values():
            for p in topic.partitions.values():
                if node_id not in p.isr and p.leader != node_id:
                    continue
                isr = [r for r in p.isr if r != node_id] or list(p.isr)  # never empty the ISR
                leader = p.leader
                if p.leader == node_id:
                    leader = self._elect(p.replicas, isr, live)
                records.append(PartitionChangeRecord(p.topic_id, p.partition, leader=leader, isr=isr))
        return records

    def _unfence(self, node_id: int) -> list:
        records = [BrokerFencingRecord(node_id, False)]
        for topic in self.image.topics.values():
            for p in topic.partitions.values():
                if p.leader == -1 and node_id in p.isr:
                    records.append(PartitionChangeRecord(p.topic_id, p.partition, leader=node_id))
        return records

    def _elect(self, replicas: list[int], isr: list[int], live: set[int]) -> int:
        """A new leader: the first live ISR member in replica order, else -1 (or, with
        unclean election, any live replica)."""
        for r in replicas:
            if r in isr and r in live:
                return r
        if self.unclean_leader_election:
            for r in replicas:
                if r in live:
                    return r
        return -1

    async def run_fencing(self) -> None:
        """On the active controller: fence brokers whose heartbeats stopped."""
        while True:
            await asyncio.sleep(min(1.0, self.broker_session_timeout_ms / 4000))
            if not self.metadata_log.is_active:
                continue
            timeout_s = self.broker_session_timeout_ms / 1000
            expired = self._sessions.expired(self.image.brokers, self.metadata_log.active_term,
                                             time.monotonic(), timeout_s)
            for node_id, silent_s in expired:
                if not self.image.brokers[node_id].fenced:
                    log.warning("broker_fenced", node_id=node_id, silent_s=round(silent_s, 1))
                    try:
                        async with self._lock:
                            await self.commit(self._fence(node_id))
                    except NotController:
                        # The quorum was lost before the fence committed; this loop must
                        # outlive that, or a controller elected again never fences anyone.
                        log.warning("broker_fence_not_committed", node_id=node_id)
                        break

    async def run_leader_rebalance(self, interval_s: float, imbalance_percentage: int) -> None:
        """On the active controller, every leader.imbalance.check.interval.seconds: move
        leadership back to preferred replicas (auto.leader.rebalance.enable).

        After a broker restarts, the partitions it led stay with the brokers that took
        them over, so one broker serves the load of two; this returns them once the
        restarted broker has caught up (``elections.partitions_to_rebalance`` decides).
        """
        while True:
            await asyncio.sleep(interval_s)
            if not self.metadata_log.is_active:
                continue
            try:
                async with self._lock:
                    await self.commit(self._rebalance_records(imbalance_percentage))
            except Exception as e:  # noqa: BLE001 (lost leadership mid-commit: the next controller's turn)
                log.warning("leader_rebalance_failed", error=repr(e))

    def _rebalance_records(self, imbalance_percentage: int) -> list:
        views = [PartitionView(p.topic_id, p.partition, p.replicas, p.isr, p.leader)
                 for t in self.image.topics.values() for p in t.partitions.values()]
        moves = partitions_to_rebalance(views, set(self._live_brokers()), imbalance_percentage)
        if moves:
            log.info("leader_rebalance", partitions=[f"{self.image.topics_by_id[t].name}-{p}" for t, p in moves])
        return [PartitionChangeRecord(t, p, leader=self.image.topics_by_id[t].partitions[p].replicas[0])
                for t, p in moves]

    def _live_brokers(self) -> list[int]:
        return sorted(b.node_id for b in self.image.brokers.values() if not b.fenced)

    def _assign(self, topic_id: str, first: int, count: int, rf: int,
                explicit: dict[int, list[int]]) -> list[PartitionRecord]:
        brokers = self._live_brokers()
        start = random.randrange(len(brokers))  # spread leaders across brokers, as Kafka does
        records = []
        for p in range(first, first + count):
            replicas = explicit.get(p) or [brokers[(start + p + i) % len(brokers)] for i in range(rf)]
            records.append(PartitionRecord(topic_id, p, replicas, list(replicas), replicas[0]))
        return records

    def _check_new_topic(self, t: NewTopic) -> tuple[int, int]:
        """Validate a topic to create; return its partition count and replication factor."""
        problem = topic_name_error(t.name)
        if problem:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, problem)
        if t.name in self.image.topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{t.name}' already exists.")
        if t.assignments:
            if t.num_partitions != -1 or t.replication_factor != -1:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 "Give either assignments or partitions and replication factor")
            partitions = len(t.assignments)
            rf = len(next(iter(t.assignments.values())))
            self._check_assignments(t.assignments, 0, partitions, rf)
        else:
            partitions = self.num_partitions if t.num_partitions == -1 else t.num_partitions
            rf = self.default_replication_factor if t.replication_factor == -1 else t.replication_factor
        if partitions <= 0:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        live = len(self._live_brokers())
        if rf <= 0:
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             "Replication factor must be larger than 0, or -1 to use the default value.")
        if rf > live:  # Kafka's words, which kafka-topics prints
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             f"Unable to replicate the partition {rf} time(s): The target "
                             f"replication factor of {rf} cannot be reached because only {live} "
                             "broker(s) are registered.")
        try:
            self.validate_topic_configs(t.configs)
        except ValueError as e:
            raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None
        return partitions, rf

    def _check_assignments(self, assignments: dict[int, list[int]], first: int, count: int,
                           rf: int) -> None:
        known = set(self.image.brokers)
        if sorted(assignments) != list(range(first, first + count)):
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"Assignments must cover partitions {first}..{first + count - 1}")
        for p, replicas in assignments.items():
            if len(replicas) != rf or len(set(replicas)) != rf or not set(replicas) <= known:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"Partition {p}: replicas {replicas} must be {rf} distinct known brokers")

    @controller_op
    async def create_topics(self, topics: list[NewTopic], validate_only: bool = False
                            ) -> list[KafkaError | None]:
        """One result per topic: None for success, else the error. The topics are
        committed together: a retry finds all of them created, or none."""
        topics = [NewTopic(**{**t, "assignments": {int(k): v for k, v in t["assignments"].items()}})
                  if isinstance(t, dict) else t for t in topics]
        results, records, named = [], [], set()
        async with self._lock:
            for t in topics:
                try:
                    if t.name in named:
                        raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{t.name}' already exists.")
                    partitions, rf = self._check_new_topic(t)
                except KafkaError as e:
                    results.append(e)
                    continue
                results.append(None)
                named.add(t.name)
                topic_id = str(uuid.uuid4())
                records.append(TopicRecord(t.name, topic_id))
                records += [ConfigRecord(TOPIC, t.name, k, v) for k, v in t.configs.items()]
                records += self._assign(topic_id, 0, partitions, rf, t.assignments)
            if not validate_only:
                await self.commit(records, results)
        return results

    @controller_op
    async def delete_topic(self, name: str) -> None:
        if not self.delete_topic_enable:
            raise KafkaError(ErrorCode.TOPIC_DELETION_DISABLED,
                             "Topic deletion is disabled (delete.topic.enable=false)")
        async with self._lock:
            topic = self.image.topics.get(name)
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                 f"Topic '{name}' does not exist.")
            await self.commit([RemoveTopicRecord(topic.topic_id)], None)

    @controller_op
    async def create_partitions(self, name: str, count: int, assignments: list[list[int]] | None,
                                validate_only: bool = False) -> None:
        async with self._lock:
            topic = self.image.topics.get(name)
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                 f"Topic '{name}' does not exist.")
            current = len(topic.partitions)
            if count == current:  # Kafka's messages, which kafka-topics --alter prints
                raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                                 f"Topic already has {current} partition(s).")
            if count < current:
                raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                                 f"The topic {name} currently has {current} partition(s); "
                                 f"{count} would not be an increase.")
            rf = len(topic.partitions[0].replicas)
            explicit = {}
            if assignments:
                explicit = {current + i: list(r) for i, r in enumerate(assignments)}
                self._check_assignments(explicit, current, count - current, rf)
            if validate_only:
                return
            await self.commit(self._assign(topic.topic_id, current, count - current, rf, explicit), None)

    @controller_op
    async def alter_configs(self, resource_type: int, name: str, changes: dict[str, str | None],
                            replace: bool, validate_only: bool = False) -> None:
        """Set (value) or delete (None) config keys of a topic, of a broker (its id) or of
        every broker (the name ""); ``replace`` drops keys not named. Kafka answers a bad
        topic config INVALID_CONFIG and a bad broker config INVALID_REQUEST."""
        async with self._lock:
            if resource_type == TOPIC:
                if name not in self.image.topics:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                     f"Topic '{name}' does not exist.")
                validate, code = self.validate_topic_configs, ErrorCode.INVALID_CONFIG
            elif resource_type == BROKER:
                if name != "" and not name.isdigit():
                    raise KafkaError(ErrorCode.INVALID_REQUEST,
                                     f"Invalid broker name {name!r}: a broker id, or empty for "
                                     "the cluster-wide default")
                validate, code = (functools.partial(self.validate_broker_configs, per_broker=name != ""),
                                  ErrorCode.INVALID_REQUEST)
            elif resource_type == GROUP:
                if name == "":
                    raise KafkaError(ErrorCode.INVALID_REQUEST, "Default group resources are not allowed.")
                validate, code = self.validate_group_configs, ErrorCode.INVALID_CONFIG
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 f"Resource type {resource_type} is not supported "
                                 "(use 2 for a topic, 4 for a broker or 32 for a group)")
            if replace:
                changes = {**{k: None for k in self.image.configs.get((resource_type, name), {})},
                           **changes}
            try:
                validate(changes)
            except ValueError as e:
                raise KafkaError(code, str(e)) from None
            if not validate_only:
                await self.commit([ConfigRecord(resource_type, name, k, v) for k, v in changes.items()],
                                  None)

    @controller_op
    async def update_features(self, updates: list, validate_only: bool = False) -> None:
        """UpdateFeatures: ``updates`` as [feature, level, upgrade type]. All or nothing: the
        first refused update fails the request (INVALID_UPDATE_VERSION), as in Kafka."""
        async with self._lock:
            after = {**self.image.features, **{name: level for name, level, _ in updates}}
            for name, level, upgrade_type in updates:
                problem = features.check_update(name, level, upgrade_type, self.image.features.get(name, 0),
                                                after, self.metadata_log.leader_id)
                if problem is not None:
                    raise KafkaError(ErrorCode.INVALID_UPDATE_VERSION,
                                     "The update failed for all features since the following "
                                     f"feature had an error: {problem}")
            if not validate_only:
                await self.commit([FeatureLevelRecord(name, level) for name, level, _ in updates], None)

    # -- ACLs and quotas -------------------------------------------------------------
    @controller_op
    async def create_acls(self, bindings: list) -> list[KafkaError | None]:
        """One result per binding (a list of AclBinding fields): None for created (or
        already there, as Kafka answers), else why it is invalid."""
        results: list[KafkaError | None] = []
        records: list = []
        async with self._lock:
            existing = {r.binding() for r in self.image.acls.values()}
            for fields_ in bindings:
                b = AclBinding(*fields_)
                error = binding_error(b)
                if error is not None:
                    results.append(KafkaError(ErrorCode.INVALID_REQUEST, error))
                    continue
                results.append(None)
                if b not in existing:
                    existing.add(b)
                    records.append(AccessControlEntryRecord(*fields_, id=uuid.uuid4().hex))
            await self.commit(records, results)
        return results

    @controller_op
    async def delete_acls(self, filters: list) -> list[list]:
        """Per filter (a list of AclFilter fields), the bindings it matched and removed
        (each a list of AclBinding fields); a binding is removed once, by the first."""
        results: list[list] = []
        removed: set[str] = set()
        async with self._lock:
            for fields_ in filters:
                f = AclFilter(*fields_)
                matched = [(id_, r) for id_, r in self.image.acls.items()
                           if id_ not in removed and f.matches(r.binding())]
                removed.update(id_ for id_, _ in matched)
                results.append([list(astuple(r.binding())) for _, r in matched])
            await self.commit([RemoveAccessControlEntryRecord(id_) for id_ in removed], results)
        return results

    @controller_op
    async def alter_client_quotas(self, changes: list, validate_only: bool = False) -> None:
        """Set or remove quotas: ``changes`` is a list of [entity, key, value-or-None]
        already checked by the handler (which knows the keys)."""
        if validate_only:
            return
        async with self._lock:
            await self.commit([ClientQuotaRecord(dict(entity), key, value) for entity, key, value in changes],
                              None)

    @controller_op
    async def alter_scram_credentials(self, deletions: list, upsertions: list) -> dict:
        """Remove ([user, mechanism]) and set (UserScramCredentialRecord fields) SCRAM
        credentials, checked by the caller except for what only the image knows: deleting
        a credential that does not exist fails that user (RESOURCE_NOT_FOUND), and a
        user with an error has nothing of theirs changed, as Kafka's ScramControlManager.
        Returns {user: [error code, message]} for the users that failed."""
        async with self._lock:
            failed: dict[str, list] = {}
            for name, mechanism in deletions:
                if (name, mechanism) not in self.image.scram:
                    failed[name] = [int(ErrorCode.RESOURCE_NOT_FOUND),
                                    "Attempt to delete a user credential that does not exist"]
            records = [RemoveUserScramCredentialRecord(name, mechanism)
                       for name, mechanism in deletions if name not in failed]
            records += [UserScramCredentialRecord(**u) for u in upsertions if u["name"] not in failed]
            if records:
                await self.commit(records, failed)
            return failed

    @controller_op
    async def allocate_producer_ids(self) -> range:
        """Reserve a block of producer ids; the record makes them unique across restarts."""
        async with self._lock:
            start = self.image.next_producer_id
            block = range(start, start + PRODUCER_ID_BLOCK)
            await self.commit([ProducerIdsRecord(block.stop)], block)
            return block

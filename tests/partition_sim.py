"""Partition replication on the simulated Raft cluster of tests/raft_sim.py: one simulation of both.

``ClusterSimulation`` is the Raft simulation (same seeds, network faults, crashes, wipes,
and Raft checker) with one replicated partition on top, driven by the real rules:

- Metadata: the partition's leader, ISR, leader epoch and partition epoch are what each node's
  ``MetadataImage`` says, built from its own *committed* Raft entries (raft_sim.StateMachine,
  restored from its snapshot after a restart). A restarted broker acts on its image only
  once it has applied what was committed before it came back (Kafka's brokers catch up with
  the metadata log before serving; ``catch_up=False`` acts at once, as broker/broker.py does
  today, and loses acknowledged records: see tests/unit/test_raft_sim.py).
- The controller is the Raft leader once active (an entry of its term applied, as
  RaftMetadataLog.is_active). Every node heartbeats to the leader it knows; a broker silent
  for SESSION_MS is fenced (``Controller._fence``: out of the ISR, a new leader elected from
  the ISR), one heard again is unfenced (``Controller._unfence``), and AlterPartition is
  validated by ``Controller.alter_partition`` itself (fenced by leader and partition epoch).
  Each change is one Raft proposal, one at a time (the controller's lock), answered once
  applied, or refused when leadership moves.
- Each replica node hosts the partition as broker/replica_manager.py does: the shipped state
  machine ``replication.partition.ReplicatedPartition`` (one per broker process) decides, and
  the simulation carries out its actions as ``ReplicaManager._apply`` does. It is fed the
  image's state of the partition after each commit (leading or following), appends, follower
  fetches, fetch responses, OffsetForLeaderEpoch answers (``on_epoch_answer``: the truncation
  of KIP-279) and the time (``proposed_isr``: ISR changes, sent with AlterPartition, forwarded
  to the controller and retried like ``Controller.run_op``, answered as
  ``ReplicaManager._alter_isr`` does). A produce needs min.insync.replicas (2, or 1 with one
  voter). The log (records and storage.epoch.LeaderEpochCache) survives crashes (the page
  cache outlives the process; a wipe of the metadata directory keeps it), and so does the
  checkpointed high watermark.
- Faults: the Raft simulation's, plus crashes of the partition leader long enough to be
  fenced, and in some seeds of new partition leaders soon after they take over.
- Requests and responses cross the simulated network with the Raft messages (partitions,
  loss, delays; no duplication: they travel over connections).

Checked after every event (``PartitionChecker``):

- the high watermark of the leader of the latest committed leader epoch never exceeds the log
  end offset of any member of the latest committed ISR;
- no acknowledged offset (acks=all: below a leader's high watermark) is lost: every leader of
  epoch E holds every offset acknowledged under an epoch before E, with the same record; every
  replica that has truncated for epoch F holds, below its log end, the records acknowledged
  under F or before; no offset is acknowledged with two different records.

And after healing: a leader acknowledges records produced in the second half of the settle time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from odradek.protocol.errors import KafkaError
from odradek.replication.controller import Controller
from odradek.replication.isr import IsrState
from odradek.replication.metadata import (
    MetadataImage,
    PartitionRecord,
    PartitionState,
    RegisterBrokerRecord,
    TopicRecord,
)
from odradek.replication.partition import (
    Action,
    AdvanceHighWatermark,
    BecomeLeader,
    ProposeIsr,
    ReplicatedPartition,
    TruncateTo,
)
from odradek.replication.quorum import RaftMetadataLog
from odradek.replication.raft_messages import NotLeader
from odradek.storage.epoch import LeaderEpochCache
from tests.raft_sim import SimNode, Simulation, Violation, cluster_size

TOPIC, TOPIC_ID, PARTITION = "sim", "00000000-0000-4000-8000-000000000001", 0
LAG_MS = 300  # replica.lag.time.max.ms
SESSION_MS = 250  # broker.session.timeout.ms
HEARTBEAT_MS = (30, 60)  # broker.heartbeat.interval.ms
ISR_CHECK_MS = (25, 50)  # the replica manager's ISR check (and the controller's fencing check)
FETCH_POLL_MS = (20, 50)  # a follower's next fetch when there was nothing new
FETCH_AGAIN_MS = (1, 8)  # ... and after a fetch that brought records
REQUEST_TIMEOUT_MS = 200  # a request without an answer by then failed (the peer is unavailable)
RETRY_MS = 20  # after an error or a failed request
FORWARD_TIMEOUT_MS = 1500  # Controller.run_op gives up and the ISR change is refused
PRODUCE_MS = (5, 30)
MAX_FETCH_RECORDS = 5


# -- the partition's log on one node's disk ---------------------------------------


def _epoch_cache() -> LeaderEpochCache:
    """storage.epoch.LeaderEpochCache, in memory only (never read from or written to a file)."""
    cache = LeaderEpochCache.__new__(LeaderEpochCache)
    cache.entries, cache.dirty = [], False
    return cache


@dataclass(slots=True)
class Replica:
    """The log as storage.Log keeps it: records and the leader-epoch cache they teach."""

    node: int
    log: list = field(default_factory=list)  # (record, leader_epoch) per offset
    epochs: LeaderEpochCache = field(default_factory=_epoch_cache)
    high_watermark: int = 0  # checkpointed

    @property
    def log_end(self) -> int:
        return len(self.log)

    @property
    def latest_epoch(self) -> int:
        epoch = self.epochs.latest_epoch
        return -1 if epoch is None else epoch

    def append(self, records: list) -> None:
        for record in records:  # one record per batch: Log learns each batch's epoch
            self.epochs.assign(record[1], len(self.log))
            self.log.append(record)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch on this log (Log.end_offset_for_epoch)."""
        return self.epochs.end_offset_for_epoch(epoch, self.log_end)

    def truncate(self, end: int) -> None:
        del self.log[end:]
        self.epochs.truncate_from_end(end)
        self.high_watermark = min(self.high_watermark, end)


def cut(follower: Replica, partition: ReplicatedPartition, requested: int, epoch: int,
        end_offset: int) -> list[Action]:
    """The leader's answer to OffsetForLeaderEpoch, given to the follower's state machine."""
    return partition.on_epoch_answer(requested, epoch, end_offset,
                                     lambda e: follower.end_offset_for_epoch(e)[1], follower.log_end)


# -- what a node's broker process holds in memory (lost with the process) ---------


@dataclass(frozen=True, slots=True)
class Wire:
    """A request or response between brokers (not Raft's)."""

    from_: int
    to: int
    kind: str
    body: tuple


@dataclass(slots=True, eq=False)
class AlterRequest:
    """An AlterPartition on its way to the controller (ReplicaManager._alter_isr via run_op)."""

    proposal: ProposeIsr
    args: tuple  # leader id, leader epoch, partition epoch, ISR
    deadline: int
    attempt: int = 0


class _Proposed(Exception):
    def __init__(self, records: list) -> None:
        self.records = records


class _ProposeLog:
    """The controller's metadata log here: the records it would commit come back to the
    simulation, which proposes them to the simulated Raft node (run_controller)."""

    is_active = True

    async def append(self, records: list) -> None:
        raise _Proposed(records)


def run_controller(coroutine) -> list | KafkaError:
    """Run a controller operation up to its commit: the records to propose, or its refusal."""
    try:
        coroutine.send(None)
    except _Proposed as p:
        return p.records
    except KafkaError as e:
        return e
    except StopIteration:
        return []
    raise AssertionError("a controller operation waited for something other than its commit")


@dataclass(slots=True, eq=False)
class Broker:
    node_id: int
    controller: Controller
    partition: ReplicatedPartition  # the process's state machine of the partition
    request: int | None = None  # the token of its outstanding OffsetForLeaderEpoch or Fetch
    alters: dict[int, AlterRequest] = field(default_factory=dict)
    # The controller's side, while this node is the Raft leader.
    active_term: int = -1
    catch_up_to: int = 0  # the committed index it must apply before it acts on its image
    proposals: dict[int, tuple] = field(default_factory=dict)  # Raft index -> (term, reply or None)
    busy: int | None = None  # the index of the change being committed: the controller's lock
    waiting: list = field(default_factory=list)  # AlterPartitions behind the lock

    @property
    def isr_state(self) -> IsrState | None:
        """The leader's ISR and high-watermark state while the image says this node leads."""
        return self.partition.isr_state

    @property
    def following_epoch(self) -> int:
        """The leader epoch it truncated for (-1: none), by its state machine."""
        epoch = self.partition.truncated_epoch
        return -1 if epoch is None else epoch


def partition_of(image: MetadataImage) -> PartitionState:
    return image.topics_by_id[TOPIC_ID].partitions[PARTITION]


# -- the invariants -----------------------------------------------------------------


class PartitionChecker:
    def __init__(self, sim: ClusterSimulation) -> None:
        self.sim = sim
        self.acked: list[tuple[str, int]] = []  # per offset: (record, epoch acknowledged under)
        self.leaders: dict[int, int] = {}  # leader epoch -> the node that led it
        self.latest_index = -1  # the latest committed partition state seen applied anywhere
        self.latest: tuple[int, int, list[int]] = (-1, -1, [])  # leader epoch, leader, ISR
        self.last_acked_produced_at = -1
        self.dirty = False

    def on_metadata(self, node: SimNode) -> None:
        if node.sm.index > self.latest_index:
            self.latest_index = node.sm.index
            p = partition_of(node.sm.image)
            self.latest = (p.leader_epoch, p.leader, list(p.isr))
        self.dirty = True

    def _check_log(self, n: int, bound: int, whole: bool, start: int = 0) -> None:
        """Replica n holds each record acknowledged under epoch <= bound from ``start``:
        all of them (``whole``: a leader), or those below its log end."""
        log = self.sim.replicas[n].log
        for offset in range(start, len(self.acked)):
            record, epoch = self.acked[offset]
            if epoch > bound:
                continue
            if offset >= len(log):
                if whole:
                    raise Violation(f"acked offset lost: leader {n} (epoch {bound + 1}) lacks offset "
                                    f"{offset} acknowledged under epoch {epoch}; log end {len(log)}")
                return
            if log[offset][0] != record:
                raise Violation(f"acked offset replaced: node {n} holds {log[offset]} at {offset}, "
                                f"acknowledged as {record} under epoch {epoch}")

    def on_leader(self, n: int, state: IsrState) -> None:
        first = self.leaders.setdefault(state.leader_epoch, n)
        if first != n:
            raise Violation(f"nodes {first} and {n} both led leader epoch {state.leader_epoch}")
        self._check_log(n, state.leader_epoch, whole=True)  # (re-led after a restart: its own too)
        self.dirty = True

    def on_truncated(self, n: int, epoch: int) -> None:
        self._check_log(n, epoch, whole=False)
        self.dirty = True

    def on_follower_append(self, n: int, epoch: int, start: int) -> None:
        if epoch >= 0:
            self._check_log(n, epoch, whole=False, start=start)
        self.dirty = True

    def on_ack(self, offset: int, record: str, epoch: int, n: int) -> None:
        if offset < len(self.acked):
            if self.acked[offset][0] != record:
                raise Violation(f"acked offset replaced: leader {n} (epoch {epoch}) acknowledged "
                                f"{record} at {offset}, acknowledged before as {self.acked[offset]}")
            return
        if offset != len(self.acked):
            raise Violation(f"leader {n} acknowledged {offset} past the acknowledged {len(self.acked)}")
        self.acked.append((record, epoch))
        self.last_acked_produced_at = max(self.last_acked_produced_at, self.sim.produced_at[record])
        for m, b in self.sim.brokers.items():  # later leaders, followers of this epoch or later
            bound = b.isr_state.leader_epoch - 1 if b.isr_state is not None else b.following_epoch
            if m != n and m in self.sim.replicas and bound >= epoch:
                self._check_log(m, bound, whole=b.isr_state is not None, start=offset)

    def check_high_watermarks(self) -> None:
        """The current leader's high watermark never exceeds the log end offset of any member
        of the ISR last committed. (A stale leader, deposed or acting on an image it has not
        caught up yet, is held to the acknowledgement checks instead.)"""
        if not self.dirty:
            return
        self.dirty = False
        replicas = self.sim.replicas
        epoch, leader, latest_isr = self.latest
        b = self.sim.brokers.get(leader)
        state = b.isr_state if b is not None else None
        if state is not None and state.leader_epoch == epoch:
            for r in latest_isr:
                if state.high_watermark > replicas[r].log_end:
                    raise Violation(
                        f"high watermark {state.high_watermark} of leader {leader} (epoch "
                        f"{state.leader_epoch}) above the log end {replicas[r].log_end} of ISR "
                        f"member {r} (its ISR {state.isr}, committed {latest_isr})")


# -- the simulation ------------------------------------------------------------------


class ClusterSimulation(Simulation):
    """The Raft simulation with a replicated partition on its nodes (see the module docstring)."""

    def __init__(self, seed: int, voters: int, *, catch_up: bool = True, **options) -> None:
        super().__init__(seed, voters, **options)
        self.catch_up = catch_up
        # In some seeds a new partition leader often dies young, before its first records
        # have reached anyone: what leaves divergent suffixes for OffsetForLeaderEpoch.
        self.crash_new_leader = self.rng.choice([0.0, 0.3])
        order = self.rng.sample(self.voter_ids, min(3, voters))
        self.replicas = {n: Replica(n) for n in order}  # each replica's disk
        self.replica_order = order
        self.min_insync = min(2, len(order))
        self.brokers: dict[int, Broker] = {}  # the processes that are up
        self.pchecker = PartitionChecker(self)
        self.produced_at: dict[str, int] = {}
        self._next_id = 0

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def initial_image(self) -> MetadataImage:
        """The cluster as created: every voter a broker, one partition led by its first replica."""
        image = MetadataImage()
        for n in self.voter_ids:
            image.apply(RegisterBrokerRecord(n, {"PLAINTEXT": ["127.0.0.1", 9092 + n]}))
        image.apply(TopicRecord(TOPIC, TOPIC_ID))
        order = self.replica_order
        image.apply(PartitionRecord(TOPIC_ID, PARTITION, list(order), list(order), order[0]))
        return image

    def run(self, max_events: int = 300_000) -> None:
        self.at(0, self.produce)
        super().run(max_events)

    def _schedule_chaos(self) -> None:
        super()._schedule_chaos()
        for _ in range(self.rng.randrange(8)):  # failovers of the partition, not only of Raft
            self.at(self.rng.randrange(self.chaos_ms), self.crash_partition_leader)

    def crash_partition_leader(self) -> None:
        for n, b in list(self.brokers.items()):
            if b.isr_state is not None:
                self.crash(n, True, (SESSION_MS, 8 * SESSION_MS))  # mostly long enough to fence

    def after_step(self) -> None:
        self.pchecker.check_high_watermarks()

    def _up(self, n: int, incarnation: int) -> Broker | None:
        node = self.nodes[n]
        if node.raft is None or node.incarnation != incarnation:
            return None
        return self.brokers[n]

    # Process lifecycle.

    def on_start(self, node: SimNode) -> None:
        n, inc = node.node_id, node.incarnation
        controller = Controller(node.sm.image, num_partitions=1,
                                default_replication_factor=len(self.replicas),
                                validate_topic_configs=lambda configs: None,
                                broker_session_timeout_ms=SESSION_MS)
        controller.metadata_log = _ProposeLog()
        self.brokers[n] = b = Broker(n, controller, ReplicatedPartition(n, LAG_MS))
        if self.catch_up:
            b.catch_up_to = self.pchecker.latest_index
        self.at(self.now + self.rng.randrange(*HEARTBEAT_MS), self.heartbeat, n, inc)
        self.at(self.now + self.rng.randrange(*ISR_CHECK_MS), self.isr_check, n, inc)
        if n in self.replicas:
            self.at(self.now + self.rng.randrange(*FETCH_POLL_MS), self.fetch_poll, n, inc)
        self.sync_role(node)

    def on_crash(self, node: SimNode) -> None:
        del self.brokers[node.node_id]
        self.pchecker.dirty = True

    # The metadata image: roles follow it (ReplicaManager._update_role).

    def on_applied(self, node: SimNode, committed: list) -> None:
        b = self.brokers[node.node_id]
        raft = node.raft
        answers = []
        for entry in committed:
            if raft.is_leader and entry.term == raft.term:
                b.active_term = entry.term
            if b.busy == entry.index:
                b.busy = None
            pending = b.proposals.pop(entry.index, None)
            if pending is not None and pending[1] is not None:
                answers.append((pending[1], entry.term == pending[0]))
        self.pchecker.on_metadata(node)
        self.sync_role(node)
        epoch = partition_of(node.sm.image).partition_epoch
        for reply, committed_here in answers:
            reply(("ok", epoch) if committed_here else ("not_controller",))
        if b.waiting and b.busy is None:
            self.at(self.now, self.controller_next, node.node_id, node.incarnation)

    def on_raft_input(self, node: SimNode) -> None:
        b = self.brokers[node.node_id]
        if node.raft.is_leader or not (b.proposals or b.waiting):
            return
        # Leadership moved: what was proposed may never commit; the requesters go elsewhere.
        proposals, waiting = b.proposals, b.waiting
        b.proposals, b.waiting, b.busy = {}, [], None
        for _, reply in proposals.values():
            if reply is not None:
                reply(("not_controller",))
        for requester, rid, attempt, _ in waiting:
            self._replier(node.node_id, requester, rid, attempt)(("not_controller",))

    def sync_role(self, node: SimNode) -> None:
        n = node.node_id
        if n not in self.replicas:
            return
        b = self.brokers[n]
        if node.sm.index < b.catch_up_to:
            return  # still replaying the metadata log: its image may be far behind
        replica = self.replicas[n]
        self.apply(n, b.partition.on_metadata(partition_of(node.sm.image), replica.log_end,
                                              replica.high_watermark, self.now))

    def apply(self, n: int, actions: list[Action]) -> None:
        """Carry out the partition state machine's actions on node n (ReplicaManager._apply):
        what has no simulated counterpart (waiters, listeners, metrics; the fetch poll follows
        the image's leader by itself) is nothing here."""
        b, replica = self.brokers[n], self.replicas[n]
        for action in actions:
            match action:
                case BecomeLeader(leader_epoch, start_offset, _):
                    b.request = None
                    replica.epochs.assign(leader_epoch, start_offset)
                    assert b.isr_state is not None
                    self.pchecker.on_leader(n, b.isr_state)
                    if self.rng.random() < self.crash_new_leader:
                        self.at(self.now + self.rng.randrange(5, 60), self.crash, n, True)
                case AdvanceHighWatermark(high_watermark, _):
                    if b.isr_state is not None:
                        self.publish(n, high_watermark)
                    else:
                        replica.high_watermark = high_watermark
                case TruncateTo(offset):
                    replica.truncate(offset)

    def publish(self, n: int, high_watermark: int) -> None:
        """The leader's high watermark moved: what is below it is acknowledged (acks=all)."""
        state, replica = self.brokers[n].isr_state, self.replicas[n]
        assert state is not None
        for offset in range(replica.high_watermark, high_watermark):
            self.pchecker.on_ack(offset, replica.log[offset][0], state.leader_epoch, n)
        replica.high_watermark = high_watermark
        self.pchecker.dirty = True

    # Messages.

    def on_message(self, node: SimNode, msg: Wire) -> None:
        getattr(self, "on_" + msg.kind)(node.node_id, msg.from_, *msg.body)
        self.pchecker.dirty = True

    def _reply(self, n: int, to: int, kind: str, *body) -> None:
        self.send(Wire(n, to, kind, body))

    # The controller (on the Raft leader).

    def is_active(self, n: int) -> bool:
        raft = self.nodes[n].raft
        return raft.is_leader and self.brokers[n].active_term == raft.term

    def propose(self, n: int, records: list, reply=None) -> None:
        node, b = self.nodes[n], self.brokers[n]
        try:
            index = node.raft.propose(RaftMetadataLog._encode(records))
        except NotLeader:
            if reply is not None:
                reply(("not_controller",))
            return
        b.busy = index
        b.proposals[index] = (node.raft.term, reply)
        self.after_input(node)

    def heartbeat(self, n: int, inc: int) -> None:
        if self._up(n, inc) is None:
            return
        leader = self.nodes[n].raft.leader_id
        if leader == n:
            self.on_heartbeat(n, n)
        elif leader is not None:
            self._reply(n, leader, "heartbeat")
        self.at(self.now + self.rng.randrange(*HEARTBEAT_MS), self.heartbeat, n, inc)

    def on_heartbeat(self, c: int, broker_id: int) -> None:
        if not self.is_active(c):
            return
        b = self.brokers[c]
        b.controller._sessions.touch(broker_id, b.active_term, self.now)
        image = self.nodes[c].sm.image
        if image.brokers[broker_id].fenced and b.busy is None:
            b.controller.image = image
            self.propose(c, b.controller._unfence(broker_id))

    def check_fencing(self, c: int) -> None:
        """Controller.run_fencing: fence a broker silent for SESSION_MS."""
        b = self.brokers[c]
        if not self.is_active(c):
            return
        image = self.nodes[c].sm.image
        for broker_id, _ in b.controller._sessions.expired(image.brokers, b.active_term, self.now, SESSION_MS):
            if not image.brokers[broker_id].fenced and b.busy is None:
                b.controller.image = image
                self.propose(c, b.controller._fence(broker_id))

    def on_alter(self, c: int, requester: int, rid: int, attempt: int, args: tuple) -> None:
        reply = self._replier(c, requester, rid, attempt)
        if not self.is_active(c):
            reply(("not_controller",))
            return
        b = self.brokers[c]
        if b.busy is not None:
            b.waiting.append((requester, rid, attempt, args))
            return
        b.controller.image = self.nodes[c].sm.image
        outcome = run_controller(
            b.controller.alter_partition.__wrapped__(b.controller, TOPIC_ID, PARTITION, *args))
        if isinstance(outcome, KafkaError):
            reply(("error", outcome.message))
        else:
            self.propose(c, outcome, reply)

    def controller_next(self, c: int, inc: int) -> None:
        b = self._up(c, inc)
        if b is not None and b.waiting and b.busy is None:
            self.on_alter(c, *b.waiting.pop(0))

    def _replier(self, c: int, requester: int, rid: int, attempt: int):
        if requester == c:
            return lambda result: self.on_alter_reply(c, c, rid, attempt, result)
        return lambda result: self._reply(c, requester, "alter_reply", rid, attempt, result)

    # The partition leader's ISR changes (ReplicaManager._maintain_isr and _alter_isr).

    def isr_check(self, n: int, inc: int) -> None:
        b = self._up(n, inc)
        if b is None:
            return
        self.check_fencing(n)
        proposal = b.partition.proposed_isr(self.now)
        if proposal is not None:
            rid = self._id()
            b.alters[rid] = AlterRequest(
                proposal, (n, proposal.leader_epoch, proposal.partition_epoch, proposal.isr),
                deadline=self.now + FORWARD_TIMEOUT_MS)
            self.alter_attempt(n, rid)
        self.at(self.now + self.rng.randrange(*ISR_CHECK_MS), self.isr_check, n, inc)

    def alter_attempt(self, n: int, rid: int) -> None:
        b = self.brokers.get(n)
        request = b.alters.get(rid) if b is not None else None
        if request is None:
            return
        if self.now > request.deadline:  # run_op gives up: NOT_CONTROLLER
            del b.alters[rid]
            b.partition.on_isr_refused(request.proposal)
            return
        request.attempt += 1
        leader = self.nodes[n].raft.leader_id
        if leader == n:
            self.on_alter(n, n, rid, request.attempt, request.args)
        elif leader is None:
            self.at(self.now + RETRY_MS, self.alter_attempt, n, rid)
        else:
            self._reply(n, leader, "alter", rid, request.attempt, request.args)
            self.at(self.now + REQUEST_TIMEOUT_MS, self.alter_timeout, n, rid, request.attempt)

    def alter_timeout(self, n: int, rid: int, attempt: int) -> None:
        b = self.brokers.get(n)
        request = b.alters.get(rid) if b is not None else None
        if request is not None and request.attempt == attempt:
            request.attempt += 1  # a late answer to this attempt is dropped with its connection
            self.at(self.now + RETRY_MS, self.alter_attempt, n, rid)

    def on_alter_reply(self, n: int, _from: int, rid: int, attempt: int, result: tuple) -> None:
        b = self.brokers[n]
        request = b.alters.get(rid)
        if request is None or request.attempt != attempt:
            return
        if result[0] == "not_controller":
            self.at(self.now + RETRY_MS, self.alter_attempt, n, rid)
            return
        del b.alters[rid]
        if result[0] == "error":
            b.partition.on_isr_refused(request.proposal)
        else:
            self.apply(n, b.partition.on_isr_answer(request.proposal, result[1]))
        self.pchecker.dirty = True

    # Followers (ReplicaManager._replicate): truncate by OffsetForLeaderEpoch, then fetch.

    def fetch_poll(self, n: int, inc: int) -> None:
        if self._up(n, inc) is not None:
            self.at(self.now + self.rng.randrange(*FETCH_POLL_MS), self.fetch_poll, n, inc)
            self.fetch(n)

    def fetch(self, n: int) -> None:
        b = self.brokers.get(n)
        if b is None:
            return
        node = self.nodes[n]
        if node.sm.index < b.catch_up_to:
            return
        p = partition_of(node.sm.image)
        if b.isr_state is not None or b.request is not None or p.leader in (-1, n):
            return
        replica = self.replicas[n]
        latest = b.partition.epoch_to_ask(replica.latest_epoch)
        if latest is not None:
            b.request = token = self._id()
            self._reply(n, p.leader, "epoch_request", token, p.leader_epoch, latest)
            self.at(self.now + REQUEST_TIMEOUT_MS, self.request_timeout, n, token)
            return
        offset = b.partition.fetch_offset(replica.log_end)
        assert offset is not None
        b.request = token = self._id()
        self._reply(n, p.leader, "fetch", token, p.leader_epoch, offset)
        self.at(self.now + REQUEST_TIMEOUT_MS, self.request_timeout, n, token)

    def request_timeout(self, n: int, token: int) -> None:
        b = self.brokers.get(n)
        if b is not None and b.request == token:
            b.request = None

    def _leads(self, n: int, leader_epoch: int) -> IsrState | None:
        """The leader's state if node n leads at the request's epoch (the fetch handler's
        leader_partition and check_leader_epoch), else None (an error answer)."""
        partition = self.brokers[n].partition
        try:
            partition.check_leader_epoch(leader_epoch)
        except KafkaError:
            return None
        return partition.isr_state

    def on_epoch_request(self, n: int, follower: int, token: int, leader_epoch: int,
                         requested: int) -> None:
        if self._leads(n, leader_epoch) is None:
            self._reply(n, follower, "epoch_response", token, leader_epoch, requested, None)
        else:
            answer = self.replicas[n].end_offset_for_epoch(requested)
            self._reply(n, follower, "epoch_response", token, leader_epoch, requested, answer)

    def on_epoch_response(self, n: int, leader: int, token: int, leader_epoch: int, requested: int,
                          answer: tuple | None) -> None:
        b = self.brokers[n]
        if b.request != token:
            return
        b.request = None
        p = partition_of(self.nodes[n].sm.image)
        if answer is None or b.isr_state is not None or (p.leader, p.leader_epoch) != (leader, leader_epoch):
            return
        self.apply(n, cut(self.replicas[n], b.partition, requested, *answer))
        self.pchecker.on_truncated(n, leader_epoch)
        self.at(self.now + self.rng.randrange(*FETCH_AGAIN_MS), self.fetch, n)

    def on_fetch(self, n: int, follower: int, token: int, leader_epoch: int, offset: int) -> None:
        state = self._leads(n, leader_epoch)
        replica = self.replicas[n]
        if state is None:
            self._reply(n, follower, "fetch_response", token, offset, None, -1)
        elif offset > replica.log_end:
            self._reply(n, follower, "fetch_response", token, offset, "out_of_range", -1)
        else:
            self.apply(n, self.brokers[n].partition.on_follower_fetch(follower, offset, -1, self.now))
            records = replica.log[offset:offset + self.rng.randint(0, MAX_FETCH_RECORDS)]
            self._reply(n, follower, "fetch_response", token, offset, records, state.high_watermark)

    def on_fetch_response(self, n: int, leader: int, token: int, offset: int, records,
                          high_watermark: int) -> None:
        b = self.brokers[n]
        if b.request != token:
            return
        b.request = None
        replica = self.replicas[n]
        if records == "out_of_range":
            # ask the leader again where we stand (no log start offset is simulated: the
            # log is never behind it)
            actions = b.partition.on_out_of_range(0, replica.log_end)
            assert not actions
            return
        if records is None or b.isr_state is not None or replica.log_end != offset:
            return
        if partition_of(self.nodes[n].sm.image).leader != leader:
            return  # no longer following that leader: the fetcher dropped the partition
        replica.append(records)
        # (No log start offset is simulated: nothing is deleted.)
        self.apply(n, b.partition.on_fetched(high_watermark, replica.log_end, -1, 0))
        self.pchecker.on_follower_append(n, b.following_epoch, offset)
        if records:  # the leader has more, or soon will: fetch again (a long poll, roughly)
            self.at(self.now + self.rng.randrange(*FETCH_AGAIN_MS), self.fetch, n)

    # Producers: acks=all, to whichever node believes it leads.

    def produce(self) -> None:
        leaders = [n for n, b in self.brokers.items() if b.isr_state is not None]
        if leaders:
            n = self.rng.choice(leaders)
            b, replica = self.brokers[n], self.replicas[n]
            state = b.isr_state
            assert state is not None
            if state.in_sync_count(self.now) >= self.min_insync:
                record = f"r{self._id()}"
                self.produced_at[record] = self.now
                replica.append([(record, state.leader_epoch)])
                self.apply(n, b.partition.on_append(replica.log_end))
                self.pchecker.dirty = True
        if self.now < self.end_ms:
            self.at(self.now + self.rng.randrange(*PRODUCE_MS), self.produce)

    def check_liveness(self) -> None:
        super().check_liveness()
        settle_from = (self.chaos_ms + self.end_ms) // 2
        if self.pchecker.last_acked_produced_at < settle_from:
            raise Violation(
                f"liveness: no record produced after {settle_from} ms was acknowledged "
                f"(partition: {partition_of(self.nodes[self.voter_ids[0]].sm.image)})")


def run_seed(seed: int, **options) -> ClusterSimulation:
    sim = ClusterSimulation(seed, cluster_size(seed), **options)
    sim.run()
    return sim


def main() -> None:
    """python -m tests.partition_sim SEED: run one seed as the test does; show where it ended."""
    import sys

    seed = int(sys.argv[1])
    sim = ClusterSimulation(seed, cluster_size(seed))
    try:
        sim.run()
        print(f"seed {seed}: ok after {sim.events_run} events")
    except Violation as exc:
        print(f"seed {seed}: VIOLATION at {sim.now} ms: {exc}")
    print(f"loss={sim.loss} duplicate={sim.duplicate} defer_drain={sim.defer_drain} wipes={sim.wipes}")
    print(f"partition leaders by epoch: {sim.pchecker.leaders}; acknowledged: {len(sim.pchecker.acked)}")
    for n, node in sim.nodes.items():
        raft, replica = node.raft, sim.replicas.get(n)
        p = partition_of(node.sm.image)
        state = f"raft {raft.role.value} term={raft.term} applied={node.sm.index}" if raft else "down"
        part = (f"log_end={replica.log_end} hw={replica.high_watermark}" if replica else "no replica")
        print(f"  node {n}: {state}; image: leader={p.leader} epoch={p.leader_epoch}/"
              f"{p.partition_epoch} isr={p.isr}; {part}")


if __name__ == "__main__":
    main()

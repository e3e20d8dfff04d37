"""A deterministic discrete-event simulation of a Raft cluster, and the checker of its invariants.

The quorum half of the cluster simulation: tests/partition_sim.py runs partition replication on
these nodes, through the hooks of ``Simulation`` (its metadata image is ``StateMachine.image``),
and tests/unit/test_raft_sim.py runs both. Everything is driven by one seeded random.Random,
so a failing seed replays exactly. The simulated driver follows the Ready contract to the
letter (persist, then send, then apply) and sometimes defers its drain by a few ms, so a
crash loses exactly what had not been handed to the disk yet.

Faults: message loss, delay, duplication and reordering; symmetric and one-way partitions
that heal; crashes with restart from what the disk holds; in some seeds one voter's data
directory is wiped (fresh directory id, empty state) once the voter binding has reached
every voter (see the window in replication/raft.py); leader resignations.

Invariants, checked as events happen (Checker): election safety, log matching, leader
completeness, state-machine safety; and at the end, after everything healed, liveness: a
leader exists and a fresh proposal commits.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from odradek.replication.metadata import MetadataImage
from odradek.replication.quorum import RaftMetadataLog
from odradek.replication.raft import RaftConfig, RaftNode, Role
from odradek.replication.raft_messages import (
    EntryKind,
    HardState,
    LogEntry,
    Message,
    NotLeader,
    PersistentState,
    Ready,
    Snapshot,
)

RAFT_CONFIG = RaftConfig(
    election_timeout_ms=150, heartbeat_interval_ms=40, max_entries_per_append=16
)


class Violation(AssertionError):
    pass


def entry_key(entry: LogEntry) -> tuple:
    return (entry.term, entry.kind, entry.data, entry.voters)


@dataclass(slots=True)
class Disk:
    """What survives a crash: exactly what the driver persisted from each Ready."""

    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    entries: list[LogEntry] = field(default_factory=list)

    def term_at(self, index: int) -> int | None:
        base = self.snapshot.last_index if self.snapshot else 0
        if index == base:
            return self.snapshot.last_term if self.snapshot else 0
        if base < index <= base + len(self.entries):
            return self.entries[index - base - 1].term
        return None

    def persist(self, ready: Ready) -> None:
        base = self.snapshot.last_index if self.snapshot else 0
        if ready.snapshot is not None:
            drop = max(0, ready.snapshot.last_index - base)
            self.entries = self.entries[drop:] if drop <= len(self.entries) else []
            self.snapshot = ready.snapshot
            base = ready.snapshot.last_index
        if ready.truncate_from is not None:
            del self.entries[max(0, ready.truncate_from - base - 1) :]
        for entry in ready.entries:
            if entry.index != base + len(self.entries) + 1:
                raise Violation(f"Ready appends {entry.index} after {base + len(self.entries)}")
            self.entries.append(entry)
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state

    def state(self) -> PersistentState:
        state = PersistentState(snapshot=self.snapshot, entries=list(self.entries))
        if self.hard_state is not None:
            state.hard_state = self.hard_state
        return state


def is_metadata(data: bytes) -> bool:
    """Metadata records (a JSON list, as RaftMetadataLog encodes them), not a client's bytes."""
    return data.startswith(b"[")


@dataclass(slots=True)
class StateMachine:
    """The application: a running digest of everything applied, and the metadata image that the
    metadata records among the entries build (MetadataImage.apply, as every broker applies
    them); snapshotted as 'index:digest:' and the image's records."""

    index: int = 0
    digest: int = 0
    image: MetadataImage = field(default_factory=MetadataImage)

    def apply(self, entry: LogEntry) -> None:
        if entry.kind is EntryKind.DATA and is_metadata(entry.data):
            for record in RaftMetadataLog._decode(entry.data):
                self.image.apply(record, entry.index)

    def encode(self) -> bytes:
        return f"{self.index}:{self.digest}:".encode() + RaftMetadataLog._encode(self.image.to_records())

    @classmethod
    def decode(cls, data: bytes) -> StateMachine:
        if not data:
            return cls()
        index, digest, records = data.split(b":", 2)
        image = MetadataImage()
        image.reset(RaftMetadataLog._decode(records), int(index))
        return cls(int(index), int(digest), image)


class Checker:
    """The safety invariants, fed by the simulation as things happen."""

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> the node that won it
        self.entries: dict[tuple[int, int], tuple] = {}  # (index, term) -> (entry, prev term)
        self.applied: dict[int, tuple[tuple, int]] = {}  # index -> (entry key, digest)
        self.commit_term: dict[int, int] = {}  # index -> earliest term it was seen committed

    def on_leader(self, node: RaftNode) -> None:
        """Called whenever a node is leader; checks a term's winner when first seen."""
        term = node.term
        winner = self.leaders.get(term)
        if winner == node.node_id:
            return
        if winner is not None:
            raise Violation(
                f"election safety: nodes {winner} and {node.node_id} both led term {term}"
            )
        self.leaders[term] = node.node_id
        snapshot = node.snapshot
        snap_index = snapshot.last_index if snapshot else 0
        for index, committed_in in self.commit_term.items():
            if committed_in >= term or index < snap_index:
                continue
            key = self.applied[index][0]
            has = snapshot.last_term if index == snap_index else node.term_at(index)
            if has != key[0]:
                raise Violation(
                    f"leader completeness: leader {node.node_id} of term {term} lacks entry "
                    f"{index} (term {key[0]}) committed in term {committed_in}"
                )

    def on_persist(self, node_id: int, disk: Disk, entries: list[LogEntry]) -> None:
        for entry in entries:
            record = (entry_key(entry), disk.term_at(entry.index - 1))
            seen = self.entries.setdefault((entry.index, entry.term), record)
            if seen != record:
                raise Violation(
                    f"log matching: node {node_id} holds {record} at ({entry.index}, {entry.term}), "
                    f"another log holds {seen}"
                )

    def on_apply(self, node_id: int, sm: StateMachine, entry: LogEntry, term_now: int) -> None:
        if entry.index != sm.index + 1:
            raise Violation(f"node {node_id} applied {entry.index} after {sm.index}")
        key = entry_key(entry)
        sm.index, sm.digest = entry.index, hash((sm.digest, entry.index, key))
        seen = self.applied.setdefault(entry.index, (key, sm.digest))
        if seen != (key, sm.digest):
            raise Violation(
                f"state machine safety: node {node_id} applied {key} at {entry.index}, another {seen[0]}"
            )
        self.commit_term[entry.index] = min(term_now, self.commit_term.get(entry.index, term_now))

    def on_restore(self, node_id: int, snapshot: Snapshot) -> None:
        sm = StateMachine.decode(snapshot.data)
        seen = self.applied.get(sm.index)
        if sm.index != snapshot.last_index or (
            seen and (seen[0][0], seen[1]) != (snapshot.last_term, sm.digest)
        ):
            raise Violation(
                f"state machine safety: node {node_id} restored a snapshot unlike the history at {sm.index}"
            )


@dataclass(slots=True)
class SimNode:
    """One voter as its driver sees it: a disk that survives crashes and a process that does not."""

    node_id: int
    directory_id: str
    disk: Disk = field(default_factory=Disk)
    raft: RaftNode | None = None
    sm: StateMachine = field(default_factory=StateMachine)
    incarnation: int = 0
    tick_token: int = 0
    drain_pending: bool = False


NodeFactory = Callable[..., RaftNode]


def cluster_size(seed: int) -> int:
    """Most seeds run three voters; one in ten five, one in twenty a single voter."""
    if seed % 20 == 3:
        return 1
    return 5 if seed % 10 == 7 else 3


class Simulation:
    """One seeded run: chaos_ms of faults, then everything healed for settle_ms."""

    def __init__(
        self,
        seed: int,
        voters: int,
        *,
        chaos_ms: int = 3000,
        settle_ms: int = 2000,
        node_factory: NodeFactory = RaftNode,
        observers: int = 0,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.chaos_ms = chaos_ms
        self.end_ms = chaos_ms + settle_ms
        self.node_factory = node_factory
        self.voter_ids = list(range(1, voters + 1))
        # Nodes that replicate the log without a vote (KRaft's process.roles=broker).
        self.observer_ids = list(range(voters + 1, voters + 1 + observers))
        self.nodes = {n: SimNode(n, f"dir-{n}-0") for n in self.voter_ids + self.observer_ids}
        self.checker = Checker()
        self.now = 0
        self._events: list[tuple] = []
        self._seq = 0
        self.blocked: Counter[tuple[int, int]] = Counter()  # directed links cut by partitions
        self.loss = self.rng.choice([0.0, 0.01, 0.05, 0.2])
        self.duplicate = self.rng.choice([0.0, 0.02, 0.1])
        self.defer_drain = self.rng.choice([0.0, 0.3])
        self.compact_every = self.rng.choice([5, 20, 10**9])
        # In some seeds a node crashes right after a hard state change (a vote) and comes back
        # within ms, while the election it voted in may still be running.
        self.crash_after_vote = self.rng.choice([0.0, 0.0, 0.2])
        self.healed = False
        self.wipes = 0
        self.client_seq = 0
        self.events_run = 0

    # Event loop.

    def at(self, time: int, handler: Callable, *args: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (time, self._seq, handler, args))

    def run(self, max_events: int = 300_000) -> None:
        for n in self.nodes:
            self.at(self.rng.randrange(20), self.restart, n)
        self._schedule_chaos()
        self.at(self.chaos_ms, self.heal_all)
        self.at(0, self.client)
        while self._events:
            time, _, handler, args = heapq.heappop(self._events)
            if time > self.end_ms:
                break
            self.now = time
            handler(*args)
            self.after_step()
            self.events_run += 1
            if self.events_run > max_events:
                raise Violation(f"more than {max_events} events: a message storm?")
        self.check_liveness()

    def _schedule_chaos(self) -> None:
        rng, chaos = self.rng, self.chaos_ms
        if len(self.voter_ids) > 1:
            for _ in range(rng.randrange(5)):
                self.at(rng.randrange(chaos), self.partition)
            if len(self.voter_ids) >= 3 and rng.random() < 0.25:
                self.at(rng.randrange(chaos // 2), self.try_wipe)
            for _ in range(rng.randrange(3)):
                self.at(rng.randrange(chaos), self.resign_leader)
        for _ in range(rng.randrange(4)):
            self.at(rng.randrange(chaos), self.crash, rng.choice(list(self.nodes)), True)
        for _ in range(rng.randrange(3)):
            self.at(rng.randrange(chaos), self.crash_leader)

    # The application on the nodes: nothing here; tests/partition_sim.py runs partition
    # replication on top of the quorum through these hooks.

    def initial_image(self) -> MetadataImage:
        """The metadata image of an empty metadata log."""
        return MetadataImage()

    def on_start(self, node: SimNode) -> None:
        """The node's process started, its image restored from its snapshot (if any)."""

    def on_crash(self, node: SimNode) -> None:
        """The node's process is about to die."""

    def on_applied(self, node: SimNode, committed: list[LogEntry]) -> None:
        """The node applied committed entries (or a snapshot) to ``node.sm``."""

    def on_raft_input(self, node: SimNode) -> None:
        """The node's Raft core took an input (its role or term may have changed)."""

    def on_message(self, node: SimNode, msg) -> None:
        """A message that is not Raft's reached the node."""

    def after_step(self) -> None:
        """After every event: check the application's invariants."""

    # Nodes.

    def restart(self, n: int) -> None:
        node = self.nodes[n]
        if node.raft is not None:
            return
        node.incarnation += 1
        node.drain_pending = False
        state = node.disk.state()
        node.raft = self.node_factory(
            n,
            node.directory_id,
            self.voter_ids,
            now_ms=self.now,
            rng=random.Random(self.rng.random()),
            config=RAFT_CONFIG,
            state=state,
            **({"observer": True} if n in self.observer_ids else {}),
        )
        # The application restores its own image; the core replays committed entries after it.
        node.sm = StateMachine(image=self.initial_image())
        if state.snapshot is not None:
            self.checker.on_restore(n, state.snapshot)
            node.sm = StateMachine.decode(state.snapshot.data)
        self.on_start(node)
        self.after_input(node)

    def crash(self, n: int, restart: bool, downtime_ms: tuple[int, int] = (50, 800)) -> None:
        if self.healed:
            return  # faults scheduled during the chaos must not spill into the settle time
        node = self.nodes[n]
        if node.raft is not None:
            self.on_crash(node)
        node.raft = None  # whatever was not drained yet dies with the process
        node.tick_token += 1
        if restart:
            self.at(self.now + self.rng.randrange(*downtime_ms), self.restart, n)

    def crash_leader(self) -> None:
        for node in self.nodes.values():
            if node.raft is not None and node.raft.is_leader:
                self.crash(node.node_id, restart=True)

    def try_wipe(self) -> None:
        """Wipe one voter's data directory, in half the cases at the worst moment we can arrange.

        That moment: a lagging voter S and the wiped voter X are left alone while the leader,
        the only other holder of recent committed entries, is down. Without the directory
        binding, S could win with the wiped X's vote and lose committed entries.
        """
        if self.healed or self.wipes:
            return
        if not self._binding_everywhere():
            self.at(self.now + 100, self.try_wipe)
            return
        leader = next(
            (n for n, node in self.nodes.items() if node.raft and node.raft.is_leader), None
        )
        others = [n for n in self.voter_ids if n != leader]
        if leader is None or self.rng.random() < 0.5:
            self.wipe(self.rng.choice(self.voter_ids))
            return
        lagging, wiped = self.rng.sample(others, 2)
        links = [
            (a, b)
            for a in self.voter_ids
            for b in self.voter_ids
            if (a == lagging) != (b == lagging)
        ]
        self.blocked.update(links)
        later = self.now + self.rng.randrange(200, 800)
        self.at(later, self.heal, links)
        self.at(later, self.wipe, wiped)
        self.at(later, self.crash, leader, False)
        self.at(later + self.rng.randrange(300, 1500), self.restart, leader)

    def wipe(self, n: int) -> None:
        if self.healed:
            return
        self.wipes += 1
        self.crash(n, restart=False)
        node = self.nodes[n]
        node.disk = Disk()
        node.directory_id = f"dir-{n}-{self.wipes}"
        self.at(self.now + self.rng.randrange(10, 500), self.restart, n)

    def _binding_everywhere(self) -> bool:
        """Has a committed VOTERS record binding every voter reached every voter's disk?"""
        for index in sorted(self.checker.applied, reverse=True):
            key = self.checker.applied[index][0]
            if key[1] is EntryKind.VOTERS and all(v.directory_id for v in key[3]):
                return all(
                    (node.disk.snapshot and node.disk.snapshot.last_index >= index)
                    or node.disk.term_at(index) == key[0]
                    for n, node in self.nodes.items() if n in self.voter_ids
                )
        return False

    def after_input(self, node: SimNode) -> None:
        raft = node.raft
        if raft.role is Role.LEADER:
            if node.node_id in self.observer_ids:
                raise Violation(f"observer {node.node_id} became leader in term {raft.term}")
            self.checker.on_leader(raft)
        if self.defer_drain and self.rng.random() < self.defer_drain:
            if not node.drain_pending:
                node.drain_pending = True
                self.at(
                    self.now + self.rng.randrange(1, 6),
                    self.deferred_drain,
                    node.node_id,
                    node.incarnation,
                )
        else:
            self.drain(node)
        node.tick_token += 1
        self.at(max(raft.deadline_ms, self.now + 1), self.tick, node.node_id, node.tick_token)
        self.on_raft_input(node)

    def deferred_drain(self, n: int, incarnation: int) -> None:
        node = self.nodes[n]
        if node.raft is not None and node.incarnation == incarnation:
            node.drain_pending = False
            self.drain(node)

    def drain(self, node: SimNode) -> None:
        raft = node.raft
        while True:
            ready = raft.drain()
            if not ready:
                snap = raft.snapshot
                if node.sm.index - (snap.last_index if snap else 0) < self.compact_every:
                    return
                raft.compact(node.sm.index, node.sm.encode())
                continue
            node.disk.persist(ready)
            self.checker.on_persist(node.node_id, node.disk, ready.entries)
            for msg in ready.messages:
                self.send(msg)
            if ready.hard_state is not None and self.rng.random() < self.crash_after_vote:
                # Back quickly, while the election it voted in may still be running.
                self.at(
                    self.now + self.rng.randrange(1, 5), self.crash, node.node_id, True, (1, 30)
                )
            if ready.restore is not None:
                self.checker.on_restore(node.node_id, ready.restore)
                node.sm = StateMachine.decode(ready.restore.data)
            for entry in ready.committed:
                self.checker.on_apply(node.node_id, node.sm, entry, raft.term)
                node.sm.apply(entry)
            if ready.restore is not None or ready.committed:
                self.on_applied(node, ready.committed)

    def tick(self, n: int, token: int) -> None:
        node = self.nodes[n]
        if node.raft is not None and node.tick_token == token:
            node.raft.tick(self.now)
            self.after_input(node)

    # Network.

    def send(self, msg) -> None:
        """A Raft message, or (duplicate=False) a request or response of the application:
        those travel over connections, which lose and delay but do not duplicate."""
        if self.blocked[msg.from_, msg.to] or self.rng.random() < self.loss:
            return
        copies = 2 if isinstance(msg, Message) and self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            delay = (
                self.rng.randrange(1, 10) if self.rng.random() < 0.9 else self.rng.randrange(10, 80)
            )
            self.at(self.now + delay, self.deliver, msg)

    def deliver(self, msg) -> None:
        node = self.nodes[msg.to]
        if node.raft is None or self.blocked[msg.from_, msg.to]:
            return
        if not isinstance(msg, Message):
            self.on_message(node, msg)
            return
        node.raft.step(msg, self.now)
        self.after_input(node)

    def partition(self) -> None:
        if self.healed:
            return
        rng, ids = self.rng, self.voter_ids + self.observer_ids
        shape = rng.choice(["split", "isolate", "one-way"])
        if shape == "one-way":
            a, b = rng.sample(ids, 2)
            links = [(a, b)]
        else:
            side = set(rng.sample(ids, 1 if shape == "isolate" else rng.randrange(1, len(ids))))
            links = [(a, b) for a in ids for b in ids if (a in side) != (b in side)]
        self.blocked.update(links)
        self.at(self.now + rng.randrange(100, 1500), self.heal, links)

    def heal(self, links: list[tuple[int, int]]) -> None:
        for link in links:
            if self.blocked[link] > 0:  # heal_all may have cleared it already
                self.blocked[link] -= 1

    def heal_all(self) -> None:
        self.healed = True
        self.blocked.clear()
        self.loss = self.duplicate = 0.0
        for n in self.nodes:
            self.restart(n)

    # Client.

    def client(self) -> None:
        leaders = [
            node for node in self.nodes.values() if node.raft is not None and node.raft.is_leader
        ]
        if leaders:
            node = self.rng.choice(leaders)
            self.client_seq += 1
            try:
                node.raft.propose(f"{self.seed}/{self.client_seq}/{self.now}".encode())
            except NotLeader:
                pass
            else:
                self.after_input(node)
        if self.now < self.end_ms:
            self.at(self.now + self.rng.randrange(10, 80), self.client)

    def resign_leader(self) -> None:
        for node in self.nodes.values():
            if node.raft is not None and node.raft.is_leader:
                node.raft.resign(self.now)
                self.after_input(node)

    def check_liveness(self) -> None:
        """After healing everything: one leader in the highest term, and late proposals commit."""
        up = [node.raft for node in self.nodes.values() if node.raft is not None]
        top = max(r.term for r in up)
        leaders = [r for r in up if r.is_leader and r.term == top]
        if len(leaders) != 1:
            raise Violation(f"liveness: no leader in term {top} after healing")
        bound = leaders[0].voters
        if bound != {n: self.nodes[n].directory_id for n in self.voter_ids}:
            raise Violation(
                f"liveness: the voters were not (re)bound to their directories: {bound}"
            )
        # Half the settle time is plenty for an election and a catch-up by snapshot.
        settle_from = (self.chaos_ms + self.end_ms) // 2
        if not any(
            key[1] is EntryKind.DATA
            and not is_metadata(key[2])
            and int(key[2].split(b"/")[2]) >= settle_from
            for key, _ in self.checker.applied.values()
        ):
            raise Violation(f"liveness: nothing proposed after {settle_from} ms has committed")
        if self.observer_ids:
            self.check_observers_caught_up(leaders[0])

    def check_observers_caught_up(self, leader: RaftNode) -> None:
        """An observer follows the leader once healed: by the end it has applied what the
        leader had committed at the start of the second half of the settle time."""
        settle_from = (self.chaos_ms + self.end_ms) // 2
        wanted = max((index for index, (key, _) in self.checker.applied.items()
                      if key[1] is EntryKind.DATA and not is_metadata(key[2])
                      and int(key[2].split(b"/")[2]) < settle_from), default=0)
        for n in self.observer_ids:
            if self.nodes[n].sm.index < wanted:
                raise Violation(f"liveness: observer {n} applied up to {self.nodes[n].sm.index}, "
                                f"the leader had committed {wanted} by {settle_from} ms")

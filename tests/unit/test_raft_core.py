"""Scenario tests for the Raft core (replication/raft.py), driven by hand, message by message."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from odradek.replication.quorum import commit_known
from odradek.replication.raft import RaftConfig, RaftNode, Role
from odradek.replication.raft_messages import (
    AppendRequest,
    AppendResponse,
    EntryKind,
    HardState,
    InstallSnapshotRequest,
    LogEntry,
    Message,
    NotLeader,
    PersistentState,
    Snapshot,
    Voter,
    VoteRequest,
    VoteResponse,
)
from tests.raft_sim import Disk, StateMachine

CONFIG = RaftConfig(election_timeout_ms=100, heartbeat_interval_ms=20, max_entries_per_append=8)


class Cluster:
    """A tiny synchronous driver: deliver everything at once, tick everyone every 10 ms."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.ids = list(range(1, size + 1))
        self.now = 0
        self.disks = {n: Disk() for n in self.ids}
        self.dirs = {n: f"dir-{n}" for n in self.ids}
        self.applied: dict[int, list] = {n: [] for n in self.ids}
        self.restored: dict[int, list] = {n: [] for n in self.ids}
        self.nodes: dict[int, RaftNode | None] = {}
        self.cut: set[tuple[int, int]] = set()
        self.drop: Callable[[Message], bool] = lambda msg: False
        self.after_step: Callable[[RaftNode, Message], None] = lambda node, msg: None
        self.sent: list[Message] = []
        for n in self.ids:
            self.start(n)

    def start(self, n: int) -> None:
        self.nodes[n] = RaftNode(
            n,
            self.dirs[n],
            self.ids,
            now_ms=self.now,
            rng=random.Random(self.rng.random()),
            config=CONFIG,
            state=self.disks[n].state(),
        )

    def wipe(self, n: int, directory_id: str) -> None:
        self.disks[n] = Disk()
        self.dirs[n] = directory_id
        self.start(n)

    def isolate(self, n: int, *, only_to: tuple[int, ...] = ()) -> None:
        self.cut |= {(a, b) for a in self.ids for b in self.ids if (a == n) != (b == n)}
        self.cut -= {(n, o) for o in only_to} | {(o, n) for o in only_to}

    def heal(self) -> None:
        self.cut.clear()

    def flush(self) -> None:
        """Drain and deliver until nothing moves."""
        while True:
            queue: list[Message] = []
            for n, node in self.nodes.items():
                if node is None:
                    continue
                while ready := node.drain():
                    self.disks[n].persist(ready)
                    queue.extend(ready.messages)
                    if ready.restore:
                        self.restored[n].append(ready.restore)
                    self.applied[n].extend(ready.committed)
            if not queue:
                return
            self.sent.extend(queue)
            for msg in queue:
                node = self.nodes.get(msg.to)
                if node is not None and (msg.from_, msg.to) not in self.cut and not self.drop(msg):
                    node.step(msg, self.now)
                    self.after_step(node, msg)

    def run(self, ms: int) -> None:
        for _ in range(ms // 10):
            self.now += 10
            for node in self.nodes.values():
                if node is not None:
                    node.tick(self.now)
            self.flush()

    def leaders(self) -> list[RaftNode]:
        return [node for node in self.nodes.values() if node is not None and node.is_leader]

    def leader(self) -> RaftNode:
        (leader,) = self.leaders()
        return leader

    def commit(self, data: bytes) -> int:
        index = self.leader().propose(data)
        self.run(100)
        return index


def data_at(applied: list, index: int) -> bytes | None:
    return next((e.data for e in applied if e.index == index), None)


def test_single_node_elects_itself_and_commits_alone():
    cluster = Cluster(1)
    cluster.run(300)
    node = cluster.leader()
    assert node.role is Role.LEADER and node.leader_id == 1
    index = cluster.commit(b"hello")
    assert node.commit_index >= index
    assert data_at(cluster.applied[1], index) == b"hello"
    # The first entries of a term are the leader change and the binding of its own directory.
    kinds = [e.kind for e in cluster.applied[1]]
    assert kinds[:2] == [EntryKind.LEADER_CHANGE, EntryKind.VOTERS]
    assert node.voters == {1: "dir-1"}


def test_single_node_restart_keeps_its_log():
    cluster = Cluster(1)
    cluster.run(300)
    index = cluster.commit(b"kept")
    cluster.start(1)  # crash: only the disk survives
    cluster.applied[1].clear()
    cluster.run(400)
    assert cluster.leader().term == 2
    assert data_at(cluster.applied[1], index) == b"kept"


@pytest.mark.parametrize("seed", range(5))
def test_three_nodes_elect_exactly_one_leader(seed):
    cluster = Cluster(3, seed)
    cluster.run(1000)
    leader = cluster.leader()
    for node in cluster.nodes.values():
        assert node.term == leader.term and node.leader_id == leader.node_id
    # Every voter got bound to its directory by a committed VOTERS record.
    assert leader.voters == {1: "dir-1", 2: "dir-2", 3: "dir-3"}
    assert leader.commit_index == leader.last_index
    progress = leader.replica_progress()
    assert sorted(progress) == sorted(set(cluster.ids) - {leader.node_id})
    assert all(match == leader.last_index for match, _ in progress.values())


def test_propose_on_a_follower_names_the_leader():
    cluster = Cluster(3)
    cluster.run(1000)
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes.values() if not n.is_leader)
    with pytest.raises(NotLeader) as err:
        follower.propose(b"x")
    assert err.value.leader_id == leader.node_id


def test_partitioned_old_leader_cannot_commit():
    cluster = Cluster(3)
    cluster.run(1000)
    old = cluster.leader()
    cluster.isolate(old.node_id)
    lost = old.propose(b"lost")
    cluster.run(1000)
    assert old.commit_index < lost
    # Check quorum: cut off from the majority, it stopped calling itself leader.
    assert not old.is_leader
    new = next(n for n in cluster.leaders() if n is not old)
    assert new.term > old.term
    kept = cluster.commit(b"kept")
    cluster.heal()
    cluster.run(500)
    assert cluster.leader() is new
    for applied in cluster.applied.values():
        assert b"lost" not in [e.data for e in applied]
        assert data_at(applied, kept) == b"kept"


def test_pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader():
    cluster = Cluster(3)
    cluster.run(1000)
    leader = cluster.leader()
    term = leader.term
    loner = next(n for n in cluster.nodes.values() if not n.is_leader)
    cluster.isolate(loner.node_id)
    cluster.run(2000)  # many election timeouts
    assert loner.term == term, "pre-vote must not bump the term"
    assert any(
        isinstance(m, VoteRequest) and m.pre_vote for m in cluster.sent if m.from_ == loner.node_id
    )
    cluster.heal()
    cluster.run(1000)
    assert cluster.leader() is leader and leader.term == term
    assert loner.leader_id == leader.node_id


def test_vote_is_persisted_in_the_same_ready_as_the_response():
    cluster = Cluster(3)
    node = cluster.nodes[2]
    node.step(
        VoteRequest(
            to=2,
            from_=1,
            term=1,
            from_directory="dir-1",
            pre_vote=False,
            last_log_index=0,
            last_log_term=0,
            voter_directory=None,
        ),
        now_ms=0,
    )
    ready = node.drain()
    (response,) = ready.messages
    assert isinstance(response, VoteResponse) and response.granted
    assert ready.hard_state is not None and ready.hard_state.voted_for == 1


def test_follower_far_behind_catches_up_from_a_snapshot():
    cluster = Cluster(3)
    cluster.run(1000)
    leader = cluster.leader()
    laggard = next(n for n in cluster.nodes.values() if not n.is_leader)
    cluster.isolate(laggard.node_id)
    for i in range(30):
        leader.propose(b"r%d" % i)
    cluster.run(300)
    # Every other node snapshots what it applied; the laggard's next entry is gone.
    for node in cluster.nodes.values():
        if node is not laggard:
            node.compact(node.commit_index, StateMachine(node.commit_index, 7).encode())
    cluster.flush()
    assert leader.snapshot.last_index == leader.commit_index > laggard.last_index
    cluster.heal()
    cluster.run(300)
    assert any(isinstance(m, InstallSnapshotRequest) for m in cluster.sent)
    (restored,) = cluster.restored[laggard.node_id]
    assert restored.last_index == leader.snapshot.last_index
    assert laggard.commit_index == leader.commit_index
    tail = cluster.commit(b"after")
    assert data_at(cluster.applied[laggard.node_id], tail) == b"after"
    assert cluster.disks[laggard.node_id].snapshot == restored


def _wiped_voter_scenario(keep_directory: bool = False) -> Cluster:
    """The double vote KIP-853 prevents.

    The leader O is cut off; W wins the next term with V's vote; V's data directory is
    wiped and V comes back empty, able to talk to O only. O never saw the new term: it
    times out and asks V for a vote in that same term. With keep_directory the wiped V
    reuses its directory id, which is classic Raft without directory ids.
    """
    cluster = Cluster(3)
    cluster.run(1000)
    old = cluster.leader()
    cluster.commit(b"committed")
    cluster.isolate(old.node_id)
    cluster.run(1000)
    winner = next(n for n in cluster.leaders() if n is not old)
    voter = next(n for n in cluster.ids if n not in (old.node_id, winner.node_id))
    assert winner.term == old.term + 1
    cluster.isolate(voter, only_to=(old.node_id,))
    cluster.isolate(winner.node_id)
    cluster.wipe(voter, cluster.dirs[voter] if keep_directory else "dir-fresh")
    cluster.run(2000)
    return cluster


def _leaders_per_term(cluster: Cluster) -> dict[int, set[int]]:
    """Who sent AppendRequests as leader in which term, as seen on the wire."""
    led: dict[int, set[int]] = {}
    for msg in cluster.sent:
        if isinstance(msg, AppendRequest):
            led.setdefault(msg.term, set()).add(msg.from_)
    return led


def test_wiped_voter_cannot_make_two_leaders_in_one_term():
    cluster = _wiped_voter_scenario()
    assert all(len(leaders) == 1 for leaders in _leaders_per_term(cluster).values())
    # The wiped voter refused: the old leader named the directory it had bound.
    assert any(
        isinstance(m, VoteResponse) and m.from_directory == "dir-fresh" and not m.granted
        for m in cluster.sent
    )


def test_without_directory_ids_the_wiped_voter_votes_twice():
    """The same story with a reused directory id: the test above is able to fail."""
    cluster = _wiped_voter_scenario(keep_directory=True)
    assert any(len(leaders) > 1 for leaders in _leaders_per_term(cluster).values())


def test_wiped_voter_is_rebound_after_catching_up():
    cluster = Cluster(3)
    cluster.run(1000)
    leader = cluster.leader()
    cluster.commit(b"before")
    follower = next(n for n in cluster.ids if n != leader.node_id)
    cluster.wipe(follower, "dir-new")
    cluster.run(1000)
    assert leader.voters[follower] == "dir-new"
    assert cluster.nodes[follower].voters[follower] == "dir-new"
    index = cluster.commit(b"after")
    assert data_at(cluster.applied[follower], index) == b"after"


def test_resign_hands_leadership_to_a_caught_up_voter():
    cluster = Cluster(3)
    cluster.run(1000)
    old = cluster.leader()
    term = old.term
    old.resign(cluster.now)
    with pytest.raises(NotLeader):
        old.propose(b"x")
    cluster.run(200)
    new = cluster.leader()
    assert new is not old and new.term == term + 1
    cluster.commit(b"after transfer")


def test_leader_commits_its_own_entry_only_once_the_driver_persisted_it():
    node = RaftNode(1, "dir-1", [1], now_ms=0, rng=random.Random(0), config=CONFIG)
    node.tick(1000)
    assert node.is_leader
    first = node.drain()  # LEADER_CHANGE and VOTERS, not yet on disk
    assert [e.kind for e in first.entries] == [EntryKind.LEADER_CHANGE, EntryKind.VOTERS]
    assert not first.committed and node.commit_index == 0
    second = node.drain()  # draining again says the first Ready is on disk
    assert [e.index for e in second.committed] == [1, 2]


def test_a_binding_known_at_format_time_leaves_no_window():
    """Like kafka-storage format --initial-controllers: directory ids bound from the start."""
    bound = tuple(Voter(n, f"dir-{n}") for n in (1, 2, 3))
    node = RaftNode(
        2,
        "dir-2-reformatted",
        [1, 2, 3],
        now_ms=0,
        rng=random.Random(0),
        config=CONFIG,
        state=PersistentState(snapshot=Snapshot(0, 0, bound, b"")),
    )
    assert node.voters == {1: "dir-1", 2: "dir-2", 3: "dir-3"}
    node.tick(10_000)  # its own id is bound to another directory: it must not campaign
    assert node.role is Role.FOLLOWER and not node.drain().messages


def test_leader_counts_replicas_only_for_entries_of_its_own_term():
    """Raft's figure 8: a majority holding an entry of an older term does not commit it."""
    cluster = Cluster(3)
    old = [LogEntry(1, 1, EntryKind.DATA, b"a"), LogEntry(2, 2, EntryKind.DATA, b"b")]
    cluster.disks[1] = Disk(hard_state=HardState(3), entries=old)
    cluster.disks[2] = Disk(hard_state=HardState(3), entries=old[:1])
    cluster.disks[3] = Disk(hard_state=HardState(3), entries=old[:1])
    for n in cluster.ids:
        cluster.start(n)
    cluster.drop = lambda msg: isinstance(msg, AppendRequest)  # we play the followers' acks
    cluster.cut = {(2, 3), (3, 2)}  # so that only node 1 can gather a majority
    while not cluster.leaders():  # no acks: check quorum would depose it after a timeout
        cluster.run(10)
    leader = cluster.leader()
    assert leader.node_id == 1 and leader.term == 4 and leader.term_at(3) == 4

    def ack(match_index: int) -> None:
        msg = AppendResponse(
            to=1, from_=2, term=4, from_directory="dir-2", success=True, match_index=match_index
        )
        leader.step(msg, cluster.now)
        cluster.flush()

    ack(2)  # a majority (1 and 2) holds index 2, but it is of term 2
    assert leader.commit_index == 0
    ack(3)  # index 3 is the leader's own LEADER_CHANGE: it commits, and 2 with it
    assert leader.commit_index == 3
    assert [e.data for e in cluster.applied[1][:2]] == [b"a", b"b"]


def test_a_restarted_follower_learns_what_is_committed_only_from_a_leader_that_committed_in_its_term():
    """After a whole-quorum restart the new leader's first AppendRequests carry the commit
    index it had when elected (0: commit indexes are not persisted). A follower that took
    that as "what the quorum has committed" called itself caught up with an empty image
    and answered Metadata for existing topics UNKNOWN_TOPIC_OR_PARTITION (seen in the
    chaos suite's random mix: librdkafka then dropped the topic's partitions). Only a
    leader_commit that covers an entry of the leader's own term is the quorum's."""
    cluster = Cluster(3)
    cluster.run(500)
    index = cluster.commit(b"topic created")
    for n in cluster.ids:
        cluster.start(n)  # every node crashes: only the disks survive
    learned: dict[int, list[int]] = {n: [] for n in cluster.ids}
    stale: list[int] = []

    def after_step(node: RaftNode, msg: Message) -> None:
        if isinstance(msg, AppendRequest) and msg.term == node.term and msg.leader_commit < index:
            stale.append(msg.leader_commit)
        known = commit_known(node, msg)
        if known is not None:
            learned[node.node_id].append(known)

    cluster.after_step = after_step
    cluster.run(1000)
    followers = [n for n in cluster.ids if n != cluster.leader().node_id]
    assert stale, "the new leader never sent a commit index below the committed entry"
    for n in followers:
        assert learned[n] and learned[n][0] >= index, (n, learned[n])


def test_a_paused_leader_cannot_confirm_its_leadership_after_being_deposed():
    """A leader stopped (SIGSTOP) for longer than an election timeout wakes believing it
    leads: check quorum only runs at its next tick. ``quorum_contact_ms`` is what a
    read index waits on: no quorum has acknowledged it since it woke, so a controller
    answer (a broker heartbeat renewing a lease) must wait, and the node steps down."""
    cluster = Cluster(3)
    cluster.run(1000)
    old = cluster.leader()
    assert old.quorum_contact_ms() is not None and old.quorum_contact_ms() >= cluster.now - 100
    cluster.nodes[old.node_id] = None  # paused: no ticks, no messages
    cluster.run(2000)
    woke_at = cluster.now
    assert old.is_leader  # stale: it has not ticked since
    assert old.quorum_contact_ms() < woke_at
    cluster.nodes[old.node_id] = old
    cluster.run(500)
    assert not old.is_leader and old.quorum_contact_ms() is None
    leader = cluster.leader()
    assert leader.quorum_contact_ms() >= cluster.now - 100

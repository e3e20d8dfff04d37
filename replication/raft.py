"""The Raft core of the controller quorum: a pure state machine, no I/O and no clock.

What it is
    One RaftNode per voter. A driver (network + disk) feeds it time and messages and carries
    out what it asks for. Nothing here reads a clock, a socket, a file or global randomness:
    every call takes `now_ms` (any monotonic millisecond clock) and randomness comes from the
    `random.Random` passed in, so a seeded simulation can replay any run exactly.

    `term` is Raft's term, which KRaft calls the leader epoch; this package says `term`.

How a driver uses it
    node = RaftNode(node_id, directory_id, voter_ids, now_ms=..., rng=..., state=stored)
    on a message from the network:   node.step(message, now_ms)
    on a timer:                      node.tick(now_ms)   # call again by node.deadline_ms
    on a client write (leader only): index = node.propose(data)   # or raises NotLeader
    when the state machine has a snapshot at an applied index: node.compact(index, data)
    after any of those:              while ready := node.drain(): handle(ready)
    where handle() follows Ready's docstring strictly in order: persist and fsync, then
    send, then apply. Calling drain() again is the promise that the previous Ready was
    handled. The state machine's last applied index is the driver's: after a restart it
    restores the stored snapshot (if any) and the core emits committed entries after it.
    A proposal at index i in term t succeeded iff the entry committed at i has term t.

Protocol
    Raft (Ongaro's thesis) with KRaft's shape: a new leader appends a LEADER_CHANGE entry,
    so it commits by counting replicas only entries of its own term; pre-vote (KIP-996): a
    node whose election timer fires first asks "would you vote for me in term+1?" without
    bumping any term, and a voter that heard from a leader within the election timeout says
    no, so a node rejoining after a partition cannot depose a healthy leader. Voters also
    ignore real vote requests while that leader lease holds, and a leader that has not
    heard from a majority for an election timeout steps down (check quorum), so a leader
    cut off from the majority stops taking proposals. Snapshots (KIP-630): the application
    hands the core an image at an applied index, the core drops the log up to there, and a
    follower that needs a dropped entry receives the image instead (InstallSnapshot).
    Leader transfer: resign() hands leadership to a caught-up voter (TimeoutNow).

Observers (KRaft's process.roles=broker)
    A node that is not a voter replicates the log without ever voting, campaigning or
    counting towards commitment: RaftNode(..., observer=True). Replication is pushed, so
    the observer pulls once: whenever it has not heard from a leader for an election
    timeout it sends ObserverFetch to the leader it knows, or to every voter, and the
    leader then replicates to it as to a follower. A leader forgets an observer it has not
    heard from for OBSERVER_EXPIRY_TIMEOUTS election timeouts; a new leader learns of it at
    its next ObserverFetch. Voters accept only ObserverFetch and replication acks from a
    node outside the voter set, so an observer can never influence an election.

Wiped data directories (KIP-853)
    A voter whose data directory is wiped forgets its vote and its log. It could vote twice
    in one term, or stand in for a replica that held a committed entry it no longer has.
    Each data directory therefore has a random directory id (the driver makes it when it
    creates the directory and passes it in). Every vote request, vote and acknowledgement
    carries the sender's directory id. The VOTERS records in the log bind each voter id to
    one directory id; the latest one in the log is in force (committed or not, like any Raft
    membership change). Rules:
      1. A vote or an acknowledgement counts only if it comes from the bound (id, directory)
         pair, or from a voter whose binding is still unknown (None).
      2. A node whose own id is bound to another directory neither campaigns nor votes, and a
         vote request names the directory the candidate expects (KIP-853's VoterDirectoryId)
         so a node with another directory refuses it.
      3. Only the leader writes VOTERS records, one at a time: it appends one only when the
         previous one is committed. It binds a voter to the directory it hears from once that
         replica has caught up to the commit index; a directory it saw replaced this term is
         never taken back (delayed messages from the dead directory are ignored).
    Why it is safe once every voter holds a committed full binding: a wiped voter comes back
    with a fresh directory that appears in no binding, so by rules 1 and 2 it counts for
    nothing until a leader re-binds it: its second vote in a term and its empty log are
    never mistaken for those of the old directory. Re-binding id i from a dead directory d to
    d' is a single-member change: quorums of the old binding cannot contain (i, d) any more,
    so every live old quorum holds a majority of the other voters, which meets every new
    quorum; and the record is appended by a leader holding every committed entry, so a
    candidate that counts d' (it has the record) has those entries too.
    Delayed messages from the dead directory cannot undo a re-binding: a leader ignores
    responses from older terms, and within its term it never goes back to a directory it
    saw replaced (it may pick the dead one first if messages arrive in that order; that
    costs liveness until the next term, not safety, since the dead directory never votes).
    The window, honestly: until a VOTERS record binding every voter has reached every voter's
    log, a binding is unknown somewhere, and a voter wiped in that window can vote twice or
    help elect a leader missing committed entries, exactly as in classic Raft. Commitment of
    the binding is not enough: a voter that has not received it yet still counts anybody
    for that id, and with the wiped voter it may form a majority. In particular
    at first formation the voter set is only ids; the first leader binds the voters it hears
    from, so the window closes once every voter has been up and caught up once. Kafka closes
    it by writing directory ids at format time (`kafka-storage format --initial-controllers`);
    a driver that knows them can start every node with
    PersistentState(snapshot=Snapshot(0, 0, full_binding, b"")) and has no window at all.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from odradek.replication.raft_log import RaftLog
from odradek.replication.raft_messages import (
    AppendRequest,
    AppendResponse,
    EntryKind,
    HardState,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    LogEntry,
    Message,
    NotLeader,
    ObserverFetch,
    PersistentState,
    Ready,
    Snapshot,
    TimeoutNow,
    Voter,
    VoteRequest,
    VoteResponse,
)

__all__ = ["NotLeader", "RaftConfig", "RaftNode", "Role"]


class Role(enum.Enum):
    FOLLOWER = "follower"  # with leader_id None this is KRaft's "unattached"
    PROSPECTIVE = "prospective"  # KIP-996: running a pre-vote
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class RaftConfig:
    # Base election timeout; each wait is drawn from [timeout, 2 * timeout).
    # Kafka's controller.quorum.election.timeout.ms defaults to 1000.
    election_timeout_ms: int = 1000
    heartbeat_interval_ms: int = 100
    max_entries_per_append: int = 64


# A leader drops an observer it has not heard from for this many election timeouts.
OBSERVER_EXPIRY_TIMEOUTS = 5


@dataclass(slots=True)
class _Progress:
    """The leader's view of one follower."""

    directory_id: str | None = None
    match_index: int = 0
    next_index: int = 1
    last_ack_ms: int | None = None
    snapshot_sent_ms: int | None = None
    # Directories this follower id had earlier in this term: a wiped replica is gone for good.
    retired: set[str] = field(default_factory=set)


class RaftNode:
    def __init__(
        self,
        node_id: int,
        directory_id: str,
        voters: Iterable[int],
        *,
        now_ms: int,
        rng: random.Random,
        config: RaftConfig | None = None,
        state: PersistentState | None = None,
        observer: bool = False,
    ) -> None:
        self._id = node_id
        self._dir = directory_id
        self._voter_ids = frozenset(voters)
        self.observer = observer
        if observer and node_id in self._voter_ids:
            raise ValueError(f"node {node_id} is one of the voters {sorted(self._voter_ids)}: "
                             "it cannot be an observer")
        if not observer and node_id not in self._voter_ids:
            raise ValueError(f"node {node_id} is not one of the voters {sorted(self._voter_ids)}")
        self._peers = sorted(self._voter_ids - {node_id})
        self._quorum = len(self._voter_ids) // 2 + 1
        self._rng = rng
        self._cfg = config or RaftConfig()
        state = state or PersistentState()
        unbound = tuple(Voter(v, None) for v in sorted(self._voter_ids))
        self._log = RaftLog(state.snapshot or Snapshot(0, 0, unbound, b""), state.entries)
        self._hard = state.hard_state
        self._hard_dirty = False

        self.role = Role.FOLLOWER
        self.leader_id: int | None = None
        self.commit_index = self._log.snapshot.last_index
        self._emitted = self.commit_index  # committed entries handed to the driver so far
        self._drained_last = self._log.last_index  # last index handed over to be persisted
        self._stable_index = self._drained_last  # last index known to be on disk
        self._restore: Snapshot | None = None
        self._messages: list[Message] = []
        self._now = now_ms
        self._last_leader_contact: int | None = None
        self._votes: dict[int, tuple[bool, str]] = {}
        self._progress: dict[int, _Progress] = {}
        self._broadcast_pending = False
        self._heartbeat_deadline = now_ms
        self._check_quorum_deadline = now_ms
        self._transfer_target: int | None = None
        self._transfer_deadline = now_ms
        self._election_deadline = now_ms
        self._vote_request = (True, False)  # (pre_vote, leadership_transfer) of the campaign
        self._vote_retry_deadline = now_ms
        self._reset_election_timer()
        if observer:
            self._election_deadline = now_ms  # ask for the log at the first tick

    # Read-only views.

    @property
    def node_id(self) -> int:
        return self._id

    @property
    def directory_id(self) -> str:
        return self._dir

    @property
    def term(self) -> int:
        return self._hard.term

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def last_index(self) -> int:
        return self._log.last_index

    @property
    def snapshot(self) -> Snapshot | None:
        return self._log.snapshot if self._log.snapshot.last_index else None

    @property
    def voters(self) -> dict[int, str | None]:
        """The voter binding in force: voter id -> directory id (None: not bound yet)."""
        return dict(self._log.voter_map())

    def replica_progress(self) -> dict[int, tuple[int, int]]:
        """On the leader: follower or observer id -> (match index, last ack time in ms, -1
        if none)."""
        return {
            peer: (p.match_index, -1 if p.last_ack_ms is None else p.last_ack_ms)
            for peer, p in self._progress.items()
        }

    @property
    def observers(self) -> list[int]:
        """On the leader: the observers it replicates to."""
        return sorted(p for p in self._progress if p not in self._voter_ids)

    def quorum_contact_ms(self) -> int | None:
        """On the leader: the latest time by which a quorum of voters had acknowledged it
        (this node agrees with itself at any time); None elsewhere.

        Raft's read index (§6.4 of Ongaro's thesis): an answer that must reflect the
        present, such as a broker heartbeat renewing its lease, waits until this passes
        the time the question arrived. A leader paused or cut off longer than an election
        timeout still believes it leads until its next tick; no quorum acknowledges it
        after it wakes, so it never confirms and steps down first."""
        if self.role is not Role.LEADER:
            return None
        acks = sorted((p.last_ack_ms for v, p in self._progress.items()
                       if p.last_ack_ms is not None and self._is_counted(v, p.directory_id)),
                      reverse=True)
        needed = self._quorum - self._is_counted(self._id, self._dir)
        if needed <= 0:
            return self._now
        return acks[needed - 1] if len(acks) >= needed else -1

    def term_at(self, index: int) -> int | None:
        """The term of the entry at index; None if it is compacted away or not in the log."""
        return self._log.term_at(index)

    @property
    def deadline_ms(self) -> int:
        """Call tick() no later than this (calling it earlier or more often is harmless)."""
        if self.role is Role.LEADER:
            return min(self._heartbeat_deadline, self._check_quorum_deadline)
        if self._campaigning:
            return min(self._election_deadline, self._vote_retry_deadline)
        return self._election_deadline

    @property
    def _campaigning(self) -> bool:
        return self.role is Role.PROSPECTIVE or self.role is Role.CANDIDATE

    # Inputs.

    def tick(self, now_ms: int) -> None:
        self._now = now_ms
        if self.role is not Role.LEADER:
            if now_ms >= self._election_deadline:
                if self.observer:
                    self._fetch_as_observer()
                elif self._is_counted(self._id, self._dir):
                    self._start_pre_vote()
                else:
                    self._reset_election_timer()
            elif self._campaigning and now_ms >= self._vote_retry_deadline:
                self._send_vote_requests()
            return
        if now_ms >= self._check_quorum_deadline:
            if not self._has_active_quorum():
                self._become_follower(self.term, None)
                return
            self._check_quorum_deadline = now_ms + self._cfg.election_timeout_ms
        if self._transfer_target is not None and now_ms >= self._transfer_deadline:
            self._transfer_target = None  # the target never took over; serve again
        if now_ms >= self._heartbeat_deadline:
            self._heartbeat_deadline = now_ms + self._cfg.heartbeat_interval_ms
            self._expire_observers()
            for peer in list(self._progress):
                self._send_append(peer)

    def propose(self, data: bytes) -> int:
        """Append a record on the leader and return its index (see the module docstring)."""
        if self.role is not Role.LEADER or self._transfer_target is not None:
            raise NotLeader(self.leader_id if self.leader_id != self._id else None)
        return self._append(EntryKind.DATA, data=data).index

    def compact(self, index: int, snapshot_bytes: bytes) -> None:
        """The application's image of every entry up to index replaces those entries.

        Only an index the driver has applied (so committed and on disk) can be compacted.
        """
        if index > self._emitted:
            raise ValueError(f"cannot compact {index}: only {self._emitted} has been applied")
        if index > self._log.snapshot.last_index:
            self._log.compact(index, snapshot_bytes)

    def resign(self, now_ms: int) -> None:
        """Controlled shutdown: hand leadership to the most caught-up voter, if any.

        Proposals are refused from now on; if no voter takes over within an election
        timeout the leader serves again.
        """
        self._now = now_ms
        if self.role is not Role.LEADER or not self._peers:
            return
        counted = [p for p in self._peers if self._is_counted(p, self._progress[p].directory_id)]
        if not counted:
            return
        self._transfer_target = max(counted, key=lambda p: self._progress[p].match_index)
        self._transfer_deadline = now_ms + self._cfg.election_timeout_ms
        self._maybe_send_timeout_now()

    def step(self, msg: Message, now_ms: int) -> None:
        """Handle one message from the network. Duplicated, stale or reordered ones are fine."""
        self._now = now_ms
        if msg.to != self._id or msg.from_ == self._id:
            return
        if msg.from_ not in self._voter_ids and not isinstance(
                msg, (ObserverFetch, AppendResponse, InstallSnapshotResponse)):
            return  # an observer asks for the log and acknowledges it, nothing more
        if msg.term > self.term:
            if isinstance(msg, VoteRequest):
                if msg.pre_vote:
                    pass  # a pre-vote never changes anyone's term
                elif self._in_leader_lease() and not msg.leadership_transfer:
                    return  # a live leader exists: do not let a stray candidate disrupt it
                else:
                    self._become_follower(msg.term, None)
            elif isinstance(msg, (AppendRequest, InstallSnapshotRequest, TimeoutNow)):
                self._become_follower(msg.term, msg.from_)
            else:
                self._become_follower(msg.term, None)
        elif msg.term < self.term:
            if isinstance(msg, (AppendRequest, InstallSnapshotRequest)):
                # Tell a deposed leader about the newer term so it steps down.
                self._send(AppendResponse, msg.from_, success=False, match_index=0)
                return
            if not isinstance(msg, (VoteRequest, VoteResponse, ObserverFetch)):
                return  # stale response
        match msg:
            case VoteRequest():
                self._on_vote_request(msg)
            case VoteResponse():
                self._on_vote_response(msg)
            case AppendRequest():
                self._on_append_request(msg)
            case AppendResponse():
                self._on_append_response(msg)
            case InstallSnapshotRequest():
                self._on_install_snapshot(msg)
            case InstallSnapshotResponse():
                self._on_replica_ack(msg, success=True, match_index=msg.match_index)
            case ObserverFetch():
                self._on_observer_fetch(msg)
            case TimeoutNow():
                if msg.from_ == self.leader_id and self._is_counted(self._id, self._dir):
                    self._become_candidate(transfer=True)

    def drain(self) -> Ready:
        """Everything the driver must do now; see Ready for the order. Empty (falsy) when idle."""
        self._stable_index = self._drained_last  # the previous Ready is on disk by contract
        if self.role is Role.LEADER:
            self._advance_commit()
            if self._broadcast_pending:
                self._broadcast_pending = False
                for peer in self._progress:
                    self._send_append(peer)
        snapshot, truncate_from, entries = self._log.take_unsaved()
        ready = Ready(
            hard_state=self._hard if self._hard_dirty else None,
            snapshot=snapshot,
            truncate_from=truncate_from,
            entries=entries,
            messages=self._messages,
            restore=self._restore,
        )
        if self.commit_index > self._emitted:
            ready.committed = self._log.slice(self._emitted + 1, self.commit_index)
            self._emitted = self.commit_index
        self._hard_dirty = False
        self._messages = []
        self._restore = None
        self._drained_last = self._log.last_index
        return ready

    # Elections.

    def _start_pre_vote(self) -> None:
        self.role = Role.PROSPECTIVE
        self.leader_id = None
        self._progress.clear()
        self._reset_election_timer()
        self._request_votes(pre_vote=True, transfer=False)

    def _become_candidate(self, transfer: bool) -> None:
        self._set_hard_state(HardState(self.term + 1, self._id, self._dir))
        self.role = Role.CANDIDATE
        self.leader_id = None
        self._progress.clear()
        self._reset_election_timer()
        self._request_votes(pre_vote=False, transfer=transfer)

    def _request_votes(self, pre_vote: bool, transfer: bool) -> None:
        self._votes = {self._id: (True, self._dir)}
        self._vote_request = (pre_vote, transfer)
        self._send_vote_requests()
        self._tally_votes()

    def _send_vote_requests(self) -> None:
        """Ask every voter that has not answered yet (KRaft retries them after a backoff)."""
        pre_vote, transfer = self._vote_request
        binding = self._log.voter_map()
        self._vote_retry_deadline = self._now + self._cfg.heartbeat_interval_ms
        for peer in self._peers:
            if peer in self._votes:
                continue
            self._send(
                VoteRequest,
                peer,
                term=self.term + 1 if pre_vote else self.term,
                pre_vote=pre_vote,
                last_log_index=self._log.last_index,
                last_log_term=self._log.last_term,
                voter_directory=binding.get(peer),
                leadership_transfer=transfer,
            )

    def _on_vote_request(self, msg: VoteRequest) -> None:
        if self.observer:
            return  # never asked by a correct candidate; an observer has no vote
        granted = self._can_grant(msg)
        if granted and not msg.pre_vote:
            self._set_hard_state(HardState(self.term, msg.from_, msg.from_directory))
            self._reset_election_timer()
        self._send(
            VoteResponse, msg.from_, pre_vote=msg.pre_vote, vote_term=msg.term, granted=granted
        )

    def _can_grant(self, msg: VoteRequest) -> bool:
        if msg.pre_vote:
            if msg.term <= self.term or self._in_leader_lease():
                return False
        else:
            voted = self._hard.voted_for, self._hard.voted_for_directory
            if msg.term != self.term or voted not in (
                (None, None),
                (msg.from_, msg.from_directory),
            ):
                return False
        if msg.voter_directory not in (None, self._dir) or not self._is_counted(
            self._id, self._dir
        ):
            return False  # rule 2: we are not the voter the candidate (or our own log) means
        return (msg.last_log_term, msg.last_log_index) >= (
            self._log.last_term,
            self._log.last_index,
        )

    def _on_vote_response(self, msg: VoteResponse) -> None:
        if msg.pre_vote:
            if self.role is not Role.PROSPECTIVE or msg.vote_term != self.term + 1:
                return
        elif self.role is not Role.CANDIDATE or msg.vote_term != self.term:
            return
        self._votes[msg.from_] = (msg.granted, msg.from_directory)
        self._tally_votes()

    def _tally_votes(self) -> None:
        won = sum(1 for v, (ok, d) in self._votes.items() if ok and self._is_counted(v, d))
        if won >= self._quorum:
            if self.role is Role.PROSPECTIVE:
                self._become_candidate(transfer=False)
            else:
                self._become_leader()
        elif len(self._votes) - won > len(self._voter_ids) - self._quorum:
            self._become_follower(self.term, None)  # lost; wait for a leader or the next timeout

    def _in_leader_lease(self) -> bool:
        if self.role is Role.LEADER:
            return True
        return (
            self.leader_id is not None
            and self._last_leader_contact is not None
            and self._now - self._last_leader_contact < self._cfg.election_timeout_ms
        )

    def _become_follower(self, term: int, leader_id: int | None) -> None:
        if term > self.term:
            self._set_hard_state(HardState(term))
        self.role = Role.FOLLOWER
        self.leader_id = leader_id
        self._votes = {}
        self._progress.clear()
        self._transfer_target = None
        if leader_id is not None:
            self._last_leader_contact = self._now
        self._reset_election_timer()

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader_id = self._id
        self._votes, votes = {}, self._votes
        next_index = self._log.last_index + 1
        self._progress = {
            p: _Progress(directory_id=votes[p][1] if p in votes else None, next_index=next_index)
            for p in self._peers
        }
        self._check_quorum_deadline = self._now + self._cfg.election_timeout_ms
        self._heartbeat_deadline = self._now + self._cfg.heartbeat_interval_ms
        self._append(EntryKind.LEADER_CHANGE)
        self._maybe_bind_voters()

    def _reset_election_timer(self) -> None:
        timeout = self._cfg.election_timeout_ms
        self._election_deadline = self._now + timeout + self._rng.randrange(timeout)

    # Replication, leader side.

    def _append(
        self, kind: EntryKind, data: bytes = b"", voters: tuple[Voter, ...] = ()
    ) -> LogEntry:
        entry = LogEntry(self._log.last_index + 1, self.term, kind, data, voters)
        self._log.append([entry])
        self._broadcast_pending = True
        return entry

    def _send_append(self, peer: int) -> None:
        progress = self._progress[peer]
        log = self._log
        if progress.next_index <= log.snapshot.last_index:
            # The entries it needs are compacted: send the image, at most once per heartbeat.
            sent = progress.snapshot_sent_ms
            if sent is None or self._now - sent >= self._cfg.heartbeat_interval_ms:
                progress.snapshot_sent_ms = self._now
                self._send(InstallSnapshotRequest, peer, snapshot=log.snapshot)
            return
        prev = progress.next_index - 1
        last = min(log.last_index, prev + self._cfg.max_entries_per_append)
        entries = tuple(log.slice(prev + 1, last))
        self._send(
            AppendRequest,
            peer,
            prev_log_index=prev,
            prev_log_term=log.term_at(prev),
            entries=entries,
            leader_commit=self.commit_index,
        )
        progress.next_index = last + 1  # optimistic pipelining; a rejection rewinds it

    def _on_append_response(self, msg: AppendResponse) -> None:
        self._on_replica_ack(msg, success=msg.success, match_index=msg.match_index)

    def _on_replica_ack(self, msg: Message, success: bool, match_index: int) -> None:
        progress = self._progress.get(msg.from_)
        if self.role is not Role.LEADER or progress is None:
            return
        if not self._note_directory(progress, msg.from_directory):
            return
        progress.last_ack_ms = self._now
        if success:
            if match_index > progress.match_index:
                progress.match_index = match_index
                self._advance_commit()
            progress.next_index = max(progress.next_index, progress.match_index + 1)
            if progress.next_index <= self._log.last_index:
                self._send_append(msg.from_)
        else:
            progress.next_index = max(
                progress.match_index + 1, min(progress.next_index, match_index + 1)
            )
            self._send_append(msg.from_)
        self._maybe_bind_voters()
        self._maybe_send_timeout_now()

    def _note_directory(self, progress: _Progress, directory_id: str) -> bool:
        """Follow a replica's directory; False for a message from a directory replaced earlier."""
        if directory_id == progress.directory_id:
            return True
        if directory_id in progress.retired:
            return False
        if progress.directory_id is not None:
            progress.retired.add(progress.directory_id)
        # A new directory is a new, empty replica: nothing the old one acknowledged carries over.
        progress.directory_id = directory_id
        progress.match_index = 0
        progress.last_ack_ms = None
        return True

    def _advance_commit(self) -> None:
        matches = [
            p.match_index for v, p in self._progress.items() if self._is_counted(v, p.directory_id)
        ]
        if self._is_counted(self._id, self._dir):
            matches.append(min(self._stable_index, self._log.last_index))
        if len(matches) < self._quorum:
            return
        matches.sort(reverse=True)
        candidate = matches[self._quorum - 1]
        # Raft section 5.4.2: count replicas only for an entry of our own term.
        if candidate > self.commit_index and self._log.term_at(candidate) == self.term:
            self.commit_index = candidate
            self._maybe_bind_voters()

    def _maybe_bind_voters(self) -> None:
        """Rule 3 of the module docstring."""
        if self.role is not Role.LEADER or self._log.voters_index > self.commit_index:
            return
        binding = self._log.voter_map()
        wanted = dict(binding)
        wanted[self._id] = self._dir
        for peer, progress in self._progress.items():
            if peer not in self._voter_ids:
                continue  # an observer
            if progress.directory_id is not None and progress.match_index >= self.commit_index:
                wanted[peer] = progress.directory_id
        if wanted != binding:
            voters = tuple(Voter(v, wanted[v]) for v in sorted(wanted))
            self._append(EntryKind.VOTERS, voters=voters)

    def _has_active_quorum(self) -> bool:
        since = self._now - self._cfg.election_timeout_ms
        active = sum(
            1
            for v, p in self._progress.items()
            if p.last_ack_ms is not None
            and p.last_ack_ms >= since
            and self._is_counted(v, p.directory_id)
        )
        return active + self._is_counted(self._id, self._dir) >= self._quorum

    def _maybe_send_timeout_now(self) -> None:
        target = self._transfer_target
        if target is not None and self._progress[target].match_index == self._log.last_index:
            self._send(TimeoutNow, target)

    # Observers.

    def _fetch_as_observer(self) -> None:
        """No leader heard from for an election timeout: ask the one we knew, else every voter."""
        targets = [self.leader_id] if self.leader_id is not None else sorted(self._voter_ids)
        self.leader_id = None  # until a leader replicates to us again
        for voter in targets:
            self._send(ObserverFetch, voter, last_log_index=self._log.last_index)
        self._reset_election_timer()

    def _on_observer_fetch(self, msg: ObserverFetch) -> None:
        if self.role is not Role.LEADER or msg.from_ in self._voter_ids:
            return
        progress = self._progress.get(msg.from_)
        if progress is None:
            progress = self._progress[msg.from_] = _Progress(
                directory_id=msg.from_directory,
                next_index=min(msg.last_log_index, self._log.last_index) + 1)
        elif not self._note_directory(progress, msg.from_directory):
            return
        progress.last_ack_ms = self._now
        self._send_append(msg.from_)

    def _expire_observers(self) -> None:
        horizon = self._now - OBSERVER_EXPIRY_TIMEOUTS * self._cfg.election_timeout_ms
        for peer in [p for p, progress in self._progress.items() if p not in self._voter_ids
                     and (progress.last_ack_ms or 0) < horizon]:
            del self._progress[peer]

    # Replication, follower side.

    def _accept_leader(self, leader_id: int) -> None:
        if self.role is not Role.FOLLOWER or self.leader_id != leader_id:
            self._become_follower(self.term, leader_id)
        self._last_leader_contact = self._now
        self._reset_election_timer()

    def _on_append_request(self, msg: AppendRequest) -> None:
        if self.role is Role.LEADER:
            return  # another leader in our term: impossible unless safety is already broken
        self._accept_leader(msg.from_)
        log = self._log
        prev_index, prev_term, entries = msg.prev_log_index, msg.prev_log_term, msg.entries
        if prev_index > log.last_index:
            self._send(AppendResponse, msg.from_, success=False, match_index=log.last_index)
            return
        if prev_index < log.snapshot.last_index:
            # Our snapshot holds only committed entries, which match the leader's: skip them.
            skip = log.snapshot.last_index - prev_index
            prev_index, prev_term, entries = (
                log.snapshot.last_index,
                log.snapshot.last_term,
                entries[skip:],
            )
        elif log.term_at(prev_index) != prev_term:
            self._send(
                AppendResponse,
                msg.from_,
                success=False,
                match_index=self._conflict_hint(prev_index),
            )
            return
        for i, entry in enumerate(entries):
            term = log.term_at(entry.index)
            if term != entry.term:
                if term is not None:
                    assert entry.index > self.commit_index, "a committed entry was overwritten"
                    log.truncate_from(entry.index)
                    self._forget_unsaved_after(entry.index - 1)
                log.append(list(entries[i:]))
                break
        match_index = prev_index + len(entries)
        commit = min(msg.leader_commit, match_index)
        if commit > self.commit_index:
            self.commit_index = commit
        self._send(AppendResponse, msg.from_, success=True, match_index=match_index)

    def _conflict_hint(self, index: int) -> int:
        """Where the leader should retry: before the whole run of our conflicting term."""
        conflicting = self._log.term_at(index)
        floor = max(self.commit_index, self._log.snapshot.last_index)
        hint = index - 1
        while hint > floor and self._log.term_at(hint) == conflicting:
            hint -= 1
        return hint

    def _on_install_snapshot(self, msg: InstallSnapshotRequest) -> None:
        if self.role is Role.LEADER:
            return
        self._accept_leader(msg.from_)
        snapshot = msg.snapshot
        if snapshot.last_index > self.commit_index:
            self._log.install(snapshot)
            self.commit_index = self._emitted = snapshot.last_index
            self._restore = snapshot
            self._forget_unsaved_after(self._log.last_index)
        self._send(InstallSnapshotResponse, msg.from_, match_index=self.commit_index)

    # Helpers.

    def _is_counted(self, node_id: int, directory_id: str | None) -> bool:
        """Rule 1: does a vote or an ack from (node_id, directory_id) count?"""
        bound = self._log.voter_map().get(node_id, None)
        return node_id in self._voter_ids and (bound is None or bound == directory_id)

    def _forget_unsaved_after(self, index: int) -> None:
        # The log was cut back to index: nothing beyond it is on disk or handed over any more.
        self._drained_last = min(self._drained_last, index)
        self._stable_index = min(self._stable_index, index)

    def _set_hard_state(self, hard: HardState) -> None:
        self._hard = hard
        self._hard_dirty = True

    def _send(
        self, kind: type[Message], to: int, *, term: int | None = None, **fields: object
    ) -> None:
        term = self.term if term is None else term
        self._messages.append(
            kind(to=to, from_=self._id, term=term, from_directory=self._dir, **fields)
        )

"""Everything that crosses the Raft core's boundary: log entries, durable state, messages, Ready.

These are plain frozen dataclasses so that a driver can serialize them however it likes
(the inter-node framing and the on-disk layout are the driver's business, not the core's).

Vocabulary: `term` is Raft's term, which KRaft calls the leader epoch (or quorum epoch).
This package says `term` everywhere. A `directory_id` is KIP-853's directory id: a random
id the driver generates when it creates a data directory, so a voter whose data directory
was wiped comes back as a different (node id, directory id) pair (see raft.py).

Replication is push-based (Raft's AppendEntries) rather than KRaft's pull-based Fetch;
the safety argument is the same and push is simpler to bound in a simulation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class EntryKind(enum.Enum):
    # KRaft's LeaderChangeMessage control record: the entry a new leader appends at the start
    # of its term, so that it has an entry of its own term to commit (Raft section 5.4.2).
    LEADER_CHANGE = 1
    # KIP-853's VotersRecord: binds every voter id to a directory id.
    VOTERS = 2
    DATA = 3


@dataclass(frozen=True, slots=True)
class Voter:
    node_id: int
    directory_id: str | None  # None: not bound yet (the formation window, see raft.py)


@dataclass(frozen=True, slots=True)
class LogEntry:
    index: int
    term: int
    kind: EntryKind
    data: bytes = b""
    voters: tuple[Voter, ...] = ()  # only for EntryKind.VOTERS


@dataclass(frozen=True, slots=True)
class HardState:
    """What must survive a crash besides the log: Raft's currentTerm and votedFor."""

    term: int = 0
    voted_for: int | None = None
    voted_for_directory: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application's image of every entry up to and including last_index."""

    last_index: int
    last_term: int
    voters: tuple[Voter, ...]  # the voter binding in force at last_index
    data: bytes


@dataclass(slots=True)
class PersistentState:
    """What a driver reads back from disk to restart a node (all empty for a new directory)."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[LogEntry] = field(default_factory=list)  # contiguous, after the snapshot


# Messages. `from_directory` is the sender's directory id; the receiver uses it to tell a
# voter from a wiped-and-restarted incarnation of the same node id.


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    to: int
    from_: int
    term: int
    from_directory: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteRequest(Message):
    # KIP-996 pre-vote: "would you vote for me in `term`?", asked without bumping any term.
    pre_vote: bool
    last_log_index: int
    last_log_term: int
    # The directory the candidate believes the receiver has (KIP-853's VoterDirectoryId);
    # a receiver with another directory refuses. None while the binding is unknown.
    voter_directory: str | None
    # Sent after TimeoutNow: the old leader handed over, so followers' leader lease is void.
    leadership_transfer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteResponse(Message):
    pre_vote: bool
    vote_term: int  # the term the request asked about; `term` is the responder's own term
    granted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendRequest(Message):
    prev_log_index: int
    prev_log_term: int
    entries: tuple[LogEntry, ...]
    leader_commit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResponse(Message):
    success: bool
    # On success: the follower's log equals the leader's up to here.
    # On failure: a hint, the highest index the leader should retry from as prev_log_index.
    match_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshotRequest(Message):
    snapshot: Snapshot  # sent whole; chunking (KIP-630's FetchSnapshot) is the driver's choice


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshotResponse(Message):
    match_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ObserverFetch(Message):
    """An observer (a node that is not a voter: KRaft's process.roles=broker) asks whoever it
    believes leads to replicate the log to it. Push-based replication needs this one pull:
    a leader cannot know of an observer it never heard from. last_log_index is where the
    observer's log ends, a hint for where the leader starts sending."""

    last_log_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow(Message):
    """Leader transfer: the leader tells a caught-up follower to campaign at once."""


@dataclass(slots=True)
class Ready:
    """One batch of work for the driver. Handle the steps strictly in this order:

    1. Persist, then fsync:
       a. `snapshot`, if set: write it, then delete log entries with index <= its last_index;
       b. `truncate_from`, if set: delete log entries with index >= truncate_from;
       c. append `entries` (they follow the log left by a and b without a gap);
       d. `hard_state`, if set: overwrite the stored one.
    2. Only then send `messages`: a vote or an acknowledgement in them promises that 1 is
       on disk, and a crash must not be able to take that promise back.
    3. Then apply to the state machine: first restore it from `restore` if set (a snapshot
       received from the leader), then apply `committed` in order.

    Calling `RaftNode.drain()` again tells the core that the previous Ready was fully
    handled; a leader counts its own entries towards commitment only then.
    """

    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    truncate_from: int | None = None
    entries: list[LogEntry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    restore: Snapshot | None = None
    committed: list[LogEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.hard_state
            or self.snapshot
            or self.truncate_from is not None
            or self.entries
            or self.messages
            or self.restore
            or self.committed
        )


class NotLeader(Exception):
    """propose() on a node that is not the leader; `leader_id` is the known leader, if any."""

    def __init__(self, leader_id: int | None) -> None:
        super().__init__(f"not the leader (known leader: {leader_id})")
        self.leader_id = leader_id

"""One partition's replication rules on one node: a pure state machine (Kafka's Partition.scala).

No I/O and no clock, in the style of the Raft core (replication.raft): the replica manager
(broker/replica_manager.py) feeds a ``ReplicatedPartition`` what happened and carries out the
actions it returns, in order; the cluster simulation (tests/partition_sim.py) drives the same
object under faults. Every rule that decides lives here or in the leader's ``IsrState``
(replication.isr); the logs, futures, fetchers and the controller stay outside.

Events in                                        Actions out
  on_metadata: the image's state of the           BecomeLeader, StopLeading, Follow,
    partition (a committed metadata delta)          AdvanceHighWatermark, IsrCommitted
  on_append: the leader appended                  AdvanceHighWatermark
  on_follower_fetch: offsets of a follower        AdvanceHighWatermark
  proposed_isr: the time (the ISR check)          ProposeIsr
  on_isr_answer / on_isr_refused: AlterPartition  IsrCommitted, AdvanceHighWatermark
  epoch_to_ask / fetch_offset: before a fetch    (what the follower asks next)
  on_fetched: a follower's fetch response         AdvanceHighWatermark, IncrementLogStart
  on_epoch_answer: OffsetForLeaderEpoch's answer  TruncateTo
  on_out_of_range: OFFSET_OUT_OF_RANGE            StartAt

AdvanceHighWatermark also completes the acks=-1 produces waiting below it: the I/O answers
each with ``isr_size``, the ISR that the high watermark was judged by (see
ReplicaManager.wait_committed for why the size matters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.isr import IsrState
from odradek.replication.metadata import PartitionState

# -- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BecomeLeader:
    """Lead from now on at ``leader_epoch``, whose first offset is ``epoch_start_offset``: stop
    fetching and record the epoch in the leader-epoch cache. ``first``: this node did not lead
    before (leadership listeners hear of it, after the high watermark is published)."""

    leader_epoch: int
    epoch_start_offset: int
    first: bool


@dataclass(frozen=True, slots=True)
class StopLeading:
    """Leadership moved away (or the partition left this node): waiting produces and
    DeleteRecords fail with NOT_LEADER_OR_FOLLOWER; leadership listeners hear of it."""


@dataclass(frozen=True, slots=True)
class Follow:
    """Fetch from ``leader`` (-1: none elected yet, fetch from nobody) at ``leader_epoch``."""

    leader: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class AdvanceHighWatermark:
    """Publish ``high_watermark``: consumers read up to it, produces waiting below it complete
    (answered with ``isr_size``), transactions below it stop holding the last stable offset."""

    high_watermark: int
    isr_size: int


@dataclass(frozen=True, slots=True)
class IsrCommitted:
    """The committed ISR of a partition led here changed size (for the shrink and expand
    metrics): ``before`` and ``after`` are its sizes."""

    before: int
    after: int


@dataclass(frozen=True, slots=True, eq=False)
class ProposeIsr:
    """Ask the controller for ``isr`` (AlterPartition), fenced by the epochs. ``state`` is the
    leadership that asked: its answer goes back with it (``on_isr_answer``)."""

    isr: list[int]
    leader_epoch: int
    partition_epoch: int
    state: IsrState


@dataclass(frozen=True, slots=True)
class TruncateTo:
    """Cut the follower's log at ``offset`` (and rebuild what follows the log from it)."""

    offset: int


@dataclass(frozen=True, slots=True)
class IncrementLogStart:
    """Move the follower's log start offset up to the leader's."""

    offset: int


@dataclass(frozen=True, slots=True)
class StartAt:
    """Empty the follower's log and start it over at ``offset`` (the leader's log start): the
    producer state and the aborted-transaction index start over too."""

    offset: int


Action = (BecomeLeader | StopLeading | Follow | AdvanceHighWatermark | IsrCommitted | ProposeIsr
          | TruncateTo | IncrementLogStart | StartAt)


# -- rules that need no partition ------------------------------------------------------------


def truncation_offset(requested_epoch: int, leader_epoch: int, leader_end_offset: int,
                      own_end_offset_for: Callable[[int], int], log_end_offset: int) -> int:
    """Where a follower cuts its log after asking the leader about its latest epoch (KIP-279).

    The leader answers with the largest epoch it knows at or below the one asked
    about, and where that epoch ended in its log. If that is our epoch, we cut at
    its end. If the leader never had our epoch, our records of it diverge: we cut
    where the leader's answer epoch ended in *our* log, or earlier. No epoch in
    common: everything diverges.
    """
    if leader_epoch < 0:
        return 0
    end = leader_end_offset
    if leader_epoch != requested_epoch:
        end = min(end, own_end_offset_for(leader_epoch))
    return min(end, log_end_offset)


# -- the partition ---------------------------------------------------------------------------


class ReplicatedPartition:
    """The replication state of one partition hosted on ``node_id``: who leads it at which
    epoch, and while this node leads, the leader's ISR and high-watermark state."""

    def __init__(self, node_id: int, lag_time_max_ms: int, leader_epoch: int = -1) -> None:
        self.node_id = node_id
        self.lag_time_max_ms = lag_time_max_ms  # replica.lag.time.max.ms
        self.leader = -1
        self.leader_epoch = leader_epoch
        self.isr_state: IsrState | None = None  # while this node leads
        # The leader epoch this follower truncated for (OffsetForLeaderEpoch, KIP-279): it
        # fetches only under that leadership; None: not yet (or ask again).
        self.truncated_epoch: int | None = None

    @property
    def is_leader(self) -> bool:
        return self.isr_state is not None

    def _high_watermark(self) -> AdvanceHighWatermark:
        assert self.isr_state is not None
        return AdvanceHighWatermark(self.isr_state.high_watermark, len(self.isr_state.isr))

    # -- the metadata image ----------------------------------------------------------------
    def on_metadata(self, p: PartitionState, log_end_offset: int, high_watermark: int,
                    now_ms: int) -> list[Action]:
        """The committed state of the partition (after a metadata delta that touched it); the
        local log ends at ``log_end_offset`` with ``high_watermark``."""
        was_leader = self.isr_state is not None
        self.leader, self.leader_epoch = p.leader, p.leader_epoch
        actions: list[Action] = []
        if p.leader == self.node_id:
            state = self.isr_state
            if state is None or state.leader_epoch != p.leader_epoch:
                self.truncated_epoch = None  # a leader does not fetch
                actions.append(BecomeLeader(p.leader_epoch, log_end_offset, not was_leader))
                self.isr_state = state = IsrState(
                    self.node_id, list(p.replicas), list(p.isr), p.leader_epoch, p.partition_epoch,
                    leader_epoch_start_offset=log_end_offset, high_watermark=high_watermark,
                    log_end_offset=log_end_offset, lag_time_max_ms=self.lag_time_max_ms,
                    now_ms=now_ms)
                if state.on_append(log_end_offset):  # an ISR of one: all committed
                    actions.append(self._high_watermark())
            else:
                if state.replicas != p.replicas:  # a reassignment's step
                    state.on_replicas_changed(p.replicas, now_ms)
                if (state.isr, state.partition_epoch) != (p.isr, p.partition_epoch):
                    actions += self._isr_committed(state, p.isr, p.partition_epoch)
            return actions
        if was_leader:
            self.isr_state = None
            actions.append(StopLeading())
        actions.append(Follow(p.leader, p.leader_epoch))
        return actions

    def check_leader_epoch(self, requested: int) -> None:
        """A request's current_leader_epoch against ours (-1: the client does not know it):
        KafkaError FENCED_LEADER_EPOCH if older, UNKNOWN_LEADER_EPOCH if newer."""
        if requested < 0 or requested == self.leader_epoch:
            return
        if requested < self.leader_epoch:
            raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH,
                             f"Leader epoch {requested} is older than {self.leader_epoch}")
        raise KafkaError(ErrorCode.UNKNOWN_LEADER_EPOCH,
                         f"Leader epoch {requested} is newer than {self.leader_epoch}")

    # -- the leader's side -------------------------------------------------------------------
    def on_append(self, log_end_offset: int) -> list[Action]:
        """The leader appended up to ``log_end_offset``."""
        assert self.isr_state is not None
        return [self._high_watermark()] if self.isr_state.on_append(log_end_offset) else []

    def is_follower(self, replica_id: int) -> bool:
        """Whether ``replica_id`` is a replica of this partition that this node leads (the I/O
        also asks whether it is a registered broker)."""
        return self.isr_state is not None and replica_id in self.isr_state.followers

    def on_follower_fetch(self, replica_id: int, fetch_offset: int, log_start_offset: int,
                          now_ms: int) -> list[Action]:
        """A follower fetches from ``fetch_offset``: that is its log end offset; its log starts
        at ``log_start_offset``."""
        assert self.isr_state is not None
        moved = self.isr_state.on_follower_fetch(replica_id, fetch_offset, now_ms, log_start_offset)
        return [self._high_watermark()] if moved else []

    def proposed_isr(self, now_ms: int) -> ProposeIsr | None:
        """The ISR change to ask the controller for now, if this node leads and one is due."""
        state = self.isr_state
        if state is None:
            return None
        new_isr = state.proposed_isr(now_ms)
        if new_isr is None:
            return None
        return ProposeIsr(new_isr, state.leader_epoch, state.partition_epoch, state)

    def still_proposing(self, proposal: ProposeIsr) -> bool:
        """Whether a proposal is still the one in flight under the leadership that made it:
        a retry of one that is not would undo what happened since."""
        return self.isr_state is proposal.state and proposal.state.pending_isr == proposal.isr

    def on_isr_answer(self, proposal: ProposeIsr, partition_epoch: int) -> list[Action]:
        """The controller committed ``proposal`` at ``partition_epoch``."""
        state = proposal.state
        if self.isr_state is state and state.partition_epoch < partition_epoch:
            return self._isr_committed(state, proposal.isr, partition_epoch)
        return []

    @staticmethod
    def on_isr_refused(proposal: ProposeIsr) -> None:
        """The controller refused ``proposal`` (or could not be reached in time)."""
        proposal.state.on_isr_rejected()

    @staticmethod
    def _isr_committed(state: IsrState, isr: list[int], epoch: int) -> list[Action]:
        """A committed ISR reaches the leader: from its own AlterPartition's answer or from the
        metadata log, whichever comes first (the other then sees its epoch). Counted either
        way, so a follower the controller removed when fencing its broker is a shrink too
        (Kafka counts only the leader's own requests; a shrink is a shrink to an operator)."""
        actions: list[Action] = []
        if len(isr) != len(state.isr):
            actions.append(IsrCommitted(len(state.isr), len(isr)))
        if state.on_isr_committed(isr, epoch):
            actions.append(AdvanceHighWatermark(state.high_watermark, len(state.isr)))
        return actions

    # -- the follower's side ----------------------------------------------------------------
    def on_fetched(self, leader_high_watermark: int, log_end_offset: int,
                   leader_log_start_offset: int, log_start_offset: int) -> list[Action]:
        """A fetch response was appended (the log now ends at ``log_end_offset``): take the
        leader's high watermark, and its log start offset (Kafka's maybeIncrementLogStartOffset
        on every fetch, not only on OFFSET_OUT_OF_RANGE): records the leader deleted
        (DeleteRecords, retention) go here too, and do not come back if this replica leads
        next."""
        if self.isr_state is not None:
            return []
        actions: list[Action] = [AdvanceHighWatermark(min(leader_high_watermark, log_end_offset), 0)]
        if leader_log_start_offset > log_start_offset:
            actions.append(IncrementLogStart(leader_log_start_offset))
        return actions

    def epoch_to_ask(self, latest_epoch: int) -> int | None:
        """Before fetching from a leader: the epoch to ask it about by OffsetForLeaderEpoch
        (our log's ``latest_epoch``), or None if there is nothing to ask (already truncated
        for this leadership; an empty log has nothing to disagree about)."""
        if self.isr_state is not None or self.truncated_epoch == self.leader_epoch:
            return None
        if latest_epoch < 0:
            self.truncated_epoch = self.leader_epoch
            return None
        return latest_epoch

    def fetch_offset(self, log_end_offset: int) -> int | None:
        """Where this follower fetches from: its log end (the leader counts that as this
        replica's log end offset), once it truncated for the current leadership; else None."""
        if self.isr_state is None and self.truncated_epoch == self.leader_epoch:
            return log_end_offset
        return None

    def follow_again(self) -> None:
        """The fetching starts over (a new connection to the leader): truncate first."""
        self.truncated_epoch = None

    def on_epoch_answer(self, requested_epoch: int, leader_epoch: int, leader_end_offset: int,
                        own_end_offset_for: Callable[[int], int], log_end_offset: int,
                        asked_under: int | None = None) -> list[Action]:
        """The leader's answer to OffsetForLeaderEpoch about our latest epoch, asked while
        following at ``asked_under`` (None: the current leadership): once it is carried out,
        this follower fetches under that leadership."""
        if self.isr_state is not None:
            return []
        if asked_under is None or asked_under == self.leader_epoch:
            self.truncated_epoch = self.leader_epoch
        end = truncation_offset(requested_epoch, leader_epoch, leader_end_offset,
                                own_end_offset_for, log_end_offset)
        return [TruncateTo(end)] if end < log_end_offset else []

    def on_out_of_range(self, leader_log_start_offset: int, log_end_offset: int) -> list[Action]:
        """The leader no longer has our fetch offset. A log that ends before the leader's
        starts over there; one ahead of it asks OffsetForLeaderEpoch again (either way the
        fetching truncates again before it goes on)."""
        self.truncated_epoch = None
        if self.isr_state is None and log_end_offset < leader_log_start_offset:
            return [StartAt(leader_log_start_offset)]
        return []

"""The leader's ISR and high-watermark rules for one partition: a pure state machine.

No I/O and no clock: the partition's state machine (replication.partition) holds one
while this node leads, feeds it follower fetches, its own appends and committed ISR
changes, with the time, and turns its answers into actions for the replica manager.
The simulation of the controller quorum drives the same code.

Rules (Kafka's):
- A follower's log end offset is the offset it asks to fetch from.
- The high watermark is the smallest log end offset among the ISR, and never
  moves backwards under one leader.
- KIP-497: the leader uses the ISR the controller committed, plus members it has
  asked to add (counting more replicas is always safe), but a member it asked to
  remove still counts until the controller has committed the removal, so a leader
  cut off from the controller cannot shrink the ISR to itself and acknowledge
  acks=all writes alone.
- A follower leaves the ISR when it has not caught up with the leader's log end
  for replica.lag.time.max.ms; an out-of-ISR follower rejoins once it has reached
  the high watermark and fetched within the leader's current epoch (its fetch
  offset is at or past the epoch's start offset), judged on a fetch made after the
  ISR was last decided, so a dead follower is never proposed again.
- One ISR change at a time is in flight to the controller, fenced by the
  partition epoch.
"""

from collections.abc import Container
from dataclasses import dataclass, field


@dataclass(slots=True)
class FollowerState:
    log_end_offset: int = -1  # unknown until it fetches
    last_caught_up_ms: int = 0
    last_fetch_ms: int = -1
    # The leader's log end offset when this follower's previous fetch arrived: reaching
    # it counts as caught up as of that fetch (Kafka's lastFetchLeaderLogEndOffset).
    leader_end_at_last_fetch: int = 0
    log_start_offset: int = -1  # as its last fetch said; unknown until it fetches


@dataclass(slots=True)
class IsrState:
    node_id: int
    replicas: list[int]
    isr: list[int]  # as the controller committed it
    leader_epoch: int
    partition_epoch: int
    leader_epoch_start_offset: int
    high_watermark: int
    log_end_offset: int
    lag_time_max_ms: int
    now_ms: int
    followers: dict[int, FollowerState] = field(default_factory=dict)
    pending_isr: list[int] | None = None  # sent to the controller, not committed yet
    # When the ISR was last decided (committed or refused): a follower outside it is
    # proposed again only after fetching since then, as Kafka expands on a fetch.
    isr_decided_ms: int = -1

    def __post_init__(self):
        for r in self.replicas:
            if r != self.node_id:
                # A new leader gives every follower a full lag period before judging it.
                self.followers.setdefault(r, FollowerState(last_caught_up_ms=self.now_ms))

    # -- what the ISR is for the high watermark ----------------------------------
    @property
    def maximal_isr(self) -> set[int]:
        """Committed ISR, plus pending additions; pending removals still count."""
        members = set(self.isr)
        if self.pending_isr is not None:
            members |= set(self.pending_isr)
        return members

    def _advance_high_watermark(self) -> bool:
        ends = [self.log_end_offset if r == self.node_id else self.followers[r].log_end_offset
                for r in self.maximal_isr]
        candidate = min(ends)
        if candidate > self.high_watermark:
            self.high_watermark = candidate
            return True
        return False

    # -- inputs ---------------------------------------------------------------------
    def on_append(self, log_end_offset: int) -> bool:
        """The leader appended; returns whether the high watermark moved."""
        self.log_end_offset = log_end_offset
        return self._advance_high_watermark()

    def on_follower_fetch(self, replica_id: int, fetch_offset: int, now_ms: int,
                          log_start_offset: int = -1) -> bool:
        """A follower fetched from ``fetch_offset`` with its log starting at
        ``log_start_offset``; returns whether the high watermark moved."""
        f = self.followers.get(replica_id)
        if f is None:
            return False
        self.now_ms = now_ms
        f.log_start_offset = log_start_offset
        if fetch_offset >= self.log_end_offset:
            f.last_caught_up_ms = now_ms
        elif fetch_offset >= f.leader_end_at_last_fetch:
            f.last_caught_up_ms = max(f.last_caught_up_ms, f.last_fetch_ms)
        f.log_end_offset = fetch_offset
        f.last_fetch_ms = now_ms
        f.leader_end_at_last_fetch = self.log_end_offset
        return self._advance_high_watermark()

    def low_watermark(self, log_start_offset: int, alive: Container[int]) -> int:
        """The smallest log start offset among the leader's (``log_start_offset``) and its
        followers' on live brokers, in or out of the ISR (Kafka's lowWatermarkIfLeader).

        DeleteRecords answers once this reaches the offset asked for, so that no replica
        that could lead next still holds the deleted records. A follower that has not
        fetched under this leader counts as -1: it may hold anything.
        """
        low = log_start_offset
        for replica_id, f in self.followers.items():
            if replica_id in alive and f.log_start_offset < low:
                low = f.log_start_offset
        return low

    def proposed_isr(self, now_ms: int) -> list[int] | None:
        """The ISR the leader should ask the controller for now, or None.

        Nothing while a change is in flight (the partition epoch fences one at a time).
        """
        self.now_ms = now_ms
        if self.pending_isr is not None:
            return None
        current = set(self.isr)
        shrink = {r for r in current - {self.node_id}
                  if now_ms - self.followers[r].last_caught_up_ms > self.lag_time_max_ms}
        expand = {r for r, f in self.followers.items()
                  if r not in current and f.last_fetch_ms > self.isr_decided_ms
                  and f.log_end_offset >= self.high_watermark
                  and f.log_end_offset >= self.leader_epoch_start_offset
                  and now_ms - f.last_caught_up_ms <= self.lag_time_max_ms}
        if not shrink and not expand:
            return None
        new = [r for r in self.replicas if (r in current and r not in shrink) or r in expand]
        self.pending_isr = new
        return new

    def on_isr_committed(self, isr: list[int], partition_epoch: int) -> bool:
        """The controller committed an ISR (ours or not); returns whether the HW moved.

        One older than the ISR we know is ignored: the controller's answer to our change can
        arrive before this node's metadata image has applied it, and going back to the older
        ISR would drop a member just added (and a pending change) from the high watermark.
        """
        if partition_epoch < self.partition_epoch:
            return False
        self.isr = list(isr)
        self.partition_epoch = partition_epoch
        self.pending_isr = None
        self.isr_decided_ms = self.now_ms
        return self._advance_high_watermark()

    def in_sync_count(self, now_ms: int) -> int:
        """ISR members that are caught up now: what min.insync.replicas is checked against.

        Smaller than the committed ISR while a lagging member's removal is still on
        its way to the controller (or cannot reach it: a lost quorum). Refusing a
        write early is safe; KIP-497 only forbids acknowledging one on a shrink that
        is not committed.
        """
        return sum(1 for r in self.isr
                   if r == self.node_id or now_ms - self.followers[r].last_caught_up_ms <= self.lag_time_max_ms)

    def on_replicas_changed(self, replicas: list[int], now_ms: int) -> None:
        """A reassignment changed the replica set under this leader: a new replica gets a
        full lag period before it is judged, as at a new leader; one that left stops
        counting (the controller takes it out of the ISR in the same change)."""
        self.now_ms = now_ms
        self.replicas = list(replicas)
        for r in replicas:
            if r != self.node_id:
                self.followers.setdefault(r, FollowerState(last_caught_up_ms=now_ms))
        for r in [r for r in self.followers if r not in replicas]:
            del self.followers[r]
        # (The controller's change drops them from the ISR too; until it is applied here,
        # the ISR and a pending change must name only replicas that have a state.)
        self.isr = [r for r in self.isr if r in replicas]
        if self.pending_isr is not None:
            self.pending_isr = [r for r in self.pending_isr if r in replicas]

    def on_isr_rejected(self) -> None:
        """The controller refused our change (stale epoch, a fenced replica): wait for the
        new metadata or the follower's next fetch."""
        self.pending_isr = None
        self.isr_decided_ms = self.now_ms

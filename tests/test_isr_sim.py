"""A seeded simulation of one partition's replication, driving replication.isr.IsrState.

Three replicas, a controller that commits ISR changes (fenced by the partition epoch)
and elects leaders from the ISR, followers that fetch with random delays and drops,
crashes and restarts (a log keeps what it appended: the page cache survives a process
crash), and truncation by leader epoch when a replica follows a new leader. Checked
after every step:

- the high watermark never exceeds the log end offset of any committed-ISR member;
- no acknowledged offset is ever truncated: every offset a leader acknowledged
  (acks=all: below its high watermark) stays, with the same record, in every later
  leader's log, and in the log of every replica that has truncated for the current
  leader (a dead or not yet resynced replica may still hold a divergent suffix).

RAFT-free: the controller is a plain object here; the Raft simulation covers the
quorum. ISR_SIM_SEEDS (default 300) sets how many seeds run; a failure names its seed.
"""

import os
import random
from dataclasses import dataclass, field

import pytest

from replication import fetcher
from replication.isr import IsrState

LAG_MS = 300
SEEDS = int(os.environ.get("ISR_SIM_SEEDS", "300"))
STEPS = 400


@dataclass
class Replica:
    node: int
    log: list = field(default_factory=list)  # (record, leader_epoch) per offset
    alive: bool = True
    high_watermark: int = 0
    following_epoch: int = -1  # the leader epoch it truncated for

    @property
    def log_end(self) -> int:
        return len(self.log)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch on this log: (the largest epoch <= ``epoch`` it has, where
        that epoch ended: the start of the next larger epoch, or the log end); (-1, -1)."""
        known = [e for _, e in self.log if e <= epoch]
        if not known:
            return -1, -1
        for offset, (_, e) in enumerate(self.log):
            if e > epoch:
                return max(known), offset
        return max(known), len(self.log)


def cut(follower: Replica, requested: int, epoch: int, end_offset: int) -> int:
    """The fetcher's own rule (KIP-279), applied to a simulated follower."""
    return fetcher.truncation_offset(requested, epoch, end_offset,
                                     lambda e: follower.end_offset_for_epoch(e)[1], follower.log_end)


class Simulation:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.now = 0
        self.replicas = {n: Replica(n) for n in (1, 2, 3)}
        self.isr = [1, 2, 3]
        self.leader = 1
        self.leader_epoch = 0
        self.partition_epoch = 0
        self.state = self._new_state()
        self.acked: dict[int, str] = {}  # offset -> record the leader acknowledged
        self.next_record = 0
        self.in_flight: tuple | None = None  # an ISR change on its way to the controller

    def _new_state(self) -> IsrState:
        r = self.replicas[self.leader]
        return IsrState(self.leader, [1, 2, 3], list(self.isr), self.leader_epoch, self.partition_epoch,
                        r.log_end, r.high_watermark, r.log_end, LAG_MS, self.now)

    # -- the controller -----------------------------------------------------------
    def alter_isr(self, leader_epoch: int, partition_epoch: int, isr: list[int]) -> bool:
        if leader_epoch != self.leader_epoch or partition_epoch != self.partition_epoch:
            return False
        if any(not self.replicas[r].alive for r in set(isr) - set(self.isr)):
            return False
        self.isr, self.partition_epoch = list(isr), self.partition_epoch + 1
        return True

    def elect(self) -> None:
        """The leader died: a live ISR member takes over (no unclean election)."""
        candidates = [r for r in self.isr if self.replicas[r].alive and r != self.leader]
        if not candidates:
            self.leader = -1
            return
        self.isr = [r for r in self.isr if r != self.leader] or self.isr
        self.leader = self.rng.choice(candidates)
        self.leader_epoch += 1
        self.partition_epoch += 1
        self.state = self._new_state()
        self.replicas[self.leader].following_epoch = self.leader_epoch
        self.in_flight = None

    # -- steps ----------------------------------------------------------------------
    def step(self) -> None:
        self.now += self.rng.randint(1, 40)
        roll = self.rng.random()
        if self.leader < 0:
            self._revive_any()
        elif roll < 0.35:
            self._append()
        elif roll < 0.80:
            self._fetch(self.rng.choice([r for r in (1, 2, 3) if r != self.leader]))
        elif roll < 0.87:
            self._maintain_isr()
        elif roll < 0.90:
            self._controller_answers()
        elif roll < 0.95:
            self._crash()
        else:
            self._revive_any()
        self._check()

    def _append(self) -> None:
        leader = self.replicas[self.leader]
        if len([r for r in self.state.isr if self._in_sync(r)]) < 2:
            return  # min.insync.replicas=2 refuses the write
        leader.log.append((f"r{self.next_record}", self.leader_epoch))
        self.next_record += 1
        if self.state.on_append(leader.log_end):
            self._publish()

    def _in_sync(self, r: int) -> bool:
        return r == self.leader or self.now - self.state.followers[r].last_caught_up_ms <= LAG_MS

    def _fetch(self, follower_id: int) -> None:
        follower, leader = self.replicas[follower_id], self.replicas[self.leader]
        if not follower.alive or self.rng.random() < 0.2:  # dropped on the wire
            return
        if follower.following_epoch != self.leader_epoch:
            # OffsetForLeaderEpoch: cut where our latest epoch ended in the leader's log.
            latest = follower.log[-1][1] if follower.log else -1
            if latest >= 0:
                del follower.log[cut(follower, latest, *leader.end_offset_for_epoch(latest)):]
            follower.following_epoch = self.leader_epoch
        if self.state.on_follower_fetch(follower_id, follower.log_end, self.now):
            self._publish()
        take = self.rng.randint(0, 5)
        follower.log.extend(leader.log[follower.log_end:follower.log_end + take])
        follower.high_watermark = min(self.state.high_watermark, follower.log_end)

    def _publish(self) -> None:
        leader = self.replicas[self.leader]
        for offset in range(leader.high_watermark, self.state.high_watermark):
            self.acked.setdefault(offset, leader.log[offset][0])
        leader.high_watermark = self.state.high_watermark

    def _maintain_isr(self) -> None:
        proposal = self.state.proposed_isr(self.now)
        if proposal is not None:  # the controller answers some steps later (or never)
            self.in_flight = (self.state, self.state.leader_epoch, self.state.partition_epoch, proposal)

    def _controller_answers(self) -> None:
        if self.in_flight is None:
            return
        state, leader_epoch, partition_epoch, proposal = self.in_flight
        self.in_flight = None
        committed = self.alter_isr(leader_epoch, partition_epoch, proposal)
        if state is not self.state:
            return  # that leader is gone
        if committed:
            if self.state.on_isr_committed(proposal, self.partition_epoch):
                self._publish()
        else:
            self.state.on_isr_rejected()

    def _crash(self) -> None:
        victim = self.rng.choice([1, 2, 3])
        self.replicas[victim].alive = False
        self.replicas[victim].following_epoch = -1
        if victim == self.leader:
            self.elect()
        elif victim in self.isr and len(self.isr) > 1:
            self.isr.remove(victim)  # fenced by the controller
            self.partition_epoch += 1
            if self.state.on_isr_committed(list(self.isr), self.partition_epoch):
                self._publish()

    def _revive_any(self) -> None:
        dead = [r for r in self.replicas.values() if not r.alive]
        if dead:
            self.rng.choice(dead).alive = True
        if self.leader < 0:  # the whole ISR was down; its last member comes back to lead
            last = [r for r in self.isr if self.replicas[r].alive]
            if last:
                self.leader = last[0]
                self.leader_epoch += 1
                self.partition_epoch += 1
                self.state = self._new_state()
                self.replicas[self.leader].following_epoch = self.leader_epoch

    def _check(self) -> None:
        if self.leader < 0:
            return
        for r in self.state.isr:
            assert self.state.high_watermark <= self.replicas[r].log_end, \
                f"HW {self.state.high_watermark} above ISR member {r}'s log end {self.replicas[r].log_end}"
        for replica in self.replicas.values():
            if replica.following_epoch != self.leader_epoch:
                continue  # dead, or not yet truncated for this leader: its suffix may differ
            for offset, record in self.acked.items():
                if offset < replica.log_end:
                    assert replica.log[offset][0] == record, f"acked offset {offset} replaced on {replica.node}"
        leader = self.replicas[self.leader]
        missing = [o for o in self.acked if o >= leader.log_end]
        assert not missing, f"leader {self.leader} lacks acknowledged offsets {missing[:5]}"


def failing_seeds(count: int) -> int:
    """How many of the first ``count`` seeds end in a broken invariant."""
    failed = 0
    for seed in range(count):
        sim = Simulation(seed)
        try:
            for _ in range(STEPS):
                sim.step()
        except AssertionError:
            failed += 1
    return failed


@pytest.mark.parametrize("chunk", range(10))
def test_isr_simulation(chunk):
    for seed in range(chunk, SEEDS, 10):
        sim = Simulation(seed)
        try:
            for _ in range(STEPS):
                sim.step()
        except AssertionError as e:
            raise AssertionError(f"seed {seed}: {e}") from None
        assert sim.next_record > 0


def test_the_simulation_catches_an_early_shrink(monkeypatch):
    """If the high watermark ignored a pending removal (KIP-497), acks would be lost."""
    monkeypatch.setattr(IsrState, "maximal_isr", property(
        lambda self: set(self.pending_isr) if self.pending_isr is not None else set(self.isr)))
    assert failing_seeds(200) > 0


def test_the_simulation_catches_truncating_at_the_leaders_offset_alone(monkeypatch):
    """Before KIP-279, a follower whose epoch the new leader never had kept its suffix."""
    monkeypatch.setattr(fetcher, "truncation_offset",
                        lambda requested, epoch, end, own, log_end: min(end, log_end) if epoch >= 0 else 0)
    assert failing_seeds(100) > 0

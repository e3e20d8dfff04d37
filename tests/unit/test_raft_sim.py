"""Seeded simulation of the cluster: the Raft metadata quorum and the partition replication it
drives, under faults (tests/raft_sim.py for the quorum, tests/partition_sim.py for the partition).

RAFT_SIM_SEEDS=20000 runs more seeds (default 500; `make raft-sim`); RAFT_SIM_SEED=1234 runs
one seed, and `python -m tests.partition_sim 1234` shows where it ended. Seeds are split into
chunks so that a failure names its seed and pytest -x stops early.
"""

from __future__ import annotations

import os
import random
import traceback

import pytest

from odradek.replication import partition
from odradek.replication.isr import IsrState
from odradek.replication.partition import TruncateTo
from odradek.replication.raft import RaftNode
from odradek.replication.raft_messages import EntryKind, LogEntry
from tests import partition_sim
from tests.partition_sim import run_seed
from tests.raft_sim import Checker, Disk, Simulation, StateMachine, Violation, cluster_size

SEEDS = int(os.environ.get("RAFT_SIM_SEEDS", "500"))
ONE_SEED = os.environ.get("RAFT_SIM_SEED")
CHUNKS = 10


def _seeds(chunk: int) -> list[int]:
    if ONE_SEED is not None:
        return [int(ONE_SEED)] if chunk == 0 else []
    return list(range(chunk, SEEDS, CHUNKS))


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_simulated_cluster_keeps_its_invariants(chunk):
    seeds = _seeds(chunk)
    if not seeds:
        pytest.skip("RAFT_SIM_SEED runs in chunk 0")
    failures = []
    for seed in seeds:
        try:
            run_seed(seed)
        except Exception as exc:  # a crash in the code under test is as much a failure as a Violation
            detail = str(exc) if isinstance(exc, Violation) else traceback.format_exc(limit=-3)
            failures.append(
                f"seed {seed} ({cluster_size(seed)} voters): {detail}\n"
                f"  re-run: RAFT_SIM_SEED={seed} .venv/bin/python -m pytest -q tests/test_raft_sim.py"
                f"  (or .venv/bin/python -m tests.partition_sim {seed})"
            )
    assert not failures, "\n".join(failures)


def test_observers_follow_the_quorum_without_a_vote():
    """Observers (KRaft's process.roles=broker nodes) crash, are cut off and heal beside the
    voters: what they apply agrees with every voter (the checker), they never lead, and
    once healed they catch up with the leader (Simulation.check_observers_caught_up)."""
    failures = []
    for seed in range(0, SEEDS, 10):
        sim = Simulation(seed, cluster_size(seed), observers=1 + seed % 2)
        try:
            sim.run()
        except Violation as exc:
            failures.append(f"seed {seed}: {exc}")
    assert not failures, "\n".join(failures)


# The checkers must be able to fail: each rule broken on purpose is caught within a few seeds.


def _first_violation(seeds: range, **options) -> str | None:
    for seed in seeds:
        try:
            run_seed(seed, **options)
        except Violation as exc:
            return str(exc)
    return None


class DoubleVotingNode(RaftNode):
    """Grants every up-to-date candidate, forgetting whom it already voted for this term."""

    def _can_grant(self, msg):
        if not msg.pre_vote and msg.term == self.term:
            return (msg.last_log_term, msg.last_log_index) >= (
                self._log.last_term,
                self._log.last_index,
            )
        return super()._can_grant(msg)


def test_checker_catches_a_double_voting_core():
    found = _first_violation(range(100), node_factory=DoubleVotingNode)
    assert found is not None and "election safety" in found


def test_checker_catches_lost_data_without_directory_ids():
    """Every incarnation with the same directory id: the wiped voter's double vote shows."""

    def without_directory_ids(node_id, directory_id, *args, **kwargs):
        return RaftNode(node_id, "same-directory", *args, **kwargs)

    # Wipes happen in about 1 in 4 multi-voter seeds; a few of them break.
    found = _first_violation(range(150), node_factory=without_directory_ids)
    assert found is not None


def test_checker_catches_an_early_shrink(monkeypatch):
    """If the high watermark ignored a pending removal (KIP-497), an isolated leader would
    acknowledge alone."""
    monkeypatch.setattr(IsrState, "maximal_isr", property(
        lambda self: set(self.pending_isr) if self.pending_isr is not None else set(self.isr)))
    found = _first_violation(range(50))
    assert found is not None and "high watermark" in found


def test_checker_catches_truncating_at_the_leaders_offset_alone(monkeypatch):
    """Before KIP-279, a follower whose epoch the new leader never had kept its suffix."""
    monkeypatch.setattr(partition, "truncation_offset",
                        lambda requested, epoch, end, own, log_end: min(end, log_end) if epoch >= 0 else 0)
    found = _first_violation(range(150))
    assert found is not None and "acked offset" in found


def test_checker_catches_truncating_at_the_own_high_watermark(monkeypatch):
    """Before KIP-101, a follower cut its log at its own (lagging) high watermark."""
    monkeypatch.setattr(partition_sim, "cut", lambda follower, state_machine, requested, epoch,
                        end_offset: [TruncateTo(follower.high_watermark)])
    assert _first_violation(range(50)) is not None


# Bugs the simulation found, kept as the seeds that showed them.

ISR_FROM_OLDER_IMAGE_SEED = 10


def test_an_older_isr_from_the_image_is_ignored(monkeypatch):
    """The controller's answer to an ISR expansion reached the leader before its own metadata
    image applied the change; the image's older ISR then replaced the newer one, and the high
    watermark passed the member just added (now refused by IsrState.on_isr_committed)."""
    run_seed(ISR_FROM_OLDER_IMAGE_SEED)

    def without_the_epoch_check(self, isr, partition_epoch):
        self.isr, self.partition_epoch, self.pending_isr = list(isr), partition_epoch, None
        self.isr_decided_ms = self.now_ms
        return self._advance_high_watermark()

    monkeypatch.setattr(IsrState, "on_isr_committed", without_the_epoch_check)
    with pytest.raises(Violation, match="high watermark"):
        run_seed(ISR_FROM_OLDER_IMAGE_SEED)


STALE_IMAGE_AT_RESTART_SEED = 46


def test_a_broker_acting_on_its_image_before_catching_up_loses_acknowledged_records():
    """Brokers act on their metadata image only once they have applied what was committed
    when they first heard from a quorum leader (replication.quorum's caught_up, which
    ReplicaManager.start waits for; tests/cluster/test_cluster.py checks the real broker). Without
    that wait, a restarted replica follows a deposed leader of an old epoch from its
    snapshot's image, truncates acknowledged records away by its answer, and later leads
    without them."""
    run_seed(STALE_IMAGE_AT_RESTART_SEED)
    with pytest.raises(Violation, match="acked offset"):
        run_seed(STALE_IMAGE_AT_RESTART_SEED, catch_up=False)


def test_checker_rejects_hand_made_bad_histories():
    checker = Checker()
    a = RaftNode(1, "d1", [1, 2, 3], now_ms=0, rng=random.Random(0))
    b = RaftNode(2, "d2", [1, 2, 3], now_ms=0, rng=random.Random(0))
    for node in (a, b):
        node._hard = type(node._hard)(term=4)
    checker.on_leader(a)
    with pytest.raises(Violation, match="election safety"):
        checker.on_leader(b)

    disk = Disk()
    checker.on_persist(1, disk, [LogEntry(1, 1, EntryKind.DATA, b"x")])
    with pytest.raises(Violation, match="log matching"):
        checker.on_persist(2, disk, [LogEntry(1, 1, EntryKind.DATA, b"y")])

    checker.on_apply(1, StateMachine(), LogEntry(1, 1, EntryKind.DATA, b"x"), term_now=1)
    with pytest.raises(Violation, match="state machine safety"):
        checker.on_apply(2, StateMachine(), LogEntry(1, 2, EntryKind.DATA, b"z"), term_now=2)
    with pytest.raises(Violation, match="applied 3 after 0"):
        checker.on_apply(3, StateMachine(), LogEntry(3, 1, EntryKind.DATA, b"x"), term_now=1)

    # A leader of a later term without the committed entry 1.
    c = RaftNode(3, "d3", [1, 2, 3], now_ms=0, rng=random.Random(0))
    c._hard = type(c._hard)(term=5)
    with pytest.raises(Violation, match="leader completeness"):
        checker.on_leader(c)

"""Leader elections the operator asks for (ElectLeaders) and the controller's automatic
preferred-leader rebalancing: pure decisions, no I/O.

The controller calls these with a partition's state and the live (unfenced) brokers and
commits what they return as a ``PartitionChangeRecord``; the rules live here so that
they can be tested without a cluster.

Rules (Kafka's ReplicationControlManager.electLeader and PartitionChangeBuilder):
- PREFERRED elects the preferred replica (the first of the replica list) only if it is
  alive and in the ISR: an ISR member holds every acknowledged record, so no
  acknowledged data is lost. Already leading: ELECTION_NOT_NEEDED; otherwise not
  eligible: PREFERRED_LEADER_NOT_AVAILABLE.
- UNCLEAN is for a partition without a leader: a live ISR member if there is one,
  else the first live replica in replica order, which becomes the only ISR member
  (it may lack acknowledged records: the operator chose availability). A replica that
  is not alive is never elected. A partition that has a leader: ELECTION_NOT_NEEDED;
  no live replica: ELIGIBLE_LEADERS_NOT_AVAILABLE.

Automatic rebalancing (auto.leader.rebalance.enable) follows the ZooKeeper-era
controller's checkAndTriggerAutoLeaderRebalance, which honours
leader.imbalance.per.broker.percentage (KRaft's controller moves every imbalanced
partition regardless): per broker, the share of the partitions it is preferred for
that another broker leads; above the percentage, those of them whose preferred replica
is alive and in the ISR go back to it.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from odradek.protocol.errors import ErrorCode

PREFERRED = 0  # ElectLeadersRequest election_type
UNCLEAN = 1
# Kafka's default messages of these errors (ApiError(error) carries error.message()),
# which kafka-leader-election prints.
NOT_NEEDED = "Leader election not needed for topic partition."
NOT_AVAILABLE = "The preferred leader was not available."
NO_ELIGIBLE = "Eligible topic partition leaders are not available."


@dataclass(frozen=True, slots=True)
class Election:
    """The outcome for one partition: an error (``leader`` None), or the new leader and,
    when it changes, the new ISR (None: unchanged)."""
    error: ErrorCode = ErrorCode.NONE
    message: str | None = None
    leader: int | None = None
    isr: list[int] | None = None


def elect(election_type: int, replicas: list[int], isr: list[int], leader: int,
          live: Collection[int]) -> Election:
    """Who should lead a partition after an election of ``election_type``."""
    if election_type == PREFERRED:
        preferred = replicas[0] if replicas else -1
        if leader == preferred:
            return Election(ErrorCode.ELECTION_NOT_NEEDED, NOT_NEEDED)
        if preferred in isr and preferred in live:
            return Election(leader=preferred)
        return Election(ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, NOT_AVAILABLE)
    if election_type == UNCLEAN:
        if leader != -1:
            return Election(ErrorCode.ELECTION_NOT_NEEDED, NOT_NEEDED)
        for r in replicas:
            if r in isr and r in live:
                return Election(leader=r)
        for r in replicas:
            if r in live:
                return Election(leader=r, isr=[r])
        return Election(ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, NO_ELIGIBLE)
    return Election(ErrorCode.INVALID_REQUEST, f"Unknown election type {election_type}")


@dataclass(frozen=True, slots=True)
class PartitionView:
    """What the rebalancer needs to know of a partition."""
    topic_id: str
    partition: int
    replicas: list[int]
    isr: list[int]
    leader: int


def partitions_to_rebalance(partitions: Iterable[PartitionView], live: Collection[int],
                            imbalance_percentage: int) -> list[tuple[str, int]]:
    """The (topic id, partition) pairs whose leadership goes back to their preferred
    replica now.

    A broker's imbalance is the share of the partitions it is preferred for that it does
    not lead; only when that exceeds ``imbalance_percentage`` (a little imbalance is not
    worth the clients' metadata refreshes) do its partitions move, and only those whose
    preferred replica is alive and in the ISR, so no acknowledged data is lost.
    """
    by_preferred: dict[int, list[PartitionView]] = {}
    for p in partitions:
        if p.replicas:
            by_preferred.setdefault(p.replicas[0], []).append(p)
    moves = []
    for broker, preferred_for in sorted(by_preferred.items()):
        not_leading = [p for p in preferred_for if p.leader != broker]
        if len(not_leading) / len(preferred_for) <= imbalance_percentage / 100:
            continue
        moves += [(p.topic_id, p.partition) for p in not_leading
                  if elect(PREFERRED, p.replicas, p.isr, p.leader, live).leader is not None]
    return moves

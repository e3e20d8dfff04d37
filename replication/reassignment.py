"""Partition reassignment (KIP-455, kafka-reassign-partitions): pure decisions, no I/O.

The controller calls these with a partition's state and commits what they return as
``PartitionChangeRecord``s. Kafka's rules (PartitionReassignmentReplicas and
PartitionChangeBuilder):

- Starting: the replica set becomes the target followed by the replicas leaving
  (``removing``); the replicas joining are ``adding``. They start as followers, copy the
  log from the leader and join the ISR once caught up, as any follower does.
- A new reassignment of a partition that is being reassigned replaces it: it starts
  again from the original replicas (the current ones minus those being added).
- Completing: once every adding replica is in the ISR, the replica set becomes the
  target, the ISR keeps only target members, and a leader outside the target hands over
  to the first target replica that is in the ISR and alive. Nothing completes while the
  ISR would be left without a target member.
- Cancelling (replicas null) goes back to the original replicas, likewise.
"""

from collections.abc import Collection
from dataclasses import dataclass

from odradek.protocol.errors import ErrorCode, KafkaError


@dataclass(frozen=True, slots=True)
class Change:
    """The partition after a step: replica set, ISR, leader, and what is still moving."""
    replicas: list[int]
    isr: list[int]
    leader: int
    adding: list[int]
    removing: list[int]


def original_replicas(replicas: list[int], adding: list[int]) -> list[int]:
    return [r for r in replicas if r not in adding]


def check_target(target: list[int], registered: Collection[int]) -> None:
    """Kafka's refusals of a target replica list (INVALID_REPLICA_ASSIGNMENT)."""
    if not target:
        raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                         "The manual partition assignment includes an empty replica list.")
    seen = set()
    for r in target:
        if r in seen:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"The manual partition assignment includes the broker {r} more than once.")
        seen.add(r)
        if r not in registered:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"The manual partition assignment includes broker {r}, but no such "
                             "broker is registered.")


def start(replicas: list[int], isr: list[int], leader: int, adding: list[int], target: list[int],
          live: Collection[int]) -> Change:
    """Begin moving a partition to ``target`` (completing at once when nothing is added)."""
    original = original_replicas(replicas, adding)
    new_adding = [r for r in target if r not in original]
    removing = [r for r in original if r not in target]
    # Replicas being added by a replaced reassignment and not wanted now leave the ISR.
    merged = target + removing
    step = Change(merged, [r for r in isr if r in merged], leader, new_adding, removing)
    if step.leader not in merged:
        step = _with_leader(step, live)
    return maybe_complete(step, live) or step


def maybe_complete(step: Change, live: Collection[int]) -> Change | None:
    """The finished reassignment, if every adding replica is in the ISR; else None."""
    if not step.adding and not step.removing:
        return None
    if any(r not in step.isr for r in step.adding):
        return None
    target = [r for r in step.replicas if r not in step.removing]
    isr = [r for r in step.isr if r in target]
    if not isr:
        return None
    return _with_leader(Change(target, isr, step.leader, [], []), live)


def cancel(replicas: list[int], isr: list[int], leader: int, adding: list[int], removing: list[int],
           live: Collection[int]) -> Change:
    """Go back to the original replicas. NO_REASSIGNMENT_IN_PROGRESS without one (with no
    message: Kafka sends none)."""
    if not adding and not removing:
        raise KafkaError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)
    original = original_replicas(replicas, adding)
    reverted = [r for r in isr if r in original]
    if not reverted:
        raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                         "Cancelling would leave no in-sync replica among the original ones.")
    return _with_leader(Change(original, reverted, leader, [], []), live)


def _with_leader(step: Change, live: Collection[int]) -> Change:
    """Keep a leader that stays a replica and in the ISR; else the first replica in the ISR
    that is alive, else none (-1) until one comes back."""
    if step.leader in step.replicas and step.leader in step.isr:
        return step
    leader = next((r for r in step.replicas if r in step.isr and r in live), -1)
    return Change(step.replicas, step.isr, leader, step.adding, step.removing)

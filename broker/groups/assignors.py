"""Server-side assignors of the consumer group protocol (KIP-848): uniform and range.

The coordinator computes each member's target assignment (group.consumer.assignors,
the first one the default; a member may name another in ServerAssignor). Pure
functions: members' subscriptions and the topics' partition counts in, member id ->
topic id -> partitions out. Deterministic (sorted member ids, sorted topic ids), so the
same group gets the same answer on every coordinator.

- uniform (Kafka's UniformAssignor): every partition of every subscribed topic goes to
  one of its subscribers, balanced to within one partition where subscriptions allow,
  and sticky: a member keeps what it has up to its share, so a rebalance moves only
  the partitions it must (which is what makes incremental reconciliation cheap).
- range (Kafka's RangeAssignor): per topic, its subscribers in member-id order take
  consecutive ranges, the first ``partitions % members`` one more; members subscribed
  to co-partitioned topics get the same partition numbers of each.

Racks (KIP-881's rack-aware assignment, when members give a RackId and brokers a
broker.rack): ``racks`` maps a topic id to the racks of each partition's replicas. A
partition then goes preferably to a member in one of those racks, so it fetches from
its own rack: range first gives each member the partitions of its quota in its rack,
then fills the rest in order; uniform places and moves a partition to the least loaded
of its subscribers, of those preferably one in a replica's rack (balance first), and a
member keeps what it holds only in its rack (Kafka's racksMismatch). Without racks both
answer as before.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

Assignment = dict[uuid.UUID, frozenset[int]]

UNIFORM = "uniform"
RANGE = "range"
# group.consumer.assignors takes Kafka 4.4's short names (its default: uniform,range) or
# the assignors' class names (older Kafka's default): both spellings are accepted.
CLASS_NAMES = {
    "org.apache.kafka.coordinator.group.assignor.UniformAssignor": UNIFORM,
    "org.apache.kafka.coordinator.group.assignor.RangeAssignor": RANGE,
}


@dataclass(frozen=True, slots=True)
class MemberSubscription:
    topic_ids: frozenset[uuid.UUID]
    rack_id: str | None = None


def assignor_name(configured: str) -> str | None:
    """The short name of a configured assignor, or None if we have no such assignor."""
    name = CLASS_NAMES.get(configured, configured)
    return name if name in ASSIGNORS else None


Racks = Mapping[uuid.UUID, tuple[frozenset[str], ...]]  # topic id -> each partition's replica racks


def _in_rack(members: Mapping[str, MemberSubscription], racks: Racks | None, member: str,
             topic_id: uuid.UUID, partition: int) -> bool:
    rack = members[member].rack_id
    if rack is None or not racks or topic_id not in racks or partition >= len(racks[topic_id]):
        return False
    return rack in racks[topic_id][partition]


def _racks_mismatch(members: Mapping[str, MemberSubscription], racks: Racks | None, member: str,
                    topic_id: uuid.UUID, partition: int) -> bool:
    """Kafka's racksMismatch: the member has a rack, the partition's replicas have racks,
    and it is none of them (such a partition is not kept sticky)."""
    rack = members[member].rack_id
    replica_racks = racks.get(topic_id, ()) if racks else ()
    return (rack is not None and partition < len(replica_racks) and bool(replica_racks[partition])
            and rack not in replica_racks[partition])


def range_assign(members: Mapping[str, MemberSubscription], partitions: Mapping[uuid.UUID, int],
                 current: Mapping[str, Assignment], racks: Racks | None = None) -> dict[str, Assignment]:
    out: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in members}
    for topic_id in sorted(partitions):
        subscribers = sorted(m for m, s in members.items() if topic_id in s.topic_ids)
        if not subscribers:
            continue
        count = partitions[topic_id]
        per, extra = divmod(count, len(subscribers))
        quota = {m: per + (1 if i < extra else 0) for i, m in enumerate(subscribers)}
        taken: set[int] = set()
        # Rack-aware first pass (nothing without racks): each member its quota in its rack.
        for member in subscribers:
            for p in range(count):
                if quota[member] and p not in taken and _in_rack(members, racks, member, topic_id, p):
                    out[member].setdefault(topic_id, set()).add(p)
                    taken.add(p)
                    quota[member] -= 1
        free = iter(p for p in range(count) if p not in taken)  # the rest, in order: consecutive ranges
        for member in subscribers:
            for _ in range(quota[member]):
                out[member].setdefault(topic_id, set()).add(next(free))
    return _freeze(out)


def uniform_assign(members: Mapping[str, MemberSubscription], partitions: Mapping[uuid.UUID, int],
                   current: Mapping[str, Assignment], racks: Racks | None = None) -> dict[str, Assignment]:
    """Sticky and balanced: keep what fits each member's share, place the rest on the least
    loaded subscriber, then move partitions from members two or more above another
    subscriber of the same topic until none is."""
    owner: dict[tuple[uuid.UUID, int], str] = {}
    load = dict.fromkeys(members, 0)
    subscribed = {m: [t for t in sorted(s.topic_ids) if t in partitions] for m, s in members.items()}
    total = sum(partitions[t] for t in {t for ts in subscribed.values() for t in ts})
    active = [m for m in members if subscribed[m]]
    share = -(-total // len(active)) if active else 0
    for member in sorted(members):
        for topic_id, parts in sorted((current.get(member) or {}).items()):
            if topic_id not in members[member].topic_ids or topic_id not in partitions:
                continue
            for p in sorted(parts):
                if p < partitions[topic_id] and (topic_id, p) not in owner and load[member] < share \
                        and not _racks_mismatch(members, racks, member, topic_id, p):
                    owner[(topic_id, p)] = member
                    load[member] += 1
    subscribers = {t: sorted(m for m in members if t in subscribed[m]) for t in partitions}
    for topic_id in sorted(partitions):
        candidates = subscribers[topic_id]
        if not candidates:
            continue
        for p in range(partitions[topic_id]):
            if (topic_id, p) not in owner:
                # The least loaded; of those, one in a replica's rack.
                member = min(candidates, key=lambda m: (load[m], not _in_rack(members, racks, m, topic_id, p), m))
                owner[(topic_id, p)] = member
                load[member] += 1
    # Balance: each move lowers the sum of squared loads, so this ends; bounded anyway.
    for _ in range(len(owner) + 1):
        moved = False
        for tp, member in sorted(owner.items(), key=lambda kv: (-load[kv[1]], kv[0])):
            target = min(subscribers[tp[0]], key=lambda m: (load[m], not _in_rack(members, racks, m, *tp), m))
            if load[target] + 1 < load[member]:
                owner[tp] = target
                load[member] -= 1
                load[target] += 1
                moved = True
        if not moved:
            break
    out: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in members}
    for (topic_id, p), member in owner.items():
        out[member].setdefault(topic_id, set()).add(p)
    return _freeze(out)


def _freeze(out: dict[str, dict[uuid.UUID, set[int]]]) -> dict[str, Assignment]:
    return {m: {t: frozenset(ps) for t, ps in topics.items()} for m, topics in out.items()}


ASSIGNORS = {UNIFORM: uniform_assign, RANGE: range_assign}

"""What the console shows, as plain data: one function per page, read from this node's
own state (metadata image, replicas, group coordinator, counters) on the event loop.

Every page is also served as JSON (``/console/api/...``), so the numbers a browser
sees and the numbers a script or test reads are the same dicts. Nothing here writes.
Only the record browser reads the log: it picks the slices on the loop, as a fetch
does, and reads and decodes them in a thread (``decode_records``).
"""

import asyncio

from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment
from kafka.record import MemoryRecords

from odradek.broker.handlers.metadata import INTERNAL_TOPICS
from odradek.storage.errors import OffsetOutOfRangeError

MAX_RECORDS = 50  # a browser page shows at most this many records
MAX_READ_BYTES = 1 << 20  # and reads at most this much of the log for them
SHOWN_BYTES = 512  # of each key and value


def cluster(b) -> dict:
    """Nodes, the controller quorum and the partitions that need attention."""
    image = b.image
    quorum = b.metadata_log.describe() if b.metadata_log is not None else None
    under_replicated, offline = [], []
    for topic in image.topics.values():
        for p in topic.partitions.values():
            name = {"topic": topic.name, "partition": p.partition, "leader": p.leader,
                    "replicas": p.replicas, "isr": p.isr}
            leader = image.brokers.get(p.leader)
            if leader is None or leader.fenced:
                offline.append(name)
            elif len(p.isr) < len(p.replicas):
                under_replicated.append(name)
    return {
        "cluster_id": image.cluster_id, "node_id": b.node_id,
        "active_controller": b.active_controller_id,
        "nodes": [{"node_id": n.node_id, "fenced": n.fenced, "rack": n.rack,
                   "endpoints": {k: f"{h}:{p}" for k, (h, p) in n.endpoints.items()}}
                  for n in sorted(image.brokers.values(), key=lambda n: n.node_id)],
        "quorum": quorum,
        "topics": len(image.topics),
        "partitions": sum(len(t.partitions) for t in image.topics.values()),
        "under_replicated": under_replicated, "offline": offline,
    }


def _local(b, topic: str, index: int):
    return b.replicas.partitions.get((topic, index)) if b.replicas is not None else None


def topics(b) -> dict:
    rows = []
    for name in sorted(b.image.topics):
        t = b.image.topics[name]
        stats = b.stats.topics.get(name)
        rows.append({
            "name": name, "internal": name in INTERNAL_TOPICS, "partitions": len(t.partitions),
            "replication_factor": max((len(p.replicas) for p in t.partitions.values()), default=0),
            "under_replicated": sum(len(p.isr) < len(p.replicas) for p in t.partitions.values()),
            "size_here": sum(p.log.size for i in t.partitions
                             if (p := _local(b, name, i)) is not None),
            "bytes_in": stats.bytes_in if stats else 0,
            "bytes_out": stats.bytes_out if stats else 0,
            "messages_in": stats.messages_in if stats else 0,
        })
    return {"topics": rows}


def topic(b, name: str) -> dict | None:
    t = b.image.topics.get(name)
    if t is None:
        return None
    partitions = []
    for index in sorted(t.partitions):
        p = t.partitions[index]
        row = {"partition": index, "leader": p.leader, "leader_epoch": p.leader_epoch,
               "replicas": p.replicas, "isr": p.isr, "here": False}
        local = _local(b, name, index)
        if local is not None:
            log = local.log
            row.update(here=True, log_start_offset=log.log_start_offset,
                       high_watermark=log.high_watermark, log_end_offset=log.log_end_offset,
                       size=log.size, segments=len(log.segments))
        partitions.append(row)
    return {"name": name, "topic_id": t.topic_id, "partitions": partitions,
            "configs": dict(sorted(b.image.topic_configs(name).items()))}


def assigned_partitions(assignment: bytes) -> list[str]:
    """A classic consumer member's ConsumerProtocolAssignment as "topic-partition" names
    ([] for another protocol's bytes, which the console cannot read)."""
    if len(assignment) < 2:
        return []
    try:
        decoded = ConsumerProtocolAssignment.decode(assignment)
    except Exception:  # any protocol's bytes may arrive here; show none
        return []
    return [f"{tp.topic}-{i}" for tp in decoded.assigned_partitions for i in tp.partitions]


def groups(b) -> dict:
    """The groups this node coordinates (each node's console shows its own)."""
    rows = []
    if b.groups is not None:
        for group_id in sorted(b.groups.groups):
            g = b.groups.groups[group_id]
            rows.append({"group_id": group_id, "state": g.state.value,
                         "protocol_type": g.protocol_type or "", "protocol": g.protocol_name or "",
                         "members": len(g.members), "lag": sum(b.groups.lag(g).values())})
    return {"groups": rows, "note": "Each node coordinates some groups: see every node's console."}


def group(b, group_id: str) -> dict | None:
    g = b.groups.groups.get(group_id) if b.groups is not None else None
    if g is None:
        return None
    lags = b.groups.lag(g)
    return {
        "group_id": group_id, "state": g.state.value, "generation_id": g.generation_id,
        "protocol_type": g.protocol_type or "", "protocol": g.protocol_name or "",
        "leader": g.leader_id,
        "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                     "client_id": m.client_id, "client_host": m.client_host,
                     "assignment": assigned_partitions(m.assignment)}
                    for m in g.members.values()],
        "offsets": [{"topic": t, "partition": i, "committed": o.offset, "lag": lags.get((t, i))}
                    for (t, i), o in sorted(g.offsets.items())],
    }


def connections(b) -> dict:
    """This node's client connections: listener, client software (KIP-511), client id,
    principal (the same rows as /connections and ``odradek cluster connections``)."""
    rows = [c.describe() for c in b.connections]
    rows.sort(key=lambda c: (c["listener"], c["peer"] or ""))
    return {"node_id": b.node_id, "connections": rows}


def shown(data: bytes | None) -> str | None:
    """Bytes as text for a page: UTF-8 where it is, else hex; cut at SHOWN_BYTES."""
    if data is None:
        return None
    cut = data[:SHOWN_BYTES]
    try:
        text = cut.decode()
    except UnicodeDecodeError:
        text = "0x" + cut.hex()
    return text + ("…" if len(data) > SHOWN_BYTES else "")


def start_offset(b, topic_name: str, index: int, offset: int | None, timestamp: int | None):
    """Where to start reading: an offset, the first at or after a time, or the last few.
    None: no replica of the partition here."""
    local = _local(b, topic_name, index)
    if local is None:
        return None, None
    log = local.log
    if timestamp is not None:
        found = log.offset_for_timestamp(timestamp)
        start = found[0] if found is not None else log.high_watermark
    elif offset is not None:
        start = offset
    else:
        start = max(log.log_start_offset, log.high_watermark - 10)
    return local, min(max(start, log.log_start_offset), log.high_watermark)


def read_committed(log, offset: int):
    """The committed batches from ``offset`` (on the loop, as a fetch reads: the segment
    list changes only there); None past the log's ends. Release the result."""
    try:
        return log.read(offset, MAX_READ_BYTES, max_offset=log.high_watermark)
    except OffsetOutOfRangeError:
        return None


def decode_records(data: bytes, offset: int, count: int) -> list[dict]:
    """Up to ``count`` records from ``offset`` in ``data`` (CPU work, decompression
    included: call in a thread). Control batches (transaction markers) are skipped:
    they are not the application's records."""
    count = max(1, min(count, MAX_RECORDS))
    records: list[dict] = []
    batches = MemoryRecords(data)
    while len(records) < count and (batch := batches.next_batch()) is not None:
        if getattr(batch, "is_control_batch", False):
            continue
        for r in batch:
            if r.offset < offset:
                continue
            records.append({"offset": r.offset, "timestamp": r.timestamp, "key": shown(r.key),
                            "value": shown(r.value),
                            "headers": {k: shown(v) for k, v in r.headers}})
            if len(records) == count:
                break
    return records


class Local:
    """The views of a node's own state, for its http.listener's console (``app.answer``)."""

    def __init__(self, b):
        self.b = b
        self.label = f"node {b.node_id}"
        self.actions = b.authorizer is not None  # the write forms (console.actions): only then

    async def cluster(self) -> dict:
        return cluster(self.b)

    async def topics(self) -> dict:
        return topics(self.b)

    async def topic(self, name: str) -> dict | None:
        return topic(self.b, name)

    async def groups(self) -> dict:
        return groups(self.b)

    async def group(self, group_id: str) -> dict | None:
        return group(self.b, group_id)

    async def connections(self) -> dict:
        return connections(self.b)

    async def records(self, name: str, partition: int, offset: int | None, timestamp: int | None,
                      count: int) -> dict | None:
        """Up to ``count`` committed records of a partition with a replica here; a note
        naming its leader when there is none here. None: no such topic."""
        b = self.b
        if name not in b.image.topics:
            return None
        local, start = start_offset(b, name, partition, offset, timestamp)
        rows: list[dict] = []
        where = ""
        if local is None:
            p = b.image.topics[name].partitions.get(partition)
            where = ("no such partition" if p is None else
                     f"node {b.node_id} holds no replica of {name}-{partition}: open the console of node "
                     f"{p.leader}, its leader")
        else:
            result = read_committed(local.log, start)
            if result is not None:
                try:
                    data = await asyncio.to_thread(result.read_bytes)
                finally:
                    result.release()
                rows = await asyncio.to_thread(decode_records, data, start, count)
        return {"topic": name, "partition": partition, "start": start, "records": rows, "note": where}

"""Raft messages, entries and snapshots to and from JSON-able dicts.

The core's types are plain frozen dataclasses; the driver sends them as the
bodies of RAFT inter-node requests and stores entries on disk in this form.
Bytes travel as base64.
"""

import base64
import dataclasses

from odradek.replication.raft_messages import (
    AppendRequest,
    AppendResponse,
    EntryKind,
    HardState,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    LogEntry,
    Message,
    ObserverFetch,
    Snapshot,
    TimeoutNow,
    Voter,
    VoteRequest,
    VoteResponse,
)

MESSAGE_TYPES = {cls.__name__: cls for cls in (
    VoteRequest, VoteResponse, AppendRequest, AppendResponse, InstallSnapshotRequest,
    InstallSnapshotResponse, TimeoutNow, ObserverFetch)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def voters_to_list(voters) -> list:
    return [[v.node_id, v.directory_id] for v in voters]


def voters_from_list(items) -> tuple[Voter, ...]:
    return tuple(Voter(node_id, directory_id) for node_id, directory_id in items)


def entry_to_dict(e: LogEntry) -> dict:
    return {"index": e.index, "term": e.term, "kind": e.kind.value, "data": _b64(e.data),
            "voters": voters_to_list(e.voters)}


def entry_from_dict(d: dict) -> LogEntry:
    return LogEntry(d["index"], d["term"], EntryKind(d["kind"]), base64.b64decode(d["data"]),
                    voters_from_list(d["voters"]))


def snapshot_to_dict(s: Snapshot) -> dict:
    return {"last_index": s.last_index, "last_term": s.last_term,
            "voters": voters_to_list(s.voters), "data": _b64(s.data)}


def snapshot_from_dict(d: dict) -> Snapshot:
    return Snapshot(d["last_index"], d["last_term"], voters_from_list(d["voters"]),
                    base64.b64decode(d["data"]))


def hard_state_to_dict(h: HardState) -> dict:
    return dataclasses.asdict(h)


def hard_state_from_dict(d: dict) -> HardState:
    return HardState(**d)


def message_to_dict(m: Message) -> dict:
    out = {"type": type(m).__name__}
    for f in dataclasses.fields(m):
        value = getattr(m, f.name)
        if f.name == "entries":
            value = [entry_to_dict(e) for e in value]
        elif f.name == "snapshot":
            value = snapshot_to_dict(value)
        out[f.name] = value
    return out


def message_from_dict(d: dict) -> Message:
    cls = MESSAGE_TYPES[d["type"]]
    kwargs = {}
    for f in dataclasses.fields(cls):
        value = d[f.name]
        if f.name == "entries":
            value = tuple(entry_from_dict(e) for e in value)
        elif f.name == "snapshot":
            value = snapshot_from_dict(value)
        kwargs[f.name] = value
    return cls(**kwargs)

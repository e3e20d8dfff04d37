"""The ``__consumer_offsets`` topic: which partition holds a group, and its record formats.

A group lives in partition ``abs(java_hash(group_id)) % offsets.topic.num.partitions``,
as in Kafka, so any node computes the same coordinator partition.

Records use Kafka's own formats (the group-coordinator module's OffsetCommitKey,
OffsetCommitValue, GroupMetadataKey and GroupMetadataValue), so Kafka's tools can
read the topic. Every key and value starts with an int16 version; strings are int16
length + UTF-8 (-1: null), bytes are int32 length + data. A null value (tombstone)
deletes the key. We write key v1/v2 and value v3 (the last non-flexible versions)::

    OffsetCommitKey    version=1 int16 | group string | topic string | partition int32
    OffsetCommitValue  version=3 int16 | offset int64 | leader_epoch int32
                       | metadata string | commit_timestamp int64
        (v0, v2: no leader_epoch; v1: no leader_epoch, then expire_timestamp int64 at the end)

    GroupMetadataKey   version=2 int16 | group string
    GroupMetadataValue version=3 int16 | protocol_type string | generation int32
                       | protocol nullable string | leader nullable string
                       | current_state_timestamp int64 (v2+)
                       | members int32 count, each:
                           member_id string | group_instance_id nullable string (v3+)
                           | client_id string | client_host string
                           | rebalance_timeout int32 (v1+) | session_timeout int32
                           | subscription bytes | assignment bytes

Records sit in uncompressed magic-2 batches that the coordinator itself wrote;
:func:`iter_records` walks them (the broker otherwise never looks inside batches).
"""

import struct
from dataclasses import dataclass, field

from odradek.protocol import records as rec

OFFSETS_TOPIC = "__consumer_offsets"
OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


def java_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units, int32 overflow)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    """Kafka's Utils.abs(groupId.hashCode) % partitions (abs(MIN_VALUE) is 0 there)."""
    h = java_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions


@dataclass(slots=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int  # -1: unknown
    metadata: str
    commit_timestamp: int


@dataclass(slots=True)
class MemberRecord:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupRecord:
    protocol_type: str
    generation_id: int
    protocol_name: str | None
    leader_id: str | None
    current_state_timestamp: int
    members: list[MemberRecord] = field(default_factory=list)


# -- encoding -----------------------------------------------------------------------

def _str(s: str | None) -> bytes:
    if s is None:
        return _I16.pack(-1)
    b = s.encode()
    return _I16.pack(len(b)) + b


def _bytes(b: bytes | None) -> bytes:
    if b is None:
        return _I32.pack(-1)
    return _I32.pack(len(b)) + bytes(b)


def offset_key(group_id: str, topic: str, partition: int) -> bytes:
    return (_I16.pack(OFFSET_COMMIT_KEY_VERSION) + _str(group_id) + _str(topic)
            + _I32.pack(partition))


def group_key(group_id: str) -> bytes:
    return _I16.pack(GROUP_METADATA_KEY_VERSION) + _str(group_id)


def offset_value(o: OffsetAndMetadata) -> bytes:
    return (_I16.pack(OFFSET_VALUE_VERSION) + _I64.pack(o.offset) + _I32.pack(o.leader_epoch)
            + _str(o.metadata) + _I64.pack(o.commit_timestamp))


def group_value(g: GroupRecord) -> bytes:
    out = [_I16.pack(GROUP_VALUE_VERSION), _str(g.protocol_type), _I32.pack(g.generation_id),
           _str(g.protocol_name), _str(g.leader_id), _I64.pack(g.current_state_timestamp),
           _I32.pack(len(g.members))]
    for m in g.members:
        out += [_str(m.member_id), _str(m.group_instance_id), _str(m.client_id),
                _str(m.client_host), _I32.pack(m.rebalance_timeout_ms),
                _I32.pack(m.session_timeout_ms), _bytes(m.subscription), _bytes(m.assignment)]
    return b"".join(out)


# -- decoding -------------------------------------------------------------------------

class RecordFormatError(ValueError):
    """A key or value of __consumer_offsets we cannot read."""


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def _take(self, s: struct.Struct) -> int:
        if self.pos + s.size > len(self.buf):
            raise RecordFormatError("record runs past its end")
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def i16(self) -> int:
        return self._take(_I16)

    def i32(self) -> int:
        return self._take(_I32)

    def i64(self) -> int:
        return self._take(_I64)

    def _raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise RecordFormatError("record runs past its end")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def string(self) -> str | None:
        n = self.i16()
        return None if n == -1 else self._raw(n).decode()

    def bytes_(self) -> bytes | None:
        n = self.i32()
        return None if n == -1 else self._raw(n)


# The record types of consumer-protocol groups (see consumer_group_records): with a member
# id in the key, or only the group id.
CONSUMER_GROUP_MEMBER_KEYS = (5, 7, 8)
CONSUMER_GROUP_KEYS = (3, 6)
SHARE_GROUP_MEMBER_KEYS = (10, 13, 14)  # share groups (KIP-932), see consumer_group_records
SHARE_GROUP_KEYS = (11, 12)


def parse_key(key: bytes) -> tuple:
    """('offset', group, topic, partition), ('group', group_id), or
    ('consumer_group' / 'share_group', group_id, record type, member id or None)."""
    r = _Reader(key)
    version = r.i16()
    if version in (0, 1):
        return "offset", r.string(), r.string(), r.i32()
    if version == 2:
        return "group", r.string()
    if version in CONSUMER_GROUP_KEYS:
        return "consumer_group", r.string(), version, None
    if version in CONSUMER_GROUP_MEMBER_KEYS:
        return "consumer_group", r.string(), version, r.string()
    if version in SHARE_GROUP_KEYS:
        return "share_group", r.string(), version, None
    if version in SHARE_GROUP_MEMBER_KEYS:
        return "share_group", r.string(), version, r.string()
    raise RecordFormatError(f"unknown __consumer_offsets key version {version}")


def parse_offset_value(value: bytes) -> OffsetAndMetadata:
    r = _Reader(value)
    version = r.i16()
    if not 0 <= version <= 3:
        raise RecordFormatError(f"unknown OffsetCommitValue version {version}")
    offset = r.i64()
    leader_epoch = r.i32() if version >= 3 else -1
    metadata = r.string() or ""
    commit_timestamp = r.i64()
    return OffsetAndMetadata(offset, leader_epoch, metadata, commit_timestamp)


def parse_group_value(value: bytes) -> GroupRecord:
    r = _Reader(value)
    version = r.i16()
    if not 0 <= version <= 3:
        raise RecordFormatError(f"unknown GroupMetadataValue version {version}")
    g = GroupRecord(protocol_type=r.string() or "", generation_id=r.i32(),
                    protocol_name=r.string(), leader_id=r.string(),
                    current_state_timestamp=r.i64() if version >= 2 else -1)
    for _ in range(r.i32()):
        member_id = r.string()
        instance_id = r.string() if version >= 3 else None
        client_id, client_host = r.string(), r.string()
        rebalance_timeout = r.i32() if version >= 1 else -1
        session_timeout = r.i32()
        if rebalance_timeout < 0:
            rebalance_timeout = session_timeout
        g.members.append(MemberRecord(member_id, instance_id, client_id or "", client_host or "",
                                      rebalance_timeout, session_timeout,
                                      r.bytes_() or b"", r.bytes_() or b""))
    return g


# -- records inside batches -----------------------------------------------------------

def iter_records(buf: bytes):
    """Yield (offset, key, value) for every record of the batches in ``buf``, as the log
    cleaner may have left them (gaps, empty batches). Control batches are skipped."""
    for pos, header in rec.iter_batches(buf, None, produced=False):
        if header.is_control:
            continue
        yield from batch_records(buf, pos, header)


def batch_records(buf: bytes, pos: int, header):
    """(offset, key, value) of each record of the batch at ``pos`` (decompressed if it is)."""
    for record in rec.read_records(buf, pos):
        yield record.offset, record.key, record.value

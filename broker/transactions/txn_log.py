"""The ``__transaction_state`` topic: which partition holds a transactional id, and its records.

A transactional id lives in partition ``Utils.abs(id.hashCode) % transaction.state.log.num.partitions``
(Java's String.hashCode; Integer.MIN_VALUE maps to 0), the same function as groups use
for ``__consumer_offsets`` (``groups.offsets_topic.partition_for``).

Records use Kafka's formats (the transaction-coordinator module's TransactionLogKey v0 and
TransactionLogValue v0, non-flexible), so Kafka's tools can read the topic; strings are
int16 length + UTF-8, arrays int32 count (-1: null)::

    TransactionLogKey    version=0 int16 | transactional_id string
    TransactionLogValue  version=0 int16 | producer_id int64 | producer_epoch int16
                         | transaction_timeout_ms int32 | transaction_status int8
                         | transaction_partitions nullable array of
                             [ topic string | partition_ids array of int32 ]
                         | transaction_last_update_timestamp_ms int64
                         | transaction_start_timestamp_ms int64

TransactionLogValue v1 (KIP-915: flexible) is written once transaction.version is 1 or
more, as Kafka does: the same fields with compact strings and arrays (uvarint length + 1,
0: null), a tagged-field section after each partitions entry and at the end, where
transactions v2 keeps what a new coordinator needs to go on with a transaction (only
fields off their default are written)::

    tag 0 PreviousProducerId int64 (-1) | tag 1 NextProducerId int64 (-1)
    | tag 2 ClientTransactionVersion int16 (0) | tag 3 NextProducerEpoch int16 (-1)

A null value (tombstone) removes the id (an expired transactional id).
"""

from __future__ import annotations

import struct

from odradek.broker.groups.offsets_topic import RecordFormatError, _Reader, _str, partition_for
from odradek.broker.transactions.state import NO_PRODUCER_ID, TxnMetadata, TxnState
from odradek.protocol.body import BodyWriter

TRANSACTION_TOPIC = "__transaction_state"
KEY_VERSION = 0
VALUE_VERSION = 0
FLEXIBLE_VALUE_VERSION = 1
TAG_PREVIOUS_PRODUCER_ID, TAG_NEXT_PRODUCER_ID, TAG_CLIENT_TV, TAG_NEXT_PRODUCER_EPOCH = 0, 1, 2, 3

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

__all__ = ["TRANSACTION_TOPIC", "RecordFormatError", "key", "parse_key", "parse_value", "partition_for",
           "value"]


def key(transactional_id: str) -> bytes:
    return _I16.pack(KEY_VERSION) + _str(transactional_id)


def _value_v1(meta: TxnMetadata, by_topic: dict[str, list[int]]) -> bytes:
    w = BodyWriter(flexible=True)
    w.buf += _I16.pack(FLEXIBLE_VALUE_VERSION) + _I64.pack(meta.producer_id) + _I16.pack(meta.producer_epoch)
    w.buf += _I32.pack(meta.timeout_ms) + _I8.pack(int(meta.state))
    w.array_len(len(by_topic))
    for topic, partitions in by_topic.items():
        w.string(topic)
        w.array_len(len(partitions))
        w.buf += b"".join(_I32.pack(p) for p in partitions)
        w.tags()
    w.buf += _I64.pack(meta.last_update_ms) + _I64.pack(meta.txn_start_ms)
    tagged = []
    if meta.previous_producer_id != NO_PRODUCER_ID:
        tagged.append((TAG_PREVIOUS_PRODUCER_ID, _I64.pack(meta.previous_producer_id)))
    if meta.next_producer_id != NO_PRODUCER_ID:
        tagged.append((TAG_NEXT_PRODUCER_ID, _I64.pack(meta.next_producer_id)))
    if meta.client_tv:
        tagged.append((TAG_CLIENT_TV, _I16.pack(meta.client_tv)))
    w.tags(tagged)
    return bytes(w.buf)


def value(meta: TxnMetadata, flexible: bool = False) -> bytes:
    """The record of ``meta``: v1 when ``flexible`` (transaction.version >= 1), else v0."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(meta.partitions):
        by_topic.setdefault(topic, []).append(partition)
    if flexible:
        return _value_v1(meta, by_topic)
    out = [_I16.pack(VALUE_VERSION), _I64.pack(meta.producer_id), _I16.pack(meta.producer_epoch),
           _I32.pack(meta.timeout_ms), _I8.pack(int(meta.state)), _I32.pack(len(by_topic))]
    for topic, partitions in by_topic.items():
        out += [_str(topic), _I32.pack(len(partitions)), *(_I32.pack(p) for p in partitions)]
    out += [_I64.pack(meta.last_update_ms), _I64.pack(meta.txn_start_ms)]
    return b"".join(out)


def parse_key(data: bytes) -> str:
    r = _Reader(data)
    version = r.i16()
    if version != KEY_VERSION:
        raise RecordFormatError(f"unknown TransactionLogKey version {version}")
    transactional_id = r.string()
    if transactional_id is None:
        raise RecordFormatError("TransactionLogKey without a transactional id")
    return transactional_id


def _uvarint(r: _Reader) -> int:
    result = shift = 0
    while True:
        b = r._raw(1)[0]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result
        shift += 7


def parse_value(transactional_id: str, data: bytes) -> TxnMetadata:
    r = _Reader(data)
    version = r.i16()
    if version not in (0, 1):
        raise RecordFormatError(f"unknown TransactionLogValue version {version}")
    flexible = version >= 1

    def string() -> str:
        if not flexible:
            return r.string() or ""
        n = _uvarint(r) - 1
        return r._raw(n).decode() if n > 0 else ""

    def count() -> int:
        return _uvarint(r) - 1 if flexible else r.i32()

    producer_id, epoch, timeout = r.i64(), r.i16(), r.i32()
    status = r._raw(1)[0]
    try:
        state = TxnState(status)
    except ValueError:
        raise RecordFormatError(f"unknown transaction status {status}") from None
    partitions = set()
    for _ in range(max(count(), 0)):
        topic = string()
        for _ in range(max(count(), 0)):
            partitions.add((topic, r.i32()))
        if flexible:
            for _ in range(_uvarint(r)):  # tagged fields of the partitions entry
                _uvarint(r)
                r._raw(_uvarint(r))
    last_update, start = r.i64(), r.i64()
    tags: dict[int, bytes] = {}
    if flexible:
        for _ in range(_uvarint(r)):
            tag = _uvarint(r)
            tags[tag] = r._raw(_uvarint(r))

    def tagged(tag: int, s: struct.Struct, default: int) -> int:
        data = tags.get(tag)
        if data is None:
            return default
        if len(data) != s.size:
            raise RecordFormatError(f"TransactionLogValue tag {tag} has {len(data)} bytes")
        return s.unpack(data)[0]
    return TxnMetadata(transactional_id, producer_id, epoch, timeout, state, frozenset(partitions),
                       start, last_update,
                       previous_producer_id=tagged(TAG_PREVIOUS_PRODUCER_ID, _I64, NO_PRODUCER_ID),
                       next_producer_id=tagged(TAG_NEXT_PRODUCER_ID, _I64, NO_PRODUCER_ID),
                       client_tv=tagged(TAG_CLIENT_TV, _I16, 0))

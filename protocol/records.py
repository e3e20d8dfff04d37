"""Kafka record batch v2 (magic 2): header codec, batch-level validation, stamping.

The broker stores batches exactly as producers sent them and serves them
unchanged, so it only ever needs the 61-byte batch header: it never walks the
records inside (which may be compressed).  This module is sans-IO and imports
nothing of ours, so storage, broker and tests share one codec.

Record batch layout (all integers big-endian)::

    offset  size  field
    ------  ----  -----------------------------------------------------------
         0     8  base_offset              int64  stamped by the leader   -+ not
         8     4  batch_length             int32  bytes after this field  | covered
        12     4  partition_leader_epoch   int32  stamped by the leader   | by the
        16     1  magic                    int8   must be 2               | CRC
        17     4  crc                      uint32 CRC32C of bytes 21..end -+
        21     2  attributes               int16  bits 0-2 codec (0 none, 1 gzip,
                                                  2 snappy, 3 lz4, 4 zstd),
                                                  bit 3 timestamp type (1 =
                                                  LogAppendTime), bit 4
                                                  transactional, bit 5 control,
                                                  bit 6 delete horizon
        23     4  last_offset_delta        int32
        27     8  base_timestamp           int64
        35     8  max_timestamp            int64
        43     8  producer_id              int64
        51     2  producer_epoch           int16
        53     4  base_sequence            int32
        57     4  records_count            int32
        61     -  records (possibly compressed)

    size_in_bytes = 12 + batch_length    (12 = base_offset + batch_length)

The records (bytes 61.., decompressed first when the codec bits say so) are
records back to back; :func:`record_timestamps` reads only their first four
fields and :func:`build_batch` (a test helper) writes them whole::

    length varint | attributes int8 | timestamp_delta varlong | offset_delta varint
    | key_length varint | key | value_length varint | value
    | headers_count varint | [key_length varint | key | value_length varint | value]

    length counts the bytes after itself; a record's offset is base_offset +
    offset_delta, its timestamp base_timestamp + timestamp_delta (CreateTime) or
    the batch's max_timestamp (LogAppendTime).

Varints are protobuf zig-zag varints.  A length of -1 means null.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import crc32c as _crc32c

from odradek.protocol.errors import ErrorCode

MAGIC = 2
HEADER_SIZE = 61
LOG_OVERHEAD = 12  # base_offset + batch_length: the bytes batch_length does not count
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD  # a batch with zero records' bytes
CRC_START = 21  # the CRC covers attributes .. end
# Kafka's max.message.bytes default; a caller without a topic config uses it.
DEFAULT_MAX_MESSAGE_BYTES = 1048588

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
DELETE_HORIZON_BIT = 0x40  # KIP-534: base_timestamp holds the log cleaner's delete horizon

CREATE_TIME = 0
LOG_APPEND_TIME = 1
NO_TIMESTAMP = -1

CODEC_NAMES = ("none", "gzip", "snappy", "lz4", "zstd")

_HEADER = struct.Struct(">qiibIhiqqqhii")
_PREFIX = struct.Struct(">qi")  # base_offset, batch_length
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT16 = struct.Struct(">h")
_OFF_BASE_OFFSET = 0
_OFF_LEADER_EPOCH = 12
_OFF_MAGIC = 16
_OFF_CRC = 17
_OFF_ATTRIBUTES = 21
_OFF_MAX_TIMESTAMP = 35
assert _HEADER.size == HEADER_SIZE
# bytes 0-15 as the leader stamps them: base_offset, batch_length, partition_leader_epoch
STAMPED_PREFIX = struct.Struct(">qii")
STAMPED_PREFIX_SIZE = STAMPED_PREFIX.size
_HEADER_UNPACK_FROM = _HEADER.unpack_from
_INT32_UNPACK_FROM = _INT32.unpack_from
_crc = _crc32c.crc32c
_tuple_new = tuple.__new__


class RecordError(Exception):
    """Base of the typed record errors; ``error_code`` is the Kafka error code."""

    error_code = ErrorCode.UNKNOWN_SERVER_ERROR  # subclasses override


class CorruptRecordError(RecordError):
    """Bytes that are not a well-formed batch: bad length, torn, CRC mismatch."""

    error_code = ErrorCode.CORRUPT_MESSAGE


class InvalidRecordError(RecordError):
    """A well-formed batch the broker refuses (inconsistent count, wrong offsets)."""

    error_code = ErrorCode.INVALID_RECORD


class UnsupportedMagicError(InvalidRecordError):
    """Magic 0/1 (or unknown): produce v3+ only carries magic 2 batches."""


class RecordTooLargeError(RecordError):
    """A batch larger than max.message.bytes."""

    error_code = ErrorCode.MESSAGE_TOO_LARGE


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return LOG_OVERHEAD + self.batch_length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        return LOG_APPEND_TIME if self.attributes & TIMESTAMP_TYPE_BIT else CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def delete_horizon_ms(self) -> int | None:
        """KIP-534: when the log cleaner may drop this batch's tombstones (its base
        timestamp, when attribute bit 6 says so), else None."""
        return self.base_timestamp if self.attributes & DELETE_HORIZON_BIT else None


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Decode the 61-byte header at ``pos``; checks only that 61 bytes exist."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptRecordError(
            f"record batch header needs {HEADER_SIZE} bytes, {len(buf) - pos} left"
        )
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


def peek_batch_size(buf: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """Size of the batch starting at ``pos`` from its first 12 bytes (not validated)."""
    if len(buf) - pos < LOG_OVERHEAD:
        raise CorruptRecordError("record batch shorter than its 12-byte log overhead")
    return LOG_OVERHEAD + _PREFIX.unpack_from(buf, pos)[1]


def compute_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    with memoryview(buf) as view:
        return _crc32c.crc32c(view[pos + CRC_START : pos + size])


def validate_batch(
    buf: bytes | bytearray | memoryview,
    pos: int = 0,
    max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    produced: bool = True,
) -> BatchHeader:
    """Check the batch at ``pos`` at batch level and return its header.

    Checks, in this order: the header and the whole batch are present and the
    length is sane, the size is within ``max_message_bytes`` (None: no limit,
    used by recovery, where the topic config may have shrunk since the write),
    magic is 2, the CRC32C matches, and records_count == last_offset_delta + 1 > 0.
    Records are not walked.  ``produced=False`` is for batches already in a log (recovery,
    a follower, a coordinator loading its partition): the log cleaner leaves gaps inside
    a batch and keeps an idempotent producer's last batch even with no record left, so
    there 0 <= records_count <= last_offset_delta + 1 (Kafka checks the exact count only
    on what clients produce).
    """
    with memoryview(buf) as view:
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        return _validate(view, pos, len(view), max_message_bytes, produced)


def _validate(
    view: memoryview, pos: int, end: int, max_message_bytes: int | None, produced: bool = True
) -> BatchHeader:
    """validate_batch on a byte memoryview (the hot path of every append: one CRC pass)."""
    available = end - pos
    if available >= HEADER_SIZE:
        fields = _HEADER_UNPACK_FROM(view, pos)  # the checks below keep validate_batch's order
        batch_length = fields[1]
    elif available >= LOG_OVERHEAD:
        fields, batch_length = None, _INT32_UNPACK_FROM(view, pos + 8)[0]
    else:
        raise CorruptRecordError(f"record batch truncated: {available} bytes")
    if batch_length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(f"record batch length {batch_length} < {MIN_BATCH_LENGTH}")
    size = LOG_OVERHEAD + batch_length
    if max_message_bytes is not None and size > max_message_bytes:
        raise RecordTooLargeError(
            f"record batch of {size} bytes exceeds max.message.bytes {max_message_bytes}"
        )
    if size > available or fields is None:  # size >= HEADER_SIZE, so fields is set if it fits
        raise CorruptRecordError(f"record batch truncated: {available} of {size} bytes")
    if fields[3] != MAGIC:
        raise UnsupportedMagicError(f"record batch magic {fields[3]}, only 2 is supported")
    crc = _crc(view[pos + CRC_START : pos + size])
    if crc != fields[4]:
        raise CorruptRecordError(f"record batch CRC {crc:#010x} != stored {fields[4]:#010x}")
    count = fields[12]
    if (count <= 0 or count != fields[6] + 1) and (produced or not 0 <= count <= fields[6] + 1):
        raise InvalidRecordError(
            f"record batch count {count} inconsistent with last_offset_delta {fields[6]}"
        )
    return _tuple_new(BatchHeader, fields)


def validate_batches(
    buf: bytes | bytearray | memoryview,
    max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    produced: bool = True,
) -> list[tuple[int, BatchHeader]]:
    """``list(iter_batches(buf, max_message_bytes))``, faster: the append hot path.

    A one-dimensional byte memoryview is used as is (no wrapping view).
    """
    if type(buf) is memoryview and buf.itemsize == 1 and buf.ndim == 1:
        return _validate_all(buf, max_message_bytes, produced)  # the Log's own view
    with memoryview(buf) as view:
        return _validate_all(
            view if view.itemsize == 1 and view.ndim == 1 else view.cast("B"), max_message_bytes,
            produced,
        )  # fmt: skip


def _validate_all(
    view: memoryview, max_message_bytes: int | None, produced: bool = True
) -> list[tuple[int, BatchHeader]]:
    end = len(view)
    if not end:
        return []
    header = _validate(view, 0, end, max_message_bytes, produced)
    out = [(0, header)]
    pos = LOG_OVERHEAD + header[1]
    while pos < end:  # a Produce partition usually holds one batch: never entered
        header = _validate(view, pos, end, max_message_bytes, produced)
        out.append((pos, header))
        pos += LOG_OVERHEAD + header[1]
    return out


def iter_batches(
    buf: bytes | bytearray | memoryview,
    max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    produced: bool = True,
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each validated batch in ``buf``.

    A Produce partition's ``records`` may hold several batches back to back.
    Trailing bytes that do not form a whole batch raise CorruptRecordError
    (Kafka's producer never sends partial batches; a fetch response may, but
    that is the consumer's concern, not ours).
    """
    pos, end = 0, len(buf)
    while pos < end:
        header = validate_batch(buf, pos, max_message_bytes, produced=produced)
        yield pos, header
        pos += header.size


# Ours: how far one batch may inflate when its records are read (ListOffsets, a batch
# whose header lacks its max timestamp); past it the batch is read at batch level.
MAX_DECOMPRESSED_BYTES = 64 * 2**20


def _decompress(codec: int, data: memoryview) -> bytes | None:
    """The records of a compressed batch, or None: codec not installed, or larger than
    MAX_DECOMPRESSED_BYTES (bounded while inflating where the codec allows it)."""
    limit = MAX_DECOMPRESSED_BYTES
    try:
        if codec == 1:  # gzip
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(data, limit)
            return None if d.unconsumed_tail else out
        import kafka.codec as codecs  # kafka-python's codecs, with their optional libraries

        if codec == 2 and codecs.has_snappy():
            out = codecs.snappy_decode(bytes(data))  # xerial framing, as Java writes it
        elif codec == 3 and codecs.has_lz4():
            d = codecs.lz4.LZ4FrameDecompressor()
            out = d.decompress(bytes(data), limit)
            return out if d.eof else None
        elif codec == 4 and codecs.has_zstd():
            reader = codecs.zstd.ZstdDecompressor().stream_reader(bytes(data), read_across_frames=True)
            out = reader.read(limit + 1)
        else:
            return None
    except Exception:  # noqa: BLE001 - a codec's own error: the batch cannot be read here
        return None
    return out if len(out) <= limit else None


def _read_varint(buf, pos: int) -> tuple[int, int]:
    """(value, next position) of the zig-zag varint at ``pos``."""
    shift = raw = 0
    while True:
        byte = buf[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")


def record_timestamps(
    buf: bytes | bytearray | memoryview, pos: int = 0
) -> Iterator[tuple[int, int]] | None:
    """``(offset, timestamp)`` of each record of the validated batch at ``pos``, lazily, so
    that a search stops at the record it wants.

    Reads each record's first four fields and skips the rest by its length.  None
    when the records cannot be read here (a codec that is not installed, or more
    than MAX_DECOMPRESSED_BYTES); the iterator raises CorruptRecordError when they do
    not parse.
    """
    header = parse_header(buf, pos)
    if header.timestamp_type == LOG_APPEND_TIME:
        return ((header.base_offset + i, header.max_timestamp) for i in range(header.records_count))
    with memoryview(buf) as view:
        records = view.cast("B")[pos + HEADER_SIZE : pos + header.size]
        # bytes index faster than a memoryview, and outlive it; 1 MiB copies in ~0.1 ms
        data = _decompress(header.compression, records) if header.compression else bytes(records)
        records.release()
    if data is None:
        return None
    return _walk_records(data, header.records_count, header.base_offset, header.base_timestamp)


def _walk_records(
    data: bytes, count: int, base_offset: int, base_timestamp: int
) -> Iterator[tuple[int, int]]:
    """The records' (offset, timestamp); one-byte varints (most lengths and offset deltas)
    are decoded inline, the rest by _read_varint."""
    at, size = 0, len(data)
    try:
        for _ in range(count):
            b = data[at]
            if b < 0x80:
                length, body = (b >> 1) ^ -(b & 1), at + 1
            else:
                length, body = _read_varint(data, at)
            at = body + length
            if length <= 0 or at > size:
                raise CorruptRecordError(f"record of {length} bytes overruns its batch")
            b = data[body + 1]  # after the attributes byte
            if b < 0x80:
                timestamp_delta, after = (b >> 1) ^ -(b & 1), body + 2
            else:
                timestamp_delta, after = _read_varint(data, body + 1)
            b = data[after]
            offset_delta = (b >> 1) ^ -(b & 1) if b < 0x80 else _read_varint(data, after)[0]
            yield base_offset + offset_delta, base_timestamp + timestamp_delta
    except IndexError:
        raise CorruptRecordError("record batch ends inside a record") from None


def batch_max_timestamp(buf: bytes | bytearray | memoryview, pos: int = 0) -> int | None:
    """The largest record timestamp of the validated batch at ``pos`` (what its header's
    max_timestamp should say), or None when its records cannot be read here."""
    records = record_timestamps(buf, pos)
    if records is None:
        return None
    return max(timestamp for _, timestamp in records)


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Stamp bytes 0-7; outside the CRC, so the CRC stays valid."""
    _INT64.pack_into(buf, pos + _OFF_BASE_OFFSET, base_offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Stamp bytes 12-15; outside the CRC, so the CRC stays valid."""
    _INT32.pack_into(buf, pos + _OFF_LEADER_EPOCH, epoch)


def set_log_append_time(buf: bytearray | memoryview, pos: int, timestamp_ms: int) -> None:
    """Mark the batch LogAppendTime with ``timestamp_ms`` as max timestamp.

    Kafka leaves base_timestamp and the record deltas alone: a consumer reads
    every record's timestamp as the batch max timestamp when the type bit is
    set.  Attributes and max_timestamp are CRC-covered, so the CRC is redone.
    """
    attributes = _INT16.unpack_from(buf, pos + _OFF_ATTRIBUTES)[0]
    _INT16.pack_into(buf, pos + _OFF_ATTRIBUTES, attributes | TIMESTAMP_TYPE_BIT)
    _INT64.pack_into(buf, pos + _OFF_MAX_TIMESTAMP, timestamp_ms)
    size = peek_batch_size(buf, pos)
    _UINT32.pack_into(buf, pos + _OFF_CRC, compute_crc(buf, pos, size))


def stamped_prefix(base_offset: int, batch_length: int, partition_leader_epoch: int) -> bytes:
    """Bytes 0-15 of a batch as the leader writes them (outside the CRC).

    The log writes this in front of the batch's bytes 16.. (unchanged, so the
    CRC stays valid) instead of copying the batch to stamp it in place.
    """
    return STAMPED_PREFIX.pack(base_offset, batch_length, partition_leader_epoch)


def log_append_time_header(
    buf: bytes | bytearray | memoryview,
    pos: int,
    base_offset: int,
    partition_leader_epoch: int,
    timestamp_ms: int,
) -> bytearray:
    """The 61-byte header of the batch at ``pos``, stamped and set to LogAppendTime.

    The same bytes as set_base_offset + set_partition_leader_epoch +
    set_log_append_time on a copy of the whole batch, but only the header is
    copied: the new CRC continues over the batch's unchanged records in place.
    The batch must have been validated (its length is trusted).
    """
    return restamped_header(buf, pos, base_offset, partition_leader_epoch, timestamp_ms,
                            log_append_time=True)


def restamped_header(
    buf: bytes | bytearray | memoryview,
    pos: int,
    base_offset: int,
    partition_leader_epoch: int,
    max_timestamp: int,
    *,
    log_append_time: bool = False,
) -> bytearray:
    """The 61-byte header of the batch at ``pos``, stamped, with ``max_timestamp`` as its
    max timestamp (and LogAppendTime if asked), the CRC redone over the unchanged records
    in place.  Kafka's LogValidator rewrites a CreateTime batch's max timestamp this way
    when its header disagrees with its records.  The batch must have been validated."""
    header = bytearray(buf[pos : pos + HEADER_SIZE])
    _INT64.pack_into(header, _OFF_BASE_OFFSET, base_offset)
    _INT32.pack_into(header, _OFF_LEADER_EPOCH, partition_leader_epoch)
    if log_append_time:
        attributes = _INT16.unpack_from(header, _OFF_ATTRIBUTES)[0]
        _INT16.pack_into(header, _OFF_ATTRIBUTES, attributes | TIMESTAMP_TYPE_BIT)
    _INT64.pack_into(header, _OFF_MAX_TIMESTAMP, max_timestamp)
    size = peek_batch_size(header)
    with memoryview(buf) as view:
        crc = _crc(view[pos + HEADER_SIZE : pos + size], _crc(header[CRC_START:]))
    _UINT32.pack_into(header, _OFF_CRC, crc)
    return header


# --- building batches (tests and tools; uncompressed only) -------------------


def _varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varbytes(data: bytes | None) -> bytes:
    return _varint(-1) if data is None else _varint(len(data)) + data


class Record(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int = 0


def build_batch(
    records: Iterable[Record | tuple],
    *,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
    timestamp_type: int = CREATE_TIME,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    control: bool = False,
    compression: int = 0,
) -> bytes:
    """Encode a magic-2 batch from (key, value, headers, timestamp) records (tests, tools)."""
    recs = [Record(*r) for r in records]
    if not recs:
        raise ValueError("a record batch needs at least one record")
    base_timestamp = recs[0].timestamp
    raw = [
        RawRecord(base_offset + delta, rec.timestamp, rec.key, rec.value, _encode_headers(rec.headers))
        for delta, rec in enumerate(recs)
    ]
    attributes = (TIMESTAMP_TYPE_BIT if timestamp_type == LOG_APPEND_TIME else 0) | (
        TRANSACTIONAL_BIT if transactional else 0
    ) | (CONTROL_BIT if control else 0) | compression
    return encode_batch(
        raw, base_offset=base_offset, last_offset_delta=len(recs) - 1,
        partition_leader_epoch=partition_leader_epoch, attributes=attributes,
        base_timestamp=base_timestamp, max_timestamp=max(r.timestamp for r in recs),
        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
    )  # fmt: skip


# -- control batches (transaction markers) ---------------------------------------------
#
# A transaction marker is a control batch (attributes: transactional and control bits,
# base_sequence -1) of one record, written by the partition leader, never by a client:
#
#     key   = version int16 (0) | type int16 (0 ABORT, 1 COMMIT)
#     value = version int16 (0) | coordinator_epoch int32      (Kafka's EndTransactionMarker)

CONTROL_ABORT = 0
CONTROL_COMMIT = 1
_CONTROL_KEY = struct.Struct(">hh")
_MARKER_VALUE = struct.Struct(">hi")


def build_marker_batch(producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                       timestamp: int) -> bytes:
    """A COMMIT or ABORT marker batch for one producer (base offset stamped on append)."""
    key = _CONTROL_KEY.pack(0, CONTROL_COMMIT if commit else CONTROL_ABORT)
    value = _MARKER_VALUE.pack(0, coordinator_epoch)
    return build_batch([Record(key, value, (), timestamp)], producer_id=producer_id,
                       producer_epoch=producer_epoch, transactional=True, control=True)


def control_type(batch: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """The control record type (CONTROL_ABORT, CONTROL_COMMIT, ...) of the control batch at
    ``pos``: its first record's key. -1 when it cannot be read."""
    try:
        p = pos + HEADER_SIZE
        _, p = _read_varint(batch, p)  # record length
        p += 1  # attributes
        _, p = _read_varint(batch, p)  # timestamp delta
        _, p = _read_varint(batch, p)  # offset delta
        key_len, p = _read_varint(batch, p)
        if key_len < _CONTROL_KEY.size or p + key_len > len(batch):
            return -1
        return _CONTROL_KEY.unpack_from(batch, p)[1]
    except (IndexError, struct.error, CorruptRecordError):
        return -1


def _encode_headers(headers: Iterable[tuple[str, bytes | None]]) -> bytes:
    items = list(headers)
    out = bytearray(_varint(len(items)))
    for hkey, hvalue in items:
        out += _varbytes(hkey.encode())
        out += _varbytes(hvalue)
    return bytes(out)


class RawRecord(NamedTuple):
    """One record as stored, for the log cleaner: what it decides on, and what it needs to
    write the record again (its headers stay encoded, its attributes byte as read)."""

    offset: int
    timestamp: int  # base_timestamp + timestamp_delta, whatever the timestamp type
    key: bytes | None
    value: bytes | None
    headers: bytes = b"\x00"  # headers_count varint + the headers
    attributes: int = 0


class UnsupportedCodecError(RecordError):
    """A compressed batch whose codec library is not installed here."""


def read_records(buf: bytes | bytearray | memoryview, pos: int = 0) -> list[RawRecord]:
    """Every record of the validated batch at ``pos`` (decompressed first), in full.

    Raises UnsupportedCodecError when the codec is not installed here (or the records
    inflate past MAX_DECOMPRESSED_BYTES) and CorruptRecordError when they do not parse.
    """
    header = parse_header(buf, pos)
    with memoryview(buf) as view:
        body = view.cast("B")[pos + HEADER_SIZE : pos + header.size]
        data = _decompress(header.compression, body) if header.compression else bytes(body)
        body.release()
    if data is None:
        raise UnsupportedCodecError(
            f"batch at offset {header.base_offset}: codec {CODEC_NAMES[header.compression % 5]} "
            "is not readable here"
        )
    out, at, size = [], 0, len(data)
    base_offset, base_timestamp = header.base_offset, header.base_timestamp
    try:
        for _ in range(header.records_count):
            length, body_at = _read_varint(data, at)
            end = body_at + length
            if length <= 0 or end > size:
                raise CorruptRecordError(f"record of {length} bytes overruns its batch")
            attributes = data[body_at]
            timestamp_delta, at = _read_varint(data, body_at + 1)
            offset_delta, at = _read_varint(data, at)
            key, at = _read_varbytes(data, at)
            value, at = _read_varbytes(data, at)
            if at > end:
                raise CorruptRecordError("record fields overrun the record")
            out.append(RawRecord(base_offset + offset_delta, base_timestamp + timestamp_delta,
                                 key, value, data[at:end], attributes))  # fmt: skip
            at = end
    except IndexError:
        raise CorruptRecordError("record batch ends inside a record") from None
    return out


def _read_varbytes(data: bytes, at: int) -> tuple[bytes | None, int]:
    length, at = _read_varint(data, at)
    if length < 0:
        return None, at
    if at + length > len(data):
        raise CorruptRecordError("record field overruns its batch")
    return data[at : at + length], at + length


def compress(codec: int, data: bytes) -> bytes:
    """``data`` compressed with batch codec ``codec`` (1 gzip, 2 snappy, 3 lz4, 4 zstd),
    framed as Kafka's Java producer frames it; UnsupportedCodecError if not installed."""
    import kafka.codec as codecs  # kafka-python's codecs, with their optional libraries

    if codec == 1:
        return codecs.gzip_encode(data)
    if codec == 2 and codecs.has_snappy():
        return codecs.snappy_encode(data)  # xerial framing, as Java writes it
    if codec == 3 and codecs.has_lz4():
        return codecs.lz4_encode(data)
    if codec == 4 and codecs.has_zstd():
        return codecs.zstd_encode(data)
    raise UnsupportedCodecError(f"codec {codec} cannot be written here")


def encode_batch(
    records: Iterable[RawRecord],
    *,
    base_offset: int,
    last_offset_delta: int,
    partition_leader_epoch: int,
    attributes: int,
    base_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
) -> bytes:
    """A magic-2 batch of ``records`` (offset deltas from ``base_offset``, timestamp deltas
    from ``base_timestamp``), compressed with the codec in ``attributes``; the record count
    may be below ``last_offset_delta + 1`` (the log cleaner's batches, Kafka's too)."""
    body = bytearray()
    count = 0
    for rec in records:
        inner = bytearray((rec.attributes,))
        inner += _varint(rec.timestamp - base_timestamp)
        inner += _varint(rec.offset - base_offset)
        inner += _varbytes(rec.key)
        inner += _varbytes(rec.value)
        inner += rec.headers
        body += _varint(len(inner)) + inner
        count += 1
    codec = attributes & COMPRESSION_MASK
    payload = compress(codec, bytes(body)) if codec and count else body
    if not count:
        attributes &= ~COMPRESSION_MASK  # Kafka writes an empty batch uncompressed
    buf = bytearray(HEADER_SIZE) + payload
    _HEADER.pack_into(
        buf, 0, base_offset, len(buf) - LOG_OVERHEAD, partition_leader_epoch, MAGIC, 0,
        attributes, last_offset_delta, base_timestamp, max_timestamp,
        producer_id, producer_epoch, base_sequence, count,
    )  # fmt: skip
    _UINT32.pack_into(buf, _OFF_CRC, compute_crc(buf, 0, len(buf)))
    return bytes(buf)


def recompress_batches(buf: bytes | bytearray | memoryview, codec: int,
                       max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES) -> bytes | None:
    """Produced batches rewritten in ``codec`` (0: uncompressed), as Kafka's broker does for
    a topic whose compression.type names a codec: each batch not already in it gets its
    records re-encoded (offset deltas 0..n-1, producer id, epoch and sequence kept); the
    log stamps offsets as for any batch.  None when nothing needs rewriting, or when the
    batches do not validate (the append then refuses them as sent)."""
    try:
        batches = validate_batches(buf, max_message_bytes)
    except RecordError:
        return None
    if all(header.compression == codec for _, header in batches):
        return None
    out = []
    for pos, header in batches:
        data = bytes(buf[pos : pos + header.size])
        if header.compression == codec:
            out.append(data)
            continue
        try:
            records = read_records(data)
        except RecordError:
            return None
        out.append(encode_batch(
            records, base_offset=header.base_offset, last_offset_delta=header.last_offset_delta,
            partition_leader_epoch=header.partition_leader_epoch,
            attributes=(header.attributes & ~COMPRESSION_MASK) | codec,
            base_timestamp=header.base_timestamp, max_timestamp=header.max_timestamp,
            producer_id=header.producer_id, producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
        ))  # fmt: skip
    return b"".join(out)

"""protocol.records: header parsing, batch validation and stamping, cross-checked
against kafka-python's record batch builder and reader for every codec."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecordsBuilder

from odradek.protocol.records import (
    HEADER_SIZE,
    LOG_APPEND_TIME,
    STAMPED_PREFIX_SIZE,
    CorruptRecordError,
    InvalidRecordError,
    RecordError,
    RecordTooLargeError,
    UnsupportedMagicError,
    batch_max_timestamp,
    build_batch,
    iter_batches,
    log_append_time_header,
    parse_header,
    record_timestamps,
    restamped_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    stamped_prefix,
    validate_batch,
    validate_batches,
)

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def kafka_batch(codec: int = 0, count: int = 5, *, base_timestamp: int = 1_700_000_000_000,
                producer: tuple[int, int, int] = (-1, -1, -1)) -> bytes:
    builder = MemoryRecordsBuilder(
        magic=2, compression_type=codec, batch_size=1 << 20, producer_id=producer[0],
        producer_epoch=producer[1], base_sequence=producer[2],
    )
    for i in range(count):
        builder.append(
            timestamp=base_timestamp + i * 7, key=b"key-%d" % i, value=b"value-%d" % i * 20,
            headers=[("h", b"%d" % i)],
        )
    builder.close()
    return bytes(builder.buffer())


def kafka_reader(buf: bytes) -> DefaultRecordBatch:
    return DefaultRecordBatch(bytearray(buf))


@pytest.mark.parametrize("codec", CODECS.values(), ids=CODECS.keys())
def test_parse_kafka_python_batches_every_codec(codec: int) -> None:
    buf = kafka_batch(codec, count=5, producer=(42, 3, 17))
    (pos, header), = iter_batches(buf)
    assert pos == 0
    assert header.size == len(buf)
    assert header.magic == 2
    assert header.compression == codec
    assert header.records_count == 5 and header.last_offset_delta == 4
    assert header.base_timestamp == 1_700_000_000_000
    assert header.max_timestamp == 1_700_000_000_000 + 28
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 17)
    assert header.timestamp_type == 0
    reader = kafka_reader(buf)
    assert header.crc == reader.crc
    assert reader.validate_crc()


def test_several_batches_in_one_buffer() -> None:
    buf = kafka_batch(0, 3) + kafka_batch(1, 2) + kafka_batch(4, 1)
    headers = [h for _, h in iter_batches(buf)]
    assert [h.records_count for h in headers] == [3, 2, 1]
    assert [h.compression for h in headers] == [0, 1, 4]


def test_build_batch_is_readable_by_kafka_python() -> None:
    buf = build_batch(
        [(b"k1", b"v1", (("a", b"1"),), 1000), (None, b"v2", (), 1005), (b"k3", None, (), 999)],
        base_offset=10,
    )
    header = validate_batch(buf)
    assert header.max_timestamp == 1005 and header.records_count == 3
    records = list(kafka_reader(buf))
    assert [(r.offset, r.key, r.value, r.timestamp) for r in records] == [
        (10, b"k1", b"v1", 1000), (11, None, b"v2", 1005), (12, b"k3", None, 999),
    ]
    assert records[0].headers == [("a", b"1")]


@pytest.mark.parametrize("position", [21, 22, 30, 60, 61, 100, -1])
def test_crc_catches_flipped_byte(position: int) -> None:
    buf = bytearray(kafka_batch(0))
    buf[position] ^= 0x40
    with pytest.raises(CorruptRecordError):
        validate_batch(buf)


def test_stamping_keeps_crc_valid() -> None:
    buf = bytearray(kafka_batch(1))
    crc_before = parse_header(buf).crc
    set_base_offset(buf, 0, 123456789)
    set_partition_leader_epoch(buf, 0, 7)
    header = validate_batch(buf)
    assert (header.base_offset, header.partition_leader_epoch, header.crc) == (123456789, 7, crc_before)
    reader = kafka_reader(bytes(buf))
    assert reader.base_offset == 123456789 and reader.leader_epoch == 7 and reader.validate_crc()
    assert [r.offset for r in reader] == [123456789 + i for i in range(5)]


@pytest.mark.parametrize("codec", [0, 3])
def test_log_append_time_recomputes_crc(codec: int) -> None:
    buf = bytearray(kafka_batch(codec))
    old_crc = parse_header(buf).crc
    set_log_append_time(buf, 0, 1_800_000_000_000)
    header = validate_batch(buf)
    assert header.crc != old_crc
    assert header.timestamp_type == LOG_APPEND_TIME
    assert header.max_timestamp == 1_800_000_000_000
    reader = kafka_reader(bytes(buf))
    assert reader.validate_crc() and reader.timestamp_type == 1
    assert {r.timestamp for r in reader} == {1_800_000_000_000}


def test_stamping_second_batch_in_buffer() -> None:
    first, second = kafka_batch(0, 2), kafka_batch(2, 3)
    buf = bytearray(first + second)
    set_base_offset(buf, len(first), 2)
    set_log_append_time(buf, len(first), 5)
    assert [h.base_offset for _, h in iter_batches(buf)] == [0, 2]
    assert validate_batch(buf, 0).timestamp_type == 0


def test_old_magic_is_typed() -> None:
    buf = bytearray(kafka_batch(0))
    buf[16] = 1
    with pytest.raises(UnsupportedMagicError) as info:
        validate_batch(buf)
    assert info.value.error_code == 87


def test_error_codes_on_classes() -> None:
    assert CorruptRecordError.error_code == 2
    assert InvalidRecordError.error_code == 87
    assert RecordTooLargeError.error_code == 10


def test_too_large() -> None:
    buf = kafka_batch(0, 50)
    validate_batch(buf, 0, len(buf))
    with pytest.raises(RecordTooLargeError):
        validate_batch(buf, 0, len(buf) - 1)


def test_count_must_match_last_offset_delta() -> None:
    buf = bytearray(build_batch([(b"k", b"v", (), 0)] * 3))
    struct.pack_into(">i", buf, 57, 4)  # records_count, CRC-covered: fix the CRC too
    set_log_append_time(buf, 0, 0)  # recomputes the CRC over the bad count
    with pytest.raises(InvalidRecordError):
        validate_batch(buf)


@pytest.mark.parametrize("cut", [5, 11, 12, 40, 60, 61, -1])
def test_truncated_batch_is_corrupt(cut: int) -> None:
    buf = kafka_batch(0)
    with pytest.raises(CorruptRecordError):
        list(iter_batches(buf + buf[:cut] if cut >= 0 else buf[:cut]))


def test_insane_length_does_not_allocate() -> None:
    buf = bytearray(kafka_batch(0))
    struct.pack_into(">i", buf, 8, 2**31 - 1)
    with pytest.raises(RecordTooLargeError):
        validate_batch(buf)
    with pytest.raises(CorruptRecordError):
        validate_batch(buf, 0, None)
    struct.pack_into(">i", buf, 8, -5)
    with pytest.raises(CorruptRecordError):
        validate_batch(buf)


def test_header_size() -> None:
    assert HEADER_SIZE == 61
    with pytest.raises(CorruptRecordError):
        parse_header(b"\x00" * 60)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_typed_errors(data: bytes) -> None:
    try:
        list(iter_batches(data))
    except RecordError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_valid_batch_survives_only_where_the_crc_does_not_look(data: st.DataObject) -> None:
    """A mutated batch either raises a RecordError or survives whole with every
    CRC-covered byte (magic on) unchanged: only the base offset, the length and the
    leader epoch (stamped by the broker) may differ.  Fails if the CRC is not checked."""
    original = kafka_batch(data.draw(st.sampled_from([0, 1, 4])))
    buf = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    try:
        headers = list(iter_batches(bytes(buf[:cut])))
    except RecordError:
        return
    if cut == 0:
        assert headers == []
        return
    assert [(pos, h.size) for pos, h in headers] == [(0, len(original))]
    assert cut == len(original)
    assert buf[16:] == original[16:]


# --- stamping without copying the batch (the log's write path) -----------------


def test_stamped_prefix_is_the_in_place_stamp() -> None:
    buf = bytearray(kafka_batch(1))
    expected = bytearray(buf)
    set_base_offset(expected, 0, 2**40 + 5)
    set_partition_leader_epoch(expected, 0, 9)
    prefix = stamped_prefix(2**40 + 5, parse_header(buf).batch_length, 9)
    assert prefix + buf[STAMPED_PREFIX_SIZE:] == expected


@pytest.mark.parametrize("codec", [0, 3])
def test_log_append_time_header_is_the_in_place_stamp(codec: int) -> None:
    first, second = kafka_batch(0, 2), kafka_batch(codec, 3)
    records = first + second
    expected = bytearray(records)
    set_base_offset(expected, len(first), 77)
    set_partition_leader_epoch(expected, len(first), 4)
    set_log_append_time(expected, len(first), 1_800_000_000_000)
    header = log_append_time_header(memoryview(records), len(first), 77, 4, 1_800_000_000_000)
    assert bytes(header) == expected[len(first) : len(first) + HEADER_SIZE]
    rebuilt = bytes(header) + records[len(first) + HEADER_SIZE :]
    assert validate_batch(rebuilt).timestamp_type == LOG_APPEND_TIME
    assert kafka_reader(rebuilt).validate_crc()


def _outcome(fn, buf):
    try:
        return fn(buf)
    except RecordError as exc:
        return type(exc), str(exc)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_validate_batches_agrees_with_iter_batches(data: st.DataObject) -> None:
    buf = bytearray(kafka_batch(0, 2) + kafka_batch(data.draw(st.sampled_from([0, 1, 4]))))
    for _ in range(data.draw(st.integers(0, 3))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    buf = bytes(buf[: data.draw(st.integers(0, len(buf)))])
    limit = data.draw(st.sampled_from([None, 100, 1 << 20]))
    expected = _outcome(lambda b: list(iter_batches(b, limit)), buf)
    for kind in (bytes, bytearray, memoryview):
        assert _outcome(lambda b: validate_batches(b, limit), kind(buf)) == expected


@pytest.mark.parametrize("codec", CODECS.values(), ids=CODECS.keys())
def test_record_timestamps_agree_with_kafka_python(codec: int) -> None:
    buf = kafka_batch(codec, count=5)
    expected = [(r.offset, r.timestamp) for r in kafka_reader(buf)]
    assert list(record_timestamps(buf)) == expected
    assert batch_max_timestamp(buf) == max(ts for _, ts in expected)


def test_record_timestamps_of_a_log_append_time_batch_are_its_max() -> None:
    buf = bytearray(build_batch([(None, b"a", (), 5), (None, b"b", (), 9)]))
    set_log_append_time(buf, 0, 1234)
    assert list(record_timestamps(buf)) == [(0, 1234), (1, 1234)]


def test_record_timestamps_refuse_a_record_that_overruns_its_batch() -> None:
    buf = bytearray(build_batch([(None, b"a", (), 5), (None, b"b", (), 9)]))
    buf[HEADER_SIZE] = 0x7E  # the first record's length varint: 63 bytes, beyond the batch
    with pytest.raises(CorruptRecordError):
        list(record_timestamps(buf))


def test_max_timestamp_header_rewrites_the_max_and_the_crc() -> None:
    buf = build_batch([(None, b"a", (), 5), (None, b"b", (), 9)])
    header = restamped_header(buf, 0, 40, 3, 9)
    rewritten = bytes(header) + buf[HEADER_SIZE:]
    fixed = validate_batch(rewritten)  # the CRC holds
    assert (fixed.base_offset, fixed.partition_leader_epoch, fixed.max_timestamp) == (40, 3, 9)
    assert fixed.timestamp_type == 0 and fixed.attributes == parse_header(buf).attributes


def test_recompress_batches_rewrites_other_codecs_only() -> None:
    from odradek.protocol.records import read_records, recompress_batches
    batch = build_batch([(b"k%d" % i, b"v" * 50, (), 1000 + i) for i in range(5)], producer_id=3,
                        producer_epoch=1, base_sequence=9, compression=1)
    assert recompress_batches(batch, 1) is None  # already gzip
    out = recompress_batches(batch, 4)
    header = validate_batch(out)
    assert (header.compression, header.records_count, header.base_sequence) == (4, 5, 9)
    assert read_records(out) == read_records(batch)
    assert validate_batch(recompress_batches(batch, 0)).compression == 0
    corrupt = bytearray(batch)
    corrupt[-1] ^= 1
    assert recompress_batches(bytes(corrupt), 4) is None  # the append refuses it as sent

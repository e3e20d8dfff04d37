"""Typed storage errors; ``error_code`` is the Kafka error code the broker returns."""

from __future__ import annotations

from odradek.protocol.errors import ErrorCode


class StorageError(Exception):
    error_code = ErrorCode.UNKNOWN_SERVER_ERROR


class OffsetOutOfRangeError(StorageError):
    """A fetch/list offset outside [log_start_offset, log_end_offset]."""

    error_code = ErrorCode.OFFSET_OUT_OF_RANGE


class KafkaStorageError(StorageError):
    """The disk failed us (ENOSPC, EIO, ...); the log itself is left as it was."""

    error_code = ErrorCode.KAFKA_STORAGE_ERROR


class CorruptIndexError(StorageError):
    """An index file that fails its sanity check; recovery rebuilds it from the .log."""

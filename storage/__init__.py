"""Odradek's storage engine: Kafka-format partition logs on local disk.

Layout of a data directory::

    data/
      .kafka_cleanshutdown                 present only between a clean close and the next open
      recovery-point-offset-checkpoint     \\
      replication-offset-checkpoint         > Kafka checkpoint files (storage.checkpoint)
      log-start-offset-checkpoint          /
      cleaner-offset-checkpoint            how far each compacted log is cleaned (storage.cleaner)
      orders-0/
        00000000000000000000.log           record batches (protocol.records), as appended
        00000000000000000000.index         sparse offset -> file position
        00000000000000000000.timeindex     sparse max timestamp -> offset
        leader-epoch-checkpoint            first offset of each leader epoch

Durability (the default, like Kafka): ``flush.messages`` and ``flush.ms`` are
unlimited, so no fsync happens per append.  When ``Log.append`` returns, the
bytes are in the OS page cache: they survive a crash of the broker process,
not a power loss or kernel crash; replication (acks=all) is what protects
against losing a machine.  Set ``flush.messages=1`` to fsync before
acknowledging: ``await log.wait_durable(result)`` then waits for an fsync,
which runs on a small pool of flusher threads and is group-committed (one fsync in flight per log;
appends that arrive meanwhile share the next one).  ``flush.ms`` fsyncs that
long after the first unflushed append, in the background.

Deleting segments: a deleted segment is renamed ``*.deleted`` at once and
unlinked when the last in-flight fetch slice releases it (reference counted),
so ``file.delete.delay.ms`` is accepted but not needed.

Recovery: after an unclean stop every batch past the recovery point is
re-validated (length, magic, CRC32C, offsets continuing from the previous
batch) and the log is cut at the first bad one; indexes that are missing or
fail their sanity check are rebuilt from the ``.log``.  After a clean stop the
indexes are trusted and only the batch headers after the last index entry are
read.

Faults: every ``.log`` write/fsync/truncate goes through a ``storage.io.FileIO``
passed to the manager or log; ``storage.io.FaultyIO`` injects ENOSPC, EIO and
slow fsyncs.  A failed write is cut back and raised as KafkaStorageError; the
log stays readable and writable.  A failed fsync makes the log refuse further
appends (KafkaStorageError), since the page cache state is then unknown.

Imports: protocol and the standard library (plus crc32c, structlog); never
broker or replication.
"""

from odradek.storage.config import LOG_CONFIG_DEFS, ConfigDef, ConfigError, LogConfig
from odradek.storage.epoch import LeaderEpochCache
from odradek.storage.errors import (
    CorruptIndexError,
    KafkaStorageError,
    OffsetOutOfRangeError,
    StorageError,
)
from odradek.storage.io import FaultyIO, FileIO
from odradek.storage.log import AppendResult, FileSlice, Log, ReadResult
from odradek.storage.manager import LogManager

__all__ = [
    "LOG_CONFIG_DEFS",
    "AppendResult",
    "ConfigDef",
    "ConfigError",
    "CorruptIndexError",
    "FaultyIO",
    "FileIO",
    "FileSlice",
    "KafkaStorageError",
    "LeaderEpochCache",
    "Log",
    "LogConfig",
    "LogManager",
    "OffsetOutOfRangeError",
    "ReadResult",
    "StorageError",
]

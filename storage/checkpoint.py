"""Kafka's checkpoint files: a tiny versioned text format, replaced atomically.

Used for ``recovery-point-offset-checkpoint``, ``replication-offset-checkpoint``
and ``log-start-offset-checkpoint`` (one per data dir, ``topic partition offset``
lines) and ``leader-epoch-checkpoint`` (one per partition, ``epoch offset``)::

    0                 <- version
    2                 <- number of entries
    orders 0 1234     <- entries, space-separated fields
    orders 1 987

A write goes to ``<name>.tmp``, is fsynced, renamed over the old file, and the
directory is fsynced, so a crash leaves either the old or the new file whole.
``write_atomically`` is that write for every small file replaced whole: these
checkpoints, producer-state snapshots and the Raft store's files. It blocks on two
fsyncs: callers on the event loop run it in a thread (the flusher or an executor).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from odradek.storage.io import FileIO

log = structlog.get_logger(__name__)

VERSION = 0
MAX_ENTRIES = 1_000_000  # bound a corrupt count line before trusting it


class CheckpointError(ValueError):
    pass


def write_atomically(path: Path, data: bytes, *, io: FileIO | None = None,
                     tmp_name: str | None = None,
                     install: Callable[[Path], bool] | None = None) -> None:
    """Replace ``path`` with ``data``: tmp file, fsync, rename, fsync of the directory.

    ``io`` carries the fsyncs (a FaultyIO slows or fails them in tests). Concurrent
    writers of one file give each its own ``tmp_name`` and an ``install(tmp)`` that
    renames it into place unless a newer write already did (returns False then).
    """
    fsync = (io or FileIO).fsync_metadata
    tmp = path.with_name(tmp_name or path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view, done = memoryview(data), 0
        while done < len(view):
            done += os.write(fd, view[done:])
        fsync(fd)
    finally:
        os.close(fd)
    if install is None:
        os.replace(tmp, path)
    elif not install(tmp):
        return
    fsync_dir(path.parent, io)


def checkpoint_bytes(rows: list[tuple]) -> bytes:
    return (f"{VERSION}\n{len(rows)}\n" + "".join(" ".join(map(str, r)) + "\n" for r in rows)).encode()


def write_checkpoint(path: Path, rows: list[tuple], io: FileIO | None = None) -> None:
    write_atomically(path, checkpoint_bytes(rows), io=io)


def read_checkpoint(path: Path, fields: int) -> list[list[str]]:
    """Rows of ``fields`` strings; [] if absent.  Raises CheckpointError if malformed."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise  # out of descriptors says nothing about the file: it must not read as corrupt
        raise CheckpointError(f"{path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    try:
        version, count = int(lines[0]), int(lines[1])
    except (IndexError, ValueError) as exc:
        raise CheckpointError(f"{path}: malformed header") from exc
    if version != VERSION or not 0 <= count <= MAX_ENTRIES or len(lines) != count + 2:
        raise CheckpointError(f"{path}: version {version}, count {count}, {len(lines)} lines")
    rows = [line.split(" ") for line in lines[2:]]
    if any(len(r) != fields for r in rows):
        raise CheckpointError(f"{path}: expected {fields} fields per entry")
    return rows


def read_offsets(path: Path) -> dict[tuple[str, int], int]:
    """``{(topic, partition): offset}``; a corrupt file is logged and read as empty.

    Empty is the conservative answer for each file we keep: recovery point 0
    re-validates everything, log start offset falls back to the first segment,
    high watermark 0 is raised again by replication."""
    try:
        return {(t, int(p)): int(o) for t, p, o in read_checkpoint(path, 3)}
    except (CheckpointError, ValueError) as exc:
        log.warning("checkpoint_corrupt", path=str(path), error=str(exc))
        return {}


def write_offsets(path: Path, offsets: dict[tuple[str, int], int], io: FileIO | None = None) -> None:
    write_checkpoint(path, [(t, p, o) for (t, p), o in sorted(offsets.items())], io)


def fsync_dir(path: Path, io: FileIO | None = None) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        (io or FileIO).fsync_metadata(fd)
    finally:
        os.close(fd)

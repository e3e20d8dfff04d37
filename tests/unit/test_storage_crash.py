"""Crash recovery on real files: SIGKILL of a writer mid-run, torn and damaged
segments, garbage tails, deleted and corrupted indexes.  After recovery the log
must be a clean prefix, byte-identical to what was written before the damage."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from odradek.protocol.records import build_batch, iter_batches
from odradek.storage import FaultyIO, LogConfig, LogManager

REPO = Path(__file__).resolve().parents[2]
CONFIG = LogConfig.from_mapping({"segment.bytes": 4000, "index.interval.bytes": 200})


def payload(i: int) -> bytes:
    return build_batch([(b"key-%d" % i, b"value-%d-" % i * (5 + i % 17), (), 1_000_000 + i)] * (1 + i % 3))


def batches(data: bytes) -> list[bytes]:
    return [data[pos : pos + h.size] for pos, h in iter_batches(data, None)]


def read_all(manager: LogManager) -> bytes:
    lg = manager.get_log("t", 0)
    with lg.read(lg.log_start_offset, 1 << 30) as result:
        return result.read_bytes()


def written_log(tmp_path: Path, count: int = 60, *, clean: bool = False) -> tuple[Path, list[bytes]]:
    manager = LogManager(tmp_path, CONFIG)
    lg = manager.get_or_create_log("t", 0)
    for i in range(count):
        lg.append(payload(i), leader_epoch=i // 20)
    assert len(lg.segments) >= 3
    original = batches(read_all(manager))
    manager.close(clean=clean)
    return tmp_path / "t-0", original


def segment_files(directory: Path, suffix: str = ".log") -> list[Path]:
    return sorted(directory.glob("*" + suffix))


def assert_clean_prefix(manager: LogManager, original: list[bytes], at_least: int = 0) -> int:
    got = batches(read_all(manager))
    assert len(got) >= at_least
    assert got == original[: len(got)]
    lg = manager.get_log("t", 0)
    assert lg.log_end_offset == (0 if not got else struct.unpack_from(">q", got[-1])[0]
                                 + struct.unpack_from(">i", got[-1], 23)[0] + 1)
    return len(got)


WRITER = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, {repo!r})
    import structlog, logging
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    from odradek.storage import FaultyIO, LogConfig, LogManager
    from test_storage_crash import payload

    async def main():
        config = LogConfig.from_mapping({{"segment.bytes": 4000, "flush.messages": 1}})
        io = FaultyIO(durable_journal=sys.argv[2])
        io.fsync_noop = sys.argv[3] == "noop"
        manager = LogManager(sys.argv[1], config, io=io)
        lg = manager.get_or_create_log("t", 0)
        for i in range(100000):
            await lg.wait_durable(lg.append(payload(i), leader_epoch=0))
            print(i, flush=True)

    asyncio.run(main())
""")


def sigkill_and_power_loss(tmp_path: Path, fsync: str) -> tuple[int, list[bytes]]:
    """Run the writer, SIGKILL it after some acknowledged (fsynced) appends, then cut
    the files back to what was fsynced (SIGKILL alone keeps the page cache, so it cannot
    tell fsync from none).  Returns the last acknowledged index and the recovered batches."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'tests' / 'unit'}")
    journal = tmp_path / "durable.journal"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data"), str(journal), fsync],
                            stdout=subprocess.PIPE, env=env)
    acked = -1
    target = random.Random(7).randint(80, 200)
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= target:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert acked >= target, "writer died early"
    FaultyIO.lose_power(journal)
    manager = LogManager(tmp_path / "data")
    assert not manager.was_clean_shutdown
    got = batches(read_all(manager))
    manager.close()
    return acked, got


def test_sigkill_and_power_loss_keep_every_fsynced_batch(tmp_path) -> None:
    acked, got = sigkill_and_power_loss(tmp_path, "fsync")
    assert len(got) >= acked + 1  # every acknowledged (fsynced) batch survived
    unstamped = [bytes(8) + b[8:12] + b"\xff\xff\xff\xff" + b[16:] for b in got]
    assert unstamped == [payload(i) for i in range(len(got))]
    assert [struct.unpack_from(">q", b)[0] for b in got[:3]] == [0, 1, 3]


def test_power_loss_catches_an_fsync_that_does_nothing(tmp_path) -> None:
    """The check above can fail: with fsync a no-op, acknowledged batches are lost."""
    acked, got = sigkill_and_power_loss(tmp_path, "noop")
    assert len(got) < acked + 1


@pytest.mark.parametrize("seed", range(4))
def test_segment_cut_at_random_byte(tmp_path, seed: int) -> None:
    directory, original = written_log(tmp_path)
    rng = random.Random(seed)
    files = segment_files(directory)
    victim = files[seed % len(files)]
    cut = rng.randrange(1, victim.stat().st_size)
    os.truncate(victim, cut)
    manager = LogManager(tmp_path, CONFIG)
    kept = assert_clean_prefix(manager, original)
    assert kept < len(original)
    # the log keeps working after recovery
    lg = manager.get_log("t", 0)
    end = lg.log_end_offset
    assert lg.append(payload(999), leader_epoch=9).base_offset == end
    manager.close()


@pytest.mark.parametrize("clean", [False, True])
def test_garbage_appended(tmp_path, clean: bool) -> None:
    directory, original = written_log(tmp_path, clean=clean)
    with open(segment_files(directory)[-1], "ab") as f:
        f.write(bytes(range(256)) * 3)
    manager = LogManager(tmp_path, CONFIG)
    assert assert_clean_prefix(manager, original) == len(original)


def test_flipped_crc_covered_byte_in_last_batch(tmp_path) -> None:
    directory, original = written_log(tmp_path)
    last = segment_files(directory)[-1]
    data = bytearray(last.read_bytes())
    data[len(data) - len(original[-1]) + 30] ^= 0x01
    last.write_bytes(bytes(data))
    manager = LogManager(tmp_path, CONFIG)
    assert assert_clean_prefix(manager, original) == len(original) - 1


@pytest.mark.parametrize("field,delta", [(0, -5), (8, 1), (8, -1), (8, 2**30)])
def test_damaged_first_16_bytes_of_last_batch(tmp_path, field: int, delta: int) -> None:
    directory, original = written_log(tmp_path)
    last = segment_files(directory)[-1]
    data = bytearray(last.read_bytes())
    pos = len(data) - len(original[-1])
    fmt = ">q" if field == 0 else ">i"
    struct.pack_into(fmt, data, pos + field, struct.unpack_from(fmt, data, pos + field)[0] + delta)
    last.write_bytes(bytes(data))
    manager = LogManager(tmp_path, CONFIG)
    assert assert_clean_prefix(manager, original) == len(original) - 1


def test_forward_gap_between_batches_is_kept(tmp_path) -> None:
    """A base offset above the previous batch's next offset is a gap, not damage: the log
    cleaner leaves them (Kafka's recovery does not check continuity either). Only a batch
    going backwards is cut."""
    directory, original = written_log(tmp_path)
    last = segment_files(directory)[-1]
    data = bytearray(last.read_bytes())
    pos = len(data) - len(original[-1])
    struct.pack_into(">q", data, pos, struct.unpack_from(">q", data, pos)[0] + 3)
    last.write_bytes(bytes(data))
    manager = LogManager(tmp_path, CONFIG)
    got = batches(read_all(manager))
    assert got[:-1] == original[:-1] and got[-1][8:] == original[-1][8:]
    assert struct.unpack_from(">q", got[-1])[0] == struct.unpack_from(">q", original[-1])[0] + 3
    manager.close()


def test_damaged_batch_in_middle_segment_drops_later_segments(tmp_path) -> None:
    directory, original = written_log(tmp_path)
    middle = segment_files(directory)[1]
    data = bytearray(middle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    middle.write_bytes(bytes(data))
    manager = LogManager(tmp_path, CONFIG)
    kept = assert_clean_prefix(manager, original)
    lg = manager.get_log("t", 0)
    assert len(lg.segments) == 2
    assert not list(directory.glob("*.deleted"))
    # offsets, the leader-epoch cache and the time index follow the cut
    assert lg.leader_epoch_cache.entries[-1][1] < lg.log_end_offset
    assert lg.offset_for_timestamp(1_000_000 + kept + 5) is None
    manager.close()


@pytest.mark.parametrize("damage", ["delete", "garbage", "odd_size", "zeros", "truncate"])
@pytest.mark.parametrize("clean", [True, False])
def test_missing_or_corrupt_index_is_rebuilt(tmp_path, damage: str, clean: bool) -> None:
    directory, original = written_log(tmp_path, clean=clean)
    expected_entries = {}
    manager = LogManager(tmp_path, CONFIG)  # reference: entry counts of healthy indexes
    for segment in manager.get_log("t", 0).segments[:-1]:
        expected_entries[segment.base_offset] = (segment.offset_index.entries,
                                                 segment.time_index.entries)
    if not clean:  # a recovery point past the damaged segment: it is not re-validated
        manager.get_log("t", 0).flush_sync()
        manager.checkpoint()
    manager.close(clean=clean)
    for suffix in (".index", ".timeindex"):
        victim = segment_files(directory, suffix)[0]
        if damage == "delete":
            victim.unlink()
        elif damage == "garbage":
            victim.write_bytes(os.urandom(victim.stat().st_size or 24))
        elif damage == "odd_size":
            with open(victim, "ab") as f:
                f.write(b"\x01")
        elif damage == "zeros":
            victim.write_bytes(bytes(victim.stat().st_size + 24))
        else:
            os.truncate(victim, 0)
    manager = LogManager(tmp_path, CONFIG)
    assert assert_clean_prefix(manager, original) == len(original)
    lg = manager.get_log("t", 0)
    first = lg.segments[0]
    assert (first.offset_index.entries, first.time_index.entries) == expected_entries[0]
    for i in range(0, 60, 7):  # lookups through the rebuilt index agree with the data
        assert lg.offset_for_timestamp(1_000_000 + i)[1] == 1_000_000 + i
        with lg.read(lg.offset_for_timestamp(1_000_000 + i)[0], 1) as result:
            assert result.read_bytes() in original
    manager.close()

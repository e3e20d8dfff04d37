"""A segment roll on the event loop does no blocking disk work: the rolled segment's
indexes (preallocated to segment.index.bytes) are cut to their entries in a flusher
thread, not on the loop (a shrinking truncate waits for the filesystem journal: 5 ms
median and up to 75 ms per roll were measured on this machine's loaded disk)."""

from __future__ import annotations

import asyncio
import os
import threading

from odradek.protocol.records import build_batch
from odradek.storage import FaultyIO, Log, LogConfig


def batch(i: int) -> bytes:
    return build_batch([(b"k%d" % i, b"v" * 500, (), 1_700_000_000_000 + i)])


def make_log(tmp_path, io: FaultyIO) -> Log:
    config = LogConfig.from_mapping({"segment.bytes": 3000, "index.interval.bytes": 600})
    return Log(tmp_path / "t-0", config, topic="t", partition=0, io=io, needs_recovery=False)


def trimmed(lg: Log) -> bool:
    return all(os.path.getsize(index.path) == index.entries * index.ENTRY.size
               for s in lg.segments[:-1] for index in (s.offset_index, s.time_index))


async def test_a_roll_cuts_the_rolled_indexes_off_the_event_loop(tmp_path) -> None:
    io = FaultyIO()
    lg = make_log(tmp_path, io)
    for i in range(30):
        lg.append(batch(i), leader_epoch=0)
    assert len(lg.segments) >= 5
    # a new active segment's indexes are preallocated (a sparse extension) to
    # segment.index.bytes, in whole entries: the only truncations left on the loop
    preallocated = {10485760 // 8 * 8, 10485760 // 12 * 12}
    cuts_on_loop = [n for thread, n in io.index_truncations
                    if thread == threading.get_ident() and n not in preallocated]
    assert cuts_on_loop == []
    for _ in range(200):  # the flusher threads cut them, soon
        if trimmed(lg):
            break
        await asyncio.sleep(0.01)
    assert trimmed(lg) and any(n not in preallocated for _, n in io.index_truncations)
    offsets = [o for s in lg.segments[:-1] for o, _ in s.offset_index.all_entries()]
    assert offsets  # the entries survived the cut
    with lg.read(7, 1) as one:
        assert one.slices
    lg.close()
    again = Log(tmp_path / "t-0", lg.config, topic="t", partition=0, needs_recovery=False)
    assert again.log_end_offset == 30
    again.close()


def test_without_a_loop_a_roll_cuts_the_indexes_at_once(tmp_path) -> None:
    io = FaultyIO()
    lg = make_log(tmp_path, io)
    for i in range(30):
        lg.append(batch(i), leader_epoch=0)
    assert trimmed(lg)
    lg.close()

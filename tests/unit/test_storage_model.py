"""A hypothesis state machine drives a LogManager through appends, reads, rolls,
retention, DeleteRecords, truncation and clean/unclean restarts (optionally with
a torn tail), and checks every read against a plain list of batches.

Unclean restarts simulate a process crash: the page cache survives, so nothing
that was written may be lost.  Power loss (losing unflushed pages) is not
simulated here."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from odradek.protocol.records import (
    build_batch,
    iter_batches,
    set_base_offset,
    set_partition_leader_epoch,
)
from odradek.storage import LogConfig, LogManager

CONFIG = LogConfig.from_mapping(
    {"segment.bytes": 1500, "index.interval.bytes": 150, "segment.index.bytes": 96}
)


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="odradek-model-"))
        self.manager = LogManager(self.dir, CONFIG)
        self.log = self.manager.get_or_create_log("m", 0)
        self.batches: list[tuple[int, int, bytes]] = []  # (base_offset, last_offset, bytes)
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.epoch = 0
        self.checkpointed_high_watermark = 0
        self.counter = 0

    def teardown(self) -> None:
        self.manager.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- operations -------------------------------------------------------------------

    @rule(records=st.integers(1, 4), size=st.integers(0, 400), epoch_step=st.integers(0, 1),
          batches=st.integers(1, 3))
    def append(self, records: int, size: int, epoch_step: int, batches: int) -> None:
        self.epoch += epoch_step
        payloads = []
        for _ in range(batches):
            self.counter += 1
            ts = 1_000_000 + self.counter
            payloads.append(build_batch([(b"k", bytes([self.counter % 251]) * size, (), ts)] * records))
        result = self.log.append(b"".join(payloads), leader_epoch=self.epoch)
        assert result.base_offset == self.log_end_offset
        for payload in payloads:
            stamped = bytearray(payload)
            set_base_offset(stamped, 0, self.log_end_offset)
            set_partition_leader_epoch(stamped, 0, self.epoch)
            self.batches.append((self.log_end_offset, self.log_end_offset + records - 1, bytes(stamped)))
            self.log_end_offset += records
        assert result.last_offset == self.log_end_offset - 1

    @rule(data=st.data(), max_bytes=st.integers(1, 3000), min_one=st.booleans(),
          to_high_watermark=st.booleans())
    def read(self, data: st.DataObject, max_bytes: int, min_one: bool, to_high_watermark: bool) -> None:
        fetch = data.draw(st.integers(self.log_start_offset, self.log_end_offset))
        max_offset = self.log.high_watermark if to_high_watermark else None
        limit = self.log_end_offset if max_offset is None else max_offset
        expected, total = [], 0
        for _, last, payload in self.batches:
            if last < fetch:
                continue
            if last >= limit or (total + len(payload) > max_bytes and not (min_one and not expected)):
                break
            expected.append(payload)
            total += len(payload)
        with self.log.read(fetch, max_bytes, max_offset, min_one) as result:
            assert result.read_bytes() == b"".join(expected)

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(data=st.data())
    def set_high_watermark(self, data: st.DataObject) -> None:
        self.log.high_watermark = data.draw(st.integers(self.log_start_offset, self.log_end_offset))

    @rule(retention_bytes=st.integers(0, 4000))
    def retention(self, retention_bytes: int) -> None:
        self.log.update_config(LogConfig.from_mapping({"retention.bytes": retention_bytes}, CONFIG))
        size_before = self.log.size
        self.log.delete_retention_breached()
        self.log.update_config(CONFIG)
        new_start = self.log.log_start_offset
        assert new_start >= self.log_start_offset
        assert self.log.size <= max(retention_bytes + CONFIG.segment_bytes, size_before)
        self._drop_below(new_start)

    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.log_start_offset, self.log.high_watermark))
        assert self.log.delete_records(offset) == max(offset, self.log_start_offset)
        self.manager.checkpoint()  # what LogManager.delete_records does
        self.checkpointed_high_watermark = self.log.high_watermark
        self._drop_below(self.log.log_start_offset)

    @precondition(lambda self: self.log_end_offset > 0)
    @rule(data=st.data())
    def truncate_to(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(0, self.log_end_offset))
        self.log.truncate_to(offset)
        if offset >= self.log_end_offset:
            return
        # the batch holding offset goes too: the log ends at its base offset
        new_end = next((base for base, last, _ in self.batches if last >= offset), offset)
        if offset < self.log_start_offset or new_end < self.log_start_offset:
            self.batches, self.log_end_offset = [], offset
            if offset != self.log_start_offset:  # the log checkpoints its new start
                self.log_start_offset = offset
                self.checkpointed_high_watermark = self.log.high_watermark
        else:
            self.batches = [b for b in self.batches if b[1] < offset]
            self.log_end_offset = new_end

    @rule()
    def restart_clean(self) -> None:
        self.checkpointed_high_watermark = self.log.high_watermark
        self.manager.close()
        self._reopen(clean=True)

    @rule(torn=st.sampled_from(["none", "garbage", "partial_batch"]), length=st.integers(1, 120))
    def restart_unclean(self, torn: str, length: int) -> None:
        self.manager.close(clean=False)
        active = max(self.dir.glob("m-0/*.log"))
        if torn == "garbage":
            with open(active, "ab") as f:
                f.write(bytes((i * 37 + length) % 256 for i in range(length)))
        elif torn == "partial_batch":
            whole = build_batch([(b"x", b"y" * 200, (), 5)])
            with open(active, "ab") as f:
                f.write(whole[: length % len(whole) + 1][:-1] or whole[:1])
        self._reopen(clean=False)

    def _reopen(self, clean: bool) -> None:
        self.manager = LogManager(self.dir, CONFIG)
        assert self.manager.was_clean_shutdown == clean
        self.log = self.manager.get_log("m", 0)
        expected_hw = min(max(self.checkpointed_high_watermark, self.log_start_offset),
                          self.log_end_offset)
        assert self.log.high_watermark == expected_hw

    def _drop_below(self, start: int) -> None:
        self.log_start_offset = start
        self.batches = [b for b in self.batches if b[1] >= start]

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def offsets_match(self) -> None:
        assert self.log.log_start_offset == self.log_start_offset
        assert self.log.log_end_offset == self.log_end_offset
        assert self.log_start_offset <= self.log.high_watermark <= self.log_end_offset

    @invariant()
    def whole_log_matches(self) -> None:
        with self.log.read(self.log_start_offset, 1 << 30) as result:
            data = result.read_bytes()
        assert data == b"".join(payload for _, _, payload in self.batches)
        list(iter_batches(data, None))  # every served byte passes the CRC


TestLogModel = LogModel.TestCase
TestLogModel.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

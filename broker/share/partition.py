"""One share partition: which records of a topic partition a share group has handed out,
to whom and until when, and how each was acknowledged (KIP-932, Kafka's SharePartition).

A pure state machine: no I/O and no clock. The leader of the topic partition feeds it
the batches a ShareFetch read (their offset ranges), the acknowledgements of ShareFetch
and ShareAcknowledge, members leaving and the time; it answers what each member
acquired and whether an acknowledgement stands. ``state_batches`` is what the share
coordinator persists, and ``SharePartition.recovered`` rebuilds it after a failover.

The in-flight window::

      start_offset (SPSO)                          end_offset (SPEO, exclusive)
            v                                              v
    ... ----+------+----------+-----+-----------+----------+-----> the log
            | ACKD | ACQUIRED | AV. | ARCHIVED  | ACQUIRED |  new records are acquired
            +------+----------+-----+-----------+----------+  from here on
    everything before SPSO is done (acknowledged or archived) and forgotten.

Each offset in the window has a state: AVAILABLE (to be handed out, again), ACQUIRED
(by one member, until its lock deadline), ACKNOWLEDGED (ACCEPT) or ARCHIVED (REJECT, a
gap, or delivered ``delivery_count_limit`` times without acceptance). The window
starts at the first offset that is not done and holds at most ``max_record_locks``
offsets (group.share.partition.max.record.locks), so memory is bounded whatever
the members do. Offsets are tracked one by one: the window is small by that bound.
"""

from dataclasses import dataclass
from enum import IntEnum

from odradek.protocol.errors import ErrorCode


class RecordState(IntEnum):
    """Kafka's ids, as persisted in ``__share_group_state``."""

    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


class AcknowledgeType(IntEnum):
    GAP = 0  # no record at this offset (compaction, a transaction marker)
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4  # ShareFetch/ShareAcknowledge v2 (KIP-1222): keep the lock, longer


class AcquireMode(IntEnum):
    """ShareFetch v2's ShareAcquireMode (KIP-1206); v1 is always batch-optimized."""

    BATCH_OPTIMIZED = 0  # whole log batches: MaxRecords may be exceeded to the end of one
    RECORD_LIMIT = 1  # at most MaxRecords records, whatever the batches


DONE = (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)


@dataclass(slots=True)
class InFlight:
    state: RecordState
    delivery_count: int = 0
    member_id: str | None = None
    lock_deadline_ms: int = 0


@dataclass(frozen=True, slots=True)
class Acquired:
    """Offsets first..last (inclusive) handed to a member, delivered ``delivery_count``
    times including this one (ShareFetch's AcquiredRecords)."""

    first_offset: int
    last_offset: int
    delivery_count: int


class SharePartition:
    def __init__(self, start_offset: int, *, delivery_count_limit: int = 5,
                 max_record_locks: int = 2000, lock_duration_ms: int = 30_000):
        self.start_offset = start_offset
        self.end_offset = start_offset
        self.delivery_count_limit = delivery_count_limit
        self.max_record_locks = max_record_locks
        self.lock_duration_ms = lock_duration_ms
        self.renew_enabled = True  # the group's share.renew.acknowledge.enable
        self.records: dict[int, InFlight] = {}  # every offset in [start_offset, end_offset)

    # -- what to read next ----------------------------------------------------------
    def next_fetch_offset(self) -> int:
        """Where a ShareFetch reads from: the first offset available again, else the end."""
        for offset in range(self.start_offset, self.end_offset):
            if self.records[offset].state is RecordState.AVAILABLE:
                return offset
        return self.end_offset

    def can_acquire(self) -> bool:
        return (self.next_fetch_offset() < self.end_offset
                or self.end_offset - self.start_offset < self.max_record_locks)

    # -- events ---------------------------------------------------------------------
    def acquire(self, member_id: str, batches: list[tuple[int, int]], max_records: int,
                now_ms: int, mode: AcquireMode = AcquireMode.BATCH_OPTIMIZED,
                skipped: frozenset[int] = frozenset()) -> list[Acquired]:
        """Hand ``member_id`` what it may have of the fetched ``batches`` (their first and
        last offsets, in log order from ``next_fetch_offset``): available offsets in the
        window, then new ones past its end while the window has room. Batch-optimized:
        whole batches, so ``max_records`` may be exceeded to the end of one; record-limit:
        ``max_records`` at most, the rest of a batch left for the next fetch (as Kafka's
        SharePartition in either mode). The batches whose first offset is in ``skipped``
        are never handed out: their available offsets are archived at once (the records
        of aborted transactions under share.isolation.level=read_committed)."""
        taken: list[tuple[int, int]] = []  # (offset, delivery count)
        deadline = now_ms + self.lock_duration_ms
        limit = max_records if mode is AcquireMode.RECORD_LIMIT else None
        for first, last in batches:
            if len(taken) >= max_records or not self._take(member_id, first, last, deadline, taken,
                                                           limit, first in skipped):
                break
        self._advance()
        return _ranges(taken)

    def _take(self, member_id: str, first: int, last: int, deadline: int,
              taken: list[tuple[int, int]], limit: int | None, skip: bool) -> bool:
        """Acquire what is available of one batch (up to ``limit`` records in all, if
        given), or archive it if ``skip``; False once the window is full."""
        for offset in range(max(first, self.start_offset), last + 1):
            if limit is not None and len(taken) >= limit and not skip:
                return True
            record = self.records.get(offset)
            if record is None:  # past the window's end: a new record
                if self.start_offset == self.end_offset:  # nothing in flight: skip a hole at once
                    self.start_offset = self.end_offset = offset
                if offset - self.start_offset >= self.max_record_locks:
                    return False
                for absent in range(self.end_offset, offset):  # between batches: none there
                    self.records[absent] = InFlight(RecordState.ARCHIVED)
                record = self.records[offset] = InFlight(RecordState.AVAILABLE)
                self.end_offset = offset + 1
            if record.state is RecordState.AVAILABLE and skip:
                record.state = RecordState.ARCHIVED
            elif record.state is RecordState.AVAILABLE:
                record.state, record.member_id = RecordState.ACQUIRED, member_id
                record.delivery_count += 1
                record.lock_deadline_ms = deadline
                taken.append((offset, record.delivery_count))
        return True

    def acknowledge(self, member_id: str, first_offset: int, last_offset: int,
                    types: list[int], now_ms: int, renew_allowed: bool = True) -> ErrorCode:
        """One AcknowledgementBatch: ``types`` holds one type for every offset, or one per
        offset. All or nothing: INVALID_RECORD_STATE if any offset is not acquired by this
        member now (its lock expired, another member holds it, it is done). RENEW is
        INVALID_REQUEST unless ``renew_allowed`` (v2 requests that set IsRenewAck), and
        INVALID_RECORD_STATE while the group's renewals are off (``renew_enabled``), as
        Kafka 4.4 answers: it restarts the lock of records the member keeps acquired."""
        count = last_offset - first_offset + 1
        if count <= 0 or len(types) not in (1, count) or any(t not in AcknowledgeType._value2member_map_
                                                                 for t in types):
            return ErrorCode.INVALID_REQUEST
        if not renew_allowed and AcknowledgeType.RENEW in types:
            return ErrorCode.INVALID_REQUEST
        if not self.renew_enabled and AcknowledgeType.RENEW in types:
            return ErrorCode.INVALID_RECORD_STATE
        for offset in range(first_offset, last_offset + 1):
            record = self.records.get(offset)
            if record is None or record.state is not RecordState.ACQUIRED or record.member_id != member_id:
                return ErrorCode.INVALID_RECORD_STATE
        for i, offset in enumerate(range(first_offset, last_offset + 1)):
            kind = AcknowledgeType(types[0] if len(types) == 1 else types[i])
            record = self.records[offset]
            if kind is AcknowledgeType.RENEW:
                record.lock_deadline_ms = now_ms + self.lock_duration_ms
            elif kind is AcknowledgeType.ACCEPT:
                self._settle(record, RecordState.ACKNOWLEDGED)
            elif kind is AcknowledgeType.RELEASE:
                self._release(record)
            else:  # REJECT, GAP
                self._settle(record, RecordState.ARCHIVED)
        self._advance()
        return ErrorCode.NONE

    def undo_acquire(self, member_id: str, acquired: list[Acquired]) -> None:
        """What ``acquire`` just handed ``member_id`` was not sent (its state could not be
        persisted): available again, this delivery not counted."""
        for a in acquired:
            for offset in range(a.first_offset, a.last_offset + 1):
                record = self.records.get(offset)
                if record is not None and record.state is RecordState.ACQUIRED and record.member_id == member_id:
                    self._settle(record, RecordState.AVAILABLE)
                    record.delivery_count -= 1

    def expire_locks(self, now_ms: int) -> int:
        """Acquisition locks past their deadline: the records are available again (or
        archived at the delivery-count limit). Returns how many were released."""
        expired = [r for r in self.records.values()
                   if r.state is RecordState.ACQUIRED and r.lock_deadline_ms <= now_ms]
        for record in expired:
            self._release(record)
        self._advance()
        return len(expired)

    def release_member(self, member_id: str) -> int:
        """A member left (or its share session closed): what it held goes back."""
        held = [r for r in self.records.values()
                if r.state is RecordState.ACQUIRED and r.member_id == member_id]
        for record in held:
            self._release(record)
        self._advance()
        return len(held)

    def move_start(self, log_start_offset: int) -> None:
        """The log's start moved (retention, DeleteRecords): what it dropped is gone."""
        if log_start_offset <= self.start_offset:
            return
        for offset in range(self.start_offset, min(log_start_offset, self.end_offset)):
            del self.records[offset]
        self.start_offset = log_start_offset
        self.end_offset = max(self.end_offset, log_start_offset)

    def next_lock_deadline_ms(self) -> int | None:
        """When ``expire_locks`` next has something to do (None: nothing is acquired)."""
        return min((r.lock_deadline_ms for r in self.records.values()
                    if r.state is RecordState.ACQUIRED), default=None)

    # -- persistence ------------------------------------------------------------------
    def state_batches(self) -> list[tuple[int, int, int, int]]:
        """(first offset, last offset, state, delivery count) runs of the window, as
        WriteShareGroupState carries them. An acquired record is written as available:
        after a failover nobody holds a lock, and it is redelivered."""
        runs: list[list[int]] = []
        for offset in range(self.start_offset, self.end_offset):
            r = self.records[offset]
            state = RecordState.AVAILABLE if r.state is RecordState.ACQUIRED else r.state
            if runs and runs[-1][1] == offset - 1 and runs[-1][2:] == [state, r.delivery_count]:
                runs[-1][1] = offset
            else:
                runs.append([offset, offset, int(state), r.delivery_count])
        return [(a, b, c, d) for a, b, c, d in runs]

    @classmethod
    def recovered(cls, start_offset: int, batches: list[tuple[int, int, int, int]],
                  **settings) -> "SharePartition":
        """The partition as persisted: ``start_offset`` and its ``state_batches``."""
        sp = cls(start_offset, **settings)
        for first, last, state, delivery_count in sorted(batches):
            for offset in range(max(first, sp.end_offset), last + 1):
                sp.records[offset] = InFlight(
                    RecordState.AVAILABLE if state == RecordState.ACQUIRED else RecordState(state),
                    delivery_count)
                sp.end_offset = offset + 1
        for offset in range(start_offset, sp.end_offset):  # holes in what was written
            record = sp.records.setdefault(offset, InFlight(RecordState.AVAILABLE))
            if record.state is RecordState.AVAILABLE and record.delivery_count >= sp.delivery_count_limit:
                # its last delivery's lock died with the old leader: as if it expired
                record.state = RecordState.ARCHIVED
        sp._advance()
        return sp

    # -- rules --------------------------------------------------------------------------
    def _release(self, record: InFlight) -> None:
        exhausted = record.delivery_count >= self.delivery_count_limit
        self._settle(record, RecordState.ARCHIVED if exhausted else RecordState.AVAILABLE)

    @staticmethod
    def _settle(record: InFlight, state: RecordState) -> None:
        record.state, record.member_id, record.lock_deadline_ms = state, None, 0

    def _advance(self) -> None:
        """Move the start past the records that are done: they are never handed out again."""
        while self.start_offset < self.end_offset and self.records[self.start_offset].state in DONE:
            del self.records[self.start_offset]
            self.start_offset += 1


def _ranges(taken: list[tuple[int, int]]) -> list[Acquired]:
    """Consecutive offsets with the same delivery count as one range."""
    out: list[Acquired] = []
    for offset, count in taken:
        if out and out[-1].last_offset == offset - 1 and out[-1].delivery_count == count:
            out[-1] = Acquired(out[-1].first_offset, offset, count)
        else:
            out.append(Acquired(offset, offset, count))
    return out


def aborted_batches(batches: list[tuple[int, int, int, bool]],
                    aborted: list[tuple[int, int, int]]) -> frozenset[int]:
    """The first offsets of the ``batches`` (first offset, last offset, producer id,
    transactional) that belong to an ``aborted`` transaction (producer id, its first
    offset, the offset of its ABORT marker): a transactional batch of that producer
    between the two. Under share.isolation.level=read_committed they are never handed out."""
    return frozenset(first for first, _, producer_id, transactional in batches if transactional
                     for pid, txn_first, marker in aborted if pid == producer_id and txn_first <= first < marker)

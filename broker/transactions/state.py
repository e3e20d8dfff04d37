"""The transaction state machine of one transactional id (KIP-98, KIP-360), pure.

States and the transitions Kafka allows (TransactionState.validPreviousStates)::

    Empty ----------> Ongoing ---------> PrepareCommit --> CompleteCommit
      ^  (AddPartitions /  |  \\----------> PrepareAbort ---> CompleteAbort
      |   AddOffsets)      |               ^                     |
      |                    +--> PrepareEpochFence (InitProducerId  |
      +-- InitProducerId -------------- or a timeout while Ongoing) +
          (from Empty, CompleteCommit, CompleteAbort)

Each decision function takes the current ``TxnMetadata`` (None: the id is unknown) and
the request's fields and returns a ``Decision``: an error code, or the metadata to
persist in ``__transaction_state`` before it takes effect (the coordinator writes it,
then applies it; while a write is in flight the id is ``pending`` and every request for
it gets CONCURRENT_TRANSACTIONS). Nothing here does I/O or reads a clock: ``now_ms``
comes in.

The transitions follow Kafka's TransactionCoordinator (transaction version 1):
- InitProducerId from Empty/Complete*: the epoch is bumped (a new producer id when the
  epoch would overflow); from Ongoing: the epoch is bumped to fence the old producer and
  its transaction is aborted (PrepareAbort), and the caller answers
  CONCURRENT_TRANSACTIONS so the new producer retries once the abort completed; while
  Prepare*: CONCURRENT_TRANSACTIONS. KIP-360: a producer that sends its current producer
  id and epoch gets a bump only if they match (or match the previous epoch, a retry);
  otherwise PRODUCER_FENCED.
- AddPartitionsToTxn / AddOffsetsToTxn: Ongoing with the partitions added.
- EndTxn from Ongoing: PrepareCommit or PrepareAbort; a retry after completion answers
  NONE; the wrong outcome is INVALID_TXN_STATE.
- Markers written: CompleteCommit / CompleteAbort, partitions cleared.
- Timeout: an Ongoing transaction older than its timeout is aborted with the epoch bumped.
- Expiry: an id in Empty or Complete* unused for transactional.id.expiration.ms is removed.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from odradek.protocol.errors import ErrorCode

MAX_EPOCH = 32767  # Short.MAX_VALUE
NO_PRODUCER_ID = -1
NO_EPOCH = -1


class TxnState(enum.IntEnum):
    """Kafka's TransactionState with its id in __transaction_state records."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        """As DescribeTransactions and ListTransactions name it."""
        return "".join(w.capitalize() for w in self.name.split("_"))


VALID_PREVIOUS = {
    TxnState.EMPTY: {TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT},
    TxnState.ONGOING: {TxnState.ONGOING, TxnState.EMPTY, TxnState.COMPLETE_COMMIT,
                       TxnState.COMPLETE_ABORT},
    TxnState.PREPARE_COMMIT: {TxnState.ONGOING},
    TxnState.PREPARE_ABORT: {TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE},
    TxnState.COMPLETE_COMMIT: {TxnState.PREPARE_COMMIT},
    TxnState.COMPLETE_ABORT: {TxnState.PREPARE_ABORT},
    TxnState.DEAD: {TxnState.EMPTY, TxnState.COMPLETE_ABORT, TxnState.COMPLETE_COMMIT},
    TxnState.PREPARE_EPOCH_FENCE: {TxnState.ONGOING},
}


def can_transition(old: TxnState, new: TxnState) -> bool:
    return old in VALID_PREVIOUS[new]


@dataclass(frozen=True, slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    txn_start_ms: int = -1
    last_update_ms: int = -1
    last_producer_epoch: int = NO_EPOCH  # the epoch before the last bump (KIP-360 retries)

    def replace(self, **changes) -> TxnMetadata:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Decision:
    """Either ``error`` (nothing to write), or ``target`` to persist then apply. ``answer``
    is what the client gets once the write succeeded (CONCURRENT_TRANSACTIONS for a fence)."""

    error: ErrorCode = ErrorCode.NONE
    target: TxnMetadata | None = None
    answer: ErrorCode = ErrorCode.NONE


def _busy(meta: TxnMetadata) -> bool:
    return meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT, TxnState.PREPARE_EPOCH_FENCE)


def _bump(meta: TxnMetadata, new_producer_id) -> TxnMetadata:
    """The next epoch, or a new producer id at epoch 0 when the epoch is exhausted."""
    if meta.producer_epoch + 1 >= MAX_EPOCH:
        return meta.replace(producer_id=new_producer_id(), producer_epoch=0,
                            last_producer_epoch=NO_EPOCH)
    return meta.replace(producer_epoch=meta.producer_epoch + 1, last_producer_epoch=meta.producer_epoch)


def init_producer_id(meta: TxnMetadata | None, transactional_id: str, timeout_ms: int,
                     max_timeout_ms: int, expected_id: int, expected_epoch: int, now_ms: int,
                     new_producer_id) -> Decision:
    """InitProducerId with a transactional id. ``new_producer_id()`` allocates an id."""
    if not 0 < timeout_ms <= max_timeout_ms:
        return Decision(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
    if meta is None:
        return Decision(target=TxnMetadata(transactional_id, new_producer_id(), 0, timeout_ms,
                                           TxnState.EMPTY, frozenset(), -1, now_ms))
    if expected_id != NO_PRODUCER_ID:  # KIP-360: the producer says who it was
        if expected_id != meta.producer_id:
            return Decision(ErrorCode.PRODUCER_FENCED)
        if expected_epoch not in (meta.producer_epoch, meta.last_producer_epoch):
            return Decision(ErrorCode.PRODUCER_FENCED)
    if _busy(meta):
        return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)
    if meta.state == TxnState.ONGOING:
        # Fence the producer of the open transaction and abort it; the caller retries.
        fenced = _bump(meta, new_producer_id)
        return Decision(target=fenced.replace(state=TxnState.PREPARE_ABORT, last_update_ms=now_ms,
                                              timeout_ms=meta.timeout_ms),
                        answer=ErrorCode.CONCURRENT_TRANSACTIONS)
    if (expected_id != NO_PRODUCER_ID and expected_epoch == meta.last_producer_epoch
            and meta.state == TxnState.EMPTY and expected_epoch != meta.producer_epoch):
        return Decision(target=meta)  # a retry of the bump we already made: same answer
    bumped = _bump(meta, new_producer_id)
    return Decision(target=bumped.replace(state=TxnState.EMPTY, partitions=frozenset(),
                                          timeout_ms=timeout_ms, txn_start_ms=-1,
                                          last_update_ms=now_ms))


def _check_producer(meta: TxnMetadata | None, producer_id: int, producer_epoch: int) -> ErrorCode:
    if meta is None or meta.producer_id != producer_id:
        return ErrorCode.INVALID_PRODUCER_ID_MAPPING
    if meta.producer_epoch != producer_epoch:
        return ErrorCode.PRODUCER_FENCED
    return ErrorCode.NONE


def add_partitions(meta: TxnMetadata | None, producer_id: int, producer_epoch: int,
                   partitions: set[tuple[str, int]], now_ms: int) -> Decision:
    """AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition)."""
    error = _check_producer(meta, producer_id, producer_epoch)
    if error:
        return Decision(error)
    assert meta is not None
    if _busy(meta):
        return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)
    if meta.state == TxnState.ONGOING and partitions <= meta.partitions:
        return Decision()  # nothing new: no write
    start = meta.txn_start_ms if meta.state == TxnState.ONGOING else now_ms
    return Decision(target=meta.replace(state=TxnState.ONGOING, partitions=meta.partitions | partitions,
                                        txn_start_ms=start, last_update_ms=now_ms))


def verify_partition(meta: TxnMetadata | None, producer_id: int, producer_epoch: int,
                     partition: tuple[str, int]) -> ErrorCode:
    """KIP-890 part 1: may this producer write this partition in its transaction now?
    A partition not in the ongoing transaction is TRANSACTION_ABORTABLE, as Kafka's
    coordinator answers (the client can abort and go on); requests of versions before
    that error (Produce < 11, AddPartitionsToTxn < 5) get INVALID_TXN_STATE instead
    (``abortable_for``)."""
    if meta is None or meta.producer_id != producer_id:
        return ErrorCode.INVALID_TXN_STATE
    if meta.producer_epoch != producer_epoch:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    if _busy(meta):
        return ErrorCode.INVALID_TXN_STATE  # ending: no write belongs to it any more
    if meta.state != TxnState.ONGOING or partition not in meta.partitions:
        return ErrorCode.TRANSACTION_ABORTABLE
    return ErrorCode.NONE


def abortable_for(code: ErrorCode, version: int, abortable_from: int) -> ErrorCode:
    """TRANSACTION_ABORTABLE (KIP-890) as the request version knows it: older versions get
    INVALID_TXN_STATE, as Kafka's AddPartitionsToTxnManager converts it for them."""
    if code == ErrorCode.TRANSACTION_ABORTABLE and version < abortable_from:
        return ErrorCode.INVALID_TXN_STATE
    return code


def end_txn(meta: TxnMetadata | None, producer_id: int, producer_epoch: int, commit: bool,
            now_ms: int) -> Decision:
    """EndTxn: Ongoing -> PrepareCommit / PrepareAbort; retries after the end answer NONE."""
    error = _check_producer(meta, producer_id, producer_epoch)
    if error:
        return Decision(error)
    assert meta is not None
    state = meta.state
    if state == TxnState.ONGOING:
        return Decision(target=meta.replace(
            state=TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT, last_update_ms=now_ms))
    if state == TxnState.COMPLETE_COMMIT:
        return Decision(ErrorCode.NONE if commit else ErrorCode.INVALID_TXN_STATE)
    if state == TxnState.COMPLETE_ABORT:
        return Decision(ErrorCode.INVALID_TXN_STATE if commit else ErrorCode.NONE)
    if state == TxnState.PREPARE_COMMIT:
        return Decision(ErrorCode.CONCURRENT_TRANSACTIONS if commit else ErrorCode.INVALID_TXN_STATE)
    if state == TxnState.PREPARE_ABORT:
        return Decision(ErrorCode.INVALID_TXN_STATE if commit else ErrorCode.CONCURRENT_TRANSACTIONS)
    if state == TxnState.PREPARE_EPOCH_FENCE:
        return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)
    return Decision(ErrorCode.INVALID_TXN_STATE)  # Empty, Dead


def complete(meta: TxnMetadata, now_ms: int) -> TxnMetadata:
    """The markers of a Prepare* state are written: CompleteCommit / CompleteAbort."""
    done = TxnState.COMPLETE_COMMIT if meta.state == TxnState.PREPARE_COMMIT else TxnState.COMPLETE_ABORT
    return meta.replace(state=done, partitions=frozenset(), last_update_ms=now_ms)


def expired(meta: TxnMetadata, now_ms: int, expiration_ms: int) -> bool:
    """transactional.id.expiration.ms: an id with no transaction open or ending, not used
    for that long, is forgotten (Kafka writes a tombstone for it)."""
    return (meta.state in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)
            and now_ms - meta.last_update_ms >= expiration_ms)


def timed_out(meta: TxnMetadata, now_ms: int) -> bool:
    return meta.state == TxnState.ONGOING and now_ms > meta.txn_start_ms + meta.timeout_ms


def abort_timed_out(meta: TxnMetadata, now_ms: int, new_producer_id) -> TxnMetadata:
    """A timed-out transaction is aborted with the epoch bumped: its producer is fenced."""
    return _bump(meta, new_producer_id).replace(state=TxnState.PREPARE_ABORT, last_update_ms=now_ms)

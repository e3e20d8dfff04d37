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

Transactions v2 (KIP-890 part 2, ``client_tv`` 2: the transaction was started by a broker
adding a partition for Produce v12 / TxnOffsetCommit v5, or is ended by EndTxn v5):
- EndTxn bumps the epoch: Prepare* carries epoch+1 (``last_producer_epoch`` the client's),
  so the markers are written with it and a late write of the ended transaction (the old
  epoch) is refused by every partition. When the client's epoch is exhausted (>= 32766)
  a ``next_producer_id`` is allocated: the markers still carry the old id at 32767, and
  completion moves the id to the new producer id at epoch 0 (``previous_producer_id`` the
  old one). EndTxn answers the id and epoch the producer goes on with.
- Retries: an EndTxn with epoch-1 (or, after an overflow, the previous producer id at
  32766) of a Prepare*/Complete* state is a retry of the one that bumped; with the current
  epoch it is a new EndTxn. An abort is allowed from Empty and Complete* (the producer
  never got a partition in, or a write failed before any was added): an empty PrepareAbort
  that bumps the epoch. Kafka's table (Retry: epoch-1; Current: the epoch):
                     Abort retry/current   Commit retry/current
      Empty            FENCED / bump        FENCED / INVALID_TXN_STATE
      CompleteAbort    NONE   / bump        INVALID_TXN_STATE / INVALID_TXN_STATE
      CompleteCommit   INVALID_TXN_STATE / bump    NONE / INVALID_TXN_STATE
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from odradek.protocol.errors import ErrorCode

MAX_EPOCH = 32767  # Short.MAX_VALUE
TV_1, TV_2 = 1, 2  # transaction.version: flexible state records; the epoch bumped per transaction
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
    # TransactionLogValue v1's tagged fields (transactions v2)
    previous_producer_id: int = NO_PRODUCER_ID  # the id before the last rotation
    next_producer_id: int = NO_PRODUCER_ID  # allocated at an exhausted v2 EndTxn, taken on completion
    client_tv: int = 0  # the transaction version the transaction is run with (0 or 2)

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


def exhausted(epoch: int) -> bool:
    """Kafka keeps 32767 for the coordinator (fencing, v2's bump at EndTxn)."""
    return epoch >= MAX_EPOCH - 1


def _bump(meta: TxnMetadata, new_producer_id) -> TxnMetadata:
    """The next epoch, or a new producer id at epoch 0 when the epoch is exhausted."""
    if exhausted(meta.producer_epoch):
        return meta.replace(producer_id=new_producer_id(), producer_epoch=0, last_producer_epoch=NO_EPOCH,
                            previous_producer_id=meta.producer_id)
    return meta.replace(producer_epoch=meta.producer_epoch + 1, last_producer_epoch=meta.producer_epoch)


def _fence(meta: TxnMetadata) -> TxnMetadata:
    """The epoch bumped once to fence the producer of an open transaction (also with
    transaction.version 2: Kafka 4.4's epoch after a fence and its retry is the old one + 2),
    never a new producer id: the markers must name the producer id the partitions know
    (Kafka's prepareFenceProducerEpoch; 32767 stays free for it)."""
    return meta.replace(producer_epoch=min(meta.producer_epoch + 1, MAX_EPOCH), last_producer_epoch=NO_EPOCH)


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
        rotated = expected_id == meta.previous_producer_id and exhausted(expected_epoch)
        if expected_id != meta.producer_id and not rotated:
            return Decision(ErrorCode.PRODUCER_FENCED)
        if expected_epoch not in (meta.producer_epoch, meta.last_producer_epoch) and not rotated:
            return Decision(ErrorCode.PRODUCER_FENCED)
    if _busy(meta):
        return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)
    if meta.state == TxnState.ONGOING:
        # Fence the producer of the open transaction and abort it; the caller retries.
        fenced = _fence(meta)
        return Decision(target=fenced.replace(state=TxnState.PREPARE_ABORT, last_update_ms=now_ms,
                                              timeout_ms=meta.timeout_ms),
                        answer=ErrorCode.CONCURRENT_TRANSACTIONS)
    if (expected_id != NO_PRODUCER_ID and meta.state == TxnState.EMPTY
            and ((expected_id == meta.producer_id and expected_epoch == meta.last_producer_epoch
                  and expected_epoch != meta.producer_epoch)
                 or (expected_id == meta.previous_producer_id != meta.producer_id
                     and exhausted(expected_epoch) and meta.producer_epoch == 0))):
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
                   partitions: set[tuple[str, int]], now_ms: int, client_tv: int = 0) -> Decision:
    """AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition);
    ``client_tv`` 2 when a partition leader adds them for Produce v12 / TxnOffsetCommit v5."""
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
                                        txn_start_ms=start, last_update_ms=now_ms, client_tv=client_tv))


def verify_partition(meta: TxnMetadata | None, producer_id: int, producer_epoch: int,
                     partition: tuple[str, int]) -> ErrorCode:
    """KIP-890 part 1: may this producer write this partition in its transaction now?
    The coordinator's answer to a verify-only AddPartitionsToTxn, in Kafka's order of
    checks: a transactional id without this producer id is INVALID_PRODUCER_ID_MAPPING,
    another epoch PRODUCER_FENCED, a transaction being ended CONCURRENT_TRANSACTIONS, a
    partition not in the transaction TRANSACTION_ABORTABLE (the client can abort and go
    on). A partition leader passes these on as ``leader_error`` and ``abortable_for``
    say."""
    if meta is None or meta.producer_id != producer_id:
        return ErrorCode.INVALID_PRODUCER_ID_MAPPING
    if meta.producer_epoch != producer_epoch:
        return ErrorCode.PRODUCER_FENCED
    if _busy(meta):
        return ErrorCode.CONCURRENT_TRANSACTIONS
    if partition not in meta.partitions:
        return ErrorCode.TRANSACTION_ABORTABLE
    return ErrorCode.NONE


def leader_error(code: ErrorCode) -> ErrorCode:
    """The coordinator's answer to a partition leader's AddPartitionsToTxn as the leader
    passes it on (Kafka's AddPartitionsToTxnManager): the coordinator moving, loading or
    busy ending the previous transaction is the retriable NOT_ENOUGH_REPLICAS; a fenced
    producer INVALID_PRODUCER_EPOCH, which every Produce version knows."""
    if code in (ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.CONCURRENT_TRANSACTIONS):
        return ErrorCode.NOT_ENOUGH_REPLICAS
    if code == ErrorCode.PRODUCER_FENCED:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return code


def abortable_for(code: ErrorCode, version: int, abortable_from: int) -> ErrorCode:
    """TRANSACTION_ABORTABLE (KIP-890) as the request version knows it: older versions get
    INVALID_TXN_STATE, as Kafka's AddPartitionsToTxnManager converts it for them."""
    if code == ErrorCode.TRANSACTION_ABORTABLE and version < abortable_from:
        return ErrorCode.INVALID_TXN_STATE
    return code


def end_txn(meta: TxnMetadata | None, producer_id: int, producer_epoch: int, commit: bool,
            now_ms: int, v2: bool = False, new_producer_id=None) -> Decision:
    """EndTxn: Ongoing -> PrepareCommit / PrepareAbort; retries after the end answer NONE.
    ``v2`` (EndTxn v5): the epoch is bumped, see the module's docstring;
    ``new_producer_id()`` allocates the next producer id when the epoch is exhausted."""
    if v2:
        return _end_txn_v2(meta, producer_id, producer_epoch, commit, now_ms, new_producer_id)
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


def _end_txn_v2(meta: TxnMetadata | None, producer_id: int, producer_epoch: int, commit: bool,
                now_ms: int, new_producer_id) -> Decision:
    if meta is None:
        return Decision(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
    state = meta.state
    retry_on_overflow = (meta.previous_producer_id == producer_id and producer_epoch == MAX_EPOCH - 1
                         and meta.producer_epoch == 0)
    retry_on_bump = meta.producer_epoch == producer_epoch + 1
    if meta.producer_id != producer_id and not retry_on_overflow:
        return Decision(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
    if state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
        valid = retry_on_bump
    elif state in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
        valid = retry_on_bump or retry_on_overflow or producer_epoch == meta.producer_epoch
    else:
        valid = producer_epoch == meta.producer_epoch
    if not valid:
        return Decision(ErrorCode.PRODUCER_FENCED)
    retry = retry_on_bump or retry_on_overflow
    if state == TxnState.PREPARE_EPOCH_FENCE:
        return Decision(ErrorCode.CONCURRENT_TRANSACTIONS)
    if state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
        same = (state == TxnState.PREPARE_COMMIT) == commit
        return Decision(ErrorCode.CONCURRENT_TRANSACTIONS if same else ErrorCode.INVALID_TXN_STATE)
    if state in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
        same = (state == TxnState.COMPLETE_COMMIT) == commit
        if retry:
            return Decision(ErrorCode.NONE if same else ErrorCode.INVALID_TXN_STATE)
        if commit:
            return Decision(ErrorCode.INVALID_TXN_STATE)
    elif state == TxnState.EMPTY:
        if commit:
            return Decision(ErrorCode.INVALID_TXN_STATE)
    elif state != TxnState.ONGOING:
        return Decision(ErrorCode.INVALID_TXN_STATE)  # Dead
    # Ongoing (commit or abort), or an abort with no partition added (Empty, Complete*)
    empty = state != TxnState.ONGOING
    next_id = new_producer_id() if exhausted(meta.producer_epoch) else NO_PRODUCER_ID
    return Decision(target=meta.replace(
        state=TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT,
        producer_epoch=min(meta.producer_epoch + 1, MAX_EPOCH), last_producer_epoch=meta.producer_epoch,
        next_producer_id=next_id, client_tv=TV_2, last_update_ms=now_ms,
        partitions=frozenset() if empty else meta.partitions,
        txn_start_ms=now_ms if empty else meta.txn_start_ms))


def continuing_producer(meta: TxnMetadata) -> tuple[int, int]:
    """The producer id and epoch a v2 producer goes on with once its EndTxn is done."""
    if meta.next_producer_id != NO_PRODUCER_ID:
        return meta.next_producer_id, 0
    return meta.producer_id, meta.producer_epoch


def complete(meta: TxnMetadata, now_ms: int) -> TxnMetadata:
    """The markers of a Prepare* state are written: CompleteCommit / CompleteAbort. A v2
    transaction that exhausted its epoch moves to its next producer id at epoch 0."""
    done = TxnState.COMPLETE_COMMIT if meta.state == TxnState.PREPARE_COMMIT else TxnState.COMPLETE_ABORT
    if meta.client_tv >= TV_2 and meta.next_producer_id != NO_PRODUCER_ID:
        meta = meta.replace(producer_id=meta.next_producer_id, producer_epoch=0,
                            previous_producer_id=meta.producer_id, next_producer_id=NO_PRODUCER_ID)
    return meta.replace(state=done, partitions=frozenset(), last_update_ms=now_ms)


def expired(meta: TxnMetadata, now_ms: int, expiration_ms: int) -> bool:
    """transactional.id.expiration.ms: an id with no transaction open or ending, not used
    for that long, is forgotten (Kafka writes a tombstone for it)."""
    return (meta.state in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)
            and now_ms - meta.last_update_ms >= expiration_ms)


def timed_out(meta: TxnMetadata, now_ms: int) -> bool:
    return meta.state == TxnState.ONGOING and now_ms > meta.txn_start_ms + meta.timeout_ms


def abort_timed_out(meta: TxnMetadata, now_ms: int) -> TxnMetadata:
    """A timed-out transaction is aborted with the epoch bumped: its producer is fenced."""
    return _fence(meta).replace(state=TxnState.PREPARE_ABORT, last_update_ms=now_ms)

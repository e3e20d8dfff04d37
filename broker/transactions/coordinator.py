"""The transaction coordinator: the transactional ids of the ``__transaction_state``
partitions this node leads (the group coordinator's design, broker.groups.coordinator).

- Coordinator of an id: the leader of its partition (``txn_log.partition_for``). The
  topic is created on the first FindCoordinator with key_type 1, with replication factor
  min(transaction.state.log.replication.factor, live brokers) and min.insync.replicas
  capped the same way (Kafka does not cap: a deviation, so one node works).
- Loading: on leadership the partition's log is replayed into ``TxnMetadata`` (the last
  record per id wins); meanwhile its ids answer COORDINATOR_LOAD_IN_PROGRESS. A
  transaction found in PrepareCommit/PrepareAbort has its markers written again and is
  completed: the coordinator that wrote the Prepare record may have died before. Losing
  the partition drops its ids (NOT_COORDINATOR).
- Decisions are the pure state machine's (broker.transactions.state); every state
  change is written to the log and waits for the ISR before it applies. While a write
  or the markers of an id are in flight, its requests get CONCURRENT_TRANSACTIONS.
- Markers: for each partition of the transaction, the leader appends a COMMIT or ABORT
  control batch (``ReplicaManager.write_marker``) in-process when this node leads it,
  otherwise through WriteTxnMarkers on the leader's inter-node listener; retried until
  every leader took it (a deleted partition is skipped, as Kafka does). Markers on a
  ``__consumer_offsets`` partition make the group coordinator apply or drop the
  transaction's offsets (TxnOffsetCommit).
- Timeouts: every transaction.abort.timed.out.transaction.cleanup.interval.ms, Ongoing
  transactions older than their timeout are aborted with the producer epoch bumped, so
  the producer is fenced (its next request fails and it must start again).
- Expiry: every transaction.remove.expired.transaction.cleanup.interval.ms, ids without
  a transaction and unused for transactional.id.expiration.ms get a tombstone and are
  forgotten (InitProducerId then starts them afresh with a new producer id).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from kafka.protocol.producer import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
)

from odradek.broker.groups.coordinator import (
    AsyncioScheduler,
    LedPartition,
    PartitionCoordinator,
)
from odradek.broker.groups.offsets_topic import OFFSETS_TOPIC, iter_records
from odradek.broker.transactions import state as st
from odradek.broker.transactions import txn_log as tl
from odradek.broker.transactions.state import TxnMetadata, TxnState
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.peer import Peer, PeerUnavailable
from odradek.replication.tasks import Supervisor

log = structlog.get_logger(__name__)

TRANSACTION_TOPIC = tl.TRANSACTION_TOPIC
MARKER_RETRY_S = 0.2
END_TXN_WAIT_S = 10.0  # EndTxn answers once the markers are written, or after this
WRITE_TXN_MARKERS_VERSION = 1
VERIFY_VERSION = 5  # AddPartitionsToTxn with verify_only (v4+) and TRANSACTION_ABORTABLE (v5)



class TxnPartition(LedPartition):
    """One led partition of __transaction_state."""

    def __init__(self, partition):
        super().__init__(partition)
        self.coordinator_epoch: int = partition.leader_epoch
        self.ids: set[str] = set()


class TransactionCoordinator(PartitionCoordinator):
    TOPIC = TRANSACTION_TOPIC
    PARTITION = TxnPartition

    def __init__(self, broker, scheduler=None):
        self.broker = broker
        config = broker.config
        self.num_partitions: int = config["transaction.state.log.num.partitions"]
        self.replication_factor: int = config["transaction.state.log.replication.factor"]
        self.min_isr: int = config["transaction.state.log.min.isr"]
        self.segment_bytes: int = config["transaction.state.log.segment.bytes"]
        self.max_timeout_ms: int = config["transaction.max.timeout.ms"]
        self.abort_interval_ms: int = config["transaction.abort.timed.out.transaction.cleanup.interval.ms"]
        self.expiration_ms: int = config["transactional.id.expiration.ms"]
        self.expire_interval_ms: int = config["transaction.remove.expired.transaction.cleanup.interval.ms"]
        self.scheduler = scheduler or AsyncioScheduler()
        self.txns: dict[str, TxnMetadata] = {}
        self.pending: set[str] = set()  # ids with a state write or markers in flight
        self.completions: dict[str, asyncio.Task] = {}
        self.partitions: dict[int, TxnPartition] = {}
        self.peers: dict[int, Peer] = {}
        self.tasks = Supervisor("transaction_coordinator")
        self.held = True

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.tasks.spawn("abort_timed_out", self._abort_loop)
        self.tasks.spawn("expire_transactional_ids", lambda: self._every(
            self.expire_interval_ms, self.expire_ids, "transactional_id_expiry_failed"))

    async def close(self) -> None:
        for peer in self.peers.values():
            peer.close()
        await super().close()

    # -- the topic and who coordinates -------------------------------------------------
    def partition_for(self, transactional_id: str) -> int:
        return tl.partition_for(transactional_id, self.num_partitions)

    async def ensure_topic(self, wait_s: float) -> None:
        """Create ``__transaction_state`` if missing (as ``__consumer_offsets`` is)."""
        await self._ensure_state_topic(self.num_partitions, self.replication_factor, self.min_isr,
                                       self.segment_bytes, wait_s)

    def id_error(self, transactional_id: str | None) -> ErrorCode:
        return self._key_error(transactional_id, ErrorCode.INVALID_REQUEST)

    def is_local(self, transactional_id: str) -> bool:
        return not self.id_error(transactional_id)

    # -- leadership, loading -----------------------------------------------------------
    def _unload(self, p: TxnPartition) -> None:
        self.partitions.pop(p.index, None)
        if p.task is not None and not p.task.done():
            p.task.cancel()
        ids = list(p.ids)
        for tid in ids:
            self._forget(p, tid)
            task = self.completions.pop(tid, None)
            if task is not None:
                task.cancel()
            self.pending.discard(tid)
        log.info("transaction_partition_unloaded", partition=p.index, transactional_ids=len(ids))

    async def _load(self, p: TxnPartition) -> None:
        started = time.monotonic()
        loaded: dict[str, TxnMetadata | None] = {}
        async for data in self._log_chunks(p):
            for _, key, value in iter_records(data):
                if key is None:
                    continue
                try:
                    tid = tl.parse_key(key)
                    loaded[tid] = None if value is None else tl.parse_value(tid, value)
                except tl.RecordFormatError as e:
                    log.warning("transaction_record_skipped", partition=p.index, reason=str(e))
        for meta in loaded.values():
            if meta is not None:
                self._apply(p, meta)
        p.loading = False
        log.info("transaction_partition_loaded", partition=p.index, transactional_ids=len(p.ids),
                 seconds=round(time.monotonic() - started, 3))
        for tid in list(p.ids):  # a coordinator before us wrote Prepare*: finish its markers
            meta = self.txns[tid]
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._start_completion(meta)

    def _apply(self, p: TxnPartition, meta: TxnMetadata) -> None:
        self.txns[meta.transactional_id] = meta
        p.ids.add(meta.transactional_id)

    # -- writing -----------------------------------------------------------------------
    async def _persist(self, meta: TxnMetadata, tombstone: bool = False) -> ErrorCode:
        """Write ``meta`` to the id's partition (or a tombstone for its id); apply it once
        committed."""
        tid = meta.transactional_id
        p = self.partitions.get(self.partition_for(tid))
        if p is None:
            return ErrorCode.NOT_COORDINATOR
        value = None if tombstone else tl.value(meta, flexible=self.transaction_version() >= st.TV_1)
        error = await self._write_committed(p, tl.key(tid), value, self.scheduler.now_ms())
        if error:
            return error
        if tombstone:
            self._forget(p, tid)
        else:
            self._apply(p, meta)
        return ErrorCode.NONE

    def _forget(self, p: TxnPartition, tid: str) -> None:
        self.txns.pop(tid, None)
        p.ids.discard(tid)

    async def _transition(self, decision: st.Decision) -> ErrorCode:
        """Persist a decision's target under the id's pending flag; the client's answer."""
        if decision.error or decision.target is None:
            return decision.error
        tid = decision.target.transactional_id
        if decision.target == self.txns.get(tid):
            return decision.answer
        self.pending.add(tid)
        try:
            error = await self._persist(decision.target)
        finally:
            self.pending.discard(tid)
        return error or decision.answer

    def transaction_version(self) -> int:
        """The finalized transaction.version (KIP-890 part 2 at 2)."""
        return self.broker.image.features.get("transaction.version", 0)

    async def _new_producer_id(self) -> int:
        return await self.broker.next_producer_id()

    # -- the APIs ----------------------------------------------------------------------
    async def init_producer_id(self, tid: str, timeout_ms: int, expected_id: int, expected_epoch: int
                               ) -> tuple[ErrorCode, int, int]:
        error = self._busy_error(tid)
        if error:
            return error, -1, -1
        fresh = await self._new_producer_id()  # wasted when not needed: ids are plenty
        error = self._busy_error(tid)  # (checked again: that may have waited)
        if error:
            return error, -1, -1
        decision = st.init_producer_id(self.txns.get(tid), tid, timeout_ms, self.max_timeout_ms,
                                       expected_id, expected_epoch, self.scheduler.now_ms(), lambda: fresh)
        error = await self._transition(decision)
        current = self.txns.get(tid)
        if current is not None and current.state == TxnState.PREPARE_ABORT and decision.target is not None:
            self._start_completion(current)  # fenced: abort the open transaction
        if error:
            return error, -1, -1
        meta = self.txns[tid]
        return ErrorCode.NONE, meta.producer_id, meta.producer_epoch

    def _busy_error(self, tid: str) -> ErrorCode:
        """Not coordinated here (yet), or a write or markers of the id in flight."""
        error = self.id_error(tid)
        if not error and tid in self.pending:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        return error

    async def add_partitions(self, tid: str, producer_id: int, producer_epoch: int,
                             partitions: set[tuple[str, int]], client_tv: int = 0) -> ErrorCode:
        error = self._busy_error(tid)
        if error:
            return error
        decision = st.add_partitions(self.txns.get(tid), producer_id, producer_epoch, partitions,
                                     self.scheduler.now_ms(), client_tv)
        return await self._transition(decision)

    def verify(self, tid: str | None, producer_id: int, producer_epoch: int,
               partition: tuple[str, int]) -> ErrorCode | None:
        """KIP-890 part 1 for a transactional batch of the request's transactional id, as
        the partition leader answers it: None when this node does not coordinate ``tid``
        (the remote coordinator was asked; ``verify_remote``)."""
        if tid is None or not self.is_local(tid):
            return None
        return st.leader_error(st.verify_partition(self.txns.get(tid), producer_id, producer_epoch, partition))

    def check_producer(self, tid: str, producer_id: int, producer_epoch: int) -> ErrorCode | None:
        """For TxnOffsetCommit: the producer's id and epoch against the coordinator's
        (None when the id is coordinated elsewhere)."""
        if not self.is_local(tid):
            return None
        meta = self.txns.get(tid)
        if meta is None or meta.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if meta.producer_epoch != producer_epoch:
            return ErrorCode.PRODUCER_FENCED
        return ErrorCode.NONE

    async def end_txn(self, tid: str, producer_id: int, producer_epoch: int, commit: bool,
                      v2: bool = False) -> tuple[ErrorCode, int, int]:
        """The error, and (EndTxn v5, transactions v2) the producer id and epoch the
        producer goes on with: the epoch bumped, or a new producer id at epoch 0 once the
        epoch is exhausted (-1, -1 with an error)."""
        error = self._busy_error(tid)
        if error:
            return error, -1, -1
        meta = self.txns.get(tid)
        fresh = -1
        if v2 and meta is not None and st.exhausted(meta.producer_epoch):
            fresh = await self._new_producer_id()
            error = self._busy_error(tid)  # (checked again: that may have waited)
            if error:
                return error, -1, -1
        decision = st.end_txn(self.txns.get(tid), producer_id, producer_epoch, commit,
                              self.scheduler.now_ms(), v2, lambda: fresh)
        error = await self._transition(decision)
        if error:
            return error, -1, -1
        if decision.target is not None:
            task = self._start_completion(self.txns[tid])
            if task is not None:  # answer once the markers are written: the next transaction
                await asyncio.wait({task}, timeout=END_TXN_WAIT_S)  # starts without retries
        current = self.txns.get(tid)
        if current is None:
            return ErrorCode.NONE, -1, -1
        return (ErrorCode.NONE, *st.continuing_producer(current))

    # -- markers and completion ----------------------------------------------------------
    def _start_completion(self, meta: TxnMetadata) -> asyncio.Task | None:
        tid = meta.transactional_id
        task = self.completions.get(tid)
        if task is not None and not task.done():
            return task
        self.pending.add(tid)
        task = asyncio.get_running_loop().create_task(self._complete(meta))
        self.completions[tid] = task
        task.add_done_callback(lambda t: self.completions.get(tid) is t and self.completions.pop(tid))
        return task

    async def _complete(self, meta: TxnMetadata) -> None:
        tid = meta.transactional_id
        try:
            p = self.partitions.get(self.partition_for(tid))
            if p is None:
                return
            await self._write_markers(meta, p.coordinator_epoch)
            while self.partitions.get(p.index) is p:
                error = await self._persist(st.complete(meta, self.scheduler.now_ms()))
                if error in (ErrorCode.NONE, ErrorCode.NOT_COORDINATOR):
                    break
                await asyncio.sleep(MARKER_RETRY_S)
            log.debug("transaction_completed", transactional_id=tid, state=meta.state.name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("transaction_completion_failed", transactional_id=tid)
        finally:
            self.pending.discard(tid)

    async def _write_markers(self, meta: TxnMetadata, coordinator_epoch: int) -> None:
        """Every partition's leader appends the marker; retried until all did."""
        commit = meta.state == TxnState.PREPARE_COMMIT
        remaining = set(meta.partitions)
        p_index = self.partition_for(meta.transactional_id)
        while remaining:
            if p_index not in self.partitions:
                return  # no longer the coordinator: the next one finishes
            by_leader: dict[int, list[tuple[str, int]]] = {}
            for tp in sorted(remaining):
                topic = self.broker.image.topics.get(tp[0])
                part = topic.partitions.get(tp[1]) if topic is not None else None
                if part is None:
                    remaining.discard(tp)  # deleted: nothing to mark
                    continue
                by_leader.setdefault(part.leader, []).append(tp)
            results = await asyncio.gather(*(
                self._markers_to(leader, tps, meta.producer_id, meta.producer_epoch, commit,
                                 coordinator_epoch) for leader, tps in by_leader.items()))
            for done in results:
                remaining -= done
            if remaining:
                await asyncio.sleep(MARKER_RETRY_S)

    async def _markers_to(self, leader: int, tps: list[tuple[str, int]], producer_id: int,
                          producer_epoch: int, commit: bool, coordinator_epoch: int) -> set:
        """The partitions whose leader wrote the marker (others are retried)."""
        if leader == self.broker.node_id:
            results = await write_markers_locally(self.broker, producer_id, producer_epoch, commit,
                                                  coordinator_epoch, tps)
        else:
            results = await self._markers_remote(leader, tps, producer_id, producer_epoch, commit,
                                                 coordinator_epoch)
        done = set()
        for tp, error in results.items():
            if error in (ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION):
                done.add(tp)
            else:
                log.info("transaction_marker_retry", topic=tp[0], partition=tp[1], error=error.name)
        return done

    async def add_for_leader(self, tid: str, producer_id: int, producer_epoch: int,
                             tps: list[tuple[str, int]]) -> dict[tuple[str, int], ErrorCode]:
        """KIP-890 part 2: a partition leader adds partitions to a v2 producer's transaction
        (Produce v12, TxnOffsetCommit v5) before appending its transactional batch: here
        when this node coordinates ``tid``, else AddPartitionsToTxn v5 without verify_only
        to its coordinator; an error per partition, as the leader answers them."""
        if self.is_local(tid):
            error = await self.add_partitions(tid, producer_id, producer_epoch, set(tps), st.TV_2)
            return dict.fromkeys(tps, st.leader_error(error))
        return await self.verify_remote(tid, producer_id, producer_epoch, tps, add=True)

    async def verify_remote(self, tid: str, producer_id: int, producer_epoch: int,
                            tps: list[tuple[str, int]], add: bool = False) -> dict[tuple[str, int], ErrorCode]:
        """KIP-890 part 1 when another node coordinates ``tid``: AddPartitionsToTxn v5 with
        verify_only to it (``add``: without, part 2); an error per partition. When the
        coordinator cannot be asked, NOT_ENOUGH_REPLICAS (retriable), as Kafka's
        AddPartitionsToTxnManager answers."""
        unavailable = dict.fromkeys(tps, ErrorCode.NOT_ENOUGH_REPLICAS)
        node = self.coordinator_node(tid)
        peer = self._peer(node.node_id) if node is not None else None
        if peer is None:
            return unavailable
        A = AddPartitionsToTxnRequest
        topics: dict[str, list[int]] = {}
        for topic, index in tps:
            topics.setdefault(topic, []).append(index)
        request = A(transactions=[A.AddPartitionsToTxnTransaction(
            transactional_id=tid, producer_id=producer_id, producer_epoch=producer_epoch, verify_only=not add,
            topics=[A.AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in topics.items()])])
        try:
            response = await peer.send(request, VERIFY_VERSION, AddPartitionsToTxnResponse, timeout_s=5.0)
        except (PeerUnavailable, OSError):
            return unavailable
        out = {}
        for result in response.results_by_transaction:
            for t in result.topic_results:
                for part in t.results_by_partition:
                    out[(t.name, part.partition_index)] = st.leader_error(ErrorCode(part.partition_error_code))
        return {tp: out.get(tp, ErrorCode.NOT_ENOUGH_REPLICAS) for tp in tps}

    async def _markers_remote(self, leader: int, tps, producer_id, producer_epoch, commit,
                              coordinator_epoch) -> dict:
        peer = self._peer(leader)
        if peer is None:
            return {}
        topics: dict[str, list[int]] = {}
        for topic, index in tps:
            topics.setdefault(topic, []).append(index)
        M = WriteTxnMarkersRequest.WritableTxnMarker
        request = WriteTxnMarkersRequest(markers=[M(
            producer_id=producer_id, producer_epoch=producer_epoch, transaction_result=commit,
            topics=[M.WritableTxnMarkerTopic(name=t, partition_indexes=ps) for t, ps in topics.items()],
            coordinator_epoch=coordinator_epoch)])
        try:
            response = await peer.send(request, WRITE_TXN_MARKERS_VERSION, WriteTxnMarkersResponse)
        except (PeerUnavailable, OSError) as e:
            log.info("transaction_markers_unsent", leader=leader, reason=str(e))
            return {}
        out = {}
        for marker in response.markers:
            for t in marker.topics:
                for part in t.partitions:
                    out[(t.name, part.partition_index)] = ErrorCode(part.error_code)
        return out

    # -- timeouts ------------------------------------------------------------------------
    async def _abort_loop(self) -> None:
        await self._every(self.abort_interval_ms, self.abort_timed_out, "transaction_timeout_check_failed")

    async def abort_timed_out(self) -> int:
        """Abort (with an epoch bump) every Ongoing transaction past its timeout."""
        now = self.scheduler.now_ms()
        aborted = 0
        for tid, meta in list(self.txns.items()):
            if tid in self.pending or self.id_error(tid) or not st.timed_out(meta, now):
                continue
            target = st.abort_timed_out(meta, now)
            if await self._transition(st.Decision(target=target)):
                continue
            log.info("transaction_timed_out", transactional_id=tid, producer_id=meta.producer_id,
                     timeout_ms=meta.timeout_ms)
            self._start_completion(self.txns[tid])
            aborted += 1
        return aborted

    async def expire_ids(self) -> int:
        """Tombstone every id unused for transactional.id.expiration.ms."""
        now = self.scheduler.now_ms()
        removed = 0
        for tid, meta in list(self.txns.items()):
            if tid in self.pending or self.id_error(tid) or not st.expired(meta, now, self.expiration_ms):
                continue
            self.pending.add(tid)
            try:
                if await self._persist(meta, tombstone=True) == ErrorCode.NONE:
                    removed += 1
                    log.info("transactional_id_expired", transactional_id=tid, producer_id=meta.producer_id)
            finally:
                self.pending.discard(tid)
        return removed

    # -- admin ---------------------------------------------------------------------------
    def describe(self, tid: str) -> tuple[ErrorCode, TxnMetadata | None]:
        error = self.id_error(tid)
        if error:
            return error, None
        meta = self.txns.get(tid)
        return (ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, None) if meta is None else (ErrorCode.NONE, meta)

    def list(self) -> tuple[ErrorCode, list[TxnMetadata]]:
        if any(p.loading for p in self.partitions.values()):
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, []
        return ErrorCode.NONE, list(self.txns.values())


async def write_markers_locally(broker, producer_id: int, producer_epoch: int, commit: bool,
                                coordinator_epoch: int, tps) -> dict[tuple[str, int], ErrorCode]:
    """Append a marker on each partition led here and wait for the ISR; an error per
    partition. A marker on ``__consumer_offsets`` applies (or drops) the producer's
    transactional offset commits in the group coordinator."""
    replicas = broker.replicas
    out: dict[tuple[str, int], ErrorCode] = {}
    waits = []
    for topic, index in tps:
        try:
            partition, result = replicas.write_marker(topic, index, producer_id, producer_epoch, commit,
                                                      coordinator_epoch)
        except KafkaError as e:
            out[(topic, index)] = e.code
            continue
        waits.append(((topic, index), replicas.wait_committed(partition, result)))
    for tp, wait in waits:
        try:
            await wait
            out[tp] = ErrorCode.NONE
        except KafkaError as e:
            out[tp] = e.code
        except OSError:
            out[tp] = ErrorCode.KAFKA_STORAGE_ERROR
        if out[tp] == ErrorCode.NONE and tp[0] == OFFSETS_TOPIC:
            broker.groups.complete_txn_offsets(tp[1], producer_id, commit)
    return out


def client_error(code: ErrorCode, version: int, fenced_from: int) -> ErrorCode:
    """PRODUCER_FENCED (KIP-588) as the request version knows it: older versions get
    INVALID_PRODUCER_EPOCH, as Kafka answers them."""
    if code == ErrorCode.PRODUCER_FENCED and version < fenced_from:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return code

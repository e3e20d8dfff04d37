"""Follower replication: fetch the partitions this node follows from their leader.

One ``ReplicaFetcher`` per leader node, fetching all of that leader's partitions
in one Kafka Fetch (with this node's replica id, so the leader reads up to its log
end and counts the fetch offset as this follower's log end offset).

A partition that starts following (a new leader, a restart) first truncates
by OffsetForLeaderEpoch: it asks the leader where its own latest leader epoch
ended and cuts its log there (replication.partition's ``truncation_offset``, KIP-279), never at its own
high watermark, so a replica that led before the failover drops exactly the
records the new leader does not have.
A fetch offset the leader no longer has (OFFSET_OUT_OF_RANGE) is resolved the
same way, or by starting over at the leader's log start. Every other answer
carries the leader's log start offset, which the follower's log takes too.

The replica manager does the appending and the truncating (through the partition's state
machine, replication.partition): it is this module's ``FollowerLogs``, a typed interface, so
that replication does not import the broker.
"""

import asyncio
from dataclasses import dataclass
from typing import Protocol

import structlog
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
)

from odradek.protocol.errors import ErrorCode
from odradek.replication.peer import Peer, PeerUnavailable
from odradek.storage import Log

log = structlog.get_logger(__name__)

FETCH_VERSION = 12  # flexible, topic names; what we need and no more
EPOCH_VERSION = 4
FETCH_MAX_WAIT_MS = 500
FETCH_MAX_BYTES = 16 * 2**20
PARTITION_MAX_BYTES = 4 * 2**20
RETRY_S = 0.2
TRANSIENT_ERRORS = (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH,
                    ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


class FollowerLogs(Protocol):
    """What a fetcher needs of the node that follows: its logs, and where fetched data goes."""

    def follower_log(self, topic: str, index: int) -> Log | None: ...

    def latest_epoch(self, topic: str, index: int) -> int: ...

    async def truncate_follower(self, topic: str, index: int, requested_epoch: int,
                                leader_epoch: int, leader_end_offset: int) -> None: ...

    async def handle_out_of_range(self, topic: str, index: int, leader_log_start: int) -> None: ...

    def append_as_follower(self, topic: str, index: int, records, leader_high_watermark: int,
                           leader_log_start_offset: int = -1) -> None: ...


@dataclass(slots=True)
class FollowedPartition:
    topic: str
    index: int
    leader_epoch: int
    truncated: bool = False  # OffsetForLeaderEpoch done for this leadership


class ReplicaFetcher:
    def __init__(self, host: FollowerLogs, node_id: int, leader_id: int, address: tuple[str, int]):
        self.host = host
        self.node_id = node_id
        self.leader_id = leader_id
        self.peer = Peer(leader_id, address[0], address[1], from_node=node_id)
        self.partitions: dict[tuple[str, int], FollowedPartition] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    def follow(self, topic: str, index: int, leader_epoch: int) -> None:
        key = (topic, index)
        current = self.partitions.get(key)
        if current is None or current.leader_epoch != leader_epoch:
            self.partitions[key] = FollowedPartition(topic, index, leader_epoch)
            self._changed.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unfollow(self, topic: str, index: int) -> None:
        self.partitions.pop((topic, index), None)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.peer.close()

    async def _run(self) -> None:
        while True:
            try:
                if not self.partitions:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                await self._truncate([p for p in self.partitions.values() if not p.truncated])
                await self._fetch_once()
            except asyncio.CancelledError:
                raise
            except PeerUnavailable:
                await asyncio.sleep(RETRY_S)
            except Exception:
                log.exception("replica_fetcher_error", leader=self.leader_id)
                await asyncio.sleep(RETRY_S)

    async def _truncate(self, partitions: list[FollowedPartition]) -> None:
        """Cut each partition's log where the leader says our latest epoch ended."""
        ask = [(p, self.host.latest_epoch(p.topic, p.index)) for p in partitions]
        for p, epoch in ask:
            if epoch < 0:  # an empty log has nothing to disagree about
                p.truncated = True
        ask = [(p, e) for p, e in ask if e >= 0]
        if not ask:
            return
        R = OffsetForLeaderEpochRequest
        topics: dict[str, list] = {}
        for p, epoch in ask:
            topics.setdefault(p.topic, []).append(R.OffsetForLeaderTopic.OffsetForLeaderPartition(
                partition=p.index, current_leader_epoch=p.leader_epoch, leader_epoch=epoch))
        request = R(replica_id=self.node_id, topics=[R.OffsetForLeaderTopic(topic=t, partitions=ps)
                                                     for t, ps in topics.items()])
        response = await self.peer.send(request, EPOCH_VERSION, OffsetForLeaderEpochResponse)
        requested = {(p.topic, p.index): epoch for p, epoch in ask}
        for t in response.topics:
            for result in t.partitions:
                key = (t.topic, result.partition)
                p = self.partitions.get(key)
                if p is None or result.error_code != ErrorCode.NONE or key not in requested:
                    continue
                await self.host.truncate_follower(t.topic, result.partition, requested[key],
                                            result.leader_epoch, result.end_offset)
                p.truncated = True

    async def _fetch_once(self) -> None:
        ready = [p for p in self.partitions.values() if p.truncated]
        if not ready:
            await asyncio.sleep(RETRY_S)
            return
        F = FetchRequest
        topics: dict[str, list] = {}
        for p in ready:
            log_ = self.host.follower_log(p.topic, p.index)
            if log_ is None:
                continue
            topics.setdefault(p.topic, []).append(F.FetchTopic.FetchPartition(
                partition=p.index, current_leader_epoch=p.leader_epoch,
                fetch_offset=log_.log_end_offset, last_fetched_epoch=-1,
                log_start_offset=log_.log_start_offset, partition_max_bytes=PARTITION_MAX_BYTES))
        if not topics:
            await asyncio.sleep(RETRY_S)
            return
        request = F(replica_id=self.node_id, max_wait_ms=FETCH_MAX_WAIT_MS, min_bytes=1,
                    max_bytes=FETCH_MAX_BYTES, isolation_level=0, session_id=0, session_epoch=-1,
                    topics=[F.FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()],
                    forgotten_topics_data=[], rack_id="")
        response = await self.peer.send(request, FETCH_VERSION, FetchResponse,
                                         timeout_s=FETCH_MAX_WAIT_MS / 1000 + 10)
        transient = False
        for t in response.responses:
            for data in t.partitions:
                p = self.partitions.get((t.topic, data.partition_index))
                if p is None:
                    continue
                if data.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    p.truncated = False  # ask the leader again where we stand
                    await self.host.handle_out_of_range(t.topic, p.index, data.log_start_offset)
                elif data.error_code == ErrorCode.NONE:
                    self.host.append_as_follower(t.topic, p.index, data.records, data.high_watermark,
                                                 data.log_start_offset)
                elif data.error_code in TRANSIENT_ERRORS:
                    transient = True  # the metadata will tell us who leads now, or the
                    # leader has not created the partition yet
                else:
                    log.warning("follower_fetch_error", topic=t.topic, partition=p.index,
                                error=ErrorCode(data.error_code).name)
                    transient = True
        if transient:
            await asyncio.sleep(RETRY_S)  # errors come back at once; do not spin

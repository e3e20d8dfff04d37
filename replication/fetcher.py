"""Follower replication's I/O: the requests a follower sends to the leader it fetches from.

One ``ReplicaFetcher`` per leader node: it sends OffsetForLeaderEpoch and Fetch (with this
node's replica id, so the leader reads up to its log end and counts the fetch offset as this
follower's log end offset) for the partitions it is given, all of that leader's in one
request, and returns the answers. It decides nothing: which partitions it follows, what it
asks and what the answers mean are the replica manager's loop (broker/replica_manager.py,
``_replicate``) and each partition's state machine (replication.partition: the truncation
by OffsetForLeaderEpoch before fetching under a new leadership, KIP-279, the fetch offset,
the leader's high watermark and log start offset).
"""

import asyncio
from dataclasses import dataclass

from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
)

from odradek.replication.peer import Peer

FETCH_VERSION = 12  # flexible, topic names; what we need and no more
EPOCH_VERSION = 4
FETCH_MAX_WAIT_MS = 500
FETCH_MAX_BYTES = 16 * 2**20
PARTITION_MAX_BYTES = 4 * 2**20


@dataclass(frozen=True, slots=True)
class EpochQuery:
    """Ask the leader where our latest ``epoch`` ended in its log, as a follower of it at
    ``current_leader_epoch``."""

    topic: str
    index: int
    current_leader_epoch: int
    epoch: int


@dataclass(frozen=True, slots=True)
class FetchTarget:
    """Fetch a partition from ``fetch_offset`` (our log end) as a follower at ``current_leader_epoch``."""

    topic: str
    index: int
    current_leader_epoch: int
    fetch_offset: int
    log_start_offset: int


class ReplicaFetcher:
    """The connection to one leader, and the partitions followed from it (``partitions``, kept
    by the replica manager; ``task`` is its loop that fetches them)."""

    def __init__(self, node_id: int, leader_id: int, address: tuple[str, int]):
        self.node_id = node_id
        self.leader_id = leader_id
        self.peer = Peer(leader_id, address[0], address[1], from_node=node_id)
        self.partitions: dict[tuple[str, int], None] = {}  # followed from this leader, in order
        self._changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    def follow(self, topic: str, index: int) -> None:
        self.partitions[(topic, index)] = None
        self._changed.set()

    def unfollow(self, topic: str, index: int) -> None:
        self.partitions.pop((topic, index), None)

    async def followed(self) -> list[tuple[str, int]]:
        """The partitions followed from this leader, once there are any."""
        while not self.partitions:
            self._changed.clear()
            await self._changed.wait()
        return list(self.partitions)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.peer.close()

    async def offsets_for_leader_epoch(self, queries: list[EpochQuery]) -> list:
        """The leader's answers, (topic, OffsetForLeaderPartitionResult) pairs.
        PeerUnavailable if the leader cannot be reached."""
        R = OffsetForLeaderEpochRequest
        topics: dict[str, list] = {}
        for q in queries:
            topics.setdefault(q.topic, []).append(R.OffsetForLeaderTopic.OffsetForLeaderPartition(
                partition=q.index, current_leader_epoch=q.current_leader_epoch, leader_epoch=q.epoch))
        request = R(replica_id=self.node_id, topics=[R.OffsetForLeaderTopic(topic=t, partitions=ps)
                                                     for t, ps in topics.items()])
        response = await self.peer.send(request, EPOCH_VERSION, OffsetForLeaderEpochResponse)
        return [(t.topic, result) for t in response.topics for result in t.partitions]

    async def fetch(self, targets: list[FetchTarget]) -> list:
        """One Fetch of these partitions (the leader waits up to FETCH_MAX_WAIT_MS for data):
        (topic, PartitionData) pairs. PeerUnavailable if the leader cannot be reached."""
        F = FetchRequest
        topics: dict[str, list] = {}
        for t in targets:
            topics.setdefault(t.topic, []).append(F.FetchTopic.FetchPartition(
                partition=t.index, current_leader_epoch=t.current_leader_epoch,
                fetch_offset=t.fetch_offset, last_fetched_epoch=-1,
                log_start_offset=t.log_start_offset, partition_max_bytes=PARTITION_MAX_BYTES))
        request = F(replica_id=self.node_id, max_wait_ms=FETCH_MAX_WAIT_MS, min_bytes=1,
                    max_bytes=FETCH_MAX_BYTES, isolation_level=0, session_id=0, session_epoch=-1,
                    topics=[F.FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()],
                    forgotten_topics_data=[], rack_id="")
        response = await self.peer.send(request, FETCH_VERSION, FetchResponse,
                                         timeout_s=FETCH_MAX_WAIT_MS / 1000 + 10)
        return [(t.topic, data) for t in response.responses for data in t.partitions]

"""The metadata log replicated by the controller quorum: the Raft core's driver.

A node is a voter (process.roles=broker,controller) or an observer (process.roles=broker):
an observer replicates the log without a vote (see raft.py). The leader learns an
observer's address from the ``reply_to`` its Raft messages carry. This driver owns one ``RaftNode`` and is the only code that
calls it: inputs (Raft messages from peers, proposals, timer ticks) go through one
queue and one task, and every ``Ready`` is handled in the order the core demands:
persist and fsync (``RaftStore``, in a thread, off the event loop), then send the
messages to the peers, then apply committed entries to the metadata image.

A DATA entry is one controller commit: a JSON list of metadata records, applied
to the image atomically. A snapshot is the image itself, written as the records
that rebuild it (``MetadataImage.to_records``), so there is one format.

The active controller is the Raft leader once it has applied an entry of its own
term (the leader-change entry): before that its image may miss entries committed
by earlier leaders, and validating admin requests against it could, say, create
a topic twice.

For the same reason a restarted node is not ``caught_up`` until it has applied
what the quorum had committed when it first heard from a leader (or became the
active controller itself): its snapshot may be far behind, and a broker that led
or followed partitions by that stale image could acknowledge writes at an old
leader epoch and truncate replicas by them (Kafka's metadata loader also
publishes nothing until it reaches the leader's high watermark).
"""

import asyncio
import json
import random
import time
from collections.abc import Callable

import structlog

from odradek.protocol.internode import RAFT_API_KEY
from odradek.replication.controller import ForgedSender, NotController
from odradek.replication.metadata import record_from_dict, record_to_dict
from odradek.replication.peer import Peer, PeerUnavailable
from odradek.replication.raft import NotLeader, RaftConfig, RaftNode
from odradek.replication.raft_codec import message_from_dict, message_to_dict
from odradek.replication.raft_messages import AppendRequest, EntryKind, Ready
from odradek.replication.raft_store import RaftStore
from odradek.replication.tasks import Supervisor

log = structlog.get_logger(__name__)

SNAPSHOT_BYTES = 20 * 2**20  # metadata.log.max.record.bytes.between.snapshots default


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def commit_known(node: RaftNode, message) -> int | None:
    """What the quorum has committed, if ``message`` (just stepped into ``node``) tells it:
    the leader_commit of an AppendRequest from the current leader that covers an entry of
    the leader's own term.  A new leader's earlier requests carry the commit index it had
    when elected, which after a restart of the whole quorum is 0 (Kafka's leader likewise
    has no high watermark until it commits in its epoch)."""
    if (isinstance(message, AppendRequest) and message.from_ == node.leader_id
            and message.term == node.term and node.term_at(message.leader_commit) == message.term):
        return message.leader_commit
    return None


class RaftMetadataLog:
    def __init__(self, node_id: int, directory_id: str, voters: dict[int, tuple[str, int]],
                 directory: str, *, apply_records: Callable[[list, int], None],
                 restore_image: Callable[[list, int], None], image_records: Callable[[], list],
                 config: RaftConfig | None = None, snapshot_bytes: int = SNAPSHOT_BYTES,
                 observer: bool = False):
        self.node_id = node_id
        self.observer = observer
        # On an observer: where the leader reaches this node's inter-node listener (the
        # broker sets it once its listeners are bound).
        self.reply_to: tuple[str, int] | None = None
        self.directory_id = directory_id
        self.voters = voters
        self.store = RaftStore(directory)
        self.apply_records = apply_records
        self.restore_image = restore_image
        self.image_records = image_records
        self.config = config or RaftConfig()
        # Raft messages and controller operations travel on separate connections: a
        # node answers one connection's requests in order, and an operation waiting
        # for a commit must never hold up the Raft acks that commit needs.
        self.raft_peers = {nid: Peer(nid, host, port, from_node=node_id)
                           for nid, (host, port) in voters.items() if nid != node_id}
        self.peers = {nid: Peer(nid, host, port, from_node=node_id)
                      for nid, (host, port) in voters.items() if nid != node_id}
        self.node: RaftNode | None = None
        self._inputs: asyncio.Queue = asyncio.Queue()
        self._proposals: dict[int, tuple[int, asyncio.Future]] = {}
        self._applied = 0
        self._snapshot_index = 0
        self.snapshot_bytes = snapshot_bytes
        self._bytes_since_snapshot = 0
        self._active_term = -1
        self.tasks = Supervisor(f"raft node {node_id}")
        self.leader_changed = asyncio.Event()  # set (and cleared) whenever the leader changes
        self._known_leader: int | None = None
        self.caught_up = asyncio.Event()  # see the module docstring
        self._catch_up_index: int | None = None  # the first leader's commit index we heard
        self._confirmations: list[tuple[int, asyncio.Future]] = []  # (asked at ms, answer)

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        state = await asyncio.to_thread(self.store.load)
        if state.snapshot is not None:
            self.restore_image(self._decode(state.snapshot.data), state.snapshot.last_index)
            self._applied = self._snapshot_index = state.snapshot.last_index
        self.node = RaftNode(self.node_id, self.directory_id, self.voters, now_ms=_now_ms(),
                             rng=random.Random(), config=self.config, state=state,
                             observer=self.observer)
        self.tasks.spawn("driver", self._run)

    async def stop(self) -> None:
        """Hand leadership over if we have it, then stop (controlled shutdown)."""
        if self.node is not None and self.node.is_leader:
            self._inputs.put_nowait(("resign", None))
            await asyncio.sleep(self.config.heartbeat_interval_ms * 3 / 1000)
        await self.tasks.close()
        for peer in [*self.raft_peers.values(), *self.peers.values()]:
            peer.close()
        self.store.close()

    # -- what the controller uses ---------------------------------------------
    @property
    def leader_id(self) -> int | None:
        return self.node.leader_id if self.node is not None else None

    @property
    def is_active(self) -> bool:
        return self.node is not None and self.node.is_leader and self._active_term == self.node.term

    @property
    def active_term(self) -> int:
        """The term this node leads as the active controller (-1 when it does not)."""
        return self._active_term if self.is_active else -1

    def describe(self) -> dict:
        """DescribeQuorum's view: leader, term, commit index, the progress of the voters
        and of the observers (known on the leader only)."""
        node = self.node
        progress = node.replica_progress() if node.is_leader else {}

        def state(node_id: int, directory_id: str | None) -> dict:
            if node_id == self.node_id:
                log_end, fetch_ms = node.last_index + 1, -1
            elif node_id in progress:
                log_end, fetch_ms = progress[node_id]
                log_end += 1
            else:
                log_end, fetch_ms = -1, -1
            return {"node_id": node_id, "directory_id": directory_id, "log_end_offset": log_end,
                    "last_fetch_ms": fetch_ms, "last_caught_up_ms": fetch_ms}

        return {"leader_id": -1 if node.leader_id is None else node.leader_id,
                "leader_epoch": node.term, "high_watermark": node.commit_index + 1,
                "voters": [state(n, d) for n, d in sorted(node.voters.items())],
                "observers": [state(n, None) for n in node.observers] if node.is_leader else []}

    def receive(self, payload: dict, sender: int | None = None) -> None:
        """A Raft message from a peer (the RAFT inter-node handler calls this). ``sender``:
        the node that authenticated, when nodes authenticate as themselves; a message that
        names another sender raises ForgedSender and never reaches the core, which takes
        the sender a message names as true. An observer's message carries ``reply_to``, its
        inter-node address: a voter's address never changes here."""
        message = message_from_dict(payload)
        if sender is not None and message.from_ != sender:
            raise ForgedSender(f"node {sender} claims node {message.from_} (Raft {type(message).__name__})")
        reply_to = payload.get("reply_to")
        if reply_to is not None and message.from_ not in self.voters:
            host, port = reply_to
            known = self.raft_peers.get(message.from_)
            if known is None or (known.host, known.port) != (host, port):
                if known is not None:
                    known.close()
                self.raft_peers[message.from_] = Peer(message.from_, host, port, from_node=self.node_id)
        self._inputs.put_nowait(("message", message))

    async def append(self, records: list) -> None:
        """Commit ``records`` as one entry; returns once committed and applied here."""
        if not self.is_active:
            raise NotController(self.leader_id)
        data = json.dumps([record_to_dict(r) for r in records], separators=(",", ":")).encode()
        fut = asyncio.get_running_loop().create_future()
        self._inputs.put_nowait(("propose", (data, fut)))
        await fut

    async def confirm_leadership(self) -> None:
        """Return once a quorum has acknowledged this node as leader after the call
        (``RaftNode.quorum_contact_ms``); NotController if it stops leading first."""
        if not self.is_active:
            raise NotController(self.leader_id)
        fut = asyncio.get_running_loop().create_future()
        self._confirmations.append((_now_ms(), fut))
        await fut

    def _answer_confirmations(self) -> None:
        node, waiting = self.node, self._confirmations
        contact = node.quorum_contact_ms()
        self._confirmations = []
        for asked_at, fut in waiting:
            if fut.done():
                continue
            if contact is None:
                fut.set_exception(NotController(node.leader_id))
            elif contact >= asked_at:
                fut.set_result(None)
            else:
                self._confirmations.append((asked_at, fut))

    # -- the driver loop ---------------------------------------------------------
    async def _run(self) -> None:
        node = self.node
        while True:
            try:
                timeout = max(0, node.deadline_ms - _now_ms()) / 1000
                try:
                    item = await asyncio.wait_for(self._inputs.get(), timeout)
                except TimeoutError:
                    item = None
                while item is not None:
                    self._input(item)
                    item = self._inputs.get_nowait() if not self._inputs.empty() else None
                node.tick(_now_ms())
                while ready := node.drain():
                    await self._handle(ready)
                self._note_leader()
                self._answer_confirmations()
                if not self.caught_up.is_set() and (
                        self.is_active or (self._catch_up_index is not None
                                           and self._applied >= self._catch_up_index)):
                    log.info("metadata_caught_up", node_id=self.node_id, index=self._applied)
                    self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("raft_driver_error", node_id=self.node_id)
                await asyncio.sleep(0.1)

    def _input(self, item) -> None:
        kind, value = item
        node = self.node
        if kind == "message":
            node.step(value, _now_ms())
            if self._catch_up_index is None:
                self._catch_up_index = commit_known(node, value)
        elif kind == "propose":
            data, fut = value
            try:
                index = node.propose(data)
            except NotLeader as e:
                fut.set_exception(NotController(e.leader_id))
                return
            self._proposals[index] = (node.term, fut)
        elif kind == "resign":
            node.resign(_now_ms())

    async def _handle(self, ready: Ready) -> None:
        await asyncio.to_thread(self.store.apply, ready)
        for message in ready.messages:
            # Held and logged if a send fails unexpectedly, not retried: Raft retransmits
            # from its current state, and an old message sent again late is only noise.
            self.tasks.spawn(f"send to {message.to}", lambda m=message: self._send(m), retries=0)
        if ready.restore is not None:
            self.restore_image(self._decode(ready.restore.data), ready.restore.last_index)
            self._applied = self._snapshot_index = ready.restore.last_index
            log.info("metadata_snapshot_installed", node_id=self.node_id, index=self._applied)
        for entry in ready.committed:
            if entry.kind is EntryKind.DATA:
                self.apply_records([record_from_dict(d) for d in json.loads(entry.data)], entry.index)
                self._bytes_since_snapshot += len(entry.data)
            if self.node.is_leader and entry.term == self.node.term:
                self._active_term = entry.term
            self._applied = entry.index
            pending = self._proposals.pop(entry.index, None)
            if pending is not None and not pending[1].done():
                term, fut = pending
                if entry.term == term:
                    fut.set_result(entry.index)
                else:
                    fut.set_exception(NotController(self.leader_id))
        if self._bytes_since_snapshot >= self.snapshot_bytes and self._applied > self._snapshot_index:
            # The image as records replaces the log up to here; a follower that needs
            # what was dropped gets the snapshot instead.
            self._snapshot_index, self._bytes_since_snapshot = self._applied, 0
            self.node.compact(self._applied, self._encode(self.image_records()))
            log.info("metadata_snapshot", node_id=self.node_id, index=self._applied)

    def _note_leader(self) -> None:
        leader = self.node.leader_id
        if leader != self._known_leader:
            self._known_leader = leader
            log.info("quorum_leader", node_id=self.node_id, leader=leader, term=self.node.term)
            self.leader_changed.set()
            self.leader_changed.clear()
        if not self.node.is_leader:
            self._active_term = -1
            for index, (_, fut) in list(self._proposals.items()):
                if not fut.done():
                    fut.set_exception(NotController(leader))
                del self._proposals[index]

    async def _send(self, message) -> None:
        peer = self.raft_peers.get(message.to)
        if peer is None:
            return
        payload = message_to_dict(message)
        if self.reply_to is not None:
            payload["reply_to"] = list(self.reply_to)
        try:
            await peer.request(RAFT_API_KEY, payload, timeout_s=self.config.election_timeout_ms / 1000)
        except PeerUnavailable:
            pass  # Raft resends what matters

    @staticmethod
    def _encode(records: list) -> bytes:
        return json.dumps([record_to_dict(r) for r in records], separators=(",", ":")).encode()

    @staticmethod
    def _decode(data: bytes) -> list:
        return [record_from_dict(d) for d in json.loads(data)] if data else []

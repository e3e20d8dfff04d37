"""The broker process: wires the listeners, the metadata log, the controller,
the partition logs and the group coordinator together.

Start-up order matters: the metadata log is replayed (one node) or joins the
quorum (a cluster) before the listeners open, so the first Metadata request
already sees this node's topics; registration with the active controller and the
heartbeats then run in the background, because a cluster's controller may not be
elected yet and this node must listen to take part in that election. Until it is
registered and caught up (``ready``) it has no cluster to describe: Metadata waits
for that a while (see the metadata handler), so clients of a new cluster are served
as soon as it forms.
"""

import asyncio
import errno
import json
import os
import signal

import structlog

from odradek.broker import config as cfg
from odradek.broker import sasl, tls
from odradek.broker.authorizer import Authorizer
from odradek.broker.config import ConfigError
from odradek.broker.groups import GroupCoordinator
from odradek.broker.handlers import load_handlers
from odradek.broker.http import HttpListener
from odradek.broker.loop_lag import LoopLagMonitor
from odradek.broker.meta_properties import FILE as META_FILE
from odradek.broker.meta_properties import adopt_cluster_id, load_or_create, new_uuid
from odradek.broker.metrics import BrokerStats, new_registry
from odradek.broker.peer_auth import peer_security
from odradek.broker.quotas import ClientQuotas
from odradek.broker.replica_manager import ReplicaManager
from odradek.broker.server import (
    ConnectionLimits,
    RequestMemory,
    close_idle_connections,
    start_listeners,
)
from odradek.broker.share.coordinator import ShareCoordinator
from odradek.broker.share.manager import ShareManager, group_config_error
from odradek.broker.transactions import TransactionCoordinator
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication import peer
from odradek.replication.controller import Controller, LocalMetadataLog, NewTopic
from odradek.replication.metadata import BROKER, ConfigRecord, MetadataImage
from odradek.replication.tasks import Supervisor
from odradek.storage.handles import limit_advice, raise_soft_limit
from odradek.storage.io import FaultyIO
from odradek.storage.manager import LogManager

log = structlog.get_logger(__name__)

METADATA_DIR = "__cluster_metadata"  # not <topic>-<partition>: no partition log
REGISTRATION_RETRY_S = 0.5
READY_WAIT_S = 5.0  # how long Metadata waits for this node to be ready (registered, caught up)
# How long a request that has no timeout of its own (InitProducerId, FindCoordinator) waits
# for the controller before it answers a retriable error; the controller call goes on.
CONTROLLER_WAIT_S = 1.0
TEST_FAULTS_ENV = "ODRADEK_TEST_FAULTS"  # test-only, see fault_io_for_tests


def fault_io_for_tests() -> tuple[FaultyIO, str] | None:
    """Test-only fault hook for the reliability suite (tests/reliability/nemesis.py).

    A live broker process cannot be reached by the FaultyIO objects the storage
    tests pass in, so when ODRADEK_TEST_FAULTS names a JSON file the partition logs
    get a FaultyIO and ``poll_test_faults`` applies that file to it every 100 ms:
    ``{"write_error": "ENOSPC" | "EIO" | null, "fsync_delay": seconds,
    "fsync_error": "EIO" | null}``. Without the variable nothing changes.
    """
    path = os.environ.get(TEST_FAULTS_ENV)
    return (FaultyIO(), path) if path else None


def log_descriptor_budget(logs: LogManager, soft: int, hard: int) -> None:
    """At start: the open-file limit and the segment files' share of it, with what to raise
    when it is small for the partitions here."""
    budget, partitions = logs.open_files.capacity, len(logs.logs)
    log.info("descriptor_budget", open_file_limit=soft, hard_limit=hard,
             segment_descriptors=budget, partitions=partitions)
    advice = limit_advice(soft, budget, partitions)
    if advice is not None:
        log.warning("open_file_limit_low", hint=advice)


async def poll_test_faults(io: FaultyIO, path: str) -> None:
    """Apply the fault file to io whenever it changes (see fault_io_for_tests)."""
    def errno_of(name):
        return getattr(errno, name) if name else None
    applied: dict = {}
    while True:
        try:
            with open(path) as f:
                faults = json.load(f)
        except (OSError, ValueError):
            faults = {}
        if faults != applied:
            io.write_error = errno_of(faults.get("write_error"))
            io.fsync_error = errno_of(faults.get("fsync_error"))
            io.fsync_delay = float(faults.get("fsync_delay") or 0)
            applied = faults
            log.warning("test_faults_applied", faults=faults)
        await asyncio.sleep(0.1)


class Lease:
    """This node's right to coordinate groups, renewed by every answered broker heartbeat.

    The controller fences a broker it has not heard from for broker.session.timeout.ms
    and gives its partitions new leaders. A lease runs that long from when a heartbeat
    was *sent*, so it lapses before the controller can fence on it. While it has
    lapsed the group coordinator lets go of its groups (GroupCoordinator.hold): cut off
    from the controller, or just back from a network partition with a stale image,
    it would answer committed offsets its groups have moved past. It takes them up
    again once a heartbeat is answered and the image has caught up with the
    controller's at that moment, which holds the outcome: who leads what now.

    Partition leadership does not depend on the lease, as in Kafka: a leader whose
    followers are all down keeps serving reads; clients that send their leader epoch
    (KIP-320) are refused by a stale leader, and no write to one is acknowledged
    with acks=all.
    """

    def __init__(self, coordinators: list, image: MetadataImage, session_timeout_ms: int):
        self.coordinators = coordinators  # the group and transaction coordinators
        self.image = image
        self.session_s = session_timeout_ms / 1000
        self._timer: asyncio.TimerHandle | None = None
        self._resume_at: int | None = None  # image offset to reach before coordinating again

    def renewed(self, sent_at: float, controller_offset: int) -> None:
        """A heartbeat sent at ``sent_at`` (loop time) was answered."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(sent_at + self.session_s, self._lapsed)
        if not self.coordinators[0].held and self._resume_at is None:
            self._resume_at = controller_offset
        self._resume_if_caught_up()

    def on_metadata(self, records: list) -> None:
        """(A controller subscriber.) The image moved: it may have caught up."""
        self._resume_if_caught_up()

    def _resume_if_caught_up(self) -> None:
        """Coordinate again once the image has reached the offset a heartbeat returned."""
        if self._resume_at is not None and self.image.offset >= self._resume_at:
            self._resume_at = None
            log.info("lease_renewed", image_offset=self.image.offset)
            for coordinator in self.coordinators:
                coordinator.hold(True)

    def _lapsed(self) -> None:
        self._timer = self._resume_at = None
        log.warning("lease_lapsed", session_timeout_s=self.session_s,
                    reason="no heartbeat answered by the controller: coordinating no group until one is")
        for coordinator in self.coordinators:
            coordinator.hold(False)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class Broker:
    def __init__(self, config: cfg.BrokerConfig, data_dir: str):
        self.config = config
        self.data_dir = os.path.abspath(data_dir)
        self.node_id: int = config["node.id"]
        self.handlers = load_handlers()
        self.image = MetadataImage()
        self.authorizer = Authorizer.from_config(config, self.image)  # None: ACLs are off
        self.quotas = ClientQuotas(lambda: self.image.client_quotas)
        self.connections: set = set()
        self.limits = ConnectionLimits(config)
        self.request_memory = RequestMemory(config["queued.max.request.bytes"], self.connections)
        self.servers: list[asyncio.AbstractServer] = []
        self.meta = None
        self.controller: Controller | None = None
        self.metadata_log = None  # a LocalMetadataLog, or a cluster's RaftMetadataLog
        self.replicas: ReplicaManager | None = None
        self.shares: ShareManager | None = None
        self.groups: GroupCoordinator | None = None
        self.transactions: TransactionCoordinator | None = None
        self.share_coordinator: ShareCoordinator | None = None
        self.registered = asyncio.Event()
        self.ready = asyncio.Event()  # registered, and the image caught up and holding this node
        self.lease: Lease | None = None  # a cluster node's, see Lease
        self._producer_ids: range = range(0)
        self._allocating: asyncio.Task | None = None  # a block of producer ids on its way
        self._creating: dict[str, asyncio.Task] = {}  # topics being created in the background
        self.tasks = Supervisor("broker")
        self.loop_lag = LoopLagMonitor()  # loop_lag.max_lag_ms(): the longest stall in a minute
        self.faults = None  # odradek.testing.faults.Faults on a node started by odradek.testing
        # hot-path counters (the rest is read at scrape time), for topics that exist
        self.stats = BrokerStats(lambda name: name in self.image.topics)
        self.metrics_registry = new_registry(self)
        self.http: HttpListener | None = None
        self._stopping = False

    @property
    def cluster_id(self) -> str | None:
        """The cluster's id: the quorum's once committed (None until then)."""
        return self.image.cluster_id or self.meta.cluster_id

    @property
    def controller_id(self) -> int:
        """What clients are told is the controller: this node. Every node forwards admin
        requests to the active controller, so a client never waits on a dead one after
        a failover (KRaft answers the same way). DescribeQuorum names the real one."""
        return self.node_id

    @property
    def active_controller_id(self) -> int:
        """The quorum's leader, which carries out admin requests (-1 while there is none)."""
        leader = self.metadata_log.leader_id if self.metadata_log is not None else None
        return -1 if leader is None else leader

    def _new_metadata_log(self):
        directory = os.path.join(self.data_dir, METADATA_DIR)
        if not self.config.voters:
            return LocalMetadataLog(directory, self.node_id, self.controller.apply_committed)
        # Imported here: a single node never runs Raft, and starts faster without importing it.
        from odradek.replication.quorum import RaftMetadataLog
        from odradek.replication.raft import RaftConfig

        election_ms = self.config["controller.quorum.election.timeout.ms"]
        return RaftMetadataLog(
            self.node_id, self.meta.directory_id, self.config.voters, os.path.join(directory, "raft"),
            apply_records=self.controller.apply_committed, restore_image=self.controller.restore,
            image_records=self.image.to_records,
            config=RaftConfig(election_timeout_ms=election_ms,
                              heartbeat_interval_ms=max(10, election_ms // 10)),
            snapshot_bytes=self.config["metadata.log.max.record.bytes.between.snapshots"],
            observer=not self.config.is_voter)

    def _validate_group_configs(self, changes: dict[str, str | None]) -> None:
        """Kafka's group config names, types and consumer bounds, then the share keys'
        values that Odradek's share groups serve (ValueError: INVALID_CONFIG)."""
        cfg.validate_group_configs(changes, self.config)
        problem = group_config_error(self.config, changes)
        if problem is not None:
            raise ValueError(problem)

    async def start(self) -> None:
        security = peer_security(self.config)  # how this node dials its peers, if secured
        if security is not None:
            peer.SECURITY[self.node_id] = security
        new_data_dir = not os.path.exists(os.path.join(self.data_dir, META_FILE))
        self.meta = load_or_create(self.data_dir, self.node_id,
                                   generate_cluster_id=not self.config.voters)
        self.controller = Controller(
            self.image, num_partitions=self.config["num.partitions"],
            default_replication_factor=self.config["default.replication.factor"],
            validate_topic_configs=cfg.validate_topic_configs,
            validate_broker_configs=cfg.validate_broker_configs,
            validate_group_configs=self._validate_group_configs,
            broker_session_timeout_ms=self.config["broker.session.timeout.ms"],
            unclean_leader_election=self.config["unclean.leader.election.enable"],
            delete_topic_enable=self.config["delete.topic.enable"])
        self.metadata_log = self._new_metadata_log()
        self.controller.metadata_log = self.metadata_log
        faults = fault_io_for_tests()
        soft, hard = raise_soft_limit()  # before the logs open: their budget derives from it
        self.replicas = ReplicaManager(self.config, self.image, self.node_id, self.data_dir,
                                       controller=self.controller, io=faults and faults[0],
                                       on_flush=self.stats.flush.observe)
        log_descriptor_budget(self.replicas.log_manager, soft, hard)
        if faults:
            self.tasks.spawn("test_faults", lambda: poll_test_faults(*faults))
        # First: the others see the dynamic broker configs the same records set.
        self.controller.subscribers.append(self._apply_dynamic_configs)
        self.controller.subscribers.append(self.replicas.on_metadata)
        self.controller.subscribers.append(self._check_cluster_id)
        if self.authorizer is not None:
            self.controller.subscribers.append(self.authorizer.on_metadata)
        self.groups = GroupCoordinator(self)
        self.shares = ShareManager(self)
        self.controller.subscribers.append(self.shares.on_metadata)
        self.groups.start()  # before the replicas start: it follows their leadership from the first
        self.transactions = TransactionCoordinator(self)
        self.transactions.start()
        self.share_coordinator = ShareCoordinator(self)
        self.share_coordinator.start()
        await self.metadata_log.start()
        self.replicas.start(self.metadata_log.caught_up)
        self.servers = await start_listeners(self)
        self.tasks.spawn("close_idle_connections", lambda: close_idle_connections(self))
        if new_data_dir and self.config.scram_seeds:
            self.tasks.spawn("seed_scram", self._seed_scram, retries=20)
        endpoints = {name: (lst.host, lst.port) for name, lst in self.config.advertised_listeners.items()}
        # A port of 0 binds an ephemeral port; advertise the one we got.
        for server, listener in zip(self.servers, self.config.listeners, strict=True):
            if endpoints[listener.name][1] == 0:
                endpoints[listener.name] = (endpoints[listener.name][0],
                                            server.sockets[0].getsockname()[1])
        if getattr(self.metadata_log, "observer", False):
            self.metadata_log.reply_to = endpoints[self.config.inter_broker_listener_name]
        await self._start_http()
        self.tasks.spawn("become_ready", self._become_ready)
        if self.config.voters:
            self.lease = Lease([self.groups, self.transactions, self.share_coordinator], self.image, self.config["broker.session.timeout.ms"])
            self.controller.subscribers.append(self.lease.on_metadata)
            self.tasks.spawn("register_and_heartbeat", lambda: self._register_and_heartbeat(endpoints))
            self.tasks.spawn("fencing", self.controller.run_fencing)
            if self.config["auto.leader.rebalance.enable"]:
                self.tasks.spawn("leader_rebalance", lambda: self.controller.run_leader_rebalance(
                    self.config["leader.imbalance.check.interval.seconds"],
                    self.config["leader.imbalance.per.broker.percentage"]))
        else:
            await self.controller.register_broker(self.node_id, endpoints, rack=self.config["broker.rack"],
                                                  cluster_id=self.meta.cluster_id)
            self.registered.set()
        for server, listener in zip(self.servers, self.config.listeners, strict=True):
            host, port = server.sockets[0].getsockname()[:2]
            log.info("listening", listener=listener.name, address=f"{host}:{port}")
        if self.config.internode_listeners >= {lst.name for lst in self.config.listeners}:
            log.warning("listener_shared_with_clients", listeners=sorted(self.config.internode_listeners),
                        hint="clients can send inter-node requests here; give other nodes a listener "
                             "of their own (inter.broker.listener.name) and the voters its port")
        if self.config.voters and self.config.peer_principals is not None \
                and self.config.node_ids_by_principal is None:
            log.warning("node_identity_shared", principals=sorted(self.config.peer_principals) or "any verified",
                        hint="any node's credentials can speak for every node; give each node its own "
                             "principal and list them in node.principals")
        self.tasks.spawn("loop_lag", self.loop_lag.run)
        log.info("started", node_id=self.node_id, cluster_id=self.cluster_id, data_dir=self.data_dir,
                 voters=sorted(self.config.voters) or None)

    async def _start_http(self) -> None:
        """Open http.listener. The default address may be taken by another node on this
        host (a local cluster, tests): that only logs a warning; a configured one must bind."""
        address = self.config["http.listener"].strip()
        if not address:
            return
        host, port = cfg.parse_host_port(address, "http.listener")
        http = HttpListener(self, host, port)
        try:
            await http.start()
        except OSError as e:
            if "http.listener" in self.config.explicit:
                raise
            log.warning("http_listener_unavailable", address=address, error=str(e),
                        hint="set http.listener to a free HOST:PORT, or empty to turn it off")
            return
        self.http = http

    def is_ready(self) -> bool:
        """/readyz: registered (still: the controller may forget a fenced node), caught up
        with the metadata log, every listener serving, not stopping."""
        return (self.ready.is_set() and self.registered.is_set() and not self._stopping
                and bool(self.servers)
                and all(s.is_serving() for s in self.servers))

    def _apply_dynamic_configs(self, records: list) -> None:
        """(A controller subscriber.) Dynamic broker configs committed for this node or for
        every node take effect at once: the topic defaults of every hosted log, connection
        quotas, producer expiry, the controller's unclean election default."""
        if not any(isinstance(r, ConfigRecord) and r.resource_type == BROKER
                   and r.resource_name in ("", str(self.node_id)) for r in records):
            return
        changed = self.config.set_dynamic(self.image.configs.get((BROKER, ""), {}),
                                          self.image.configs.get((BROKER, str(self.node_id)), {}))
        if not changed:
            return
        log.info("dynamic_broker_configs_applied", keys=changed)
        listeners = {split[0] for split in map(cfg.listener_key, changed) if split is not None}
        if listeners & self.config.ssl_contexts.keys():
            self.tasks.spawn("reload_tls", lambda: self.reload_tls(listeners), retries=0)
        self.limits.reconfigure(self.config)
        self.controller.unclean_leader_election = self.config["unclean.leader.election.enable"]
        self.replicas.reconfigure()

    def _check_cluster_id(self, records: list) -> None:
        """Keep meta.properties' cluster id in step with the quorum's (refusing a foreign one)."""
        if self.image.cluster_id and self.image.cluster_id != self.meta.cluster_id:
            try:
                self.meta = adopt_cluster_id(self.data_dir, self.meta, self.image.cluster_id)
            except ConfigError as e:
                log.error("foreign_data_dir", node_id=self.node_id, error=str(e))
                os.kill(os.getpid(), signal.SIGTERM)  # refuse to serve another cluster's data

    async def _become_ready(self) -> None:
        """Set ``ready`` once this node is registered and its image has caught up with the
        quorum and holds this node's registration (forwarded, it lands here a moment later)."""
        await self.metadata_log.caught_up.wait()
        await self.registered.wait()
        while self.node_id not in self.image.brokers:
            await asyncio.sleep(REGISTRATION_RETRY_S / 10)
        self.ready.set()
        log.info("ready", node_id=self.node_id, brokers=sorted(self.image.brokers))

    async def _register_and_heartbeat(self, endpoints: dict) -> None:
        """Register with the active controller, then heartbeat (each answer renews the
        lease); re-register if it forgot us."""
        interval = self.config["broker.heartbeat.interval.ms"] / 1000
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not self.registered.is_set():
                    await self.controller.register_broker(
                        self.node_id, endpoints, rack=self.config["broker.rack"],
                        cluster_id=self.meta.cluster_id or new_uuid())
                    self.registered.set()
                    log.info("registered", node_id=self.node_id, controller=self.active_controller_id)
                    continue  # heartbeat at once: that renews the lease
                sent_at = loop.time()
                controller_offset = await self.controller.heartbeat(self.node_id)
                if controller_offset is None:
                    self.registered.clear()
                    continue
                self.lease.renewed(sent_at, controller_offset)
            except KafkaError as e:
                log.warning("controller_unreachable", node_id=self.node_id, error=e.message)
                await asyncio.sleep(REGISTRATION_RETRY_S)
                continue
            except Exception:
                log.exception("registration_failed", node_id=self.node_id)
                await asyncio.sleep(REGISTRATION_RETRY_S)
                continue
            await asyncio.sleep(interval)

    async def next_producer_id(self) -> int:
        """A producer id never handed out before, from a block the controller committed.

        Without a block this waits CONTROLLER_WAIT_S for one, then raises
        COORDINATOR_LOAD_IN_PROGRESS, which clients retry, while the block is still
        asked for (Kafka's RPCProducerIdManager answers the same while it waits).
        """
        if not self._producer_ids:
            if self._allocating is None:
                self._allocating = asyncio.get_running_loop().create_task(self._allocate_producer_ids())
            await asyncio.wait({self._allocating}, timeout=CONTROLLER_WAIT_S)
            if not self._producer_ids:
                raise KafkaError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                                 "Waiting for a block of producer ids from the controller")
        producer_id, self._producer_ids = self._producer_ids[0], self._producer_ids[1:]
        return producer_id

    async def _allocate_producer_ids(self) -> None:
        try:
            self._producer_ids = await self.controller.allocate_producer_ids()
        except KafkaError as e:
            log.warning("producer_ids_not_allocated", error=e.code.name, message=e.message)
        finally:
            self._allocating = None

    def create_topic_in_background(self, topic: NewTopic) -> asyncio.Task:
        """Ask the controller to create ``topic`` without holding up the request that wants
        it (auto-creation, ``__consumer_offsets``); one attempt per topic at a time. The
        task's result is the error, or None once created."""
        task = self._creating.get(topic.name)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._create_topic(topic))
            self._creating[topic.name] = task
            task.add_done_callback(lambda _: self._creating.pop(topic.name, None))
        return task

    async def _create_topic(self, topic: NewTopic) -> KafkaError | None:
        try:
            [error] = await self.controller.create_topics([topic])
        except KafkaError as e:
            error = e
        if error is None:
            log.info("topic_created", topic=topic.name)
        elif error.code != ErrorCode.TOPIC_ALREADY_EXISTS:  # else our image is behind
            log.warning("topic_not_created", topic=topic.name, error=error.code.name, message=error.message)
        return error

    async def validate_listener_ssl(self, changes: dict[str, str | None], replace: bool) -> None:
        """Before a change of this node's listener key or trust stores is committed (Kafka's
        broker validates its own dynamic configs the same way): the new stores must load
        and keep the certificate's subject and names (tls.check_store_change). A refusal is
        INVALID_REQUEST with Kafka's message; nothing changes."""
        listeners = {split[0] for split in map(cfg.listener_key, changes)
                     if split is not None and split[1] in cfg.DYNAMIC_SSL_CONFIGS}
        listeners &= self.config.ssl_contexts.keys()  # Kafka ignores other listeners' keys
        if not listeners:
            return
        try:
            changed = self.config.with_listener_changes(changes, replace)
            for name in sorted(listeners):
                await asyncio.to_thread(tls.check_store_change, self.config, changed, name)
        except ConfigError as e:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             "Invalid value org.apache.kafka.common.config.ConfigException: Validation of "
                             f"dynamic config update of SSLFactory failed: {e} for configuration Invalid "
                             "dynamic configuration") from None

    async def reload_tls(self, listeners: set[str] | None = None) -> None:
        """Read the TLS listeners' key and trust stores again, so certificates are replaced
        without a restart: on SIGHUP (the same files, rewritten) and when this node's
        listener.name.<listener>.ssl.* keys change at run time (kafka-configs --alter, as in
        Kafka; then only ``listeners``).

        Each listener gets a new context, made off the loop from the files as they are now,
        as Kafka's SslFactory makes a new engine factory: new connections get the new
        certificate and trust only the new trust store's CAs (loading into the running
        context could only add CAs); open connections keep theirs. A store that does not
        load leaves the listener's context as it was. The inter-node listener's new stores
        also make the client context this node dials its peers with."""
        for name in list(self.config.ssl_contexts):
            if listeners is not None and name not in listeners:
                continue
            try:
                ctx = await asyncio.to_thread(tls.server_context, self.config, name)
                security = None
                if name == self.config.inter_broker_listener_name:
                    security = await asyncio.to_thread(peer_security, self.config)
            except ConfigError as e:
                log.error("tls_reload_failed", listener=name, error=str(e))
                continue
            self.config.ssl_contexts[name] = ctx  # looked up by each new connection
            if security is not None:
                peer.SECURITY[self.node_id] = security  # looked up by each new peer connection
            log.info("tls_reloaded", listener=name)

    async def _seed_scram(self) -> None:
        """serve --add-scram on a new data dir, as Kafka's format --add-scram (KIP-900): once
        ready, the users the metadata log lacks are created through the controller (every
        node of a new cluster may ask; the first wins). Later starts never seed, so what
        admins changed since stays changed."""
        await self.ready.wait()
        loop = asyncio.get_running_loop()
        for mechanism, name, password, iterations in self.config.scram_seeds:
            if (name, sasl.SCRAM_MECHANISMS[mechanism]) in self.image.scram:
                continue
            credential = await loop.run_in_executor(  # PBKDF2: CPU, off the loop
                None, sasl.credential_from_password, mechanism, password, iterations)
            await self.controller.alter_scram_credentials([], [credential.record_fields(name, mechanism)])
            log.info("scram_seeded", user=name, mechanism=mechanism)

    async def stop(self) -> None:
        self._stopping = True
        if self.config.voters and self.registered.is_set():
            try:  # controlled shutdown: leadership moves before this node goes
                await asyncio.wait_for(self.controller.controlled_shutdown(self.node_id), 2.0)
            except (KafkaError, TimeoutError) as e:
                log.warning("controlled_shutdown_failed", node_id=self.node_id, error=str(e))
        self.tasks.cancel()
        if self.lease is not None:
            self.lease.close()
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.transport.abort()
        for server in self.servers:
            await server.wait_closed()
        await self.transactions.close()
        await self.share_coordinator.close()
        await self.groups.close()
        await self.replicas.close()
        await self.metadata_log.stop()
        if self.http is not None:
            await self.http.close()
        log.info("stopped", node_id=self.node_id)

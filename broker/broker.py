"""The broker process: wires the listeners, the controller and (later) storage together."""

import asyncio
import os

import structlog

from broker import config as cfg
from broker.groups import GroupCoordinator
from broker.handlers import load_handlers
from broker.meta_properties import load_or_create
from broker.replica_manager import ReplicaManager
from broker.server import start_listeners
from replication.controller import Controller, LocalMetadataLog
from replication.metadata import MetadataImage

log = structlog.get_logger(__name__)

METADATA_DIR = "__cluster_metadata"  # not <topic>-<partition>: no partition log


class Broker:
    def __init__(self, config: cfg.BrokerConfig, data_dir: str):
        self.config = config
        self.data_dir = os.path.abspath(data_dir)
        self.node_id: int = config["node.id"]
        self.handlers = load_handlers()
        self.connections: set = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.image = MetadataImage()
        self.meta = None
        self.controller: Controller | None = None
        self.replicas: ReplicaManager | None = None
        self.groups: GroupCoordinator | None = None
        self._producer_ids: range = range(0)

    @property
    def cluster_id(self) -> str:
        return self.meta.cluster_id

    @property
    def controller_id(self) -> int:
        """The node that carries out admin requests (this one, until the quorum exists)."""
        return self.node_id

    async def start(self) -> None:
        self.meta = load_or_create(self.data_dir, self.node_id)
        self.controller = Controller(
            LocalMetadataLog(os.path.join(self.data_dir, METADATA_DIR)), self.image,
            num_partitions=self.config["num.partitions"],
            default_replication_factor=self.config["default.replication.factor"],
            validate_topic_configs=cfg.validate_topic_configs)
        self.controller.load()
        self.replicas = ReplicaManager(self.config, self.image, self.node_id, self.data_dir)
        self.controller.subscribers.append(self.replicas.on_metadata)
        self.groups = GroupCoordinator(self)
        self.groups.start()  # before the replicas start: it follows their leadership from the first
        self.replicas.start()
        endpoints = {name: (lst.host, lst.port) for name, lst in self.config.advertised_listeners.items()}
        self.servers = await start_listeners(self)
        # A port of 0 binds an ephemeral port; advertise the one we got.
        for server, listener in zip(self.servers, self.config.listeners, strict=False):
            if endpoints[listener.name][1] == 0:
                endpoints[listener.name] = (endpoints[listener.name][0],
                                            server.sockets[0].getsockname()[1])
        await self.controller.register_broker(self.node_id, endpoints)
        for server, listener in zip(self.servers, self.config.listeners, strict=False):
            host, port = server.sockets[0].getsockname()[:2]
            log.info("listening", listener=listener.name, address=f"{host}:{port}")
        log.info("started", node_id=self.node_id, cluster_id=self.cluster_id, data_dir=self.data_dir)

    async def next_producer_id(self) -> int:
        """A producer id never handed out before, from a block the controller committed."""
        if not self._producer_ids:
            self._producer_ids = await self.controller.allocate_producer_ids()
        producer_id, self._producer_ids = self._producer_ids[0], self._producer_ids[1:]
        return producer_id

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.transport.abort()
        for server in self.servers:
            await server.wait_closed()
        await self.groups.close()
        await self.replicas.close()
        self.controller.metadata_log.close()
        log.info("stopped", node_id=self.node_id)

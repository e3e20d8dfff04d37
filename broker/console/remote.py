"""``odradek console --bootstrap HOST:PORT``: the web console, run apart from any broker.

A node's console (``views.Local``) reads that node's own state; this one asks any
Kafka-compatible cluster, Kafka itself included, through the requests the ``odradek``
commands already send (broker.cli.admin: Metadata, DescribeCluster, DescribeQuorum,
ListOffsets, DescribeLogDirs, DescribeConfigs, ListGroups, DescribeGroups,
OffsetFetch) and a consumer for the message browser. The pages and JSON are the same
(``app``, ``pages``); what no Kafka request tells is left blank, not made up:

- bytes and messages in/out per topic are broker counters (JMX in Kafka): the topics
  page leaves them empty, and the throughput chart plots how fast the partitions'
  leaders' logs grow (DescribeLogDirs), bytes per second in, nothing out;
- a client's connections are listed by no request: that page says so;
- a group's generation and leader are not in DescribeGroups.

Each view runs its blocking client calls in a thread (one admin client a view: a
console is asked for a page every few seconds at most, and a fresh client follows
the cluster's current leaders and coordinators); the charts are sampled while the
console is in use (``history.Sampler``), as on a node.
"""

import argparse
import asyncio
import signal
import sys

import kafka.errors as Errors
import structlog
from kafka import KafkaConsumer, TopicPartition

from odradek.broker.cli import admin as cli
from odradek.broker.cli.output import CliError
from odradek.broker.console import views
from odradek.broker.console.history import History, Sampler, partition_lags
from odradek.broker.http import TEXT, HttpServer

log = structlog.get_logger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9405"  # beside http.listener's 9404


class Remote:
    """The console's views (as ``views.Local`` gives them) from a cluster's answers."""

    def __init__(self, bootstrap: str, timeout: float):
        self.args = argparse.Namespace(bootstrap=bootstrap, timeout=timeout, verbose=False)
        self.label = f"cluster at {bootstrap}"
        self.actions = False  # no authorizer of its own: read-only (HttpServer.post)

    def _with(self, **extra) -> argparse.Namespace:
        return argparse.Namespace(**vars(self.args), **extra)

    async def cluster(self) -> dict:
        return await asyncio.to_thread(self._cluster)

    def _cluster(self) -> dict:
        with cli.admin(self.args) as a:
            described = a.describe_cluster()
            topics = a.describe_topics()
        try:
            quorum, _ = cli._node_view(self.args, with_metadata=False)
        except CliError:  # a cluster with ZooKeeper, or a broker that does not forward it
            quorum = None
        live = {b["broker_id"]: b for b in described["brokers"]}
        under_replicated, offline = [], []
        for t in topics:
            for p in t["partitions"]:
                row = {"topic": t["name"], "partition": p["partition_index"], "leader": p["leader_id"],
                       "replicas": p["replica_nodes"], "isr": p["isr_nodes"]}
                if p["leader_id"] not in live or live[p["leader_id"]].get("is_fenced"):
                    offline.append(row)
                elif len(p["isr_nodes"]) < len(p["replica_nodes"]):
                    under_replicated.append(row)
        return {
            "cluster_id": described["cluster_id"], "node_id": None,
            "active_controller": quorum["leader_id"] if quorum else described["controller_id"],
            "nodes": [{"node_id": b["broker_id"], "fenced": b.get("is_fenced", False), "rack": b["rack"],
                       "endpoints": {"advertised": f"{b['host']}:{b['port']}"}}
                      for b in sorted(live.values(), key=lambda b: b["broker_id"])],
            "quorum": quorum, "topics": len(topics),
            "partitions": sum(len(t["partitions"]) for t in topics),
            "under_replicated": under_replicated, "offline": offline,
        }

    async def topics(self) -> dict:
        return await asyncio.to_thread(self._topics)

    def _topics(self) -> dict:
        with cli.admin(self.args) as a:
            topics = a.describe_topics()
            sizes = cli._log_sizes(a)
        rows = []
        for t in sorted(topics, key=lambda t: t["name"]):
            parts = t["partitions"]
            rows.append({
                "name": t["name"], "internal": t["is_internal"], "partitions": len(parts),
                "replication_factor": max((len(p["replica_nodes"]) for p in parts), default=0),
                "under_replicated": sum(len(p["isr_nodes"]) < len(p["replica_nodes"]) for p in parts),
                "size_here": sum(sizes.get((t["name"], p["partition_index"]), {}).get(p["leader_id"], 0)
                            for p in parts),
                "bytes_in": None, "bytes_out": None, "messages_in": None})
        return {"topics": rows}

    async def topic(self, name: str) -> dict | None:
        return await asyncio.to_thread(self._topic, name)

    def _topic(self, name: str) -> dict | None:
        try:
            [described] = cli.topics_describe(self._with(topics=[name])).data
        except CliError as e:
            if e.kafka_error is Errors.UnknownTopicOrPartitionError:
                return None
            raise
        configs = cli.configs_describe(self._with(topic=name, broker=None, all=False)).data
        return {"name": name, "topic_id": described["topic_id"], "configs": {
                    k: v["value"] for k, v in configs.items()},
                "partitions": [{"partition": p["partition"], "leader": p["leader"],
                                "leader_epoch": p["leader_epoch"], "replicas": p["replicas"],
                                "isr": p["isr"], "here": True, "log_start_offset": p["log_start_offset"],
                                "high_watermark": p["log_end_offset"],  # ListOffsets LATEST
                                "size": p["size_bytes"] or 0} for p in described["partitions"]]}

    async def groups(self) -> dict:
        return await asyncio.to_thread(self._groups)

    def _groups(self) -> dict:
        rows = []
        for g in cli.groups_list(self.args).data:
            detail = self._group(g["group"])
            if detail is not None:
                rows.append({"group_id": g["group"], "state": detail["state"],
                             "protocol_type": detail["protocol_type"], "protocol": detail["protocol"],
                             "members": len(detail["members"]),
                             "lag": sum(o["lag"] or 0 for o in detail["offsets"])})
        return {"groups": rows, "note": ""}

    async def group(self, group_id: str) -> dict | None:
        return await asyncio.to_thread(self._group, group_id)

    def _group(self, group_id: str) -> dict | None:
        try:
            d = cli.groups_describe(self._with(group=group_id)).data
        except CliError as e:
            if e.kafka_error is Errors.GroupIdNotFoundError:
                return None
            raise
        if d["state"] == "Dead":
            return None
        return {"group_id": group_id, "state": d["state"], "generation_id": "", "leader": None,
                "protocol_type": d["protocol_type"] or "", "protocol": d["protocol"] or "",
                "members": [{"member_id": m["member_id"], "group_instance_id": m["group_instance_id"],
                             "client_id": m["client_id"], "client_host": m["host"],
                             "assignment": m["partitions"]} for m in d["members"]],
                "offsets": [{"topic": o["topic"], "partition": o["partition"],
                             "committed": o["committed_offset"], "lag": o["lag"]}
                            for o in d["offsets"] if o["committed_offset"] is not None]}

    async def connections(self) -> dict:
        return {"node_id": None, "connections": [],
                "note": "No Kafka request lists a broker's connections: open a node's own console "
                        "(http.listener) or run `odradek cluster connections --http ...`."}

    async def records(self, name: str, partition: int, offset: int | None, timestamp: int | None,
                      count: int) -> dict | None:
        return await asyncio.to_thread(self._records, name, partition, offset, timestamp, count)

    def _records(self, name: str, partition: int, offset: int | None, timestamp: int | None,
                 count: int) -> dict | None:
        count = max(1, min(count, views.MAX_RECORDS))
        consumer = KafkaConsumer(bootstrap_servers=self.args.bootstrap.split(","), enable_auto_commit=False,
                                 client_id=cli.CLIENT_ID, request_timeout_ms=int(self.args.timeout * 1000) + 1,
                                 consumer_timeout_ms=int(self.args.timeout * 1000))
        try:
            known = consumer.partitions_for_topic(name)
            if known is None:
                return None
            view = {"topic": name, "partition": partition, "start": None, "records": [], "note": ""}
            if partition not in known:
                return {**view, "note": "no such partition"}
            tp = TopicPartition(name, partition)
            consumer.assign([tp])
            low, high = consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
            if timestamp is not None:
                found = consumer.offsets_for_times({tp: timestamp})[tp]
                start = found.offset if found is not None else high
            else:
                start = offset if offset is not None else high - 10
            start = min(max(start, low), high)
            rows: list[dict] = []
            if start < high:
                consumer.seek(tp, start)
                for r in consumer:  # ends after consumer_timeout_ms without a record
                    rows.append({"offset": r.offset, "timestamp": r.timestamp, "key": views.shown(r.key),
                                 "value": views.shown(r.value),
                                 "headers": {k: views.shown(v) for k, v in r.headers}})
                    if len(rows) == count or r.offset + 1 >= high:
                        break
            return {**view, "start": start, "records": rows}
        finally:
            consumer.close()

    def sample(self) -> tuple[dict, dict]:
        """For the charts: each topic's bytes on its leaders (growth ~ bytes in; nothing
        tells bytes out) and each group's lag per partition."""
        topic_bytes = {t["name"]: (t["size_here"], 0) for t in self._topics()["topics"]}
        lags = {}
        for g in cli.groups_list(self.args).data:
            detail = self._group(g["group"])
            if detail is not None:
                lags[g["group"]] = partition_lags({(o["topic"], o["partition"]): o["lag"]
                                                   for o in detail["offsets"]})
        return topic_bytes, lags


class ConsoleServer(HttpServer):
    """The console alone on an HTTP address: /console (and / leads there)."""

    def __init__(self, remote: Remote, host: str, port: int):
        super().__init__(host, port)
        self.remote = remote
        self.history = History()
        self.tasks: set[asyncio.Task] = set()
        self.sampler = Sampler(self.history, lambda: asyncio.to_thread(remote.sample), self._spawn)

    def _spawn(self, run) -> None:
        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("console_sampler_failed", error=str(task.exception()))

    async def route(self, target: bytes, query: bytes) -> tuple[int, bytes, str]:
        if target == b"/":
            target = b"/console"
        if target == b"/console" or target.startswith(b"/console/"):
            return await self.console(self.remote, target, query)
        return 404, b"not found: /console\n", TEXT


async def serve(args) -> int:
    from odradek.broker.config import ConfigError, parse_host_port

    try:
        host, port = parse_host_port(args.listen, "--listen")
    except ConfigError as e:
        print(f"odradek: error: {e}", file=sys.stderr)
        return 2
    server = ConsoleServer(Remote(args.bootstrap, args.timeout), host, port)
    try:
        await server.start()
    except OSError as e:
        print(f"odradek: error: cannot listen on {args.listen}: {e.strerror}; give a free "
              "address with --listen HOST:PORT", file=sys.stderr)
        return 1
    print(f"console of {args.bootstrap} at http://{host}:{server.port}/console", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in list(server.tasks):
        task.cancel()
    await server.close()
    return 0


def run(args) -> int:
    """``odradek console``: serve until SIGTERM or SIGINT (exit 0)."""
    if not args.verbose:
        import logging

        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    return asyncio.run(serve(args))

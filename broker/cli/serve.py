"""The ``odradek`` command (also ``python -m odradek.broker``).

    odradek serve --data-dir DIR --listen HOST:PORT [--advertised HOST:PORT]
                  [--node-id N] [--config FILE] [-o KEY=VALUE ...]

Settings are Kafka's keys: built-in defaults, then --config (a server.properties
file), then each -o, then the shorthands --listen, --advertised and --node-id.
A bad setting exits with status 2 and a message naming it; SIGTERM or SIGINT stops
the broker cleanly (exit 0).
"""

import argparse
import asyncio
import gc
import signal
import sys

import structlog
import uvloop

from odradek.broker import logs
from odradek.broker.config import BrokerConfig, ConfigError, parse_properties

STOP_TIMEOUT_S = 4.0  # operators (and tests) expect a stop within 5 s


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="odradek", description="A Kafka-compatible broker.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a broker node")
    serve.add_argument("--data-dir", default="./data", help="where logs and metadata live")
    serve.add_argument("--listen", help="HOST:PORT of the one listener (default 127.0.0.1:9092)")
    serve.add_argument("--advertised", help="HOST:PORT clients should connect to")
    serve.add_argument("--node-id", type=int, help="this node's id (default 1)")
    serve.add_argument("--voters", help="ID@HOST:PORT,... of every controller voter (a cluster); "
                                        "each address is that node's inter-node listener")
    serve.add_argument("--config", help="a Java properties file with Kafka's keys")
    serve.add_argument("-o", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="set one configuration key (repeatable)")
    cluster = sub.add_parser("cluster", help="inspect a running cluster")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    status = cluster_sub.add_parser("status", help="voters, active controller, partition leaders and ISRs")
    status.add_argument("--bootstrap", default="127.0.0.1:9092", help="HOST:PORT of any node")
    return parser


def build_config(args: argparse.Namespace) -> BrokerConfig:
    settings: dict[str, str] = {}
    if args.config:
        try:
            with open(args.config) as f:
                settings.update(parse_properties(f.read(), args.config))
        except OSError as e:
            raise ConfigError(f"cannot read --config {args.config}: {e.strerror}") from None
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-o {item!r}: expected KEY=VALUE")
        settings[key.strip()] = value
    if args.listen:
        settings["listeners"] = f"PLAINTEXT://{args.listen}"
    if args.advertised:
        settings["advertised.listeners"] = f"PLAINTEXT://{args.advertised}"
    if args.node_id is not None:
        settings["node.id"] = str(args.node_id)
    if args.voters:
        settings["controller.quorum.voters"] = args.voters
    return BrokerConfig(settings)


async def serve(config: BrokerConfig, data_dir: str) -> None:
    from odradek.broker.broker import Broker  # imported here so `--help` stays fast

    log = structlog.get_logger("odradek")
    broker = Broker(config, data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    # Everything loaded so far (kafka-python's schema classes, the metadata image)
    # lives as long as the process: keep full collections from rescanning it.
    gc.freeze()
    await stop.wait()
    log.info("stopping")
    try:
        await asyncio.wait_for(broker.stop(), STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("stop_timed_out", timeout_s=STOP_TIMEOUT_S)


def cluster_status(bootstrap: str) -> int:
    """Print the quorum and every partition's leader and ISR, from any node."""
    from kafka.protocol.admin import DescribeQuorumRequest, DescribeQuorumResponse
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse

    from odradek.broker.client import KafkaConnection

    try:
        with KafkaConnection(bootstrap) as conn:
            quorum = conn.roundtrip(DescribeQuorumRequest(topics=[DescribeQuorumRequest.TopicData(
                topic_name="__cluster_metadata", partitions=[
                    DescribeQuorumRequest.TopicData.PartitionData(partition_index=0)])]),
                2, DescribeQuorumResponse)
            metadata = conn.roundtrip(MetadataRequest(topics=None, allow_auto_topic_creation=False),
                                      12, MetadataResponse)
    except OSError as e:
        print(f"odradek: error: cannot reach {bootstrap}: {e}; is a node listening there?",
              file=sys.stderr)
        return 1
    q = quorum.topics[0].partitions[0]
    print(f"cluster {metadata.cluster_id}")
    print(f"active controller: {q.leader_id if q.leader_id >= 0 else 'none'} "
          f"(epoch {q.leader_epoch}, metadata high watermark {q.high_watermark})")
    print("voters:")
    for v in q.current_voters:
        print(f"  {v.replica_id}  log end offset {v.log_end_offset}")
    print("brokers:")
    for b in sorted(metadata.brokers, key=lambda b: b.node_id):
        print(f"  {b.node_id}  {b.host}:{b.port}")
    print("partitions:")
    for t in sorted(metadata.topics, key=lambda t: t.name):
        for p in sorted(t.partitions, key=lambda p: p.partition_index):
            print(f"  {t.name}-{p.partition_index}  leader {p.leader_id}  epoch {p.leader_epoch}  "
                  f"replicas {list(p.replica_nodes)}  isr {list(p.isr_nodes)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "cluster":
        return cluster_status(args.bootstrap)
    try:
        config = build_config(args)
    except ConfigError as e:
        print(f"odradek: error: {e}", file=sys.stderr)
        return 2
    logs.configure(json=config["log.json"], level=config["log.level"])
    try:
        uvloop.run(serve(config, args.data_dir))
    except ConfigError as e:
        print(f"odradek: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"odradek: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

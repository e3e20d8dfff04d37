"""The ``odradek`` command (also ``python -m odradek.broker``).

    odradek serve ...                      run a node (broker.cli.serve)
    odradek topics list|describe|create|alter|delete
    odradek configs describe|set|delete
    odradek groups list|describe|reset-offsets|delete
    odradek produce TOPIC / odradek consume TOPIC
    odradek cluster status|quorum|nodes|connections
    odradek acls ... / odradek users ...
    odradek console [--listen HOST:PORT]  the web console, apart from any node

Everything but ``serve`` talks the Kafka protocol to any Kafka-compatible cluster
(``--bootstrap``, default ``$ODRADEK_BOOTSTRAP`` or 127.0.0.1:9092) and prints tables, or
one JSON document with ``--json``. Exit status: 0 done, 1 an error whose message says
what to do, 2 a usage error. ``cluster connections`` reads the nodes' HTTP listeners
(``--http``), since no Kafka request lists a broker's connections.
"""

import argparse
import os
import sys

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_HTTP = "127.0.0.1:9404"  # http.listener's default


def _common() -> argparse.ArgumentParser:
    """The options of every cluster command, accepted after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", default=os.environ.get("ODRADEK_BOOTSTRAP", DEFAULT_BOOTSTRAP),
                        help="HOST:PORT[,HOST:PORT...] of any nodes (default $ODRADEK_BOOTSTRAP "
                             f"or {DEFAULT_BOOTSTRAP})")
    common.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    common.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for the cluster (default 10)")
    common.add_argument("-v", "--verbose", action="store_true", help="show the client library's log")
    return common


def _resource_args(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--topic", help="a topic's configs")
    which.add_argument("--broker", type=int, metavar="NODE_ID", help="a broker's configs")


def _parser() -> argparse.ArgumentParser:
    from odradek.broker.cli import serve

    parser = argparse.ArgumentParser(prog="odradek", description="A Kafka-compatible broker, "
                                     "and the commands to run any Kafka-compatible cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run a broker node")
    s.add_argument("--data-dir", default="./data", help="where logs and metadata live")
    s.add_argument("--listen", help="HOST:PORT of the one listener (default 127.0.0.1:9092)")
    s.add_argument("--advertised", help="HOST:PORT clients should connect to")
    s.add_argument("--node-id", type=int, help="this node's id (default 1)")
    s.add_argument("--voters", help="ID@HOST:PORT,... of every controller voter (a cluster); "
                                    "each address is that node's inter-node listener")
    s.add_argument("--config", help="a Java properties file with Kafka's keys")
    s.add_argument("-o", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set one configuration key (repeatable)")
    s.add_argument("--add-scram", action="append", default=[], metavar="SPEC",
                   help="on a new data dir, create a SCRAM user as kafka-storage format "
                        "--add-scram does: 'SCRAM-SHA-256=[name=alice,password=secret]' (repeatable)")
    s.set_defaults(run=serve.run)

    common = [_common()]
    from odradek.broker.cli import admin, records, security

    def group(name: str, help: str):
        p = sub.add_parser(name, help=help)
        return p.add_subparsers(dest=f"{name}_command", required=True)

    def leaf(parent, name: str, fn, help: str):
        p = parent.add_parser(name, help=help, parents=common)
        p.set_defaults(report=fn)
        return p

    topics = group("topics", "list, describe, create, alter and delete topics")
    p = leaf(topics, "list", admin.topics_list, "every topic with its partition count")
    p.add_argument("--internal", action="store_true", help="include internal topics")
    p = leaf(topics, "describe", admin.topics_describe,
             "partitions with leaders, ISR, offsets and sizes; the topic's configs")
    p.add_argument("topics", nargs="*", metavar="TOPIC", help="default: every topic")
    p = leaf(topics, "create", admin.topics_create, "create a topic")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--partitions", type=int, default=-1, help="default: the brokers' num.partitions")
    p.add_argument("--replication-factor", type=int, default=-1,
                   help="default: the brokers' default.replication.factor")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="a topic config (repeatable)")
    p.add_argument("--validate-only", action="store_true", help="check, create nothing")
    p = leaf(topics, "alter", admin.topics_alter, "grow a topic's partitions")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--partitions", type=int, required=True, help="the new total")
    p.add_argument("--validate-only", action="store_true", help="check, change nothing")
    p = leaf(topics, "delete", admin.topics_delete, "delete topics")
    p.add_argument("topics", nargs="+", metavar="TOPIC")

    configs = group("configs", "describe, set and delete topic and broker configs")
    p = leaf(configs, "describe", admin.configs_describe, "the configs set (--all: every key)")
    _resource_args(p)
    p.add_argument("--all", action="store_true", help="every key, defaults included")
    p = leaf(configs, "set", admin.configs_set, "set keys (IncrementalAlterConfigs)")
    _resource_args(p)
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    p = leaf(configs, "delete", admin.configs_delete, "return keys to their defaults")
    _resource_args(p)
    p.add_argument("keys", nargs="+", metavar="KEY")

    groups = group("groups", "list, describe, reset offsets of and delete consumer groups")
    leaf(groups, "list", admin.groups_list, "every group with its state")
    p = leaf(groups, "describe", admin.groups_describe, "members, committed offsets and lag")
    p.add_argument("group", metavar="GROUP")
    p = leaf(groups, "reset-offsets", admin.groups_reset_offsets,
             "move a group's committed offsets (a dry run unless --execute)")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("--topic", action="append", default=[], metavar="TOPIC[:P,P...]",
                   help="partitions to reset (repeatable; default every partition of the topic)")
    p.add_argument("--all-topics", action="store_true", help="every partition the group committed")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-offset", type=int, metavar="N")
    to.add_argument("--to-datetime", metavar="TIME", help="ms since the epoch or ISO 8601")
    to.add_argument("--shift-by", type=int, metavar="N", help="from the committed offset (+/-)")
    p.add_argument("--execute", action="store_true", help="commit the new offsets")
    p = leaf(groups, "delete", admin.groups_delete, "delete empty groups")
    p.add_argument("groups", nargs="+", metavar="GROUP")

    p = sub.add_parser("produce", help="produce lines of stdin or a file as records", parents=common)
    p.set_defaults(run=records.produce)
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--file", help="read this file instead of stdin (with a progress bar)")
    p.add_argument("--key-separator", metavar="SEP", help="KEY SEP VALUE on each line")
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE",
                   help="a header on every record (repeatable)")
    p.add_argument("--partition", type=int, help="default: by key, as the client partitions")
    p.add_argument("--acks", choices=["0", "1", "all"], default="all")
    p.add_argument("--progress", action="store_true", help="a progress bar even when not a terminal")

    p = sub.add_parser("consume", help="print records", parents=common)
    p.set_defaults(run=records.consume)
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--partition", type=int, help="one partition (default: all)")
    p.add_argument("--offset", help="earliest, latest or N (with --partition); default: the "
                                    "group's committed offsets, else latest")
    p.add_argument("--from-time", metavar="TIME", help="the first record at or after this time "
                                                       "(ms since the epoch or ISO 8601)")
    p.add_argument("--count", type=int, help="stop after this many records")
    p.add_argument("--group", help="consume as this consumer group and commit")
    p.add_argument("--format", choices=["raw", "json"], default="raw")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help="stop after this long without a record (default: never)")

    cluster = group("cluster", "inspect a running cluster")
    p = leaf(cluster, "status", admin.cluster_status,
             "the quorum, the nodes, partition leaders and ISRs")
    p.add_argument("--internal", action="store_true", help="list internal topics' partitions too")
    leaf(cluster, "quorum", admin.cluster_quorum, "the metadata quorum's leader and voters' lag")
    leaf(cluster, "nodes", admin.cluster_nodes, "the brokers and the controller")
    p = leaf(cluster, "connections", admin.cluster_connections,
             "client connections with client software, principal and listener (Odradek nodes)")
    p.add_argument("--http", default=os.environ.get("ODRADEK_HTTP", DEFAULT_HTTP),
                   help="HOST:PORT[,...] of the nodes' http.listener (default $ODRADEK_HTTP or "
                        f"{DEFAULT_HTTP})")
    security.add_commands(group, leaf)

    from odradek.broker.console import remote

    p = sub.add_parser("console", help="serve the web console of any Kafka-compatible cluster",
                       parents=common)
    p.set_defaults(run=remote.run)
    p.add_argument("--listen", default=remote.DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"where to serve it (default {remote.DEFAULT_LISTEN}; port 0: any free one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from odradek.broker.cli.output import CliError, emit

    args = _parser().parse_args(argv)
    try:
        if hasattr(args, "run"):
            return args.run(args)
        emit(args.report(args), args.json)
        return 0
    except CliError as e:
        print(f"odradek: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `odradek ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

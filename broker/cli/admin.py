"""``odradek topics | configs | groups | cluster``: the operator's everyday commands.

They speak the Kafka protocol through kafka-python's ``KafkaAdminClient`` (already a
dependency), so they work against any Kafka-compatible cluster, Kafka itself included.
Why not ``odradek.broker.client.KafkaConnection``: that is one blocking socket to one
node, while these commands must reach the right node for each request (CreateTopics to
the controller, group requests to the group's coordinator found by FindCoordinator,
ListOffsets to each partition's leader, DescribeLogDirs to every broker) and negotiate
versions with whatever broker answers. The admin client does all of that, and its
answers come back as plain dicts that print as JSON unchanged.

Every command returns a ``Report`` (broker.cli.output); a Kafka error becomes a
``CliError`` whose message says what to do (``explain``).
"""

import contextlib
import logging
import re
from collections.abc import Iterator
from datetime import datetime

import kafka.errors as Errors
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, OffsetSpec
from kafka.structs import OffsetAndMetadata

from odradek.broker.cli.output import CliError, Report

CLIENT_ID = "odradek-cli"

# What to do about the errors an operator meets; the rest print Kafka's own description.
ADVICE: dict[type, str] = {
    Errors.UnknownTopicOrPartitionError: "`odradek topics list` shows the topics that exist",
    Errors.TopicAlreadyExistsError: "pick another name, or `odradek topics alter` to add partitions",
    Errors.InvalidPartitionsError: "a topic's partitions can only grow; give a larger --partitions",
    Errors.InvalidReplicationFactorError: "--replication-factor must be at most the number of "
                                          "brokers (`odradek cluster nodes`)",
    Errors.InvalidConfigurationError: "`odradek configs describe --topic T --all` lists the keys "
                                      "and their values",
    Errors.PolicyViolationError: "the cluster's policy refused it",
    Errors.TopicDeletionDisabledError: "the brokers run with delete.topic.enable=false",
    Errors.InvalidTopicError: "topic names use letters, digits, '.', '_' and '-' (at most 249)",
    Errors.GroupIdNotFoundError: "`odradek groups list` shows the groups that exist",
    Errors.NonEmptyGroupError: "the group still has members: stop its consumers first",
    Errors.UnknownMemberIdError: "the group still has members: stop its consumers first",
    Errors.CoordinatorNotAvailableError: "the cluster is still starting or electing; retry shortly",
    Errors.TopicAuthorizationFailedError: "the principal lacks the ACL for this topic",
    Errors.GroupAuthorizationFailedError: "the principal lacks the ACL for this group",
    Errors.ClusterAuthorizationFailedError: "the principal lacks the ACL on the cluster",
    Errors.UnsupportedVersionError: "the broker does not serve this request",
}


def explain(e: Exception, bootstrap: str) -> CliError:
    """``e`` as a ``CliError`` saying what to do; its ``kafka_error`` is ``e``'s class."""
    error = _explain(e, bootstrap)
    error.kafka_error = type(e)
    return error


def _explain(e: Exception, bootstrap: str) -> CliError:
    if isinstance(e, Errors.KafkaTimeoutError) and "bootstrap" in str(e).lower():
        return CliError(f"cannot reach a broker at {bootstrap}: is a node listening there? "
                        "Give another with --bootstrap HOST:PORT (or set ODRADEK_BOOTSTRAP)")
    if isinstance(e, (Errors.KafkaTimeoutError, Errors.RequestTimedOutError)):
        return CliError(f"the cluster at {bootstrap} did not answer in time ({e}); "
                        "check `odradek cluster status`, or raise --timeout")
    if isinstance(e, Errors.KafkaConnectionError):
        return CliError(f"lost the connection to {bootstrap}: {e}; is the node still up?")
    for cls, advice in ADVICE.items():
        if isinstance(e, cls):
            return CliError(f"{_describe(e)}: {advice}")
    if isinstance(e, Errors.KafkaError):
        return CliError(_describe(e))
    if isinstance(e, ValueError):
        return CliError(str(e))
    raise e


def _describe(e: Exception) -> str:
    """Kafka's error name and the broker's error_message (kafka-python's text embeds the
    whole request and response; only the broker's own words are worth showing)."""
    name = getattr(e, "message", None) or type(e).__name__
    detail = str(e)
    found = re.search(r"""error_message=(['"])(.+?)\1""", detail)
    if found:
        detail = found.group(2)
    elif "Request '" in detail or len(detail) > 200:
        detail = getattr(e, "description", "") or ""
    detail = detail.removeprefix(f"[Error {getattr(e, 'errno', '')}] {type(e).__name__}: ")
    return f"{name}: {detail}" if detail and detail != name else str(name)


@contextlib.contextmanager
def admin(args) -> Iterator[KafkaAdminClient]:
    """An admin client for ``args.bootstrap``; Kafka errors inside become ``CliError``."""
    if not args.verbose:  # kafka-python warns on every refused connection while it retries
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    timeout_ms = int(args.timeout * 1000)
    client = None
    try:
        client = KafkaAdminClient(bootstrap_servers=args.bootstrap.split(","), client_id=CLIENT_ID,
                                  request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)
        yield client
    except (Errors.KafkaError, ValueError) as e:
        raise explain(e, args.bootstrap) from None
    finally:
        if client is not None:
            client.close()


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{what} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


# -- topics ------------------------------------------------------------------------

def _check_topics(topics: list[dict]) -> None:
    for t in topics:
        if t["error_code"]:
            raise explain(Errors.for_code(t["error_code"])(f"topic {t['name']}"), "")


def topics_list(args) -> Report:
    with admin(args) as a:
        topics = sorted(a.describe_topics(), key=lambda t: t["name"])
    rows = [{"name": t["name"], "partitions": len(t["partitions"]),
             "replication_factor": max((len(p["replica_nodes"]) for p in t["partitions"]), default=0),
             "internal": t["is_internal"]}
            for t in topics if args.internal or not t["is_internal"]]
    return Report(rows).table("", ["TOPIC", "PARTITIONS", "REPLICATION FACTOR"],
                              [[r["name"], r["partitions"], r["replication_factor"]] for r in rows])


def _log_sizes(a: KafkaAdminClient) -> dict[tuple[str, int], dict[int, int]]:
    """(topic, partition) -> {broker: bytes of its replica}, from DescribeLogDirs."""
    sizes: dict[tuple[str, int], dict[int, int]] = {}
    for broker in a.describe_log_dirs():
        for log_dir in broker["log_dirs"]:
            for topic in log_dir["topics"]:
                for p in topic["partitions"]:
                    sizes.setdefault((topic["name"], p["partition_index"]), {})[broker["broker"]] = \
                        p["partition_size"]
    return sizes


def topics_describe(args) -> Report:
    with admin(args) as a:
        topics = a.describe_topics(args.topics or None)
        _check_topics(topics)
        topics = sorted((t for t in topics if args.topics or not t["is_internal"]),
                        key=lambda t: t["name"])
        tps = [TopicPartition(t["name"], p["partition_index"]) for t in topics for p in t["partitions"]]
        earliest = a.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps}) if tps else {}
        latest = a.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps}) if tps else {}
        sizes = _log_sizes(a)
        configs = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t["name"])
                                      for t in topics]).get("topic", {}) if topics else {}
    data, rows = [], []
    for t in topics:
        partitions = []
        for p in sorted(t["partitions"], key=lambda p: p["partition_index"]):
            tp = TopicPartition(t["name"], p["partition_index"])
            size = sizes.get((tp.topic, tp.partition), {})
            partitions.append({
                "partition": tp.partition, "leader": p["leader_id"], "leader_epoch": p["leader_epoch"],
                "replicas": p["replica_nodes"], "isr": p["isr_nodes"],
                "offline_replicas": p["offline_replicas"],
                "log_start_offset": earliest[tp].offset if tp in earliest else None,
                "log_end_offset": latest[tp].offset if tp in latest else None,
                "size_bytes": size.get(p["leader_id"], max(size.values(), default=None)),
            })
            rows.append([t["name"], tp.partition, p["leader_id"], p["replica_nodes"], p["isr_nodes"],
                         partitions[-1]["log_start_offset"], partitions[-1]["log_end_offset"],
                         partitions[-1]["size_bytes"]])
        data.append({"name": t["name"], "topic_id": str(t["topic_id"]), "internal": t["is_internal"],
                     "partitions": partitions,
                     "configs": {k: v["value"] for k, v in configs.get(t["name"], {}).items()}})
    report = Report(data).table("", ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR",
                                     "LOG START", "LOG END", "SIZE (BYTES)"], rows)
    for t in data:
        if t["configs"]:
            report.notes.append(f"{t['name']} configs: " +
                                " ".join(f"{k}={v}" for k, v in sorted(t["configs"].items())))
    return report


def topics_create(args) -> Report:
    spec = {"num_partitions": args.partitions, "replication_factor": args.replication_factor,
            "configs": parse_assignments(args.config, "--config")}
    with admin(args) as a:
        a.create_topics({args.topic: spec}, wait_for_metadata=not args.validate_only,
                        validate_only=args.validate_only)
        created = [] if args.validate_only else a.describe_topics([args.topic])
    data = {"topic": args.topic, "validate_only": args.validate_only,
            "partitions": len(created[0]["partitions"]) if created else args.partitions}
    verb = "would be created (--validate-only)" if args.validate_only else "created"
    return Report(data).table("", ["TOPIC", "PARTITIONS", "RESULT"],
                              [[args.topic, data["partitions"], verb]])


def topics_alter(args) -> Report:
    with admin(args) as a:
        a.create_partitions({args.topic: args.partitions}, validate_only=args.validate_only)
    data = {"topic": args.topic, "partitions": args.partitions, "validate_only": args.validate_only}
    return Report(data).table("", ["TOPIC", "PARTITIONS", "RESULT"],
                              [[args.topic, args.partitions,
                                "would grow (--validate-only)" if args.validate_only else "grown"]])


def topics_delete(args) -> Report:
    with admin(args) as a:
        a.delete_topics(args.topics)
    return Report({"deleted": args.topics}).table("", ["TOPIC", "RESULT"],
                                                  [[t, "deleted"] for t in args.topics])


# -- configs -------------------------------------------------------------------------

def _resource(args) -> ConfigResource:
    if args.topic:
        return ConfigResource(ConfigResourceType.TOPIC, args.topic)
    return ConfigResource(ConfigResourceType.BROKER, str(args.broker))


def configs_describe(args) -> Report:
    resource = _resource(args)
    with admin(args) as a:
        if resource.resource_type == ConfigResourceType.TOPIC:
            _check_topics(a.describe_topics([resource.name]))
        found = a.describe_configs([resource], config_filter="all" if args.all else "modified")
    entries: dict = next(iter(found.get(resource.resource_type.name.lower(), {}).values()), {})
    data = {name: {"value": e["value"], "source": str(e.get("config_source", "")),
                   "read_only": e.get("read_only"), "sensitive": e.get("is_sensitive")}
            for name, e in sorted(entries.items())}
    return Report(data).table("", ["KEY", "VALUE", "SOURCE"],
                              [[k, v["value"], v["source"].rsplit(".", 1)[-1]] for k, v in data.items()])


def _result_error(result, what: str) -> CliError | None:
    """kafka-python reports per-resource outcomes as text ('OK', 'NoError',
    '[Error 40] InvalidConfigurationError: ...', 'GroupIdNotFoundError') or error classes."""
    if result in (None, "OK", "NoError", Errors.NoError):
        return None
    if isinstance(result, type) and issubclass(result, Exception):
        return explain(result(what), "")
    text = str(result)
    found = re.match(r"(?:\[Error -?\d+\] )?(\w+)(?:: (.*))?$", text, re.S)
    cls = getattr(Errors, found.group(1), None) if found else None
    if isinstance(cls, type) and issubclass(cls, Errors.KafkaError):
        return explain(cls(found.group(2) or what), "")
    return CliError(f"{what}: {text}")


def _alter_result(result: dict) -> None:
    for resources in result.values():
        for name, outcome in resources.items():
            error = _result_error(outcome, name)
            if error is not None:
                raise error


def configs_set(args) -> Report:
    changes = parse_assignments(args.assignments, "configs set")
    resource = _resource(args)
    resource.configs = {k: ("SET", v) for k, v in changes.items()}
    with admin(args) as a:
        _alter_result(a.alter_configs([resource], raise_on_unknown=False))
    return Report({"set": changes}).table("", ["KEY", "VALUE", "RESULT"],
                                          [[k, v, "set"] for k, v in changes.items()])


def configs_delete(args) -> Report:
    resource = _resource(args)
    resource.configs = {k: ("DELETE", None) for k in args.keys}
    with admin(args) as a:
        _alter_result(a.alter_configs([resource], raise_on_unknown=False))
    return Report({"deleted": args.keys}).table("", ["KEY", "RESULT"],
                                                [[k, "back to its default"] for k in args.keys])


# -- groups ---------------------------------------------------------------------------

def groups_list(args) -> Report:
    with admin(args) as a:
        groups = sorted(a.list_groups(), key=lambda g: g["group_id"])
    data = [{"group": g["group_id"], "state": g.get("group_state"), "type": g.get("group_type"),
             "protocol_type": g.get("protocol_type")} for g in groups]
    return Report(data).table("", ["GROUP", "STATE", "TYPE", "PROTOCOL TYPE"],
                              [[g["group"], g["state"], g["type"], g["protocol_type"]] for g in data])


def _committed(a: KafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    offsets = a.list_group_offsets({group: None})[group]
    return {tp: o.offset for tp, o in offsets.items() if o.offset >= 0}


def groups_describe(args) -> Report:
    with admin(args) as a:
        described = a.describe_groups([args.group])[args.group]
        error = _result_error(described.get("error"), f"group {args.group}")  # (as text)
        if error is not None:
            raise error
        committed = _committed(a, args.group)
        latest = a.list_partition_offsets({tp: OffsetSpec.LATEST for tp in committed}) if committed else {}
    owners = {}
    members = []
    for m in described["members"]:
        assignment = m.get("member_assignment") or {}
        assigned = [TopicPartition(t["topic"] if "topic" in t else t.get("name"), p)
                    for t in (assignment.get("assigned_partitions") or assignment.get("topics") or [])
                    for p in t.get("partitions", [])] if isinstance(assignment, dict) else []
        for tp in assigned:
            owners[tp] = m["member_id"]
        members.append({"member_id": m["member_id"], "client_id": m["client_id"],
                        "host": m["client_host"], "group_instance_id": m.get("group_instance_id"),
                        "partitions": [f"{tp.topic}-{tp.partition}" for tp in assigned]})
    lag = []
    for tp in sorted(set(committed) | set(owners)):
        end = latest[tp].offset if tp in latest else None
        offset = committed.get(tp)
        lag.append({"topic": tp.topic, "partition": tp.partition, "committed_offset": offset,
                    "log_end_offset": end,
                    "lag": max(0, end - offset) if end is not None and offset is not None else None,
                    "member_id": owners.get(tp)})
    data = {"group": args.group, "state": described["group_state"],
            "protocol_type": described["protocol_type"], "protocol": described["protocol_data"],
            "members": members, "offsets": lag}
    report = Report(data)
    report.table("", ["GROUP", "STATE", "PROTOCOL", "MEMBERS"],
                 [[args.group, data["state"], data["protocol"], len(members)]])
    report.table("members", ["MEMBER", "CLIENT ID", "HOST", "PARTITIONS"],
                 [[m["member_id"], m["client_id"], m["host"], m["partitions"]] for m in members])
    report.table("offsets", ["TOPIC", "PARTITION", "COMMITTED", "LOG END", "LAG", "MEMBER"],
                 [[r["topic"], r["partition"], r["committed_offset"], r["log_end_offset"], r["lag"],
                   r["member_id"]] for r in lag])
    return report


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch, from an integer or an ISO 8601 time (UTC if no zone)."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{text!r} is not a time: give milliseconds since the epoch or "
                       "ISO 8601, e.g. 2026-12-05T09:00:00Z") from None
    if moment.tzinfo is None:
        from datetime import UTC
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _reset_partitions(a: KafkaAdminClient, args, committed: dict) -> list[TopicPartition]:
    if args.all_topics:
        return sorted(committed)
    tps = []
    for item in args.topic:
        name, _, parts = item.partition(":")
        topic = a.describe_topics([name])
        _check_topics(topic)
        indexes = ([int(p) for p in parts.split(",")] if parts else
                   [p["partition_index"] for p in topic[0]["partitions"]])
        tps += [TopicPartition(name, i) for i in indexes]
    return sorted(tps)


def groups_reset_offsets(args) -> Report:
    """Kafka's kafka-consumer-groups.sh --reset-offsets: a plan by default (dry run), applied
    with --execute; targets are clamped to each partition's [log start, log end]."""
    if not args.all_topics and not args.topic:
        raise CliError("name the partitions to reset: --topic T[:P,P...] (repeatable) or --all-topics")
    with admin(args) as a:
        committed = _committed(a, args.group)
        tps = _reset_partitions(a, args, committed)
        if not tps:
            raise CliError(f"group {args.group} has no committed offsets: name them with --topic")
        earliest = a.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        latest = a.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        if args.to_datetime is not None:
            by_time = a.list_partition_offsets({tp: parse_timestamp(args.to_datetime) for tp in tps})
        plan = {}
        for tp in tps:
            low, high = earliest[tp].offset, latest[tp].offset
            if args.to_earliest:
                target = low
            elif args.to_latest:
                target = high
            elif args.to_offset is not None:
                target = args.to_offset
            elif args.shift_by is not None:
                target = committed.get(tp, high) + args.shift_by
            else:
                target = by_time[tp].offset if by_time[tp].offset >= 0 else high
            plan[tp] = min(max(target, low), high)
        if args.execute:
            results = a.alter_group_offsets(args.group, {
                tp: OffsetAndMetadata(offset, "", None) for tp, offset in plan.items()})
            failed = {tp: e for tp, e in results.items() if e is not Errors.NoError}
            if failed:
                tp, error = next(iter(failed.items()))
                raise explain(error(f"{tp.topic}-{tp.partition} of group {args.group}"), "")
    rows = [{"topic": tp.topic, "partition": tp.partition, "current_offset": committed.get(tp),
             "new_offset": offset} for tp, offset in plan.items()]
    report = Report({"group": args.group, "executed": args.execute, "offsets": rows})
    report.table("" if args.execute else "dry run: nothing changed",
                 ["TOPIC", "PARTITION", "CURRENT OFFSET", "NEW OFFSET"],
                 [[r["topic"], r["partition"], r["current_offset"], r["new_offset"]] for r in rows])
    if not args.execute:
        report.notes.append("dry run: add --execute to commit these offsets "
                            "(the group must have no active members)")
    return report


def groups_delete(args) -> Report:
    with admin(args) as a:
        results = a.delete_groups(args.groups)
    for group, outcome in results.items():
        error = _result_error(outcome, f"group {group}")
        if error is not None:
            raise error
    return Report({"deleted": sorted(args.groups)}).table(
        "", ["GROUP", "RESULT"], [[g, "deleted"] for g in sorted(args.groups)])


# -- cluster --------------------------------------------------------------------------

def cluster_nodes(args) -> Report:
    with admin(args) as a:
        cluster = a.describe_cluster()
    nodes = sorted(cluster["brokers"], key=lambda b: b["broker_id"])
    data = {"cluster_id": cluster["cluster_id"], "controller_id": cluster["controller_id"],
            "nodes": [{"node_id": b["broker_id"], "host": b["host"], "port": b["port"],
                       "rack": b["rack"], "fenced": b.get("is_fenced", False)} for b in nodes]}
    return Report(data).table(f"cluster {data['cluster_id']}", ["NODE", "HOST", "PORT", "RACK", "FENCED"],
                              [[n["node_id"], n["host"], n["port"], n["rack"], n["fenced"]]
                               for n in data["nodes"]])


def _node_view(args, with_metadata: bool) -> tuple[dict, object | None]:
    """DescribeQuorum (and Metadata) from the one node ``--bootstrap`` names, over one socket
    (odradek.broker.client): that node's own view, which is what an operator checking a
    partitioned or failing-over cluster asks for, and it answers while other nodes are
    unreachable (an admin client would go on to their advertised addresses)."""
    from kafka.protocol.admin import DescribeQuorumRequest, DescribeQuorumResponse
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse

    from odradek.broker.client import KafkaConnection

    address = args.bootstrap.split(",")[0]
    topic = DescribeQuorumRequest.TopicData
    try:
        with KafkaConnection(address, timeout=args.timeout) as conn:
            quorum = conn.roundtrip(DescribeQuorumRequest(topics=[topic(
                topic_name="__cluster_metadata", partitions=[topic.PartitionData(partition_index=0)])]),
                2, DescribeQuorumResponse)
            metadata = conn.roundtrip(MetadataRequest(topics=None, allow_auto_topic_creation=False),
                                      12, MetadataResponse) if with_metadata else None
    except (OSError, ConnectionError) as e:
        raise CliError(f"cannot reach {address}: {e}; is a node listening there? "
                       "Give another with --bootstrap HOST:PORT") from None
    if quorum.error_code:
        raise explain(Errors.for_code(quorum.error_code)("DescribeQuorum"), address)
    q = quorum.topics[0].partitions[0]
    if q.error_code:
        raise explain(Errors.for_code(q.error_code)("DescribeQuorum"), address)
    view = {"leader_id": q.leader_id, "leader_epoch": q.leader_epoch,
            "high_watermark": q.high_watermark,
            "voters": [{"node_id": v.replica_id, "log_end_offset": v.log_end_offset,
                        "lag": max(0, q.high_watermark - v.log_end_offset)
                        if v.log_end_offset >= 0 else None} for v in q.current_voters],
            "observers": [{"node_id": v.replica_id, "log_end_offset": v.log_end_offset}
                          for v in q.observers]}
    return view, metadata


def _quorum_table(report: Report, q: dict) -> None:
    report.table("metadata quorum", ["VOTER", "ROLE", "EPOCH", "LOG END OFFSET", "HIGH WATERMARK", "LAG"],
                 [[v["node_id"], "leader" if v["node_id"] == q["leader_id"] else "follower",
                   q["leader_epoch"], v["log_end_offset"], q["high_watermark"], v["lag"]]
                  for v in q["voters"]])


def cluster_quorum(args) -> Report:
    q, _ = _node_view(args, with_metadata=False)
    report = Report(q)
    _quorum_table(report, q)
    return report


def cluster_status(args) -> Report:
    """The quorum, the nodes, and every partition's leader and ISR as the ``--bootstrap``
    node sees them, with the partitions under-replicated or without a leader counted."""
    q, metadata = _node_view(args, with_metadata=True)
    topics = sorted(metadata.topics, key=lambda t: t.name)
    partitions = [{"topic": t.name, "partition": p.partition_index, "leader": p.leader_id,
                   "leader_epoch": p.leader_epoch, "replicas": list(p.replica_nodes),
                   "isr": list(p.isr_nodes)}
                  for t in topics for p in sorted(t.partitions, key=lambda p: p.partition_index)]
    data = {"cluster_id": metadata.cluster_id, "active_controller": q["leader_id"], "quorum": q,
            "nodes": sorted(b.node_id for b in metadata.brokers),
            "brokers": [{"node_id": b.node_id, "host": b.host, "port": b.port}
                        for b in sorted(metadata.brokers, key=lambda b: b.node_id)],
            "under_replicated": sum(len(p["isr"]) < len(p["replicas"]) for p in partitions),
            "offline": sum(p["leader"] < 0 for p in partitions),
            "partitions": partitions}
    report = Report(data)
    report.table(f"cluster {data['cluster_id']}", ["ACTIVE CONTROLLER", "NODES", "PARTITIONS",
                                                   "UNDER-REPLICATED", "OFFLINE"],
                 [[q["leader_id"] if q["leader_id"] >= 0 else "none", data["nodes"], len(partitions),
                   data["under_replicated"], data["offline"]]])
    _quorum_table(report, q)
    report.table("brokers", ["NODE", "ADDRESS"],
                 [[b["node_id"], f"{b['host']}:{b['port']}"] for b in data["brokers"]])
    internal = {t.name for t in topics if t.is_internal}
    report.table("partitions", ["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR"],
                 [[f"{p['topic']}-{p['partition']}", p["leader"], p["leader_epoch"], p["replicas"],
                   p["isr"]] for p in partitions if args.internal or p["topic"] not in internal])
    return report


def cluster_connections(args) -> Report:
    """Each node's client connections, from its HTTP listener's /connections (no Kafka
    request lists them; Kafka itself has only JMX for this)."""
    import json
    import urllib.error
    import urllib.request

    rows: list[dict] = []
    for address in args.http.split(","):
        url = f"http://{address}/connections"
        try:
            with urllib.request.urlopen(url, timeout=args.timeout) as response:
                node = json.load(response)
        except urllib.error.HTTPError as e:
            raise CliError(f"{url} answered {e.code}: is that an Odradek node's http.listener? "
                           "(Kafka has no such endpoint)") from None
        except (OSError, ValueError) as e:
            raise CliError(f"cannot read {url}: {e}; give the nodes' http.listener addresses "
                           "with --http HOST:PORT[,...]") from None
        rows += [{"node_id": node["node_id"], **c} for c in node["connections"]]
    rows.sort(key=lambda c: (c["node_id"], c["listener"], c["peer"]))
    return Report(rows).table("", ["NODE", "LISTENER", "PEER", "CLIENT ID", "SOFTWARE", "VERSION",
                                   "PRINCIPAL", "REQUESTS", "AGE (S)"],
                              [[c["node_id"], c["listener"], c["peer"], c["client_id"],
                                c["client_software_name"], c["client_software_version"],
                                c["principal"], c["requests"], c["age_s"]] for c in rows])

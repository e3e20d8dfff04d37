"""The differential oracle: the same requests to Kafka 4.4 and to Odradek, the answers
compared field by field, Kafka's answer being the specification.

A case is a function of one side (tests/peers/oracle.Side) that sends its requests and
returns the answers by step name; it runs against both brokers with the same topic and
group names, and every difference after normalisation (oracle.normalise) fails the test.
A difference that is known is listed in LEDGERED, by case and field path, with its reason:
those fields may differ, and must (a ledgered difference that disappears fails its case,
so the entry goes and the ledger stays true); nothing else may. The compatibility ledger
(tests/peers/ledger.py, COMPATIBILITY.md) prints the list.

Both brokers run once per module: one Kafka node (the session's `kafka_peer`) and one
Odradek node; every case names its own topics and groups.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import time
import uuid

import pytest
from kafka.protocol.admin import (
    AlterPartitionReassignmentsRequest,
    AlterReplicaLogDirsRequest,
    DescribeLogDirsRequest,
    ListPartitionReassignmentsRequest,
    UpdateFeaturesRequest,
)
from kafka.protocol.admin.cluster import DescribeClusterRequest
from kafka.protocol.admin.configs import AlterConfigsRequest
from kafka.protocol.admin.groups import (
    DeleteGroupsRequest,
    DescribeGroupsRequest,
    ListGroupsRequest,
)
from kafka.protocol.admin.topics import (
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteRecordsRequest,
    DeleteTopicsRequest,
)
from kafka.protocol.admin.transactions import DescribeProducersRequest
from kafka.protocol.consumer import FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetDeleteRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata import ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer import (
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    ProduceRequest,
    TxnOffsetCommitRequest,
)

from odradek.protocol.records import Record, build_batch
from tests.brokerproc import BrokerProcess
from tests.peers import ledger
from tests.peers.oracle import Side, differences, normalise, plain
from tests.rawclient import describe_configs, incremental_alter

ODRADEK_OWN_KEYS = (
    "log.json, log.level, http.listener, log.max.open.files and node.principals are Odradek's "
    "own broker keys (its structured log's format and level, its metrics and health listener, "
    "its budget of open segment files, each node's principal between nodes; Kafka configures "
    "log4j outside server.properties, serves metrics through JMX, keeps every segment open and "
    "does not tie a broker's id to its principal). Every other broker key Odradek knows, "
    "Kafka 4.4 knows with the same default.")

# Known differences from Kafka 4.4, each with its reason: (case, glob of the differing
# field paths) -> why. A ledgered difference must still occur (else the entry is stale and
# the case fails), and nothing else may differ. tests/peers/ledger.py prints this table.
LEDGERED: dict[tuple[str, str], str] = {
    ("api_versions_features", ".v[34].*features*"):
        "Feature flags (KIP-584) are advertised only once the protocols they gate are complete "
        "(ARCHITECTURE.md): Odradek offers metadata.version up to 4.2-IV1 (level 29; 4.3-IV0 "
        "brings cordoned log directories), group.version 1 (the consumer group protocol, "
        "KIP-848) and share.version 1 (share groups, KIP-932; not 2, KIP-1191's dead-letter "
        "queues), transaction.version 2 (transactions v2, KIP-890 part 2), and none of "
        "streams/eligible.leader.replicas/kraft.version yet. Kafka 4.4 finalizes them all at "
        "format time, metadata.version at 4.4-IV2 (33).",
    ("share_group_errors", ".join.member_epoch"):
        "Kafka's group coordinator has the share coordinator initialize a new share "
        "partition's state and bumps the group epoch once more when it is done (a first "
        "member gets epoch 2); in Odradek the share partition's leader initializes it at the "
        "group's first fetch, without a bump (1).",
    ("share_group_errors", ".fenced.error_message"):
        "The same words; they quote the member's epoch, 2 on Kafka and 1 on Odradek (see "
        "share_group_errors .join.member_epoch).",
    ("update_features", ".*.*error_message"):
        "Error codes agree; the messages name each side's metadata.version (33 and 29).",
    ("fetch_sessions", ".open.session_id"):
        "Fetch sessions (KIP-227) are declined: every answer has session id 0, so clients keep "
        "sending full fetch requests (correct, a little more bandwidth with many partitions); "
        "Kafka opens a session and then answers incremental fetches.",
    ("create_topics_bad_requests", ".bad.topics[[]*[]].error_message"):
        "Error codes agree; the controller's messages are worded otherwise (Odradek's name the "
        "limit or the value that failed).",
    ("incremental_alter_configs_errors", ".*.responses[[]0[]].error_message"):
        "Error codes agree; the controller's messages are worded otherwise.",
    ("create_topics_validate_only_then_twice", ".*.topics[[]*[]].config_names"):
        "Kafka 4.4 has topic configs Odradek does not implement (tiered storage, compression "
        "levels, throttled replicas, message downconversion...); the keys both know are "
        "compared.",
    ("create_topics_validate_only_then_twice", ".*.topics[[]*[]].configs[[]*[]].config_source"):
        "min.insync.replicas: `kafka-storage format` in 4.x writes it as a cluster-wide "
        "dynamic default (source DYNAMIC_DEFAULT_BROKER_CONFIG, for ELR); Odradek has no ELR, "
        "sets no such default and reports its static default.",
    ("describe_configs_topic_all_keys", ".all.results[[]0[]].config_names"):
        "Kafka 4.4 has topic configs Odradek does not implement (see "
        "create_topics_validate_only_then_twice).",
    ("describe_configs_topic_all_keys", ".all.min.insync.replicas[[]0[]].*"):
        "min.insync.replicas: Kafka 4.x's storage format writes a cluster-wide dynamic default "
        "(source DYNAMIC_DEFAULT_BROKER_CONFIG, listed as a synonym, for ELR); Odradek has no "
        "ELR and sets no such default.",
    ("create_partitions", ".*.results[[]0[]].error_message"):
        "Error codes agree; the controller's messages are worded otherwise (and Kafka sends "
        "none for an unknown topic).",
    ("alter_configs_legacy", ".*.responses[[]0[]].error_message"):
        "Error codes agree; the controller's messages are worded otherwise.",
    ("delete_topics", ".*.responses[[]*[]].error_message"):
        "Error codes agree; Kafka sends the error code's default message, Odradek's controller "
        "names the topic.",
    ("dynamic_broker_configs", ".bad_value.responses[[]0[]].error_message"):
        "Error codes agree; the controller's messages are worded otherwise.",
    ("describe_configs_broker_all_keys", ".values.queued.max.request.bytes"):
        "Kafka's default -1 leaves the bytes of queued requests unbounded; Odradek bounds them "
        "at 100 MiB by default, so that many connections sending large frames cannot take "
        "the node's memory (-1 is still accepted).",
    ("describe_configs_broker_all_keys", ".values.log.json"): ODRADEK_OWN_KEYS,
    ("describe_configs_broker_all_keys", ".values.http.listener"): ODRADEK_OWN_KEYS,
    ("describe_configs_broker_all_keys", ".values.leader.imbalance.per.broker.percentage"):
        "Kafka 4 has no leader.imbalance.per.broker.percentage (its KRaft controller moves "
        "every imbalanced partition back to its preferred replica); Odradek keeps the older "
        "controller's rule and key (README, Leader election).",
    ("describe_configs_broker_all_keys", ".values.log.level"): ODRADEK_OWN_KEYS,
    ("describe_configs_broker_all_keys", ".values.log.max.open.files"): ODRADEK_OWN_KEYS,
    ("describe_configs_broker_all_keys", ".values.node.principals"): ODRADEK_OWN_KEYS,
    ("describe_configs_broker", ".keys.results[[]0[]].configs[[]4[]].*"):
        "min.insync.replicas: Kafka 4.x's storage format writes a cluster-wide dynamic default "
        "(ELR, which Odradek does not have), so Kafka reports that source and synonym.",
}

CASES = {}


def case(fn):
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


# Odradek with Kafka's defaults where a test broker would otherwise differ from the peer's
# (tests/peers/kafka.py sets group.initial.rebalance.delay.ms=0 there, too).
ODRADEK_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}


@pytest.fixture(scope="module")
def sides(kafka_peer, tmp_path_factory):
    odradek = BrokerProcess(data_dir=tmp_path_factory.mktemp("oracle-odradek"),
                            overrides=ODRADEK_OVERRIDES).start()
    pair = Side("kafka", kafka_peer.bootstrap), Side("odradek", odradek.bootstrap)
    pair[1].process = odradek
    yield pair
    for s in pair:
        s.close()
    odradek.kill()


def ledgered(name: str, path: str) -> str | None:
    """The ledger's reason for a difference at `path` in case `name`, if it is ledgered."""
    return next((why for (case_name, glob), why in LEDGERED.items()
                 if case_name == name and fnmatch.fnmatchcase(path, glob)), None)


def pytest_generate_tests(metafunc):
    """One test per case: the cases are defined below the tests that run them."""
    if "name" in metafunc.fixturenames:
        metafunc.parametrize("name", sorted(CASES))


def test_odradek_answers_as_kafka(sides, name):
    suffix = uuid.uuid4().hex[:8]
    answers = []
    for side in sides:
        try:
            answers.append(normalise(CASES[name](side, f"oracle-{name}-{suffix}")))
        finally:
            side.reconnect()
    diff = differences(*answers)
    unexplained = [d for d in diff if ledgered(name, d.split(": kafka ")[0]) is None]
    assert not unexplained, "Odradek differs from Kafka 4.4:\n" + "\n".join(unexplained)
    stale = [glob for (case_name, glob) in LEDGERED if case_name == name
             and not any(fnmatch.fnmatchcase(d.split(": kafka ")[0], glob) for d in diff)]
    assert not stale, f"ledgered differences no longer seen (remove them from LEDGERED): {stale}"


def test_api_versions_are_within_kafkas(sides, kafka_libs):
    """Every API Odradek offers, Kafka 4.4 offers, and Odradek's versions lie within
    Kafka's. Kafka's answer is kept in tests/peers/kafka-4.4-api-versions.json for the
    ledger (which must build without Kafka): it must match, and ODRADEK_RECORD_KAFKA=1
    rewrites it."""
    request = ApiVersionsRequest(client_software_name="odradek-oracle", client_software_version="1")
    kafka, ours = (side.call(request, 3) for side in sides)
    assert kafka.error_code == ours.error_code == 0
    recorded = ledger.kafka_api_versions_from(kafka, ledger.spec_names(kafka_libs))
    if os.environ.get("ODRADEK_RECORD_KAFKA") == "1":
        ledger.KAFKA_API_VERSIONS.write_text(json.dumps(recorded, indent=1) + "\n")
    assert recorded == json.loads(ledger.KAFKA_API_VERSIONS.read_text()), \
        "Kafka 4.4's ApiVersions differ from the recorded ones: rerun with ODRADEK_RECORD_KAFKA=1"
    theirs = {k.api_key: (k.min_version, k.max_version) for k in kafka.api_keys}
    outside = {k.api_key: ((k.min_version, k.max_version), theirs.get(k.api_key))
               for k in ours.api_keys
               if k.api_key not in theirs or not (theirs[k.api_key][0] <= k.min_version
                                                  <= k.max_version <= theirs[k.api_key][1])}
    assert not outside, f"Odradek's versions outside Kafka 4.4's (ours, theirs): {outside}"


def test_api_versions_v0_answers_as_kafka(sides):
    """v0 (no tagged fields, no features): the list of keys differs by design (the ledger
    lists it); the envelope must not."""
    kafka, ours = (normalise(plain(side.call(ApiVersionsRequest(), 0))) for side in sides)
    assert {k: v for k, v in kafka.items() if k != "api_keys"} == \
        {k: v for k, v in ours.items() if k != "api_keys"}


def test_a_refused_old_version_is_logged_with_its_api_and_version(sides):
    """The operator's view of KIP-896: the closed connection says which request was too old."""
    odradek = sides[1]
    try:
        odradek.call(produce("any", batch(1)), 2)
    except ConnectionError:
        pass
    finally:
        odradek.reconnect()
    deadline = time.monotonic() + 5
    while "API key 0 version 2 is not served (3..12)" not in odradek.process.log_text():
        assert time.monotonic() < deadline, odradek.process.log_text()[-3000:]
        time.sleep(0.05)


def test_every_ledger_entry_names_a_case():
    assert {name for name, _ in LEDGERED} <= set(CASES)


def test_the_oracle_sees_a_difference():
    """The comparison itself: a changed error code is reported, a masked node id is not."""
    kafka = {"node_id": 1, "topics": [{"name": "b", "error_code": 3}, {"name": "a", "error_code": 0}]}
    ours = {"node_id": 7, "topics": [{"name": "a", "error_code": 0}, {"name": "b", "error_code": 17}]}
    assert differences(normalise(kafka), normalise(ours)) == [
        ".topics[1].error_code: kafka 3, odradek 17"]


# --- requests, built once ---------------------------------------------------------------

T0 = 1_700_000_000_000  # record timestamps: the same on both sides, and in the past


def batch(n: int, first_ts: int = T0, step: int = 1000) -> bytes:
    return build_batch([Record(f"k{i}".encode(), f"v{i}".encode(), (("h", b"x"),), first_ts + i * step)
                        for i in range(n)])


def produce(topic: str, records: bytes, acks: int = -1, partition: int = 0):
    P = ProduceRequest
    return P(transactional_id=None, acks=acks, timeout_ms=5000, topic_data=[
        P.TopicProduceData(name=topic, partition_data=[
            P.TopicProduceData.PartitionProduceData(index=partition, records=records)])])


def list_offsets(topic: str, *timestamps: int, partition: int = 0):
    L = ListOffsetsRequest
    return L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(
        name=topic, partitions=[L.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=partition, current_leader_epoch=-1, timestamp=ts)
            for ts in timestamps])])


def fetch(topic: str, offset: int, partition: int = 0):
    F = FetchRequest
    return F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
             session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic, partitions=[
                 F.FetchTopic.FetchPartition(partition=partition, current_leader_epoch=-1,
                                             fetch_offset=offset, log_start_offset=-1,
                                             partition_max_bytes=1 << 20)])],
             forgotten_topics_data=[], rack_id="")


def create_topics(*topics, validate_only=False):
    """`topics`: (name, partitions, replication factor, configs)."""
    C = CreateTopicsRequest
    return C(topics=[C.CreatableTopic(
        name=name, num_partitions=n, replication_factor=rf, assignments=[],
        configs=[C.CreatableTopic.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])
        for name, n, rf, configs in topics], timeout_ms=10000, validate_only=validate_only)


def delete_records(topic: str, offset: int, partition: int = 0):
    D = DeleteRecordsRequest
    return D(topics=[D.DeleteRecordsTopic(name=topic, partitions=[
        D.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=partition, offset=offset)])],
        timeout_ms=5000)


TOPIC, BROKER = 2, 4


def until_shown(ask, shown, timeout_s: float = 5.0):
    """Kafka 4.4 answers some describes (client quotas, SCRAM credentials) from caches that
    its metadata updates a moment after the commit, while Odradek's node answers a change it
    forwarded once its own image applied it (configs too: metadata propagation): ask again
    until ``shown(answer)``, for timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = ask()
        if shown(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def described_once(side, topic: str, expected: dict[str, str | None], timeout: float = 5):
    """DescribeConfigs of a topic's `expected` keys once the answer shows those values
    (``until_shown``). The last answer is returned either way, so a value that never comes
    shows as a difference."""
    def values(answer) -> dict:
        return {c["name"]: c["value"] for c in answer["results"][0]["configs"]}
    return until_shown(lambda: plain(side.call(describe_configs(TOPIC, topic, list(expected)), 4)),
                       lambda answer: values(answer) == expected, timeout)


def records_of(fetch_answer) -> list:
    """A fetch answer's records as (offset, timestamp, key, value, headers)."""
    from kafka.record import MemoryRecords
    out = []
    for t in fetch_answer.responses:
        for p in t.partitions:
            recs = MemoryRecords(bytes(p.records or b""))
            while (b := recs.next_batch()) is not None:
                out += [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in b]
    return out


def fetch_summary(answer) -> dict:
    """A fetch answer without its record bytes (batches carry leader epochs and
    producer fields that differ legitimately), with the records decoded."""
    d = plain(answer)
    for t in d["responses"]:
        for p in t["partitions"]:
            p.pop("records", None)
    d["records"] = records_of(answer)
    return d


# --- the cases ----------------------------------------------------------------------------

@case
def case_metadata_unknown_and_invalid_topics(side, name):
    M = MetadataRequest
    invalid = ["bad name!", "a" * 250, ".", ".."]
    out = {f"v{v}": plain(side.call(M(topics=[M.MetadataRequestTopic(name=t) for t in invalid],
                                      allow_auto_topic_creation=True), v)) | {"brokers": None}
           for v in (1, 4, 12, 13)}
    out["unknown_v12"] = plain(side.call(M(topics=[M.MetadataRequestTopic(name=name)],
                                           allow_auto_topic_creation=False), 12)) | {"brokers": None}
    return out


@case
def case_metadata_auto_creates_a_topic(side, name):
    M = MetadataRequest
    first = side.call(M(topics=[M.MetadataRequestTopic(name=name)], allow_auto_topic_creation=True), 12)
    side.create_topic(name, 1, exists_ok=True)
    then = side.call(M(topics=[M.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False), 12)
    return {"first": plain(first.topics[0]) | {"partitions": None}, "then": plain(then.topics[0])}


@case
def case_metadata_of_a_topic(side, name):
    side.create_topic(name, 3)
    M = MetadataRequest
    return {f"v{v}": plain(side.call(M(topics=[M.MetadataRequestTopic(name=name)],
                                       allow_auto_topic_creation=False), v)) | {"brokers": None}
            for v in (1, 9, 12, 13)}


def created_configs(answer) -> dict:
    """A CreateTopics answer with each topic's configs split in two: the values of the keys
    Odradek knows too (compared), and the names of all (Kafka's topic configs are a
    superset: the difference is ledgered)."""
    from odradek.broker.config import TOPIC_CONFIGS
    d = plain(answer)
    for t in d["topics"]:
        configs = t.pop("configs") or []
        t["configs"] = [c for c in configs if c["name"] in TOPIC_CONFIGS]
        t["config_names"] = sorted(c["name"] for c in configs)
    return d


@case
def case_create_topics_bad_requests(side, name):
    return {"bad": plain(side.call(create_topics(
        ("bad name!", 1, 1, {}), ("a" * 250, 1, 1, {}), (".", 1, 1, {}),
        (f"{name}-zero", 0, 1, {}), (f"{name}-rf", 1, 3, {}), (f"{name}-rf0", 1, 0, {}),
        (f"{name}-cfg", 1, 1, {"no.such.config": "1"}),
        (f"{name}-val", 1, 1, {"retention.ms": "soon"}),
        (f"{name}-cleanup", 1, 1, {"cleanup.policy": "sideways"}),
    ), 7)),
        "too_many_partitions": plain(side.call(create_topics(
            (f"{name}-many", 1_000_000, 1, {}), (f"{name}-ok", 1, 1, {})), 7)),
        "too_many_in_all": plain(side.call(create_topics(
            (f"{name}-a", 6000, 1, {}), (f"{name}-b", 6000, 1, {})), 7))}


@case
def case_create_topics_validate_only_then_twice(side, name):
    first = created_configs(side.call(create_topics((name, 2, 1, {"retention.ms": "1000"}),
                                                    validate_only=True), 7))
    again = created_configs(side.call(create_topics((name, 2, 1, {}), (name + "-dflt", -1, -1, {})), 7))
    twice = created_configs(side.call(create_topics((name, 2, 1, {})), 7))
    return {"validate_only": first, "create": again, "exists": twice}


@case
def case_describe_configs_topic(side, name):
    side.create_topic(name, 1, {"retention.ms": "123456", "cleanup.policy": "compact"})
    return {
        "keys": plain(side.call(describe_configs(TOPIC, name, ["retention.ms", "cleanup.policy",
                                                               "segment.bytes", "no.such"]), 4)),
        "unknown_topic": plain(side.call(describe_configs(TOPIC, name + "-none"), 4)),
    }


@case
def case_describe_configs_topic_all_keys(side, name):
    """Every topic key both brokers know, with its default and synonyms."""
    from odradek.broker.config import TOPIC_CONFIGS
    side.create_topic(name, 1)
    answer = plain(side.call(describe_configs(TOPIC, name), 4))
    configs = answer["results"][0].pop("configs")
    answer["results"][0]["configs"] = [c for c in configs if c["name"] in TOPIC_CONFIGS
                                       and c["name"] != "min.insync.replicas"]
    answer["results"][0]["config_names"] = sorted(c["name"] for c in configs)
    answer["min.insync.replicas"] = [c for c in configs if c["name"] == "min.insync.replicas"]
    return {"all": answer}


# Broker keys whose values the test set-ups choose (tests/peers/kafka.py, BrokerProcess).
ENVIRONMENT_KEYS = frozenset({
    "advertised.listeners", "controller.quorum.voters", "controller.listener.names",
    "inter.broker.listener.name", "listener.security.protocol.map", "listeners", "log.dirs",
    "node.id", "broker.id", "process.roles", "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
    "group.initial.rebalance.delay.ms", "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
})


@case
def case_describe_configs_broker_all_keys(side, name):
    """The value of every broker key both know, as a default: a default of Odradek's that
    differs from Kafka's shows here (environment keys aside)."""
    from odradek.broker.config import BROKER_CONFIGS
    answer = plain(side.call(describe_configs(BROKER, "1", None, synonyms=False), 4))
    configs = answer["results"][0]["configs"]
    return {"values": {c["name"]: c["value"] for c in configs
                       if c["name"] in BROKER_CONFIGS and c["name"] not in ENVIRONMENT_KEYS}}


@case
def case_describe_configs_broker(side, name):
    keys = ["log.retention.hours", "num.partitions", "auto.create.topics.enable",
            "min.insync.replicas", "log.segment.bytes", "message.max.bytes"]
    return {"keys": plain(side.call(describe_configs(BROKER, "1", keys), 4)) | {"node": None}}


def described_broker_once(side, resource: str, keys, expected: dict[str, str | None], timeout: float = 5):
    """DescribeConfigs of a broker resource once its `expected` keys show (see described_once)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = plain(side.call(describe_configs(BROKER, resource, keys), 4))
        values = {c["name"]: c["value"] for c in answer["results"][0]["configs"]}
        if all(values.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


@case
def case_dynamic_broker_configs(side, name):
    """kafka-configs --alter --entity-type brokers: per broker and cluster-wide (""), a topic's
    key following its broker synonym, read-only keys and bad values refused; the shared
    peer's broker configs are deleted again whatever happens."""
    side.create_topic(name, 1)
    keys = ["log.retention.ms", "message.max.bytes", "log.cleaner.threads", "num.io.threads",
            "log.retention.hours", "num.partitions"]
    out = {}
    try:
        out["node"] = plain(side.call(incremental_alter(
            BROKER, "1", ("log.retention.ms", 0, "7200000"), ("message.max.bytes", 0, "2000000")), 1))
        out["default"] = plain(side.call(incremental_alter(
            BROKER, "", ("log.retention.ms", 0, "3600000"), ("log.cleaner.threads", 0, "2"),
            ("num.io.threads", 0, "4")), 1))
        out["read_only"] = plain(side.call(incremental_alter(BROKER, "1", ("num.partitions", 0, "3")), 1))
        out["read_only_validate"] = plain(side.call(incremental_alter(
            BROKER, "", ("log.retention.hours", 0, "3"), validate_only=True), 1))
        out["bad_value"] = plain(side.call(incremental_alter(BROKER, "1", ("message.max.bytes", 0, "x")), 1))
        out["described_node"] = described_broker_once(
            side, "1", keys, {"log.retention.ms": "7200000", "log.cleaner.threads": "2"})
        described = described_broker_once(side, "", None, {"num.io.threads": "4"})
        # Kafka's storage format sets min.insync.replicas as a cluster-wide default (ELR; ledgered
        # in describe_configs_topic_all_keys): the keys this case set are compared.
        described["results"][0]["configs"] = [c for c in described["results"][0]["configs"]
                                              if c["name"] != "min.insync.replicas"]
        out["described_default"] = described
        out["topic"] = described_once(side, name, {"retention.ms": "7200000", "max.message.bytes": "2000000"})
    finally:
        side.call(incremental_alter(BROKER, "1", ("log.retention.ms", 1, None), ("message.max.bytes", 1, None)), 1)
        side.call(incremental_alter(BROKER, "", ("log.retention.ms", 1, None), ("log.cleaner.threads", 1, None),
                                    ("num.io.threads", 1, None)), 1)
    out["after"] = described_broker_once(side, "1", keys, {"log.retention.ms": None,
                                                           "log.cleaner.threads": "1"})
    return out


@case
def case_dynamic_ssl_keys_refused(side, name):
    """Key and trust store keys change only per listener and per broker: without the
    listener prefix, or for every broker, Kafka's DynamicBrokerConfig refuses them (what a
    new store must satisfy is tested over a TLS listener in test_security.py)."""
    key = "listener.name.ssl.ssl.keystore.location"
    return {
        "unprefixed": plain(side.call(incremental_alter(
            BROKER, "1", ("ssl.keystore.location", 0, "/x.pem"), ("ssl.key.password", 0, "p"),
            validate_only=True), 1)),
        "default": plain(side.call(incremental_alter(BROKER, "", (key, 0, "/x.pem"), validate_only=True), 1)),
        "non_tls_listener": plain(side.call(incremental_alter(
            BROKER, "1", ("listener.name.plaintext.ssl.keystore.location", 0, "/x.pem"), validate_only=True), 1)),
    }


@case
def case_incremental_alter_configs_errors(side, name):
    side.create_topic(name, 1)
    out = {}
    out["unknown_topic"] = side.call(incremental_alter(TOPIC, name + "-none", ("retention.ms", 0, "1")), 1)
    out["unknown_key"] = side.call(incremental_alter(TOPIC, name, ("no.such", 0, "1")), 1)
    out["bad_value"] = side.call(incremental_alter(TOPIC, name, ("retention.ms", 0, "x")), 1)
    out["append_to_scalar"] = side.call(incremental_alter(TOPIC, name, ("retention.ms", 2, "1")), 1)
    out["validate_only"] = side.call(incremental_alter(TOPIC, name, ("retention.ms", 0, "5000"),
                                                       validate_only=True), 1)
    out["set"] = side.call(incremental_alter(TOPIC, name, ("retention.ms", 0, "5000")), 1)
    out["after"] = described_once(side, name, {"retention.ms": "5000"})
    out["delete"] = side.call(incremental_alter(TOPIC, name, ("retention.ms", 1, None)), 1)
    out["after_delete"] = described_once(side, name, {"retention.ms": "604800000"})
    return {k: plain(v) for k, v in out.items()}


@case
def case_user_scram_credentials(side, name):
    """AlterUserScramCredentials and DescribeUserScramCredentials: a user's credentials for
    both mechanisms, each refusal, and a deletion."""
    import hashlib

    from kafka.protocol.admin.users import (
        AlterUserScramCredentialsRequest as Alter,
    )
    from kafka.protocol.admin.users import (
        DescribeUserScramCredentialsRequest as Describe,
    )

    def upsert(user, mechanism=1, iterations=8192):
        salt = b"0123456789abcdef"
        digest = "sha256" if mechanism != 2 else "sha512"
        return Alter.ScramCredentialUpsertion(
            name=user, mechanism=mechanism, iterations=iterations, salt=salt,
            salted_password=hashlib.pbkdf2_hmac(digest, b"pw", salt, max(1, min(iterations, 8192))))

    def alter(deletions=(), upsertions=()):
        request = Alter(deletions=[Alter.ScramCredentialDeletion(name=n, mechanism=m) for n, m in deletions],
                        upsertions=list(upsertions))
        return plain(side.call(request, 0))

    def describe(*users):
        """(Kafka's order of users and of their mechanisms follows hash maps and varies
        from run to run: compared sorted.)"""
        answer = plain(side.call(Describe(users=[Describe.UserName(name=u) for u in users]), 0))
        answer["results"].sort(key=lambda r: r["user"])
        for r in answer["results"]:
            r["credential_infos"].sort(key=lambda i: i["mechanism"])
        return answer

    user, other = name + "-u", name + "-v"
    out = {"add": alter(upsertions=[upsert(user, 1)]), "add_other": alter(upsertions=[upsert(user, 2, 4096)])}
    out["both_at_once"] = alter(upsertions=[upsert(other, 1), upsert(other, 2)])
    out["described"] = describe(user, name + "-missing")
    out["duplicate_describe"] = describe(user, user)
    out["too_few_iterations"] = alter(upsertions=[upsert(other, 1, 100)])
    out["too_many_iterations"] = alter(upsertions=[upsert(other, 1, 20000)])
    out["unknown_mechanism"] = alter(upsertions=[upsert(other, 0)])
    out["empty_user"] = alter(upsertions=[upsert("", 1)])
    out["twice"] = alter(deletions=[(user, 1)], upsertions=[upsert(user, 1)])
    out["delete_missing"] = alter(deletions=[(other, 1)])
    out["delete"] = alter(deletions=[(user, 2)])
    out["after_delete"] = until_shown(lambda: describe(user), lambda answer: not [
        i for r in answer["results"] for i in r["credential_infos"] if i["mechanism"] == 2])
    return out


@case
def case_list_offsets_empty_partition(side, name):
    side.create_topic(name, 1)
    return {f"v{v}-{ts}": plain(side.call(list_offsets(name, ts), v))
            for v in (1, 7, 8) for ts in (-1, -2, -3, T0) if ts != -3 or v >= 7}


@case
def case_list_offsets_special_timestamps(side, name):
    """-4 earliest local, -5 latest tiered, -6 earliest pending upload: without tiered
    storage, before and after records and after DeleteRecords."""
    side.create_topic(name, 1)
    out = {"empty": {ts: plain(side.call(list_offsets(name, ts), 11)) for ts in (-4, -5, -6)}}
    side.call(produce(name, batch(3)), 9)
    side.call(produce(name, batch(3)), 9)
    out["full"] = {ts: plain(side.call(list_offsets(name, ts), 11)) for ts in (-1, -2, -3, -4, -5, -6)}
    side.call(delete_records(name, 2), 2)
    out["deleted"] = {ts: plain(side.call(list_offsets(name, ts), 11)) for ts in (-2, -4, -5, -6)}
    out["v9"] = plain(side.call(list_offsets(name, -5), 9))
    out["v10"] = plain(side.call(list_offsets(name, -4), 10))
    return out


@case
def case_list_offsets_a_partition_twice(side, name):
    side.create_topic(name, 1)
    return {"twice": plain(side.call(list_offsets(name, -1, -2), 8))}


@case
def case_list_offsets_after_produce(side, name):
    side.create_topic(name, 1)
    side.call(produce(name, batch(5)), 9)
    side.call(produce(name, batch(3, first_ts=T0 - 10_000)), 9)
    return {f"ts{ts}": plain(side.call(list_offsets(name, ts), 8))
            for ts in (-1, -2, -3, T0 - 20_000, T0, T0 + 2500, T0 + 4000, T0 + 99_000)}


@case
def case_list_offsets_unknown(side, name):
    side.create_topic(name, 1)
    return {"unknown_topic": plain(side.call(list_offsets(name + "-none", -1), 8)),
            "unknown_partition": plain(side.call(list_offsets(name, -1, partition=5), 8))}


@case
def case_fetch_out_of_range(side, name):
    side.create_topic(name, 1)
    side.call(produce(name, batch(3)), 9)
    return {"beyond": fetch_summary(side.call(fetch(name, 10), 12)),
            "negative": fetch_summary(side.call(fetch(name, -5), 12)),
            "at_end": fetch_summary(side.call(fetch(name, 3), 12)),
            "from_1": fetch_summary(side.call(fetch(name, 1), 12)),
            "unknown_topic": fetch_summary(side.call(fetch(name + "-none", 0), 12)),
            "unknown_partition": fetch_summary(side.call(fetch(name, 0, partition=3), 12))}


@case
def case_produce_acks(side, name):
    side.create_topic(name, 1)
    out = {}
    for acks in (1, -1):
        out[f"acks{acks}"] = plain(side.call(produce(name, batch(2), acks=acks), 9))
    side.send_only(produce(name, batch(2), acks=0), 9)
    out["after_acks0"] = plain(side.call(list_offsets(name, -1), 8))
    out["acks2"] = plain(side.call(produce(name, batch(2), acks=2), 9))
    out["unknown_topic"] = plain(side.call(produce(name + "-none", batch(1)), 9))
    out["unknown_partition"] = plain(side.call(produce(name, batch(1), partition=4), 9))
    return out


@case
def case_delete_records(side, name):
    side.create_topic(name, 1)
    side.call(produce(name, batch(5)), 9)

    def delete(offset, partition=0, topic=name):
        return plain(side.call(delete_records(topic, offset, partition), 2))
    return {"to_2": delete(2), "high_watermark": delete(-1), "beyond": delete(99),
            "backwards": delete(1), "unknown_partition": delete(0, partition=3),
            "unknown_topic": delete(0, topic=name + "-none"),
            "earliest": plain(side.call(list_offsets(name, -2), 8)),
            "latest": plain(side.call(list_offsets(name, -1), 8))}


def offset_commit(group, topic, generation=-1, member="", offset=1):
    OC = OffsetCommitRequest
    return OC(group_id=group, generation_id_or_member_epoch=generation, member_id=member,
             group_instance_id=None, topics=[OC.OffsetCommitRequestTopic(name=topic, partitions=[
                 OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                     partition_index=0, committed_offset=offset, committed_leader_epoch=-1,
                     committed_metadata="m")])])


def offset_fetch(group, topic=None):
    OF = OffsetFetchRequest
    topics = None if topic is None else [OF.OffsetFetchRequestGroup.OffsetFetchRequestTopics(
        name=topic, partition_indexes=[0, 1])]
    return OF(groups=[OF.OffsetFetchRequestGroup(group_id=group, topics=topics)], require_stable=False)


def join(group, member="", protocol_type="consumer"):
    J = JoinGroupRequest
    return J(group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000,
             member_id=member, group_instance_id=None, protocol_type=protocol_type,
             protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")], reason=None)


def sync(group, generation, member, assignment=b"\x00\x02"):
    S = SyncGroupRequest
    return S(group_id=group, generation_id=generation, member_id=member, group_instance_id=None,
             protocol_type="consumer", protocol_name="range",
             assignments=[S.SyncGroupRequestAssignment(member_id=member, assignment=assignment)])


COORDINATOR_NOT_READY = (14, 15, 16)  # LOAD_IN_PROGRESS, NOT_AVAILABLE, NOT_COORDINATOR


def find_coordinator(side, group):
    """FindCoordinator for `group`, once its coordinator answers: a fresh Kafka creates
    __consumer_offsets on the first FindCoordinator and loads it a moment later."""
    F = FindCoordinatorRequest
    deadline = time.monotonic() + 15
    while True:
        answer = side.call(F(key_type=0, coordinator_keys=[group]), 4)
        ready = answer.coordinators[0].error_code == 0 and describe_groups(
            side, group)["groups"][0]["error_code"] not in COORDINATOR_NOT_READY
        if ready:
            return plain(answer)
        if time.monotonic() > deadline:
            raise AssertionError(f"{side.name}: no coordinator for {group}: {answer}")
        time.sleep(0.1)


def joined_member(side, group):
    """Join `group` as its only member: the first JoinGroup asks for a member id
    (MEMBER_ID_REQUIRED, KIP-394), the second joins with it."""
    first = side.call(join(group), 9)
    second = side.call(join(group, first.member_id), 9)
    return plain(first), plain(second)


@case
def case_offset_commit_and_fetch(side, name):
    side.create_topic(name, 2)
    group = name + "-g"
    out = {"coordinator": find_coordinator(side, group),
           "fetch_unknown_group": plain(side.call(offset_fetch(group + "-none", name), 9)),
           "fetch_unknown_group_all": plain(side.call(offset_fetch(group + "-none"), 9)),
           "commit_simple": plain(side.call(offset_commit(group, name), 9)),
           "fetch": plain(side.call(offset_fetch(group, name), 9)),
           "fetch_all": plain(side.call(offset_fetch(group), 9)),
           "commit_unknown_topic": plain(side.call(offset_commit(group, name + "-none"), 9)),
           "commit_stale_generation": plain(side.call(offset_commit(group, name, 5, "m-1"), 9))}
    first, second = joined_member(side, group + "-2")
    member = second["member_id"]
    out["join_first"], out["join"] = first, second
    out["sync"] = plain(side.call(sync(group + "-2", second["generation_id"], member), 5))
    out["commit_stale_generation_2"] = plain(side.call(
        offset_commit(group + "-2", name, second["generation_id"] + 1, member), 9))
    out["commit_unknown_member"] = plain(side.call(
        offset_commit(group + "-2", name, second["generation_id"], "who"), 9))
    out["commit_member"] = plain(side.call(
        offset_commit(group + "-2", name, second["generation_id"], member), 9))
    return out


def describe_groups(side, *groups, version=5):
    return plain(side.call(DescribeGroupsRequest(groups=list(groups),
                                                 include_authorized_operations=False), version))


@case
def case_describe_groups_each_state(side, name):
    side.create_topic(name, 1)
    find_coordinator(side, name + "-none")
    out = {"dead": describe_groups(side, name + "-none"),
           "dead_v6": describe_groups(side, name + "-none", version=6)}
    find_coordinator(side, name + "-empty")
    side.call(offset_commit(name + "-empty", name), 9)
    out["empty"] = describe_groups(side, name + "-empty")
    group = name + "-g"
    find_coordinator(side, group)
    first, second = joined_member(side, group)
    member, generation = second["member_id"], second["generation_id"]
    out["completing_rebalance"] = describe_groups(side, group)
    side.call(sync(group, generation, member), 5)
    out["stable"] = describe_groups(side, group)
    H = HeartbeatRequest
    out["heartbeat"] = plain(side.call(H(group_id=group, generation_id=generation,
                                         member_id=member, group_instance_id=None), 4))
    out["heartbeat_stale"] = plain(side.call(H(group_id=group, generation_id=generation + 1,
                                               member_id=member, group_instance_id=None), 4))
    out["list"] = [g for g in plain(side.call(ListGroupsRequest(states_filter=[], types_filter=[]), 5))
                   ["groups"] if g["group_id"].startswith(name)]
    # A second member joins on a connection of its own: its JoinGroup waits for the first
    # member to rejoin or leave, and meanwhile the group is PreparingRebalance.
    other = Side(side.name + "-2", side.bootstrap)
    try:
        second_id = other.call(join(group), 9).member_id
        other.send_only(join(group, second_id), 9)
        deadline = time.monotonic() + 10
        while (state := describe_groups(side, group))["groups"][0]["group_state"] == "Stable":
            assert time.monotonic() < deadline, "the second member's join did not start a rebalance"
            time.sleep(0.05)
        out["preparing_rebalance"] = state
        out["heartbeat_rebalancing"] = plain(side.call(H(
            group_id=group, generation_id=generation, member_id=member, group_instance_id=None), 4))
        L = LeaveGroupRequest
        out["leave"] = plain(side.call(L(group_id=group, members=[L.MemberIdentity(
            member_id=member, group_instance_id=None, reason=None)]), 5))
        out["second_joined"] = plain(other.conn.receive(JoinGroupResponse, 9))
        out["after_leave"] = describe_groups(side, group)
    finally:
        other.close()
    return out


@case
def case_versions_older_than_kafka_4_are_refused(side, name):
    """KIP-896: Produce v0-v2 and Fetch v0-v3 (message formats 0 and 1) are gone; the
    broker closes the connection, having no response of that version to send."""
    side.create_topic(name, 1)
    out = {}
    for label, request, version in (("produce_v2", produce(name, batch(1)), 2),
                                    ("fetch_v3", fetch(name, 0), 3),
                                    ("list_offsets_v0", list_offsets(name, -1), 0)):
        try:
            out[label] = plain(side.call(request, version))
        except ConnectionError:
            out[label] = "connection closed"
        side.reconnect()
    return out


@case
def case_delete_topics(side, name):
    side.create_topic(name, 2)
    D = DeleteTopicsRequest
    out = {"v5": plain(side.call(D(topic_names=[name, name + "-none", "bad name!"], timeout_ms=10000), 5)),
           "again": plain(side.call(D(topic_names=[name], timeout_ms=10000), 5))}
    side.create_topic(name + "-id", 1)
    M = MetadataRequest
    topic_id = side.call(M(topics=[M.MetadataRequestTopic(name=name + "-id")],
                           allow_auto_topic_creation=False), 12).topics[0].topic_id
    out["v6"] = plain(side.call(D(topics=[D.DeleteTopicState(name=None, topic_id=topic_id),
                                          D.DeleteTopicState(name=None, topic_id=uuid.uuid4())],
                                  timeout_ms=10000), 6))
    return out


@case
def case_create_partitions(side, name):
    side.create_topic(name, 2)
    C = CreatePartitionsRequest

    def grow(count, topic=name, validate_only=False):
        return plain(side.call(C(topics=[C.CreatePartitionsTopic(name=topic, count=count, assignments=None)],
                                 timeout_ms=10000, validate_only=validate_only), 3))
    out = {"same": grow(2), "fewer": grow(1), "validate_only": grow(4, validate_only=True),
           "unknown": grow(3, topic=name + "-none"), "grow": grow(3), "too_many": grow(1_000_000)}
    deadline = time.monotonic() + 5  # Kafka's broker learns of new partitions a moment later
    while (count := len(side.call(MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name=name)],
            allow_auto_topic_creation=False), 12).topics[0].partitions)) != 3:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    out["metadata"] = count
    return out


@case
def case_alter_configs_legacy(side, name):
    side.create_topic(name, 1, {"retention.ms": "1000", "segment.ms": "100000"})
    A = AlterConfigsRequest

    def alter(configs, topic=name, validate_only=False, resource_type=TOPIC):
        return plain(side.call(A(resources=[A.AlterConfigsResource(
            resource_type=resource_type, resource_name=topic, configs=[
                A.AlterConfigsResource.AlterableConfig(name=k, value=v) for k, v in configs.items()])],
            validate_only=validate_only), 2))
    return {"validate_only": alter({"retention.ms": "5"}, validate_only=True),
            "bad": alter({"retention.ms": "x"}), "unknown_key": alter({"nope": "1"}),
            "unknown_topic": alter({"retention.ms": "5"}, topic=name + "-none"),
            "replace": alter({"retention.ms": "7000"}),
            # AlterConfigs replaces the whole set: segment.ms returns to its default
            "after": described_once(side, name, {"retention.ms": "7000", "segment.ms": "604800000"})}


@case
def case_incremental_alter_configs_lists(side, name):
    side.create_topic(name, 1)
    out = {}
    for label, op, value, then in (("append", 2, "compact", "delete,compact"),
                                   ("append_again", 2, "compact,delete", "delete,compact"),
                                   ("subtract", 3, "delete", "compact"),
                                   ("subtract_all", 3, "compact", "")):
        out[label] = plain(side.call(incremental_alter(TOPIC, name, ("cleanup.policy", op, value)), 1))
        out[label + "_after"] = described_once(side, name, {"cleanup.policy": then})
    # validate_only: Kafka would keep the key as a dynamic config of its broker 1, which the
    # tools tests then see on the shared peer.
    out["broker_unknown"] = plain(side.call(
        incremental_alter(BROKER, "1", ("no.such", 0, "1"), validate_only=True), 1))
    return out


@case
def case_groups_delete_and_offset_delete(side, name):
    side.create_topic(name, 2)
    group = name + "-g"
    find_coordinator(side, group)
    side.call(offset_commit(group, name), 9)
    OD = OffsetDeleteRequest
    out = {"offset_delete": plain(side.call(OD(group_id=group, topics=[OD.OffsetDeleteRequestTopic(
        name=name, partitions=[OD.OffsetDeleteRequestTopic.OffsetDeleteRequestPartition(partition_index=i)
                               for i in (0, 1)])]), 0)),
        "offset_delete_unknown_group": plain(side.call(OD(group_id=group + "-none", topics=[]), 0)),
        "fetch_after": plain(side.call(offset_fetch(group, name), 9))}
    find_coordinator(side, group + "-live")
    joined_member(side, group + "-live")
    out["delete"] = plain(side.call(DeleteGroupsRequest(groups_names=[group, group + "-none",
                                                                      group + "-live"]), 2))
    out["describe_after"] = describe_groups(side, group)
    return out


@case
def case_group_membership_errors(side, name):
    group = name + "-g"
    find_coordinator(side, group)
    out = {"sync_unknown_group": plain(side.call(sync(group, 1, "who"), 5)),
           "heartbeat_unknown": plain(side.call(HeartbeatRequest(
               group_id=group, generation_id=1, member_id="who", group_instance_id=None), 4)),
           "join_bad_session": plain(side.call(JoinGroupRequest(
               group_id=group, session_timeout_ms=1, rebalance_timeout_ms=1000, member_id="",
               group_instance_id=None, protocol_type="consumer",
               protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")],
               reason=None), 9)),
           "join_unknown_member": plain(side.call(join(group, "who"), 9)),
           "join_no_protocols": plain(side.call(JoinGroupRequest(
               group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=1000, member_id="",
               group_instance_id=None, protocol_type="consumer", protocols=[], reason=None), 9)),
           "join_empty_group_id": plain(side.call(join(""), 9))}
    first, second = joined_member(side, group)
    member = second["member_id"]
    out["join_other_protocol_type"] = plain(side.call(join(group, protocol_type="connect"), 9))
    out["sync_wrong_generation"] = plain(side.call(sync(group, second["generation_id"] + 1, member), 5))
    out["sync"] = plain(side.call(sync(group, second["generation_id"], member), 5))
    LG = ListGroupsRequest
    out["list_stable"] = [g for g in plain(side.call(LG(states_filter=["Stable"], types_filter=[]), 5))
                          ["groups"] if g["group_id"].startswith(name)]
    out["list_empty_state"] = [g for g in plain(side.call(LG(states_filter=["Empty"], types_filter=[]), 5))
                               ["groups"] if g["group_id"].startswith(name)]
    return out


@case
def case_describe_cluster(side, name):
    DC = DescribeClusterRequest
    out = {f"v{v}": plain(side.call(DC(include_cluster_authorized_operations=False), v))
           for v in (0, 1, 2)}
    out["v2_fenced_too"] = plain(side.call(DC(include_cluster_authorized_operations=False,
                                              include_fenced_brokers=True), 2))
    out["controller_endpoint"] = plain(side.call(DC(include_cluster_authorized_operations=False,
                                                    endpoint_type=2), 1))
    return out


@case
def case_authorized_operations_without_an_authorizer(side, name):
    """Asked for, they are every operation Kafka supports for the resource type (issue 16)."""
    side.create_topic(name, 1)
    M = MetadataRequest
    topic = side.call(M(topics=[M.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False,
                        include_topic_authorized_operations=True), 12).topics[0]
    cluster = side.call(M(topics=[], allow_auto_topic_creation=False,
                          include_cluster_authorized_operations=True), 10)
    described = side.call(DescribeClusterRequest(include_cluster_authorized_operations=True), 1)
    find_coordinator(side, name + "-empty")
    side.call(offset_commit(name + "-empty", name), 9)
    groups = side.call(DescribeGroupsRequest(groups=[name + "-none", name + "-empty"],
                                             include_authorized_operations=True), 5).groups
    def ops(bits):  # (None: not computed)
        return None if bits is None else sorted(bits)
    return {"metadata_topic": ops(topic.authorized_operations),
            "metadata_cluster": ops(cluster.authorized_operations),
            "describe_cluster": ops(described.authorized_operations),
            "describe_groups_unknown": ops(groups[0].authorized_operations),
            "describe_groups_empty": ops(groups[1].authorized_operations)}


@case
def case_client_quotas(side, name):
    """AlterClientQuotas / DescribeClientQuotas, good and bad entries (issue 16)."""
    from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest
    A = AlterClientQuotasRequest.EntryData
    D = DescribeClientQuotasRequest

    def alter(entity, ops, validate_only=False):
        return plain(side.call(AlterClientQuotasRequest(entries=[A(
            entity=[A.EntityData(entity_type=t, entity_name=n) for t, n in entity],
            ops=[A.OpData(key=k, value=v or 0.0, remove=v is None) for k, v in ops])],
            validate_only=validate_only), 1))

    def describe(components, strict=False):
        return plain(side.call(D(components=[D.ComponentData(entity_type=t, match_type=m, match=n)
                                             for t, m, n in components], strict=strict), 1))
    out = {"set": alter([("client-id", name)], [("producer_byte_rate", 1024.0), ("request_percentage", 12.5)]),
           "set_user_default_client": alter([("user", name), ("client-id", None)], [("consumer_byte_rate", 2048.0)]),
           "unknown_key": alter([("client-id", name)], [("no_such_quota", 1.0)]),
           "fractional_rate": alter([("client-id", name)], [("producer_byte_rate", 1.5)]),
           "empty_entity": alter([], [("producer_byte_rate", 1.0)]),
           "duplicate_type": alter([("user", "a"), ("user", "b")], [("producer_byte_rate", 1.0)]),
           "validate_only": alter([("client-id", name + "-v")], [("producer_byte_rate", 1.0)], True)}
    out["exact"] = describe([("client-id", 0, name)])
    out["exact_strict"] = describe([("client-id", 0, name)], strict=True)
    out["user"] = describe([("user", 0, name)])
    out["user_default_client"] = describe([("user", 0, name), ("client-id", 1, None)], strict=True)
    out["never_set"] = describe([("client-id", 0, name + "-v")])
    out["duplicate_filter"] = describe([("user", 0, "x"), ("user", 2, None)])
    out["remove"] = alter([("client-id", name)], [("producer_byte_rate", None)])
    out["after_remove"] = until_shown(lambda: describe([("client-id", 0, name)]),
                                      lambda answer: "producer_byte_rate" not in repr(answer))
    alter([("client-id", name)], [("request_percentage", None)])
    alter([("user", name), ("client-id", None)], [("consumer_byte_rate", None)])
    return out


@case
def case_produce_idempotent_and_producers(side, name):
    side.create_topic(name, 1)
    deadline = time.monotonic() + 15
    while (pid := side.call(InitProducerIdRequest(
            transactional_id=None, transaction_timeout_ms=-1, producer_id=-1, producer_epoch=-1),
            4)).error_code in COORDINATOR_NOT_READY:  # a fresh Kafka loads __transaction_state
        assert time.monotonic() < deadline, pid
        time.sleep(0.1)
    out = {"init": plain(pid)}

    def send(seq, n=2, epoch=pid.producer_epoch):
        records = build_batch([Record(b"k", b"v%d" % i, (), T0 + i) for i in range(n)],
                              producer_id=pid.producer_id, producer_epoch=epoch, base_sequence=seq)
        return plain(side.call(produce(name, records), 9))
    out["first"] = send(0)
    out["duplicate"] = send(0)
    out["gap"] = send(5)
    out["next"] = send(2)
    out["old_epoch"] = send(4, epoch=pid.producer_epoch - 1) if pid.producer_epoch > 0 else None
    DP = DescribeProducersRequest
    out["producers"] = plain(side.call(DP(topics=[DP.TopicRequest(name=name, partition_indexes=[0, 1])]), 0))
    return out


@case
def case_produce_bad_batches(side, name):
    side.create_topic(name, 1, {"max.message.bytes": "2000"})
    good = batch(2)
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF  # the CRC covers the records
    big = build_batch([Record(b"k", b"x" * 5000, (), T0)])
    future = build_batch([Record(b"k", b"v", (), int(time.time() * 1000) + 7_200_000)])
    out = {"corrupt": plain(side.call(produce(name, bytes(corrupt)), 9)),
           "too_large": plain(side.call(produce(name, big), 9)),
           "future_timestamp": plain(side.call(produce(name, future), 9)),
           "good": plain(side.call(produce(name, good), 9))}
    for error in out["future_timestamp"]["responses"][0]["partition_responses"][0]["record_errors"]:
        # the record's timestamp and the allowed range come from each broker's clock
        error["batch_index_error_message"] = re.sub(r"-?\d+", "<ms>", error["batch_index_error_message"])
    return out


@case
def case_offset_for_leader_epoch(side, name):
    side.create_topic(name, 1)
    side.call(produce(name, batch(3)), 9)
    OE = OffsetForLeaderEpochRequest

    def ask(epoch, current=-1, partition=0, topic=name):
        return plain(side.call(OE(replica_id=-1, topics=[OE.OffsetForLeaderTopic(topic=topic, partitions=[
            OE.OffsetForLeaderTopic.OffsetForLeaderPartition(partition=partition, current_leader_epoch=current,
                                                             leader_epoch=epoch)])]), 4))
    return {"epoch0": ask(0), "epoch5": ask(5), "fenced": ask(0, current=7),
            "unknown_partition": ask(0, partition=3), "unknown_topic": ask(0, topic=name + "-none")}


@case
def case_offsets_by_topic_id(side, name):
    """OffsetCommit and OffsetFetch v10 name topics by id (KIP-848's consumers; the Java
    client uses them for classic groups too once it knows the ids)."""
    side.create_topic(name, 2)
    M = MetadataRequest
    topic_id = side.call(M(topics=[M.MetadataRequestTopic(name=name)],
                           allow_auto_topic_creation=False), 12).topics[0].topic_id
    group = name + "-g"
    find_coordinator(side, group)
    OC, OF = OffsetCommitRequest, OffsetFetchRequest

    def commit(tid, offset=3):
        return plain(side.call(OC(group_id=group, generation_id_or_member_epoch=-1, member_id="",
                                  group_instance_id=None, topics=[OC.OffsetCommitRequestTopic(
                                      topic_id=tid, partitions=[
                                          OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                                              partition_index=0, committed_offset=offset,
                                              committed_leader_epoch=-1, committed_metadata="m")])]),
                               10))

    def fetch_offsets(tid=None):
        topics = None if tid is None else [OF.OffsetFetchRequestGroup.OffsetFetchRequestTopics(
            topic_id=tid, partition_indexes=[0, 1])]
        return plain(side.call(OF(groups=[OF.OffsetFetchRequestGroup(
            group_id=group, member_id=None, member_epoch=-1, topics=topics)], require_stable=False), 10))
    unknown = uuid.uuid4()
    return {"commit": commit(topic_id), "commit_unknown_id": commit(unknown),
            "fetch": fetch_offsets(topic_id), "fetch_unknown_id": fetch_offsets(unknown),
            "fetch_all": fetch_offsets(),
            "fetch_by_name_v9": plain(side.call(offset_fetch(group, name), 9))}


@case
def case_api_versions_features(side, name):
    """ApiVersions v3/v4 apart from the API list (compared by test_api_versions_are_within_kafkas)."""
    request = ApiVersionsRequest(client_software_name="odradek-oracle", client_software_version="1")
    return {f"v{v}": plain(side.call(request, v)) | {"api_keys": None} for v in (3, 4)}


@case
def case_update_features(side, name):
    """UpdateFeatures refusals, all validate_only (the peer is shared): v1 answers per feature
    too, v2 only at the top level."""
    UF = UpdateFeaturesRequest

    def update(version, *updates):
        return plain(side.call(UF(timeout_ms=5000, validate_only=True, feature_updates=[
            UF.FeatureUpdateKey(feature=f, max_version_level=level, upgrade_type=kind)
            for f, level, kind in updates]), version))
    out = {}
    for v in (1, 2):
        out[f"v{v}_unknown"] = update(v, ("foo.bar", 1, 1))
        out[f"v{v}_downgrade_as_upgrade"] = update(v, ("metadata.version", 21, 1))
        out[f"v{v}_safe_downgrade"] = update(v, ("metadata.version", 21, 2))
        out[f"v{v}_one_bad_of_two"] = update(v, ("group.version", 0, 2), ("foo.bar", 1, 1))
        out[f"v{v}_disable_what_is_off"] = update(v, ("no.such.version", 0, 2))
    return out


@case
def case_partition_reassignments(side, name):
    """AlterPartitionReassignments' refusals and ListPartitionReassignments on one node (the
    moves themselves are tested on three, tests/peers/test_tools.py)."""
    side.create_topic(name, 2)
    A, L = AlterPartitionReassignmentsRequest, ListPartitionReassignmentsRequest

    def alter(version, *moves, **kwargs):
        by_topic: dict[str, list] = {}
        for topic, partition, replicas in moves:
            by_topic.setdefault(topic, []).append(
                A.ReassignableTopic.ReassignablePartition(partition_index=partition, replicas=replicas))
        answer = plain(side.call(A(timeout_ms=10000, topics=[A.ReassignableTopic(name=t, partitions=ps)
                                                             for t, ps in by_topic.items()], **kwargs), version))
        answer["responses"].sort(key=lambda r: r["name"])  # Kafka's order is a hash map's
        return answer
    return {
        "refusals": alter(0, (name, 0, []), (name, 1, [1, 1]), (name + "-none", 0, [1])),
        "unregistered": alter(0, (name, 0, [1, 7])),
        "cancel_none": alter(1, (name, 0, None), allow_replication_factor_change=True),
        "rf_change": alter(1, (name, 1, [1, 1]), allow_replication_factor_change=False),
        "same_replicas": alter(0, (name, 0, [1])),
        "list_all": plain(side.call(L(timeout_ms=10000, topics=None), 0)),
        "list_named": plain(side.call(L(timeout_ms=10000, topics=[L.ListPartitionReassignmentsTopics(
            name=name, partition_indexes=[0, 1, 5])]), 0)),
    }


@case
def case_log_dirs(side, name):
    """DescribeLogDirs v4-v5 of an empty topic and AlterReplicaLogDirs into the node's own log
    directory (where its replicas are: nothing moves) and into one it does not have."""
    side.create_topic(name, 2)
    D, A = DescribeLogDirsRequest, AlterReplicaLogDirsRequest
    out = {}
    for v in (4, 5):
        answer = plain(side.call(D(topics=[D.DescribableLogDirTopic(topic=name, partitions=[0, 1, 7])]), v))
        for result in answer["results"]:
            out["log_dir"] = result["log_dir"]
            result.update(log_dir="<dir>", total_bytes=result["total_bytes"] > 0,
                          usable_bytes=result["usable_bytes"] > 0)
        out[f"describe_v{v}"] = answer
    for label, path in (("own", out.pop("log_dir")), ("unknown", "/no/such/dir")):
        answer = plain(side.call(A(dirs=[A.AlterReplicaLogDir(path=path, topics=[
            A.AlterReplicaLogDir.AlterReplicaLogDirTopic(name=name, partitions=[0, 1]),
            A.AlterReplicaLogDir.AlterReplicaLogDirTopic(name=name + "-none", partitions=[0])])]), 2))
        answer["results"].sort(key=lambda r: r["topic_name"])  # Kafka's order is a hash map's
        out[f"alter_{label}"] = answer
    return out


@case
def case_fetch_across_versions(side, name):
    """The same records through Fetch v4 to v18: compressed and plain batches, a small
    max_bytes (KIP-74: the first batch comes whole), read_committed, topic ids from v13."""
    from kafka.record import MemoryRecordsBuilder
    side.create_topic(name, 1)
    side.call(produce(name, batch(4)), 9)
    builder = MemoryRecordsBuilder(magic=2, compression_type=1, batch_size=1 << 20)  # gzip
    for i in range(3):
        builder.append(timestamp=T0 + 10_000 + i, key=b"gz%d" % i, value=b"v" * 50, headers=[])
    builder.close()
    side.call(produce(name, builder.buffer()), 9)
    M = MetadataRequest
    topic_id = side.call(M(topics=[M.MetadataRequestTopic(name=name)],
                           allow_auto_topic_creation=False), 12).topics[0].topic_id
    out = {}
    for version in (4, 7, 11, 12, 13, 16, 17, 18):
        request = fetch(name, 0)
        if version >= 13:
            request.topics[0].topic_id = topic_id
        out[f"v{version}"] = fetch_summary(side.call(request, version))
    small = fetch(name, 1)
    small.max_bytes = small.topics[0].partitions[0].partition_max_bytes = 10
    out["small_max_bytes"] = fetch_summary(side.call(small, 12))
    committed = fetch(name, 0)
    committed.isolation_level = 1
    out["read_committed"] = fetch_summary(side.call(committed, 12))
    unknown_id = fetch(name, 0)
    unknown_id.topics[0].topic_id = uuid.uuid4()
    out["unknown_topic_id"] = fetch_summary(side.call(unknown_id, 13))
    return out


@case
def case_api_versions_newer_than_served(side, name):
    """KIP-511: an ApiVersions request newer than the broker's is answered, in a v0 body,
    with UNSUPPORTED_VERSION and the versions served, and the connection stays open."""
    import struct

    from kafka.protocol.metadata import ApiVersionsResponse

    from odradek.broker.client import recv_frame
    client = b"oracle"
    header = struct.pack(">hhih", 18, 127, 7, len(client)) + client + b"\x00"
    body = b"\x07oracle\x021\x00"  # v3+ body: compact client software name and version
    side.conn.sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    frame = recv_frame(side.conn.sock)
    answer = plain(ApiVersionsResponse.decode(frame[4:], version=0))
    return {"correlation_id": struct.unpack_from(">i", frame)[0],
            "error_code": answer["error_code"],
            "api_versions_lists_itself": any(k["api_key"] == 18 for k in answer["api_keys"]),
            "still_open": plain(side.call(ApiVersionsRequest(), 0))["error_code"]}


@case
def case_produce_keyless_to_compacted_topic(side, name):
    """A compacted topic refuses a record without a key, in a plain or compressed batch."""
    from kafka.record import MemoryRecordsBuilder
    side.create_topic(name, 1, {"cleanup.policy": "compact"})
    keyless = build_batch([Record(b"k0", b"v", (), T0), Record(None, b"v", (), T0 + 1),
                           Record(b"k2", b"v", (), T0 + 2)])
    builder = MemoryRecordsBuilder(magic=2, compression_type=1, batch_size=1 << 20)  # gzip
    builder.append(timestamp=T0, key=None, value=b"v", headers=[])
    builder.close()
    return {"plain": plain(side.call(produce(name, keyless), 9)),
            "gzip": plain(side.call(produce(name, builder.buffer()), 9)),
            "keyed": plain(side.call(produce(name, batch(2)), 9)),
            "offsets": plain(side.call(list_offsets(name, -1), 8))}


@case
def case_metadata_by_topic_id(side, name):
    side.create_topic(name, 1)
    M = MetadataRequest
    topic_id = side.call(M(topics=[M.MetadataRequestTopic(name=name)],
                           allow_auto_topic_creation=False), 12).topics[0].topic_id
    return {f"v{v}-{label}": plain(side.call(M(topics=[M.MetadataRequestTopic(name=None, topic_id=tid)],
                                               allow_auto_topic_creation=False), v)) | {"brokers": None}
            for v in (12, 13) for label, tid in (("known", topic_id), ("unknown", uuid.uuid4()))}


@case
def case_list_groups_filters(side, name):
    group = name + "-g"
    find_coordinator(side, group)
    side.create_topic(name, 1)
    side.call(offset_commit(group, name), 9)
    LG = ListGroupsRequest

    def listed(states, types, version=5):
        return [g for g in plain(side.call(LG(states_filter=states, types_filter=types), version))
                ["groups"] if g["group_id"].startswith(name)]
    return {"all": listed([], []), "classic": listed([], ["classic"]), "consumer": listed([], ["consumer"]),
            "empty": listed(["Empty"], []), "stable": listed(["Stable"], []),
            "mixed_case": listed(["empty"], ["Classic"]), "v3": listed([], [], 3)}


@case
def case_static_membership(side, name):
    """group_instance_id (KIP-345): a static member joins without MEMBER_ID_REQUIRED, a
    restart with the same instance id takes the old member's place, and LeaveGroup by
    instance id removes it."""
    group = name + "-g"
    find_coordinator(side, group)
    J = JoinGroupRequest

    def join_static(member="", instance="i-1"):
        return plain(side.call(J(group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000,
                                 member_id=member, group_instance_id=instance, protocol_type="consumer",
                                 protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")],
                                 reason=None), 9))
    out = {"join": join_static()}
    member = out["join"]["member_id"]
    S = SyncGroupRequest
    out["sync"] = plain(side.call(S(group_id=group, generation_id=out["join"]["generation_id"],
                                    member_id=member, group_instance_id="i-1", protocol_type="consumer",
                                    protocol_name="range", assignments=[S.SyncGroupRequestAssignment(
                                        member_id=member, assignment=b"\x00\x03")]), 5))
    out["rejoin_as_restarted"] = join_static()
    out["old_member_heartbeat"] = plain(side.call(HeartbeatRequest(
        group_id=group, generation_id=out["join"]["generation_id"], member_id=member,
        group_instance_id="i-1"), 4))
    out["described"] = describe_groups(side, group)
    L = LeaveGroupRequest
    out["leave_unknown_instance"] = plain(side.call(L(group_id=group, members=[L.MemberIdentity(
        member_id="", group_instance_id="i-9", reason=None)]), 5))
    out["leave"] = plain(side.call(L(group_id=group, members=[L.MemberIdentity(
        member_id="", group_instance_id="i-1", reason=None)]), 5))
    out["after_leave"] = describe_groups(side, group)
    return out


def _now_masked(value, now_ms: int):
    """`value` with every integer within ten minutes of `now_ms` replaced by "<now>"."""
    if isinstance(value, dict):
        return {k: _now_masked(v, now_ms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_now_masked(v, now_ms) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value - now_ms) < 600_000:
        return "<now>"
    return value


@case
def case_log_append_time_topic(side, name):
    """message.timestamp.type=LogAppendTime: the broker's clock stamps each batch; the
    produce answer and the fetched records carry it (masked: the clocks differ)."""
    side.create_topic(name, 1, {"message.timestamp.type": "LogAppendTime"})
    now = int(time.time() * 1000)
    out = {"produce": plain(side.call(produce(name, batch(3)), 9)),
           "fetch": fetch_summary(side.call(fetch(name, 0), 12)),
           "by_time": plain(side.call(list_offsets(name, now - 60_000), 8)),
           "max_timestamp": plain(side.call(list_offsets(name, -3), 8))}
    return _now_masked(out, now)


@case
def case_group_protocol_mismatch_and_follower_sync(side, name):
    """A member whose protocols share none with the group's (INCONSISTENT_GROUP_PROTOCOL),
    and a rebalance of two members where the follower syncs before the leader."""
    group = name + "-g"
    find_coordinator(side, group)
    first, second = joined_member(side, group)
    leader = second["member_id"]
    J = JoinGroupRequest
    out = {"mismatch": plain(side.call(J(
        group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="",
        group_instance_id=None, protocol_type="consumer",
        protocols=[J.JoinGroupRequestProtocol(name="roundrobin-only", metadata=b"")], reason=None), 9))}
    side.call(sync(group, second["generation_id"], leader), 5)
    other = Side(side.name + "-2", side.bootstrap)
    try:
        follower_id = other.call(join(group), 9).member_id
        other.send_only(join(group, follower_id), 9)  # waits for the leader to rejoin
        rejoined = side.call(join(group, leader), 9)
        follower_join = other.conn.receive(JoinGroupResponse, 9)
        out["leader_rejoined"] = plain(rejoined)
        out["follower_joined"] = plain(follower_join)
        generation = rejoined.generation_id
        other.send_only(sync(group, generation, follower_id, b""), 5)  # waits for the leader's
        S = SyncGroupRequest
        out["leader_sync"] = plain(side.call(S(
            group_id=group, generation_id=generation, member_id=leader, group_instance_id=None,
            protocol_type="consumer", protocol_name="range", assignments=[
                S.SyncGroupRequestAssignment(member_id=leader, assignment=b"\x00\x0a"),
                S.SyncGroupRequestAssignment(member_id=follower_id, assignment=b"\x00\x0b")]), 5))
        out["follower_sync"] = plain(other.conn.receive(SyncGroupResponse, 5))
        out["stable"] = describe_groups(side, group)
    finally:
        other.close()
    return out


@case
def case_fetch_sessions(side, name):
    """KIP-227: a fetch with session epoch 0 asks for a session; one naming a session the
    broker never gave is FETCH_SESSION_ID_NOT_FOUND."""
    side.create_topic(name, 1)
    side.call(produce(name, batch(2)), 9)
    open_session = fetch(name, 0)
    open_session.session_epoch = 0
    out = {"open": fetch_summary(side.call(open_session, 12))}
    out["open"]["session_id"] = "opened" if out["open"]["session_id"] else "declined"
    unknown = fetch(name, 0)
    unknown.session_id, unknown.session_epoch = 123456, 1
    out["unknown_session"] = fetch_summary(side.call(unknown, 12))
    return out


@case
def case_produce_acks0_failure_closes_the_connection(side, name):
    """acks=0 has no answer to carry an error: a failed partition closes the connection,
    which makes the client refresh its metadata."""
    side.create_topic(name, 1)
    out = {}
    for label, topic in (("good", name), ("unknown_partition_topic", name + "-none")):
        side.send_only(produce(topic, batch(1), acks=0), 9)
        try:
            out[label] = plain(side.call(list_offsets(name, -1), 8))
        except ConnectionError:
            out[label] = "connection closed"
        side.reconnect()
    return out


def txn_init(side, tid: str, timeout_ms: int = 60000, version: int = 4):
    """InitProducerId for a transactional id once its coordinator answers (a fresh broker
    creates and loads __transaction_state on the first FindCoordinator with key_type 1)."""
    deadline = time.monotonic() + 20
    while True:
        side.call(FindCoordinatorRequest(key_type=1, coordinator_keys=[tid]), 4)
        answer = side.call(InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=timeout_ms,
                                                 producer_id=-1, producer_epoch=-1), version)
        if answer.error_code not in (*COORDINATOR_NOT_READY, 51):  # 51: CONCURRENT_TRANSACTIONS
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)


def add_partitions(tid, pid, epoch, topics: dict[str, list[int]]):
    A = AddPartitionsToTxnRequest
    return A(v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
             v3_and_below_topics=[A.AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in topics.items()])


@case
def case_transactions_v1(side, name):
    """A transaction through the raw APIs: errors for bad input, then commit and abort, and
    what read_committed fetches and ListOffsets answer."""
    side.create_topic(name, 2)
    tid = name + "-tx"
    init = txn_init(side, tid)
    out = {"init": plain(init),
           "coordinator": plain(side.call(FindCoordinatorRequest(key_type=1, coordinator_keys=[tid]), 4)),
           # an empty transactional id has a coordinator too (InitProducerId then answers
           # as for a producer without one)
           "coordinator_empty_id": plain(side.call(FindCoordinatorRequest(key_type=1, coordinator_keys=[""]), 4)),
           "init_timeout_too_long": plain(txn_init(side, name + "-tx2", timeout_ms=900001))}
    pid, epoch = init.producer_id, init.producer_epoch

    def settled(call):
        """The answer once no transaction of the id is completing (Kafka answers EndTxn
        before its markers are written, Odradek after: CONCURRENT_TRANSACTIONS meanwhile)."""
        deadline = time.monotonic() + 10
        while (answer := call())["error_code" if "error_code" in answer else "results_by_topic_v3_and_below"] \
                in (51, [{"name": name, "results_by_partition": [{"partition_index": 0,
                                                                   "partition_error_code": 51}]}]):
            assert time.monotonic() < deadline, answer
            time.sleep(0.1)
        return answer

    def txn_produce(records, partition=0, transactional_id=tid, version=9):
        request = produce(name, records, partition=partition)
        request.transactional_id = transactional_id
        return plain(side.call(request, version))

    def txn_batch(seq, value=b"v"):
        return build_batch([Record(b"k", value, (), T0)], producer_id=pid, producer_epoch=epoch,
                           base_sequence=seq, transactional=True)

    def end(commit, version=3, epoch_=None):
        return plain(side.call(EndTxnRequest(transactional_id=tid, producer_id=pid,
                                             producer_epoch=epoch if epoch_ is None else epoch_,
                                             committed=commit), version))
    out["end_empty"] = end(True)
    out["add_unknown_topic"] = plain(side.call(add_partitions(tid, pid, epoch, {name: [0], name + "-none": [0]}), 3))
    out["add_wrong_producer"] = plain(side.call(add_partitions(tid, pid + 1, epoch, {name: [0]}), 3))
    out["add_stale_epoch_v1"] = plain(side.call(add_partitions(tid, pid, epoch - 1, {name: [0]}), 1))
    out["add_stale_epoch_v3"] = plain(side.call(add_partitions(tid, pid, epoch - 1, {name: [0]}), 3))
    out["add"] = plain(side.call(add_partitions(tid, pid, epoch, {name: [0]}), 3))
    out["produce_without_transactional_id"] = txn_produce(txn_batch(0, b"x"), transactional_id=None)
    out["produce_not_added"] = txn_produce(txn_batch(0, b"x"), partition=1)
    out["produce_not_added_v11"] = txn_produce(txn_batch(0, b"x"), partition=1, version=11)
    deadline = time.monotonic() + 30  # the group's coordinator (__consumer_offsets created on the way)
    while side.call(FindCoordinatorRequest(key_type=0, coordinator_keys=[name + "-g"]), 4) \
            .coordinators[0].error_code:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    T = TxnOffsetCommitRequest  # without AddOffsetsToTxn: the offsets partition is not in it
    for version in (3, 4):
        while True:  # until the group's coordinator has loaded its partition
            answer = plain(side.call(T(
                transactional_id=tid, group_id=name + "-g", producer_id=pid, producer_epoch=epoch,
                generation_id=-1, member_id="", group_instance_id=None, topics=[T.TxnOffsetCommitRequestTopic(
                    name=name, partitions=[T.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                        partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                        committed_metadata="")])]), version))
            if answer["topics"][0]["partitions"][0]["error_code"] not in (14, 15, 16) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        out[f"txn_offset_commit_not_added_v{version}"] = answer
    out["produce"] = txn_produce(txn_batch(0, b"committed"))
    out["end_stale_epoch_v1"] = end(True, 1, epoch - 1)
    out["end_stale_epoch_v3"] = end(True, 3, epoch - 1)
    out["commit"] = end(True)
    out["commit_again"] = settled(lambda: end(True))
    out["abort_after_commit"] = end(False)
    out["add_2"] = settled(lambda: plain(side.call(add_partitions(tid, pid, epoch, {name: [0]}), 3)))
    out["produce_2"] = txn_produce(txn_batch(1, b"aborted"))
    out["abort"] = end(False)
    out["abort_again"] = settled(lambda: end(False))
    L = ListOffsetsRequest
    for isolation in (0, 1):
        out[f"latest_isolation_{isolation}"] = plain(side.call(L(
            replica_id=-1, isolation_level=isolation, topics=[L.ListOffsetsTopic(name=name, partitions=[
                L.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                                        timestamp=-1)])]), 5))
    F = FetchRequest  # from the aborted batch (Kafka may answer less than the whole log from 0)
    answer = side.call(F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=10**6, isolation_level=1,
                         session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=name, partitions=[
                             F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=2,
                                                         log_start_offset=-1, partition_max_bytes=10**6)])],
                         forgotten_topics_data=[], rack_id=""), 11)
    part = answer.responses[0].partitions[0]
    out["fetch_read_committed"] = {"high_watermark": part.high_watermark,
                                   "last_stable_offset": part.last_stable_offset,
                                   "aborted": [(a.first_offset) for a in part.aborted_transactions or []],
                                   "error_code": part.error_code}
    return out


@case
def case_transactions_v2(side, name):
    """Transactions v2 (KIP-890 part 2) through the raw APIs as a v2 producer sends them:
    Produce v12 and TxnOffsetCommit v5 without AddPartitionsToTxn/AddOffsetsToTxn, EndTxn v5
    answering the bumped epoch, retries, an abort of nothing, late writes of an ended
    transaction."""
    side.create_topic(name, 2)
    tid, group = name + "-tx", name + "-g"
    init = txn_init(side, tid)
    pid = init.producer_id
    find_coordinator(side, group)

    def until_settled(call, busy=(14, 15, 16, 19, 51)):
        """Kafka answers EndTxn before its markers are written (the next transaction's
        writes get CONCURRENT_TRANSACTIONS or NOT_ENOUGH_REPLICAS meanwhile), and a group
        coordinator may still be loading."""
        deadline = time.monotonic() + 15
        while True:
            answer = call()
            codes = [p["error_code"] for t in answer.get("responses", answer.get("topics", []))
                     for p in t.get("partition_responses", t.get("partitions", []))]
            if not set(codes) & set(busy) and answer.get("error_code") not in busy or time.monotonic() > deadline:
                return answer
            time.sleep(0.1)

    def produce_v12(partition, epoch, seq, value):
        request = produce(name, build_batch([Record(b"k", value, (), T0)], producer_id=pid, producer_epoch=epoch,
                                            base_sequence=seq, transactional=True), partition=partition)
        request.transactional_id = tid
        return until_settled(lambda: plain(side.call(request, 12)))

    def end_v5(epoch, commit):
        return until_settled(lambda: plain(side.call(EndTxnRequest(
            transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit), 5)), busy=(51,))

    T = TxnOffsetCommitRequest
    out = {"init": plain(init), "produce": produce_v12(0, 0, 0, b"c0"),
           "txn_offset_commit_v5": until_settled(lambda: plain(side.call(T(
               transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=0, generation_id=-1,
               member_id="", group_instance_id=None, topics=[T.TxnOffsetCommitRequestTopic(
                   name=name, partitions=[T.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                       partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                       committed_metadata="")])]), 5))),
           "commit": end_v5(0, True), "commit_retry": end_v5(0, True), "abort_after_commit": end_v5(0, False),
           "commit_next_epoch_nothing_open": end_v5(1, True),
           "late_write_same_partition": produce_v12(0, 0, 1, b"late"),
           "late_write_other_partition": produce_v12(1, 0, 0, b"late"),
           "produce_next": produce_v12(1, 1, 0, b"a0"), "abort": end_v5(1, False),
           "abort_stale_epoch": end_v5(0, False), "abort_empty": end_v5(2, False),
           "commit_empty": end_v5(3, True)}
    return out


class _Migration:
    """A classic member (JoinGroup v9 ... on ``name``'s topic, range) and a consumer-protocol
    member (ConsumerGroupHeartbeat v1, uniform) of one group: the migration cases' requests."""

    def __init__(self, side, name):
        from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription
        self.side, self.name, self.group = side, name, name + "-g"
        self.sub = bytes(ConsumerProtocolSubscription(0, [name], b"").encode(version=0))
        side.create_topic(name, 2)
        find_coordinator(side, self.group)

    def classic_join(self, member="", instance=None):
        J = JoinGroupRequest
        return self.side.call(J(group_id=self.group, session_timeout_ms=10000, rebalance_timeout_ms=10000,
                                member_id=member, group_instance_id=instance, protocol_type="consumer",
                                protocols=[J.JoinGroupRequestProtocol(name="range", metadata=self.sub)],
                                reason=None), 9)

    def classic_sync(self, member, generation, assignments=(), instance=None):
        S = SyncGroupRequest
        return self.side.call(S(group_id=self.group, generation_id=generation, member_id=member,
                                group_instance_id=instance, protocol_type="consumer", protocol_name="range",
                                assignments=[S.SyncGroupRequestAssignment(member_id=m, assignment=a)
                                             for m, a in assignments]), 5)

    def classic_heartbeat(self, member, generation):
        return plain(self.side.call(HeartbeatRequest(
            group_id=self.group, generation_id=generation, member_id=member, group_instance_id=None), 4))

    def assignment_of(self, data):
        from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment
        decoded = ConsumerProtocolAssignment.decode(bytes(data))
        return sorted((tp.topic == self.name, sorted(tp.partitions)) for tp in decoded.assigned_partitions)

    def whole(self):
        """A ConsumerProtocolAssignment of both partitions."""
        from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment
        return bytes(ConsumerProtocolAssignment(0, [(self.name, [0, 1])], b"").encode(version=0))

    def heartbeat(self, **fields):
        from odradek.protocol.messages import (
            ConsumerGroupHeartbeatRequest,
            ConsumerGroupHeartbeatResponse,
        )
        H = ConsumerGroupHeartbeatRequest
        answer = self.side.call(H(**{"group_id": self.group, "member_id": "c1-" + self.name, "member_epoch": 0,
                                     "instance_id": None, "rack_id": None, "rebalance_timeout_ms": 10000,
                                     "subscribed_topic_names": [self.name], "subscribed_topic_regex": None,
                                     "server_assignor": "uniform", "topic_partitions": [], **fields}),
                                1, ConsumerGroupHeartbeatResponse)
        out = plain(answer)
        out["heartbeat_interval_ms"] = "masked"  # each side's configured interval
        if answer.assignment is not None:
            out["assignment"] = sorted(p for t in answer.assignment.topic_partitions for p in t.partitions)
        return answer, out

    def group_type(self):
        return [(g.group_id == self.group, g.group_type) for g in self.side.call(
            ListGroupsRequest(states_filter=[], types_filter=[]), 5).groups if g.group_id == self.group]

    def stable_classic_member(self, out):
        """One classic member, Stable with both partitions; its (member id, generation)."""
        member = self.classic_join().member_id
        joined = self.classic_join(member)
        out["join"] = plain(joined)
        synced = self.classic_sync(member, joined.generation_id, [(member, self.whole())])
        out["sync"] = {"error_code": synced.error_code, "assignment": self.assignment_of(synced.assignment)}
        return member, joined.generation_id


@case
def case_online_upgrade_of_a_classic_group(side, name):
    """A consumer-protocol member joins a classic group that has a member (KIP-848's
    online upgrade, group.consumer.migration.policy bidirectional): the group becomes a
    consumer group; the classic member hears REBALANCE_IN_PROGRESS, rejoins, syncs and
    leaves through the classic APIs, and its partitions go to the consumer member."""
    g = _Migration(side, name)
    group = g.group
    out: dict = {}
    member, generation = g.stable_classic_member(out)
    answer, out["consumer_join"] = g.heartbeat()
    out["group_type"] = g.group_type()
    from odradek.protocol.messages import (
        ConsumerGroupDescribeRequest,
        ConsumerGroupDescribeResponse,
    )
    described = plain(side.call(ConsumerGroupDescribeRequest(group_ids=[group], include_authorized_operations=False),
                                1, ConsumerGroupDescribeResponse))
    out["describe"] = sorted(({k: v for k, v in m.items() if k in ("member_type", "member_epoch",
                                                                   "subscribed_topic_names")}
                              for m in described["groups"][0]["members"]), key=lambda m: m["member_type"])
    out["describe_state"] = described["groups"][0]["group_state"]
    out["classic_heartbeat"] = g.classic_heartbeat(member, generation)
    rejoined = g.classic_join(member)
    out["rejoin"] = plain(rejoined)
    synced = g.classic_sync(member, rejoined.generation_id)
    out["rejoin_sync"] = {"error_code": synced.error_code, "assignment": g.assignment_of(synced.assignment)}
    out["heartbeat_after_rejoin"] = g.classic_heartbeat(member, rejoined.generation_id)
    out["commit_classic"] = plain(side.call(offset_commit(group, name, rejoined.generation_id, member), 9))
    out["commit_classic_stale"] = plain(side.call(offset_commit(group, name, 99, member), 9))
    out["leave"] = plain(side.call(LeaveGroupRequest(group_id=group, members=[
        LeaveGroupRequest.MemberIdentity(member_id=member, group_instance_id=None, reason=None)]), 5))
    # Kafka 4.4 computes a new target assignment a moment later (off the request path):
    # the consumer member's heartbeats reach it in a few beats.
    epoch, deadline = answer.member_epoch, time.monotonic() + 10
    while True:
        last, out["consumer_after_leave"] = g.heartbeat(member_epoch=epoch, rebalance_timeout_ms=-1,
                                                        subscribed_topic_names=None, server_assignor=None,
                                                        topic_partitions=None)
        epoch = last.member_epoch
        if out["consumer_after_leave"].get("assignment") == [0, 1] or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


@case
def case_online_downgrade_to_a_classic_group(side, name):
    """The last consumer-protocol member leaves a consumer group whose other members are
    classic (KIP-848's online downgrade, group.consumer.migration.policy bidirectional): the
    group is classic again at once, rebalancing; its member hears it, rejoins as the leader
    of the next generation, syncs its own assignment and commits."""
    g = _Migration(side, name)
    out: dict = {}
    member, generation = g.stable_classic_member(out)
    answer, out["consumer_join"] = g.heartbeat()
    out["consumer_leave"] = g.heartbeat(member_epoch=-1, rebalance_timeout_ms=-1, subscribed_topic_names=None,
                                        server_assignor=None, topic_partitions=None)[1]
    out["group_type"] = g.group_type()
    out["describe"] = describe_groups(side, g.group)
    out["classic_heartbeat"] = g.classic_heartbeat(member, generation)
    out["consumer_heartbeat_after"] = g.heartbeat(member_epoch=answer.member_epoch, rebalance_timeout_ms=-1,
                                                  subscribed_topic_names=None, server_assignor=None,
                                                  topic_partitions=None)[1]
    rejoined = g.classic_join(member)
    out["rejoin"] = plain(rejoined)
    out["rejoin_leader"] = rejoined.leader == member
    synced = g.classic_sync(member, rejoined.generation_id, [(member, g.whole())])
    out["rejoin_sync"] = {"error_code": synced.error_code, "assignment": g.assignment_of(synced.assignment)}
    out["heartbeat_after_rejoin"] = g.classic_heartbeat(member, rejoined.generation_id)
    out["commit"] = plain(side.call(offset_commit(g.group, name, rejoined.generation_id, member), 9))
    out["describe_after"] = describe_groups(side, g.group)
    out["group_type_after"] = g.group_type()
    return out


@case
def case_online_downgrade_by_a_static_member_replacement(side, name):
    """A classic static member takes the place of the last consumer-protocol member (same
    instance id, after its leave with epoch -2): the group is classic again, with no
    rebalance; the new member syncs at the generation it was given."""
    g = _Migration(side, name)
    out: dict = {}
    g.stable_classic_member(out)
    answer, out["consumer_join"] = g.heartbeat(instance_id="i1")
    out["consumer_static_leave"] = g.heartbeat(member_epoch=-2, instance_id="i1", rebalance_timeout_ms=-1,
                                               subscribed_topic_names=None, server_assignor=None,
                                               topic_partitions=None)[1]
    out["group_type_before"] = g.group_type()
    joined = g.classic_join(instance="i1")
    out["static_join"] = plain(joined)
    out["group_type"] = g.group_type()
    out["describe_state"] = describe_groups(side, g.group)["groups"][0]["group_state"]
    synced = g.classic_sync(joined.member_id, joined.generation_id, instance="i1")
    out["sync"] = {"error_code": synced.error_code,
                   "assignment": g.assignment_of(synced.assignment) if synced.assignment else None}
    return out


GROUP_RESOURCE = 32  # ConfigResource.Type.GROUP (KIP-848)


@case
def case_group_configs(side, name):
    """Group-level configs (resource type GROUP): every key with its default, a set within
    and outside the broker's bounds, an unknown key, a delete."""
    group = name + "-g"
    find_coordinator(side, group)
    out = {"all": side.call(describe_configs(GROUP_RESOURCE, group), 4)}
    out["unknown_key"] = side.call(incremental_alter(GROUP_RESOURCE, group, ("no.such", 0, "1")), 1)
    out["bad_value"] = side.call(incremental_alter(GROUP_RESOURCE, group, ("consumer.session.timeout.ms", 0, "x")), 1)
    out["too_small"] = side.call(incremental_alter(GROUP_RESOURCE, group, ("consumer.session.timeout.ms", 0, "10")), 1)
    out["set"] = side.call(incremental_alter(GROUP_RESOURCE, group, ("consumer.session.timeout.ms", 0, "50000"),
                                             ("consumer.heartbeat.interval.ms", 0, "6000")), 1)
    out["empty_name"] = side.call(incremental_alter(GROUP_RESOURCE, "", ("consumer.session.timeout.ms", 0, "50000")), 1)
    deadline = time.monotonic() + 5
    while True:
        out["after"] = side.call(describe_configs(GROUP_RESOURCE, group, ["consumer.session.timeout.ms",
                                                                         "consumer.heartbeat.interval.ms"]), 4)
        configs = out["after"].results[0].configs or []
        if any(c.value == "50000" for c in configs) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out["delete"] = side.call(incremental_alter(GROUP_RESOURCE, group, ("consumer.session.timeout.ms", 1, None)), 1)
    time.sleep(0.5)
    out["after_delete"] = side.call(describe_configs(GROUP_RESOURCE, group, ["consumer.session.timeout.ms"]), 4)
    return {k: plain(v) for k, v in out.items()}


@case
def case_share_group_errors(side, name):
    """Share groups (KIP-932): heartbeat checks, unknown groups and members, share-session
    errors, ShareGroupDescribe of what is not a share group (no records involved)."""
    from odradek.protocol.messages import (
        ShareAcknowledgeRequest,
        ShareFetchRequest,
        ShareGroupDescribeRequest,
        ShareGroupHeartbeatRequest,
    )
    group = name + "-sg"
    find_coordinator(side, group)
    side.create_topic(name + "-t", 1)

    def hb(**fields):
        fields = {"group_id": group, "member_id": "m-" + name, "member_epoch": 0, "rack_id": None,
                  "subscribed_topic_names": [name + "-t"]} | fields
        answer = plain(side.call(ShareGroupHeartbeatRequest(**fields), 1))
        answer.pop("member_id", None)  # echoed; the assignment carries the topic's id
        answer.pop("assignment", None)
        return answer

    F = ShareFetchRequest
    out = {"empty_member": hb(member_id=""), "no_topics": hb(subscribed_topic_names=None),
           "bad_epoch": hb(member_epoch=-5), "unknown_group": hb(group_id=group + "-none", member_epoch=3),
           "empty_rack": hb(rack_id=""), "join": hb(), "unknown_member": hb(member_id="x-" + name, member_epoch=1),
           "fenced": hb(member_epoch=7)}
    fetch = F(group_id=group, member_id="m-" + name, share_session_epoch=4, max_wait_ms=0, min_bytes=1,
              max_bytes=1 << 20, max_records=10, batch_size=10, topics=[], forgotten_topics_data=[])
    out["fetch_no_session"] = plain(side.call(fetch, 1))
    out["ack_epoch_zero"] = plain(side.call(ShareAcknowledgeRequest(
        group_id=group, member_id="m-" + name, share_session_epoch=0, topics=[]), 1))
    out["describe"] = [{k: g[k] for k in ("error_code", "error_message", "group_state")}
                       for g in plain(side.call(ShareGroupDescribeRequest(
                           group_ids=[group + "-none", ""], include_authorized_operations=False), 1))["groups"]]
    out["leave"] = hb(member_epoch=-1)
    return out


def share_topic_from_earliest(side, topic: str, group: str, batches: int) -> dict:
    """A one-partition topic of ``batches`` batches of 2 records and the share group's
    share.auto.offset.reset=earliest (IncrementalAlterConfigs' answer returned)."""
    from kafka.protocol.admin import IncrementalAlterConfigsRequest
    find_coordinator(side, group)
    side.create_topic(topic, 1)
    for i in range(batches):
        assert side.call(produce(topic, batch(2, T0 + i * 10_000)), 9).responses[0] \
            .partition_responses[0].error_code == 0
    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    return plain(side.call(IncrementalAlterConfigsRequest(resources=[R(
        resource_type=32, resource_name=group, configs=[R.AlterableConfig(
            name="share.auto.offset.reset", config_operation=0, value="earliest")])],
        validate_only=False), 1))


@case
def case_share_fetch_and_acknowledge(side, name):
    """Share groups (KIP-932): records acquired batch by batch up to MaxRecords, RELEASE
    redelivers with the delivery count raised, acknowledging records another member holds
    is INVALID_RECORD_STATE, a wrong session epoch, ShareAcknowledge closing the session.
    The group reads from the earliest offset (its share.auto.offset.reset)."""
    import base64

    from kafka.protocol.metadata import MetadataRequest

    from odradek.protocol.messages import (
        ShareAcknowledgeRequest,
        ShareFetchRequest,
        ShareGroupHeartbeatRequest,
    )
    topic, group = name + "-t", name + "-sg"
    # Member ids are Kafka Uuids (22 characters of URL-safe base64), as the consumer makes them.
    ids = {m: base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") for m in ("a", "b")}
    out = {"configs": share_topic_from_earliest(side, topic, group, 3)}
    topic_id = side.call(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=topic, topic_id=None)],
                                         allow_auto_topic_creation=False), 12).topics[0].topic_id
    for member in ("a", "b"):
        side.call(ShareGroupHeartbeatRequest(group_id=group, member_id=ids[member], member_epoch=0,
                                             rack_id=None, subscribed_topic_names=[topic]), 1)
    F, A = ShareFetchRequest, ShareAcknowledgeRequest

    epochs = {"a": 0, "b": 0}  # each member's next share-session epoch

    def fetch_(member, acks=(), max_wait_ms=5000, epoch=None):
        if epoch is None:
            epoch = epochs[member]
            epochs[member] += 1
        answer = plain(side.call(F(
            group_id=group, member_id=ids[member], share_session_epoch=epoch, max_wait_ms=max_wait_ms,
            min_bytes=1, max_bytes=1 << 20, max_records=1, batch_size=1,
            topics=[F.FetchTopic(topic_id=topic_id, partitions=[F.FetchTopic.FetchPartition(
                partition_index=0, acknowledgement_batches=[
                    F.FetchTopic.FetchPartition.AcknowledgementBatch(first_offset=a, last_offset=b,
                                                                     acknowledge_types=[t])
                    for a, b, t in acks])])], forgotten_topics_data=[]), 1))
        for t in answer["responses"]:
            for p in t["partitions"]:
                p["records"] = bool(p["records"])  # the batches: the same bytes, compared by the ranges
        return answer

    def ack_(member, acks, epoch=None):
        if epoch is None:
            epoch = epochs[member]
            epochs[member] += 1
        return plain(side.call(A(group_id=group, member_id=ids[member], share_session_epoch=epoch, topics=[
            A.AcknowledgeTopic(topic_id=topic_id, partitions=[A.AcknowledgeTopic.AcknowledgePartition(
                partition_index=0, acknowledgement_batches=[
                    A.AcknowledgeTopic.AcknowledgePartition.AcknowledgementBatch(
                        first_offset=a, last_offset=b, acknowledge_types=[t]) for a, b, t in acks])])]), 1))

    # Kafka initializes a share partition's state on its first fetch, answering that fetch
    # before it is done: a's first fetches are retried until records come.
    for _ in range(20):
        out["a_first"] = fetch_("a")
        if out["a_first"]["responses"] and out["a_first"]["responses"][0]["partitions"][0]["acquired_records"]:
            break
        time.sleep(0.1)
    out["b_first"] = fetch_("b")
    out["a_release_and_next"] = fetch_("a", acks=[(0, 1, 2)])
    out["b_ack_held_by_a"] = ack_("b", [(0, 1, 1)])
    out["b_wrong_epoch"] = fetch_("b", epoch=77)
    out["b_accept_and_next"] = fetch_("b", acks=[(2, 3, 1)])
    out["a_close"] = ack_("a", [(0, 1, 1)], epoch=-1)
    return out


@case
def case_share_group_configs_by_duration_and_isolation(side, name):
    """share.auto.offset.reset's by_duration:<ISO-8601 duration> (accepted; refused when
    negative, malformed or with another case of prefix, in Kafka's words) and
    share.isolation.level's values, IncrementalAlterConfigs on resource type GROUP."""
    from kafka.protocol.admin import IncrementalAlterConfigsRequest
    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    find_coordinator(side, name + "-sg")
    out = {}
    for key, value in (("share.auto.offset.reset", "by_duration:PT1H"), ("share.auto.offset.reset", "by_duration:P1DT2H"),
                       ("share.auto.offset.reset", "by_duration:-PT1H"), ("share.auto.offset.reset", "by_duration:1h"),
                       ("share.auto.offset.reset", "BY_DURATION:PT1H"), ("share.auto.offset.reset", "by_duration:"),
                       ("share.auto.offset.reset", "by_duration:P1W"), ("share.isolation.level", "read_committed"),
                       ("share.isolation.level", "READ_COMMITTED")):
        out[f"{key}={value}"] = plain(side.call(IncrementalAlterConfigsRequest(resources=[R(
            resource_type=32, resource_name=name + "-sg", configs=[R.AlterableConfig(
                name=key, config_operation=0, value=value)])], validate_only=False), 1))
    return out


@case
def case_share_renew_acknowledgements(side, name):
    """RENEW (KIP-1222): at v1, or at v2 without IsRenewAck, the partition's
    INVALID_REQUEST; a ShareFetch v2 with IsRenewAck and fetch limits is INVALID_REQUEST
    whole; with its limits at 0 it renews and fetches nothing, naming only the partitions
    it acknowledged."""
    import base64

    from kafka.protocol.metadata import MetadataRequest

    from odradek.protocol.messages import (
        ShareAcknowledgeRequest,
        ShareFetchRequest,
        ShareGroupHeartbeatRequest,
    )
    topic, group = name + "-t", name + "-sg"
    member = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    share_topic_from_earliest(side, topic, group, 2)
    topic_id = side.call(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=topic, topic_id=None)],
                                         allow_auto_topic_creation=False), 12).topics[0].topic_id
    side.call(ShareGroupHeartbeatRequest(group_id=group, member_id=member, member_epoch=0, rack_id=None,
                                         subscribed_topic_names=[topic]), 1)
    F, A = ShareFetchRequest, ShareAcknowledgeRequest
    epoch = [0]

    def fetch_(version=1, acks=(), renew=False, limits=1):
        answer = plain(side.call(F(
            group_id=group, member_id=member, share_session_epoch=epoch[0], max_wait_ms=limits and 5000,
            min_bytes=limits, max_bytes=limits and 1 << 20, max_records=limits, batch_size=limits,
            share_acquire_mode=0, is_renew_ack=renew,
            topics=[F.FetchTopic(topic_id=topic_id, partitions=[F.FetchTopic.FetchPartition(
                partition_index=0, acknowledgement_batches=[
                    F.FetchTopic.FetchPartition.AcknowledgementBatch(first_offset=a, last_offset=b,
                                                                     acknowledge_types=[t])
                    for a, b, t in acks])])], forgotten_topics_data=[]), version))
        if not answer["error_code"]:
            epoch[0] += 1
        for t in answer["responses"]:
            for p in t["partitions"]:
                p["records"] = bool(p["records"])
        return answer

    def ack_(acks, version, renew=False):
        answer = plain(side.call(A(group_id=group, member_id=member, share_session_epoch=epoch[0],
                                   is_renew_ack=renew, topics=[A.AcknowledgeTopic(topic_id=topic_id, partitions=[
                                       A.AcknowledgeTopic.AcknowledgePartition(partition_index=0, acknowledgement_batches=[
                                           A.AcknowledgeTopic.AcknowledgePartition.AcknowledgementBatch(
                                               first_offset=a, last_offset=b, acknowledge_types=[t])
                                           for a, b, t in acks])])]), version))
        epoch[0] += 1
        return answer

    out = {}
    for _ in range(20):  # Kafka answers the first fetches while it initializes the share partition
        out["first"] = fetch_()
        if out["first"]["responses"] and out["first"]["responses"][0]["partitions"][0]["acquired_records"]:
            break
        time.sleep(0.1)
    out["renew_fetch_v1"] = fetch_(acks=[(0, 1, 4)])
    out["renew_ack_v1"] = ack_([(0, 1, 4)], 1)
    out["renew_ack_v2_without_flag"] = ack_([(0, 1, 4)], 2)
    out["renew_fetch_v2_with_limits"] = fetch_(2, acks=[(0, 1, 4)], renew=True)
    out["renew_fetch_v2"] = fetch_(2, acks=[(0, 1, 4)], renew=True, limits=0)
    out["renew_fetch_v2_nothing_to_renew"] = fetch_(2, renew=True, limits=0)
    out["renew_ack_v2"] = ack_([(2, 3, 4)], 2, renew=True)
    out["accept_with_flag"] = ack_([(0, 3, 1)], 2, renew=True)
    return out


@case
def case_share_group_offsets_alter_delete(side, name):
    """AlterShareGroupOffsets, DeleteShareGroupOffsets and DeleteGroups of share groups
    (kafka-share-groups --reset-offsets, --delete-offsets, --delete): an empty or unknown
    id, a consumer group's id, an unknown group, a group with a member (NON_EMPTY_GROUP),
    unknown topics and partitions, a topic without offsets; then the start offsets
    DescribeShareGroupOffsets shows, and the group gone after DeleteGroups. An unknown id
    altered becomes an empty share group."""
    import base64

    from odradek.protocol.messages import (
        AlterShareGroupOffsetsRequest,
        DeleteShareGroupOffsetsRequest,
        DescribeShareGroupOffsetsRequest,
        ShareGroupDescribeRequest,
        ShareGroupHeartbeatRequest,
    )
    topic, group, consumer_group = name + "-t", name + "-sg", name + "-cg"
    member = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    find_coordinator(side, group)
    side.create_topic(topic, 2)
    for i in range(3):
        assert side.call(produce(topic, batch(2, T0 + i * 10_000)), 9).responses[0] \
            .partition_responses[0].error_code == 0
    A, D = AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest
    AT = A.AlterShareGroupOffsetsRequestTopic

    def alter(group_id, topics):
        return plain(side.call(A(group_id=group_id, topics=[AT(topic_name=t, partitions=[
            AT.AlterShareGroupOffsetsRequestPartition(partition_index=p, start_offset=o) for p, o in ps])
            for t, ps in topics]), 0))

    def delete(group_id, topics):
        return plain(side.call(D(group_id=group_id, topics=[D.DeleteShareGroupOffsetsRequestTopic(topic_name=t)
                                                            for t in topics]), 0))

    def heartbeat(epoch, topics=None):
        answer = plain(side.call(ShareGroupHeartbeatRequest(
            group_id=group, member_id=member, member_epoch=epoch, rack_id=None, subscribed_topic_names=topics), 1))
        return {k: answer[k] for k in ("error_code", "error_message")}

    def described(group_id):
        G = DescribeShareGroupOffsetsRequest.DescribeShareGroupOffsetsRequestGroup
        return plain(side.call(DescribeShareGroupOffsetsRequest(groups=[G(group_id=group_id, topics=None)]), 1))

    def listed(group_id):
        groups = plain(side.call(ListGroupsRequest(states_filter=[], types_filter=[]), 5))["groups"]
        return [g for g in groups if g["group_id"] == group_id]

    commit = OffsetCommitRequest.OffsetCommitRequestTopic
    side.call(OffsetCommitRequest(group_id=consumer_group, generation_id_or_member_epoch=-1, member_id="",
                                  group_instance_id=None, retention_time_ms=-1, topics=[commit(
                                      name=topic, partitions=[commit.OffsetCommitRequestPartition(
                                          partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                                          committed_metadata="")])]), 8)
    out = {"alter_empty_id": alter("", [(topic, [(0, 1)])]),
           "alter_consumer_group": alter(consumer_group, [(topic, [(0, 1)])]),
           "delete_consumer_group": delete(consumer_group, [topic]),
           "delete_unknown_group": delete(group + "-none", [topic]),
           "delete_empty_id": delete("", [topic]),
           "alter_unknown_group": alter(group + "-new", [(topic, [(0, 3)])]),
           "listed_unknown_group": listed(group + "-new"),
           "described_unknown_group": plain(side.call(ShareGroupDescribeRequest(
               group_ids=[group + "-new"], include_authorized_operations=False), 1))["groups"]}
    out["join"] = heartbeat(0, [topic])
    out["alter_non_empty"] = alter(group, [(topic, [(0, 1)])])
    out["delete_non_empty"] = delete(group, [topic])
    out["delete_group_non_empty"] = plain(side.call(DeleteGroupsRequest(groups_names=[group]), 2))
    out["leave"] = heartbeat(-1)
    out["alter"] = alter(group, [(topic, [(0, 1), (1, 0), (5, 3)]), (name + "-none", [(0, 1)])])
    out["described"] = described(group)
    out["delete"] = delete(group, [topic, name + "-none"])
    out["described_after_delete"] = described(group)
    out["delete_again"] = delete(group, [topic])
    out["delete_group"] = plain(side.call(DeleteGroupsRequest(groups_names=[group, group + "-new"]), 2))
    out["listed_after"] = listed(group) + listed(group + "-new")
    out["describe_groups_v5"] = plain(side.call(DescribeGroupsRequest(groups=[group], include_authorized_operations=False), 5))
    out["describe_groups_v6"] = plain(side.call(DescribeGroupsRequest(groups=[group], include_authorized_operations=False), 6))
    out["share_group_describe"] = [{k: g[k] for k in ("error_code", "error_message")} for g in plain(side.call(
        ShareGroupDescribeRequest(group_ids=[group], include_authorized_operations=False), 1))["groups"]]
    out["delete_group_again"] = plain(side.call(DeleteGroupsRequest(groups_names=[group]), 2))
    return out


@case
def case_find_coordinator_share_keys(side, name):
    """FindCoordinator key type 2 (KIP-932: brokers find the share coordinator with it): a
    share-partition key ``groupId:topicId:partition`` (the topic id in Kafka's base64 form;
    no such topic needs to exist) is answered once __share_group_state, created on demand,
    has leaders; a malformed key is INVALID_REQUEST, each on its own (v6, batched); below v6
    every share key is (v5 per key with no message, v3 with Kafka's default message); an
    unknown key type fails the whole request; below v4 a found coordinator's message is
    "NONE"."""
    F = FindCoordinatorRequest
    topic_uuid = uuid.uuid5(uuid.NAMESPACE_OID, name)  # the same on both sides
    topic_id = base64.urlsafe_b64encode(topic_uuid.bytes).decode().rstrip("=")
    valid = [f"{name}:{topic_id}:0", f"{name}:x:{topic_id}:-1", f"{name}:{topic_id}==:+3",
             f"{name}:{topic_id}:1:"]
    malformed = [name, f"{name}:{topic_id}", f" :{topic_id}:0", f"{name}:{topic_uuid}:0",
                 f"{name}:{topic_id[:21]}+:0", f"{name}:{topic_id}:x", f"{name}:{topic_id}:2147483648",
                 f"{name}:{topic_id}: 1", "", "::::"]
    deadline = time.monotonic() + 15
    while True:
        answer = plain(side.call(F(key_type=2, coordinator_keys=valid + malformed), 6))
        if not any(c["error_code"] in COORDINATOR_NOT_READY for c in answer["coordinators"]):
            break
        assert time.monotonic() < deadline, f"{side.name}: no share coordinator: {answer}"
        time.sleep(0.1)
    find_coordinator(side, name)
    return {"v6": answer,
            "v6_no_keys": plain(side.call(F(key_type=2, coordinator_keys=[]), 6)),
            "v5": plain(side.call(F(key_type=2, coordinator_keys=[valid[0], name]), 5)),
            "v3": plain(side.call(F(key_type=2, key=valid[0]), 3)),
            "v3_group": plain(side.call(F(key_type=0, key=name), 3)),
            "unknown_key_type_v6": plain(side.call(F(key_type=3, coordinator_keys=[name, valid[0]]), 6)),
            "unknown_key_type_v3": plain(side.call(F(key_type=-1, key=name), 3))}

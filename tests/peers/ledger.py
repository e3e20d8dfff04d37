"""The compatibility ledger: COMPATIBILITY.md at the repository root, generated, never edited.

    python -m tests.peers.ledger           # write COMPATIBILITY.md
    python -m tests.peers.ledger --check   # exit 1 when the committed file is out of date

It is built without Kafka or Java from what the tests hold:
- the versions Kafka 4.4 serves per API: its ApiVersions answer, which the oracle
  (tests/peers/test_oracle.py) records in tests/peers/kafka-4.4-api-versions.json and
  checks against the live Kafka on every run;
- the versions Odradek serves: the handler registry (broker/handlers), which is what
  ApiVersions offers;
- why an API is served lower than Kafka 4.4 or not at all (VERSION_NOTES, below);
- the oracle's ledgered differences (test_oracle.LEDGERED), each with its reason;
- per client, the features the tests exercise (CLIENTS, below): every entry names its
  test, and the generator fails when that test no longer exists.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
KAFKA_API_VERSIONS = HERE / "kafka-4.4-api-versions.json"
OUTPUT = ROOT / "COMPATIBILITY.md"

# Why Odradek serves an API below Kafka 4.4's maximum, or not at all. Every API that
# Kafka 4.4 offers and Odradek does not serve in full needs an entry (the generator checks).
VERSION_NOTES: dict[int | tuple[int, ...], str] = {
    0: "Produce v13 names topics by id (KIP-516) and is not served yet; v12 (transactions "
       "v2: the leader adds the partition to the transaction) is.",
    18: "ApiVersions v5 (KIP-1242: cluster and node id checks, REBOOTSTRAP_REQUIRED): "
        "kafka-python, the codec, stops at v4.",
    22: "InitProducerId v6 (KIP-939, two-phase commit) belongs to transactions.",
    42: "DeleteGroups v3 adds a per-group error message; kafka-python, the codec, stops at v2.",
    28: "TxnOffsetCommit v6 names topics by id (KIP-1319); v5 (transactions v2) is served.",
    (38, 39, 40, 41): "Delegation tokens are not built.",
    (64, 80, 81, 94): "Controller registration APIs of Kafka's KRaft are not ours: "
                      "Odradek's nodes speak their own inter-node protocol.",
    (71, 72): "Client telemetry (KIP-714) is not collected.",
    (74,): "ListConfigResources is not served yet.",
    (83, 84, 85, 86, 87): "The share coordinator's APIs (KIP-932) are broker-to-broker only: "
                          "share-partition leaders reach Odradek's share coordinator "
                          "(__share_group_state) through its own inter-node request.",
    (88, 89, 93): "Streams groups (KIP-1071) are not built.",
}

# Per client, the features the tests exercise: (feature, test file, test function).
CLIENTS: dict[str, list[tuple[str, str, str]]] = {
    "kafka-python": [
        ("produce and consume every codec, keys, headers, timestamps",
         "tests/integration/test_data_path.py", ""),
        ("consumer groups", "tests/integration/test_groups.py", ""),
        ("admin: topics and configs", "tests/integration/test_clients_admin.py", ""),
        ("TLS (with and without client certificates), SASL PLAIN, SCRAM-SHA-256/512, wrong passwords",
         "tests/integration/test_security.py", ""),
        ("transactional producer: commit and abort; read_committed consumer",
         "tests/integration/test_transactions.py", "test_kafka_python_transactional_producer"),
        ("reads records produced by the Java client byte for byte",
         "tests/peers/test_java_client.py", "test_java_records_read_identically_by_python_clients"),
    ],
    "aiokafka": [("produce, consume, groups", "tests/integration/test_data_path.py", ""),
                 ("read_committed and read_uncommitted consumers of transactions",
                  "tests/integration/test_transactions.py",
                  "test_confluent_commit_and_abort_read_by_every_client"),
                 ("transactional producer (v0 APIs): commit, abort, send_offsets_to_transaction",
                  "tests/integration/test_transactions.py", "test_aiokafka_transactional_producer_on_v0_apis"),
                 ("TLS (with and without client certificates), SASL PLAIN, SCRAM-SHA-256/512, wrong passwords",
                  "tests/integration/test_security.py", "")],
    "confluent-kafka": [
        ("produce and consume every codec, idempotence", "tests/integration/test_data_path.py", ""),
        ("admin: topics, configs, delete records", "tests/integration/test_clients_admin.py", ""),
        ("consumer groups with group.protocol=consumer (KIP-848): three members, one leaves, "
         "one killed, 30,000 records", "tests/integration/test_consumer_protocol.py",
         "test_three_members_one_leaves_one_is_killed"),
        ("a regex subscription picks up a topic created afterwards (KIP-848)",
         "tests/integration/test_consumer_protocol.py",
         "test_regex_subscription_picks_up_a_topic_created_afterwards"),
        ("TLS (with and without client certificates), SASL PLAIN, SCRAM-SHA-256/512, wrong passwords",
         "tests/integration/test_security.py", ""),
        ("re-authentication (connections.max.reauth.ms)", "tests/integration/test_security.py",
         "test_sessions_end_and_librdkafka_reauthenticates"),
        ("transactions: commit, abort, read_committed, send_offsets_to_transaction, fencing, "
         "timeouts, a kill -9 mid-transaction", "tests/integration/test_transactions.py", ""),
        ("records produced by Java read byte for byte, and the reverse",
         "tests/peers/test_java_client.py", "test_java_records_read_identically_by_python_clients"),
        ("ShareConsumer (KIP-932): two consumers compete, RELEASE redelivers, REJECT archives",
         "tests/integration/test_share_groups.py", "test_confluent_share_consumers_compete_for_records"),
        ("ShareConsumer at scale: five consumers, 20,000 records on two partitions, a sixth "
         "SIGKILLed mid-batch; each record held by one at a time, accepted exactly once",
         "tests/integration/test_share_groups.py", "test_confluent_share_consumers_at_scale_with_one_killed"),
    ],
    "kcat": [("produce, consume, metadata", "tests/integration/test_data_path.py", ""),
             ("TLS with a client certificate, SASL PLAIN", "tests/integration/test_security.py", "test_kcat")],
    "Java client (kafka-clients 4.4)": [
        ("producer defaults (idempotent, acks=all), every codec, keys, headers, timestamps",
         "tests/peers/test_java_client.py", "test_java_produces_every_codec_idempotently"),
        ("consumer reads what Python clients produced, byte for byte",
         "tests/peers/test_java_client.py", "test_java_consumer_reads_python_records"),
        ("consumer group of three, one member closed, the others take over",
         "tests/peers/test_java_client.py", "test_java_group_of_three_survives_a_member"),
        ("consumer group of three with group.protocol=consumer (KIP-848), one member closed",
         "tests/peers/test_java_client.py", "test_java_consumer_protocol_group_of_three_survives_a_member"),
        ("consumer group of three, one member's JVM killed, the others take over",
         "tests/peers/test_java_client.py", "test_java_group_survives_a_killed_member"),
        ("admin: create, describe, alter configs, list offsets, group offsets, delete",
         "tests/peers/test_java_client.py", "test_java_admin_manages_topics"),
        ("SASL_SSL with SCRAM, SSL with a PEM client key store, SASL PLAIN, a wrong password",
         "tests/peers/test_security_tools.py", ""),
        ("transactions v2 (KIP-890 part 2): commit, abort, an epoch bump per transaction as "
         "Kafka 4.4's, fencing by a second producer, read_committed",
         "tests/peers/test_java_client.py", "test_java_transactions_commit_abort_and_fencing"),
        ("Kafka Streams 4.4, processing.guarantee=exactly_once_v2: a word count with a state store",
         "tests/peers/test_java_client.py", "test_kafka_streams_exactly_once_v2_word_count"),
        ("KafkaShareConsumer (KIP-932): two consumers on one partition, lock expiry and RELEASE "
         "redeliver, every record accepted once; kafka-share-groups --describe --members",
         "tests/peers/test_java_client.py", "test_java_share_consumers_share_a_partition"),
        ("KafkaShareConsumer at scale: five consumers, 20,000 records on two partitions, a "
         "sixth's JVM SIGKILLed mid-batch; each record held by one at a time, accepted exactly once",
         "tests/peers/test_java_client.py", "test_java_share_consumers_at_scale_with_one_killed"),
    ],
    "Kafka's tools (4.4)": [
        ("kafka-reassign-partitions: execute with a throttle, verify, list, cancel; a broker-only "
         "fourth node (process.roles=broker) joins a running cluster, is listed as an observer "
         "by kafka-metadata-quorum, and takes a partition",
         "tests/peers/test_tools.py", "test_reassign_partitions_moves_replicas_and_cancels"),
        ("kafka-share-groups: --reset-offsets (--to-latest, --to-datetime, --to-earliest, "
         "--topic topic:0, --all-topics, --dry-run, --execute), --describe, --delete-offsets, --delete",
         "tests/peers/test_tools.py", "test_share_groups_reset_delete_offsets_and_delete"),
        ("kafka-transactions: list, describe, describe-producers, find-hanging, abort",
         "tests/peers/test_transactions_tool.py", "test_kafka_transactions_lists_describes_and_aborts"),
        ("tools run against a Kafka 4.4 peer (the tools' tests against Odradek: the "
         "kafka-peer branch)", "tests/peers/test_kafka_peer.py",
         "test_the_peer_serves_and_a_tool_prints_only_its_answer_on_stdout"),
    ],
}

OLDEST_VERSIONS = """\
## The oldest request versions

Odradek serves the versions Kafka 4 serves after KIP-896 removed the pre-2.1 protocol:
Produce from v3 and Fetch from v4 (magic-2 record batches only), ListOffsets from v1,
OffsetCommit from v2, OffsetFetch from v1, CreateTopics from v2, DeleteTopics from v1,
DescribeConfigs from v1, OffsetForLeaderEpoch from v2 (the table above lists every API).
A client must speak Kafka 0.11's protocol or later: sarama needs `Config.Version` set to
`V0_11_0_0` or later (its default is older), librdkafka 0.11 or later, the Java client
2.1 or later. A request at an older version closes the connection, as Kafka 4 does (the
oracle's case versions_older_than_kafka_4_are_refused), and the broker logs
`connection_closed` with the reason `API key 0 version 2 is not served (3..12)`, so an
operator sees which client is too old. ApiVersions is answered at every version (KIP-511).
"""


def spec_names(libs_dir: Path) -> dict[int, str]:
    """API key -> name, from the message specs inside Kafka's kafka-clients jar."""
    names = {}
    jar = next(Path(libs_dir).glob("kafka-clients-*.jar"))
    with zipfile.ZipFile(jar) as z:
        for entry in z.namelist():
            if entry.startswith("common/message/") and entry.endswith("Request.json"):
                text = re.sub(r"^\s*//.*$", "", z.read(entry).decode(), flags=re.M)
                spec = json.loads(text)
                names[spec["apiKey"]] = spec["name"].removesuffix("Request")
    return names


def kafka_api_versions_from(response, names: dict[int, str]) -> list[dict]:
    """Kafka's ApiVersions answer in the recorded file's form."""
    return [{"api_key": k.api_key, "name": names.get(k.api_key, "?"),
             "min": k.min_version, "max": k.max_version}
            for k in sorted(response.api_keys, key=lambda k: k.api_key)]


def odradek_api_versions() -> dict[int, tuple[int, int]]:
    from odradek.broker.handlers import load_handlers
    return {h.api_key: (h.min_version, h.max_version)
            for h in load_handlers().values() if h.client_facing}


def _note(api_key: int) -> str:
    for keys, why in VERSION_NOTES.items():
        if api_key == keys or (isinstance(keys, tuple) and api_key in keys):
            return why
    return ""


def _versions(lo_hi) -> str:
    if lo_hi is None:
        return "-"
    lo, hi = lo_hi
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def render() -> str:
    from tests.peers.test_oracle import LEDGERED
    kafka = json.loads(KAFKA_API_VERSIONS.read_text())
    ours = odradek_api_versions()
    lines = ["# Compatibility with Apache Kafka 4.4", "",
             "Generated by `python -m tests.peers.ledger` from the tests; do not edit "
             "(`--check` fails when it is out of date).", "",
             "## Versions served per API", "",
             "Kafka 4.4's column is its ApiVersions answer, recorded by the differential oracle "
             "(tests/peers/test_oracle.py); Odradek's is its handler registry, which its "
             "ApiVersions offers.", "",
             "| key | API | Kafka 4.4 | Odradek | why not Kafka's |",
             "|---:|---|---|---|---|"]
    missing_notes = []
    for entry in kafka:
        key = entry["api_key"]
        theirs, mine = (entry["min"], entry["max"]), ours.get(key)
        note = _note(key)
        if (mine is None or mine[1] < theirs[1]) and not note:
            missing_notes.append(f"{key} {entry['name']}")
        if mine is not None and mine[1] >= theirs[1]:
            note = ""
        lines.append(f"| {key} | {entry['name']} | {_versions(theirs)} | {_versions(mine)} | "
                     f"{note} |")
    if missing_notes:
        raise SystemExit("VERSION_NOTES lacks a reason for: " + ", ".join(missing_notes))
    lines += ["", OLDEST_VERSIONS, "## Known differences from Kafka 4.4", "",
              "The oracle sends the same requests to Kafka 4.4 and to Odradek and compares the "
              "answers field by field; these differences are deliberate or not yet closed, "
              "and the oracle fails when one of them disappears or another appears.", "",
              "| oracle case | fields | why |", "|---|---|---|"]
    for (case, glob), why in sorted(LEDGERED.items()):
        shown = glob.replace("[[]", "[").replace("[]]", "]")  # fnmatch's escaped brackets
        lines.append(f"| {case} | `{shown}` | {why} |")
    lines += ["", "## Clients and what their tests exercise", "",
              "Every test named here passes on the commit this file was generated from: they run "
              "with the ledger's own check in `make test`, and a failing one fails the build.", ""]
    for client, features in CLIENTS.items():
        lines.append(f"- **{client}**")
        for feature, path, test in features:
            _check_test(path, test)
            where = f"{path}::{test}" if test else path
            lines.append(f"  - {feature} (`{where}`)")
    return "\n".join(lines) + "\n"


def _check_test(path: str, test: str) -> None:
    file = ROOT / path
    if not file.is_file():
        raise SystemExit(f"CLIENTS names {path}, which does not exist")
    if test and not re.search(rf"^(async )?def {re.escape(test)}\(", file.read_text(), re.M):
        raise SystemExit(f"CLIENTS names {path}::{test}, which does not exist")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if COMPATIBILITY.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.name} is out of date: run python -m tests.peers.ledger", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

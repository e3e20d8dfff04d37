"""`odradek topics|configs|groups|produce|consume|cluster` against Kafka 4.4 and against
Odradek: the same commands give the same --json answers, once what legitimately differs
(ids, addresses, byte sizes of the logs, timestamps) is taken out.

One scenario, run against each: names are unique per run, since the Kafka peer is shared
by the whole session."""

import json
import uuid

import pytest

from tests.integration.test_ops_cli import odradek, odradek_json

ODRADEK_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}


def scenario(bootstrap: str) -> dict:
    """What an operator does in a day, as JSON answers."""
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"cli-{suffix}", f"cli-group-{suffix}"
    out: dict = {}
    out["create"] = odradek_json(bootstrap, "topics", "create", topic, "--partitions", "2",
                                 "--replication-factor", "1", "--config", "retention.ms=86400000")
    odradek(bootstrap, "produce", topic, "--partition", "0", "--key-separator", ":",
            "--header", "h=1", input="a:1\nb:2\nc:3\n")
    odradek(bootstrap, "produce", topic, "--partition", "1", input="x\n")
    [described] = odradek_json(bootstrap, "topics", "describe", topic)
    for p in described["partitions"]:
        assert p["size_bytes"] is not None and (p["size_bytes"] > 0) == (p["log_end_offset"] > 0)
        p.pop("size_bytes")  # record batches carry their own timestamps: sizes may differ
        p.pop("leader")  # the node id
        p.pop("replicas"), p.pop("isr")
    described.pop("topic_id")
    out["describe"] = described
    out["list"] = [t for t in odradek_json(bootstrap, "topics", "list") if t["name"] == topic]
    records = [json.loads(line) for line in odradek(
        bootstrap, "consume", topic, "--offset", "earliest", "--count", "4", "--format", "json"
    ).stdout.splitlines()]
    for r in records:
        r.pop("timestamp")
    out["consume"] = records
    out["consume_group"] = sorted(odradek(bootstrap, "consume", topic, "--group", group,
                                          "--offset", "earliest", "--count", "4").stdout.splitlines())
    g = odradek_json(bootstrap, "groups", "describe", group)
    g.pop("group")
    out["group"] = g
    plan = odradek_json(bootstrap, "groups", "reset-offsets", group, "--topic", f"{topic}:0",
                        "--shift-by", "-2")
    odradek(bootstrap, "groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
    out["plan"] = plan["offsets"]
    out["after_reset"] = [o["lag"] for o in odradek_json(bootstrap, "groups", "describe", group)["offsets"]]
    odradek(bootstrap, "configs", "set", "--topic", topic, "cleanup.policy=compact")
    odradek(bootstrap, "configs", "delete", "--topic", topic, "retention.ms")
    configs = odradek_json(bootstrap, "configs", "describe", "--topic", topic)
    out["configs"] = {k: (v["value"], v["source"]) for k, v in configs.items()}
    out["bad_config"] = "INVALID_CONFIG" in odradek(bootstrap, "configs", "set", "--topic", topic,
                                                    "no.such.key=1", rc=1).stderr
    out["shrink"] = "INVALID_PARTITIONS" in odradek(bootstrap, "topics", "alter", topic,
                                                    "--partitions", "1", rc=1).stderr
    odradek(bootstrap, "topics", "alter", topic, "--partitions", "3")
    out["grown"] = len(odradek_json(bootstrap, "topics", "describe", topic)[0]["partitions"])
    out["delete_group"] = odradek_json(bootstrap, "groups", "delete", group) == {"deleted": [group]}
    out["delete_topic"] = odradek_json(bootstrap, "topics", "delete", topic) == {"deleted": [topic]}
    quorum = odradek_json(bootstrap, "cluster", "quorum")
    out["quorum"] = (len(quorum["voters"]), quorum["voters"][0]["lag"])
    status = odradek_json(bootstrap, "cluster", "status")
    out["status"] = (status["under_replicated"], status["offline"], len(status["nodes"]))
    nodes = odradek_json(bootstrap, "cluster", "nodes")["nodes"]
    out["nodes"] = [(n["rack"], n["fenced"]) for n in nodes]
    return json.loads(json.dumps(out).replace(group, "<group>").replace(topic, "<topic>"))


@pytest.mark.slow  # two dozen CLI runs against each broker (a second each: Python starts)
def test_the_same_answers_as_kafka(kafka_peer, broker_factory):
    ours = scenario(broker_factory(overrides=ODRADEK_OVERRIDES).bootstrap)
    theirs = scenario(kafka_peer.bootstrap)
    assert ours == theirs
    # and the answers are the ones expected, not just equal
    assert ours["consume"][0] == {"topic": "<topic>", "partition": 0, "offset": 0, "key": "a", "value": "1",
                                  "headers": {"h": "1"}}
    assert ours["plan"] == [{"topic": "<topic>", "partition": 0, "current_offset": 3, "new_offset": 1}]
    assert ours["after_reset"] == [3, 1]
    assert ours["configs"] == {"cleanup.policy": ["compact", "DYNAMIC_TOPIC_CONFIG"]}
    assert ours["grown"] == 3 and ours["bad_config"] and ours["shrink"]

"""Kafka 4.4's kafka-acls against Odradek and against a Kafka 4.4 with its StandardAuthorizer
(issue 16): the same commands, the same output once addresses are normalised and the
order of ACL lines (Kafka prints sets) is sorted. Both nodes run with
``super.users=User:ANONYMOUS``, which a PLAINTEXT tool is; a Kafka node's own traffic
to itself is ANONYMOUS too, so that is the only way it can run its authorizer on PLAINTEXT.
Slow: a second Kafka node starts (about 20 s) and every tool run starts a JVM.
"""

import pytest

from tests.peers import kafka
from tests.peers.test_tools import normalise, run

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
SECURED = {"authorizer.class.name": STANDARD_AUTHORIZER, "super.users": "User:ANONYMOUS"}


@pytest.fixture(scope="module")
def secured_kafka(kafka_libs, tmp_path_factory):
    cluster = kafka.KafkaCluster(nodes=1, work_dir=tmp_path_factory.mktemp("kafka-acls"),
                                 overrides=SECURED)
    cluster.start()
    yield cluster
    cluster.stop(kill=True)


def same(kafka_node, odradek, *args: str, rc: int = 0) -> str:
    outs = []
    for b in (kafka_node.bootstrap, odradek.bootstrap):
        out = normalise(run(b, "kafka-acls", *args, rc=rc).stdout, b)
        outs.append("\n".join(sorted(line for line in out.splitlines() if line)))
    assert outs[1] == outs[0], " ".join(args)
    return outs[1]


def test_kafka_acls_add_list_remove(secured_kafka, broker_factory):
    odradek = broker_factory(overrides=SECURED)
    out = same(secured_kafka, odradek, "--add", "--allow-principal", "User:alice", "--operation", "Read",
               "--operation", "Describe", "--topic", "orders")
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in out
    same(secured_kafka, odradek, "--add", "--allow-principal", "User:bob", "--operation", "Write",
         "--topic", "ord", "--resource-pattern-type", "prefixed")
    same(secured_kafka, odradek, "--add", "--deny-principal", "User:*", "--deny-host", "10.0.0.1",
         "--operation", "All", "--topic", "orders")
    same(secured_kafka, odradek, "--add", "--allow-principal", "User:alice", "--operation", "Read",
         "--group", "billing")
    same(secured_kafka, odradek, "--add", "--allow-principal", "User:alice", "--operation", "IdempotentWrite",
         "--cluster")
    out = same(secured_kafka, odradek, "--list")
    assert "resourceType=GROUP, name=billing" in out
    out = same(secured_kafka, odradek, "--list", "--topic", "orders", "--resource-pattern-type", "match")
    assert "name=ord, patternType=PREFIXED" in out
    same(secured_kafka, odradek, "--remove", "--force", "--allow-principal", "User:alice",
         "--operation", "Read", "--topic", "orders")
    out = same(secured_kafka, odradek, "--list", "--topic", "orders")
    assert "operation=READ" not in out and "operation=DESCRIBE" in out
    same(secured_kafka, odradek, "--remove", "--force", "--topic", "ord", "--resource-pattern-type", "prefixed")
    same(secured_kafka, odradek, "--list", "--principal", "User:bob")

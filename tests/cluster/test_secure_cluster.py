"""Three nodes whose own traffic is authenticated: on INTERNAL (the voters' port) nodes
dial each other with TLS and SASL PLAIN or with TLS client certificates, each node as
itself (node.principals),
clients use SASL_SSL on CLIENT. The cluster forms, replicates and survives its leader's
death; a client that reaches INTERNAL without the node's credentials cannot send our
inter-node requests."""

import json
import signal
import socket
import ssl
import struct

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.brokerproc import BrokerProcess, free_port
from tests.certs import JAAS
from tests.local_cluster import FAST, poll_until


def node_jaas(n: int) -> str:
    """Node n authenticates as User:node<n>; every node knows every node's password."""
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="node{n}" password="node{n}-secret" '
            + " ".join(f'user_node{m}="node{m}-secret"' for m in (1, 2, 3)) + ";")


def _frame(payload: dict) -> bytes:
    body = struct.pack(">hhih", 1001, 0, 7, 4) + b"evil" + json.dumps(payload).encode()
    return struct.pack(">i", len(body)) + body


@pytest.mark.parametrize("internal", ["SASL_SSL", "SSL"])
def test_authenticated_inter_node_traffic_survives_a_leader_kill(tmp_path, certs, internal):
    """On SSL, the nodes' certificates are then moved to a new CA: the trust stores drop the
    old CA and every node reloads (SIGHUP), the killed node comes back with the new stores
    only, and the survivors must dial it with their new certificates."""
    client_port, internal_port = free_port(), free_port()
    truststore = tmp_path / "truststore.pem"  # the CA now and the CA the nodes move to
    truststore.write_text(certs.ca.read_text() + certs.node_keystore(1, issuer="ca2").parent.joinpath(
        "ca2.crt").read_text())
    keystores = {n: tmp_path / f"node-{n}.pem" for n in (1, 2, 3)}
    for n, path in keystores.items():
        path.write_text(certs.node_keystore(n).read_text())
    voters = ",".join(f"{n}@127.0.0.{n}:{internal_port}" for n in (1, 2, 3))
    security = {
        "listener.security.protocol.map": f"CLIENT:SASL_SSL,INTERNAL:{internal}",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server_keystore),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(truststore),
        "sasl.enabled.mechanisms": "PLAIN", "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.client.plain.sasl.jaas.config": JAAS,
    }
    if internal == "SSL":
        security["listener.name.internal.ssl.client.auth"] = "required"

    def own(n: int) -> dict:
        """Each node authenticates as itself (SASL: its own user; SSL: its own certificate,
        CN=node-<n>), and a node's requests must claim its id."""
        if internal != "SASL_SSL":
            return {"ssl.keystore.location": str(keystores[n]),
                    "ssl.principal.mapping.rules": "RULE:^CN=(node-[0-9]+)$/$1/,DEFAULT",
                    "node.principals": ",".join(f"{m}=User:node-{m}" for m in (1, 2, 3))}
        return {"listener.name.internal.plain.sasl.jaas.config": node_jaas(n),
                "node.principals": ",".join(f"{m}=User:node{m}" for m in (1, 2, 3))}
    nodes = [BrokerProcess(tmp_path / f"node{n}", host=f"127.0.0.{n}", port=client_port, node_id=n, overrides={
        **FAST, **security, **own(n),
        "listeners": f"CLIENT://127.0.0.{n}:{client_port},INTERNAL://127.0.0.{n}:{internal_port}",
        "inter.broker.listener.name": "INTERNAL", "controller.quorum.voters": voters,
        "default.replication.factor": "3", "min.insync.replicas": "2"}) for n in (1, 2, 3)]
    client = {"bootstrap.servers": ",".join(b.bootstrap for b in nodes), "security.protocol": "SASL_SSL",
              "ssl.ca.location": str(certs.ca), "sasl.mechanism": "PLAIN", "sasl.username": "alice",
              "sasl.password": "alice-secret"}
    try:
        for b in nodes:
            b.start()
        admin = AdminClient(client)
        assert poll_until(lambda: len(admin.list_topics(timeout=5).brokers) == 3, 60), "no cluster"
        for f in admin.create_topics([NewTopic("secure", 1, 3)]).values():
            f.result(30)
        p = Producer({**client, "acks": "all"})
        for i in range(50):
            p.produce("secure", value=b"%d" % i, partition=0)
        assert p.flush(30) == 0
        leader = admin.list_topics(timeout=5).topics["secure"].partitions[0].leader
        nodes[leader - 1].kill()
        assert poll_until(lambda: admin.list_topics(timeout=5).topics["secure"].partitions[0].leader
                          not in (leader, -1), 30), "no new leader"
        for i in range(50, 100):
            p.produce("secure", value=b"%d" % i, partition=0)
        assert p.flush(30) == 0
        c = Consumer({**client, "group.id": "g", "enable.auto.commit": False})
        c.assign([TopicPartition("secure", 0, 0)])
        values = []
        for _ in range(300):  # polls, each up to 1 s: a bound, not a timing
            if len(values) >= 100:
                break
            m = c.poll(1)
            if m is not None and m.error() is None:
                values.append(m.value())
        c.close()
        assert values == [b"%d" % i for i in range(100)]
        # INTERNAL without the node's credentials: TLS without a client certificate, no SASL
        survivor = next(b for b in nodes if b.node_id != leader)
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        try:
            with socket.create_connection((survivor.host, internal_port), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname=survivor.host) as s:
                s.sendall(_frame({"op": "delete_topic", "args": ["secure"], "kwargs": {}}))
                answer = s.recv(4)
        except (ssl.SSLError, ConnectionError):
            answer = b""  # SSL with client auth required: the handshake itself fails
        assert answer == b""
        assert "secure" in admin.list_topics(timeout=5).topics
        # the nodes knew each other by their own principals
        user = "node" if internal == "SASL_SSL" else "node-"
        assert any(f"principal='User:{user}{m}'" in b.log_text() for b in nodes for m in (1, 2, 3) if m != b.node_id)
        if internal == "SSL":
            truststore.write_text(certs.node_keystore(1, issuer="ca2").parent.joinpath("ca2.crt").read_text())
            for n, path in keystores.items():
                path.write_text(certs.node_keystore(n, issuer="ca2").read_text())
            survivors = [b for b in nodes if b.node_id != leader]
            for b in survivors:
                b.proc.send_signal(signal.SIGHUP)
            assert poll_until(lambda: all(b.log_text().count("event='tls_reloaded'") >= 2 for b in survivors), 20)
            nodes[leader - 1].start()  # trusts only the new CA: the survivors reach it with their new certificates
            assert poll_until(lambda: sorted(admin.list_topics(timeout=5).topics["secure"].partitions[0].isrs)
                              == [1, 2, 3], 60), "the restarted node never caught up"
    finally:
        for b in nodes:
            b.kill()
            print(f"--- node {b.node_id} ---\n" + b.log_text()[-3000:])

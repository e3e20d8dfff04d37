"""Three nodes as docker-compose.yml runs them, on loopback: clients on CLIENT, the
nodes' own traffic on INTERNAL (inter.broker.listener.name, the voters' port). The
cluster forms and replicates over INTERNAL while CLIENT refuses inter-node requests."""

import json
import socket
import struct

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.brokerproc import BrokerProcess, free_port
from tests.clients import create_topics
from tests.local_cluster import FAST, poll_until
from tests.rawclient import recv_frame

Node = BrokerProcess  # with listeners in its overrides, no --listen replaces them


def controller_request(payload: dict) -> bytes:
    body = struct.pack(">hhih", 1001, 0, 7, 4) + b"evil" + json.dumps(payload).encode()
    return struct.pack(">i", len(body)) + body


def test_cluster_with_a_listener_of_its_own(tmp_path):
    client_port, internal_port = free_port(), free_port()
    voters = ",".join(f"{n}@127.0.0.{n}:{internal_port}" for n in (1, 2, 3))
    nodes = [Node(tmp_path / f"node{n}", host=f"127.0.0.{n}", port=client_port, node_id=n, overrides={
        **FAST, "listeners": f"CLIENT://127.0.0.{n}:{client_port},INTERNAL://127.0.0.{n}:{internal_port}",
        "inter.broker.listener.name": "INTERNAL", "controller.quorum.voters": voters,
        "default.replication.factor": "3", "min.insync.replicas": "2"}) for n in (1, 2, 3)]
    bootstrap = ",".join(b.bootstrap for b in nodes)
    try:
        for b in nodes:
            b.start()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert poll_until(lambda: len(admin.list_topics(timeout=5).brokers) == 3, 60), "no cluster"
        create_topics(bootstrap, ["replicated"], partitions=1, rf=3)
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        for i in range(100):
            p.produce("replicated", value=b"%d" % i, partition=0)
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "enable.auto.commit": False})
        c.assign([TopicPartition("replicated", 0, 0)])
        values = []
        while len(values) < 100 and (m := c.poll(10)) is not None:
            assert m.error() is None, m.error()
            values.append(m.value())
        c.close()
        assert values == [b"%d" % i for i in range(100)]
        # Every client listener refuses a forged controller operation.
        for b in nodes:
            with socket.create_connection((b.host, client_port), timeout=5) as s:
                s.sendall(controller_request({"op": "delete_topic", "args": ["replicated"], "kwargs": {}}))
                try:
                    answer = recv_frame(s)
                except (ConnectionError, OSError):
                    answer = None
            assert answer is None
        assert "replicated" in admin.list_topics(timeout=5).topics
        assert all("listener_shared_with_clients" not in b.log_text() for b in nodes)
    finally:
        for b in nodes:
            b.kill()
            print(f"--- node {b.node_id} ---\n" + b.log_text()[-3000:])

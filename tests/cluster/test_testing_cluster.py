"""odradek.testing.Cluster and the odradek_cluster fixture: three node processes, no root.

Each test starts its own cluster (about a second once the zygote runs); the failovers
wait for broker.session.timeout.ms (3 s in the fixture), which makes these slower than
the one-node tests.
"""

import socket
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from odradek.testing import Cluster, OdradekTestingError
from odradek.testing.api import leaks, shutdown

pytestmark = pytest.mark.slow  # failovers wait for broker.session.timeout.ms (3 s)


def wait_until(predicate, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - a node may be down or electing
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def leaders(cluster: Cluster, topic: str, via: int) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": cluster.node(via).address})
    md = admin.list_topics(topic, timeout=5).topics[topic]
    return {p.id: p.leader for p in md.partitions.values()}


def isr(cluster: Cluster, topic: str, via: int) -> dict[int, list[int]]:
    admin = AdminClient({"bootstrap.servers": cluster.node(via).address})
    md = admin.list_topics(topic, timeout=5).topics[topic]
    return {p.id: sorted(p.isrs) for p in md.partitions.values()}


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 30000, "reconnect.backoff.max.ms": 500})
    for v in values:
        p.produce(topic, v, on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(40) == 0
    assert errors == []


def consume(bootstrap: str, topic: str, count: int, group: str = "reader") -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    values, deadline = [], time.monotonic() + 40
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                values.append(msg.value())
    finally:
        c.close()
    return values


def test_acknowledged_records_survive_killing_a_partition_leader(odradek_cluster):
    odradek_cluster.create_topic("ledger", partitions=1)
    produce(odradek_cluster.bootstrap_servers, "ledger", [b"a%d" % i for i in range(50)])
    leader = leaders(odradek_cluster, "ledger", via=1)[0]
    odradek_cluster.kill(leader)
    assert leader not in odradek_cluster.live()
    other = odradek_cluster.live()[0]
    wait_until(lambda: leaders(odradek_cluster, "ledger", via=other)[0] not in (leader, -1),
               what="a new leader")
    produce(odradek_cluster.bootstrap_servers, "ledger", [b"b%d" % i for i in range(50)])
    odradek_cluster.restart(leader)
    wait_until(lambda: isr(odradek_cluster, "ledger", via=other)[0] == [1, 2, 3],
               what="the restarted node back in the ISR")
    values = consume(odradek_cluster.bootstrap_servers, "ledger", 100)
    assert sorted(values) == sorted([b"a%d" % i for i in range(50)] + [b"b%d" % i for i in range(50)])


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_an_isolated_leader_loses_its_partitions_and_rejoins_after_heal(odradek_cluster, mode):
    odradek_cluster.create_topic("isolated", partitions=1)
    leader = leaders(odradek_cluster, "isolated", via=1)[0]
    other = next(n for n in (1, 2, 3) if n != leader)
    odradek_cluster.isolate(leader, mode=mode)
    wait_until(lambda: leaders(odradek_cluster, "isolated", via=other)[0] not in (leader, -1),
               what="a leader on the connected side")
    produce(",".join(odradek_cluster.node(n).address for n in (1, 2, 3) if n != leader),
            "isolated", [b"while-cut"])
    odradek_cluster.heal()
    wait_until(lambda: isr(odradek_cluster, "isolated", via=leader)[0] == [1, 2, 3],
               what="the healed node back in the ISR")


def test_injected_faults_on_every_node_and_a_paused_node(odradek_cluster):
    odradek_cluster.create_topic("flaky", partitions=3)
    odradek_cluster.inject("Produce", error="NOT_LEADER_OR_FOLLOWER", count=2)
    produce(odradek_cluster.bootstrap_servers, "flaky", [b"v%d" % i for i in range(30)])
    hits = sum(r["hits"] for rules in odradek_cluster.faults().values() for r in rules)
    assert hits >= 2
    odradek_cluster.pause(2)
    with pytest.raises(OdradekTestingError, match="paused"):
        odradek_cluster.inject("Fetch", node=2, delay_s=0.1)
    odradek_cluster.heal()
    assert odradek_cluster.faults()[2] == []
    assert sorted(consume(odradek_cluster.bootstrap_servers, "flaky", 30)) == sorted(
        b"v%d" % i for i in range(30))


def test_close_leaves_nothing_behind():
    with Cluster(nodes=3) as cluster:
        pids = [n.pid for n in cluster.nodes.values()]
        assert len(leaks(cluster)) == 1 + 2 * 3  # its directory, and each node's process and port
    assert leaks(cluster) == []
    assert all(not cluster.node(n).alive for n in (1, 2, 3)) and len(set(pids)) == 3
    shutdown()
    assert [x for x in leaks() if "zygote" in x] == []  # (a session fixture may still be open)


def test_a_voter_port_taken_before_the_node_binds_it_starts_again_elsewhere(monkeypatch):
    from odradek.testing import api

    taken = socket.create_server(("127.0.0.1", 0))
    picks, real_free_port = [], api.free_port

    def first_pick_taken(host="127.0.0.1"):
        picks.append(host)
        return taken.getsockname()[1] if len(picks) == 1 else real_free_port(host)

    monkeypatch.setattr(api, "free_port", first_pick_taken)
    with taken, Cluster(nodes=3) as cluster:
        assert taken.getsockname()[1] not in [n.port for n in cluster.nodes.values()]
        assert len(picks) == 6  # two attempts of three ports
        cluster.create_topic("after-retry")


async def test_the_async_cluster_fixture_serves_aiokafka(odradek_cluster_async):
    import asyncio

    from aiokafka import AIOKafkaProducer

    await asyncio.to_thread(odradek_cluster_async.create_topic, "async-events", 3)
    producer = AIOKafkaProducer(bootstrap_servers=odradek_cluster_async.bootstrap_servers,
                                acks="all")
    await producer.start()
    try:
        metadata = await producer.send_and_wait("async-events", b"x", partition=2)
    finally:
        await producer.stop()
    assert metadata.offset == 0

"""Partition reassignment under load on three node processes: an acks=all producer keeps
writing while the partition moves off its leader onto the other two nodes; every
acknowledged record is there afterwards, in order, read from the new replicas."""

import threading
import time

from confluent_kafka import Consumer, Producer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.protocol.admin import AlterPartitionReassignmentsRequest as A
from kafka.protocol.admin import AlterPartitionReassignmentsResponse

from tests.local_cluster import Cluster
from tests.rawclient import RawConnection

TOPIC = "moving"


def reassign(cluster: Cluster, replicas: list[int]) -> list:
    with RawConnection(cluster.nodes[2].bootstrap) as conn:
        answer = conn.roundtrip(A(timeout_ms=10000, topics=[A.ReassignableTopic(name=TOPIC, partitions=[
            A.ReassignableTopic.ReassignablePartition(partition_index=0, replicas=replicas)])]), 0,
            AlterPartitionReassignmentsResponse)
    return [(p.partition_index, p.error_code) for r in answer.responses for p in r.partitions]


def partition(cluster: Cluster):
    md = cluster.admin().list_topics(TOPIC, timeout=5)
    p = md.topics[TOPIC].partitions[0]
    return list(p.replicas), sorted(p.isrs), p.leader


def test_acknowledged_records_survive_moving_a_partition_off_its_leader(tmp_path):
    cluster = Cluster(tmp_path, overrides={"auto.leader.rebalance.enable": "false"})
    acked: list[int] = []
    stop = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": cluster.live_bootstrap, "acks": "all",
                      "enable.idempotence": True, "linger.ms": 5})

        def delivered(err, msg):
            if err is None:
                acked.append(int(msg.value()))
        i = 0
        while not stop.is_set():
            p.produce(TOPIC, str(i).encode(), partition=0, on_delivery=delivered)
            p.poll(0.002)
            i += 1
        p.flush(30)

    try:
        cluster.start()
        cluster.wait_formed()
        admin = KafkaAdminClient(bootstrap_servers=cluster.live_bootstrap, request_timeout_ms=20000)
        admin.create_topics([NewTopic(TOPIC, -1, -1, replica_assignments={0: [1]})])
        admin.close()
        cluster.wait_for(lambda: partition(cluster) == ([1], [1], 1), 30, "the topic")
        writer = threading.Thread(target=produce)
        writer.start()
        cluster.wait_for(lambda: len(acked) > 200, 30, "records acknowledged before the move")
        assert reassign(cluster, [2, 3]) == [(0, 0)]
        cluster.wait_for(lambda: partition(cluster)[:2] == ([2, 3], [2, 3]), 60, "the move")
        before = len(acked)
        cluster.wait_for(lambda: len(acked) > before + 200, 30, "records acknowledged after the move")
        stop.set()
        writer.join(60)
        assert partition(cluster)[2] in (2, 3)

        consumer = Consumer({"bootstrap.servers": cluster.live_bootstrap, "group.id": "check",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([TOPIC])
        read: list[int] = []
        deadline = time.monotonic() + 60
        while len(read) < len(acked) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    read.append(int(msg.value()))
        consumer.close()
        assert set(acked) <= set(read)
        assert read == sorted(set(read))  # in order, no duplicates (idempotent producer)
    finally:
        stop.set()
        cluster.stop_all()

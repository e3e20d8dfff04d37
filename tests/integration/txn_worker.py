"""One member of a consume-transform-produce loop, run as its own process by
test_transactions.test_consume_transform_produce_with_a_killed_member_is_exact.

    python -m tests.integration.txn_worker BOOTSTRAP SOURCE SINK GROUP TRANSACTIONAL_ID MODE

Reads SOURCE in GROUP (read_committed), writes each value + b"-out" to the same partition
of SINK and commits the consumed offsets in the same transaction (KIP-447: with the
consumer's group metadata). On an abortable error it aborts and rewinds to the committed
offsets. MODE "victim": after its first transaction's records and offsets are sent, it
prints IN_TXN and hangs, for the test to SIGKILL it mid-transaction.
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition


def rewind(consumer: Consumer) -> None:
    assignment = consumer.assignment()
    if not assignment:
        return
    for tp in consumer.committed(assignment, 15):
        consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))


def main(bootstrap: str, source: str, sink: str, group: str, tid: str, mode: str) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                         "transaction.timeout.ms": 5000, "linger.ms": 5})
    producer.init_transactions(30)
    consumer.subscribe([source])
    print("STARTED", flush=True)
    while True:
        messages = [m for m in consumer.consume(20, 0.5) if not m.error()]
        if not messages:
            continue
        producer.begin_transaction()
        try:
            for m in messages:
                producer.produce(sink, value=m.value() + b"-out", partition=m.partition())
            positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 15)
            if mode == "victim":
                producer.flush(10)
                print("IN_TXN", flush=True)
                time.sleep(3600)
            producer.commit_transaction(30)
        except KafkaException as e:
            error = e.args[0]
            if error.fatal():
                raise
            print("ABORT", error, flush=True)
            producer.abort_transaction(30)
            rewind(consumer)


if __name__ == "__main__":
    main(*sys.argv[1:7])

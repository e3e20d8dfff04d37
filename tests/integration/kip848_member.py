"""One confluent-kafka consumer with group.protocol=consumer (KIP-848), run as its own
process by test_consumer_protocol.py so that it can be stopped (SIGTERM: close and leave)
or killed (SIGKILL). It appends what it does, one line per event, to a log shared with
the other members (O_APPEND, one write per line, so lines keep the order of the writes):

    assign NAME P,P,...     from its on_assign callback (before it consumes them)
    revoke NAME P,P,...     from on_revoke/on_lost (before the client acknowledges it)
    rec NAME P OFFSET       a record consumed
    commit NAME P OFFSET    a committed offset (the next record to read)

Usage: kip848_member.py BOOTSTRAP GROUP TOPIC LOG NAME [classic]

``classic``: a kafka-python consumer instead (the classic protocol, eager: it gives up
all its partitions before every rejoin), writing the same lines; a rolling upgrade
replaces such members with consumer-protocol ones.
"""

import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException

COMMIT_EVERY = 200
PAUSE_S = 0.001  # consume slowly, so members come and go while records remain


def main() -> int:
    bootstrap, group, topic, log_path, name = sys.argv[1:6]
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    if sys.argv[6:] == ["classic"]:
        return classic(bootstrap, group, topic, name, emit, stop)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "client.id": name})

    def commit() -> None:
        try:
            for tp in consumer.commit(asynchronous=False) or []:
                if tp.error is None and tp.offset >= 0:
                    emit(f"commit {name} {tp.partition} {tp.offset}")
        except KafkaException as e:  # nothing to commit, or a fenced epoch: the next one will do
            emit(f"commit_failed {name} {e.args[0].name()}")

    def on_assign(c, partitions):
        emit(f"assign {name} {','.join(str(p.partition) for p in partitions)}")

    def on_revoke(c, partitions):
        if partitions:
            commit()
        emit(f"revoke {name} {','.join(str(p.partition) for p in partitions)}")

    def on_lost(c, partitions):
        emit(f"revoke {name} {','.join(str(p.partition) for p in partitions)}")

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit(f"started {name}")
    consumed = 0
    while not stop:
        msg = consumer.poll(0.1)
        if msg is None or msg.error():
            continue
        emit(f"rec {name} {msg.partition()} {msg.offset()}")
        consumed += 1
        if consumed % COMMIT_EVERY == 0:
            commit()
        time.sleep(PAUSE_S)
    commit()
    consumer.close()  # revokes (on_revoke) and leaves the group (epoch -1)
    emit(f"closed {name}")
    return 0


def classic(bootstrap, group, topic, name, emit, stop) -> int:
    from kafka import KafkaConsumer
    from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=name,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=6000, heartbeat_interval_ms=500)
    position: dict = {}  # partition -> the next offset to read, for what it consumed

    def committed(offsets, error) -> None:
        if error is not None:  # a rebalance under way: the next owner reads from the last commit
            emit(f"commit_failed {name} {type(error).__name__}")
            return
        for tp, o in offsets.items():
            emit(f"commit {name} {tp.partition} {o.offset}")

    def to_commit() -> dict:
        return {tp: OffsetAndMetadata(o, "", -1) for tp, o in position.items()}

    def commit() -> None:
        offsets = to_commit()
        if offsets:
            try:
                consumer.commit(offsets)
                committed(offsets, None)
            except KafkaError as e:
                committed(offsets, e)

    class Listener(AsyncConsumerRebalanceListener):
        # kafka-python 3 runs listeners on its IO thread: a blocking commit() there fails.
        async def on_partitions_revoked(self, revoked):
            offsets = to_commit()
            if offsets:
                try:
                    await consumer._coordinator._commit_offsets_sync_async(offsets)
                    committed(offsets, None)
                except KafkaError as e:
                    committed(offsets, e)
            position.clear()
            emit(f"revoke {name} {','.join(str(tp.partition) for tp in revoked)}")

        async def on_partitions_assigned(self, assigned):
            emit(f"assign {name} {','.join(str(tp.partition) for tp in assigned)}")

    consumer.subscribe([topic], listener=Listener())
    emit(f"started {name}")
    consumed = 0
    while not stop:
        for tp, msgs in consumer.poll(timeout_ms=100).items():
            for msg in msgs:
                emit(f"rec {name} {msg.partition} {msg.offset}")
                position[tp] = msg.offset + 1
                consumed += 1
                if consumed % COMMIT_EVERY == 0:
                    commit()
                time.sleep(PAUSE_S)
    commit()
    # kafka-python's close calls no revocation callback: it stops consuming here, then leaves.
    emit(f"revoke {name} {','.join(str(tp.partition) for tp in consumer.assignment())}")
    consumer.close(autocommit=False)
    emit(f"closed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

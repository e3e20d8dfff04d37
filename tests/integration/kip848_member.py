"""One confluent-kafka consumer with group.protocol=consumer (KIP-848), run as its own
process by test_consumer_protocol.py so that it can be stopped (SIGTERM: close and leave)
or killed (SIGKILL). It appends what it does, one line per event, to a log shared with
the other members (O_APPEND, one write per line, so lines keep the order of the writes):

    assign NAME P,P,...     from its on_assign callback (before it consumes them)
    revoke NAME P,P,...     from on_revoke/on_lost (before the client acknowledges it)
    rec NAME P OFFSET       a record consumed
    commit NAME P OFFSET    a committed offset (the next record to read)

Usage: kip848_member.py BOOTSTRAP GROUP TOPIC LOG NAME
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

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
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


if __name__ == "__main__":
    sys.exit(main())

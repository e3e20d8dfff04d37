"""`odradek console --bootstrap` against Kafka 4.4: the pages a node's own console shows,
built from Kafka requests alone, hold the same numbers for a real Kafka (the same check
as against Odradek in tests/integration/test_console.py)."""

import signal
import uuid

from tests.integration.test_console import check_console_apart, fill, start_console


def test_odradek_console_of_kafka(kafka_peer):
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"console-{suffix}", f"console-group-{suffix}"
    fill(kafka_peer, topic, group)
    console = start_console(kafka_peer.bootstrap)
    try:
        check_console_apart(console, kafka_peer.bootstrap, [1], topic, group)
    finally:
        console.send_signal(signal.SIGTERM)
        assert console.wait(10) == 0

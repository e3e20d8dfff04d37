"""Fixtures of the peer tests: Kafka 4.4's jars (`kafka_libs`) and one Kafka 4.4 node
started once per test run (`kafka_peer`).

Without java, or without mvn while Kafka is not fetched yet, the tests that need them
skip with the reason; under CI=true they fail instead (as require_tool does).
"""

import shutil

import pytest

from tests.conftest import CI, require_tool
from tests.peers import kafka


@pytest.fixture(scope="session")
def kafka_libs():
    """The directory of Kafka 4.4's jars, fetched into the cache the first time."""
    require_tool("java")
    if not kafka.is_fetched() and shutil.which("mvn") is None:
        require_tool("mvn")
    try:
        return kafka.ensure_kafka()
    except kafka.KafkaUnavailable as e:
        if CI:
            pytest.fail(f"Kafka {kafka.KAFKA_VERSION} is unavailable: {e}")
        pytest.skip(f"Kafka {kafka.KAFKA_VERSION} is unavailable: {e}")


@pytest.fixture(scope="session")
def kafka_peer(kafka_libs, tmp_path_factory):
    """A one-node Kafka 4.4 (combined broker and controller, KRaft) on free loopback ports,
    shared by every test of the run: tests give their topics and groups unique names."""
    cluster = kafka.KafkaCluster(nodes=1, work_dir=tmp_path_factory.mktemp("kafka-peer"))
    cluster.start()
    yield cluster
    cluster.stop(kill=True)

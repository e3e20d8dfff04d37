"""Every client bootstraps, reads metadata and manages topics against a real broker."""

import subprocess

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin import NewPartitions as AioNewPartitions
from aiokafka.admin import NewTopic as AioNewTopic
from aiokafka.admin.config_resource import ConfigResource as AioConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AioConfigResourceType
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin import NewPartitions as CkNewPartitions
from confluent_kafka.admin import NewTopic as CkNewTopic
from kafka import KafkaConsumer
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic

from tests.conftest import require_tool


def kcat_metadata(bootstrap: str) -> str:
    kcat = require_tool("kcat")
    return subprocess.run([kcat, "-b", bootstrap, "-L", "-m", "10"], capture_output=True,
                          text=True, timeout=30, check=True).stdout


def test_every_client_bootstraps(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("boot", 3, 1)])
    cluster = admin.describe_cluster()
    admin.close()
    assert [b["node_id"] if "node_id" in b else b["broker_id"] for b in cluster["brokers"]] == [1]

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    assert consumer.partitions_for_topic("boot") == {0, 1, 2}
    consumer.close()

    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert list(md.brokers) == [1] and md.brokers[1].port == broker.port
    assert sorted(md.topics["boot"].partitions) == [0, 1, 2]

    out = kcat_metadata(broker.bootstrap)
    assert f"broker 1 at {broker.bootstrap}" in out
    assert 'topic "boot" with 3 partitions' in out


async def test_aiokafka_bootstraps(broker):
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
    await consumer.start()
    try:
        assert await consumer.topics() == set()
    finally:
        await consumer.stop()


def _topic_config(describe_result, key):
    return describe_result["topic"][next(iter(describe_result["topic"]))][key]["value"]


def test_kafka_python_admin(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    result = admin.create_topics([NewTopic("kp", 2, 1, topic_configs={"retention.ms": "1000"})])
    assert result["topics"][0]["error_code"] == 0
    described = admin.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, "kp")])
    assert _topic_config(described, "retention.ms") == "1000"
    admin.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, "kp",
                                          configs={"retention.ms": "2000"})])
    described = admin.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, "kp")])
    assert _topic_config(described, "retention.ms") == "2000"
    admin.create_partitions({"kp": NewPartitions(4)})
    admin.create_topics([NewTopic("kp-doomed", 1, 1)])
    admin.delete_topics(["kp-doomed"])
    assert sorted(admin.list_topics()) == ["kp"]
    admin.close()

    broker.restart()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    assert sorted(admin.list_topics()) == ["kp"]
    described = admin.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, "kp")])
    assert _topic_config(described, "retention.ms") == "2000"
    admin.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    assert consumer.partitions_for_topic("kp") == {0, 1, 2, 3}
    consumer.close()


def test_confluent_admin(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([CkNewTopic("ck", 3, 1, config={"cleanup.policy": "delete",
                                                                 "retention.bytes": "1048576"})]).values():
        f.result(10)
    (described,) = admin.describe_configs([ConfigResource("topic", "ck")]).values()
    configs = described.result(10)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.bytes"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert configs["segment.bytes"].source == 5  # DEFAULT_CONFIG
    op = ConfigEntry("retention.ms", "5000", incremental_operation=AlterConfigOpType.SET)
    for f in admin.incremental_alter_configs([ConfigResource("topic", "ck", incremental_configs=[op])]).values():
        f.result(10)
    for f in admin.create_partitions([CkNewPartitions("ck", 5)]).values():
        f.result(10)
    # Invalid requests get Kafka's errors, not a dropped connection.
    (bad,) = admin.create_topics([CkNewTopic("bad name!", 1, 1)]).values()
    with pytest.raises(Exception, match="TOPIC_EXCEPTION|invalid"):
        bad.result(10)
    (dup,) = admin.create_topics([CkNewTopic("ck", 1, 1)]).values()
    with pytest.raises(Exception, match="TOPIC_ALREADY_EXISTS|already exists"):
        dup.result(10)
    (rf,) = admin.create_topics([CkNewTopic("rf3", 1, 3)]).values()
    with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR|Replication factor"):
        rf.result(10)
    (cfg,) = admin.create_topics([CkNewTopic("badcfg", 1, 1, config={"retention.ms": "soon"})]).values()
    with pytest.raises(Exception, match="INVALID_CONFIG|retention.ms"):
        cfg.result(10)
    (shrink,) = admin.create_partitions([CkNewPartitions("ck", 2)]).values()
    with pytest.raises(Exception, match="INVALID_PARTITIONS|increase"):
        shrink.result(10)

    broker.restart()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = admin.list_topics(timeout=10)
    assert sorted(md.topics) == ["ck"] and len(md.topics["ck"].partitions) == 5
    (described,) = admin.describe_configs([ConfigResource("topic", "ck")]).values()
    assert described.result(10)["retention.ms"].value == "5000"
    for f in admin.delete_topics(["ck"]).values():
        f.result(10)
    assert "ck" not in admin.list_topics(timeout=10).topics


async def test_aiokafka_admin(broker):
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([AioNewTopic("aio", 2, 1, topic_configs={"retention.ms": "1000"})])
        await admin.alter_configs([AioConfigResource(AioConfigResourceType.TOPIC, "aio",
                                                     configs={"retention.ms": "3000"})])
        (response,) = await admin.describe_configs([AioConfigResource(AioConfigResourceType.TOPIC, "aio")])
        entries = {e[0]: e[1] for e in response.resources[0][4]}
        assert entries["retention.ms"] == "3000"
        await admin.create_partitions({"aio": AioNewPartitions(4)})
        assert await admin.list_topics() == ["aio"]
        await admin.delete_topics(["aio"])
        assert await admin.list_topics() == []
    finally:
        await admin.close()

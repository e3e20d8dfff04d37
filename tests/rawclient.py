"""A minimal raw Kafka client for tests that need exact requests (kafka-python's schemas)."""

import time

from kafka.protocol.admin import (
    CreateTopicsRequest,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from odradek.broker.client import KafkaConnection, recv_frame  # noqa: F401  (recv_frame: re-exported)
from odradek.protocol.errors import ErrorCode
from odradek.protocol.records import build_batch

RawConnection = KafkaConnection  # the tests' name for it


def produce_request(topic: str, partitions: dict[int, bytes], acks: int = -1, timeout_ms: int = 5000):
    P = ProduceRequest
    return P(transactional_id=None, acks=acks, timeout_ms=timeout_ms, topic_data=[
        P.TopicProduceData(name=topic, partition_data=[
            P.TopicProduceData.PartitionProduceData(index=i, records=data)
            for i, data in partitions.items()])])


def produce(bootstrap: str, topic: str, partitions: dict[int, bytes], version: int = 9, acks: int = -1):
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(produce_request(topic, partitions, acks), version, ProduceResponse)
    return {p.index: p for p in resp.responses[0].partition_responses}


def fetch_request(topic: str, partition: int, offset: int = 0, max_wait_ms: int = 0,
                  min_bytes: int = 0, max_bytes: int = 10**7, isolation_level: int = 0):
    F = FetchRequest
    return F(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
             isolation_level=isolation_level, session_id=0, session_epoch=-1,
             topics=[F.FetchTopic(topic=topic, partitions=[F.FetchTopic.FetchPartition(
                 partition=partition, current_leader_epoch=-1, fetch_offset=offset,
                 log_start_offset=-1, partition_max_bytes=max_bytes)])],
             forgotten_topics_data=[], rack_id="")


def fetch(bootstrap: str, topic: str, partition: int, offset: int = 0, version: int = 11, **kwargs):
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(fetch_request(topic, partition, offset, **kwargs), version, FetchResponse)
    return resp.responses[0].partitions[0]


def describe_configs(resource_type: int, name: str, keys=None, synonyms=True):
    D = DescribeConfigsRequest
    return D(resources=[D.DescribeConfigsResource(resource_type=resource_type, resource_name=name,
                                                  configuration_keys=keys)],
             include_synonyms=synonyms, include_documentation=False)


def incremental_alter(resource_type: int, name: str, *ops, validate_only=False):
    """`ops`: (config name, operation 0 set / 1 delete / 2 append / 3 subtract, value)."""
    IA = IncrementalAlterConfigsRequest
    return IA(resources=[IA.AlterConfigsResource(
        resource_type=resource_type, resource_name=name, configs=[
            IA.AlterConfigsResource.AlterableConfig(name=k, config_operation=op, value=v)
            for k, op, v in ops])], validate_only=validate_only)


def alter_broker_configs(bootstrap: str, name: str, *ops, validate_only=False):
    """IncrementalAlterConfigs v1 of broker `name` ("" for every broker): (error code, message)."""
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(incremental_alter(4, name, *ops, validate_only=validate_only), 1,
                              IncrementalAlterConfigsResponse)
    (r,) = resp.responses
    return r.error_code, r.error_message


def described_configs(bootstrap: str, resource_type: int, name: str, keys=None) -> dict:
    """DescribeConfigs v4 of one resource:
    name -> (value, source, read_only, sensitive, [(synonym, value, source)])."""
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(describe_configs(resource_type, name, keys), 4, DescribeConfigsResponse)
    (r,) = resp.results
    assert r.error_code == 0, r
    return {c.name: (c.value, c.config_source, c.read_only, c.is_sensitive,
                     [(s.name, s.value, s.source) for s in c.synonyms]) for c in r.configs}


C = CreateTopicsRequest


def create_request(names: list[str], partitions: int) -> CreateTopicsRequest:
    return C(topics=[C.CreatableTopic(name=n, num_partitions=partitions, replication_factor=1,
                                      assignments=[], configs=[]) for n in names],
             timeout_ms=60000, validate_only=False)


def topic_names(conn: RawConnection) -> set[str]:
    metadata = conn.roundtrip(MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                              include_cluster_authorized_operations=False,
                                              include_topic_authorized_operations=False),
                              9, MetadataResponse)
    return {t.name for t in metadata.topics}


def produce_and_fetch(conn: RawConnection, topic: str, partition: int, value: bytes) -> list[int]:
    """Append ``value`` and fetch the partition from 0: the offsets read back."""
    batch = build_batch([(b"k", value, (), int(time.time() * 1000))])
    produced = conn.roundtrip(produce_request(topic, {partition: batch}), 9, ProduceResponse)
    assert produced.responses[0].partition_responses[0].error_code == ErrorCode.NONE
    return fetch_offsets(conn, topic, partition)


def fetch_offsets(conn: RawConnection, topic: str, partition: int) -> list[int]:
    fetched = conn.roundtrip(fetch_request(topic, partition), 11, FetchResponse)
    part = fetched.responses[0].partitions[0]
    assert part.error_code == ErrorCode.NONE
    records = bytes(part.records or b"")
    offsets, pos = [], 0
    while pos + 12 <= len(records):  # base offset int64, batch length int32
        offsets.append(int.from_bytes(records[pos:pos + 8], "big"))
        pos += 12 + int.from_bytes(records[pos + 8:pos + 12], "big")
    return offsets


def until_coordinator(conn, group: str, attempt, timeout_s: float = 20):
    """``attempt()`` until the group's coordinator answers it (the offsets topic may be
    created and loading first); FindCoordinator before each try, as clients do."""
    from kafka.protocol.metadata.find_coordinator import (
        FindCoordinatorRequest,
        FindCoordinatorResponse,
    )
    waiting = (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NOT_COORDINATOR,
               ErrorCode.COORDINATOR_NOT_AVAILABLE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conn.roundtrip(FindCoordinatorRequest(key=group, key_type=0), 3, FindCoordinatorResponse)
        r = attempt()
        if r.error_code == ErrorCode.NONE:
            return r
        assert r.error_code in waiting, r
        time.sleep(0.2)
    raise AssertionError("no answer from the coordinator")

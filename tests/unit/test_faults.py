"""odradek.testing.faults: the error response that mirrors a request, and rule matching.

Pure: requests and responses are kafka-python's message objects, encoded and decoded
again so a response the codec cannot write fails here.
"""

import uuid

from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
)
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from odradek.protocol.errors import ErrorCode
from odradek.replication.metadata import MetadataImage, TopicImage
from odradek.testing.faults import Faults, Rule, mirror

NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER


def roundtrip(response, version):
    return type(response).decode(response.encode(version=version), version=version)


def produce(topics: dict[str, list[int]]):
    return ProduceRequest(acks=-1, timeout_ms=1000, topic_data=[
        ProduceRequest.TopicProduceData(name=t, partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=p, records=b"")
            for p in ps]) for t, ps in topics.items()])


def test_a_produce_error_names_every_partition_of_the_request():
    response = roundtrip(mirror(ProduceResponse, produce({"a": [0, 2], "b": [1]}), NOT_LEADER), 9)
    got = {(t.name, p.index, p.error_code) for t in response.responses for p in t.partition_responses}
    assert got == {("a", 0, 6), ("a", 2, 6), ("b", 1, 6)}


def test_fetch_v13_names_topics_by_id():
    topic_id = uuid.uuid4()
    request = FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=1, topics=[
        FetchRequest.FetchTopic(topic_id=topic_id, partitions=[
            FetchRequest.FetchTopic.FetchPartition(partition=3, fetch_offset=0)])])
    response = roundtrip(mirror(FetchResponse, request, NOT_LEADER), 13)
    assert response.responses[0].topic_id == topic_id
    assert [(p.partition_index, p.error_code) for p in response.responses[0].partitions] == [(3, 6)]


def test_list_offsets_and_a_top_level_error_code():
    request = ListOffsetsRequest(replica_id=-1, topics=[ListOffsetsRequest.ListOffsetsTopic(
        name="t", partitions=[ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=1, timestamp=-1)])])
    response = roundtrip(mirror(ListOffsetsResponse, request, NOT_LEADER), 7)
    assert response.topics[0].partitions[0].error_code == NOT_LEADER
    heartbeat = HeartbeatRequest(group_id="g", generation_id=1, member_id="m")
    code = ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert roundtrip(mirror(HeartbeatResponse, heartbeat, code), 4).error_code == code


def test_find_coordinator_v4_answers_each_key():
    request = FindCoordinatorRequest(key_type=0, coordinator_keys=["g1", "g2"])
    code = ErrorCode.COORDINATOR_NOT_AVAILABLE
    response = roundtrip(mirror(FindCoordinatorResponse, request, code), 4)
    assert [(c.key, c.error_code) for c in response.coordinators] == [("g1", code), ("g2", code)]


class FakeBroker:
    node_id = 1
    connections: set = set()

    def __init__(self):
        self.image = MetadataImage()


def test_rules_match_topic_and_partition_and_run_out():
    faults = Faults(FakeBroker())
    faults.inject("Produce", error="NOT_LEADER_OR_FOLLOWER", count=2, topic="a", partition=2)
    assert faults._take(0, produce({"b": [2]})) is None
    assert faults._take(0, produce({"a": [0]})) is None
    assert faults._take(1, produce({"a": [2]})) is None  # another API
    assert faults._take(0, produce({"a": [2], "b": [0]})).hits == 1
    assert faults._take(0, produce({"a": [2]})).hits == 2
    assert faults._take(0, produce({"a": [2]})) is None
    assert faults.report()[0]["count"] == 0


def test_a_rule_for_a_topic_matches_fetch_by_topic_id():
    broker = FakeBroker()
    topic_id = uuid.uuid4()
    broker.image.topics_by_id[str(topic_id)] = TopicImage("a", str(topic_id))
    request = FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=1, topics=[
        FetchRequest.FetchTopic(topic_id=topic_id, partitions=[
            FetchRequest.FetchTopic.FetchPartition(partition=0, fetch_offset=0)])])
    faults = Faults(broker)
    faults.rules.append(Rule(api_key=1, count=-1, error=6, topic="a"))
    assert faults._take(1, request) is not None
    assert faults.rules[0].count == -1  # -1: every request

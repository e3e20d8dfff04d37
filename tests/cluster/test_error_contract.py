"""The error contract on a three-node cluster: controller calls answer error codes within
the request's timeout, a forwarding node answers once it sees its own change, and a
new cluster serves admin clients as soon as it forms.

Slow (seconds each): they start three real node processes.
"""

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)
from kafka.protocol.admin import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse

from odradek.protocol.errors import ErrorCode
from tests.clients import create_topics
from tests.rawclient import RawConnection


def _metadata_request(name: str) -> MetadataRequest:
    return MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=name, topic_id=None)],
                           allow_auto_topic_creation=True, include_cluster_authorized_operations=False,
                           include_topic_authorized_operations=False)


def test_controller_calls_without_a_quorum_answer_error_codes_and_keep_the_connection(cluster):
    """A node whose quorum is gone cannot reach a controller. Every request that needs one
    answers a retriable error code within the request's timeout (or at once) instead of
    retrying for 30 s and closing the connection."""
    cluster.start()
    cluster.wait_formed()
    survivor = cluster.live()[0]
    for n in cluster.live()[1:]:
        cluster.kill(n)
    C = CreateTopicsRequest
    create = C(topics=[C.CreatableTopic(name="late", num_partitions=1, replication_factor=1,
                                         assignments=[], configs=[])],
               timeout_ms=1000, validate_only=False)
    init_pid = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000,
                                     producer_id=-1, producer_epoch=-1)
    # The client's socket timeout is far below the 30 s the broker retried for before.
    with RawConnection(cluster.nodes[survivor].bootstrap, timeout=8) as conn:
        created = conn.roundtrip(create, 5, CreateTopicsResponse)
        metadata = conn.roundtrip(_metadata_request("auto"), 9, MetadataResponse)
        pid = conn.roundtrip(init_pid, 2, InitProducerIdResponse)
        coordinator = conn.roundtrip(FindCoordinatorRequest(key="g", key_type=0), 3,
                                     FindCoordinatorResponse)
        versions = conn.roundtrip(ApiVersionsRequest(), 0, ApiVersionsResponse)
    assert [(t.name, t.error_code) for t in created.topics] == [("late", ErrorCode.REQUEST_TIMED_OUT)]
    # Kafka 4.4 (KRaft) answers a topic it asked the controller to create this way.
    assert [(t.name, t.error_code) for t in metadata.topics] == [
        ("auto", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert pid.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert coordinator.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert versions.error_code == ErrorCode.NONE  # the same connection still serves


def test_a_forwarding_node_answers_once_it_sees_its_own_change(cluster):
    """Admin changes sent to a node that is not the controller: a describe (or the next
    CreatePartitions) right after each, on the same connection, sees the change."""
    cluster.start()
    leader = cluster.wait_formed()
    create_topics(cluster.live_bootstrap, ["rw"], 1, 3)
    follower = next(n for n in cluster.live() if n != leader)
    cluster.wait_for(lambda: "rw" in AdminClient({"bootstrap.servers": cluster.nodes[follower].bootstrap})
                     .list_topics(timeout=5).topics, 10, "the topic on the follower")
    A, D, P = IncrementalAlterConfigsRequest, DescribeConfigsRequest, CreatePartitionsRequest
    with RawConnection(cluster.nodes[follower].bootstrap, timeout=20) as conn:
        for i in range(5):
            value = str(1000 + i)
            altered = conn.roundtrip(A(resources=[A.AlterConfigsResource(
                resource_type=2, resource_name="rw", configs=[A.AlterConfigsResource.AlterableConfig(
                    name="retention.ms", config_operation=0, value=value)])], validate_only=False),
                1, IncrementalAlterConfigsResponse)
            assert altered.responses[0].error_code == ErrorCode.NONE
            described = conn.roundtrip(D(resources=[D.DescribeConfigsResource(
                resource_type=2, resource_name="rw", configuration_keys=["retention.ms"])],
                include_synonyms=False, include_documentation=False), 4, DescribeConfigsResponse)
            assert [c.value for c in described.results[0].configs] == [value]
            grown = conn.roundtrip(P(topics=[P.CreatePartitionsTopic(name="rw", count=2 + i,
                                                                     assignments=None)],
                                     timeout_ms=5000, validate_only=False), 1, CreatePartitionsResponse)
            assert grown.results[0].error_code == ErrorCode.NONE, grown.results[0].error_message
            metadata = conn.roundtrip(_metadata_request("rw"), 9, MetadataResponse)
            assert len(metadata.topics[0].partitions) == 2 + i


def test_admin_requests_right_after_start_complete_once_the_cluster_forms(cluster):
    """librdkafka's admin client, started with the cluster, gets its topics created within
    its own request timeout: nodes give retriable answers until they are registered and
    caught up, not a cluster of no brokers that the client then waits ~10 s to ask again."""
    cluster.start()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    futures = admin.create_topics([NewTopic("early", 3, 1)], request_timeout=5, operation_timeout=5)
    futures["early"].result(10)  # raises _TIMED_OUT if the client's own 5 s passed first
    partitions = admin.create_partitions([NewPartitions("early", 4)], request_timeout=5)
    partitions["early"].result(10)
    configs = admin.incremental_alter_configs([ConfigResource("topic", "early", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])],
        request_timeout=5)
    list(configs.values())[0].result(10)


def test_a_create_retried_after_a_controller_election_gets_its_first_answer(tmp_path):
    """The controller creates the topic, its answer to the forwarding node is lost and it
    dies: the forwarding node retries under the same request id at the new controller,
    which answers what the first one did, not TOPIC_ALREADY_EXISTS. Needs network
    namespaces (root), to drop the controller's packets to the forwarding node only."""
    from tests.cluster.test_nemesis import _close, _open
    nem = _open(tmp_path)
    try:
        cluster = nem.cluster
        cluster.start()
        controller = cluster.wait_formed()
        forwarder, other = [n for n in cluster.nodes if n != controller]
        nem.network.link(controller, forwarder).loss = 1.0
        nem.network.apply()
        C = CreateTopicsRequest
        create = C(topics=[C.CreatableTopic(name="once", num_partitions=1, replication_factor=1,
                                            assignments=[], configs=[])],
                   timeout_ms=30000, validate_only=False)
        with RawConnection(cluster.nodes[forwarder].bootstrap, timeout=40) as conn:
            conn.send(create, 5)
            cluster.wait_for(lambda: "once" in AdminClient({"bootstrap.servers": cluster.nodes[other].bootstrap})
                             .list_topics(timeout=5).topics, 15, "the topic committed")
            nem.kill(controller)
            created = conn.receive(CreateTopicsResponse, 5)
        assert [(t.name, t.error_code) for t in created.topics] == [("once", ErrorCode.NONE)]
    finally:
        _close(nem)

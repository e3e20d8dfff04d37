"""The authorizer against Kafka 4.4's StandardAuthorizer (issue 16): the same denied
requests to both, the same answers once cluster-specific fields are normalised
(tests/peers/oracle.py).

Both run with ``allow.everyone.if.no.acl.found=true``: a Kafka node on PLAINTEXT talks to
its own controller as User:ANONYMOUS, so it cannot deny ANONYMOUS everything and still
run. ACLs that name only User:alice then close the resources they name to ANONYMOUS (the
principal of these PLAINTEXT connections), and ANONYMOUS keeps CLUSTER_ACTION so that
Kafka's broker keeps its controller. Slow: a second Kafka node starts (about 20 s).
"""

import re
import time

import pytest
from kafka.protocol.admin import (
    AlterClientQuotasRequest,
    CreateAclsRequest,
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteRecordsRequest,
    DeleteTopicsRequest,
    DescribeAclsRequest,
    DescribeClientQuotasRequest,
    DescribeClusterRequest,
    DescribeConfigsRequest,
    DescribeLogDirsRequest,
    DescribeProducersRequest,
    DescribeTopicPartitionsRequest,
    DescribeTransactionsRequest,
    ElectLeadersRequest,
    ListTransactionsRequest,
)
from kafka.protocol.admin.groups import (
    DeleteGroupsRequest,
    DescribeGroupsRequest,
    ListGroupsRequest,
)
from kafka.protocol.consumer import ListOffsetsRequest
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    OffsetDeleteRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.producer import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    TxnOffsetCommitRequest,
)

from tests.peers import kafka
from tests.peers.oracle import Side, differences, normalise, plain
from tests.peers.test_oracle import add_partitions, find_coordinator, offset_commit, txn_init
from tests.rawclient import fetch_request, produce_request

OPEN_BY_DEFAULT = {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                   "allow.everyone.if.no.acl.found": "true", "group.initial.rebalance.delay.ms": "0"}
TOPIC, GROUP, CLUSTER, TXN = 2, 3, 4, 5
LITERAL, ALLOW = 3, 3
READ, WRITE, ALTER, CLUSTER_ACTION = 3, 4, 7, 9
ACLS = [(TOPIC, "secret", "User:alice", READ), (GROUP, "secret-g", "User:alice", READ),
        (TXN, "secret-tx", "User:alice", WRITE), (CLUSTER, "kafka-cluster", "User:alice", ALTER),
        (CLUSTER, "kafka-cluster", "User:ANONYMOUS", CLUSTER_ACTION)]
# Clients from another loopback address are denied CLUSTER_ACTION (a DENY for that host
# alone: Kafka's broker still reaches its controller from 127.0.0.1).
OTHER_HOST, DENY = "127.0.0.2", 2


@pytest.fixture(scope="module")
def secured_sides(kafka_libs, tmp_path_factory):
    from tests.brokerproc import BrokerProcess
    peer = kafka.KafkaCluster(nodes=1, work_dir=tmp_path_factory.mktemp("kafka-authz"),
                              overrides=OPEN_BY_DEFAULT)
    odradek = BrokerProcess(data_dir=tmp_path_factory.mktemp("odradek-authz"),
                            overrides=OPEN_BY_DEFAULT).start()
    try:
        peer.start()
        sides = Side("kafka", peer.bootstrap), Side("odradek", odradek.bootstrap)
        for side in sides:
            prepare(side)
        yield sides
        for side in sides:
            side.close()
    finally:
        peer.stop(kill=True)
        odradek.kill()


def prepare(side: Side) -> None:
    """Topics and a group made while everything is open, then the ACLs, in one request."""
    side.create_topic("open", 1)
    side.create_topic("secret", 1)
    find_coordinator(side, "open-g")
    side.call(offset_commit("open-g", "open"), 9)
    find_coordinator(side, "open-share")
    assert side.call(alter_share_offsets("open-share", "open"), 0).error_code == 0  # an empty share group
    for tid in ("open-tx", "secret-tx"):  # ongoing transactions over both topics (for Describe/ListTransactions)
        init = txn_init(side, tid, timeout_ms=900000)
        added = side.call(add_partitions(tid, init.producer_id, init.producer_epoch, {"open": [0], "secret": [0]}), 3)
        assert {p.partition_error_code for t in added.results_by_topic_v3_and_below
                for p in t.results_by_partition} == {0}, (side.name, added)
    C = CreateAclsRequest.AclCreation
    created = side.call(CreateAclsRequest(creations=[
        C(resource_type=rtype, resource_name=name, resource_pattern_type=LITERAL, principal=principal,
          host="*", operation=op, permission_type=ALLOW) for rtype, name, principal, op in ACLS] + [
        C(resource_type=CLUSTER, resource_name="kafka-cluster", resource_pattern_type=LITERAL,
          principal="User:ANONYMOUS", host=OTHER_HOST, operation=CLUSTER_ACTION, permission_type=DENY)]), 3)
    assert [r.error_code for r in created.results] == [0] * (len(ACLS) + 1), (side.name, created)
    M = MetadataRequest
    deadline = time.monotonic() + 15  # Kafka applies the ACLs a moment after answering
    while side.call(M(topics=[M.MetadataRequestTopic(name="secret")], allow_auto_topic_creation=False),
                    12).topics[0].error_code != 29:
        assert time.monotonic() < deadline, f"{side.name}: the ACLs never applied"
        time.sleep(0.1)


def alter_share_offsets(group: str, *topics: str):
    from odradek.protocol.messages import AlterShareGroupOffsetsRequest as A
    T = A.AlterShareGroupOffsetsRequestTopic
    return A(group_id=group, topics=[T(topic_name=t, partitions=[
        T.AlterShareGroupOffsetsRequestPartition(partition_index=0, start_offset=0)]) for t in topics])


def delete_share_offsets(group: str, *topics: str):
    from odradek.protocol.messages import DeleteShareGroupOffsetsRequest as D
    return D(group_id=group, topics=[D.DeleteShareGroupOffsetsRequestTopic(topic_name=t) for t in topics])


UNKNOWN_PID = 987654321  # a producer id neither side has given out


def add_offsets(tid: str, group: str):
    return AddOffsetsToTxnRequest(transactional_id=tid, producer_id=UNKNOWN_PID, producer_epoch=0, group_id=group)


def end_txn(tid: str):
    return EndTxnRequest(transactional_id=tid, producer_id=UNKNOWN_PID, producer_epoch=0, committed=True)


def txn_offset_commit(tid: str, group: str, *topics: str):
    T = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
    return TxnOffsetCommitRequest(
        transactional_id=tid, group_id=group, producer_id=UNKNOWN_PID, producer_epoch=0, generation_id=-1,
        member_id="", group_instance_id=None, topics=[T(name=t, partitions=[T.TxnOffsetCommitRequestPartition(
            partition_index=0, committed_offset=0, committed_leader_epoch=-1, committed_metadata="")])
            for t in topics])


def requests():
    """(name, request, version): each denied (or filtered) for ANONYMOUS by the ACLs."""
    M = MetadataRequest
    L = ListOffsetsRequest
    DC = DescribeConfigsRequest
    OF = OffsetFetchRequest
    DTP = DescribeTopicPartitionsRequest
    DR = DeleteRecordsRequest
    DP = DescribeProducersRequest
    CP = CreatePartitionsRequest
    A = AlterClientQuotasRequest.EntryData
    yield "metadata", M(topics=[M.MetadataRequestTopic(name=n) for n in ("open", "secret", "nowhere")],
                        allow_auto_topic_creation=False, include_topic_authorized_operations=True), 12
    yield "list_offsets", L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(
        name="secret", partitions=[L.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=0, current_leader_epoch=-1, timestamp=-1)])]), 8
    yield "produce", produce_request("secret", {0: b""}, acks=1), 9
    yield "fetch", fetch_request("secret", 0), 11
    yield "describe_configs", DC(resources=[
        DC.DescribeConfigsResource(resource_type=2, resource_name="secret", configuration_keys=None),
        DC.DescribeConfigsResource(resource_type=4, resource_name="1", configuration_keys=None)],
        include_synonyms=False, include_documentation=False), 4
    yield "describe_cluster", DescribeClusterRequest(include_cluster_authorized_operations=True), 1
    yield "describe_acls", DescribeAclsRequest(resource_type_filter=1, resource_name_filter=None,
                                               pattern_type_filter=1, principal_filter=None, host_filter=None,
                                               operation=1, permission_type=1), 3
    yield "create_acls", CreateAclsRequest(creations=[CreateAclsRequest.AclCreation(
        resource_type=TOPIC, resource_name="x", resource_pattern_type=LITERAL, principal="User:bob",
        host="*", operation=READ, permission_type=ALLOW)]), 3
    yield "find_group_coordinator", FindCoordinatorRequest(key_type=0, coordinator_keys=["secret-g"]), 4
    yield "find_txn_coordinator", FindCoordinatorRequest(key_type=1, coordinator_keys=["secret-tx"]), 4
    yield "join_group", JoinGroupRequest(group_id="secret-g", session_timeout_ms=10000,
                                         rebalance_timeout_ms=10000, member_id="", group_instance_id=None,
                                         protocol_type="consumer", protocols=[], reason=None), 9
    yield "offset_commit_group", offset_commit("secret-g", "open"), 9
    yield "offset_commit_topic", offset_commit("open-g", "secret"), 9
    yield "offset_fetch", OF(groups=[OF.OffsetFetchRequestGroup(group_id=g, topics=[
        OF.OffsetFetchRequestGroup.OffsetFetchRequestTopics(name=t, partition_indexes=[0]) for t in ("open", "secret")])
        for g in ("open-g", "secret-g")], require_stable=False), 8
    yield "offset_fetch_all", OF(groups=[OF.OffsetFetchRequestGroup(group_id="open-g", topics=None)],
                                 require_stable=False), 8
    yield "describe_groups", DescribeGroupsRequest(groups=["secret-g"], include_authorized_operations=True), 5
    yield "list_groups", ListGroupsRequest(states_filter=[], types_filter=[]), 5
    yield "delete_topics", DeleteTopicsRequest(topic_names=["secret"], timeout_ms=5000), 5
    yield "create_partitions", CP(topics=[CP.CreatePartitionsTopic(name="secret", count=2, assignments=None)],
                                  timeout_ms=5000, validate_only=True), 3
    yield "delete_records", DR(topics=[DR.DeleteRecordsTopic(name="secret", partitions=[
        DR.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=0)])], timeout_ms=5000), 2
    yield "describe_producers", DP(topics=[DP.TopicRequest(name="secret", partition_indexes=[0])]), 0
    yield "describe_topic_partitions", DTP(topics=[DTP.TopicRequest(name=n) for n in ("open", "secret")],
                                           response_partition_limit=100, cursor=None), 0
    yield "elect_leaders", ElectLeadersRequest(election_type=0, topic_partitions=None, timeout_ms=5000), 2
    yield "describe_log_dirs", DescribeLogDirsRequest(topics=None), 4
    yield "alter_client_quotas", AlterClientQuotasRequest(entries=[A(
        entity=[A.EntityData(entity_type="client-id", entity_name="x")],
        ops=[A.OpData(key="producer_byte_rate", value=1.0, remove=False)])], validate_only=True), 1
    yield "describe_client_quotas", DescribeClientQuotasRequest(components=[], strict=False), 1
    yield "heartbeat", HeartbeatRequest(group_id="secret-g", generation_id=1, member_id="m",
                                        group_instance_id=None), 4
    yield "sync_group", SyncGroupRequest(group_id="secret-g", generation_id=1, member_id="m",
                                         group_instance_id=None, protocol_type="consumer",
                                         protocol_name="range", assignments=[]), 5
    yield "leave_group", LeaveGroupRequest(group_id="secret-g", members=[
        LeaveGroupRequest.MemberIdentity(member_id="m", group_instance_id=None, reason=None)]), 5
    yield "offset_delete", OffsetDeleteRequest(group_id="secret-g", topics=[OffsetDeleteRequest.OffsetDeleteRequestTopic(
        name="open", partitions=[OffsetDeleteRequest.OffsetDeleteRequestTopic.OffsetDeleteRequestPartition(
            partition_index=0)])]), 0
    yield "delete_groups", DeleteGroupsRequest(groups_names=["secret-g"]), 2
    # AlterShareGroupOffsets needs READ on the group and the topics, DeleteShareGroupOffsets
    # DELETE on the group and READ on the topics ("open-share": an empty share group)
    yield "alter_share_group_offsets_group", alter_share_offsets("secret-g", "open"), 0
    yield "alter_share_group_offsets_topic", alter_share_offsets("open-share", "secret", "open"), 0
    yield "delete_share_group_offsets_group", delete_share_offsets("secret-g", "open"), 0
    yield "delete_share_group_offsets_topic", delete_share_offsets("open-share", "secret", "open"), 0
    yield "create_topics_on_a_denied_name", CreateTopicsRequest(topics=[CreateTopicsRequest.CreatableTopic(
        name="secret", num_partitions=1, replication_factor=1, assignments=[], configs=[])],
        timeout_ms=5000, validate_only=True), 7
    yield "metadata_every_topic", M(topics=None, allow_auto_topic_creation=False,
                                    include_topic_authorized_operations=False), 12
    yield "metadata_cluster_operations", M(topics=[], allow_auto_topic_creation=False,
                                           include_cluster_authorized_operations=True), 10
    # The transaction APIs: the id's WRITE first, then the group's READ, then the topics'.
    # Allowed ones reach the coordinator, which refuses an unknown producer id
    # (INVALID_PRODUCER_ID_MAPPING): past authorization, and nothing changes.
    yield "add_partitions_to_txn_id", add_partitions("secret-tx", UNKNOWN_PID, 0, {"open": [0]}), 3
    yield "add_partitions_to_txn_topic", add_partitions("open-tx", UNKNOWN_PID, 0, {"open": [0], "secret": [0]}), 3
    yield "add_partitions_to_txn_allowed", add_partitions("open-tx", UNKNOWN_PID, 0, {"open": [0]}), 3
    yield "add_partitions_to_txn_internal_topic", add_partitions("open-tx", UNKNOWN_PID, 0,
                                                                  {"__consumer_offsets": [0], "open": [0]}), 3
    yield "add_offsets_to_txn_id", add_offsets("secret-tx", "open-g"), 3
    yield "add_offsets_to_txn_group", add_offsets("open-tx", "secret-g"), 3
    yield "add_offsets_to_txn_allowed", add_offsets("open-tx", "open-g"), 3
    yield "end_txn_id", end_txn("secret-tx"), 3
    yield "end_txn_allowed", end_txn("open-tx"), 3
    yield "txn_offset_commit_id", txn_offset_commit("secret-tx", "open-g", "open"), 3
    yield "txn_offset_commit_group", txn_offset_commit("open-tx", "secret-g", "open"), 3
    yield "txn_offset_commit_topic", txn_offset_commit("open-tx", "open-g", "secret"), 3
    yield "txn_offset_commit_allowed", txn_offset_commit("open-tx", "open-g", "open", "secret"), 3
    yield "describe_transactions", DescribeTransactionsRequest(transactional_ids=["open-tx", "secret-tx"]), 0
    yield "list_transactions", ListTransactionsRequest(state_filters=[], producer_id_filters=[], duration_filter=-1,
                                                       transactional_id_pattern=None), 2
    yield "init_producer_id_txn", InitProducerIdRequest(transactional_id="secret-tx", transaction_timeout_ms=60000,
                                                        producer_id=-1, producer_epoch=-1), 4


CASES = {name: (request, version) for name, request, version in requests()}
# Kafka's message for a request refused as a whole prints its Java request object
NEEDS_PERMISSION = re.compile(r"^Request .* needs (\w+) permission\.$", re.S)


def masked(value):
    if isinstance(value, str):
        return NEEDS_PERMISSION.sub(r"Request <request> needs \1 permission.", value)
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(CASES))
def test_denied_as_kafka_denies(secured_sides, name):
    request, version = CASES[name]
    answers = []
    for side in secured_sides:
        answers.append(masked(normalise(plain(side.call(request, version)))))
    found = differences(answers[0], answers[1])
    assert not found, f"Odradek differs from Kafka 4.4 ({name}):\n" + "\n".join(found)


@pytest.mark.parametrize(("version", "error"), [(6, 31), (5, 42)])
def test_share_coordinator_needs_cluster_action(secured_sides, version, error):
    """FindCoordinator key type 2 (share-partition keys) needs CLUSTER_ACTION on the cluster:
    denied, Kafka 4.4 fails the whole request, each key CLUSTER_AUTHORIZATION_FAILED with
    its message (v6); below v6 a share key is INVALID_REQUEST before anything is checked."""
    request = FindCoordinatorRequest(key_type=2, coordinator_keys=["open-share:G04oui-hEdKIPwAW08ykJw:0", "bad"])
    answers = []
    for side in secured_sides:
        denied = Side(side.name, side.bootstrap, source_host=OTHER_HOST)
        try:
            answers.append(normalise(plain(denied.call(request, version))))
        finally:
            denied.close()
    assert [c["error_code"] for c in answers[0]["coordinators"]] == [error, error]
    found = differences(answers[0], answers[1])
    assert not found, "Odradek differs from Kafka 4.4:\n" + "\n".join(found)


@pytest.mark.parametrize("source_host", ["127.0.0.1", OTHER_HOST])
def test_batched_add_partitions_needs_cluster_action(secured_sides, source_host):
    """AddPartitionsToTxn v4+ (KIP-890: brokers' batches, here a verify-only one) needs
    CLUSTER_ACTION on the cluster instead of the client's WRITE on the id and topics:
    denied (from OTHER_HOST), Kafka 4.4 answers the top-level CLUSTER_AUTHORIZATION_FAILED
    and no transaction; allowed, even the secret id and topic reach the coordinator, which
    answers the unknown producer id INVALID_PRODUCER_ID_MAPPING on both."""
    A = AddPartitionsToTxnRequest
    request = A(transactions=[A.AddPartitionsToTxnTransaction(
        transactional_id=tid, producer_id=UNKNOWN_PID, producer_epoch=0, verify_only=True,
        topics=[A.AddPartitionsToTxnTopic(name="secret", partitions=[0])]) for tid in ("open-tx", "secret-tx")])
    answers = []
    for side in secured_sides:
        other = Side(side.name, side.bootstrap, source_host=source_host)
        try:
            answers.append(normalise(plain(other.call(request, 5))))
        finally:
            other.close()
    if source_host != OTHER_HOST:
        assert answers[0]["error_code"] == 0, answers[0]
        assert {p["partition_error_code"] for t in answers[0]["results_by_transaction"] for r in t["topic_results"]
                for p in r["results_by_partition"]} == {49}, answers[0]  # INVALID_PRODUCER_ID_MAPPING
    else:
        assert answers[0]["error_code"] == 31, answers[0]
    found = differences(answers[0], answers[1])
    assert not found, "Odradek differs from Kafka 4.4:\n" + "\n".join(found)

"""Kafka's authorizer (issue 16), with real clients against a broker process.

The clients connect over PLAINTEXT, so their principal is User:ANONYMOUS, as Kafka's
would be. Each test starts from a node whose ACLs were written by ANONYMOUS while it
was a super user, after which the node restarted without super users: ACLs survive a
restart, and from there ANONYMOUS may only ALTER and DESCRIBE the cluster (to manage
ACLs) until a test grants it more. Every path is seen denied (with Kafka's error code,
as the clients raise it) and then allowed once granted.
"""

import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka import Producer as CProducer
from confluent_kafka.admin import AclOperation as CAclOperation
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import ConfigResource as CConfigResource
from confluent_kafka.admin import ResourceType as CResourceType
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.producer import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
)

from odradek.protocol.errors import ErrorCode
from tests.rawclient import RawConnection

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ANONYMOUS = "User:ANONYMOUS"
TOPICS = ("orders", "audit-log", "audit-trail")
OTHER_HOST = "127.0.0.2"  # a client's other loopback address (ACLs by host)


def grant(admin: KafkaAdminClient, rtype, name: str, op, pattern=ACLResourcePatternType.LITERAL,
          permission=ACLPermissionType.ALLOW, principal: str = ANONYMOUS, host: str = "*") -> None:
    acl = ACL(principal, host, op, permission, ResourcePattern(rtype, name, pattern))
    result = admin.create_acls([acl])
    assert not result["failed"], result


@pytest.fixture
def secured(broker_factory):
    """A node with the authorizer on and ANONYMOUS allowed only to manage ACLs."""
    broker = broker_factory(overrides={"authorizer.class.name": STANDARD_AUTHORIZER,
                                       "super.users": ANONYMOUS,
                                       "group.initial.rebalance.delay.ms": "0"})
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
    admin.create_topics([NewTopic(name, 1, 1) for name in TOPICS])  # as a super user
    grant(admin, ResourceType.CLUSTER, "kafka-cluster", ACLOperation.ALTER)
    grant(admin, ResourceType.CLUSTER, "kafka-cluster", ACLOperation.DESCRIBE)
    admin.close()
    broker.overrides.pop("super.users")
    broker.restart()
    return broker


@pytest.fixture
def admin(secured):
    client = KafkaAdminClient(bootstrap_servers=secured.bootstrap, request_timeout_ms=5000)
    yield client
    client.close()


def test_acls_survive_a_restart_and_are_described(secured, admin):
    any_acl = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                        ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    acls, error = admin.describe_acls(any_acl)
    assert {(a.resource_pattern.resource_type, a.operation, a.principal) for a in acls} == {
        (ResourceType.CLUSTER, ACLOperation.ALTER, ANONYMOUS),
        (ResourceType.CLUSTER, ACLOperation.DESCRIBE, ANONYMOUS)}
    grant(admin, ResourceType.TOPIC, "orders", ACLOperation.READ, principal="User:alice")
    [(_, deleted, _)] = admin.delete_acls([ACLFilter("User:alice", None, ACLOperation.ANY, ACLPermissionType.ANY,
                                                     ResourcePatternFilter(ResourceType.TOPIC, "orders",
                                                                           ACLResourcePatternType.MATCH))])
    assert [(a.principal, a.resource_pattern.resource_name) for a in deleted] == [("User:alice", "orders")]
    assert len(admin.describe_acls(any_acl)[0]) == 2


def test_metadata_lists_only_describable_topics_prefixed_acl(admin):
    assert admin.list_topics() == []
    grant(admin, ResourceType.TOPIC, "audit-", ACLOperation.DESCRIBE, ACLResourcePatternType.PREFIXED)
    assert sorted(admin.list_topics()) == ["audit-log", "audit-trail"]


def test_produce_needs_write_and_deny_wins(secured, admin):
    producer = KafkaProducer(bootstrap_servers=secured.bootstrap, enable_idempotence=False,
                             max_block_ms=3000, retries=0)
    try:
        with pytest.raises((TopicAuthorizationFailedError, KafkaTimeoutError)):
            producer.send("orders", b"denied").get(5)
        grant(admin, ResourceType.TOPIC, "orders", ACLOperation.WRITE)
        assert producer.send("orders", b"allowed").get(10).offset == 0
        # a DENY for everyone wins over the ALLOW above
        grant(admin, ResourceType.TOPIC, "ord", ACLOperation.WRITE, ACLResourcePatternType.PREFIXED,
              ACLPermissionType.DENY, principal="User:*")
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send("orders", b"denied again").get(10)
    finally:
        producer.close(1)


def test_idempotent_producer_needs_idempotent_write_or_write_on_a_topic(secured, admin):
    request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000,
                                    producer_id=-1, producer_epoch=-1)
    with RawConnection(secured.bootstrap) as conn:
        assert conn.roundtrip(request, 4, InitProducerIdResponse).error_code == \
            ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        grant(admin, ResourceType.TOPIC, "orders", ACLOperation.WRITE)
        assert conn.roundtrip(request, 4, InitProducerIdResponse).error_code == ErrorCode.NONE
    producer = KafkaProducer(bootstrap_servers=secured.bootstrap, enable_idempotence=True)
    try:
        assert producer.send("orders", b"idempotent").get(10).offset == 0
    finally:
        producer.close(1)


def test_consume_and_commit_need_topic_read_then_group_read(secured, admin):
    grant(admin, ResourceType.TOPIC, "orders", ACLOperation.WRITE)
    producer = KafkaProducer(bootstrap_servers=secured.bootstrap)
    producer.send("orders", b"v").get(10)
    producer.close(1)

    consumer = KafkaConsumer(bootstrap_servers=secured.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    consumer.assign([TopicPartition("orders", 0)])
    with pytest.raises(TopicAuthorizationFailedError):
        consumer.poll(5000)  # WRITE implies DESCRIBE, not READ
    consumer.close()
    grant(admin, ResourceType.TOPIC, "orders", ACLOperation.READ)

    def group_consumer():
        return KafkaConsumer("orders", bootstrap_servers=secured.bootstrap, group_id="billing",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=8000)
    consumer = group_consumer()
    with pytest.raises(GroupAuthorizationFailedError):
        next(iter(consumer))
    consumer.close()
    grant(admin, ResourceType.GROUP, "billing", ACLOperation.READ)
    consumer = group_consumer()
    try:
        assert next(iter(consumer)).value == b"v"
        consumer.commit()
        assert consumer.committed(TopicPartition("orders", 0)) == 1
    finally:
        consumer.close()


def test_cluster_and_topic_admin_operations(secured, admin):
    with pytest.raises(TopicAuthorizationFailedError):
        admin.create_topics([NewTopic("payments", 1, 1)])
    grant(admin, ResourceType.CLUSTER, "kafka-cluster", ACLOperation.CREATE)
    admin.create_topics([NewTopic("payments", 1, 1)])

    # (kafka-python's describe_configs drops per-resource errors: confluent-kafka's raises them)
    confluent = AdminClient({"bootstrap.servers": secured.bootstrap})

    def describe_broker_configs():
        [future] = confluent.describe_configs([CConfigResource(CResourceType.BROKER, "1")]).values()
        return future.result(10)
    with pytest.raises(KafkaException) as e:
        describe_broker_configs()
    assert e.value.args[0].code() == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    grant(admin, ResourceType.CLUSTER, "kafka-cluster", ACLOperation.ALTER_CONFIGS)  # implies DESCRIBE_CONFIGS
    assert "log.retention.ms" in describe_broker_configs()

    with pytest.raises(TopicAuthorizationFailedError):
        admin.delete_topics(["payments"])
    grant(admin, ResourceType.TOPIC, "payments", ACLOperation.DELETE)
    admin.delete_topics(["payments"])


def test_transactional_id_needs_its_acl(secured, admin):
    """A transactional id is authorized before its coordinator is looked up, as in Kafka."""
    find = FindCoordinatorRequest(key="tx-1", key_type=1, coordinator_keys=["tx-1"])
    with RawConnection(secured.bootstrap) as conn:
        [c] = conn.roundtrip(find, 4, FindCoordinatorResponse).coordinators
        assert c.error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        grant(admin, ResourceType.TRANSACTIONAL_ID, "tx-", ACLOperation.WRITE, ACLResourcePatternType.PREFIXED)
        [c] = conn.roundtrip(find, 4, FindCoordinatorResponse).coordinators
        assert (c.error_code, c.node_id) == (ErrorCode.NONE, 1)  # authorized: the coordinator


def test_transactions_need_write_on_their_id(secured, admin):
    """A confluent-kafka transactional producer with WRITE on its id and topic commits. A
    client without WRITE on an id (here the same principal from another loopback address,
    denied there) can neither add partitions to nor end that id's transaction, even with
    its producer id and epoch: every partition and the EndTxn answer
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and the owner then commits it untouched."""
    grant(admin, ResourceType.TRANSACTIONAL_ID, "tx-", ACLOperation.WRITE, ACLResourcePatternType.PREFIXED)
    grant(admin, ResourceType.TOPIC, "orders", ACLOperation.WRITE)
    grant(admin, ResourceType.TRANSACTIONAL_ID, "tx-", ACLOperation.WRITE, ACLResourcePatternType.PREFIXED,
          permission=ACLPermissionType.DENY, host=OTHER_HOST)
    producer = CProducer({"bootstrap.servers": secured.bootstrap, "transactional.id": "tx-c"})
    producer.init_transactions(15)
    producer.begin_transaction()
    producer.produce("orders", b"committed")
    producer.commit_transaction(15)

    def add(conn, pid, epoch):
        A = AddPartitionsToTxnRequest
        answer = conn.roundtrip(A(v3_and_below_transactional_id="tx-raw", v3_and_below_producer_id=pid,
                                  v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                                      A.AddPartitionsToTxnTopic(name="orders", partitions=[0])]),
                                3, AddPartitionsToTxnResponse)
        return [p.partition_error_code for t in answer.results_by_topic_v3_and_below for p in t.results_by_partition]

    def end(conn, pid, epoch):
        return conn.roundtrip(EndTxnRequest(transactional_id="tx-raw", producer_id=pid, producer_epoch=epoch,
                                            committed=True), 3, EndTxnResponse).error_code

    with RawConnection(secured.bootstrap) as owner, RawConnection(secured.bootstrap, source_host=OTHER_HOST) as other:
        init = owner.roundtrip(InitProducerIdRequest(transactional_id="tx-raw", transaction_timeout_ms=60000,
                                                     producer_id=-1, producer_epoch=-1), 4, InitProducerIdResponse)
        assert init.error_code == ErrorCode.NONE
        pid, epoch = init.producer_id, init.producer_epoch
        assert add(owner, pid, epoch) == [ErrorCode.NONE]
        assert add(other, pid, epoch) == [ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED]
        assert end(other, pid, epoch) == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert end(owner, pid, epoch) == ErrorCode.NONE  # still the owner's ongoing transaction


def test_authorized_operations_with_confluent_kafka(secured, admin):
    grant(admin, ResourceType.TOPIC, "orders", ACLOperation.READ)
    c = AdminClient({"bootstrap.servers": secured.bootstrap})
    cluster = c.describe_cluster(include_authorized_operations=True).result(10)
    assert set(cluster.authorized_operations) == {CAclOperation.ALTER, CAclOperation.DESCRIBE}
    from confluent_kafka import TopicCollection
    [future] = c.describe_topics(TopicCollection(["orders"]), include_authorized_operations=True).values()
    assert set(future.result(10).authorized_operations) == {CAclOperation.READ, CAclOperation.DESCRIBE}


def test_authorized_operations_without_an_authorizer_are_all_kafka_supports(broker):
    c = AdminClient({"bootstrap.servers": broker.bootstrap})
    cluster = c.describe_cluster(include_authorized_operations=True).result(10)
    assert set(cluster.authorized_operations) == {
        CAclOperation.CREATE, CAclOperation.ALTER, CAclOperation.DESCRIBE, CAclOperation.CLUSTER_ACTION,
        CAclOperation.DESCRIBE_CONFIGS, CAclOperation.ALTER_CONFIGS, CAclOperation.IDEMPOTENT_WRITE}


def test_super_users_may_do_anything(broker_factory):
    broker = broker_factory(overrides={"authorizer.class.name": STANDARD_AUTHORIZER,
                                       "super.users": f"User:admin;{ANONYMOUS}"})
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
    try:
        admin.create_topics([NewTopic("t", 1, 1)])
        deadline = time.monotonic() + 10
        while "t" not in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert admin.list_topics() == ["t"]
        admin.delete_topics(["t"])
    finally:
        admin.close()


def test_bad_authorizer_class_is_refused(broker_factory):
    with pytest.raises(RuntimeError, match="authorizer.class.name"):
        broker_factory(overrides={"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"})


def test_group_listing_and_deletion_follow_group_acls(secured, admin):
    grant(admin, ResourceType.TOPIC, "orders", ACLOperation.READ)
    for group in ("team-a", "team-b"):
        grant(admin, ResourceType.GROUP, group, ACLOperation.READ)
        consumer = KafkaConsumer(bootstrap_servers=secured.bootstrap, group_id=group, enable_auto_commit=False)
        consumer.assign([TopicPartition("orders", 0)])
        consumer.commit({TopicPartition("orders", 0): OffsetAndMetadata(0, "", -1)})
        consumer.close()

    def listed():
        return {g["group_id"] for g in admin.list_groups()}
    assert listed() == {"team-a", "team-b"}  # ANONYMOUS may DESCRIBE the cluster (the fixture's ACL)
    assert admin.delete_groups(["team-b"]) == {"team-b": "GroupAuthorizationFailedError"}
    # without DESCRIBE on the cluster: only the groups it may describe (READ implies it)
    grant(admin, ResourceType.CLUSTER, "kafka-cluster", ACLOperation.DESCRIBE, permission=ACLPermissionType.DENY)
    grant(admin, ResourceType.GROUP, "team-a", ACLOperation.DESCRIBE, permission=ACLPermissionType.DENY)
    assert listed() == {"team-b"}
    grant(admin, ResourceType.GROUP, "team-", ACLOperation.DELETE, ACLResourcePatternType.PREFIXED)
    assert admin.delete_groups(["team-b"]) == {"team-b": "OK"}


def test_quota_and_acl_admin_need_their_cluster_acls(secured, admin):
    from kafka.protocol.admin import AlterClientQuotasRequest, AlterClientQuotasResponse
    A = AlterClientQuotasRequest.EntryData
    alter = AlterClientQuotasRequest(entries=[A(entity=[A.EntityData(entity_type="client-id", entity_name="x")],
                                                ops=[A.OpData(key="producer_byte_rate", value=1.0, remove=False)])],
                                     validate_only=False)
    with RawConnection(secured.bootstrap) as conn:
        assert conn.roundtrip(alter, 1, AlterClientQuotasResponse).entries[0].error_code == \
            ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        grant(admin, ResourceType.CLUSTER, "kafka-cluster", ACLOperation.ALTER_CONFIGS)
        assert conn.roundtrip(alter, 1, AlterClientQuotasResponse).entries[0].error_code == ErrorCode.NONE
    # and managing ACLs needs ALTER on the cluster: take it away (DENY wins)
    grant(admin, ResourceType.CLUSTER, "kafka-cluster", ACLOperation.ALTER, permission=ACLPermissionType.DENY)
    result = admin.create_acls([ACL("User:bob", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                                    ResourcePattern(ResourceType.TOPIC, "t", ACLResourcePatternType.LITERAL))])
    assert result["failed"] == [ClusterAuthorizationFailedError]


def test_a_follower_fetch_needs_cluster_action(secured, admin):
    from kafka.protocol.consumer import FetchResponse

    from tests.rawclient import fetch_request
    request = fetch_request("orders", 0)
    request.replica_id = 1  # what a follower sends (before v15)
    grant(admin, ResourceType.TOPIC, "orders", ACLOperation.READ)  # not enough for a follower
    with RawConnection(secured.bootstrap) as conn:
        partition = conn.roundtrip(request, 11, FetchResponse).responses[0].partitions[0]
        assert partition.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        grant(admin, ResourceType.CLUSTER, "kafka-cluster", ACLOperation.CLUSTER_ACTION)
        partition = conn.roundtrip(request, 11, FetchResponse).responses[0].partitions[0]
        assert partition.error_code == ErrorCode.NONE

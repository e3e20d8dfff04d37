"""With no authorizer configured, the ACL APIs answer SECURITY_DISABLED, as Kafka does
(issue 16: the unknown key closed the connection, and sarama's admin client then failed
every later call). kafka-python's admin client and confluent-kafka's both see the error."""

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
)
from confluent_kafka.admin import ResourceType as CResourceType
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import SecurityDisabledError

SECURITY_DISABLED = 54


def test_kafka_python_sees_security_disabled(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
    try:
        pattern = ResourcePattern(ResourceType.TOPIC, "t", ACLResourcePatternType.LITERAL)
        acl = ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, pattern)
        created = admin.create_acls([acl])
        assert created == {"succeeded": [], "failed": [SecurityDisabledError]}
        any_filter = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                               ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
        with pytest.raises(SecurityDisabledError):
            admin.describe_acls(any_filter)
        deleted = admin.delete_acls([any_filter])
        assert [error for _, _, error in deleted] == [SecurityDisabledError]
        assert admin.describe_cluster()["cluster_id"]  # the connection is still good
    finally:
        admin.close()


def test_confluent_kafka_sees_security_disabled(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = AclBinding(CResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    any_filter = AclBindingFilter(CResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    # (librdkafka 2.x reports DescribeAcls's top-level error as an empty result; kafka-python
    # above checks that one.)
    assert admin.describe_acls(any_filter).result(10) == []
    futures = {"create": [*admin.create_acls([binding]).values()],
               "delete": [*admin.delete_acls([any_filter]).values()]}
    for name, (future,) in futures.items():
        with pytest.raises(KafkaException) as e:
            future.result(10)
        assert e.value.args[0].code() == SECURITY_DISABLED, name

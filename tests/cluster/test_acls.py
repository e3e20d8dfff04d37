"""ACLs and client quotas on a three-node cluster (issue 16): records of the replicated
metadata log, so one created through any node is on every node, and after a restart.

The nodes talk PLAINTEXT, so each is User:ANONYMOUS to the others and must be a super
user (follower fetches need CLUSTER_ACTION), as a Kafka cluster's would.
"""

from kafka.protocol.admin import (
    AlterClientQuotasRequest,
    CreateAclsRequest,
    CreateAclsResponse,
    DescribeAclsRequest,
    DescribeAclsResponse,
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
)
from kafka.protocol.admin import AlterClientQuotasResponse as AlterQuotasResponse

from odradek.protocol.errors import ErrorCode
from tests.local_cluster import Cluster, poll_until
from tests.rawclient import RawConnection

SECURED = {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
           "super.users": "User:ANONYMOUS"}
TOPIC, LITERAL, READ, ALLOW, ANY = 2, 3, 3, 3, 1


def acls_on(bootstrap: str) -> list:
    request = DescribeAclsRequest(resource_type_filter=ANY, resource_name_filter=None, pattern_type_filter=ANY,
                                  principal_filter=None, host_filter=None, operation=ANY, permission_type=ANY)
    with RawConnection(bootstrap) as conn:
        response = conn.roundtrip(request, 2, DescribeAclsResponse)
    assert response.error_code == ErrorCode.NONE
    return [(r.resource_name, a.principal) for r in response.resources for a in r.acls]


def quotas_on(bootstrap: str) -> list:
    with RawConnection(bootstrap) as conn:
        response = conn.roundtrip(DescribeClientQuotasRequest(components=[], strict=False), 1,
                                  DescribeClientQuotasResponse)
    return [(e.entity[0].entity_name, v.key, v.value) for e in response.entries for v in e.values]


def test_acls_and_quotas_reach_every_node_and_survive_a_restart(tmp_path):
    cluster = Cluster(tmp_path, overrides=SECURED)
    try:
        cluster.start()
        cluster.wait_formed()
        C = CreateAclsRequest.AclCreation
        create = CreateAclsRequest(creations=[C(resource_type=TOPIC, resource_name="orders",
                                                resource_pattern_type=LITERAL, principal="User:alice",
                                                host="*", operation=READ, permission_type=ALLOW)])
        A = AlterClientQuotasRequest.EntryData
        alter = AlterClientQuotasRequest(entries=[A(
            entity=[A.EntityData(entity_type="client-id", entity_name="app")],
            ops=[A.OpData(key="producer_byte_rate", value=1024.0, remove=False)])], validate_only=False)
        with RawConnection(cluster.nodes[2].bootstrap) as conn:  # any node: forwarded to the controller
            assert conn.roundtrip(create, 2, CreateAclsResponse).results[0].error_code == ErrorCode.NONE
            assert conn.roundtrip(alter, 1, AlterQuotasResponse).entries[0].error_code == ErrorCode.NONE
        for node in cluster.nodes.values():
            assert poll_until(lambda b=node.bootstrap: acls_on(b) == [("orders", "User:alice")], 10), node
            assert poll_until(lambda b=node.bootstrap: quotas_on(b) == [("app", "producer_byte_rate", 1024.0)], 10)
        cluster.kill(3)
        cluster.restart(3)
        assert poll_until(lambda: acls_on(cluster.nodes[3].bootstrap) == [("orders", "User:alice")], 20)
        assert quotas_on(cluster.nodes[3].bootstrap) == [("app", "producer_byte_rate", 1024.0)]
    finally:
        cluster.close()
        for n in cluster.nodes:
            print(f"--- node {n} ---\n" + "".join(cluster.logs[n][-30:]))

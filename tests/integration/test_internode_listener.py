"""Our inter-node request keys (1000 and above) are served only where other nodes connect
(inter.broker.listener.name, controller.listener.names), and delete.topic.enable is the
controller's to check (issue 16: a client sending key 1001 deleted a topic on a node
started with delete.topic.enable=false)."""

import json
import socket
import struct

import pytest
from kafka.admin import KafkaAdminClient
from kafka.errors import TopicDeletionDisabledError

from odradek.protocol.internode import CONTROLLER_API_KEY, RAFT_API_KEY
from tests.brokerproc import BrokerProcess, free_port
from tests.clients import create_topics
from tests.local_cluster import poll_until
from tests.rawclient import fetch_request, recv_frame


def internode_request(api_key: int, payload: dict, correlation_id: int = 9) -> bytes:
    """Header v1 (key, version 0, correlation id, client id), then the JSON body."""
    body = struct.pack(">hhih", api_key, 0, correlation_id, 4) + b"evil" + json.dumps(payload).encode()
    return struct.pack(">i", len(body)) + body


def send(address: str, frame: bytes) -> bytes | None:
    """The response body, or None when the broker closes the connection instead."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(frame)
        try:
            return recv_frame(s)[4:]
        except (ConnectionError, OSError):
            return None


DELETE = {"op": "delete_topic", "args": ["precious"], "kwargs": {}}


def topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_a_single_node_refuses_internode_keys(broker_factory):
    b = broker_factory(overrides={"delete.topic.enable": "false"})
    create_topics(b.bootstrap, ["precious"])
    for key, payload in ((CONTROLLER_API_KEY, DELETE), (RAFT_API_KEY, {"type": "vote"})):
        assert send(b.bootstrap, internode_request(key, payload)) is None
    assert "precious" in topics(b.bootstrap)
    assert poll_until(lambda: "inter-node request on client listener" in b.log_text(), 5)
    # DeleteTopics gets the controller's answer.
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=5000)
    try:
        with pytest.raises(TopicDeletionDisabledError):
            admin.delete_topics(["precious"])
    finally:
        admin.close()
    assert "precious" in topics(b.bootstrap)


TwoListeners = BrokerProcess  # with listeners in its overrides, no --listen replaces them


def test_internode_keys_only_on_the_inter_broker_listener(tmp_path):
    client, internal = free_port(), free_port()
    b = TwoListeners(tmp_path / "data", port=client, overrides={
        "listeners": f"CLIENT://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal}",
        "inter.broker.listener.name": "INTERNAL", "delete.topic.enable": "false",
        "controller.quorum.voters": f"1@127.0.0.1:{internal}"})  # a quorum of one: it has peers' keys
    try:
        b.start()
        assert poll_until(lambda: "event='registered'" in b.log_text(), 20), "the quorum of one did not form"
        check_two_listeners(b, client, internal)
    finally:
        b.kill()
        print(b.log_text()[-6000:])


def check_two_listeners(b, client: int, internal: int) -> None:
    create_topics(f"127.0.0.1:{client}", ["precious"])
    assert send(f"127.0.0.1:{client}", internode_request(CONTROLLER_API_KEY, DELETE)) is None
    # On the inter-node listener the request is served, and the controller refuses it.
    reply = json.loads(send(f"127.0.0.1:{internal}", internode_request(CONTROLLER_API_KEY, DELETE)))
    assert reply["error"]["kafka_error"][0] == 73  # TOPIC_DELETION_DISABLED
    assert "precious" in topics(f"127.0.0.1:{client}")


NODE_IDENTITIES = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="node1" '
                   'password="n1-secret" user_node1="n1-secret" user_node2="n2-secret";')


async def _as_node(port: int, user: str, password: str, frames: list[bytes]) -> list[bytes | None]:
    """Authenticate on the inter-node listener as ``user`` (SASL PLAIN, as a node dials its
    peers), send ``frames`` one by one; each answer's body, None once the node closed."""
    import asyncio

    from odradek.broker.peer_auth import plain_authenticator

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers: list[bytes | None] = []
    try:
        await plain_authenticator(user, password)(reader, writer)
        for frame in frames:
            writer.write(frame)
            try:
                (size,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 5))
                answers.append((await reader.readexactly(size))[4:])
            except (asyncio.IncompleteReadError, ConnectionError):
                answers.append(None)
                break
    finally:
        writer.close()
    return answers


def test_a_node_cannot_claim_another_nodes_id(tmp_path):
    """node.principals binds each node id to the principal it authenticates as: node 2's
    credentials may send Raft messages and controller requests as node 2 only (issue 16:
    the Raft core trusted the sender it was told)."""
    import asyncio

    from odradek.replication.raft_codec import message_to_dict
    from odradek.replication.raft_messages import VoteRequest

    def vote(sender: int) -> bytes:
        return internode_request(RAFT_API_KEY, message_to_dict(VoteRequest(
            to=1, from_=sender, term=99, from_directory="x", pre_vote=True, last_log_index=0,
            last_log_term=0, voter_directory=None)))

    def follower_fetch(replica: int) -> bytes:
        request = fetch_request("precious", 0)
        request.replica_id = replica
        body = struct.pack(">hhih", 1, 11, 5, 4) + b"evil" + bytes(request.encode(version=11))
        return struct.pack(">i", len(body)) + body

    def heartbeat(node: int) -> bytes:
        return internode_request(CONTROLLER_API_KEY, {"op": "heartbeat", "args": [node], "kwargs": {}})

    client, internal = free_port(), free_port()
    b = TwoListeners(tmp_path / "data", port=client, overrides={
        "listeners": f"CLIENT://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal}",
        "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL", "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.internal.plain.sasl.jaas.config": NODE_IDENTITIES,
        "node.principals": "1=User:node1,2=User:node2",
        "controller.quorum.voters": f"1@127.0.0.1:{internal}"})
    try:
        b.start()
        assert poll_until(lambda: "event='registered'" in b.log_text(), 20), "the quorum of one did not form"
        as_node2 = lambda *frames: asyncio.run(_as_node(internal, "node2", "n2-secret", list(frames)))  # noqa: E731
        # As itself, node 2 is heard (a Raft message is acknowledged, a heartbeat answered).
        own = as_node2(vote(2), heartbeat(2))
        assert own[0] is not None and json.loads(own[0]) == {}
        assert own[1] is not None and "not_controller" not in json.loads(own[1])
        # Claiming node 1's id, it is not: the connection closes before anything is done.
        assert as_node2(vote(1)) == [None]
        assert as_node2(heartbeat(1)) == [None]
        assert as_node2(follower_fetch(replica=1)) == [None]  # a replica's offsets move the ISR
        assert poll_until(lambda: "claims node 1 (Raft VoteRequest)" in b.log_text()
                          and "claims node 1 (heartbeat)" in b.log_text()
                          and "fetches as replica 1" in b.log_text(), 5), b.log_text()[-2000:]
        # The node is still the quorum's leader at its own term, not at the forged vote's.
        assert "term=99" not in b.log_text()
    finally:
        b.kill()

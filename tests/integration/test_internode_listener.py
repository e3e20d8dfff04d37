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
from tests.rawclient import recv_frame


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

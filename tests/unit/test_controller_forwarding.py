"""Controller operations forwarded to the active controller (no processes: fake peers)."""

import asyncio

import pytest

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication import controller as ctl
from odradek.replication.metadata import MetadataImage


class FakeLog:
    def __init__(self, leader_id, peers):
        self.is_active = False
        self.leader_id = leader_id
        self.peers = peers


class ScriptedPeer:
    """Answers forwarded requests from a script, like a remote node would."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []

    async def request(self, api_key, payload, timeout_s=5.0):
        self.requests.append(payload)
        return self.replies.pop(0)


def controller(log) -> ctl.Controller:
    c = ctl.Controller(MetadataImage(), num_partitions=1, default_replication_factor=1,
                       validate_topic_configs=lambda configs: None)
    c.metadata_log = log
    return c


async def test_not_controller_without_a_known_leader_is_retried_not_taken_for_success(monkeypatch):
    monkeypatch.setattr(ctl, "FORWARD_RETRY_S", 0.01)
    peer = ScriptedPeer([{"not_controller": None}, {"result": 17}])
    c = controller(FakeLog(2, {2: peer}))
    assert await c.heartbeat(5) == 17
    assert len(peer.requests) == 2  # the first answer meant "ask again", not "done"


async def test_errors_come_back_as_kafka_errors(monkeypatch):
    peer = ScriptedPeer([{"error": {"kafka_error": [int(ErrorCode.TOPIC_ALREADY_EXISTS), "exists"]}}])
    c = controller(FakeLog(2, {2: peer}))
    with pytest.raises(KafkaError) as e:
        await c.delete_topic("t")
    assert e.value.code == ErrorCode.TOPIC_ALREADY_EXISTS


async def test_gives_up_with_not_controller_after_the_timeout(monkeypatch):
    monkeypatch.setattr(ctl, "FORWARD_TIMEOUT_S", 0.05)
    monkeypatch.setattr(ctl, "FORWARD_RETRY_S", 0.01)
    c = controller(FakeLog(None, {}))
    with pytest.raises(KafkaError) as e:
        await asyncio.wait_for(c.heartbeat(5), 5)
    assert e.value.code == ErrorCode.NOT_CONTROLLER


async def test_the_controller_refuses_deletion_when_disabled():
    """delete.topic.enable is the controller's check: a forwarded or inter-node
    delete_topic must not get past it (issue 16)."""
    c = ctl.Controller(MetadataImage(), num_partitions=1, default_replication_factor=1,
                       validate_topic_configs=lambda configs: None, delete_topic_enable=False)
    log = FakeLog(1, {})
    log.is_active = True
    c.metadata_log = log
    with pytest.raises(KafkaError) as e:
        await c.delete_topic("t")
    assert e.value.code == ErrorCode.TOPIC_DELETION_DISABLED

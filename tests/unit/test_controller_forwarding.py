"""Controller operations forwarded to the active controller (no processes: fake peers)."""

import asyncio

import pytest

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication import controller as ctl
from odradek.replication.metadata import BrokerImage, MetadataImage


class FakeLog:
    def __init__(self, leader_id, peers):
        self.is_active = False
        self.active_term = -1
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


async def test_gives_up_with_request_timed_out_at_the_deadline(monkeypatch):
    """No controller within the caller's timeout: REQUEST_TIMED_OUT, which handlers answer
    as an error code (Kafka's forwarding answers the same)."""
    monkeypatch.setattr(ctl, "FORWARD_RETRY_S", 0.01)
    c = controller(FakeLog(None, {}))
    with pytest.raises(KafkaError) as e:
        await asyncio.wait_for(c.heartbeat(5, timeout_s=0.05), 5)
    assert e.value.code == ErrorCode.REQUEST_TIMED_OUT


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


class ForwardingPeer:
    """Hands forwarded operations to a real controller, as the CONTROLLER inter-node
    handler does; loses the first answer (its controller was deposed before it left)."""

    def __init__(self, target: ctl.Controller):
        self.target = target
        self.requests = []

    async def request(self, api_key, payload, timeout_s=5.0):
        self.requests.append(payload)
        extra = {k: payload[k] for k in ("request_id", "timeout_ms") if k in payload}
        reply = await self.target.execute(payload["op"], payload["args"], payload["kwargs"], **extra)
        if len(self.requests) == 1:
            raise ctl.PeerUnavailable("the answer was lost")
        return reply


def active_controller(directory, *also_applied_by: ctl.Controller) -> ctl.Controller:
    """An active controller on a metadata log in ``directory``; what it commits is applied
    by ``also_applied_by`` too, as replication would."""
    c = controller(None)

    def apply(records, offset):
        for each in (c, *also_applied_by):
            each.apply_committed(records, offset)
    c.metadata_log = ctl.LocalMetadataLog(str(directory), 2, apply)
    return c


async def test_a_retried_operation_gets_its_first_answer_from_a_new_controller(tmp_path, monkeypatch):
    monkeypatch.setattr(ctl, "FORWARD_RETRY_S", 0.01)
    peer = ForwardingPeer(None)
    forwarder = controller(FakeLog(2, {2: peer}))
    first = active_controller(tmp_path, forwarder)
    await first.metadata_log.start()
    await first.register_broker(2, {"PLAINTEXT": ("h", 1)})
    peer.target = first

    async def elect_a_new_controller():
        # The retry goes to a controller elected after the first one applied the operation.
        while not peer.requests:
            await asyncio.sleep(0.001)
        await first.metadata_log.stop()
        second = active_controller(tmp_path)
        await second.metadata_log.start()
        peer.target = second
    election = asyncio.ensure_future(elect_a_new_controller())
    results = await forwarder.create_topics([ctl.NewTopic("t", 1, 1)], timeout_s=5)
    await election
    assert results == [None]  # not TOPIC_ALREADY_EXISTS for the topic it created itself
    assert len(peer.requests) == 2
    assert list(peer.target.image.topics) == ["t"]


async def test_a_forwarded_change_answers_once_this_node_applied_it(monkeypatch):
    """Read your own writes: the answer waits for the offset the controller committed at."""
    from odradek.replication.metadata import ConfigRecord
    monkeypatch.setattr(ctl, "FORWARD_RETRY_S", 0.01)
    peer = ScriptedPeer([{"result": None, "offset": 5}])
    c = controller(FakeLog(2, {2: peer}))
    task = asyncio.ensure_future(c.alter_configs(2, "t", {"retention.ms": "1"}, False, timeout_s=5))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()  # the change is not in this node's image yet
    c.apply_committed([ConfigRecord(2, "t", "retention.ms", "1")], 5)
    assert await asyncio.wait_for(task, 5) is None
    assert c.image.topic_configs("t") == {"retention.ms": "1"}


async def test_a_heartbeat_does_not_wait_for_the_image():
    """A node behind the controller must still heartbeat in time, or it would be fenced;
    its lease waits for the image on its own."""
    peer = ScriptedPeer([{"result": 5, "offset": 5}])
    c = controller(FakeLog(2, {2: peer}))
    assert await asyncio.wait_for(c.heartbeat(1), 5) == 5  # its own deadline is 30 s


class StuckLog:
    """An active controller's metadata log whose commits never complete (no quorum)."""
    is_active = True
    leader_id = 2
    peers: dict = {}

    async def append(self, records):
        await asyncio.Event().wait()


async def test_a_forwarded_operation_is_bounded_by_the_time_the_sender_has_left():
    c = controller(StuckLog())
    reply = await asyncio.wait_for(c.execute("allocate_producer_ids", [], {}, "r1", 0), 5)
    assert reply["error"]["kafka_error"][0] == ErrorCode.REQUEST_TIMED_OUT
    assert "r1" in c._running  # it runs on: a retry of r1 joins it instead of starting anew
    c._running["r1"].cancel()


async def test_a_heartbeat_is_answered_only_once_a_quorum_confirms_the_leader():
    """A deposed controller that does not know it yet (paused, cut off) must not answer a
    broker heartbeat from its stale image: the broker would renew its lease and coordinate
    groups from old metadata. The answer waits for the log's leadership confirmation."""
    c = controller(FakeLog(1, {}))
    c.metadata_log.is_active = True
    c.image.brokers[1] = BrokerImage(1, {}, None)
    confirmed = asyncio.Event()

    async def confirm_leadership():
        await confirmed.wait()
    c.metadata_log.confirm_leadership = confirm_leadership
    answer = asyncio.ensure_future(c.heartbeat(1))
    await asyncio.sleep(0.05)
    assert not answer.done()
    confirmed.set()
    assert await asyncio.wait_for(answer, 1) == c.image.offset


async def test_a_feature_turned_off_stays_off_when_brokers_register_again(tmp_path):
    """A new cluster's first registration finalizes the bootstrap levels; a feature an
    operator turned off (kafka-features disable: level 0, gone from the image) is not
    finalized again by the next registration, as Kafka bootstraps features only when a
    cluster forms."""
    from odradek.replication.features import SAFE_DOWNGRADE
    c = active_controller(tmp_path)
    await c.metadata_log.start()
    try:
        await c.register_broker(1, {"PLAINTEXT": ("h", 1)})
        assert c.image.features["group.version"] == 1
        await c.update_features([["group.version", 0, SAFE_DOWNGRADE]])
        assert "group.version" not in c.image.features
        await c.register_broker(1, {"PLAINTEXT": ("h", 2)})  # a restart, a new address
        await c.register_broker(2, {"PLAINTEXT": ("h", 3)})
        assert "group.version" not in c.image.features
    finally:
        await c.metadata_log.stop()

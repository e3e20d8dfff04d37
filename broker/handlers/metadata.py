"""Metadata (v0-v13): brokers, cluster id, controller, and topics with their partitions.

Version notes: at v0 an empty topic list means every topic; from v1 that is a null
list and an empty one means none. Topic ids appear from v10, and a v10+ request may
name topics by id. Unknown topics are auto-created when both auto.create.topics.enable
and the request's allow_auto_topic_creation (always true before v4) say so: the
creation runs in the background and the request answers at once with
UNKNOWN_TOPIC_OR_PARTITION, which clients retry, as Kafka (KRaft) does: its
AutoTopicCreationManager sends CreateTopics to the controller and answers that code
(LEADER_NOT_AVAILABLE was the ZooKeeper-era answer).
v13's top-level error code (KIP-1102) is for REBOOTSTRAP_REQUIRED, which a broker
sends only when it finds the client in the wrong cluster; this one always sends NONE.
Each broker is listed with its endpoint on the listener this request came in on,
so clients on the host and in containers each get addresses they can reach.

Authorization (broker.authorizer), as Kafka's handler: a listing of every topic shows only
those the principal may DESCRIBE; a named one it may not is TOPIC_AUTHORIZATION_FAILED
(whether or not it exists), and so is an unknown one it may not create (CREATE on the
cluster, else on the topic) when auto-creation is asked. From v8 the topics' authorized
operations are filled when include_topic_authorized_operations asks, and v8-v10's
cluster's when include_cluster_authorized_operations asks (v11 dropped that field).

Until this node is registered and its metadata log has caught up with the quorum
(``broker.ready``), it has no cluster to describe yet: a new cluster's node would
list no brokers, and librdkafka's admin client then waited ~10 s before it asked
again. So a request first waits up to READY_WAIT_S for it, and is answered as soon as
the node is ready. Past that it gets retriable answers: no controller (-1), and a
topic it does not know is LEADER_NOT_AVAILABLE, not UNKNOWN_TOPIC_OR_PARTITION, on
which librdkafka fails produce() at once (a restarted node's image may lack topics
that exist); nothing is auto-created.
"""

import asyncio
import contextlib
import uuid

from kafka.protocol.metadata import MetadataRequest, MetadataResponse

from odradek.broker.authorizer import CLUSTER, TOPIC, Op
from odradek.broker.broker import READY_WAIT_S
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode
from odradek.replication.acls import CLUSTER_NAME
from odradek.replication.controller import NewTopic, topic_name_error

R = MetadataResponse
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})


def live_brokers(broker, listener_name: str) -> list:
    """Unfenced brokers that have an endpoint on this listener, by node id."""
    return [b for b in sorted(broker.image.brokers.values(), key=lambda b: b.node_id)
            if not b.fenced and listener_name in b.endpoints]


def broker_list(broker, listener_name: str) -> list:
    return [R.MetadataResponseBroker(node_id=b.node_id, host=b.endpoints[listener_name][0],
                                     port=b.endpoints[listener_name][1], rack=b.rack)
            for b in live_brokers(broker, listener_name)]


def topic_metadata(broker, topic) -> R.MetadataResponseTopic:
    live = {b.node_id for b in broker.image.brokers.values() if not b.fenced}
    partitions = []
    for p in sorted(topic.partitions.values(), key=lambda p: p.partition):
        leader = p.leader if p.leader in live else -1
        partitions.append(R.MetadataResponseTopic.MetadataResponsePartition(
            error_code=ErrorCode.NONE if leader >= 0 else ErrorCode.LEADER_NOT_AVAILABLE,
            partition_index=p.partition, leader_id=leader, leader_epoch=p.leader_epoch,
            replica_nodes=list(p.replicas), isr_nodes=list(p.isr),
            offline_replicas=[r for r in p.replicas if r not in live]))
    return R.MetadataResponseTopic(
        error_code=ErrorCode.NONE, name=topic.name, topic_id=topic.uuid,
        is_internal=topic.name in INTERNAL_TOPICS, partitions=partitions,
        authorized_operations=None)  # None encodes INT32_MIN: "not requested"


def cluster_operations(ctx) -> set[int]:
    """The cluster's authorized operations as Kafka answers them (Metadata, DescribeCluster):
    none unless the principal may DESCRIBE the cluster."""
    if not ctx.may(CLUSTER, CLUSTER_NAME, Op.DESCRIBE):
        return set()
    return ctx.authorized_operations(CLUSTER, CLUSTER_NAME)


def _error_topic(code: ErrorCode, name: str | None, topic_id: uuid.UUID | None = None):
    return R.MetadataResponseTopic(error_code=code, name=name, topic_id=topic_id or uuid.UUID(int=0),
                                   is_internal=False, partitions=[], authorized_operations=None)


@handles(MetadataRequest, 0, 13)
async def handle(ctx, request):
    broker = ctx.broker
    if not broker.ready.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(broker.ready.wait(), READY_WAIT_S)
    ready = broker.ready.is_set()
    image = broker.image
    version = ctx.header.api_version
    wanted = request.topics
    if wanted is None or (version == 0 and not wanted):
        topics = [topic_metadata(broker, t) for t in image.topics.values() if ctx.may(TOPIC, t.name)]
    else:
        unknown = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if ready else ErrorCode.LEADER_NOT_AVAILABLE
        allow_create = (ready and broker.config["auto.create.topics.enable"]
                        and (version < 4 or request.allow_auto_topic_creation))
        topics = []
        for t in wanted:
            if t.name is None:  # v10+: by topic id
                topic = image.topics_by_id.get(str(t.topic_id))
                if topic is not None and not ctx.may(TOPIC, topic.name):
                    # (topic ids are not secret: Kafka answers this too)
                    topics.append(_error_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, None, t.topic_id))
                    continue
                topics.append(topic_metadata(broker, topic) if topic else
                              _error_topic(ErrorCode.UNKNOWN_TOPIC_ID, None, t.topic_id))
                continue
            topic = image.topics.get(t.name)
            if not ctx.may(TOPIC, t.name) or (
                    topic is None and allow_create and not ctx.may(CLUSTER, CLUSTER_NAME, Op.CREATE)
                    and not ctx.may(TOPIC, t.name, Op.CREATE)):
                topics.append(_error_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, t.name))
                continue
            if topic is None and topic_name_error(t.name):
                topics.append(_error_topic(ErrorCode.INVALID_TOPIC_EXCEPTION, t.name))
                continue
            if topic is None and allow_create:
                broker.create_topic_in_background(NewTopic(t.name))
            topics.append(topic_metadata(broker, topic) if topic else _error_topic(unknown, t.name))
    if version >= 8 and request.include_topic_authorized_operations:
        for topic_ in topics:
            if topic_.error_code != ErrorCode.TOPIC_AUTHORIZATION_FAILED and topic_.name is not None:
                topic_.authorized_operations = ctx.authorized_operations(TOPIC, topic_.name)
    cluster_authorized = (cluster_operations(ctx)
                          if 8 <= version <= 10 and request.include_cluster_authorized_operations else None)
    return R(throttle_time_ms=0, error_code=ErrorCode.NONE, brokers=broker_list(broker, ctx.listener_name),
             cluster_id=broker.cluster_id, controller_id=broker.controller_id if ready else -1,
             topics=topics, authorized_operations=cluster_authorized)

"""CreateTopics (v2-v7, as Kafka 4 after KIP-896): carried out by the controller.

-1 partitions or replication factor means the broker default (v4+); validate_only
(v1+) checks without creating. From v5 a successful result carries the topic's
partitions, replication factor and effective configs; a failed one an empty config list,
and a validate_only one a fresh topic id, as Kafka 4.4 answers. A topic the controller
has not confirmed within the request's timeout_ms gets REQUEST_TIMED_OUT (it may still
be created); timeout_ms <= 0 waits the controller's default.

A request for more than 10,000 partitions in all fails every topic with POLICY_VIOLATION
before anything is created (Kafka's ReplicationControlManager.MAX_PARTITIONS_PER_BATCH):
a typo of a partition count must not make the controller build a million partitions.
Authorization (broker.authorizer): CREATE on the cluster, else CREATE on each topic;
a topic denied both is TOPIC_AUTHORIZATION_FAILED and the others are created.

Out of file descriptors, a topic fails with KAFKA_STORAGE_ERROR naming the open-file limit,
and nothing of it stays: the request is refused before the controller sees it when this
node has no descriptors to spare even after its segment LRU closed every idle file
(storage.handles), and a topic whose partitions this node then failed to open is deleted
again before the answer.
"""

import uuid

from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse

from odradek.broker.authorizer import CLUSTER, TOPIC
from odradek.broker.handlers import handles
from odradek.broker.handlers.describe_configs import topic_config_entries
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.acls import CLUSTER_NAME
from odradek.replication.controller import NewTopic
from odradek.storage.handles import count_open_descriptors, descriptor_headroom, soft_limit

R = CreateTopicsResponse
Result = R.CreatableTopicResult
MAX_PARTITIONS_PER_BATCH = 10_000  # Kafka's ReplicationControlManager
# Descriptors a partition's creation uses for a moment (its .log, each index while it is
# set up, the leader-epoch file, a directory fsync), with room for a connection or two.
CREATE_HEADROOM = 16


def _descriptor_shortage(broker) -> str | None:
    """Why this node cannot create partitions now (out of descriptors), or None."""
    limit, open_now = soft_limit(), count_open_descriptors()
    if open_now < 0:
        return None  # no /proc: an EMFILE during creation is still rolled back
    headroom = descriptor_headroom(limit, open_now,
                                   broker.replicas.log_manager.open_files.evictable())
    if headroom >= CREATE_HEADROOM:
        return None
    return (f"Out of file descriptors: {open_now} open of the open-file limit {limit}. Raise it "
            "with `ulimit -n` (LimitNOFILE= in a systemd unit) or close connections.")


def total_partitions(request, default_partitions: int) -> int:
    """The partitions a CreateTopics request asks for, counted as Kafka counts them."""
    total = 0
    for t in request.topics:
        if t.assignments:
            total += len(t.assignments)
        elif t.num_partitions == -1:
            total += default_partitions
        elif t.num_partitions > 0:
            total += t.num_partitions
    return total


@handles(CreateTopicsRequest, 2, 7)
async def handle(ctx, request):
    broker = ctx.broker
    if total_partitions(request, broker.config["num.partitions"]) > MAX_PARTITIONS_PER_BATCH:
        return R(throttle_time_ms=0, topics=[
            Result(name=t.name, error_code=ErrorCode.POLICY_VIOLATION,
                   error_message="Excessively large number of partitions per request.",
                   num_partitions=-1, replication_factor=-1, configs=[])
            for t in request.topics])
    seen, duplicates = set(), set()
    for t in request.topics:
        (duplicates if t.name in seen else seen).add(t.name)
    wanted = [t for t in request.topics if t.name not in duplicates]
    cluster_allowed = ctx.may(CLUSTER, CLUSTER_NAME)
    denied = [t.name for t in wanted if not cluster_allowed and not ctx.may(TOPIC, t.name)]
    wanted = [t for t in wanted if t.name not in denied]
    shortage = None if request.validate_only else _descriptor_shortage(broker)
    if shortage is not None:
        return R(throttle_time_ms=0, topics=[
            Result(name=t.name, error_code=ErrorCode.KAFKA_STORAGE_ERROR, error_message=shortage,
                   num_partitions=-1, replication_factor=-1, configs=[])
            for t in request.topics])
    try:
        errors = await broker.controller.create_topics(
            [NewTopic(t.name, t.num_partitions, t.replication_factor,
                      {a.partition_index: list(a.broker_ids) for a in t.assignments},
                      {c.name: c.value for c in t.configs})
             for t in wanted], validate_only=request.validate_only, timeout_s=request.timeout_ms / 1000)
    except KafkaError as e:  # none confirmed in time (REQUEST_TIMED_OUT)
        errors = [e] * len(wanted)
    for i, t in enumerate(wanted):
        failed = broker.replicas.creation_failures.pop(t.name, None)
        if failed is not None and errors[i] is None:
            errors[i] = failed
            try:  # roll back: no topic that this node cannot serve
                await broker.controller.delete_topic(t.name, timeout_s=request.timeout_ms / 1000)
            except KafkaError as e:
                errors[i] = KafkaError(failed.code, f"{failed.message}; its rollback failed: {e.message}")
    results = [Result(name=name, error_code=ErrorCode.INVALID_REQUEST,
                      error_message=f"Topic {name} is named more than once in the request",
                      num_partitions=-1, replication_factor=-1, configs=[])
               for name in sorted(duplicates)]
    results += [Result(name=name, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                       error_message="Authorization failed.",  # (Kafka's words here)
                       num_partitions=-1, replication_factor=-1,
                       configs=[]) for name in denied]
    for t, error in zip(wanted, errors, strict=True):
        if error is not None:
            results.append(Result(name=t.name, error_code=error.code, error_message=error.message,
                                  num_partitions=-1, replication_factor=-1, configs=[]))
            continue
        topic = broker.image.topics.get(t.name)
        overrides = {c.name: c.value for c in t.configs}
        if topic is None:  # validate_only
            partitions = t.num_partitions if t.num_partitions != -1 else broker.config["num.partitions"]
            rf = (t.replication_factor if t.replication_factor != -1
                  else broker.config["default.replication.factor"])
        else:
            partitions, rf = len(topic.partitions), len(topic.partitions[0].replicas)
        configs = [R.CreatableTopicResult.CreatableTopicConfigs(
            name=e.name, value=e.value, read_only=e.read_only, config_source=e.config_source,
            is_sensitive=False) for e in topic_config_entries(broker, overrides, include_synonyms=False)]
        results.append(Result(name=t.name, topic_id=topic.uuid if topic else uuid.uuid4(),
                              error_code=ErrorCode.NONE, error_message=None,
                              num_partitions=partitions, replication_factor=rf, configs=configs))
    return R(throttle_time_ms=0, topics=results)

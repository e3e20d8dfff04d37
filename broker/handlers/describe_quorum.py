"""DescribeQuorum (v0-v2): the controller quorum, for operators.

The metadata log is reported as KRaft does, as partition 0 of ``__cluster_metadata``:
the leader (the active controller), its epoch (Raft's term), the high watermark (the
commit index), and each voter's log end offset as the leader last saw it (-1 where
unknown; only the leader knows its followers'). A one-node cluster is a quorum of one.
The leader reports itself fetched and caught up now, as Kafka's leader does
(kafka-metadata-quorum describe --replication prints these timestamps).
From v2 the voters' directory ids and every node's listeners are included.
"""

import base64
import time
import uuid

from kafka.protocol.admin import DescribeQuorumRequest, DescribeQuorumResponse

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode

R = DescribeQuorumResponse
METADATA_TOPIC = "__cluster_metadata"


def _directory_uuid(directory_id: str | None) -> uuid.UUID:
    if not directory_id:
        return uuid.UUID(int=0)
    return uuid.UUID(bytes=base64.urlsafe_b64decode(directory_id + "=" * (-len(directory_id) % 4)))


def _replica_state(v: dict, answering: int, quorum: dict, now_ms: int):
    """One voter's or observer's progress; a leader answering is caught up with itself now."""
    itself = v["node_id"] == quorum["leader_id"] == answering
    return R.TopicData.PartitionData.ReplicaState(
        replica_id=v["node_id"], replica_directory_id=_directory_uuid(v["directory_id"]),
        log_end_offset=v["log_end_offset"],
        last_fetch_timestamp=now_ms if itself else v["last_fetch_ms"],
        last_caught_up_timestamp=now_ms if itself else v["last_caught_up_ms"])


@handles(DescribeQuorumRequest, 0, 2)
async def handle(ctx, request):
    broker = ctx.broker
    quorum = broker.metadata_log.describe()
    topics = []
    for t in request.topics:
        partitions = []
        for p in t.partitions:
            if t.topic_name != METADATA_TOPIC or p.partition_index != 0:
                partitions.append(R.TopicData.PartitionData(
                    partition_index=p.partition_index, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    error_message=f"Only {METADATA_TOPIC}-0 has a quorum", leader_id=-1, leader_epoch=-1,
                    high_watermark=-1, current_voters=[], observers=[]))
                continue
            now_ms = int(time.time() * 1000)
            partitions.append(R.TopicData.PartitionData(
                partition_index=0, error_code=ErrorCode.NONE, error_message=None,
                leader_id=quorum["leader_id"], leader_epoch=quorum["leader_epoch"],
                high_watermark=quorum["high_watermark"],
                current_voters=[_replica_state(v, broker.node_id, quorum, now_ms) for v in quorum["voters"]],
                observers=[_replica_state(v, broker.node_id, quorum, now_ms) for v in quorum.get("observers", [])]))
        topics.append(R.TopicData(topic_name=t.topic_name, partitions=partitions))
    nodes = [R.Node(node_id=b.node_id, listeners=[R.Node.Listener(name=name, host=host, port=port)
                                                  for name, (host, port) in b.endpoints.items()])
             for b in sorted(broker.image.brokers.values(), key=lambda b: b.node_id)]
    return R(error_code=ErrorCode.NONE, error_message=None, topics=topics, nodes=nodes)

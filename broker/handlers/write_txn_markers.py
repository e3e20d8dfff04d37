"""WriteTxnMarkers (v1-v2): the transaction coordinator has partition leaders write
COMMIT/ABORT markers.

Served on every listener, as in Kafka (its kafka-transactions abort tool sends it from
an admin client). Each partition must be led here (NOT_LEADER_OR_FOLLOWER otherwise,
UNKNOWN_TOPIC_OR_PARTITION for a partition the cluster does not know); the marker is
appended as a control batch and answered once the ISR has it (``ReplicaManager.write_marker``);
an epoch older than the producer's is INVALID_PRODUCER_EPOCH. A marker on
``__consumer_offsets`` applies the transaction's offsets in the group coordinator.
"""

from kafka.protocol.producer import WriteTxnMarkersRequest, WriteTxnMarkersResponse

from odradek.broker.handlers import handles
from odradek.broker.transactions.coordinator import write_markers_locally

R = WriteTxnMarkersResponse
Result = R.WritableTxnMarkerResult
TopicResult = Result.WritableTxnMarkerTopicResult
PartitionResult = TopicResult.WritableTxnMarkerPartitionResult


@handles(WriteTxnMarkersRequest, 1, 2)
async def handle(ctx, request):
    markers = []
    for m in request.markers:
        tps = [(t.name, i) for t in m.topics for i in t.partition_indexes]
        errors = await write_markers_locally(ctx.broker, m.producer_id, m.producer_epoch,
                                             m.transaction_result, m.coordinator_epoch, tps)
        markers.append(Result(producer_id=m.producer_id, topics=[
            TopicResult(name=t.name, partitions=[
                PartitionResult(partition_index=i, error_code=errors[(t.name, i)])
                for i in t.partition_indexes])
            for t in m.topics]))
    return R(markers=markers)

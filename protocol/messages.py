"""Message classes for the APIs kafka-python 3.0 has no schemas for, built by its own
codec from our declarations of Kafka 4.4's specs (``odradek.protocol.schemas``):
ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69) of KIP-848, the share-group APIs
(76-79, 90-92) of KIP-932. They behave like
kafka-python's classes (``decode``, ``encode``, nested data classes such as
``ConsumerGroupHeartbeatResponse.Assignment``), so handlers and ``protocol.api`` treat
them alike.
"""

from typing import Any

from kafka.protocol.api_message import ApiMessage

from odradek.protocol.schemas import declared

ConsumerGroupHeartbeatRequest = declared("ConsumerGroupHeartbeatRequest", ApiMessage, __name__)
ConsumerGroupHeartbeatResponse = declared("ConsumerGroupHeartbeatResponse", ApiMessage, __name__)
ConsumerGroupDescribeRequest = declared("ConsumerGroupDescribeRequest", ApiMessage, __name__)
ConsumerGroupDescribeResponse = declared("ConsumerGroupDescribeResponse", ApiMessage, __name__)

ShareGroupHeartbeatRequest = declared("ShareGroupHeartbeatRequest", ApiMessage, __name__)
ShareGroupHeartbeatResponse = declared("ShareGroupHeartbeatResponse", ApiMessage, __name__)
ShareGroupDescribeRequest = declared("ShareGroupDescribeRequest", ApiMessage, __name__)
ShareGroupDescribeResponse = declared("ShareGroupDescribeResponse", ApiMessage, __name__)
ShareFetchRequest = declared("ShareFetchRequest", ApiMessage, __name__)
ShareFetchResponse = declared("ShareFetchResponse", ApiMessage, __name__)
ShareAcknowledgeRequest = declared("ShareAcknowledgeRequest", ApiMessage, __name__)
ShareAcknowledgeResponse = declared("ShareAcknowledgeResponse", ApiMessage, __name__)
DescribeShareGroupOffsetsRequest = declared("DescribeShareGroupOffsetsRequest", ApiMessage, __name__)
DescribeShareGroupOffsetsResponse = declared("DescribeShareGroupOffsetsResponse", ApiMessage, __name__)
AlterShareGroupOffsetsRequest = declared("AlterShareGroupOffsetsRequest", ApiMessage, __name__)
AlterShareGroupOffsetsResponse = declared("AlterShareGroupOffsetsResponse", ApiMessage, __name__)
DeleteShareGroupOffsetsRequest = declared("DeleteShareGroupOffsetsRequest", ApiMessage, __name__)
DeleteShareGroupOffsetsResponse = declared("DeleteShareGroupOffsetsResponse", ApiMessage, __name__)

CLASSES: list[tuple[Any, Any]] = [(ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse),
           (ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse),
           (ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse),
           (ShareGroupDescribeRequest, ShareGroupDescribeResponse),
           (ShareFetchRequest, ShareFetchResponse),
           (ShareAcknowledgeRequest, ShareAcknowledgeResponse),
           (DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse),
           (AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse),
           (DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse)]

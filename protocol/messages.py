"""Message classes for the APIs kafka-python 3.0 has no schemas for, built by its own
codec from our declarations of Kafka 4.4's specs (``odradek.protocol.schemas``):
ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69) of KIP-848. They behave like
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

CLASSES: list[tuple[Any, Any]] = [(ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse),
           (ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse)]

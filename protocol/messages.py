"""Message classes for the APIs kafka-python 3.0 has no schemas for, built by its own
codec from Kafka 4.4's JSON specs (``odradek.protocol.schemas``, copied from
kafka-clients-4.4.0.jar): ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69)
of KIP-848. They behave like kafka-python's classes (``decode``, ``encode``, nested
data classes such as ``ConsumerGroupHeartbeatResponse.Assignment``), so handlers and
``protocol.api`` treat them alike.
"""

from typing import Any

from kafka.protocol.api_message import ApiMessage

from odradek.protocol import schemas

_SPECS = schemas.__name__


class ConsumerGroupHeartbeatRequest(ApiMessage, load_json=_SPECS):  # type: ignore[call-arg]  # kafka-python's metaclass takes it
    pass


class ConsumerGroupHeartbeatResponse(ApiMessage, load_json=_SPECS):  # type: ignore[call-arg]  # kafka-python's metaclass takes it
    pass


class ConsumerGroupDescribeRequest(ApiMessage, load_json=_SPECS):  # type: ignore[call-arg]  # kafka-python's metaclass takes it
    pass


class ConsumerGroupDescribeResponse(ApiMessage, load_json=_SPECS):  # type: ignore[call-arg]  # kafka-python's metaclass takes it
    pass


CLASSES: list[tuple[Any, Any]] = [(ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse),
           (ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse)]

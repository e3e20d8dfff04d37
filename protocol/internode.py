"""Our inter-node requests: Kafka framing and headers, JSON bodies, private API keys.

Nodes talk to each other over the same listener and framing as clients, with API
keys that Kafka does not use and that ApiVersions never offers to clients:

    RAFT_API_KEY        one Raft message (vote, append, snapshot...), answered by an
                        empty acknowledgement; Raft's own responses are messages too
    CONTROLLER_API_KEY  a request to the active controller (register a broker,
                        heartbeat, change an ISR, carry out an admin request, ...)
    SHARE_STATE_API_KEY a share-partition leader reads or writes its state at the
                        share coordinator (broker.share.coordinator)

Bodies are JSON objects: metadata traffic is small and rare, and JSON keeps it
readable and easy to extend. Partition data does not travel this way: followers
replicate with Kafka's own Fetch, so record bytes stay zero-copy.
"""

import json

RAFT_API_KEY = 1000
CONTROLLER_API_KEY = 1001
SHARE_STATE_API_KEY = 1002
INTERNODE_VERSION = 0
MAX_JSON_BYTES = 64 * 2**20  # bounded by socket.request.max.bytes before we get here


class _JsonMessage:
    """The minimal codec interface the server expects of a message class."""

    API_KEY = -1
    name = "internode"

    @classmethod
    def flexible_version_q(cls, version: int) -> bool:
        return False

    @classmethod
    def decode(cls, body, version: int | None = None) -> dict:
        data = json.loads(bytes(body))
        if not isinstance(data, dict):
            raise ValueError("an inter-node body is a JSON object")
        return data


def encode_body(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class JsonResponse:
    """A response body the server can encode like a kafka-python message."""

    __slots__ = ("payload",)

    def __init__(self, payload: dict):
        self.payload = payload

    def encode(self, version: int | None = None) -> bytes:
        return encode_body(self.payload)


def message_classes(api_key: int, name: str) -> tuple[type, type]:
    request = type(f"{name}Request", (_JsonMessage,), {"API_KEY": api_key, "name": name})
    response = type(f"{name}Response", (_JsonMessage,), {"API_KEY": api_key, "name": name})
    return request, response


RaftRequest, RaftResponse = message_classes(RAFT_API_KEY, "Raft")
ControllerRequest, ControllerResponse = message_classes(CONTROLLER_API_KEY, "Controller")
ShareStateRequest, ShareStateResponse = message_classes(SHARE_STATE_API_KEY, "ShareState")

"""The differential oracle's machinery: send one request to Kafka 4.4 and to Odradek, turn
both answers into plain values with what legitimately differs normalised away, and list
the fields where they differ.

What legitimately differs between two clusters answering the same request: their cluster
ids, node ids, hosts and ports, topic ids (random per cluster), throttle times and times
of day. Everything else, error codes and messages included, is compared: Kafka's answer
is the specification.
"""

from __future__ import annotations

import time
from typing import Any

from odradek.broker.client import KafkaConnection, recv_frame

API_VERSIONS = 18

# Fields whose values belong to one cluster; compared only as "present" (or -1/None/empty).
VOLATILE = frozenset({
    "throttle_time_ms", "cluster_id", "node_id", "host", "port", "controller_id", "leader_id",
    "broker_id", "coordinator_key_host", "topic_id", "member_id", "leader", "current_leader",
    "replica_nodes", "isr_nodes", "offline_replicas", "eligible_leader_replicas",
    "last_known_elr", "producer_id", "transaction_start_time_ms",
    "coordinator_epoch", "rack", "endpoints",
})
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
# Lists of dicts that clients read as maps: compared in a stable order of these keys.
SORT_KEYS = ("name", "topic", "partition_index", "index", "partition", "group_id", "api_key",
             "resource_name", "member_id", "key")


def plain(message) -> Any:
    """A kafka-python message (or part of one) as dicts, lists and scalars."""
    return message.to_dict() if hasattr(message, "to_dict") else message


def _volatile(key: str, value: Any) -> Any:
    if value in (None, -1, [], "", ZERO_UUID) or isinstance(value, bool):
        return value
    if key == "node_id" and isinstance(value, int) and value < -1:
        return value
    return "<cluster's own>"


def normalise(value: Any, key: str = "") -> Any:
    """`value` with cluster-specific fields masked and map-like lists sorted."""
    if key in VOLATILE:
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return [normalise(v) for v in value]
        return _volatile(key, value if not hasattr(value, "hex") else str(value))
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalise(v) for v in value]
        if items and all(isinstance(v, dict) for v in items):
            sort_key = next((k for k in SORT_KEYS if k in items[0]), None)
            if sort_key is not None:
                # then by the whole item: members whose ids are masked still line up
                items.sort(key=lambda v: (repr(v.get(sort_key)), repr(v)))
        return items
    if hasattr(value, "hex") and not isinstance(value, bytes | bytearray):  # uuid.UUID
        return str(value)
    return value


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every path where `actual` differs from `expected`, with both values."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for k in expected.keys() | actual.keys():
            if k not in actual or k not in expected:
                out.append(f"{path}.{k}: kafka {expected.get(k, '<absent>')!r}, "
                           f"odradek {actual.get(k, '<absent>')!r}")
            else:
                out += differences(expected[k], actual[k], f"{path}.{k}")
        return sorted(out)
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in differences(e, a, f"{path}[{i}]")]
    if expected != actual:
        return [f"{path or '.'}: kafka {expected!r}, odradek {actual!r}"]
    return []


class Side:
    """One of the two brokers of the comparison, with the calls the cases are made of."""

    def __init__(self, name: str, bootstrap: str, source_host: str | None = None):
        self.name = name
        self.bootstrap = bootstrap
        self.source_host = source_host  # the client's address (another loopback one: ACLs by host)
        self._conn: KafkaConnection | None = None

    @property
    def conn(self) -> KafkaConnection:
        if self._conn is None:
            self._conn = KafkaConnection(self.bootstrap, timeout=15, source_host=self.source_host)
        return self._conn

    def call(self, request, version: int, response_cls=None):
        """The answer to `request` at `version`, decoded (one connection, reused)."""
        from odradek.protocol.api import MESSAGE_CLASSES
        response_cls = response_cls or MESSAGE_CLASSES[request.API_KEY][1]
        if request.API_KEY == API_VERSIONS:  # its response header is v0 at every version
            self.conn.send(request, version)
            return response_cls.decode(recv_frame(self.conn.sock)[4:], version=version)
        return self.conn.roundtrip(request, version, response_cls)

    def send_only(self, request, version: int) -> None:
        """For requests without a response (acks=0 produce)."""
        self.conn.send(request, version)

    def reconnect(self) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def create_topic(self, name: str, partitions: int = 1, configs: dict[str, str] | None = None,
                     exists_ok: bool = False):
        """Create a topic and wait until its partitions have leaders that serve ListOffsets
        (Kafka's metadata reaches its broker side a moment after CreateTopics answers)."""
        from kafka.protocol.admin import CreateTopicsRequest
        from kafka.protocol.consumer import ListOffsetsRequest
        C = CreateTopicsRequest
        resp = self.call(C(topics=[C.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=1, assignments=[],
            configs=[C.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                     for k, v in (configs or {}).items()])], timeout_ms=10000,
            validate_only=False), 7)
        assert resp.topics[0].error_code in ((0, 36) if exists_ok else (0,)), (self.name, resp)
        L = ListOffsetsRequest
        request = L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(
            name=name, partitions=[L.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=i, current_leader_epoch=-1, timestamp=-1)
                for i in range(partitions)])])
        deadline = time.monotonic() + 15
        while True:
            answer = self.call(request, 8)
            if all(p.error_code == 0 for p in answer.topics[0].partitions):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {name} has no leaders: {answer}")
            time.sleep(0.05)

"""The controller: validates metadata changes and commits them as records.

Admin requests (create/delete topics, add partitions, alter configs) arrive here
from any node. The controller checks them against the current ``MetadataImage``,
turns them into metadata records and commits them; committed records are applied
to the image and handed to the subscribers (the broker creates or deletes its
partition logs from them). ``commit`` is the only thing that differs between a
one-node cluster (a local metadata log on disk) and a quorum (Raft).
"""

import asyncio
import json
import os
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import crc32c
import structlog

from protocol.errors import ErrorCode, KafkaError
from replication.metadata import (
    TOPIC,
    ConfigRecord,
    MetadataImage,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
    record_from_dict,
    record_to_dict,
)

log = structlog.get_logger(__name__)

MAX_TOPIC_NAME = 249  # Kafka's Topic.MAX_NAME_LENGTH
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
PRODUCER_ID_BLOCK = 1000  # producer ids handed out per ProducerIdsRecord


def topic_name_error(name: str | None) -> str | None:
    """Why ``name`` is not a legal topic name (Kafka's rules), or None."""
    if not name:
        return "Topic name is empty"
    if name in (".", ".."):
        return f"Topic name cannot be {name!r}"
    if len(name) > MAX_TOPIC_NAME:
        return f"Topic name is longer than {MAX_TOPIC_NAME} characters"
    if not _LEGAL_TOPIC.fullmatch(name):
        return f"Topic name {name!r} is illegal: use only ASCII letters, digits, '.', '_' and '-'"
    return None


@dataclass(slots=True)
class NewTopic:
    name: str
    num_partitions: int = -1  # -1: num.partitions
    replication_factor: int = -1  # -1: default.replication.factor
    assignments: dict[int, list[int]] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)


class LocalMetadataLog:
    """The metadata log of a one-node cluster: one file of framed JSON records.

    Each entry::

        length int32 | crc32c uint32 (of the JSON) | JSON of the record

    Appends are fsynced before they count. A torn or corrupt tail (a crash during
    an append) is cut off at start; everything before it was acknowledged.
    """

    _HEAD = struct.Struct(">iI")

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "metadata.log")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)

    def replay(self) -> list:
        with open(self.path, "rb") as f:
            data = f.read()
        records, pos = [], 0
        while pos + self._HEAD.size <= len(data):
            size, crc = self._HEAD.unpack_from(data, pos)
            body = data[pos + self._HEAD.size: pos + self._HEAD.size + size]
            if size < 0 or len(body) != size or crc32c.crc32c(body) != crc:
                break
            records.append(record_from_dict(json.loads(body)))
            pos += self._HEAD.size + size
        if pos != len(data):
            log.warning("metadata_log_truncated", path=self.path, valid_bytes=pos, file_bytes=len(data))
            os.truncate(self.path, pos)
        return records

    async def append(self, records: list) -> None:
        chunks = []
        for record in records:
            body = json.dumps(record_to_dict(record), separators=(",", ":")).encode()
            chunks.append(self._HEAD.pack(len(body), crc32c.crc32c(body)) + body)
        os.write(self._fd, b"".join(chunks))
        await asyncio.to_thread(os.fsync, self._fd)

    def close(self) -> None:
        os.close(self._fd)


class Controller:
    """Turns admin requests into committed metadata records (one node: a local log)."""

    def __init__(self, metadata_log: LocalMetadataLog, image: MetadataImage, *,
                 num_partitions: int, default_replication_factor: int,
                 validate_topic_configs: Callable[[dict], None]):
        self.metadata_log = metadata_log
        self.image = image
        self.num_partitions = num_partitions
        self.default_replication_factor = default_replication_factor
        self.validate_topic_configs = validate_topic_configs
        self.subscribers: list[Callable[[list], None]] = []
        self._lock = asyncio.Lock()  # one change at a time: validation sees the latest image

    def load(self) -> None:
        for offset, record in enumerate(self.metadata_log.replay()):
            self.image.apply(record, offset)

    async def commit(self, records: list) -> None:
        if not records:
            return
        await self.metadata_log.append(records)
        for record in records:
            self.image.apply(record, self.image.offset + 1)
        for subscriber in self.subscribers:
            subscriber(records)

    async def register_broker(self, node_id: int, endpoints: dict[str, tuple[str, int]],
                              rack: str | None = None) -> None:
        async with self._lock:
            current = self.image.brokers.get(node_id)
            if current and current.endpoints == endpoints and current.rack == rack:
                return
            await self.commit([RegisterBrokerRecord(
                node_id, {k: list(v) for k, v in endpoints.items()}, rack)])

    def _live_brokers(self) -> list[int]:
        return sorted(b.node_id for b in self.image.brokers.values() if not b.fenced)

    def _assign(self, topic_id: str, first: int, count: int, rf: int,
                explicit: dict[int, list[int]]) -> list[PartitionRecord]:
        brokers = self._live_brokers()
        records = []
        for p in range(first, first + count):
            replicas = explicit.get(p) or [brokers[(p + i) % len(brokers)] for i in range(rf)]
            records.append(PartitionRecord(topic_id, p, replicas, list(replicas), replicas[0]))
        return records

    def _check_new_topic(self, t: NewTopic) -> tuple[int, int]:
        """Validate a topic to create; return its partition count and replication factor."""
        problem = topic_name_error(t.name)
        if problem:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, problem)
        if t.name in self.image.topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{t.name}' already exists.")
        if t.assignments:
            if t.num_partitions != -1 or t.replication_factor != -1:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 "Give either assignments or partitions and replication factor")
            partitions = len(t.assignments)
            rf = len(next(iter(t.assignments.values())))
            self._check_assignments(t.assignments, 0, partitions, rf)
        else:
            partitions = self.num_partitions if t.num_partitions == -1 else t.num_partitions
            rf = self.default_replication_factor if t.replication_factor == -1 else t.replication_factor
        if partitions <= 0:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        live = len(self._live_brokers())
        if rf <= 0 or rf > live:
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             f"Replication factor {rf} must be between 1 and the number "
                             f"of live brokers ({live}).")
        try:
            self.validate_topic_configs(t.configs)
        except ValueError as e:
            raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None
        return partitions, rf

    def _check_assignments(self, assignments: dict[int, list[int]], first: int, count: int,
                           rf: int) -> None:
        known = set(self.image.brokers)
        if sorted(assignments) != list(range(first, first + count)):
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"Assignments must cover partitions {first}..{first + count - 1}")
        for p, replicas in assignments.items():
            if len(replicas) != rf or len(set(replicas)) != rf or not set(replicas) <= known:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"Partition {p}: replicas {replicas} must be {rf} distinct known brokers")

    async def create_topics(self, topics: list[NewTopic], validate_only: bool = False
                            ) -> list[KafkaError | None]:
        """One result per topic: None for success, else the error."""
        results = []
        async with self._lock:
            for t in topics:
                try:
                    partitions, rf = self._check_new_topic(t)
                except KafkaError as e:
                    results.append(e)
                    continue
                results.append(None)
                if validate_only:
                    continue
                topic_id = str(uuid.uuid4())
                records = [TopicRecord(t.name, topic_id)]
                records += [ConfigRecord(TOPIC, t.name, k, v) for k, v in t.configs.items()]
                records += self._assign(topic_id, 0, partitions, rf, t.assignments)
                await self.commit(records)
        return results

    async def delete_topic(self, name: str) -> None:
        async with self._lock:
            topic = self.image.topics.get(name)
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                 f"Topic '{name}' does not exist.")
            await self.commit([RemoveTopicRecord(topic.topic_id)])

    async def create_partitions(self, name: str, count: int, assignments: list[list[int]] | None,
                                validate_only: bool = False) -> None:
        async with self._lock:
            topic = self.image.topics.get(name)
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                 f"Topic '{name}' does not exist.")
            current = len(topic.partitions)
            if count <= current:
                raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                                 f"Topic currently has {current} partitions, {count} would not "
                                 "be an increase.")
            rf = len(topic.partitions[0].replicas)
            explicit = {}
            if assignments:
                explicit = {current + i: list(r) for i, r in enumerate(assignments)}
                self._check_assignments(explicit, current, count - current, rf)
            if validate_only:
                return
            await self.commit(self._assign(topic.topic_id, current, count - current, rf, explicit))

    async def alter_configs(self, resource_type: int, name: str, changes: dict[str, str | None],
                            replace: bool, validate_only: bool = False) -> None:
        """Set (value) or delete (None) topic config keys; ``replace`` drops keys not named."""
        async with self._lock:
            if resource_type != TOPIC:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 "Only topic configs can be altered; broker configs are static "
                                 "(set them with --config or -o and restart)")
            if name not in self.image.topics:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                 f"Topic '{name}' does not exist.")
            if replace:
                changes = {**{k: None for k in self.image.topic_configs(name)}, **changes}
            try:
                self.validate_topic_configs(changes)
            except ValueError as e:
                raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None
            if not validate_only:
                await self.commit([ConfigRecord(TOPIC, name, k, v) for k, v in changes.items()])

    async def allocate_producer_ids(self) -> range:
        """Reserve a block of producer ids; the record makes them unique across restarts."""
        async with self._lock:
            start = self.image.next_producer_id
            await self.commit([ProducerIdsRecord(start + PRODUCER_ID_BLOCK)])
            return range(start, start + PRODUCER_ID_BLOCK)

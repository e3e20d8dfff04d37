"""Cluster metadata: the records of the metadata log and the image they build.

Every change to the cluster's metadata (a broker registered, a topic created, a
partition's leader or ISR changed, a config set) is a record appended to the
metadata log; every node replays the log into its own ``MetadataImage``. One node
keeps the log on its own disk; a cluster replicates the same records with Raft,
so there is one format and one apply function for both.

Record names follow KRaft's (``TopicRecord``, ``PartitionRecord``,
``PartitionChangeRecord``, ``ConfigRecord``, ...). They are stored as JSON objects
with a ``type`` key: metadata is small and rare, and JSON keeps the log readable.
"""

import uuid
from collections import OrderedDict
from dataclasses import asdict, astuple, dataclass, field, fields

from odradek.replication.acls import AclBinding

TOPIC = 2  # DescribeConfigs resource types
BROKER = 4
GROUP = 32  # group configs (KIP-848, KIP-932: share.auto.offset.reset, ...)
RECENT_OPERATIONS = 1000  # forwarded operations whose results the image remembers


@dataclass(slots=True)
class RegisterBrokerRecord:
    node_id: int
    endpoints: dict[str, list]  # listener name -> [host, port]
    rack: str | None = None
    incarnation_id: str = ""


@dataclass(slots=True)
class BrokerFencingRecord:
    node_id: int
    fenced: bool


@dataclass(slots=True)
class TopicRecord:
    name: str
    topic_id: str


@dataclass(slots=True)
class PartitionRecord:
    topic_id: str
    partition: int
    replicas: list[int]
    isr: list[int]
    leader: int
    leader_epoch: int = 0
    partition_epoch: int = 0
    adding_replicas: list[int] = field(default_factory=list)  # a reassignment's (KIP-455)
    removing_replicas: list[int] = field(default_factory=list)


@dataclass(slots=True)
class PartitionChangeRecord:
    """A change of leader, ISR and/or replicas (a reassignment's steps). The leader epoch
    moves only with the leader; the partition epoch moves with every change."""
    topic_id: str
    partition: int
    leader: int | None = None  # None: unchanged
    isr: list[int] | None = None
    replicas: list[int] | None = None
    adding_replicas: list[int] | None = None
    removing_replicas: list[int] | None = None


@dataclass(slots=True)
class RemoveTopicRecord:
    topic_id: str


@dataclass(slots=True)
class ConfigRecord:
    resource_type: int
    resource_name: str
    name: str
    value: str | None  # None removes the key, falling back to the default


@dataclass(slots=True)
class ClusterIdRecord:
    """The cluster's id, committed once by the first broker registration."""
    cluster_id: str


@dataclass(slots=True)
class ProducerIdsRecord:
    """The next block of producer ids starts here (ids stay unique across restarts)."""
    next_producer_id: int


@dataclass(slots=True)
class FeatureLevelRecord:
    """A feature's finalized level (KIP-584); level 0 takes the feature out."""
    name: str
    feature_level: int


@dataclass(slots=True)
class OperationRecord:
    """A controller operation's result, committed with the operation's records.

    A node that forwarded the operation may not hear the answer (the controller lost
    its leadership, the connection dropped) and retries it under the same
    ``request_id``: the controller that gets the retry, the same or a newly elected
    one, finds the result here and answers it again instead of running the
    operation twice (which would answer, say, TOPIC_ALREADY_EXISTS for the topic the
    first attempt created). ``result`` is in the controller's JSON form."""
    request_id: str
    result: object = None


@dataclass(slots=True)
class UserScramCredentialRecord:
    """A user's SCRAM credential for one mechanism (1: SCRAM-SHA-256, 2: SCRAM-SHA-512), as
    KRaft's record of that name: never the password, only what verifies a proof (the
    byte fields in base64)."""
    name: str
    mechanism: int
    salt: str
    stored_key: str
    server_key: str
    iterations: int


@dataclass(slots=True)
class RemoveUserScramCredentialRecord:
    name: str
    mechanism: int
@dataclass(frozen=True, slots=True)
class AccessControlEntryRecord(AclBinding):
    """An ACL binding (replication.acls), under an id that its removal names."""
    id: str = ""

    def binding(self) -> AclBinding:
        return AclBinding(*astuple(self)[:-1])


@dataclass(slots=True)
class RemoveAccessControlEntryRecord:
    id: str


@dataclass(slots=True)
class ClientQuotaRecord:
    """A client quota (producer_byte_rate, consumer_byte_rate, request_percentage) set
    (value) or removed (None) for an entity: {"user": name, "client-id": name}, where a
    None name is that type's default entity (Kafka's <default>)."""
    entity: dict[str, str | None]
    key: str
    value: float | None


RECORD_TYPES = {cls.__name__: cls for cls in (
    RegisterBrokerRecord, BrokerFencingRecord, TopicRecord, PartitionRecord,
    PartitionChangeRecord, RemoveTopicRecord, ConfigRecord, ProducerIdsRecord, ClusterIdRecord,
    OperationRecord, UserScramCredentialRecord, RemoveUserScramCredentialRecord,
    AccessControlEntryRecord, RemoveAccessControlEntryRecord, ClientQuotaRecord, FeatureLevelRecord)}


def quota_entity_key(entity: dict[str, str | None]) -> tuple:
    """A quota entity as a hashable key: its (type, name) pairs in type order."""
    return tuple(sorted(entity.items()))


def record_to_dict(record) -> dict:
    return {"type": type(record).__name__, **asdict(record)}


def record_from_dict(data: dict):
    cls = RECORD_TYPES[data["type"]]
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(slots=True)
class PartitionState:
    topic_id: str
    partition: int
    replicas: list[int]
    isr: list[int]
    leader: int
    leader_epoch: int
    partition_epoch: int
    adding_replicas: list[int] = field(default_factory=list)
    removing_replicas: list[int] = field(default_factory=list)


@dataclass(slots=True)
class TopicImage:
    name: str
    topic_id: str
    partitions: dict[int, PartitionState] = field(default_factory=dict)

    @property
    def uuid(self) -> uuid.UUID:
        return uuid.UUID(self.topic_id)


@dataclass(slots=True)
class BrokerImage:
    node_id: int
    endpoints: dict[str, tuple[str, int]]
    rack: str | None
    fenced: bool = False


class MetadataImage:
    """What the replayed metadata log says the cluster is. Mutated only by ``apply``."""

    def __init__(self):
        self.brokers: dict[int, BrokerImage] = {}
        self.topics: dict[str, TopicImage] = {}
        self.topics_by_id: dict[str, TopicImage] = {}
        self.configs: dict[tuple[int, str], dict[str, str]] = {}
        self.next_producer_id = 0
        self.cluster_id: str | None = None
        self.acls: dict[str, AccessControlEntryRecord] = {}  # id -> binding
        # quota_entity_key(entity) -> {quota key: value}
        self.client_quotas: dict[tuple, dict[str, float]] = {}
        self.features: dict[str, int] = {}  # finalized feature levels (KIP-584), none at 0
        # request id -> result of the last RECENT_OPERATIONS operations (see OperationRecord);
        # bounded by count, not time, so that every node's image holds the same ones
        self.operations: OrderedDict[str, object] = OrderedDict()
        self.offset = -1  # the last applied record's offset in the metadata log
        self.scram: dict[tuple[str, int], UserScramCredentialRecord] = {}  # (user, mechanism)

    def apply(self, record, offset: int | None = None) -> None:
        getattr(self, "_apply_" + type(record).__name__)(record)
        if offset is not None:
            self.offset = offset

    def _apply_RegisterBrokerRecord(self, r: RegisterBrokerRecord) -> None:
        endpoints = {name: (host, int(port)) for name, (host, port) in r.endpoints.items()}
        self.brokers[r.node_id] = BrokerImage(r.node_id, endpoints, r.rack)

    def _apply_BrokerFencingRecord(self, r: BrokerFencingRecord) -> None:
        self.brokers[r.node_id].fenced = r.fenced

    def _apply_TopicRecord(self, r: TopicRecord) -> None:
        topic = TopicImage(r.name, r.topic_id)
        self.topics[r.name] = topic
        self.topics_by_id[r.topic_id] = topic

    def _apply_PartitionRecord(self, r: PartitionRecord) -> None:
        self.topics_by_id[r.topic_id].partitions[r.partition] = PartitionState(
            r.topic_id, r.partition, list(r.replicas), list(r.isr), r.leader,
            r.leader_epoch, r.partition_epoch, list(r.adding_replicas), list(r.removing_replicas))

    def _apply_PartitionChangeRecord(self, r: PartitionChangeRecord) -> None:
        p = self.topics_by_id[r.topic_id].partitions[r.partition]
        if r.leader is not None and r.leader != p.leader:
            p.leader = r.leader
            p.leader_epoch += 1
        if r.isr is not None:
            p.isr = list(r.isr)
        if r.replicas is not None:
            p.replicas = list(r.replicas)
        if r.adding_replicas is not None:
            p.adding_replicas = list(r.adding_replicas)
        if r.removing_replicas is not None:
            p.removing_replicas = list(r.removing_replicas)
        p.partition_epoch += 1

    def _apply_RemoveTopicRecord(self, r: RemoveTopicRecord) -> None:
        topic = self.topics_by_id.pop(r.topic_id)
        del self.topics[topic.name]
        self.configs.pop((TOPIC, topic.name), None)

    def _apply_ConfigRecord(self, r: ConfigRecord) -> None:
        configs = self.configs.setdefault((r.resource_type, r.resource_name), {})
        if r.value is None:
            configs.pop(r.name, None)
        else:
            configs[r.name] = r.value

    def _apply_ClusterIdRecord(self, r: ClusterIdRecord) -> None:
        self.cluster_id = r.cluster_id

    def _apply_FeatureLevelRecord(self, r: FeatureLevelRecord) -> None:
        if r.feature_level > 0:
            self.features[r.name] = r.feature_level
        else:
            self.features.pop(r.name, None)

    def _apply_ProducerIdsRecord(self, r: ProducerIdsRecord) -> None:
        self.next_producer_id = r.next_producer_id

    def _apply_OperationRecord(self, r: OperationRecord) -> None:
        self.operations[r.request_id] = r.result
        if len(self.operations) > RECENT_OPERATIONS:
            self.operations.popitem(last=False)

    def _apply_UserScramCredentialRecord(self, r: UserScramCredentialRecord) -> None:
        self.scram[(r.name, r.mechanism)] = r

    def _apply_RemoveUserScramCredentialRecord(self, r: RemoveUserScramCredentialRecord) -> None:
        self.scram.pop((r.name, r.mechanism), None)

    def _apply_AccessControlEntryRecord(self, r: AccessControlEntryRecord) -> None:
        self.acls[r.id] = r

    def _apply_RemoveAccessControlEntryRecord(self, r: RemoveAccessControlEntryRecord) -> None:
        self.acls.pop(r.id, None)

    def _apply_ClientQuotaRecord(self, r: ClientQuotaRecord) -> None:
        key = quota_entity_key(r.entity)
        quotas = self.client_quotas.setdefault(key, {})
        if r.value is None:
            quotas.pop(r.key, None)
            if not quotas:
                del self.client_quotas[key]
        else:
            quotas[r.key] = float(r.value)

    def topic_configs(self, name: str) -> dict[str, str]:
        return self.configs.get((TOPIC, name), {})

    def to_records(self) -> list:
        """Records that rebuild this image from empty: the snapshot form of the log."""
        records = [ClusterIdRecord(self.cluster_id)] if self.cluster_id else []
        records += [FeatureLevelRecord(name, level) for name, level in self.features.items()]
        for b in self.brokers.values():
            records.append(RegisterBrokerRecord(b.node_id, {k: list(v) for k, v in b.endpoints.items()},
                                                b.rack))
            if b.fenced:
                records.append(BrokerFencingRecord(b.node_id, True))
        for t in self.topics.values():
            records.append(TopicRecord(t.name, t.topic_id))
            records += [PartitionRecord(p.topic_id, p.partition, list(p.replicas), list(p.isr), p.leader,
                                        p.leader_epoch, p.partition_epoch, list(p.adding_replicas),
                                        list(p.removing_replicas))
                        for p in t.partitions.values()]
        records += [ConfigRecord(rtype, name, key, value)
                    for (rtype, name), configs in self.configs.items() for key, value in configs.items()]
        records += list(self.acls.values())
        records += [ClientQuotaRecord(dict(key), name, value)
                    for key, quotas in self.client_quotas.items() for name, value in quotas.items()]
        records.append(ProducerIdsRecord(self.next_producer_id))
        records += list(self.scram.values())
        records += [OperationRecord(request_id, result) for request_id, result in self.operations.items()]
        return records

    def reset(self, records: list, offset: int) -> None:
        """Replace this image with the one ``records`` build (a snapshot at ``offset``)."""
        self.__init__()
        for record in records:
            self.apply(record)
        self.offset = offset

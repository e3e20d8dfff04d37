"""``meta.properties``: which cluster and node a data directory belongs to.

Written at the first start, as Kafka's ``kafka-storage format`` does, and checked at
every start afterwards: a data dir of another cluster or node id is refused, because
serving it would mix two clusters' data.
"""

import base64
import os
import uuid
from dataclasses import dataclass

from odradek.broker.config import ConfigError, parse_properties

FILE = "meta.properties"


def new_uuid() -> str:
    """A random id in Kafka's form: URL-safe base64 of a UUID, without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class MetaProperties:
    cluster_id: str | None  # None: a cluster node that has not learned it from the quorum yet
    node_id: int
    directory_id: str


def _write(path: str, meta: MetaProperties) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("version=1\n" + (f"cluster.id={meta.cluster_id}\n" if meta.cluster_id else "")
                + f"node.id={meta.node_id}\ndirectory.id={meta.directory_id}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_or_create(data_dir: str, node_id: int, generate_cluster_id: bool = True) -> MetaProperties:
    """This data dir's identity; a new one gets a cluster id only on a one-node cluster
    (a quorum's nodes learn theirs from the metadata log: see ``adopt_cluster_id``)."""
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, FILE)
    if not os.path.exists(path):
        meta = MetaProperties(new_uuid() if generate_cluster_id else None, node_id, new_uuid())
        _write(path, meta)
        return meta
    with open(path) as f:
        props = parse_properties(f.read(), path)
    try:
        meta = MetaProperties(props.get("cluster.id"), int(props["node.id"]), props["directory.id"])
    except (KeyError, ValueError) as e:
        raise ConfigError(f"{path} is damaged ({e}); restore it or start with an empty data dir") from None
    if meta.node_id != node_id:
        raise ConfigError(f"data dir {data_dir} belongs to node.id {meta.node_id}, not {node_id}; "
                          f"use --node-id {meta.node_id} or another --data-dir")
    if meta.cluster_id is None and generate_cluster_id:
        meta = MetaProperties(new_uuid(), meta.node_id, meta.directory_id)
        _write(path, meta)
    return meta


def adopt_cluster_id(data_dir: str, meta: MetaProperties, cluster_id: str) -> MetaProperties:
    """Record the quorum's cluster id; a data dir of another cluster is refused."""
    if meta.cluster_id == cluster_id:
        return meta
    if meta.cluster_id is not None:
        raise ConfigError(f"data dir {data_dir} belongs to cluster {meta.cluster_id}, but the "
                          f"quorum's cluster is {cluster_id}; use that cluster's data dir or an empty one")
    meta = MetaProperties(cluster_id, meta.node_id, meta.directory_id)
    _write(os.path.join(data_dir, FILE), meta)
    return meta

"""``meta.properties``: which cluster and node a data directory belongs to.

Written at the first start, as Kafka's ``kafka-storage format`` does, and checked at
every start afterwards: a data dir of another cluster or node id is refused, because
serving it would mix two clusters' data.
"""

import base64
import os
import uuid
from dataclasses import dataclass

from broker.config import ConfigError, parse_properties

FILE = "meta.properties"


def new_uuid() -> str:
    """A random id in Kafka's form: URL-safe base64 of a UUID, without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class MetaProperties:
    cluster_id: str
    node_id: int
    directory_id: str


def load_or_create(data_dir: str, node_id: int, cluster_id: str | None = None) -> MetaProperties:
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, FILE)
    if not os.path.exists(path):
        meta = MetaProperties(cluster_id or new_uuid(), node_id, new_uuid())
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"version=1\ncluster.id={meta.cluster_id}\nnode.id={meta.node_id}\n"
                    f"directory.id={meta.directory_id}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return meta
    with open(path) as f:
        props = parse_properties(f.read(), path)
    try:
        meta = MetaProperties(props["cluster.id"], int(props["node.id"]), props["directory.id"])
    except (KeyError, ValueError) as e:
        raise ConfigError(f"{path} is damaged ({e}); restore it or start with an empty data dir") from None
    if meta.node_id != node_id:
        raise ConfigError(f"data dir {data_dir} belongs to node.id {meta.node_id}, not {node_id}; "
                          f"use --node-id {meta.node_id} or another --data-dir")
    if cluster_id is not None and meta.cluster_id != cluster_id:
        raise ConfigError(f"data dir {data_dir} belongs to cluster {meta.cluster_id}, not {cluster_id}; "
                          "use that cluster's data dir or an empty one")
    return meta

"""Compaction on three nodes: each replica's cleaner cleans its own log, and offsets are the
same everywhere, so a consumer sees the same compacted view whoever leads."""

import random

from tests.clients import create_topics
from tests.cluster.test_replication import leader_of, wait_isr
from tests.integration.test_compaction import (
    BROKER,
    TOPIC_CONFIG,
    compacted_view,
    wait_compacted,
    write_changelog,
)
from tests.local_cluster import Cluster


def test_every_replica_serves_the_same_compacted_view_after_a_leader_change(tmp_path):
    cluster = Cluster(tmp_path, overrides=BROKER)
    try:
        cluster.start()
        cluster.wait_formed()
        create_topics(cluster.bootstrap, ["cdc"], 1, rf=3, config=TOPIC_CONFIG)
        wait_isr(cluster, "cdc", 3)
        latest = write_changelog(cluster.bootstrap, "cdc", random.Random(11), 1500, 40)
        live = {k: v for k, v in latest.items() if v[1] is not None}
        _, records, want = wait_compacted(cluster.bootstrap, "cdc", latest)
        assert compacted_view(records) == want
        for _ in range(2):  # two leader changes: two other replicas serve their own logs
            victim = leader_of(cluster, "cdc")
            cluster.kill(victim)
            # every live node knows the new leader before a client asks one of them: a
            # node's image may lag another's for a moment, and librdkafka queues its
            # ListOffsets to the leader it was told of (in CI the dead one, for 10 s)
            cluster.wait_for(lambda v=victim: cluster.leader_seen_by(cluster.live(), "cdc") not in (None, v), 30,
                             "a new leader known to every live node")
            low, records, want = wait_compacted(cluster.live_bootstrap, "cdc", live)
            assert low == 0
            assert compacted_view(records) == want, f"replica {leader_of(cluster, 'cdc')} differs"
            cluster.restart(victim)
            wait_isr(cluster, "cdc", 3, timeout_s=60)
    finally:
        cluster.stop_all()

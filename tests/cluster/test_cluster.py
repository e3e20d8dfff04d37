"""The controller quorum with three real node processes on loopback."""

import shutil
import time

import pytest
from confluent_kafka.admin import NewTopic

from tests.clients import create_topics
from tests.local_cluster import Cluster


def create(cluster, *names, partitions=3, rf=3):
    create_topics(cluster.live_bootstrap, names, partitions, rf)


def topics(cluster) -> set[str]:
    return set(cluster.admin().list_topics(timeout=10).topics)


def test_forms_in_any_order_and_survives_controller_kill(cluster):
    cluster.start(order=[3, 1, 2], stagger_s=1.5)
    leader = cluster.wait_formed()
    create(cluster, "before")
    assert "st" not in topics(cluster)
    cluster.kill(leader)
    started = time.monotonic()
    new_leader = cluster.wait_for(lambda: (c := cluster.active_controller()) not in (None, leader) and c,
                                  timeout_s=10, what="a new controller")
    assert time.monotonic() - started < 10
    create(cluster, "after")
    # Other nodes apply the commit a moment later (as in Kafka): wait for it.
    cluster.wait_for(lambda: {"before", "after"} <= topics(cluster), 10, "both topics everywhere")
    # Partitions led by the dead node moved to another ISR member once it was fenced.
    cluster.wait_for(lambda: all(p.leader in cluster.live() for t in ("before", "after")
                                 for p in cluster.admin().list_topics(timeout=5).topics[t].partitions.values()),
                     timeout_s=15, what="leaders on live nodes")
    # The killed node restarts with its data dir and catches up.
    cluster.restart(leader)
    cluster.wait_formed()
    node = cluster.nodes[leader]
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(timeout=10)
    assert {"before", "after"} <= set(md.topics)
    assert new_leader != leader
    assert all(len(leaders) == 1 for leaders in cluster.leaders_by_term().values())


def test_whole_cluster_restart_keeps_topics(cluster):
    cluster.start()
    cluster.wait_formed()
    create(cluster, "kept", partitions=2)
    cluster.stop_all()
    cluster.start(order=[2, 3, 1])
    cluster.wait_formed()
    md = cluster.admin().list_topics(timeout=10)
    assert "kept" in md.topics and len(md.topics["kept"].partitions) == 2
    assert len({n.bootstrap for n in cluster.nodes.values()}) == 3
    assert cluster.active_controller() in cluster.live()


def test_status_command_and_replication_factor_errors(cluster):
    cluster.start()
    cluster.wait_formed()
    create(cluster, "shown", partitions=1)
    status = cluster.status_command()
    assert status["active_controller"] in (1, 2, 3)
    assert [(p["partition"], len(p["replicas"])) for p in status["partitions"] if p["topic"] == "shown"] \
        == [(0, 3)]
    assert sorted(v["node_id"] for v in status["quorum"]["voters"]) == [1, 2, 3]
    admin = cluster.admin()
    (f,) = admin.create_topics([NewTopic("too-big", 1, 4)]).values()
    with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR|Replication factor"):
        f.result(30)


def test_wiped_voter_does_not_break_election_safety(cluster):
    """A voter whose data dir is wiped comes back with a new directory id; it must not
    vote twice in a term (at most one leader per term, as every node saw it)."""
    cluster.start()
    leader = cluster.wait_formed()
    create(cluster, "survives", partitions=1)
    victim = next(n for n in cluster.nodes if n != leader)
    cluster.kill(victim)
    shutil.rmtree(cluster.nodes[victim].data_dir)
    cluster.restart(victim)
    cluster.wait_formed()
    for _ in range(2):  # more elections with the wiped node in the quorum
        current = cluster.active_controller()
        cluster.kill(current)
        cluster.wait_for(lambda old=current: (c := cluster.active_controller()) not in (None, old) and c,
                         timeout_s=15, what="a new controller")
        cluster.restart(current)
        cluster.wait_formed()
    assert "survives" in topics(cluster)
    terms = cluster.leaders_by_term()
    assert terms and all(len(leaders) == 1 for leaders in terms.values()), terms


def test_quorum_stays_stable_while_isr_changes_are_pending(cluster):
    """Killing a node makes every leader of its partitions ask the controller for an ISR
    change at once. Those requests wait for commits; the Raft acks those commits need
    must not queue behind them (they once shared a connection and leaders churned)."""
    cluster.start()
    leader = cluster.wait_formed()
    create(cluster, "many", partitions=60)
    victim = next(n for n in cluster.nodes if n != leader)
    terms_before = max(cluster.leaders_by_term())
    cluster.kill(victim)
    cluster.wait_for(lambda: all(p.leader != victim and victim not in p.isrs for p in
                                 cluster.admin().list_topics(timeout=5).topics["many"].partitions.values()),
                     timeout_s=20, what="leaders and ISRs without the dead node")
    time.sleep(8)  # past the ISR changes' request timeouts
    assert max(cluster.leaders_by_term()) == terms_before  # no election at all
    assert cluster.active_controller() == leader


@pytest.fixture
def snapshotting_cluster(tmp_path):
    c = Cluster(tmp_path, overrides={"metadata.log.max.record.bytes.between.snapshots": "2000"})
    yield c
    c.stop_all()
    for n in c.nodes:
        print(f"--- node {n} ---\n" + "".join(c.logs[n][-60:]))


def test_a_node_far_behind_catches_up_from_a_snapshot(snapshotting_cluster):
    cluster = snapshotting_cluster
    cluster.start()
    leader = cluster.wait_formed()
    behind = next(n for n in cluster.nodes if n != leader)
    cluster.kill(behind)
    for i in range(12):  # enough metadata for several snapshots; the log behind them goes
        create(cluster, f"t{i}", partitions=2)
    assert any("metadata_snapshot" in line for n in cluster.live() for line in cluster.nodes[n].log_lines)
    cluster.restart(behind)
    from confluent_kafka.admin import AdminClient
    node = AdminClient({"bootstrap.servers": cluster.nodes[behind].bootstrap})
    cluster.wait_for(lambda: {f"t{i}" for i in range(12)} <= set(node.list_topics(timeout=5).topics),
                     timeout_s=30, what="the restarted node to catch up")
    assert any("metadata_snapshot_installed" in line for line in cluster.nodes[behind].log_lines)
    cluster.stop_all()  # and the snapshots on disk bring every node back
    cluster.start()
    cluster.wait_formed(timeout_s=90)
    assert {f"t{i}" for i in range(12)} <= topics(cluster)


def test_a_restarted_node_leads_nothing_until_its_metadata_catches_up(snapshotting_cluster):
    """Restarted alone, a node's image is its last snapshot, which may be long out of date.
    Leading partitions by it would acknowledge writes at a stale leader epoch (the cluster
    simulation's seed 46 loses acknowledged records that way), so until the node has
    heard from a quorum leader and applied what was committed, it hosts no partition."""
    from odradek.protocol.errors import ErrorCode
    from odradek.protocol.records import build_batch
    from tests.rawclient import produce

    cluster = snapshotting_cluster
    cluster.start()
    cluster.wait_formed()
    create(cluster, "stale", partitions=1)
    for i in range(6):  # metadata past the snapshot threshold: the snapshot holds "stale"
        create(cluster, f"pad{i}", partitions=2)
    leader = cluster.admin().list_topics(timeout=10).topics["stale"].partitions[0].leader
    assert produce(cluster.nodes[leader].bootstrap, "stale", {0: build_batch([(None, b"a", (), 0)])},
                   acks=1)[0].error_code == ErrorCode.NONE
    assert any("metadata_snapshot" in line for line in cluster.nodes[leader].log_lines)
    cluster.stop_all()
    cluster.restart(leader)  # alone: no quorum, so no leader to catch up from
    time.sleep(3)  # time enough to act on the stale image, if it would
    result = produce(cluster.nodes[leader].bootstrap, "stale", {0: build_batch([(None, b"b", (), 0)])},
                     acks=1)[0]
    assert result.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER, result
    assert not any("metadata_caught_up" in line for line in cluster.nodes[leader].log_lines)


def test_a_node_catching_up_calls_no_existing_topic_unknown(cluster):
    """Restarted alone, a node has not seen its metadata log's records committed, so its
    image lacks topics that exist. Metadata then answers such a topic LEADER_NOT_AVAILABLE,
    which clients retry, not UNKNOWN_TOPIC_OR_PARTITION, on which librdkafka fails
    produce() at once (seen in a whole-cluster restart under load), and creates nothing;
    FindCoordinator answers COORDINATOR_NOT_AVAILABLE without asking a controller to
    create __consumer_offsets."""
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse
    from kafka.protocol.metadata.find_coordinator import (
        FindCoordinatorRequest,
        FindCoordinatorResponse,
    )

    from odradek.protocol.errors import ErrorCode
    from tests.rawclient import RawConnection

    cluster.start()
    cluster.wait_formed()
    create(cluster, "kept", partitions=1)
    cluster.stop_all()
    cluster.restart(1)  # alone: no quorum to catch up from
    request = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="kept", topic_id=None)],
                              allow_auto_topic_creation=True, include_cluster_authorized_operations=False,
                              include_topic_authorized_operations=False)
    find = FindCoordinatorRequest(key="g", key_type=0)
    with RawConnection(cluster.nodes[1].bootstrap) as conn:
        response = conn.roundtrip(request, 9, MetadataResponse)
        coordinator = conn.roundtrip(find, 3, FindCoordinatorResponse)
    assert [(t.name, t.error_code) for t in response.topics] == [("kept", ErrorCode.LEADER_NOT_AVAILABLE)]
    # FindCoordinator neither: no coordinator yet, and no attempt to create __consumer_offsets
    assert coordinator.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert not any("offsets_topic" in line for line in cluster.nodes[1].log_lines)

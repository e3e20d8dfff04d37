"""Leadership back to the preferred replica after a node restart, on three real node
processes: by ElectLeaders (kafka-python's admin) and by the controller's automatic
rebalancing (auto.leader.rebalance.enable). Slow-ish (a kill, a fence, a restart and a
catch-up each); every wait is on a condition."""

import contextlib

from kafka.admin import KafkaAdminClient, NewTopic

from odradek.protocol.errors import ErrorCode
from tests.local_cluster import Cluster

TOPIC = "preferred"
ASSIGNMENT = [[1, 2, 3], [2, 3, 1], [3, 1, 2]]  # each node the preferred replica of one partition


@contextlib.contextmanager
def admin(cluster):
    a = KafkaAdminClient(bootstrap_servers=cluster.live_bootstrap, request_timeout_ms=20000)
    try:
        yield a
    finally:
        a.close()


def partitions(cluster) -> dict[int, tuple[int, list[int]]]:
    md = cluster.admin().list_topics(TOPIC, timeout=5)
    return {p: (m.leader, sorted(m.isrs)) for p, m in md.topics[TOPIC].partitions.items()}


def start_with_a_moved_leader(cluster: Cluster) -> None:
    """Three preferred leaders; then node 1 restarts and is back in partition 0's ISR,
    while the leadership of partition 0 moved to another node."""
    cluster.start()
    cluster.wait_formed()
    with admin(cluster) as a:
        a.create_topics([NewTopic(TOPIC, -1, -1, replica_assignments=dict(enumerate(ASSIGNMENT)))])
    cluster.wait_for(lambda: {p: lead for p, (lead, _) in partitions(cluster).items()} == {0: 1, 1: 2, 2: 3},
                     30, "the preferred leaders")
    cluster.kill(1)
    cluster.wait_for(lambda: partitions(cluster)[0][0] in (2, 3), 30, "a new leader of partition 0")
    cluster.restart(1)
    cluster.wait_for(lambda: partitions(cluster)[0][1] == [1, 2, 3], 60, "node 1 back in the ISR")


def test_preferred_election_returns_leadership_after_a_restart(tmp_path):
    cluster = Cluster(tmp_path, overrides={"auto.leader.rebalance.enable": "false"})
    try:
        start_with_a_moved_leader(cluster)
        assert partitions(cluster)[0][0] != 1  # nothing moves it back by itself
        with admin(cluster) as a:
            # (kafka-python names every partition itself: it never sends null for "all")
            response = a.elect_leaders(0, None, timeout_ms=10000)
        results = {(r.topic, p.partition_id): p.error_code
                   for r in response.replica_election_results for p in r.partition_result}
        assert results[(TOPIC, 0)] == ErrorCode.NONE
        assert results[(TOPIC, 1)] == ErrorCode.ELECTION_NOT_NEEDED  # its preferred replica leads
        cluster.wait_for(lambda: partitions(cluster)[0][0] == 1, 10, "node 1 to lead partition 0")
    finally:
        cluster.stop_all()


def test_controller_moves_leadership_back_to_a_restarted_node(tmp_path):
    cluster = Cluster(tmp_path, overrides={"leader.imbalance.check.interval.seconds": "1"})
    try:
        start_with_a_moved_leader(cluster)
        cluster.wait_for(lambda: partitions(cluster)[0][0] == 1, 30, "node 1 to lead partition 0 again")
        assert {p: lead for p, (lead, _) in partitions(cluster).items()} == {0: 1, 1: 2, 2: 3}
    finally:
        cluster.stop_all()


def test_unclean_election_elects_only_a_live_replica(tmp_path):
    """Partition u-0 on nodes 3 and 2: 2 leaves the ISR, then 3 (the last ISR member)
    dies, leaving no leader. Only an unclean election brings it back, onto node 2, the
    one live replica, as the only ISR member; a preferred election cannot (3 is dead)."""
    cluster = Cluster(tmp_path, overrides={"auto.leader.rebalance.enable": "false"})

    def state():
        m = cluster.admin().list_topics("u", timeout=5).topics["u"].partitions[0]
        return m.leader, sorted(m.isrs)

    def leaderless_everywhere():
        """Every live node has applied node 3's fence: kafka-python's admin takes its
        broker list from whichever node answers, and would try the dead node 3."""
        return all(md.topics["u"].partitions[0].leader == -1 and 3 not in md.brokers
                   for md in (cluster.metadata_of(n, "u") for n in cluster.live()))

    def elect(election_type):
        with admin(cluster) as a:
            response = a.elect_leaders(election_type, {"u": [0]}, timeout_ms=10000, raise_errors=False)
        return response.replica_election_results[0].partition_result[0].error_code
    try:
        cluster.start()
        cluster.wait_formed()
        with admin(cluster) as a:
            a.create_topics([NewTopic("u", -1, -1, replica_assignments={0: [3, 2]})])
        cluster.wait_for(lambda: state() == (3, [2, 3]), 30, "u-0 led by 3 with 2 in sync")
        cluster.kill(2)
        cluster.wait_for(lambda: state() == (3, [3]), 30, "node 2 out of the ISR")
        cluster.kill(3)  # the quorum is lost with it: node 2 comes back to restore it
        cluster.restart(2)
        cluster.wait_for(leaderless_everywhere, 60, "u-0 without a leader on every live node")
        assert elect(0) == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
        assert elect(1) == ErrorCode.NONE
        cluster.wait_for(lambda: state() == (2, [2]), 10, "node 2 leading u-0 alone")
        assert elect(1) == ErrorCode.ELECTION_NOT_NEEDED
    finally:
        cluster.stop_all()
        for n in cluster.nodes:  # on failure, pytest shows each node's log tail
            print(f"--- node {n} ---\n" + "".join(cluster.logs[n][-80:]))

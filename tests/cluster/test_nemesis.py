"""The nemesis (tests/reliability/nemesis.py) against real three-node clusters: each fault
family does to real processes, packets and files what it says, and the cluster copes.

Each node runs in its own network namespace (root needed); clients reach it over its own
veth link. Timeouts are tests.local_cluster.FAST: sessions of 3 s, elections after 1 s.
"""

import os
import re
import shutil
import socket
import statistics
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from odradek.protocol.errors import ErrorCode
from tests.clients import create_topics
from tests.conftest import CI
from tests.integration.test_groups import commit, fetch_offset, find_coordinator
from tests.local_cluster import Cluster, poll_until
from tests.rawclient import RawConnection
from tests.reliability.nemesis import CLIENTS, Nemesis, remove_stale
from tests.replicas import log_batches

TOPIC = "nem"


def _require_netns():
    missing = [t for t in ("ip", "nsenter", "iptables-restore") if shutil.which(t) is None]
    reason = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}" if missing else None
    if reason:
        if CI:
            pytest.fail(f"the nemesis {reason}; CI=true requires it")
        pytest.skip(f"the nemesis {reason}")


def _open(tmp_path, **kwargs):
    _require_netns()
    cluster = Cluster(tmp_path, netns=True, **kwargs)
    return Nemesis(cluster)


def _close(nemesis):
    cluster = nemesis.cluster
    nemesis.close()
    for n in cluster.nodes:
        print(f"--- node {n} ---\n" + "".join(cluster.logs[n][-300:]))


@pytest.fixture
def nemesis(tmp_path):
    nem = _open(tmp_path)
    yield nem
    _close(nem)


def start(nem, config=None, leader=None):
    """Start the cluster and create the topic, led by the active controller if leader is
    "controller"; returns the topic's leader."""
    c = nem.cluster
    c.start()
    controller = c.wait_formed()
    leader = controller if leader == "controller" else leader
    config = {"min.insync.replicas": "2", **(config or {})}
    if leader is None:
        create_topics(c.bootstrap, [TOPIC], 1, 3, config)
    else:
        # kafka-python: confluent-kafka refuses a replica assignment without a partition count
        admin = KafkaAdminClient(bootstrap_servers=c.bootstrap)
        replicas = [leader] + [n for n in c.nodes if n != leader]
        admin.create_topics([NewTopic(TOPIC, -1, -1, replica_assignments={0: replicas}, topic_configs=config)])
        admin.close()
    return c.wait_for(lambda: leader_of(c, via=c.live()), 20, "a leader")


def metadata(cluster, n):
    """The topic's partition 0 as node n alone describes it."""
    return cluster.metadata_of(n, TOPIC).topics[TOPIC].partitions[0]


def leader_of(cluster, via) -> int | None:
    """The partition's leader as the given nodes see it (None unless they agree on one)."""
    return cluster.leader_seen_by(via, TOPIC)


def isr(cluster, via) -> list[int]:
    return sorted(metadata(cluster, via).isrs)


def wait_isr(cluster, via, expected, timeout_s=30):
    cluster.wait_for(lambda: isr(cluster, via) == sorted(expected), timeout_s, f"ISR {sorted(expected)}")


def producer(bootstrap, **config):
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "retries": 0,
                     "message.timeout.ms": 8000, **config})


def send(p, values) -> dict[bytes, object]:
    """Produce and wait: value -> offset, or the error's name."""
    out = {}
    for v in values:
        p.produce(TOPIC, v, partition=0,
                  on_delivery=lambda err, m: out.__setitem__(m.value(), err.name() if err else m.offset()))
    p.flush(30)
    return out


def latencies(p, n=8) -> list[float]:
    """Seconds each of n produces, one at a time, takes to be acknowledged."""
    out = []
    for i in range(n):
        t = time.monotonic()
        result = send(p, [b"lat-%d-%f" % (i, t)])
        assert all(isinstance(r, int) for r in result.values()), result
        out.append(time.monotonic() - t)
    return out


def read_all(bootstrap, idle_s=3.0, timeout_s=30) -> list[bytes]:
    """Every value of the partition: up to its high watermark as it is when the read starts
    (a new leader answers OFFSET_NOT_AVAILABLE until it covers every committed record), or
    until idle_s pass without one (no high watermark given)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "drain", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    try:
        _, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=5)
    except KafkaException:
        high = None
    out, idle, deadline = [], time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() - idle < idle_s and time.monotonic() < deadline:
        if high is not None and (high == 0 or c.position([TopicPartition(TOPIC, 0)])[0].offset >= high):
            break
        m = c.poll(0.3)
        if m is not None and m.error() is None:
            out.append(m.value())
            idle = time.monotonic()
    c.close()
    return out


def connects(address: str, timeout_s: float = 1.5) -> bool:
    try:
        socket.create_connection((address, 9092), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def replicas_agree(cluster):
    """Stop everything; the three logs hold the same batches (offset ranges and CRCs)."""
    cluster.stop_all()
    logs = {n: log_batches(b.data_dir, TOPIC, 0) for n, b in cluster.nodes.items()}
    assert logs[1] == logs[2] == logs[3], logs
    return logs[1]


# -- network --------------------------------------------------------------------------------

def test_partitioned_leader_is_replaced_and_acknowledges_nothing(nemesis):
    """The active controller, also the partition leader, is cut off from the other nodes
    but not from the clients. It keeps taking writes it can never commit: none is
    acknowledged. The majority elects a controller, keeps its brokers (their heartbeats
    stuck on the old controller must not outlast their session) and a partition leader
    that acknowledges; after healing the old leader drops its uncommitted tail."""
    c = nemesis.cluster
    old = start(nemesis, leader="controller")
    assert all(isinstance(r, int) for r in send(producer(c.bootstrap), [b"before-%d" % i for i in range(20)]).values())
    majority = [n for n in c.nodes if n != old]
    nemesis.partition({old}, set(majority))  # the clients still reach every node
    zombie = producer(c.nodes[old].bootstrap, **{"message.timeout.ms": 6000})
    zombie_results = send(zombie, [b"zombie-%d" % i for i in range(5)])
    assert all(not isinstance(r, int) for r in zombie_results.values()), zombie_results
    new = c.wait_for(lambda: leader_of(c, via=majority), 30, "a leader among the majority")
    assert new != old
    acked = send(producer(",".join(c.nodes[n].bootstrap for n in majority)), [b"after-%d" % i for i in range(20)])
    assert all(isinstance(r, int) for r in acked.values()), acked
    fenced = {int(m) for n in majority for m in re.findall(r"event='broker_fenced' node_id=(\d+)",
                                                            "".join(c.nodes[n].log_lines))}
    assert fenced == {old}, f"the new controller fenced live brokers: {sorted(fenced)}"
    nemesis.heal()
    wait_isr(c, new, c.nodes, timeout_s=40)
    values = read_all(c.bootstrap)
    assert [v for v in values if not v.startswith(b"zombie")] == \
        [b"before-%d" % i for i in range(20)] + [b"after-%d" % i for i in range(20)]
    assert not any(v.startswith(b"zombie") for v in values)
    assert "follower_truncate" in "".join(c.nodes[old].log_lines)
    replicas_agree(c)


def coordinator(address: str, group: str, other_than: int | None = None) -> tuple[int, str]:
    """The group's coordinator (node id, address) as the node at ``address`` names it, once
    it has loaded the group (and is not ``other_than``)."""
    def loaded():
        with RawConnection(address) as conn:
            found = find_coordinator(conn, group)
        if found.error_code or found.node_id == other_than:
            return None
        named = f"{found.host}:{found.port}"
        with RawConnection(named) as conn:
            return (found.node_id, named) if fetch_offset(conn, group, TOPIC)[0] == 0 else None
    return poll_until(loaded, 30) or pytest.fail(f"no coordinator for {group} via {address}")


def test_coordinator_cut_off_from_the_controller_lets_go_of_its_groups(nemesis):
    """A coordinator cut off from the other nodes, not from the clients, is fenced and
    its partitions led elsewhere after broker.session.timeout.ms; by then its lease has
    lapsed: it answers NOT_COORDINATOR, not the committed offset of its stale state (the
    group has committed a later one at the new coordinator). After healing the committed
    offset is the later one."""
    c = nemesis.cluster
    c.start()
    c.wait_formed()
    create_topics(c.bootstrap, [TOPIC], 1, 3)
    group = "lease"
    victim, victim_address = coordinator(c.nodes[1].bootstrap, group)
    with RawConnection(victim_address) as conn:
        assert commit(conn, group, TOPIC, 3) == ErrorCode.NONE
    majority = [n for n in c.nodes if n != victim]
    nemesis.partition({victim}, set(majority))
    _, new_address = coordinator(c.nodes[majority[0]].bootstrap, group, other_than=victim)
    with RawConnection(new_address) as conn:
        assert commit(conn, group, TOPIC, 5) == ErrorCode.NONE
    with RawConnection(victim_address) as conn:
        assert fetch_offset(conn, group, TOPIC)[:2] == (ErrorCode.NOT_COORDINATOR, -1)
    nemesis.heal()
    wait_isr(c, majority[0], c.nodes, timeout_s=40)
    _, address = coordinator(victim_address, group)
    with RawConnection(address) as conn:
        assert fetch_offset(conn, group, TOPIC)[:2] == (ErrorCode.NONE, 5)


def test_one_way_cuts(nemesis):
    """cut(follower, leader): the follower's fetches never arrive, so the leader drops it from
    the ISR while writes go on; cut(CLIENTS, n) and cut(n, CLIENTS) block the clients' link
    to n only, each on its own; healing restores both."""
    c = nemesis.cluster
    leader = start(nemesis)
    controller = c.active_controller(leader)
    # Not the controller: one whose responses cannot reach the leader is, for TCP, cut off
    # both ways, and the leader would lose its controller too.
    follower = min(n for n in c.nodes if n not in (leader, controller))
    nemesis.cut(follower, leader)
    wait_isr(c, leader, [n for n in c.nodes if n != follower], timeout_s=30)
    assert all(isinstance(r, int) for r in send(producer(c.bootstrap), [b"x-%d" % i for i in range(10)]).values())
    nemesis.heal()
    wait_isr(c, leader, c.nodes, timeout_s=30)

    for cut in ((CLIENTS, follower), (follower, CLIENTS)):
        nemesis.cut(*cut)
        assert not connects(c.nodes[follower].bootstrap.split(":")[0]), cut
        assert connects(c.nodes[leader].bootstrap.split(":")[0])
        nemesis.heal()
        assert connects(c.nodes[follower].bootstrap.split(":")[0])
    assert isr(c, leader) == sorted(c.nodes)  # node-to-node links were never touched


def test_delay_slows_acknowledgements(nemesis):
    """Delayed follower -> leader links hold back the high watermark, so acks=all waits
    for them; a delayed client -> leader link slows acks=1 by its delay."""
    c = nemesis.cluster
    leader = start(nemesis)
    p_all, p_one = producer(c.bootstrap), producer(c.bootstrap, acks="1")
    before = statistics.median(latencies(p_all))
    for n in c.nodes:
        if n != leader:
            nemesis.delay(n, leader, 300, jitter_ms=20)
    slowed = statistics.median(latencies(p_all))
    assert before < 0.15 and slowed >= 0.28, (before, slowed)
    nemesis.heal()
    nemesis.delay(CLIENTS, leader, 200)
    one = statistics.median(latencies(p_one))
    assert one >= 0.19, one
    nemesis.heal()
    healed = statistics.median(latencies(p_all))
    assert healed < 0.15, healed


def test_drop_loses_packets_that_tcp_resends(nemesis):
    """A third of the packets between the clients and the leader are dropped both ways:
    the rules really discard packets, and every produce still gets through."""
    c = nemesis.cluster
    leader = start(nemesis)
    nemesis.drop(CLIENTS, leader, 0.3)
    nemesis.drop(leader, CLIENTS, 0.3)
    p = producer(c.bootstrap, acks="1", retries=5, **{"message.timeout.ms": 60000})
    results = {}
    for i in range(10):
        results.update(send(p, [b"d-%d-%d" % (i, j) for j in range(10)]))
    assert all(isinstance(r, int) for r in results.values()), results
    assert c.network.dropped_packets(CLIENTS, leader) > 0
    assert c.network.dropped_packets(leader, CLIENTS) > 0
    nemesis.heal()
    assert c.network.dropped_packets(CLIENTS, leader) == 0  # the rules are gone
    assert sorted(read_all(c.bootstrap)) == sorted(results)


# -- processes --------------------------------------------------------------------------------

def test_process_faults(nemesis):
    """pause/resume (SIGSTOP/SIGCONT), a clean stop, restart_all, kill_all and heal_all."""
    c = nemesis.cluster
    leader = start(nemesis)
    follower = min(n for n in c.nodes if n != leader)
    nemesis.pause(follower)
    wait_isr(c, leader, [n for n in c.nodes if n != follower], timeout_s=30)
    nemesis.resume(follower)
    wait_isr(c, leader, c.nodes, timeout_s=30)
    assert nemesis.stop(leader) == 0
    others = [n for n in c.nodes if n != leader]
    assert c.wait_for(lambda: leader_of(c, via=others), 20, "a new leader") in others
    acked = send(producer(c.live_bootstrap), [b"p-%d" % i for i in range(10)])
    assert all(isinstance(r, int) for r in acked.values()), acked
    nemesis.restart_all()  # the stopped leader
    nemesis.kill_all()
    assert c.live() == []
    nemesis.heal_all()  # restarts every dead node
    c.wait_formed()
    assert sorted(read_all(c.bootstrap)) == sorted(acked)


# -- disks ------------------------------------------------------------------------------------

def test_torn_tail_flipped_byte_and_lost_index_are_repaired(nemesis):
    """Both followers are killed; one gets a torn last batch, the other a flipped byte in
    its last batch and no indexes. On restart each cuts its log at the bad batch and
    fetches the rest again from the leader, so all three replicas end up equal."""
    c = nemesis.cluster
    leader = start(nemesis)
    p = producer(c.bootstrap)
    values = [b"v-%d" % i for i in range(30)]
    assert all(isinstance(r, int) for r in send(p, values).values())  # one batch each
    wait_isr(c, leader, c.nodes)
    time.sleep(1)  # the followers fetch up to the leader's log end
    torn, flipped = sorted(n for n in c.nodes if n != leader)
    nemesis.kill(torn)
    nemesis.kill(flipped)
    before = log_batches(c.nodes[leader].data_dir, TOPIC, 0)
    assert log_batches(c.nodes[torn].data_dir, TOPIC, 0) == before
    nemesis.torn_tail(torn, TOPIC, 0)
    nemesis.flip_byte(flipped, TOPIC, 0)
    assert nemesis.delete_index(flipped, TOPIC, 0)
    assert len(log_batches(c.nodes[torn].data_dir, TOPIC, 0)) == len(before) - 1
    nemesis.restart(torn)
    nemesis.restart(flipped)
    wait_isr(c, leader, c.nodes, timeout_s=30)
    for n in (torn, flipped):
        assert "segment_recovery_truncated" in "".join(c.nodes[n].log_lines), n
    # (the ISR may never have shrunk: the followers came back within replica.lag.time.max,
    # so it says nothing of their fetching; wait until their logs hold the leader's again)
    c.wait_for(lambda: all(log_batches(c.nodes[n].data_dir, TOPIC, 0) == before for n in (torn, flipped)),
               30, "the followers to fetch the cut batches again")
    assert replicas_agree(c) == before
    c.start()
    c.wait_formed()
    assert read_all(c.bootstrap) == values


def test_fill_disk_refuses_appends_and_serves_reads(nemesis):
    """The fault hook's ENOSPC: produces get KAFKA_STORAGE_ERROR, consumers still read;
    free_disk and writes work again."""
    _disk_full(nemesis)


def test_fill_disk_on_a_real_full_tmpfs(tmp_path):
    """Same, with a tmpfs data dir really filled up: every write of the node fails."""
    nem = _open(tmp_path, tmpfs_mb=32)
    try:
        _disk_full(nem)
    finally:
        _close(nem)


def _disk_full(nem):
    c = nem.cluster
    leader = start(nem)
    big = b"x" * 20000  # more than the free part of the segment's last page
    assert all(isinstance(r, int) for r in send(producer(c.bootstrap), [b"a", b"b"]).values())
    nem.fill_disk(leader)
    time.sleep(0.3)  # the broker polls the fault file every 100 ms
    full = send(producer(c.nodes[leader].bootstrap, acks="1"), [big, big])
    assert set(full.values()) == {"KAFKA_STORAGE_ERROR"}, full
    assert read_all(c.nodes[leader].bootstrap, idle_s=2) == [b"a", b"b"]
    nem.free_disk(leader)
    time.sleep(0.3)
    assert all(isinstance(r, int) for r in send(producer(c.bootstrap), [b"c", big]).values())
    assert read_all(c.bootstrap, idle_s=2) == [b"a", b"b", b"c", big]
    assert sorted(c.live()) == sorted(c.nodes)


def test_slow_fsync_slows_acks(nemesis):
    """With flush.messages=1 an append is acknowledged after its fsync, with acks=1 as with
    acks=all (Kafka fsyncs inside the append): a slow fsync on the leader shows in both."""
    c = nemesis.cluster
    leader = start(nemesis, config={"flush.messages": "1"})
    p_one, p_all = producer(c.bootstrap, acks="1"), producer(c.bootstrap)
    before = [statistics.median(latencies(p, 4)) for p in (p_one, p_all)]
    nemesis.slow_fsync(leader, 0.4)
    time.sleep(0.3)  # the broker polls the fault file every 100 ms
    slowed = [statistics.median(latencies(p, 4)) for p in (p_one, p_all)]
    nemesis.normal_fsync(leader)
    time.sleep(0.3)
    after = [statistics.median(latencies(p, 4)) for p in (p_one, p_all)]
    assert max(before) < 0.2 and min(slowed) >= 0.4 and max(after) < 0.2, (before, slowed, after)


def test_stale_networks_of_dead_owners_are_removed(tmp_path):
    """A network whose owner died without closing it is removed by the next one."""
    _require_netns()
    import subprocess
    import sys
    code = ("from tests.reliability.nemesis import Network; import os; n = Network(2); "
            "print(n.slot, flush=True); os._exit(0)")  # no close, no atexit
    slot = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__)))).stdout)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"odradek-nemesis-{slot}-1" in names
    remove_stale()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"odradek-nemesis-{slot}-" not in names

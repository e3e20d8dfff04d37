"""Transactions on three nodes (127.0.0.N): markers written by remote partition leaders
(WriteTxnMarkers between nodes), and the transaction coordinator moving with the
leadership of its ``__transaction_state`` partition when its node is killed mid-commit:
the transaction completes or aborts, the same on every partition."""

import contextlib
import threading
import time

import pytest
from confluent_kafka import KafkaException, Producer
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from tests.clients import confluent_values, create_topics
from tests.local_cluster import Cluster
from tests.rawclient import RawConnection

OVERRIDES = {"transaction.state.log.num.partitions": "3", "offsets.topic.num.partitions": "3"}


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, overrides=OVERRIDES)
    yield c
    c.stop_all()
    for n in c.nodes:
        print(f"--- node {n} ---\n" + "".join(c.logs[n][-200:]))


def committed_values(bootstrap: str, topic: str, partitions: int, expect: int) -> list[bytes]:
    return sorted(confluent_values(bootstrap, topic, "read_committed", expect, partitions, timeout_s=30,
                                   settle_s=2))


def transaction_coordinator(bootstrap: str, tid: str) -> int:
    with RawConnection(bootstrap.split(",")[0]) as conn:
        deadline = time.time() + 30
        while True:
            r = conn.roundtrip(FindCoordinatorRequest(key=tid, key_type=1), 3, FindCoordinatorResponse)
            if r.error_code == 0:
                return r.node_id
            assert time.time() < deadline, r
            time.sleep(0.3)


def test_transactions_across_leaders_and_a_coordinator_failover(cluster):
    cluster.start()
    cluster.wait_formed()
    create_topics(cluster.live_bootstrap, ["tx3"], 3, 3)
    tid = "three-node-tx"
    p = Producer({"bootstrap.servers": cluster.live_bootstrap, "transactional.id": tid})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(6):  # three partitions, led by different nodes: remote markers
        p.produce("tx3", b"c%d" % i, partition=i % 3)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(3):
        p.produce("tx3", b"a%d" % i, partition=i % 3)
    p.flush(10)
    p.abort_transaction(30)
    assert committed_values(cluster.live_bootstrap, "tx3", 3, 6) == sorted(b"c%d" % i for i in range(6))

    # a transaction on three partitions whose coordinator dies mid-commit: the EndTxn is
    # on its way (the Prepare record and the markers may be written in part, or not yet)
    p.begin_transaction()
    for i in range(3):
        p.produce("tx3", b"open%d" % i, partition=i % 3)
    p.flush(10)
    coordinator = transaction_coordinator(cluster.live_bootstrap, tid)
    def commit() -> None:
        with contextlib.suppress(KafkaException):  # it may fail or succeed: both are fine
            p.commit_transaction(20)
    committing = threading.Thread(target=commit, daemon=True)
    committing.start()
    time.sleep(0.05)
    cluster.kill(coordinator)
    # a new producer with the id finds the new coordinator, which loaded the state and
    # completes the transaction (PrepareCommit found: its markers written again) or aborts
    # it (still Ongoing) before it answers
    q = Producer({"bootstrap.servers": cluster.live_bootstrap, "transactional.id": tid})
    q.init_transactions(60)
    q.begin_transaction()
    for i in range(3):
        q.produce("tx3", b"n%d" % i, partition=i % 3)
    q.commit_transaction(60)
    expected = sorted([b"c%d" % i for i in range(6)] + [b"n%d" % i for i in range(3)])
    got = committed_values(cluster.live_bootstrap, "tx3", 3, 9)
    opened = sorted(v for v in got if v.startswith(b"open"))
    assert opened in ([], [b"open0", b"open1", b"open2"]), got  # every partition agrees
    assert sorted(v for v in got if not v.startswith(b"open")) == expected
    assert transaction_coordinator(cluster.live_bootstrap, tid) != coordinator
    committing.join(30)


def test_a_leader_asks_a_remote_coordinator_before_a_transactional_write(cluster):
    """KIP-890 part 1 across nodes: the partition leader verifies with the transaction's
    coordinator on another node (AddPartitionsToTxn verify_only) that the partition was
    added; a write to one that was not is refused and nothing is written. Part 2 (Produce
    v12): the leader adds the partition there itself (AddPartitionsToTxn v5 without
    verify_only), and after EndTxn v5's epoch bump a late write of the ended transaction
    is refused by the coordinator."""
    from kafka.protocol.producer import ProduceResponse

    from odradek.protocol.errors import ErrorCode
    from tests.integration.test_transactions import (
        _add,
        _end_v5,
        _init,
        _produce_v12,
        _txn_batch,
        txn_produce,
    )
    cluster.start()
    cluster.wait_formed()
    create_topics(cluster.live_bootstrap, ["v3"], 3, 3)
    tid = "raw-tx"
    coordinator = transaction_coordinator(cluster.live_bootstrap, tid)
    leaders = {p.id: p.leader for p in cluster.admin().list_topics(timeout=10).topics["v3"].partitions.values()}
    index = next(i for i, leader in leaders.items() if leader != coordinator)
    with RawConnection(cluster.nodes[coordinator].bootstrap) as conn:
        init = _init(conn, tid)
        pid, epoch = init.producer_id, init.producer_epoch
        with RawConnection(cluster.nodes[leaders[index]].bootstrap) as leader:
            resp = leader.roundtrip(txn_produce("v3", index, _txn_batch(pid, epoch, 0, b"x"), tid), 9, ProduceResponse)
            assert resp.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_TXN_STATE
            assert _add(conn, tid, pid, epoch, "v3", [index]) == {("v3", index): 0}
            resp = leader.roundtrip(txn_produce("v3", index, _txn_batch(pid, epoch, 0, b"in"), tid), 9,
                                    ProduceResponse)
            assert resp.responses[0].partition_responses[0].error_code == 0
            assert resp.responses[0].partition_responses[0].base_offset == 0
            assert _end_v5(conn, tid, pid, epoch, True) == (0, pid, epoch + 1)  # markers at epoch+1
            # transactions v2: the next transaction's first write, and the leader adds the
            # partition at the remote coordinator; the ended transaction's epoch is refused
            assert _produce_v12(leader, tid, "v3", index, pid, epoch + 1, 0, b"v2") == 0
            assert _produce_v12(leader, tid, "v3", index, pid, epoch, 1, b"late") == \
                ErrorCode.INVALID_PRODUCER_EPOCH
            assert _end_v5(conn, tid, pid, epoch + 1, True) == (0, pid, epoch + 2)
    assert committed_values(cluster.live_bootstrap, "v3", 3, 2) == [b"in", b"v2"]

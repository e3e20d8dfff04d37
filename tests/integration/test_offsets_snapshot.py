"""The __consumer_offsets snapshot keeps the log bounded even when commits outrun it
(broker/groups/coordinator.py, ``_snapshot``)."""

import threading
import time

from kafka.protocol.consumer.group import OffsetCommitRequest, OffsetCommitResponse
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from tests.clients import create_topics
from tests.rawclient import RawConnection
from tests.threaded_broker import ThreadedBroker

C = OffsetCommitRequest
CHECKPOINT_DELAY_S = 0.5


def commit_round(conn, round_: int) -> None:
    """One commit of 20 partitions: 20 records on the group's offsets partition."""
    resp = conn.roundtrip(C(group_id="snap", generation_id_or_member_epoch=-1, member_id="",
                            group_instance_id=None, topics=[C.OffsetCommitRequestTopic(name="t", partitions=[
                                C.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                                    partition_index=p, committed_offset=round_ * 100 + p,
                                    committed_leader_epoch=-1, committed_metadata="")
                                for p in range(20)])]), 8, OffsetCommitResponse)
    assert {p.error_code for p in resp.topics[0].partitions} == {0}


def test_commits_made_while_a_snapshot_runs_are_snapshotted_without_another_commit(tmp_path):
    """A snapshot is considered after each commit, but not while one runs. When commits
    outran it (its log-start checkpoint is slow here, as on a busy disk) and then stopped,
    the log kept everything since: tests/integration/test_groups.py's snapshot test failed
    about one run in ten with (log start, end) = (1020, 3020)."""
    broker = ThreadedBroker(tmp_path / "data", {"offsets.topic.num.partitions": "1",
                                                "group.initial.rebalance.delay.ms": "0"}).start()
    try:
        manager = broker.broker.replicas.log_manager
        checkpoint = manager.checkpoint

        def slow_checkpoint():
            if threading.current_thread() is not broker._thread:  # never stall the loop
                time.sleep(CHECKPOINT_DELAY_S)
            checkpoint()
        manager.checkpoint = slow_checkpoint
        create_topics(broker.bootstrap, ["t"], 20)
        with RawConnection(broker.bootstrap) as conn:
            deadline = time.monotonic() + 20
            while True:
                try:  # FindCoordinator creates __consumer_offsets
                    conn.roundtrip(FindCoordinatorRequest(key="snap", key_type=0), 3, FindCoordinatorResponse)
                    commit_round(conn, 0)
                    break
                except AssertionError:  # the coordinator is still coming up
                    assert time.monotonic() < deadline, "no coordinator"
                    time.sleep(0.1)
            for round_ in range(1, 110):  # 2200 records: one snapshot starts at 1020
                commit_round(conn, round_)
        log_ = broker.broker.replicas.partitions[("__consumer_offsets", 0)].log
        deadline = time.monotonic() + 10
        while log_.log_end_offset - log_.log_start_offset > 1100 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log_.log_end_offset - log_.log_start_offset <= 1100, \
            (log_.log_start_offset, log_.log_end_offset)
    finally:
        broker.stop()

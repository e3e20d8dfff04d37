"""Supervised background tasks (replication.tasks), and the ISR change that relies on them."""

import asyncio

from structlog.testing import capture_logs

from odradek.broker.config import BrokerConfig
from odradek.broker.replica_manager import Partition, ReplicaManager
from odradek.replication.metadata import MetadataImage, PartitionState
from odradek.replication.partition import ReplicatedPartition
from odradek.replication.tasks import Supervisor
from odradek.storage.producer_state import ProducerStateManager


async def test_a_failing_task_is_logged_and_retried_until_it_succeeds():
    supervisor = Supervisor("test", initial_backoff_s=0.001)
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"surprise {len(calls)}")
        return "done"

    with capture_logs() as logs:
        result = await supervisor.spawn("flaky", flaky)
    assert result == "done" and len(calls) == 3
    failures = [e for e in logs if e["event"] == "background_task_failed"]
    assert [(e["task"], e["attempt"]) for e in failures] == [("flaky", 1), ("flaky", 2)]
    assert all(e["log_level"] == "error" and e.get("exc_info") for e in failures)
    assert not supervisor.tasks  # released once done


async def test_retries_are_bounded_when_asked_and_backoff_doubles():
    supervisor = Supervisor("test", initial_backoff_s=0.001, max_backoff_s=0.004)
    calls = []

    async def broken():
        calls.append(asyncio.get_running_loop().time())
        raise OSError("no")

    with capture_logs() as logs:
        assert await supervisor.spawn("broken", broken, retries=3) is None
    assert len(calls) == 4
    assert [e["retry_in_s"] for e in logs] == [0.001, 0.002, 0.004, None]


async def test_tasks_are_held_and_close_cancels_them():
    supervisor = Supervisor("test")
    started = asyncio.Event()

    async def forever():
        started.set()
        await asyncio.sleep(3600)

    task = supervisor.spawn("forever", forever)
    await started.wait()
    assert supervisor.tasks == {task}
    await supervisor.close()
    assert task.cancelled() and not supervisor.tasks


class FlakyController:
    """AlterPartition that fails once with an unexpected error, then commits."""

    def __init__(self):
        self.calls = []

    async def alter_partition(self, topic_id, partition, leader_id, leader_epoch,
                              partition_epoch, isr):
        self.calls.append(list(isr))
        if len(self.calls) == 1:
            raise ConnectionResetError("controller connection dropped")
        return partition_epoch + 1


async def test_an_isr_change_that_dies_is_retried(tmp_path):
    """Before supervision the dead task left the change pending for ever: the leader
    proposed no other ISR change for the partition until its leadership moved."""
    controller = FlakyController()
    rm = ReplicaManager(BrokerConfig({}), MetadataImage(), 1, str(tmp_path), controller=controller)
    rm.tasks.initial_backoff_s = 0.01
    log_ = rm.log_manager.get_or_create_log("t", 0)
    replication = ReplicatedPartition(1, lag_time_max_ms=10)
    replication.on_metadata(PartitionState("tid", 0, [1, 2], [1, 2], leader=1, leader_epoch=0,
                                           partition_epoch=0), 0, 0, rm.clock_ms())
    state = replication.isr_state
    assert state is not None
    rm.partitions[("t", 0)] = Partition("t", 0, log_, ProducerStateManager(log_.dir), replication,
                                        topic_id="tid")
    rm.tasks.spawn("maintain_isr", rm._maintain_isr)
    try:
        async with asyncio.timeout(5):
            while state.isr != [1]:  # follower 2 never fetches: the leader shrinks the ISR
                await asyncio.sleep(0.02)
    finally:
        await rm.close()
    assert controller.calls == [[1], [1]]
    assert state.partition_epoch == 1 and state.pending_isr is None

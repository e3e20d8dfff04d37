"""Consumer groups against a real broker with real clients.

Each group consumer runs in its own process (``python -m tests.integration.test_groups worker ...``)
so one can be SIGKILLed (no LeaveGroup). A worker logs, line by line, its assignment
(``A p,p``), every record it got (``R p offset``) and every commit the broker
acknowledged (``C p offset``); the checks read those logs.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from odradek.protocol.errors import ErrorCode
from tests.brokerproc import ROOT
from tests.clients import create_topics, read_assigned
from tests.conftest import require_tool
from tests.rawclient import RawConnection

GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "5"}
SESSION = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 30000}
# A static member's session outlasts its restart (a new process that imports its client
# and joins), however slow a loaded machine makes that; Kafka's default is 45 s.
STATIC_SESSION = {**SESSION, "session_timeout_ms": 20000}


# -- the worker process --------------------------------------------------------------------

def _worker(client: str, bootstrap: str, group: str, topic: str, out_path: str,
            instance: str, assignor: str) -> None:
    out = open(out_path, "a", buffering=1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    last_assignment = [None]

    def assigned(partitions):
        partitions = sorted(partitions)
        if partitions != last_assignment[0]:
            last_assignment[0] = partitions
            out.write("A " + ",".join(map(str, partitions)) + "\n")

    def record(batch):  # [(partition, offset)]
        out.write("".join(f"R {p} {o}\n" for p, o in batch))

    def committed(offsets):  # {partition: offset}
        out.write("".join(f"C {p} {o}\n" for p, o in offsets.items()))

    if client == "kafka-python":
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.structs import OffsetAndMetadata
        kwargs = {"partition_assignment_strategy": [RangePartitionAssignor]} if assignor == "range" else {}
        c = KafkaConsumer(topic, group_id=group, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                          enable_auto_commit=False, max_poll_records=100,
                          group_instance_id=instance or None, **(STATIC_SESSION if instance else SESSION),
                          **kwargs)
        while not stop:
            batch = c.poll(300)
            assigned(tp.partition for tp in c.assignment())
            if not batch:
                continue
            record([(m.partition, m.offset) for ms in batch.values() for m in ms])
            offsets = {tp: OffsetAndMetadata(ms[-1].offset + 1, "", -1) for tp, ms in batch.items()}
            try:
                c.commit(offsets)
                committed({tp.partition: o.offset for tp, o in offsets.items()})
            except Exception as e:
                out.write(f"F {e!r}\n")
            time.sleep(0.05)
        c.close()
    elif client == "aiokafka":
        import asyncio

        from aiokafka import AIOKafkaConsumer

        async def run():
            c = AIOKafkaConsumer(topic, group_id=group, bootstrap_servers=bootstrap,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 max_poll_records=100, **SESSION)
            await c.start()
            while not stop:
                batch = await c.getmany(timeout_ms=300)
                assigned(tp.partition for tp in c.assignment())
                if not batch:
                    continue
                record([(m.partition, m.offset) for ms in batch.values() for m in ms])
                offsets = {tp: ms[-1].offset + 1 for tp, ms in batch.items()}
                try:
                    await c.commit(offsets)
                    committed({tp.partition: o for tp, o in offsets.items()})
                except Exception as e:
                    out.write(f"F {e!r}\n")
                await asyncio.sleep(0.05)
            await c.stop()
        asyncio.run(run())
    else:
        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as CkTopicPartition
        config = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 1000, "max.poll.interval.ms": 30000}
        if assignor == "range":
            config["partition.assignment.strategy"] = "range"
        if instance:
            config["group.instance.id"] = instance
        c = Consumer(config)
        c.subscribe([topic])
        while not stop:
            msgs = [m for m in c.consume(num_messages=100, timeout=0.3) if m.error() is None]
            assigned(tp.partition for tp in c.assignment())
            if not msgs:
                continue
            record([(m.partition(), m.offset()) for m in msgs])
            offsets = {}
            for m in msgs:
                offsets[m.partition()] = m.offset() + 1
            try:
                c.commit(offsets=[CkTopicPartition(topic, p, o) for p, o in offsets.items()],
                         asynchronous=False)
                committed(offsets)
            except Exception as e:
                out.write(f"F {e!r}\n")
            time.sleep(0.05)
        c.close()
    out.write("X\n")


class Worker:
    def __init__(self, tmp_path, name: str, client: str, bootstrap: str, group: str, topic: str,
                 instance: str = "", assignor: str = ""):
        self.path = str(tmp_path / f"{name}.log")
        self.args = [sys.executable, "-m", "tests.integration.test_groups", "worker", client, bootstrap, group,
                     topic, self.path, instance, assignor]
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stderr=open(self.path + ".err", "w"))

    def lines(self) -> list[str]:
        with open(self.path) if os.path.exists(self.path) else open(os.devnull) as f:
            return [line.rstrip("\n") for line in f if line.endswith("\n")]

    def assignment(self) -> list[int] | None:
        found = None
        for line in self.lines():
            if line.startswith("A "):
                found = [int(p) for p in line[2:].split(",") if p]
        return found

    def records(self) -> list[tuple[int, int]]:
        return [tuple(map(int, line.split()[1:])) for line in self.lines() if line.startswith("R ")]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, open(self.path + ".err").read()[-3000:]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def wait_for(predicate, timeout: float, what: str, step: float = 0.2, workers=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    details = "".join(f"\n--- {w.path}: " + " | ".join(line for line in w.lines() if line[0] != "R")[-1500:]
                      + "\n" + open(w.path + ".err").read()[-1500:] for w in workers)
    raise AssertionError(f"timed out waiting for {what}{details}")


def all_assigned(workers, partitions: int) -> bool:
    got = [w.assignment() for w in workers]
    return all(got) and sorted(p for a in got for p in a) == list(range(partitions))


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for i in range(per_partition):
        for part in range(partitions):
            p.produce(topic, value=f"{part}-{i}".encode(), partition=part)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def check_delivery(workers, partitions: int, per_partition: int) -> None:
    """Every record at least once; a record consumed twice was never committed past by
    an earlier consumer of it (it lay above the last commit of one that died or lost it)."""
    events: dict[tuple[int, int], list[bool]] = {}
    for w in workers:
        lines = w.lines()
        best: dict[int, int] = {}  # partition -> highest commit later in this worker's log
        for line in reversed(lines):
            kind, *rest = line.split(" ", 2)
            if kind == "C":
                p, o = int(rest[0]), int(rest[1])
                best[p] = max(best.get(p, -1), o)
            elif kind == "R":
                p, o = int(rest[0]), int(rest[1])
                events.setdefault((p, o), []).append(best.get(p, -1) > o)
    expected = {(p, o) for p in range(partitions) for o in range(per_partition)}
    assert set(events) == expected, f"missing {len(expected - set(events))} records"
    bad = {k: v for k, v in events.items() if sum(v) > 1}
    assert not bad, f"consumed again after a commit past them: {sorted(bad)[:10]}"


# -- the tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("client", ["kafka-python", "aiokafka", "confluent-kafka"])
def test_three_members_close_kill_take_over(broker_factory, tmp_path, client):
    broker = broker_factory(overrides=GROUP_OVERRIDES)
    create_topics(broker.bootstrap, ["work"], 6)
    workers = [Worker(tmp_path, f"w{i}", client, broker.bootstrap, "g-" + client, "work")
               for i in range(3)]
    try:
        wait_for(lambda: all_assigned(workers, 6), 40, "three members sharing six partitions",
                 workers=workers)
        produce(broker.bootstrap, "work", 6, 5000)
        total = lambda: sum(len(w.records()) for w in workers)  # noqa: E731
        wait_for(lambda: total() >= 6000, 60, "consumption to start")
        workers[0].stop()  # a clean close: LeaveGroup
        wait_for(lambda: total() >= 12000, 60, "consumption after the close")
        workers[1].kill()  # no LeaveGroup: the session timeout must notice
        wait_for(lambda: workers[2].assignment() == list(range(6)), 40,
                 "the last member to own every partition", workers=workers)
        wait_for(lambda: len({r for w in workers for r in w.records()}) == 30000, 60,
                 "every record consumed", workers=workers)
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.stop()
    check_delivery(workers, 6, 5000)


def test_commit_restart_resume_every_client(broker_factory, tmp_path):
    broker = broker_factory(overrides=GROUP_OVERRIDES)
    create_topics(broker.bootstrap, ["resume"], 1)
    produce(broker.bootstrap, "resume", 1, 100)
    clients = ["kafka-python", "aiokafka", "confluent-kafka"]
    committed = {}
    for client in clients:
        w = Worker(tmp_path, f"first-{client}", client, broker.bootstrap, "r-" + client, "resume")
        wait_for(lambda w=w: any(line.startswith("C 0 ") for line in w.lines()), 40, "a commit",
                 workers=[w])
        w.stop()
        commits = [int(line.split()[2]) for line in w.lines() if line.startswith("C 0 ")]
        committed[client] = commits[-1]
    broker.restart()
    produce(broker.bootstrap, "resume", 1, 50)
    for client in clients:
        w = Worker(tmp_path, f"second-{client}", client, broker.bootstrap, "r-" + client, "resume")
        wait_for(lambda w=w, n=150 - committed[client]: len(w.records()) >= n, 40, "resumed consumption",
                 workers=[w])
        w.stop()
        assert min(o for _, o in w.records()) == committed[client], client


def test_mixed_clients_share_partitions_with_range(broker_factory, tmp_path):
    broker = broker_factory(overrides=GROUP_OVERRIDES)
    create_topics(broker.bootstrap, ["mixed"], 4)
    workers = [Worker(tmp_path, "kp", "kafka-python", broker.bootstrap, "mixed", "mixed", assignor="range"),
               Worker(tmp_path, "ck", "confluent-kafka", broker.bootstrap, "mixed", "mixed",
                      assignor="range")]
    try:
        wait_for(lambda: all_assigned(workers, 4), 40, "both clients to share the partitions")
        shared = [w.assignment() for w in workers]
        produce(broker.bootstrap, "mixed", 4, 100)
        wait_for(lambda: len({r for w in workers for r in w.records()}) == 400, 40, "all records")
    finally:
        for w in workers:
            w.stop()
    assert sorted(shared[0] + shared[1]) == [0, 1, 2, 3] and all(shared)
    assert all(w.records() for w in workers)  # both consumed their share


def test_static_member_restart_keeps_assignment(broker_factory, tmp_path):
    broker = broker_factory(overrides=GROUP_OVERRIDES)
    create_topics(broker.bootstrap, ["static"], 4)
    args = (broker.bootstrap, "static-g", "static")
    a = Worker(tmp_path, "a", "kafka-python", *args, instance="inst-a")
    b = Worker(tmp_path, "b1", "kafka-python", *args, instance="inst-b")
    try:
        wait_for(lambda: all_assigned([a, b], 4), 40, "two static members")
        time.sleep(1)
        before = describe(broker.bootstrap, "static-g")
        owned_by_a, owned_by_b = a.assignment(), b.assignment()
        a_changes = [line for line in a.lines() if line.startswith("A ")]
        b.kill()
        b = Worker(tmp_path, "b2", "kafka-python", *args, instance="inst-b")
        wait_for(lambda: b.assignment(), 20, "the restarted member's assignment")
        time.sleep(3)  # a rebalance, if one were coming, would show by now
        after = describe(broker.bootstrap, "static-g")
        assert b.assignment() == owned_by_b
        assert [line for line in a.lines() if line.startswith("A ")] == a_changes  # never revoked
        assert a.assignment() == owned_by_a
        assert after["generation"] == before["generation"]
        assert after["state"] == "Stable"
    finally:
        a.stop()
        b.stop()


class RawMember:
    """A group member speaking raw JoinGroup/SyncGroup/Heartbeat (v5, v3, v3) that follows a
    script, so a test can stop it exactly between its JoinGroup answer and its SyncGroup."""

    def __init__(self, bootstrap: str, group: str, topic: str, session_ms: int = 6000):
        self.conn = RawConnection(bootstrap, timeout=60)
        self.group, self.session_ms, self.member_id = group, session_ms, ""
        # ConsumerProtocolSubscription v0: version, topics [string], user_data (null)
        self.metadata = (b"\x00\x00\x00\x00\x00\x01" + len(topic).to_bytes(2, "big") + topic.encode()
                         + b"\xff\xff\xff\xff")

    def join(self):
        J = JoinGroupRequest
        while True:
            resp = self.conn.roundtrip(J(
                group_id=self.group, session_timeout_ms=self.session_ms, rebalance_timeout_ms=30000,
                member_id=self.member_id, group_instance_id=None, protocol_type="consumer",
                protocols=[J.JoinGroupRequestProtocol(name="range", metadata=self.metadata)]),
                5, JoinGroupResponse)
            self.member_id = resp.member_id
            if resp.error_code != ErrorCode.MEMBER_ID_REQUIRED:
                assert resp.error_code == 0, resp
                return resp

    def sync_nothing(self, joined) -> None:
        """As the leader: assign no partition to anyone (a valid, empty assignment each)."""
        S = SyncGroupRequest
        # ConsumerProtocolAssignment v0: version, assigned partitions [] , user_data (null)
        empty = b"\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"
        resp = self.conn.roundtrip(S(
            group_id=self.group, generation_id=joined.generation_id, member_id=self.member_id,
            group_instance_id=None, assignments=[S.SyncGroupRequestAssignment(
                member_id=m.member_id, assignment=empty) for m in joined.members]),
            3, SyncGroupResponse)
        assert resp.error_code == 0, resp

    def heartbeat(self, generation: int) -> int:
        return self.conn.roundtrip(HeartbeatRequest(
            group_id=self.group, generation_id=generation, member_id=self.member_id,
            group_instance_id=None), 3, HeartbeatResponse).error_code


def test_leader_dying_between_join_and_sync_lets_the_followers_rejoin(broker_factory, tmp_path):
    """Three kafka-python members and a raw leader that dies right after its JoinGroup
    answer (no SyncGroup, no LeaveGroup). The followers wait in SyncGroup without
    heartbeating; when the leader's session ends their SyncGroups get REBALANCE_IN_PROGRESS
    and they rejoin as the members they were, not expired with it (issue 22: all of them
    were removed together and consumed nothing for over 12 s)."""
    broker = broker_factory(overrides=GROUP_OVERRIDES)
    create_topics(broker.bootstrap, ["lead"], 6)
    with RawConnection(broker.bootstrap) as conn:
        wait_coordinator(conn, "lead-g")
    leader = RawMember(broker.bootstrap, "lead-g", "lead")
    joined = leader.join()  # alone: generation 1, the leader
    workers = []
    try:
        workers = [Worker(tmp_path, f"f{i}", "kafka-python", broker.bootstrap, "lead-g", "lead")
                   for i in range(3)]
        # Stay the leader through the rebalances the workers cause, one by one, until a
        # generation holds all four; then die before syncing it.
        while len(joined.members) < 4:
            assert joined.leader == leader.member_id
            leader.sync_nothing(joined)
            while leader.heartbeat(joined.generation_id) == 0:
                time.sleep(0.1)
            joined = leader.join()
        followers = {m.member_id for m in joined.members} - {leader.member_id}
        leader.conn.close()
        died = time.monotonic()
        # Bounded, not timed: the leader's 6 s session, a rejoin, a sync, a poll.
        wait_for(lambda: all_assigned(workers, 6), 25, "the followers to share the partitions",
                 workers=workers)
        took = time.monotonic() - died
        after = {m["member_id"] for m in describe_members(broker.bootstrap, "lead-g")}
        assert after == followers, "a follower was expired and had to join again as a new member"
    finally:
        for w in workers:
            w.stop()
    print(f"followers assigned {took:.1f} s after the leader died")


def describe_members(bootstrap: str, group: str) -> list[dict]:
    from kafka.protocol.admin.groups import DescribeGroupsRequest, DescribeGroupsResponse
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(DescribeGroupsRequest(groups=[group], include_authorized_operations=False),
                              5, DescribeGroupsResponse)
    return [{"member_id": m.member_id} for m in resp.groups[0].members]


def describe(bootstrap: str, group: str) -> dict:
    from kafka.protocol.admin.groups import DescribeGroupsRequest, DescribeGroupsResponse
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(DescribeGroupsRequest(groups=[group], include_authorized_operations=False),
                              5, DescribeGroupsResponse)
        g = resp.groups[0]
        generation = probe_generation(conn, group, g.members[0].member_id) if g.members else None
    return {"state": g.group_state, "members": len(g.members), "generation": generation}


def probe_generation(conn, group: str, member_id: str) -> int:
    """The group's generation: an OffsetFetch cannot tell, but an empty commit with each
    candidate generation can (ILLEGAL_GENERATION until it matches); no offset is written."""
    for generation in range(1, 50):
        resp = conn.roundtrip(OffsetCommitRequest(
            group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
            group_instance_id=None, topics=[OffsetCommitRequest.OffsetCommitRequestTopic(
                name="no-such-topic", partitions=[
                    OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                        partition_index=0, committed_offset=0, committed_leader_epoch=-1,
                        committed_metadata="")])]), 8, OffsetCommitResponse)
        code = resp.topics[0].partitions[0].error_code
        if code != ErrorCode.ILLEGAL_GENERATION:
            return generation
    raise AssertionError("no generation matched")


# -- raw requests -------------------------------------------------------------------------

def commit(conn, group, topic, offset, generation=-1, member="", metadata="", version=8, partition=0):
    C = OffsetCommitRequest
    req = C(group_id=group, generation_id_or_member_epoch=generation, member_id=member,
            group_instance_id=None, retention_time_ms=-1, topics=[C.OffsetCommitRequestTopic(
                name=topic, partitions=[C.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                    partition_index=partition, committed_offset=offset, committed_leader_epoch=3,
                    commit_timestamp=-1, committed_metadata=metadata)])])
    resp = conn.roundtrip(req, version, OffsetCommitResponse)
    return resp.topics[0].partitions[0].error_code


def fetch_offset(conn, group, topic, partition=0, version=7):
    F = OffsetFetchRequest
    resp = conn.roundtrip(F(group_id=group, topics=[F.OffsetFetchRequestTopic(
        name=topic, partition_indexes=[partition])], require_stable=False), version, OffsetFetchResponse)
    p = resp.topics[0].partitions[0]
    return resp.error_code, p.committed_offset, p.committed_leader_epoch, p.metadata


def find_coordinator(conn, group):
    resp = conn.roundtrip(FindCoordinatorRequest(key=group, key_type=0), 3, FindCoordinatorResponse)
    return resp


def wait_coordinator(conn, group):
    wait_for(lambda: find_coordinator(conn, group).error_code == 0, 20, "a coordinator")
    wait_for(lambda: fetch_offset(conn, group, "t")[0] == 0, 20, "the group to load")


def test_bad_commits_get_their_errors_and_write_nothing(broker_factory):
    broker = broker_factory(overrides={**GROUP_OVERRIDES, "offset.metadata.max.bytes": "10"})
    create_topics(broker.bootstrap, ["t"], 1)
    with RawConnection(broker.bootstrap) as conn:
        wait_coordinator(conn, "bad")
        # A simple consumer (generation -1, no member) may commit: the group is created.
        assert commit(conn, "bad", "t", 5, metadata="ok") == ErrorCode.NONE
        assert fetch_offset(conn, "bad", "t") == (0, 5, 3, "ok")
        assert commit(conn, "bad", "t", 6, generation=1, member="nobody") == ErrorCode.UNKNOWN_MEMBER_ID
        assert commit(conn, "bad", "t", 7, metadata="x" * 11) == ErrorCode.OFFSET_METADATA_TOO_LARGE
        assert commit(conn, "", "t", 8) == ErrorCode.INVALID_GROUP_ID
        assert commit(conn, "bad", "no-topic", 9) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        # A group that does not exist and a generation: ILLEGAL_GENERATION, GROUP_ID_NOT_FOUND at v9.
        wait_coordinator(conn, "ghost")
        assert commit(conn, "ghost", "t", 1, generation=4, member="m") == ErrorCode.ILLEGAL_GENERATION
        assert commit(conn, "ghost", "t", 1, generation=4, member="m", version=9) == \
            ErrorCode.GROUP_ID_NOT_FOUND
        assert fetch_offset(conn, "bad", "t") == (0, 5, 3, "ok")
        assert fetch_offset(conn, "ghost", "t") == (0, -1, -1, "")
        assert fetch_offset(conn, "", "t")[0] == ErrorCode.INVALID_GROUP_ID
        # v0-1 carry a group error on each partition.
        assert fetch_offset(conn, "", "t", version=1)[0] == 0
    # A stale generation, with a real member in a real group.
    c = KafkaConsumer("t", group_id="live", bootstrap_servers=broker.bootstrap, **SESSION)
    wait_for(lambda: c.poll(100) is not None and c.assignment(), 30, "an assignment")
    generation = c._coordinator._generation
    with RawConnection(broker.bootstrap) as conn:
        assert commit(conn, "live", "t", 3, generation=generation.generation_id + 1,
                      member=generation.member_id) == ErrorCode.ILLEGAL_GENERATION
        assert commit(conn, "live", "t", 3) == ErrorCode.UNKNOWN_MEMBER_ID  # the group is active
        assert fetch_offset(conn, "live", "t")[1] == -1
        assert commit(conn, "live", "t", 3, generation=generation.generation_id,
                      member=generation.member_id) == ErrorCode.NONE
        assert fetch_offset(conn, "live", "t")[1] == 3
    c.close()


def test_the_cleaner_compacts_consumer_offsets_and_groups_load_after_it(broker_factory):
    """__consumer_offsets is compacted by the log cleaner (small segments here): its log
    keeps the latest commit of each partition, and a restart loads the group from it."""
    broker = broker_factory(overrides={**GROUP_OVERRIDES, "offsets.topic.num.partitions": "1",
                                       "offsets.topic.segment.bytes": "8192",
                                       "log.cleaner.backoff.ms": "100"})
    create_topics(broker.bootstrap, ["t"], 20)
    C = OffsetCommitRequest
    with RawConnection(broker.bootstrap) as conn:
        wait_coordinator(conn, "snap")
        for round_ in range(150):  # 3000 records over 20 live keys
            req = C(group_id="snap", generation_id_or_member_epoch=-1, member_id="",
                    group_instance_id=None, topics=[C.OffsetCommitRequestTopic(name="t", partitions=[
                        C.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                            partition_index=p, committed_offset=round_ * 100 + p,
                            committed_leader_epoch=-1, committed_metadata=f"r{round_}")
                        for p in range(20)])])
            resp = conn.roundtrip(req, 8, OffsetCommitResponse)
            assert {p.error_code for p in resp.topics[0].partitions} == {0}

    def records_left() -> int:
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        consumer.assign([TopicPartition("__consumer_offsets", 0)])
        count = len(read_assigned(consumer, idle_ms=3000))
        consumer.close()
        return count

    wait_for(lambda: records_left() < 1000, 30, "the cleaner to compact __consumer_offsets")
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = TopicPartition("__consumer_offsets", 0)
    assert consumer.beginning_offsets([tp])[tp] == 0  # compacted, not truncated
    consumer.close()
    broker.restart()
    with RawConnection(broker.bootstrap) as conn:
        wait_coordinator(conn, "snap")
        for p in (0, 7, 19):
            assert fetch_offset(conn, "snap", "t", partition=p) == (0, 14900 + p, -1, "r149")


def test_kcat_balanced_consumer_and_admin(broker_factory, tmp_path):
    kcat = require_tool("kcat")
    broker = broker_factory(overrides=GROUP_OVERRIDES)
    create_topics(broker.bootstrap, ["kc"], 2)
    produce(broker.bootstrap, "kc", 2, 50)
    out = subprocess.run([kcat, "-b", broker.bootstrap, "-G", "kcat-g", "-c", "100", "-J",
                          "-X", "session.timeout.ms=6000", "-X", "auto.offset.reset=earliest",
                          "-X", "auto.commit.interval.ms=100", "kc"],
                         capture_output=True, text=True, timeout=60)
    consumed = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(consumed) == 100, out.stderr[-2000:]

    from confluent_kafka.admin import AdminClient
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    wait_for(lambda: [g for g in admin.list_groups() if g["group_id"] == "kcat-g"], 20, "the group")
    described = admin.describe_groups(["kcat-g"])["kcat-g"]
    assert described["group_state"] == "Empty" and described["protocol_type"] == "consumer"
    offsets = admin.list_group_offsets("kcat-g")["kcat-g"]
    assert sum(o.offset for o in offsets.values()) == 100
    ck = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = ck.list_consumer_groups().result(timeout=20)
    assert "kcat-g" in {g.group_id for g in listed.valid}
    [ck_described] = ck.describe_consumer_groups(["kcat-g"]).values()
    assert ck_described.result(timeout=20).group_id == "kcat-g"
    [deleted] = ck.delete_consumer_groups(["kcat-g"]).values()
    deleted.result(timeout=20)
    assert "kcat-g" not in {g.group_id for g in ck.list_consumer_groups().result(timeout=20).valid}
    admin.close()


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(*sys.argv[2:])

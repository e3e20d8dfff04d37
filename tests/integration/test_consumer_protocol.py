"""The consumer group protocol (KIP-848) with real clients over real sockets.

confluent-kafka members (group.protocol=consumer) run as processes
(kip848_member.py) so that one can leave (SIGTERM: close) and one can be killed
(SIGKILL); short session timeouts (group.consumer.session.timeout.ms) let the survivor
take over quickly. Slow-ish (about 30 s): 30,000 records consumed at a member's pace.
"""

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from kafka.protocol.admin import IncrementalAlterConfigsResponse
from kafka.protocol.admin.groups import (
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    ListGroupsRequest,
    ListGroupsResponse,
)
from kafka.protocol.consumer.group import OffsetCommitRequest, OffsetCommitResponse
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

from odradek.protocol.errors import ErrorCode
from odradek.protocol.messages import (
    ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
)
from tests.brokerproc import BrokerProcess
from tests.clients import create_topics
from tests.integration.test_groups import RawMember
from tests.rawclient import RawConnection, incremental_alter, recv_frame, until_coordinator

MEMBER = Path(__file__).with_name("kip848_member.py")
SESSION_MS = 3000
SHORT_TIMEOUTS = {
    "group.consumer.session.timeout.ms": str(SESSION_MS),
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "300",
    "group.consumer.min.heartbeat.interval.ms": "100",
    "offsets.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",  # the classic members' first join, in a rolling upgrade
}
RECORDS = 30_000
UPGRADE_RECORDS = 6_000  # the rolling upgrade's: its steps wait for rebalances, not for records
PARTITIONS = 6
H = ConsumerGroupHeartbeatRequest


@pytest.fixture(scope="module")
def cbroker(tmp_path_factory):
    """One broker for the module (each test its own topics and groups): a broker start per
    test cost make test about 20 s."""
    b = BrokerProcess(tmp_path_factory.mktemp("data"), overrides=SHORT_TIMEOUTS).start()
    yield b
    b.kill()
    print(f"--- broker {b.bootstrap} log (tail) ---\n" + b.log_text()[-6000:])


def _coordinator_conn(bootstrap):
    return RawConnection(bootstrap)  # one node: it coordinates every group


def _heartbeat(conn, version=1, **fields):
    fields.setdefault("group_id", "g-bad")
    return conn.roundtrip(H(**fields), version, ConsumerGroupHeartbeatResponse)


def _join(conn, group, member_id, topics, **extra):
    return _heartbeat(conn, group_id=group, member_id=member_id, member_epoch=0, rebalance_timeout_ms=5000,
                      subscribed_topic_names=topics, topic_partitions=[], **extra)


def _wait_for_assignment(conn, group, member_id, topics):
    """Join, then heartbeat until an assignment comes (the coordinator may be loading)."""
    return until_coordinator(conn, group, lambda: _join(conn, group, member_id, topics))


def test_api_versions_offers_the_consumer_group_protocol(cbroker):
    with RawConnection(cbroker.bootstrap) as conn:
        conn.send(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3)
        # ApiVersions answers always carry response header v0 (KIP-511): the correlation id only.
        r = ApiVersionsResponse.decode(recv_frame(conn.sock)[4:], version=3)
    keys = {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}
    assert keys[68] == (0, 1) and keys[69] == (0, 1)
    assert ("group.version", 1) in [(f.name, f.max_version_level) for f in r.finalized_features]
    assert ("group.version", 1) in [(f.name, f.max_version) for f in r.supported_features]


def test_bad_heartbeats_get_kafkas_errors(cbroker):
    create_topics(cbroker.bootstrap, ["t"], partitions=2)
    with _coordinator_conn(cbroker.bootstrap) as conn:
        first = _wait_for_assignment(conn, "g-bad", "m1", ["t"])
        assert first.member_epoch >= 1 and first.member_id == "m1"
        assert sorted(first.assignment.topic_partitions[0].partitions) == [0, 1]
        stale = _heartbeat(conn, group_id="g-bad", member_id="m1", member_epoch=first.member_epoch + 5)
        assert stale.error_code == ErrorCode.FENCED_MEMBER_EPOCH
        unknown = _heartbeat(conn, group_id="g-bad", member_id="nobody", member_epoch=3)
        assert unknown.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        assert unknown.error_message == "Member nobody is not a member of group g-bad."
        nosuch = _heartbeat(conn, group_id="g-nosuch", member_id="m9", member_epoch=5)
        assert (nosuch.error_code, nosuch.error_message) == (
            ErrorCode.GROUP_ID_NOT_FOUND, "Consumer group g-nosuch not found.")
        regex = _join(conn, "g-bad", "m2", None, subscribed_topic_regex="[a")
        assert regex.error_code == ErrorCode.INVALID_REGULAR_EXPRESSION == 128
        assert regex.error_message.startswith("SubscribedTopicRegex `[a` is not a valid regular expression")
        lookbehind = _join(conn, "g-bad", "m2", None, subscribed_topic_regex="(?<=x)t")  # not RE2
        assert lookbehind.error_code == ErrorCode.INVALID_REGULAR_EXPRESSION
        assignor = _join(conn, "g-bad", "m2", ["t"], server_assignor="sticky")
        assert assignor.error_code == ErrorCode.UNSUPPORTED_ASSIGNOR == 112
        assert assignor.error_message == "ServerAssignor sticky is not supported. Supported assignors: uniform, range."
        no_id = _join(conn, "g-bad", "", ["t"])
        assert (no_id.error_code, no_id.error_message) == (ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
        v0 = conn.roundtrip(H(group_id="g-bad", member_id="", member_epoch=0, rebalance_timeout_ms=5000,
                              subscribed_topic_names=["t"], topic_partitions=[]), 0,
                            ConsumerGroupHeartbeatResponse)
        assert v0.error_code == ErrorCode.NONE and v0.member_id  # v0: the coordinator names it
        # A commit with an old epoch is STALE_MEMBER_EPOCH; the current one is accepted.
        me = _heartbeat(conn, group_id="g-bad", member_id="m1", member_epoch=first.member_epoch,
                        topic_partitions=None)
        for epoch, code in ((me.member_epoch - 1, ErrorCode.STALE_MEMBER_EPOCH), (me.member_epoch, ErrorCode.NONE)):
            T = OffsetCommitRequest.OffsetCommitRequestTopic
            c = conn.roundtrip(OffsetCommitRequest(
                group_id="g-bad", generation_id_or_member_epoch=epoch, member_id="m1", group_instance_id=None,
                topics=[T(name="t", partitions=[T.OffsetCommitRequestPartition(
                    partition_index=0, committed_offset=0, committed_leader_epoch=-1, committed_metadata="")])]),
                9, OffsetCommitResponse)
            assert c.topics[0].partitions[0].error_code == code
        listed = conn.roundtrip(ListGroupsRequest(states_filter=[], types_filter=["consumer"]), 5,
                                ListGroupsResponse)
        assert [(g.group_id, g.group_type, g.protocol_type) for g in listed.groups] == [
            ("g-bad", "consumer", "consumer")]
        described = conn.roundtrip(DescribeGroupsRequest(groups=["g-bad"], include_authorized_operations=False),
                                   6, DescribeGroupsResponse).groups[0]
        assert (described.error_code, described.error_message) == (
            ErrorCode.GROUP_ID_NOT_FOUND, "Group g-bad is not a classic group.")
        cgd = conn.roundtrip(ConsumerGroupDescribeRequest(group_ids=["g-bad", "nope"],
                                                          include_authorized_operations=False),
                             1, ConsumerGroupDescribeResponse).groups
        assert cgd[0].error_code == ErrorCode.NONE and cgd[0].assignor_name == "uniform"
        assert {m.member_id for m in cgd[0].members} == {"m1", v0.member_id}
        assert (cgd[1].error_code, cgd[1].error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, "Group nope not found.")


def _produce(bootstrap, topic, records=RECORDS):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(records):
        p.produce(topic, str(i).encode(), partition=i % PARTITIONS)
    assert p.flush(30) == 0


def _start_member(bootstrap, group, topic, log, name, classic=False):
    return subprocess.Popen([sys.executable, str(MEMBER), bootstrap, group, topic, str(log), name]
                            + (["classic"] if classic else []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def _read(log):
    return [line.split() for line in Path(log).read_text().splitlines() if line]


def _consumed(log):
    return {(int(e[2]), int(e[3])) for e in _read(log) if e[0] == "rec"}


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _check_events(events, records=RECORDS) -> tuple[set[int], int]:
    """Check the members' log: no partition held by two members at once (their own
    callbacks, in the order they ran), nothing consumed by a member not holding it, every
    record consumed, a record consumed again only at or above the last commit of its
    partition. Returns (the partitions a killed member held, the duplicates)."""
    held: dict[int, str] = {}
    committed: dict[int, int] = {}
    seen: set[tuple[int, int]] = set()
    duplicates = 0
    orphaned: set[int] = set()
    for e in events:
        kind = e[0]
        if kind == "assign" and len(e) > 2:
            for p in map(int, e[2].split(",")):
                assert held.get(p, e[1]) == e[1], f"partition {p} given to {e[1]} while {held[p]} holds it"
                held[p] = e[1]
        elif kind == "revoke" and len(e) > 2:
            for p in map(int, e[2].split(",")):
                if held.get(p) == e[1]:
                    del held[p]
        elif kind == "killed":
            orphaned = {p for p, m in held.items() if m == e[1]}
            held = {p: m for p, m in held.items() if m != e[1]}
        elif kind == "commit":
            committed[int(e[2])] = max(committed.get(int(e[2]), 0), int(e[3]))
        elif kind == "rec":
            p, offset = int(e[2]), int(e[3])
            assert held.get(p) == e[1], f"{e[1]} consumed from {p}, held by {held.get(p)}"
            if (p, offset) in seen:
                duplicates += 1
                assert offset >= committed.get(p, 0), f"{p}@{offset} again below the commit {committed[p]}"
            seen.add((p, offset))
    assert seen == {(p, o) for p in range(PARTITIONS) for o in range(records // PARTITIONS)}
    return orphaned, duplicates


def test_three_members_one_leaves_one_is_killed(cbroker, tmp_path):
    """Every record is consumed at least once; a record is consumed again only at or above
    the last commit for its partition; no partition is ever held by two live members
    (their own assign/revoke callbacks, in the order they ran, say so)."""
    topic, group = f"t-{uuid.uuid4().hex[:6]}", "g-three"
    create_topics(cbroker.bootstrap, [topic], partitions=PARTITIONS)
    _produce(cbroker.bootstrap, topic)
    log = tmp_path / "events.log"
    log.touch()
    names = ["a", "b", "c"]
    procs = {n: _start_member(cbroker.bootstrap, group, topic, log, n) for n in names}
    try:
        _wait(lambda: len(_consumed(log)) >= RECORDS // 5, 60, "a fifth of the records")
        procs["a"].send_signal(signal.SIGTERM)  # leaves the group
        assert procs["a"].wait(20) == 0
        _wait(lambda: len(_consumed(log)) >= RECORDS // 2, 60, "half of the records")
        procs["b"].kill()  # gone without a word: its session times out
        procs["b"].wait(10)
        with open(log, "a") as f:
            f.write("killed b\n")
        _wait(lambda: len(_consumed(log)) >= RECORDS, 90, "every record")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    events = _read(log)
    orphaned, duplicates = _check_events(events)
    assert any(e[:2] == ["closed", "a"] for e in events)
    # b died holding partitions; c took them over once b's session timed out.
    assert orphaned
    after_kill = events[events.index(["killed", "b"]):]
    assert orphaned <= {int(p) for e in after_kill if e[:2] == ["assign", "c"] and len(e) > 2
                        for p in e[2].split(",")}
    print(f"duplicates: {duplicates}")


def _group_type(bootstrap, group):
    with RawConnection(bootstrap) as conn:
        r = conn.roundtrip(ListGroupsRequest(states_filter=[], types_filter=[]), 5, ListGroupsResponse)
    return {g.group_id: g.group_type for g in r.groups}.get(group)


def test_rolling_upgrade_from_classic_to_consumer_members_and_back(cbroker, tmp_path):
    """Three kafka-python members (classic protocol) are replaced one by one with
    confluent-kafka members (group.protocol=consumer): the first of those converts the group
    online (group.consumer.migration.policy, bidirectional by default), the classic members
    go on in it (JoinGroup, SyncGroup, Heartbeat). Then the way back: those are replaced one
    by one with kafka-python members again, and when the last consumer-protocol member leaves
    the group is classic again (the downgrade). Every record is consumed, no partition held
    twice, duplicates only above the last commit."""
    topic, group = f"t-{uuid.uuid4().hex[:6]}", "g-upgrade"
    create_topics(cbroker.bootstrap, [topic], partitions=PARTITIONS)
    _produce(cbroker.bootstrap, topic, UPGRADE_RECORDS)
    log = tmp_path / "events.log"
    log.touch()
    procs = {n: _start_member(cbroker.bootstrap, group, topic, log, n, classic=True) for n in ("k1", "k2", "k3")}
    steps = (("k1", "c1"), ("k2", "c2"), ("k3", "c3"), ("c1", "k4"), ("c2", "k5"), ("c3", "k6"))
    try:
        # every classic member consumes before the first is replaced. Once in CI the
        # first to join (k1) logged only the empty assignment a first kafka-python member
        # gets (no metadata of the topic yet) and no later one before c1 came, so it never
        # consumed; the cause is not known. If a member never gets partitions, this fails.
        _wait(lambda: _group_type(cbroker.bootstrap, group) == "classic"
              and len(_consumed(log)) >= UPGRADE_RECORDS // 8
              and {e[1] for e in _read(log) if e[0] == "rec"} >= {"k1", "k2", "k3"},
              60, "every classic member consuming")
        for step, (old, new) in enumerate(steps, start=2):
            procs[new] = _start_member(cbroker.bootstrap, group, topic, log, new, classic=new.startswith("k"))
            _wait(lambda new=new: any(e[:2] == ["assign", new] and len(e) > 2 for e in _read(log)), 60,
                  f"{new} given partitions")
            assert _group_type(cbroker.bootstrap, group) == "consumer"
            procs[old].send_signal(signal.SIGTERM)  # closes: LeaveGroup, or a heartbeat with epoch -1
            assert procs[old].wait(20) == 0
            _wait(lambda step=step: len(_consumed(log)) >= UPGRADE_RECORDS * step // 8, 60, f"{step}/8 of the records")
        assert _group_type(cbroker.bootstrap, group) == "classic"  # c3 was the last consumer-protocol member
        _wait(lambda: len(_consumed(log)) >= UPGRADE_RECORDS, 90, "every record")
    except AssertionError:
        print("\n".join(" ".join(e) for e in _read(log) if e[0] not in ("rec", "commit")))  # who held what
        raise
    finally:
        _stop(list(procs.values()))
    events = _read(log)
    _, duplicates = _check_events(events, UPGRADE_RECORDS)
    for name in ("k1", "k2", "k3", "c1", "c2", "c3"):
        assert ["closed", name] in events
    for name in ("k1", "k2", "k3"):
        assert any(e[:2] == ["rec", name] for e in events)
    # each new member was given partitions while the members it replaced held others
    for old, new in steps:
        given = next(i for i, e in enumerate(events) if e[:2] == ["assign", new] and len(e) > 2)
        assert given < events.index(["closed", old])
    print(f"duplicates: {duplicates}")


def test_a_groups_own_configs_apply_to_its_members(cbroker):
    """consumer.heartbeat.interval.ms set on a group (resource type GROUP, KIP-848) is the
    interval its members are given; other groups keep the broker's; out of the broker's
    bounds it is refused."""
    topic = f"t-{uuid.uuid4().hex[:6]}"
    create_topics(cbroker.bootstrap, [topic], partitions=1)
    with _coordinator_conn(cbroker.bootstrap) as conn:
        r = conn.roundtrip(incremental_alter(32, "g-own", ("consumer.heartbeat.interval.ms", 0, "700"),
                                             ("consumer.session.timeout.ms", 0, "2000")), 1,
                           IncrementalAlterConfigsResponse)
        assert [x.error_code for x in r.responses] == [0]
        r = conn.roundtrip(incremental_alter(32, "g-own", ("consumer.session.timeout.ms", 0, "100")), 1,
                           IncrementalAlterConfigsResponse)
        assert (r.responses[0].error_code, r.responses[0].error_message) == (
            ErrorCode.INVALID_CONFIG, "consumer.session.timeout.ms must be in the range 1000 to 60000 inclusive.")
        _wait_for_assignment(conn, "g-other", "m1", [topic])  # the coordinator is up
        assert _join(conn, "g-other", "m2", [topic]).heartbeat_interval_ms == 300
        assert _join(conn, "g-own", "m1", [topic]).heartbeat_interval_ms == 700


def test_regex_subscription_picks_up_a_topic_created_afterwards(cbroker):
    """librdkafka sends a "^..." subscription as SubscribedTopicRegex (v1); the coordinator
    matches it (RE2, whole names) against the topics at every heartbeat, so a topic created
    later joins the assignment."""
    stamp = uuid.uuid4().hex[:6]
    before, after, other = f"rx{stamp}-a", f"rx{stamp}-b", f"no{stamp}"
    create_topics(cbroker.bootstrap, [before, other], partitions=1)
    p = Producer({"bootstrap.servers": cbroker.bootstrap})
    p.produce(before, b"before")
    p.produce(other, b"other")
    p.flush(10)
    c = Consumer({"bootstrap.servers": cbroker.bootstrap, "group.id": f"g-rx-{stamp}", "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 500})
    c.subscribe([f"^rx{stamp}-.*"])
    got = set()
    try:
        deadline = time.monotonic() + 30
        while b"before" not in got and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.add(m.value())
        create_topics(cbroker.bootstrap, [after], partitions=1)
        p.produce(after, b"after")
        p.flush(10)
        deadline = time.monotonic() + 30
        while b"after" not in got and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.add(m.value())
        assert got == {b"before", b"after"}
        assert {tp.topic for tp in c.assignment()} == {before, after}
    finally:
        c.close()


def _until_loaded(call):
    """Retry while the new coordinator loads __consumer_offsets."""
    deadline = time.monotonic() + 30
    while True:
        r = call()
        if r.error_code not in (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NOT_COORDINATOR,
                                ErrorCode.COORDINATOR_NOT_AVAILABLE) or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_members_keep_their_epochs_across_a_coordinator_restart(cbroker):
    """The group's records (Kafka's ConsumerGroup* formats in __consumer_offsets) are
    replayed by the coordinator that comes back after a kill -9: the member carries on
    with its epoch and assignment, no rejoin. On the same restart: a group downgraded to
    classic (its consumer-protocol member left) comes back classic, with its member."""
    create_topics(cbroker.bootstrap, ["t-restart"], partitions=3)
    TP = H.TopicPartitions
    with _coordinator_conn(cbroker.bootstrap) as conn:
        first = _wait_for_assignment(conn, "g-restart", "m1", ["t-restart"])
        owned = [TP(topic_id=t.topic_id, partitions=t.partitions) for t in first.assignment.topic_partitions]
        steady = _heartbeat(conn, group_id="g-restart", member_id="m1", member_epoch=first.member_epoch,
                            topic_partitions=owned)
        assert steady.error_code == ErrorCode.NONE
        classic = RawMember(cbroker.bootstrap, "g-down", "t-restart")
        classic.sync_nothing(classic.join())
        joined = _join(conn, "g-down", "c1", ["t-restart"])  # the online upgrade
        assert joined.error_code == ErrorCode.NONE and _group_type(cbroker.bootstrap, "g-down") == "consumer"
        left = _heartbeat(conn, group_id="g-down", member_id="c1", member_epoch=-1)
        assert left.error_code == ErrorCode.NONE and _group_type(cbroker.bootstrap, "g-down") == "classic"
        classic.conn.close()
    cbroker.kill()
    cbroker.start()
    with _coordinator_conn(cbroker.bootstrap) as conn:
        conn.roundtrip(FindCoordinatorRequest(key="g-restart", key_type=0), 3, FindCoordinatorResponse)
        again = _until_loaded(lambda: _heartbeat(conn, group_id="g-restart", member_id="m1",
                                                 member_epoch=first.member_epoch, topic_partitions=owned))
        assert (again.error_code, again.member_epoch) == (ErrorCode.NONE, first.member_epoch)
        described = conn.roundtrip(ConsumerGroupDescribeRequest(group_ids=["g-restart"],
                                                                include_authorized_operations=False),
                                   1, ConsumerGroupDescribeResponse).groups[0]
        assert [(m.member_id, m.member_epoch) for m in described.members] == [("m1", first.member_epoch)]
        assert sorted(described.members[0].assignment.topic_partitions[0].partitions) == [0, 1, 2]
        assert described.group_epoch == described.assignment_epoch == first.member_epoch
        stale = _heartbeat(conn, group_id="g-restart", member_id="m1", member_epoch=first.member_epoch + 1)
        assert stale.error_code == ErrorCode.FENCED_MEMBER_EPOCH
        down = conn.roundtrip(DescribeGroupsRequest(groups=["g-down"], include_authorized_operations=False),
                              5, DescribeGroupsResponse).groups[0]
        assert (down.error_code, down.protocol_type) == (0, "consumer")
        assert [m.member_id for m in down.members] == [classic.member_id]
    assert _group_type(cbroker.bootstrap, "g-down") == "classic"


def test_an_empty_group_changes_protocol_freely(cbroker):
    """consumer protocol -> classic (kafka-python) -> consumer protocol on one group id: each
    generation resumes from the previous one's commits; ListGroups shows the current type."""
    from kafka import KafkaConsumer

    topic, group = f"t-{uuid.uuid4().hex[:6]}", "g-switch"
    create_topics(cbroker.bootstrap, [topic], partitions=2)
    p = Producer({"bootstrap.servers": cbroker.bootstrap})
    for i in range(90):
        p.produce(topic, str(i).encode(), partition=i % 2)
    p.flush(10)

    def listed_type():
        with RawConnection(cbroker.bootstrap) as conn:
            r = conn.roundtrip(ListGroupsRequest(states_filter=[], types_filter=[]), 5, ListGroupsResponse)
        return {g.group_id: g.group_type for g in r.groups}.get(group)

    def confluent(n):
        c = Consumer({"bootstrap.servers": cbroker.bootstrap, "group.id": group, "group.protocol": "consumer",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        got, deadline = [], time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(int(m.value()))
                c.commit(m, asynchronous=False)
        assert listed_type() == "consumer"
        c.close()
        return got

    first = confluent(30)
    k = KafkaConsumer(topic, bootstrap_servers=cbroker.bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=8000)
    second = []
    for m in k:
        second.append(int(m.value))
        k.commit()
        if len(first) + len(second) >= 60:
            break
    assert listed_type() == "classic"
    k.close()
    third = confluent(90 - len(first) - len(second))
    assert sorted(first + second + third) == list(range(90))

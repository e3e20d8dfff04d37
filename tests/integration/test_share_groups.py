"""Share groups (KIP-932) over real sockets with exact requests: membership and assignment
(ShareGroupHeartbeat), acquisition, acknowledgement and redelivery (ShareFetch,
ShareAcknowledge), share sessions and their errors, and the group as ListGroups,
DescribeGroups and ShareGroupDescribe show it. One broker for the module; a short
record lock duration (group.share.record.lock.duration.ms) so a lock expires in a test.
The Java KafkaShareConsumer against Odradek is in tests/peers/test_java_client.py.
ShareFetch v2's acquire modes and RENEW, share.auto.offset.reset=by_duration and
share.isolation.level=read_committed are asserted against Kafka 4.4's answers (asked of
the peer when they were written; the configs' refusals are oracle cases too).
"""

import time
import uuid

import pytest
from kafka.protocol.admin import (
    DescribeConfigsResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kafka.protocol.admin.groups import (
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    ListGroupsRequest,
    ListGroupsResponse,
)

from odradek.protocol.errors import ErrorCode
from odradek.protocol.messages import (
    AlterShareGroupOffsetsRequest,
    AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse,
    DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse,
    ShareAcknowledgeRequest,
    ShareAcknowledgeResponse,
    ShareFetchRequest,
    ShareFetchResponse,
    ShareGroupDescribeRequest,
    ShareGroupDescribeResponse,
    ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse,
)
from odradek.protocol.records import Record, build_batch
from tests.brokerproc import BrokerProcess
from tests.clients import create_topics
from tests.rawclient import RawConnection, describe_configs, produce, until_coordinator

LOCK_MS = 1000
ACCEPT, RELEASE, REJECT, RENEW = 1, 2, 3, 4
BATCH_OPTIMIZED, RECORD_LIMIT = 0, 1
F = ShareFetchRequest
A = ShareAcknowledgeRequest


@pytest.fixture(scope="module")
def sbroker(tmp_path_factory):
    b = BrokerProcess(tmp_path_factory.mktemp("data"), overrides={
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.share.min.record.lock.duration.ms": "100",
        "group.share.record.lock.duration.ms": str(LOCK_MS)}).start()
    yield b
    b.kill()


def set_group_configs(conn, group: str, **configs: str) -> None:
    """IncrementalAlterConfigs SET on resource type GROUP (32), as kafka-configs
    --entity-type groups does."""
    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    r = conn.roundtrip(IncrementalAlterConfigsRequest(resources=[R(
        resource_type=32, resource_name=group,
        configs=[R.AlterableConfig(name=k.replace("_", "."), config_operation=0, value=v)
                 for k, v in configs.items()])], validate_only=False), 1, IncrementalAlterConfigsResponse)
    assert [x.error_code for x in r.responses] == [0], r


def heartbeat(conn, group: str, member: str, epoch: int, topics=None):
    return conn.roundtrip(ShareGroupHeartbeatRequest(group_id=group, member_id=member, member_epoch=epoch,
                                                     rack_id=None, subscribed_topic_names=topics),
                          1, ShareGroupHeartbeatResponse)


def join(conn, group: str, member: str, topics: list[str]):
    return until_coordinator(conn, group, lambda: heartbeat(conn, group, member, 0, topics))


def share_fetch(conn, group, member, epoch, topic_id, acks=(), max_records=1, max_wait_ms=0,
                forgotten=(), partitions=(0,), version=1, mode=BATCH_OPTIMIZED, renew=False,
                min_bytes=1, max_bytes=1 << 20):
    """``acks``: (first, last, type) batches for partition 0; ``mode`` and ``renew``
    (ShareAcquireMode, IsRenewAck) are sent at version 2."""
    parts = [F.FetchTopic.FetchPartition(
        partition_index=p, acknowledgement_batches=[
            F.FetchTopic.FetchPartition.AcknowledgementBatch(first_offset=a, last_offset=b, acknowledge_types=[t])
            for a, b, t in (acks if p == 0 else ())]) for p in partitions]
    r = conn.roundtrip(F(group_id=group, member_id=member, share_session_epoch=epoch, max_wait_ms=max_wait_ms,
                         min_bytes=min_bytes, max_bytes=max_bytes, max_records=max_records, batch_size=max_records,
                         share_acquire_mode=mode, is_renew_ack=renew,
                         topics=[F.FetchTopic(topic_id=topic_id, partitions=parts)] if parts else [],
                         forgotten_topics_data=[F.ForgottenTopic(topic_id=topic_id, partitions=list(forgotten))]
                         if forgotten else []), version, ShareFetchResponse)
    return r


def alter_offsets(conn, group: str, topics: dict[str, dict[int, int]]):
    """AlterShareGroupOffsets: topic -> {partition: new start offset}."""
    A = AlterShareGroupOffsetsRequest
    AT = A.AlterShareGroupOffsetsRequestTopic
    return conn.roundtrip(A(group_id=group, topics=[AT(topic_name=t, partitions=[
        AT.AlterShareGroupOffsetsRequestPartition(partition_index=p, start_offset=o) for p, o in ps.items()])
        for t, ps in topics.items()]), 0, AlterShareGroupOffsetsResponse)


def delete_offsets(conn, group: str, topics: list[str]):
    D = DeleteShareGroupOffsetsRequest
    return conn.roundtrip(D(group_id=group, topics=[D.DeleteShareGroupOffsetsRequestTopic(topic_name=t)
                                                    for t in topics]), 0, DeleteShareGroupOffsetsResponse)


def start_offsets(conn, group: str) -> tuple[int, dict[tuple[str, int], int]]:
    """DescribeShareGroupOffsets of every share partition of the group: (error, SPSOs)."""
    D = DescribeShareGroupOffsetsRequest
    g = conn.roundtrip(D(groups=[D.DescribeShareGroupOffsetsRequestGroup(group_id=group, topics=None)]),
                       1, DescribeShareGroupOffsetsResponse).groups[0]
    return g.error_code, {(t.topic_name, p.partition_index): p.start_offset for t in g.topics for p in t.partitions}


def acquired(r) -> list[tuple[int, int, int]]:
    return [(a.first_offset, a.last_offset, a.delivery_count)
            for t in r.responses for p in t.partitions for a in p.acquired_records]


def ack(conn, group, member, epoch, topic_id, batches, version=1, renew=False):
    return conn.roundtrip(A(group_id=group, member_id=member, share_session_epoch=epoch, is_renew_ack=renew, topics=[
        A.AcknowledgeTopic(topic_id=topic_id, partitions=[A.AcknowledgeTopic.AcknowledgePartition(
            partition_index=0, acknowledgement_batches=[
                A.AcknowledgeTopic.AcknowledgePartition.AcknowledgementBatch(
                    first_offset=a, last_offset=b, acknowledge_types=[t]) for a, b, t in batches])])]),
        version, ShareAcknowledgeResponse)


def _topic(sbroker, name: str, batches: int, size: int = 2, timestamps=None) -> uuid.UUID:
    """A one-partition topic with ``batches`` batches of ``size`` records (2: offsets 2i,
    2i+1), the records of batch i at ``timestamps[i]`` if given."""
    create_topics(sbroker.bootstrap, [name])
    for i in range(batches):
        ts = timestamps[i] if timestamps else int(time.time() * 1000)
        assert produce(sbroker.bootstrap, name, {0: build_batch([
            Record(None, f"{i}{chr(97 + j)}".encode(), (), ts) for j in range(size)])})[0].error_code == 0
    return topic_id(sbroker, name)


def topic_id(sbroker, name: str) -> uuid.UUID:
    with RawConnection(sbroker.bootstrap) as conn:
        from kafka.protocol.metadata import MetadataRequest, MetadataResponse
        m = conn.roundtrip(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=name, topic_id=None)],
                                           allow_auto_topic_creation=False), 12, MetadataResponse)
    return m.topics[0].topic_id


def test_two_members_share_one_partition_with_release_reject_and_lock_expiry(sbroker):
    topic_id = _topic(sbroker, "shared", 4)
    group = "sg-1"
    with RawConnection(sbroker.bootstrap) as a, RawConnection(sbroker.bootstrap) as b:
        set_group_configs(a, group, share_auto_offset_reset="earliest")
        ra = join(a, group, "member-a", ["shared"])
        rb = join(b, group, "member-b", ["shared"])
        assert rb.member_epoch == 2 and [t.partitions for t in rb.assignment.topic_partitions] == [[0]]
        # member-a learns the new epoch (and keeps partition 0: one partition, shared by both).
        ra = heartbeat(a, group, "member-a", ra.member_epoch)
        assert ra.member_epoch == 2 and [t.partitions for t in ra.assignment.topic_partitions] == [[0]]
        # Its previous epoch is taken (an answer lost), as Kafka takes it; a newer one is fenced.
        again = heartbeat(a, group, "member-a", 1)
        assert (again.error_code, again.member_epoch) == (0, 2)
        assert heartbeat(a, group, "member-a", 3).error_code == ErrorCode.FENCED_MEMBER_EPOCH

        # Each fetch acquires whole batches, up to MaxRecords: distinct records per member.
        fa = share_fetch(a, group, "member-a", 0, topic_id)
        assert fa.error_code == 0 and fa.acquisition_lock_timeout_ms == LOCK_MS
        assert acquired(fa) == [(0, 1, 1)] and fa.responses[0].partitions[0].records
        fb = share_fetch(b, group, "member-b", 0, topic_id)
        assert acquired(fb) == [(2, 3, 1)]
        # a releases its batch (piggybacked on its next fetch): released records go to the
        # next fetch, not back to the one that released them (as Kafka), so a gets the next
        # batch and b the released one, delivered a second time.
        fa = share_fetch(a, group, "member-a", 1, topic_id, acks=[(0, 1, RELEASE)])
        assert fa.responses[0].partitions[0].acknowledge_error_code == 0 and acquired(fa) == [(4, 5, 1)]
        fb = share_fetch(b, group, "member-b", 1, topic_id, acks=[(2, 3, ACCEPT)])
        assert acquired(fb) == [(0, 1, 2)]
        # Acknowledging what another member holds: INVALID_RECORD_STATE, nothing changes.
        r = ack(a, group, "member-a", 2, topic_id, [(0, 1, ACCEPT)])
        assert r.error_code == 0 and (r.responses[0].partitions[0].error_code,
                                      r.responses[0].partitions[0].error_message) == (
            ErrorCode.INVALID_RECORD_STATE, "Member is not the owner of batch record")
        # b rejects: archived, never handed out again.
        assert ack(b, group, "member-b", 2, topic_id, [(0, 1, REJECT)]).responses[0].partitions[0].error_code == 0
        # a holds 4-5 and goes silent: after the lock duration b gets them (delivery 2).
        fb = share_fetch(b, group, "member-b", 3, topic_id, max_records=10, max_wait_ms=3 * LOCK_MS)
        assert acquired(fb) == [(6, 7, 1)]
        fb = share_fetch(b, group, "member-b", 4, topic_id, acks=[(6, 7, ACCEPT)], max_wait_ms=3 * LOCK_MS)
        assert acquired(fb) == [(4, 5, 2)]
        # a's late acknowledgement of its expired records is refused.
        r = ack(a, group, "member-a", 3, topic_id, [(4, 5, ACCEPT)])
        assert r.responses[0].partitions[0].error_code == ErrorCode.INVALID_RECORD_STATE
        fb = share_fetch(b, group, "member-b", -1, topic_id, acks=[(4, 5, ACCEPT)])
        assert fb.error_code == 0 and fb.responses[0].partitions[0].acknowledge_error_code == 0
        # Everything is done: nothing more for anyone (a short wait).
        assert acquired(share_fetch(a, group, "member-a", 4, topic_id, max_records=10, max_wait_ms=200)) == []

        d = a.roundtrip(ShareGroupDescribeRequest(group_ids=[group, "no-such"], include_authorized_operations=False),
                        1, ShareGroupDescribeResponse)
        g, missing = d.groups
        assert (g.error_code, g.group_state, g.group_epoch, g.assignor_name) == (0, "Stable", 2, "simple")
        assert sorted(m.member_id for m in g.members) == ["member-a", "member-b"]
        assert all(m.assignment.topic_partitions[0].topic_name == "shared" for m in g.members)
        assert missing.error_code == ErrorCode.GROUP_ID_NOT_FOUND

        listed = a.roundtrip(ListGroupsRequest(states_filter=[], types_filter=["share"]), 5, ListGroupsResponse)
        assert [(x.group_id, x.protocol_type, x.group_state, x.group_type) for x in listed.groups] == [
            (group, "share", "Stable", "share")]
        dg = a.roundtrip(DescribeGroupsRequest(groups=[group], include_authorized_operations=False), 6,
                         DescribeGroupsResponse)
        assert dg.groups[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND
        dg = a.roundtrip(DescribeGroupsRequest(groups=[group], include_authorized_operations=False), 5,
                         DescribeGroupsResponse)
        assert (dg.groups[0].error_code, dg.groups[0].group_state) == (0, "Dead")

        assert heartbeat(a, group, "member-a", -1).member_epoch == -1
        assert heartbeat(b, group, "member-b", -1).member_epoch == -1
        listed = a.roundtrip(ListGroupsRequest(states_filter=[], types_filter=["share"]), 5, ListGroupsResponse)
        assert [(x.group_id, x.group_state) for x in listed.groups] == [(group, "Empty")]


def test_delivery_count_limit_archives_a_poison_record(sbroker):
    topic_id = _topic(sbroker, "poison", 1)
    group = "sg-poison"
    with RawConnection(sbroker.bootstrap) as c:
        set_group_configs(c, group, share_auto_offset_reset="earliest", share_delivery_count_limit="2")
        join(c, group, "m", ["poison"])
        assert acquired(share_fetch(c, group, "m", 0, topic_id)) == [(0, 1, 1)]
        assert acquired(share_fetch(c, group, "m", 1, topic_id, acks=[(0, 1, RELEASE)])) == [(0, 1, 2)]
        # Released at the limit: archived, so nothing is left to hand out.
        r = share_fetch(c, group, "m", 2, topic_id, acks=[(0, 1, RELEASE)], max_wait_ms=100)
        assert r.responses[0].partitions[0].acknowledge_error_code == 0 and acquired(r) == []


def test_share_session_epochs_and_bad_requests(sbroker):
    topic_id = _topic(sbroker, "sessions", 1)
    group = "sg-sessions"
    with RawConnection(sbroker.bootstrap) as c:
        set_group_configs(c, group, share_auto_offset_reset="earliest")
        join(c, group, "m", ["sessions"])
        assert share_fetch(c, group, "m", 3, topic_id).error_code == ErrorCode.SHARE_SESSION_NOT_FOUND
        assert ack(c, group, "m", 0, topic_id, []).error_code == ErrorCode.INVALID_SHARE_SESSION_EPOCH
        assert share_fetch(c, group, "m", 0, topic_id, max_wait_ms=0).error_code == 0
        assert share_fetch(c, group, "m", 5, topic_id).error_code == ErrorCode.INVALID_SHARE_SESSION_EPOCH
        assert share_fetch(c, group, "m", 1, topic_id).error_code == 0  # the right epoch still works
        # Closing releases what the member held: a new session gets the records again.
        assert share_fetch(c, group, "m", -1, topic_id, partitions=()).error_code == 0
        assert acquired(share_fetch(c, group, "m", 0, topic_id)) == [(0, 1, 2)]
        # An unknown acknowledge type is INVALID_REQUEST for that partition.
        r = share_fetch(c, group, "m", 1, topic_id, acks=[(0, 1, 9)])
        assert r.responses[0].partitions[0].acknowledge_error_code == ErrorCode.INVALID_REQUEST
        assert share_fetch(c, "", "m", 0, topic_id).error_code == ErrorCode.INVALID_GROUP_ID
        r = heartbeat(c, group, "m2", 0, [])
        assert (r.error_code, r.error_message) == (ErrorCode.INVALID_REQUEST,
                                                   "SubscribedTopicNames must be set in first request.")
        assert heartbeat(c, group, "nobody", 4).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        # A bad group config value is refused with the key's name.
        R = IncrementalAlterConfigsRequest.AlterConfigsResource
        r = c.roundtrip(IncrementalAlterConfigsRequest(resources=[R(
            resource_type=32, resource_name=group, configs=[R.AlterableConfig(
                name="share.auto.offset.reset", config_operation=0, value="sideways")])],
            validate_only=False), 1, IncrementalAlterConfigsResponse)
        assert r.responses[0].error_code == ErrorCode.INVALID_CONFIG
        assert "share.auto.offset.reset" in r.responses[0].error_message
        # DescribeConfigs shows the group's own keys (source GROUP_CONFIG, 8).
        d = c.roundtrip(describe_configs(32, group), 4, DescribeConfigsResponse).results[0]
        own = [(e.name, e.value, e.config_source) for e in d.configs if e.config_source == 8]
        assert own == [("share.auto.offset.reset", "earliest", 8)]  # the rest: Kafka's defaults

        # A session ends with the connection that opened it: what its member held is free at
        # once, long before its lock (10 s for this group now) would expire.
        set_group_configs(c, group, share_record_lock_duration_ms="10000")
        with RawConnection(sbroker.bootstrap) as gone:
            # m's session here replaces the one on c (released) and takes 0-1 again
            assert acquired(share_fetch(gone, group, "m", 0, topic_id)) == [(0, 1, 3)]
        with RawConnection(sbroker.bootstrap) as d:
            join(d, group, "m2", ["sessions"])
            got, deadline, epoch = [], time.monotonic() + 5, 0
            while not got and time.monotonic() < deadline:  # the close reaches the broker first
                got = acquired(share_fetch(d, group, "m2", epoch, topic_id))
                epoch += 1
            assert got == [(0, 1, 4)]
        assert share_fetch(c, group, "m", 2, topic_id).error_code == ErrorCode.SHARE_SESSION_NOT_FOUND


def test_confluent_share_consumers_compete_for_records(sbroker):
    """confluent-kafka's ShareConsumer (librdkafka's KIP-932 preview, share fetch v1):
    two consumers in one group on a two-partition topic, explicit acknowledgement. Every
    record is accepted exactly once; a poison record rejected by whoever gets it is never
    handed out again; a released one comes back."""
    from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
    topic, group, count = "competing", "sg-confluent", 200
    create_topics(sbroker.bootstrap, [topic], partitions=2)
    with RawConnection(sbroker.bootstrap) as c:
        set_group_configs(c, group, share_auto_offset_reset="earliest")
    p = Producer({"bootstrap.servers": sbroker.bootstrap, "linger.ms": 0})
    for i in range(count):
        p.produce(topic, value=str(i).encode(), partition=i % 2)
        if i % 10 == 9:
            p.flush(10)  # several batches per partition
    assert p.flush(10) == 0
    consumers = [ShareConsumer({"bootstrap.servers": sbroker.bootstrap, "group.id": group,
                                "share.acknowledgement.mode": "explicit",
                                # a few records a fetch, so that the second consumer, still
                                # joining while the first polls, finds records left
                                "max.poll.records": 10}) for _ in range(2)]
    accepted: dict[str, int] = {}
    by_consumer = [0, 0]
    rejected, released = [], []
    deadline = time.monotonic() + 30
    try:
        for sc in consumers:
            sc.subscribe([topic])
        while len(accepted) < count - 1 and time.monotonic() < deadline:
            for n, sc in enumerate(consumers):
                for m in sc.poll(0.2):
                    assert m.error() is None, m.error()
                    value = m.value().decode()
                    if value == "7":
                        sc.acknowledge(m, AcknowledgeType.REJECT)
                        rejected.append(value)
                    elif value == "42" and not released:
                        sc.acknowledge(m, AcknowledgeType.RELEASE)
                        released.append(value)
                    else:
                        assert value not in accepted, value  # delivered again after an ACCEPT
                        sc.acknowledge(m, AcknowledgeType.ACCEPT)
                        accepted[value] = n
                        by_consumer[n] += 1
                sc.commit_sync(10)
    finally:
        for sc in consumers:
            sc.close()
    assert sorted(accepted, key=int) == [str(i) for i in range(count) if i != 7]
    assert rejected == ["7"] and released == ["42"] and all(by_consumer), by_consumer


def test_share_version_zero_turns_share_groups_off(sbroker):
    """UpdateFeatures share.version=0 (a safe downgrade): ShareGroupHeartbeat and ShareFetch
    answer UNSUPPORTED_VERSION, as Kafka's do; back at 1 they serve again."""
    from kafka.protocol.admin import UpdateFeaturesRequest, UpdateFeaturesResponse
    U = UpdateFeaturesRequest

    def set_level(conn, level: int) -> None:
        r = conn.roundtrip(U(timeout_ms=5000, validate_only=False, feature_updates=[
            U.FeatureUpdateKey(feature="share.version", max_version_level=level, upgrade_type=1 if level else 2)]),
            1, UpdateFeaturesResponse)
        assert r.error_code == 0 and all(x.error_code == 0 for x in r.results), r

    def served(conn) -> bool:
        hb = heartbeat(conn, "sg-off", "m", 0, ["x"])
        fetch = share_fetch(conn, "sg-off", "m", 0, uuid.uuid4())
        assert (hb.error_code == ErrorCode.UNSUPPORTED_VERSION) == (fetch.error_code == ErrorCode.UNSUPPORTED_VERSION)
        return hb.error_code != ErrorCode.UNSUPPORTED_VERSION

    with RawConnection(sbroker.bootstrap) as c:
        set_level(c, 0)
        try:
            deadline = time.monotonic() + 5
            while served(c) and time.monotonic() < deadline:  # the image applies the record
                time.sleep(0.05)
            assert not served(c)
        finally:
            set_level(c, 1)
        deadline = time.monotonic() + 5
        while not served(c) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served(c)


def test_record_limit_mode_and_renew_acknowledgements(sbroker):
    """ShareFetch v2 (KIP-1206, KIP-1222), Kafka 4.4's answers: record_limit hands out
    MaxRecords at most, batch_optimized whole batches; RENEW needs v2 and IsRenewAck (else
    INVALID_REQUEST for the partition); a renewing ShareFetch only acknowledges, with its
    fetch limits at 0 (else INVALID_REQUEST); renewed records stay the member's past the
    lock they were acquired with; the group's share.renew.acknowledge.enable=false refuses
    RENEW (INVALID_RECORD_STATE)."""
    tid = _topic(sbroker, "limits", 3, size=4)  # batches 0-3, 4-7, 8-11
    group = "sg-limits"
    with RawConnection(sbroker.bootstrap) as c:
        set_group_configs(c, group, share_auto_offset_reset="earliest", share_record_lock_duration_ms="2000")
        join(c, group, "m", ["limits"])
        r = share_fetch(c, group, "m", 0, tid, max_records=3, version=2, mode=RECORD_LIMIT)
        assert acquired(r) == [(0, 2, 1)] and r.responses[0].partitions[0].records  # the whole batch 0-3
        assert acquired(share_fetch(c, group, "m", 1, tid, max_records=3, version=2, mode=RECORD_LIMIT)) == [(3, 5, 1)]
        assert acquired(share_fetch(c, group, "m", 2, tid, max_records=3, version=2)) == [(6, 11, 1)]
        assert share_fetch(c, group, "m", 3, tid, version=2, mode=7).error_code == ErrorCode.UNKNOWN_SERVER_ERROR
        acquired_at = time.monotonic()

        # RENEW at v1, or at v2 without IsRenewAck: the partition's INVALID_REQUEST
        r = share_fetch(c, group, "m", 3, tid, acks=[(0, 2, RENEW)])
        assert r.responses[0].partitions[0].acknowledge_error_code == ErrorCode.INVALID_REQUEST
        assert ack(c, group, "m", 4, tid, [(0, 2, RENEW)]).responses[0].partitions[0].error_code == \
            ErrorCode.INVALID_REQUEST
        assert ack(c, group, "m", 5, tid, [(0, 2, RENEW)], version=2).responses[0].partitions[0].error_code == \
            ErrorCode.INVALID_REQUEST
        # IsRenewAck with fetch limits: refused whole (the epoch is not used up)
        assert share_fetch(c, group, "m", 6, tid, acks=[(0, 2, RENEW)], version=2, renew=True,
                           max_records=1).error_code == ErrorCode.INVALID_REQUEST
        time.sleep(1.2)  # past half the 2 s lock the records were acquired with
        r = share_fetch(c, group, "m", 6, tid, acks=[(0, 2, RENEW)], version=2, renew=True,
                        max_records=0, min_bytes=0, max_bytes=0)
        assert (r.error_code, r.acquisition_lock_timeout_ms) == (0, 2000)
        assert r.responses[0].partitions[0].acknowledge_error_code == 0 and acquired(r) == []
        r = ack(c, group, "m", 7, tid, [(3, 5, RENEW)], version=2, renew=True)
        assert r.responses[0].partitions[0].error_code == 0
        time.sleep(max(0.0, acquired_at + 2.2 - time.monotonic()))  # the first lock is over
        # 0-5 are still m's (renewed): accepted; 6-11 were not renewed: expired
        r = ack(c, group, "m", 8, tid, [(0, 5, ACCEPT)], version=2)
        assert r.responses[0].partitions[0].error_code == 0
        assert ack(c, group, "m", 9, tid, [(6, 11, ACCEPT)], version=2).responses[0].partitions[0].error_code == \
            ErrorCode.INVALID_RECORD_STATE
        # share.renew.acknowledge.enable=false: RENEW is INVALID_RECORD_STATE, in Kafka's words
        set_group_configs(c, group, share_renew_acknowledge_enable="false")
        assert acquired(share_fetch(c, group, "m", 10, tid, max_records=10, version=2)) == [(6, 11, 2)]
        p = ack(c, group, "m", 11, tid, [(6, 11, RENEW)], version=2, renew=True).responses[0].partitions[0]
        assert (p.error_code, p.error_message) == (ErrorCode.INVALID_RECORD_STATE,
                                                   "Renewing acquisition locks is not enabled for the group.")
        assert ack(c, group, "m", 12, tid, [(6, 11, ACCEPT)], version=2).responses[0].partitions[0].error_code == 0


def test_auto_offset_reset_by_duration(sbroker):
    """share.auto.offset.reset=by_duration:PT1H starts at the first record of the last hour
    (ListOffsets by timestamp); with none yet the partition answers OFFSET_NOT_AVAILABLE
    until one comes (Kafka 4.4's answers). A bad duration is refused in Kafka's words."""
    now = int(time.time() * 1000)
    hour = 3_600_000
    tid = _topic(sbroker, "by-duration", 4, timestamps=[now - 2 * hour, now - 60_000, now - 2 * hour, now])
    old = _topic(sbroker, "by-duration-old", 1, timestamps=[now - 2 * hour])
    with RawConnection(sbroker.bootstrap) as c:
        for group, topic in (("sg-duration", "by-duration"), ("sg-duration-old", "by-duration-old")):
            set_group_configs(c, group, share_auto_offset_reset="by_duration:PT1H")
            join(c, group, "m", [topic])
        assert acquired(share_fetch(c, "sg-duration", "m", 0, tid, max_records=10)) == [(2, 7, 1)]
        r = share_fetch(c, "sg-duration-old", "m", 0, old, max_records=10)
        assert r.error_code == 0 and r.responses[0].partitions[0].error_code == ErrorCode.OFFSET_NOT_AVAILABLE
        assert produce(sbroker.bootstrap, "by-duration-old", {0: build_batch([(None, b"new", (), now)])})[0] \
            .error_code == 0
        assert acquired(share_fetch(c, "sg-duration-old", "m", 1, old, max_records=10, max_wait_ms=2000)) == \
            [(2, 2, 1)]
        R = IncrementalAlterConfigsRequest.AlterConfigsResource
        for bad in ("by_duration:-PT1H", "by_duration:1h", "BY_DURATION:PT1H", "by_duration:P1W"):
            r = c.roundtrip(IncrementalAlterConfigsRequest(resources=[R(
                resource_type=32, resource_name="sg-duration", configs=[R.AlterableConfig(
                    name="share.auto.offset.reset", config_operation=0, value=bad)])],
                validate_only=False), 1, IncrementalAlterConfigsResponse)
            assert (r.responses[0].error_code, r.responses[0].error_message) == (
                ErrorCode.INVALID_CONFIG,
                f"Invalid value {bad} for configuration share.auto.offset.reset: Invalid value `{bad}` for "
                "configuration share.auto.offset.reset. The value must be either 'earliest', 'latest' or of "
                "the format 'by_duration:<PnDTnHnMn.nS>'.")


def test_read_committed_share_group_skips_aborted_and_open_transactions(sbroker):
    """share.isolation.level=read_committed: a confluent-kafka transactional producer
    commits, aborts, commits and leaves one open; the share group gets the committed
    records only, none past the last stable offset until the open one commits; markers
    and aborted records are never handed out. A read_uncommitted group gets them all."""
    from confluent_kafka import Producer
    topic = "txn-share"
    create_topics(sbroker.bootstrap, [topic])
    p = Producer({"bootstrap.servers": sbroker.bootstrap, "transactional.id": "tx-share", "linger.ms": 0})
    p.init_transactions(15)
    for i, commit in enumerate((True, False, True)):  # 0-1 marker 2; 3-4 marker 5; 6-7 marker 8
        p.begin_transaction()
        for j in range(2):
            p.produce(topic, value=f"{i}-{j}".encode(), partition=0)
        assert p.flush(10) == 0
        (p.commit_transaction if commit else p.abort_transaction)(15)
    p.begin_transaction()
    p.produce(topic, value=b"open", partition=0)  # offset 9, its marker at 10
    assert p.flush(10) == 0
    tid = topic_id(sbroker, topic)
    with RawConnection(sbroker.bootstrap) as c:
        set_group_configs(c, "sg-committed", share_auto_offset_reset="earliest", share_isolation_level="read_committed")
        set_group_configs(c, "sg-uncommitted", share_auto_offset_reset="earliest")
        join(c, "sg-committed", "m", [topic])
        join(c, "sg-uncommitted", "m", [topic])
        assert acquired(share_fetch(c, "sg-committed", "m", 0, tid, max_records=100)) == [(0, 1, 1), (6, 7, 1)]
        assert acquired(share_fetch(c, "sg-committed", "m", 1, tid, max_records=100, max_wait_ms=200)) == []
        assert acquired(share_fetch(c, "sg-uncommitted", "m", 0, tid, max_records=100)) == [
            (0, 1, 1), (3, 4, 1), (6, 7, 1), (9, 9, 1)]
        p.commit_transaction(15)
        r = share_fetch(c, "sg-committed", "m", 2, tid, acks=[(0, 1, ACCEPT), (6, 7, ACCEPT)], max_records=100,
                        max_wait_ms=3000)
        assert acquired(r) == [(9, 9, 1)]
        assert r.responses[0].partitions[0].acknowledge_error_code == 0
        r = share_fetch(c, "sg-committed", "m", 3, tid, acks=[(9, 9, ACCEPT)], max_records=100)
        assert r.responses[0].partitions[0].acknowledge_error_code == 0
        # everything is done: the start offset is past the last marker (10), nothing lags
        D = DescribeShareGroupOffsetsRequest
        d = c.roundtrip(D(groups=[D.DescribeShareGroupOffsetsRequestGroup(group_id="sg-committed", topics=None)]),
                        1, DescribeShareGroupOffsetsResponse)
        assert [(p.start_offset, p.lag) for t in d.groups[0].topics for p in t.partitions] == [(11, 0)]
def test_confluent_share_consumers_at_scale_with_one_killed(sbroker):
    """Issue 20's scale scenario (tests/share_scale.py) with confluent-kafka's ShareConsumer:
    five consumer processes and a sixth SIGKILLed mid-batch, 20,000 records (about 4 s;
    make share-scale prints the throughput). Each record is held
    by one consumer at a time and accepted exactly once; the victim's are redelivered."""
    from tests import share_scale
    report = share_scale.run(sbroker.bootstrap, "scale-confluent", "sg-scale-confluent", share_scale.RECORDS,
                             share_scale.start_confluent(sbroker.bootstrap, "sg-scale-confluent", "scale-confluent"),
                             timeout_s=60 + share_scale.RECORDS / 50)
    print(report.line("confluent-kafka ShareConsumer"))
def test_alter_and_delete_share_group_offsets_and_the_group(sbroker):
    """AlterShareGroupOffsets, DeleteShareGroupOffsets and DeleteGroups of a share group
    (kafka-share-groups --reset-offsets, --delete-offsets, --delete): refused while the
    group has a member; once it is empty the new start offset is where the next fetch
    reads (the leader's state in memory is dropped), deleted offsets start the group
    again at share.auto.offset.reset, and the deleted group is gone from ListGroups and
    DescribeGroups. Every share-partition state is tombstoned in __share_group_state."""
    from kafka.protocol.consumer import FetchRequest, FetchResponse

    from odradek.broker.groups.offsets_topic import iter_records, partition_for
    from odradek.broker.share.coordinator import (
        SHARE_STATE_TOPIC,
        coordinator_key,
        parse_record_key,
    )
    topic_id = _topic(sbroker, "resets", 3)
    group = "sg-resets"
    with RawConnection(sbroker.bootstrap) as c:
        set_group_configs(c, group, share_auto_offset_reset="earliest")
        join(c, group, "m", ["resets"])
        assert acquired(share_fetch(c, group, "m", 0, topic_id)) == [(0, 1, 1)]
        r = ack(c, group, "m", 1, topic_id, [(0, 1, ACCEPT)])
        assert r.responses[0].partitions[0].error_code == 0 and start_offsets(c, group) == (0, {("resets", 0): 2})
        # A member: nothing may change.
        r = alter_offsets(c, group, {"resets": {0: 4}})
        assert (r.error_code, r.error_message, r.responses) == (ErrorCode.NON_EMPTY_GROUP, "The group is not empty.", [])
        assert delete_offsets(c, group, ["resets"]).error_code == ErrorCode.NON_EMPTY_GROUP
        deleted = c.roundtrip(DeleteGroupsRequest(groups_names=[group]), 2, DeleteGroupsResponse)
        assert deleted.results[0].error_code == ErrorCode.NON_EMPTY_GROUP
        assert heartbeat(c, group, "m", -1).member_epoch == -1

        # Empty: the start offset moves to 4; unknown topics and partitions are refused.
        r = alter_offsets(c, group, {"resets": {0: 4, 3: 0}, "no-such-topic": {0: 1}})
        assert r.error_code == 0 and [(t.topic_name, [(p.partition_index, p.error_code) for p in t.partitions])
                                      for t in r.responses] == [
            ("no-such-topic", [(0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]),
            ("resets", [(0, 0), (3, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)])]
        assert start_offsets(c, group) == (0, {("resets", 0): 4})
        join(c, group, "m", ["resets"])  # the same connection: its old session is replaced
        assert acquired(share_fetch(c, group, "m", 0, topic_id, max_records=10, max_wait_ms=2000)) == [(4, 5, 1)]
        assert heartbeat(c, group, "m", -1).member_epoch == -1

        # Deleting the topic's offsets: the group starts again at the earliest offset.
        r = delete_offsets(c, group, ["resets", "no-such-topic"])
        assert r.error_code == 0 and [(t.topic_name, t.error_code, t.error_message) for t in r.responses] == [
            ("resets", 0, None),
            ("no-such-topic", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")]
        assert start_offsets(c, group) == (0, {})
        r = delete_offsets(c, group, ["resets"])
        assert [(t.error_code, t.error_message) for t in r.responses] == [
            (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "There is no offset information to delete.")]
        join(c, group, "m", ["resets"])
        assert acquired(share_fetch(c, group, "m", 0, topic_id, max_records=2, max_wait_ms=2000)) == [(0, 1, 1)]
        assert heartbeat(c, group, "m", -1).member_epoch == -1

        # Deleting the group: gone, and its share-partition state with it.
        deleted = c.roundtrip(DeleteGroupsRequest(groups_names=[group]), 2, DeleteGroupsResponse)
        assert deleted.results[0].error_code == 0
        listed = c.roundtrip(ListGroupsRequest(states_filter=[], types_filter=[]), 5, ListGroupsResponse)
        assert group not in [g.group_id for g in listed.groups]
        dg = c.roundtrip(DescribeGroupsRequest(groups=[group], include_authorized_operations=False), 6,
                         DescribeGroupsResponse)
        assert (dg.groups[0].error_code, dg.groups[0].group_state) == (ErrorCode.GROUP_ID_NOT_FOUND, "Dead")
        assert start_offsets(c, group)[0] == ErrorCode.GROUP_ID_NOT_FOUND
        deleted = c.roundtrip(DeleteGroupsRequest(groups_names=[group]), 2, DeleteGroupsResponse)
        assert deleted.results[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND

        # __share_group_state: the key's last record is a tombstone (compaction forgets it).
        key = coordinator_key(group, topic_id, 0)
        F = FetchRequest
        fetched = c.roundtrip(F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                                session_id=0, session_epoch=-1, topics=[F.FetchTopic(
                                    topic=SHARE_STATE_TOPIC, partitions=[F.FetchTopic.FetchPartition(
                                        partition=partition_for(key, 50), current_leader_epoch=-1, fetch_offset=0,
                                        log_start_offset=-1, partition_max_bytes=1 << 20)])],
                                forgotten_topics_data=[], rack_id=""), 11, FetchResponse)
        values = [v for _, k, v in iter_records(fetched.responses[0].partitions[0].records)
                  if k is not None and parse_record_key(k) == key]
        assert len(values) >= 4 and values[-1] is None and values[-2] is not None


def test_share_state_survives_a_restart(sbroker):
    """Last in the module: it restarts the module's broker. What a member acknowledged is
    not handed out again after a restart (the state was in ``__share_group_state``);
    what it held unacknowledged comes back, its delivery count kept. The group and its
    member are still there (their records in ``__consumer_offsets``): the member goes on
    with its epoch, a new one joins at the next. A start offset set by
    AlterShareGroupOffsets holds, and the group that made is still listed."""
    topic_id = _topic(sbroker, "durable", 3)
    group = "sg-durable"
    with RawConnection(sbroker.bootstrap) as c:
        set_group_configs(c, group, share_auto_offset_reset="earliest")
        join(c, group, "m", ["durable"])
        assert acquired(share_fetch(c, group, "m", 0, topic_id, max_records=2)) == [(0, 1, 1)]
        r = share_fetch(c, group, "m", 1, topic_id, acks=[(0, 1, ACCEPT)], max_records=2)
        assert r.responses[0].partitions[0].acknowledge_error_code == 0 and acquired(r) == [(2, 3, 1)]
        # AlterShareGroupOffsets of a group never seen makes it (as Kafka); its start offset
        # is durable too.
        assert alter_offsets(c, "sg-durable-reset", {"durable": {0: 4}}).responses[0].partitions[0].error_code == 0
        # and one made so, then deleted: its records are tombstoned, it stays gone
        assert alter_offsets(c, "sg-durable-gone", {"durable": {0: 1}}).responses[0].partitions[0].error_code == 0
        deleted = c.roundtrip(DeleteGroupsRequest(groups_names=["sg-durable-gone"]), 2, DeleteGroupsResponse)
        assert deleted.results[0].error_code == 0
    sbroker.restart()
    with RawConnection(sbroker.bootstrap) as c:
        assert until_coordinator(c, group, lambda: heartbeat(c, group, "m", 1)).member_epoch == 1
        assert join(c, group, "m2", ["durable"]).member_epoch == 2
        # DescribeShareGroupOffsets (kafka-share-groups --describe): the start offset read
        # back from __share_group_state; the lag counts offsets 2-5.
        D = DescribeShareGroupOffsetsRequest
        d = c.roundtrip(D(groups=[D.DescribeShareGroupOffsetsRequestGroup(group_id=group, topics=None),
                                  D.DescribeShareGroupOffsetsRequestGroup(group_id="no-such", topics=None)]),
                        1, DescribeShareGroupOffsetsResponse)
        g, missing = d.groups
        assert g.error_code == 0 and [(t.topic_name, [(p.partition_index, p.start_offset, p.lag, p.error_code)
                                                      for p in t.partitions]) for t in g.topics] == [
            ("durable", [(0, 2, 4, 0)])]
        assert missing.error_code == ErrorCode.GROUP_ID_NOT_FOUND
        r = share_fetch(c, group, "m2", 0, topic_id, max_records=10, max_wait_ms=2000)
        assert acquired(r) == [(2, 3, 2), (4, 5, 1)]

        listed = c.roundtrip(ListGroupsRequest(states_filter=[], types_filter=["share"]), 5, ListGroupsResponse)
        assert {"sg-durable", "sg-durable-reset"} <= {g.group_id for g in listed.groups}
        assert "sg-durable-gone" not in {g.group_id for g in listed.groups}
        join(c, "sg-durable-reset", "m3", ["durable"])
        r = share_fetch(c, "sg-durable-reset", "m3", 0, topic_id, max_records=10, max_wait_ms=2000)
        assert acquired(r) == [(4, 5, 1)]

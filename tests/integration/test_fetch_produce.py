"""Produce, Fetch, ListOffsets and DeleteRecords semantics against a real broker."""

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.protocol.consumer import FetchResponse, ListOffsetsRequest, ListOffsetsResponse

from odradek.protocol.records import build_batch
from tests.clients import create_topics, read_assigned
from tests.rawclient import (
    RawConnection,
    fetch,
    fetch_request,
    produce,
    produce_request,
    recv_frame,
)


def batch(*values, ts=None, key=None):
    ts = int(time.time() * 1000) if ts is None else ts
    return build_batch([(key, v, (), ts) for v in values])


def list_offsets(bootstrap, topic, timestamp, version=7):
    L = ListOffsetsRequest
    req = L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(name=topic, partitions=[
        L.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                                timestamp=timestamp, max_num_offsets=1)])])
    with RawConnection(bootstrap) as conn:
        resp = conn.roundtrip(req, version, ListOffsetsResponse)
    return resp.topics[0].partitions[0]


def test_long_poll_waits_for_max_wait_then_returns_promptly_on_data(broker):
    create_topics(broker.bootstrap, ["lp"])
    started = time.monotonic()
    empty = fetch(broker.bootstrap, "lp", 0, max_wait_ms=800, min_bytes=1)
    waited = time.monotonic() - started
    assert not empty.records and 0.7 < waited < 5

    with RawConnection(broker.bootstrap) as conn:
        conn.send(fetch_request("lp", 0, max_wait_ms=20000, min_bytes=1), 11)
        time.sleep(0.3)
        sent = time.monotonic()
        produce(broker.bootstrap, "lp", {0: batch(b"wake")})
        resp = conn.receive(FetchResponse, 11)
        assert time.monotonic() - sent < 5  # far below the 20 s max wait
    assert resp.responses[0].partitions[0].records


def test_offset_out_of_range_carries_no_offsets(broker):
    """As Kafka 4.4 answers (tests/peers/test_oracle.py, fetch_out_of_range): a failed read
    has high watermark, last stable offset and log start offset -1; clients ask ListOffsets."""
    create_topics(broker.bootstrap, ["oor"])
    produce(broker.bootstrap, "oor", {0: batch(b"a", b"b")})
    p = fetch(broker.bootstrap, "oor", 0, offset=50)
    assert (p.error_code, p.high_watermark, p.last_stable_offset, p.log_start_offset) == (1, -1, -1, -1)


def test_list_offsets_and_delete_records(broker):
    create_topics(broker.bootstrap, ["lo"])
    base = 1_700_000_000_000
    for i in range(5):
        produce(broker.bootstrap, "lo", {0: batch(b"x%d" % i, ts=base + i * 1000)})
    assert list_offsets(broker.bootstrap, "lo", -2).offset == 0
    assert list_offsets(broker.bootstrap, "lo", -1).offset == 5
    by_time = list_offsets(broker.bootstrap, "lo", base + 2500)
    assert (by_time.offset, by_time.timestamp) == (3, base + 3000)
    assert list_offsets(broker.bootstrap, "lo", base + 99999).offset == -1
    newest = list_offsets(broker.bootstrap, "lo", -3)
    assert (newest.offset, newest.timestamp) == (4, base + 4000)
    assert list_offsets(broker.bootstrap, "lo", -1, version=1).offset == 5  # v0: gone in Kafka 4 (KIP-896)

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    from confluent_kafka import TopicPartition as CkTP
    (f,) = admin.delete_records([CkTP("lo", 0, 3)]).values()
    assert f.result(10).low_watermark == 3
    assert list_offsets(broker.bootstrap, "lo", -2).offset == 3
    assert fetch(broker.bootstrap, "lo", 0, offset=1).error_code == 1


def test_seek_to_timestamp_with_clients(broker):
    create_topics(broker.bootstrap, ["seek"])
    base = int(time.time() * 1000) - 10_000
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(10):
        p.produce("seek", value=b"v%d" % i, partition=0, timestamp=base + i * 100)
        p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    (found,) = c.offsets_for_times([TopicPartition("seek", 0, base + 450)], timeout=10)
    assert found.offset == 5
    c.close()
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = KpTopicPartition("seek", 0)
    assert kc.offsets_for_times({tp: base + 700})[tp].offset == 7
    kc.close()


def test_log_append_time_topic(broker):
    create_topics(broker.bootstrap, ["lat"], config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    result = produce(broker.bootstrap, "lat", {0: batch(b"a", ts=1)})[0]
    assert result.error_code == 0 and result.log_append_time_ms >= before
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    c.assign([KpTopicPartition("lat", 0)])
    (m,) = read_assigned(c, idle_ms=5000)
    c.close()
    assert m.timestamp == result.log_append_time_ms and m.timestamp_type == 1


def test_invalid_timestamp(broker):
    create_topics(broker.bootstrap, ["ts"], config={"message.timestamp.before.max.ms": "60000"})
    result = produce(broker.bootstrap, "ts", {0: batch(b"old", ts=1000)})[0]
    assert result.error_code == 32 and result.record_errors  # INVALID_TIMESTAMP
    assert fetch(broker.bootstrap, "ts", 0).high_watermark == 0


def test_a_timestamp_more_than_an_hour_ahead_is_refused_by_default(broker):
    """Kafka 4's default message.timestamp.after.max.ms is one hour (was unbounded)."""
    create_topics(broker.bootstrap, ["ahead"])
    now = int(time.time() * 1000)
    result = produce(broker.bootstrap, "ahead", {0: batch(b"later", ts=now + 2 * 3600_000)})[0]
    assert result.error_code == 32 and result.record_errors  # INVALID_TIMESTAMP
    assert produce(broker.bootstrap, "ahead", {0: batch(b"soon", ts=now + 60_000)})[0].error_code == 0


def test_invalid_required_acks(broker):
    create_topics(broker.bootstrap, ["acks"])
    with RawConnection(broker.bootstrap) as conn:
        from kafka.protocol.producer import ProduceResponse
        resp = conn.roundtrip(produce_request("acks", {0: batch(b"a")}, acks=2), 9, ProduceResponse)
    assert resp.responses[0].partition_responses[0].error_code == 21


def test_acks_0_failure_closes_the_connection(broker):
    create_topics(broker.bootstrap, ["a0"])
    with RawConnection(broker.bootstrap) as conn:
        conn.send(produce_request("a0", {0: batch(b"fine")}, acks=0), 9)
        conn.send(produce_request("no-such-topic", {0: batch(b"lost")}, acks=0), 9)
        conn.sock.settimeout(5)
        assert conn.sock.recv(1) == b""  # closed without any response
    assert fetch(broker.bootstrap, "a0", 0).high_watermark == 1


def test_acks_all_survives_restart(broker):
    create_topics(broker.bootstrap, ["durable"], partitions=3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2})
    acked = []
    for i in range(3000):
        p.produce("durable", value=b"%d" % i, partition=i % 3,
                  on_delivery=lambda err, m: err is None and acked.append(m.value()))
    assert p.flush(30) == 0
    broker.kill()  # SIGKILL: acks=-1 on one node means the page cache has it
    broker.start()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    c.assign([KpTopicPartition("durable", i) for i in range(3)])
    got = [m.value for m in read_assigned(c, idle_ms=5000)]
    c.close()
    assert sorted(got) == sorted(acked) and len(acked) == 3000


def test_many_pipelined_requests_answer_in_order(broker):
    create_topics(broker.bootstrap, ["pipe"])
    from kafka.protocol.producer import ProduceResponse
    with RawConnection(broker.bootstrap) as conn:
        ids = [conn.send(produce_request("pipe", {0: batch(b"%d" % i)}), 9) for i in range(200)]
        offsets = []
        for expected in ids:
            frame = recv_frame(conn.sock)
            assert int.from_bytes(frame[:4], "big") == expected
            offsets.append(ProduceResponse.decode(frame[5:], version=9)
                           .responses[0].partition_responses[0].base_offset)
    assert offsets == list(range(200))


def test_a_parked_request_does_not_hold_back_the_responses_before_it(broker):
    """Pipelined requests are served one at a time and their responses coalesce into one
    write while more requests wait; a request that parks (a Fetch long poll here; in the
    chaos run that found it, a JoinGroup waiting for the rebalance) must not hold back a
    response already made. Kafka sends each response before it reads the next request.
    Held back, an OffsetFetch answered before a commit completed reached its client after
    other clients had read the newer offset: a committed offset that seemed to go back."""
    create_topics(broker.bootstrap, ["parked"])
    L = ListOffsetsRequest
    quick = L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(name="parked", partitions=[
        L.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                                timestamp=-1, max_num_offsets=1)])])
    with RawConnection(broker.bootstrap) as conn:
        conn.sock.sendall(conn.frame(quick, 7)  # one write: both queue on the connection
                          + conn.frame(fetch_request("parked", 0, max_wait_ms=4000, min_bytes=1), 11))
        started = time.monotonic()
        answer = conn.receive(ListOffsetsResponse, 7)
        assert time.monotonic() - started < 2  # not after the fetch's 4 s wait
        assert answer.topics[0].partitions[0].offset == 0
        assert not conn.receive(FetchResponse, 11).responses[0].partitions[0].records


@pytest.mark.parametrize("version", [4, 9, 12, 13, 16])
def test_fetch_versions(broker, version):
    """Topic names up to v12, topic ids from v13; one batch per produce."""
    create_topics(broker.bootstrap, ["fv"])
    produce(broker.bootstrap, "fv", {0: batch(b"a", b"b")})
    req = fetch_request("fv", 0)
    if version >= 13:
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        topic_id = admin.describe_topics(["fv"])[0]["topic_id"]
        admin.close()
        req.topics[0].topic_id = topic_id
    with RawConnection(broker.bootstrap) as conn:
        resp = conn.roundtrip(req, version, FetchResponse)
    part = resp.responses[0].partitions[0]
    assert part.error_code == 0 and part.high_watermark == 2 and len(part.records) > 61


def test_compacted_topic_is_never_deleted_by_retention(broker_factory):
    """cleanup.policy=compact: retention.ms does not delete its segments (it does for a
    delete topic beside it, in the same retention passes); DescribeConfigs says compact."""
    from confluent_kafka.admin import ConfigResource
    b = broker_factory(overrides={"log.retention.check.interval.ms": "100"})
    old = {"retention.ms": "1000", "segment.bytes": "100"}
    create_topics(b.bootstrap, ["kept"], config={**old, "cleanup.policy": "compact"})
    create_topics(b.bootstrap, ["aged"], config=old)
    hour_ago = int(time.time() * 1000) - 3_600_000
    for i in range(5):
        for topic in ("kept", "aged"):
            # keyed: a compacted topic refuses records without a key (KIP-467), as Kafka does
            sent = batch(b"v%d" % i, ts=hour_ago, key=b"k%d" % i)
            assert produce(b.bootstrap, topic, {0: sent})[0].error_code == 0
    deadline = time.monotonic() + 20
    while list_offsets(b.bootstrap, "aged", -2).offset < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list_offsets(b.bootstrap, "aged", -2).offset == 4  # all but the active segment
    assert list_offsets(b.bootstrap, "kept", -2).offset == 0
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    (described,) = admin.describe_configs([ConfigResource("topic", "kept")]).values()
    policy = described.result(10)["cleanup.policy"]
    assert policy.value == "compact" and not policy.is_default


def test_offsets_for_times_inside_one_batch(broker):
    """Several records in one batch (confluent-kafka lingers; records out of time order):
    offsets-for-times answers the first record at or after the target and MAX_TIMESTAMP
    the record carrying the max, not the batch's base offset. Kafka 4.4 answers the same
    (LogSegment.findOffsetByTimestamp reads into the batch; KIP-734 via
    RecordBatch.offsetOfMaxTimestamp): librdkafka's tests 0054 and 0081 rely on it."""
    create_topics(broker.bootstrap, ["intime"])
    base = int(time.time() * 1000) - 60_000
    timestamps = [base, base + 500, base + 200, base + 300]
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 500, "batch.num.messages": 100})
    for i, ts in enumerate(timestamps):
        p.produce("intime", value=b"v%d" % i, partition=0, timestamp=ts)
    assert p.flush(10) == 0
    assert len(fetch_batches(broker.bootstrap, "intime")) == 1  # one batch, or the test proves nothing
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    found = [c.offsets_for_times([TopicPartition("intime", 0, ts)], timeout=10)[0].offset
             for ts in (base, base + 1, base + 250, base + 501)]  # one partition per request
    c.close()
    assert found == [0, 1, 1, -1]
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = KpTopicPartition("intime", 0)
    assert kc.offsets_for_times({tp: base + 1})[tp].offset == 1
    kc.close()
    newest = list_offsets(broker.bootstrap, "intime", -3)
    assert (newest.offset, newest.timestamp) == (1, base + 500)
    by_time = list_offsets(broker.bootstrap, "intime", base + 250)
    assert (by_time.offset, by_time.timestamp) == (1, base + 500)


def fetch_batches(bootstrap, topic):
    from odradek.protocol.records import iter_batches
    return [h for _, h in iter_batches(fetch(bootstrap, topic, 0).records or b"", None)]


def test_batch_without_max_timestamp_is_found_by_time(broker):
    """sarama 1.22 writes batches whose header says max_timestamp -1 over timestamped
    records. For a CreateTime topic the broker takes the max from the records and rewrites
    the header and its CRC (Kafka's LogValidator), so offsets-for-times finds the batch."""
    from odradek.protocol.records import HEADER_SIZE, parse_header, restamped_header
    create_topics(broker.bootstrap, ["sarama"])
    base = int(time.time() * 1000) - 60_000
    plain = build_batch([(None, b"v%d" % i, (), base + d) for i, d in enumerate((0, 100, 50))])
    header = parse_header(plain)
    sarama = bytes(restamped_header(plain, 0, 0, header.partition_leader_epoch, -1)) + plain[HEADER_SIZE:]
    assert produce(broker.bootstrap, "sarama", {0: sarama})[0].error_code == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    (found,) = c.offsets_for_times([TopicPartition("sarama", 0, base + 1)], timeout=10)
    c.close()
    assert found.offset == 1
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", check_crcs=True)
    kc.assign([KpTopicPartition("sarama", 0)])
    assert [(m.offset, m.timestamp) for m in read_assigned(kc, idle_ms=5000)] == \
        [(0, base), (1, base + 100), (2, base + 50)]
    kc.close()
    (stored,) = fetch_batches(broker.bootstrap, "sarama")
    assert stored.max_timestamp == base + 100

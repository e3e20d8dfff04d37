"""Transactions and exactly-once against a real broker process, with real clients.

confluent-kafka and kafka-python transactional producers commit and abort; read_committed
consumers (confluent-kafka, kafka-python, aiokafka) see exactly the committed records in
order, read_uncommitted ones everything; send_offsets_to_transaction commits a group's
offsets with the transaction; a second producer with the same transactional.id fences
the first and aborts its open transaction; timeouts abort; the state survives a kill -9.
Bad input (a stale epoch, an unknown topic, a batch for a partition not added) gets
Kafka's error codes through a raw connection, and nothing is written.
"""

import asyncio
import time
import uuid

import pytest
from kafka.protocol.consumer import ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.producer import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)

from odradek.protocol import records as rec
from odradek.protocol.errors import ErrorCode
from tests.clients import confluent_values, create_topics, read_assigned
from tests.rawclient import RawConnection, fetch, produce_request

OVERRIDES = {
    "transaction.state.log.num.partitions": "3",
    "offsets.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "300",
}


@pytest.fixture
def txn_broker(broker_factory):
    return broker_factory(overrides=dict(OVERRIDES))


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def confluent_producer(bootstrap: str, tid: str, **extra):
    from confluent_kafka import Producer
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5, **extra})


def kafka_python_values(bootstrap: str, topic: str, isolation: str, idle_ms: int = 3000) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                      isolation_level=isolation)
    c.assign([TopicPartition(topic, 0)])
    values = [m.value for m in read_assigned(c, idle_ms)]
    c.close()
    return values


def aiokafka_values(bootstrap: str, topic: str, isolation: str, expect: int) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, isolation_level=isolation)
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            got = []
            deadline = time.time() + 10
            while time.time() < deadline:
                batch = await c.getmany(tp, timeout_ms=300)
                got += [m.value for m in batch.get(tp, [])]
                if len(got) >= expect and not batch:
                    break
            return got
        finally:
            await c.stop()
    return asyncio.run(run())


def end_offsets(bootstrap: str, topic: str) -> tuple[int, int]:
    """(high watermark, last stable offset) from ListOffsets latest, both isolation levels."""
    out = []
    with RawConnection(bootstrap) as conn:
        for isolation in (0, 1):
            L = ListOffsetsRequest
            resp = conn.roundtrip(L(replica_id=-1, isolation_level=isolation, topics=[L.ListOffsetsTopic(
                name=topic, partitions=[L.ListOffsetsTopic.ListOffsetsPartition(
                    partition_index=0, current_leader_epoch=-1, timestamp=-1)])]), 5, ListOffsetsResponse)
            out.append(resp.topics[0].partitions[0].offset)
    return out[0], out[1]


def fresh_topic_and_producer(bootstrap: str, tid: str | None = None, **extra):
    """A new topic and an initialized confluent-kafka transactional producer (of ``tid``)."""
    topic = _name("t")
    create_topics(bootstrap, [topic])
    p = confluent_producer(bootstrap, tid or _name("tx"), **extra)
    p.init_transactions(15)
    return topic, p


def test_confluent_commit_and_abort_read_by_every_client(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic, p = fresh_topic_and_producer(bootstrap)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=b"c%d" % i, partition=0)
    p.commit_transaction(15)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=b"a%d" % i, partition=0)
    p.flush(10)  # librdkafka drops what it has not sent on abort: make the records reach the log
    p.abort_transaction(15)
    p.begin_transaction()
    for i in range(2):
        p.produce(topic, value=b"d%d" % i, partition=0)
    p.commit_transaction(15)
    committed = [b"c0", b"c1", b"c2", b"d0", b"d1"]
    everything = [b"c0", b"c1", b"c2", b"a0", b"a1", b"a2", b"d0", b"d1"]
    assert confluent_values(bootstrap, topic, "read_committed", 5) == committed
    assert confluent_values(bootstrap, topic, "read_uncommitted", 8) == everything
    assert kafka_python_values(bootstrap, topic, "read_committed") == committed
    assert kafka_python_values(bootstrap, topic, "read_uncommitted") == everything
    assert aiokafka_values(bootstrap, topic, "read_committed", 5) == committed
    assert aiokafka_values(bootstrap, topic, "read_uncommitted", 8) == everything
    # 8 records and 3 markers; nothing open: the last stable offset is the high watermark
    assert end_offsets(bootstrap, topic) == (11, 11)
    # the broker returns the aborted transaction and the markers in place
    part = fetch(bootstrap, topic, 0, isolation_level=1)
    assert [(a.first_offset) for a in part.aborted_transactions] == [4]
    assert part.last_stable_offset == 11


def test_open_transaction_holds_the_last_stable_offset(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic, plain = fresh_topic_and_producer(bootstrap)
    plain.begin_transaction()
    plain.produce(topic, value=b"open", partition=0)
    plain.flush(10)
    from confluent_kafka import Producer
    other = Producer({"bootstrap.servers": bootstrap})
    other.produce(topic, value=b"after", partition=0)
    other.flush(10)
    assert end_offsets(bootstrap, topic) == (2, 0)  # LSO stops at the open transaction
    assert confluent_values(bootstrap, topic, "read_committed", 0, timeout_s=2, settle_s=1) == []
    part = fetch(bootstrap, topic, 0, isolation_level=1)
    assert part.last_stable_offset == 0 and part.high_watermark == 2
    plain.commit_transaction(15)
    assert end_offsets(bootstrap, topic) == (3, 3)
    assert confluent_values(bootstrap, topic, "read_committed", 2) == [b"open", b"after"]


def test_kafka_python_transactional_producer(txn_broker):
    from kafka import KafkaProducer
    bootstrap = txn_broker.bootstrap
    topic = _name("t")
    create_topics(bootstrap, [topic])
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=_name("tx"))
    p.init_transactions()
    p.begin_transaction()
    p.send(topic, b"k1", partition=0)
    p.commit_transaction()
    p.begin_transaction()
    p.send(topic, b"gone", partition=0)
    p.flush()
    p.abort_transaction()
    p.begin_transaction()
    p.send(topic, b"k2", partition=0)
    p.commit_transaction()
    p.close()
    assert confluent_values(bootstrap, topic, "read_committed", 2) == [b"k1", b"k2"]
    assert kafka_python_values(bootstrap, topic, "read_uncommitted") == [b"k1", b"gone", b"k2"]


def test_send_offsets_to_transaction_commits_with_it(txn_broker):
    from confluent_kafka import Consumer, Producer, TopicPartition
    bootstrap = txn_broker.bootstrap
    source, sink, group = _name("in"), _name("out"), _name("g")
    create_topics(bootstrap, [source, sink])
    feeder = Producer({"bootstrap.servers": bootstrap})
    for i in range(4):
        feeder.produce(source, value=b"v%d" % i, partition=0)
    feeder.flush(10)

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe([source])
    producer = confluent_producer(bootstrap, _name("tx"))
    producer.init_transactions(15)
    seen = []
    deadline = time.time() + 15
    while len(seen) < 4 and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            seen.append(m)
    assert [m.value() for m in seen] == [b"v0", b"v1", b"v2", b"v3"]

    def transact(messages, commit: bool):
        producer.begin_transaction()
        for m in messages:
            producer.produce(sink, value=m.value().upper(), partition=0)
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, messages[-1].offset() + 1)], consumer.consumer_group_metadata(), 15)
        if commit:
            producer.commit_transaction(15)
        else:
            producer.flush(10)
            producer.abort_transaction(15)

    transact(seen[:2], commit=True)
    [committed] = consumer.committed([TopicPartition(source, 0)], 10)
    assert committed.offset == 2
    transact(seen[2:], commit=False)  # aborted: the group's offset stays
    [committed] = consumer.committed([TopicPartition(source, 0)], 10)
    assert committed.offset == 2
    consumer.close()
    assert confluent_values(bootstrap, sink, "read_committed", 2) == [b"V0", b"V1"]


def test_second_producer_fences_the_first_and_aborts_its_transaction(txn_broker):
    from confluent_kafka import KafkaException
    bootstrap = txn_broker.bootstrap
    topic = _name("t")
    tid = _name("tx")
    create_topics(bootstrap, [topic])
    first = confluent_producer(bootstrap, tid)
    first.init_transactions(15)
    first.begin_transaction()
    first.produce(topic, value=b"zombie", partition=0)
    first.flush(10)
    second = confluent_producer(bootstrap, tid)
    second.init_transactions(15)  # fences the first, aborts its open transaction
    second.begin_transaction()
    second.produce(topic, value=b"live", partition=0)
    second.commit_transaction(15)
    with pytest.raises(KafkaException) as failed:
        first.produce(topic, value=b"late", partition=0)
        first.commit_transaction(10)
    assert failed.value.args[0].fatal() or "fenced" in str(failed.value).lower()
    assert confluent_values(bootstrap, topic, "read_committed", 1) == [b"live"]
    assert confluent_values(bootstrap, topic, "read_uncommitted", 2) == [b"zombie", b"live"]


def test_timed_out_transaction_is_aborted_and_its_producer_fenced(txn_broker):
    from confluent_kafka import KafkaException
    bootstrap = txn_broker.bootstrap
    topic, p = fresh_topic_and_producer(bootstrap, **{"transaction.timeout.ms": 1500})
    p.begin_transaction()
    p.produce(topic, value=b"slow", partition=0)
    p.flush(10)
    deadline = time.time() + 15
    while end_offsets(bootstrap, topic)[1] == 0 and time.time() < deadline:
        time.sleep(0.2)
    assert end_offsets(bootstrap, topic) == (2, 2)  # aborted by the coordinator: a marker
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    assert confluent_values(bootstrap, topic, "read_committed", 0, timeout_s=2, settle_s=1) == []


def test_transaction_timeout_above_the_brokers_bound_is_refused(broker_factory):
    b = broker_factory(overrides={**OVERRIDES, "transaction.max.timeout.ms": "5000"})
    with RawConnection(b.bootstrap) as conn:
        deadline = time.time() + 15
        while True:  # the first FindCoordinator creates __transaction_state
            r = conn.roundtrip(FindCoordinatorRequest(key="tx", key_type=1), 3, FindCoordinatorResponse)
            if r.error_code == 0 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert r.error_code == 0 and r.port == b.port
        init = _init(conn, "tx", timeout_ms=6000)
        assert init.error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT
        assert _init(conn, "tx", timeout_ms=5000).error_code == 0


def _init(conn, tid: str, timeout_ms: int = 60000, version: int = 4):
    deadline = time.time() + 15
    while True:
        r = conn.roundtrip(InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=timeout_ms,
                                                 producer_id=-1, producer_epoch=-1), version,
                           InitProducerIdResponse)
        if r.error_code not in (ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                                ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.CONCURRENT_TRANSACTIONS) \
                or time.time() > deadline:
            return r
        conn.roundtrip(FindCoordinatorRequest(key=tid, key_type=1), 3, FindCoordinatorResponse)
        time.sleep(0.2)


def _add(conn, tid, pid, epoch, topic, partitions, version=3):
    A = AddPartitionsToTxnRequest
    r = conn.roundtrip(A(v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid,
                         v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                             A.AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in
                             [(topic, partitions)]]), version, AddPartitionsToTxnResponse)
    return {(t.name, p.partition_index): p.partition_error_code
            for t in r.results_by_topic_v3_and_below for p in t.results_by_partition}


def _verify_only(conn, tid, pid, epoch, topic, partitions):
    """AddPartitionsToTxn v5 with verify_only, as a partition leader asks the coordinator."""
    A = AddPartitionsToTxnRequest
    r = conn.roundtrip(A(transactions=[A.AddPartitionsToTxnTransaction(
        transactional_id=tid, producer_id=pid, producer_epoch=epoch, verify_only=True,
        topics=[A.AddPartitionsToTxnTopic(name=topic, partitions=partitions)])]), 5, AddPartitionsToTxnResponse)
    return {(t.name, p.partition_index): p.partition_error_code
            for result in r.results_by_transaction for t in result.topic_results for p in t.results_by_partition}


def _txn_batch(pid, epoch, seq, value: bytes) -> bytes:
    return rec.build_batch([rec.Record(None, value, (), int(time.time() * 1000))], producer_id=pid,
                           producer_epoch=epoch, base_sequence=seq, transactional=True)


def txn_produce(topic: str, partition: int, batch: bytes, tid: str = "raw-tx"):
    request = produce_request(topic, {partition: batch})
    request.transactional_id = tid
    return request


def test_bad_input_gets_kafkas_errors_and_writes_nothing(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = _name("t")
    create_topics(bootstrap, [topic], partitions=2)
    with RawConnection(bootstrap) as conn:
        init = _init(conn, "raw-tx")
        assert init.error_code == 0
        pid, epoch = init.producer_id, init.producer_epoch
        # an unknown topic: it gets UNKNOWN_TOPIC_OR_PARTITION, the others are not attempted
        A = AddPartitionsToTxnRequest
        r = conn.roundtrip(A(v3_and_below_transactional_id="raw-tx", v3_and_below_producer_id=pid,
                             v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                                 A.AddPartitionsToTxnTopic(name=topic, partitions=[0]),
                                 A.AddPartitionsToTxnTopic(name="no-such-topic", partitions=[0])]),
                           3, AddPartitionsToTxnResponse)
        errors = {(t.name, p.partition_index): p.partition_error_code
                  for t in r.results_by_topic_v3_and_below for p in t.results_by_partition}
        assert errors == {(topic, 0): ErrorCode.OPERATION_NOT_ATTEMPTED,
                          ("no-such-topic", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        # a transactional batch without the request's transactional id
        resp = conn.roundtrip(produce_request(topic, {0: _txn_batch(pid, epoch, 0, b"x")}), 9, ProduceResponse)
        assert resp.responses[0].partition_responses[0].error_code == \
            ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        # a transactional batch for a partition the transaction does not hold: refused
        resp = conn.roundtrip(txn_produce(topic, 0, _txn_batch(pid, epoch, 0, b"x")), 9, ProduceResponse)
        assert resp.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_TXN_STATE
        assert _add(conn, "raw-tx", pid, epoch, topic, [0]) == {(topic, 0): 0}
        # a broker's verify-only question (KIP-890), answered as Kafka 4.4's coordinator does
        assert _verify_only(conn, "raw-tx", pid, epoch, topic, [0, 1]) == {
            (topic, 0): ErrorCode.NONE, (topic, 1): ErrorCode.TRANSACTION_ABORTABLE}
        assert _verify_only(conn, "raw-tx", pid, epoch - 1, topic, [0]) == {(topic, 0): ErrorCode.PRODUCER_FENCED}
        for tid, producer_id in (("raw-tx", pid + 1000), ("no-such-tx", pid)):
            assert _verify_only(conn, tid, producer_id, epoch, topic, [0]) == {
                (topic, 0): ErrorCode.INVALID_PRODUCER_ID_MAPPING}
        # a batch of a producer id the transactional id does not have: refused, not written
        resp = conn.roundtrip(txn_produce(topic, 0, _txn_batch(pid + 1000, 0, 0, b"x")), 9, ProduceResponse)
        assert resp.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_PRODUCER_ID_MAPPING
        # partition 1 still is not in it: Produce v11+ knows TRANSACTION_ABORTABLE (KIP-890)
        for version, expected in ((9, ErrorCode.INVALID_TXN_STATE), (11, ErrorCode.TRANSACTION_ABORTABLE)):
            resp = conn.roundtrip(txn_produce(topic, 1, _txn_batch(pid, epoch, 0, b"x")), version, ProduceResponse)
            assert resp.responses[0].partition_responses[0].error_code == expected
        resp = conn.roundtrip(txn_produce(topic, 0, _txn_batch(pid, epoch, 0, b"in")), 9, ProduceResponse)
        assert resp.responses[0].partition_responses[0].error_code == 0
        # a client's control batch is refused
        marker = rec.build_marker_batch(pid, epoch, True, 0, 1)
        resp = conn.roundtrip(txn_produce(topic, 0, marker), 9, ProduceResponse)
        assert resp.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_RECORD
        # EndTxn with a stale epoch or a wrong producer id
        for version, expected in ((1, ErrorCode.INVALID_PRODUCER_EPOCH), (3, ErrorCode.PRODUCER_FENCED)):
            r = conn.roundtrip(EndTxnRequest(transactional_id="raw-tx", producer_id=pid,
                                             producer_epoch=epoch - 1, committed=True), version, EndTxnResponse)
            assert r.error_code == expected
        r = conn.roundtrip(EndTxnRequest(transactional_id="raw-tx", producer_id=pid + 1000,
                                         producer_epoch=epoch, committed=True), 3, EndTxnResponse)
        assert r.error_code == ErrorCode.INVALID_PRODUCER_ID_MAPPING
        # TxnOffsetCommit from a stale epoch
        T = TxnOffsetCommitRequest
        r = conn.roundtrip(T(transactional_id="raw-tx", group_id="g", producer_id=pid, producer_epoch=epoch - 1,
                             generation_id=-1, member_id="", group_instance_id=None, topics=[
                                 T.TxnOffsetCommitRequestTopic(name=topic, partitions=[
                                     T.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                                         partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                                         committed_metadata="")])]), 3, TxnOffsetCommitResponse)
        assert r.topics[0].partitions[0].error_code == ErrorCode.PRODUCER_FENCED
        # abort with the right epoch: the one record is aborted
        r = conn.roundtrip(EndTxnRequest(transactional_id="raw-tx", producer_id=pid, producer_epoch=epoch,
                                         committed=False), 3, EndTxnResponse)
        assert r.error_code == 0
        r = conn.roundtrip(EndTxnRequest(transactional_id="raw-tx", producer_id=pid, producer_epoch=epoch,
                                         committed=True), 3, EndTxnResponse)
        assert r.error_code == ErrorCode.INVALID_TXN_STATE  # aborted already
    # nothing but the one accepted record and its marker was written
    assert end_offsets(bootstrap, topic) == (2, 2)
    part = fetch(bootstrap, topic, 1)
    assert part.high_watermark == 0


def test_transaction_state_and_aborted_index_survive_kill_9(broker_factory, tmp_path):
    data = tmp_path / "data"
    b = broker_factory(data_dir=data, overrides=dict(OVERRIDES))
    tid = _name("tx")
    topic, p = fresh_topic_and_producer(b.bootstrap, tid)
    p.begin_transaction()
    p.produce(topic, value=b"aborted", partition=0)
    p.flush(10)
    p.abort_transaction(15)
    p.begin_transaction()
    p.produce(topic, value=b"open", partition=0)
    p.flush(10)
    del p
    b.kill()
    b2 = broker_factory(data_dir=data, port=b.port, overrides=dict(OVERRIDES))
    # the open transaction is still open after the restart: the LSO waits at its start
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if end_offsets(b2.bootstrap, topic) == (3, 2):
                break
        except Exception:  # noqa: BLE001 - the partition may not be led yet
            pass
        time.sleep(0.2)
    assert end_offsets(b2.bootstrap, topic) == (3, 2)
    assert list((data / f"{topic}-0").glob("*.txnindex"))
    part = fetch(b2.bootstrap, topic, 0, isolation_level=1)
    assert [a.first_offset for a in part.aborted_transactions] == [0]
    # a new producer with the id (loaded from __transaction_state) aborts the open one
    q = confluent_producer(b2.bootstrap, tid)
    q.init_transactions(15)
    q.begin_transaction()
    q.produce(topic, value=b"new", partition=0)
    q.commit_transaction(15)
    assert confluent_values(b2.bootstrap, topic, "read_committed", 1) == [b"new"]


def _offset_fetch(conn, group: str, topic: str, require_stable: bool):
    from kafka.protocol.consumer.group import OffsetFetchRequest, OffsetFetchResponse
    F = OffsetFetchRequest
    r = conn.roundtrip(F(group_id=group, topics=[F.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])],
                         require_stable=require_stable), 7, OffsetFetchResponse)
    p = r.topics[0].partitions[0]
    return p.error_code, p.committed_offset


def _txn_offset_commit(conn, tid, group, pid, epoch, topic, offset, generation=-1, member_id="", version=3):
    T = TxnOffsetCommitRequest
    r = conn.roundtrip(T(transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch,
                         generation_id=generation, member_id=member_id, group_instance_id=None, topics=[
                             T.TxnOffsetCommitRequestTopic(name=topic, partitions=[
                                 T.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                                     partition_index=0, committed_offset=offset, committed_leader_epoch=-1,
                                     committed_metadata="")])]), version, TxnOffsetCommitResponse)
    return r.topics[0].partitions[0].error_code


def test_transactional_offsets_are_unstable_until_the_end_and_survive_kill_9(broker_factory, tmp_path):
    from kafka.protocol.producer import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse
    data = tmp_path / "data"
    b = broker_factory(data_dir=data, overrides=dict(OVERRIDES))
    topic, group, tid = _name("t"), _name("g"), _name("tx")
    create_topics(b.bootstrap, [topic])
    with RawConnection(b.bootstrap) as conn:
        init = _init(conn, tid)
        pid, epoch = init.producer_id, init.producer_epoch
        deadline = time.time() + 15
        while (r := conn.roundtrip(AddOffsetsToTxnRequest(transactional_id=tid, producer_id=pid,
                                                          producer_epoch=epoch, group_id=group), 2,
                                   AddOffsetsToTxnResponse)).error_code and time.time() < deadline:
            time.sleep(0.2)  # __consumer_offsets is created on the way
        assert r.error_code == 0
        # from a fenced member of the live group (KIP-447): refused, nothing written
        from confluent_kafka import Consumer
        member = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
        member.subscribe([topic])
        while not member.assignment() and time.time() < deadline:
            member.poll(0.2)
        assert member.assignment()
        assert _txn_offset_commit(conn, tid, group, pid, epoch, topic, 5, 1, "zombie") == \
            ErrorCode.UNKNOWN_MEMBER_ID
        assert _txn_offset_commit(conn, tid, group, pid, epoch, topic, 5, 999, member.memberid()) == \
            ErrorCode.ILLEGAL_GENERATION
        assert _offset_fetch(conn, group, topic, require_stable=True) == (0, -1)
        member.close()
        while _txn_offset_commit(conn, tid, group, pid, epoch, topic, 7) and time.time() < deadline:
            time.sleep(0.2)
        # pending in the open transaction: KIP-447's require_stable says so
        assert _offset_fetch(conn, group, topic, require_stable=True) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
        assert _offset_fetch(conn, group, topic, require_stable=False) == (0, -1)
    b.kill()
    b2 = broker_factory(data_dir=data, port=b.port, overrides=dict(OVERRIDES))
    with RawConnection(b2.bootstrap) as conn:
        # both coordinators reloaded: the pending offset from __consumer_offsets' transactional
        # batch, the Ongoing transaction from __transaction_state
        deadline = time.time() + 20
        while (got := _offset_fetch(conn, group, topic, True))[0] != ErrorCode.UNSTABLE_OFFSET_COMMIT:
            assert time.time() < deadline, got
            time.sleep(0.2)
        while (r := conn.roundtrip(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                                                 committed=True), 3, EndTxnResponse)).error_code \
                and time.time() < deadline:
            time.sleep(0.2)
        assert r.error_code == 0
        assert _offset_fetch(conn, group, topic, require_stable=True) == (0, 7)


def _end_v5(conn, tid, pid, epoch, commit: bool):
    r = conn.roundtrip(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                                     committed=commit), 5, EndTxnResponse)
    return r.error_code, r.producer_id, r.producer_epoch


def _produce_v12(conn, tid, topic, partition, pid, epoch, seq, value: bytes):
    resp = conn.roundtrip(txn_produce(topic, partition, _txn_batch(pid, epoch, seq, value), tid), 12,
                          ProduceResponse)
    return resp.responses[0].partition_responses[0].error_code


def test_transactions_v2_on_the_wire_and_across_kill_9(broker_factory, tmp_path):
    """KIP-890 part 2 as a v2 producer speaks it: Produce v12 and TxnOffsetCommit v5 add
    their partitions implicitly (no AddPartitionsToTxn / AddOffsetsToTxn), EndTxn v5 bumps
    the epoch and answers it, so a late write of an ended transaction is refused; an abort
    needs no partition; a retried EndTxn gets the same answer, also after the coordinator
    reloaded its (v1, flexible) records from __transaction_state."""
    data = tmp_path / "data"
    b = broker_factory(data_dir=data, overrides=dict(OVERRIDES))
    topic, group, tid = _name("t"), _name("g"), _name("tx")
    create_topics(b.bootstrap, [topic], partitions=2)
    with RawConnection(b.bootstrap) as conn:
        init = _init(conn, tid)
        assert init.error_code == 0
        pid = init.producer_id
        assert _produce_v12(conn, tid, topic, 0, pid, 0, 0, b"c0") == 0
        deadline = time.time() + 15  # __consumer_offsets is created on the way
        while (e := _txn_offset_commit(conn, tid, group, pid, 0, topic, 9, version=5)) and time.time() < deadline:
            conn.roundtrip(FindCoordinatorRequest(key=group, key_type=0), 3, FindCoordinatorResponse)
            time.sleep(0.2)
        assert e == 0
        assert _offset_fetch(conn, group, topic, require_stable=True) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
        assert _end_v5(conn, tid, pid, 0, True) == (0, pid, 1)
        assert _offset_fetch(conn, group, topic, require_stable=True) == (0, 9)
        assert _end_v5(conn, tid, pid, 0, True) == (0, pid, 1)  # a retry: the same answer
        assert _end_v5(conn, tid, pid, 0, False)[0] == ErrorCode.INVALID_TXN_STATE
        # a late write of the committed transaction (epoch 0): its partition has the
        # marker's epoch 1, another partition is refused by the coordinator (fenced)
        assert _produce_v12(conn, tid, topic, 0, pid, 0, 1, b"late") == ErrorCode.INVALID_PRODUCER_EPOCH
        assert _produce_v12(conn, tid, topic, 1, pid, 0, 0, b"late") == ErrorCode.INVALID_PRODUCER_EPOCH
        # the next transaction runs at epoch 1 from sequence 0 and is aborted: epoch 2
        assert _produce_v12(conn, tid, topic, 1, pid, 1, 0, b"a0") == 0
        assert _end_v5(conn, tid, pid, 1, False) == (0, pid, 2)
        # an abort with nothing in the transaction still ends it (epoch 3); a commit cannot
        assert _end_v5(conn, tid, pid, 2, True)[0] == ErrorCode.INVALID_TXN_STATE
        assert _end_v5(conn, tid, pid, 2, False) == (0, pid, 3)
        assert _produce_v12(conn, tid, topic, 0, pid, 3, 0, b"open") == 0
    b.kill()
    b2 = broker_factory(data_dir=data, port=b.port, overrides=dict(OVERRIDES))
    with RawConnection(b2.bootstrap) as conn:
        deadline = time.time() + 20
        while (r := _end_v5(conn, tid, pid, 3, True))[0] in (
                ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.CONCURRENT_TRANSACTIONS) and time.time() < deadline:
            conn.roundtrip(FindCoordinatorRequest(key=tid, key_type=1), 3, FindCoordinatorResponse)
            time.sleep(0.2)
        assert r == (0, pid, 4)  # the reloaded Ongoing transaction (a v2 one) commits "open"
        assert _end_v5(conn, tid, pid, 3, True) == (0, pid, 4)
    assert confluent_values(b2.bootstrap, topic, "read_committed", 2, partitions=2) == [b"c0", b"open"]


def test_aiokafka_transactional_producer_on_v0_apis(txn_broker):
    """aiokafka 0.14 speaks v0 of the transaction APIs (no KIP-447 group metadata)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTP
    bootstrap = txn_broker.bootstrap
    topic, source, group = _name("t"), _name("in"), _name("g")
    create_topics(bootstrap, [topic, source])

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=_name("tx"))
        await p.start()
        try:
            async with p.transaction():
                await p.send_and_wait(topic, b"k1", partition=0)
                await p.send_offsets_to_transaction({AioTP(source, 0): 5}, group)
            await p.begin_transaction()
            await p.send_and_wait(topic, b"gone", partition=0)
            await p.abort_transaction()
            async with p.transaction():
                await p.send_and_wait(topic, b"k2", partition=0)
        finally:
            await p.stop()
    asyncio.run(run())
    assert confluent_values(bootstrap, topic, "read_committed", 2) == [b"k1", b"k2"]
    assert aiokafka_values(bootstrap, topic, "read_uncommitted", 3) == [b"k1", b"gone", b"k2"]
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    [committed] = c.committed([TopicPartition(source, 0)], 10)
    c.close()
    assert committed.offset == 5


def test_consume_transform_produce_with_a_killed_member_is_exact(broker_factory):
    """Three members read topic A in one group and write topic B, committing their offsets
    in their transactions; one is SIGKILLed mid-transaction. Its transaction times out and
    is aborted, its partitions go to the others, which resume from the committed offsets
    (UNSTABLE_OFFSET_COMMIT until the abort): B holds each input exactly once."""
    import signal
    import subprocess
    import sys
    b = broker_factory(overrides=dict(OVERRIDES))
    source, sink, group = _name("a"), _name("b"), _name("ctp")
    create_topics(b.bootstrap, [source, sink], partitions=3)
    from confluent_kafka import Producer
    feeder = Producer({"bootstrap.servers": b.bootstrap})
    expected = []
    for i in range(300):
        feeder.produce(source, value=b"r%d" % i, partition=i % 3)
        expected.append(b"r%d-out" % i)
    assert feeder.flush(15) == 0
    workers = {}

    def start(mode: str, n: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tests.integration.txn_worker", b.bootstrap, source, sink,
                                 group, f"{group}-tx{n}", mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        workers["victim"] = victim = start("victim", 0)
        deadline = time.time() + 30
        line = ""
        while "IN_TXN" not in line and time.time() < deadline:
            line = victim.stdout.readline()
        assert "IN_TXN" in line, victim.stderr.read() if victim.poll() is not None else line
        workers["w1"], workers["w2"] = start("normal", 1), start("normal", 2)
        time.sleep(2)  # let them join: the rebalance puts a partition of the victim's elsewhere
        victim.send_signal(signal.SIGKILL)
        got = confluent_values(b.bootstrap, sink, "read_committed", 300, partitions=3, timeout_s=120, settle_s=3)
    finally:
        for proc in workers.values():
            proc.kill()
            proc.wait()
    assert len(got) == 300, (len(got), len(set(got)))
    assert sorted(got) == sorted(expected)  # every input once: nothing lost, nothing twice
    everything = confluent_values(b.bootstrap, sink, "read_uncommitted", 301, partitions=3, timeout_s=10)
    assert len(everything) > 300  # the victim's aborted output is in the log, hidden from read_committed


def test_unused_transactional_id_expires(broker_factory):
    from kafka.protocol.admin import DescribeTransactionsRequest, DescribeTransactionsResponse
    b = broker_factory(overrides={**OVERRIDES, "transactional.id.expiration.ms": "1500",
                                  "transaction.remove.expired.transaction.cleanup.interval.ms": "300"})
    tid = _name("tx")
    topic, p = fresh_topic_and_producer(b.bootstrap, tid)
    p.begin_transaction()
    p.produce(topic, value=b"v", partition=0)
    p.commit_transaction(15)
    with RawConnection(b.bootstrap) as conn:
        def state():
            r = conn.roundtrip(DescribeTransactionsRequest(transactional_ids=[tid]), 0, DescribeTransactionsResponse)
            return r.transaction_states[0].error_code, r.transaction_states[0].transaction_state
        assert state() == (0, "CompleteCommit")
        deadline = time.time() + 15
        while state()[0] == 0 and time.time() < deadline:
            time.sleep(0.3)
        assert state() == (ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, "")
        # the id starts afresh: a new producer id at epoch 0
        again = _init(conn, tid)
        assert again.error_code == 0 and again.producer_epoch == 0

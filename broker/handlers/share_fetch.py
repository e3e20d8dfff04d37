"""ShareFetch (v1-v2, KIP-932): acknowledge, then acquire records of a share group's
partitions for one member, in a share session (broker.share.session).

Order within a request: the session's epoch is checked (a session error answers the
whole request); unless the epoch is -1 (acknowledge and close: what the member still
holds is released; so it is when the connection that opened the session closes),
records are acquired once; then the acknowledgement batches of each partition are
applied (each partition's AcknowledgeErrorCode: INVALID_RECORD_STATE, with Kafka's
words, for records this member does not hold now, e.g. after its lock expired), so
records this request releases go to the next fetch, not back to this one (as Kafka's
answers show); with nothing acquired, records are then awaited. Records are read from
the session's partitions this node leads and acquired: up to MaxRecords, each locked for
the group's share.record.lock.duration.ms, which AcquisitionLockTimeoutMs reports. v2's
ShareAcquireMode (KIP-1206): batch_optimized (0, v1's only mode) takes whole batches, so
MaxRecords may be exceeded to the end of one; record_limit (1) never more than MaxRecords
in all (an unknown mode is UNKNOWN_SERVER_ERROR, as Kafka 4.4 answers). RENEW
acknowledgements (KIP-1222) need v2 and IsRenewAck, else that partition's
AcknowledgeErrorCode is INVALID_REQUEST (INVALID_RECORD_STATE while the group's
share.renew.acknowledge.enable is false); a request with IsRenewAck only acknowledges (no
records, no wait) and must have MaxWaitMs, MinBytes, MaxBytes and MaxRecords at 0, else
the whole answer is INVALID_REQUEST (Kafka 4.4's answers). Under the group's
share.isolation.level=read_committed records are read up to the last stable offset and
the batches of aborted transactions are archived, never handed out; transaction markers
are archived as they are read (never handed out) in either level. With nothing acquired the request waits up to MaxWaitMs, woken by appends or
the next lock expiry. Records go out as whole batches with the AcquiredRecords ranges
the client keeps (records outside them are not its to process). A partition this node
does not lead is NOT_LEADER_OR_FOLLOWER; an unknown topic id UNKNOWN_TOPIC_ID. With
share.version finalized at 0 the answer is UNSUPPORTED_VERSION (as ShareGroupHeartbeat's).
Authorization: READ on the group, else GROUP_AUTHORIZATION_FAILED; READ on each topic,
else TOPIC_AUTHORIZATION_FAILED for its partitions.
"""

import asyncio
import uuid

from odradek.broker.authorizer import GROUP, TOPIC
from odradek.broker.handlers import handles
from odradek.broker.handlers.share_group_heartbeat import DISABLED, share_groups_enabled
from odradek.broker.share.partition import AcquireMode, aborted_batches
from odradek.broker.share.session import CLOSE_EPOCH
from odradek.protocol import records as rec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.messages import ShareFetchRequest, ShareFetchResponse

R = ShareFetchResponse
LOADING_POLL_S = 0.05  # a share partition loading on a new leader is looked at again after this
LOAD_WAIT_S = 2.0  # how long a fetch waits for its partitions' state to load, whatever MaxWaitMs
T = R.ShareFetchableTopicResponse
P = T.PartitionData


def ack_batches(partition) -> list[tuple[int, int, list[int]]]:
    return [(b.first_offset, b.last_offset, list(b.acknowledge_types))
            for b in partition.acknowledgement_batches]


def batch_headers(data: bytes) -> list[tuple[rec.BatchHeader, int]]:
    """The header and end position of each batch in ``data``::

        base_offset int64 | batch_length int32 | ... (61-byte header, see protocol.records)
    """
    out = []
    pos = 0
    while pos + rec.HEADER_SIZE <= len(data):
        header = rec.parse_header(data, pos)
        pos += header.size
        out.append((header, pos))
    return out


def check_request(request, ctx) -> tuple[ErrorCode, str | None]:
    if not share_groups_enabled(ctx):
        return ErrorCode.UNSUPPORTED_VERSION, DISABLED
    if not request.group_id:
        return ErrorCode.INVALID_GROUP_ID, "Group id must be set."
    if not request.member_id:
        return ErrorCode.INVALID_REQUEST, "Member id must be set."
    return ErrorCode.NONE, None


def leader_of(ctx, topic: str | None, index: int, cls=P.LeaderIdAndEpoch):
    """Kafka's CurrentLeader of a partition (-1 when unknown), as a ``cls``."""
    t = ctx.broker.image.topics.get(topic) if topic else None
    p = t.partitions.get(index) if t is not None else None
    return cls(leader_id=p.leader if p is not None else -1,
                           leader_epoch=p.leader_epoch if p is not None else -1)


def share_partition(ctx, group_id: str, topic_id: uuid.UUID, index: int):
    """(topic name, the group's share partition) of a partition this node leads."""
    topic = ctx.broker.image.topics_by_id.get(str(topic_id))
    if topic is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID)
    if not ctx.may(TOPIC, topic.name):
        raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    return topic.name, ctx.broker.shares.partition(group_id, topic.name, topic_id, index)


async def _read(ctx, topic: str, index: int, offset: int, max_bytes: int, max_offset: int) -> bytes:
    read = ctx.broker.replicas.read(topic, index, offset, max_bytes, min_one=True, max_offset=max_offset)
    try:  # the copy is disk I/O: off the event loop
        return await asyncio.get_running_loop().run_in_executor(None, read.read_bytes)
    finally:
        read.release()


@handles(ShareFetchRequest, 1, 2)
async def handle(ctx, request):
    shares = ctx.broker.shares
    group_id, member_id, epoch = request.group_id, request.member_id, request.share_session_epoch
    lock_ms = shares.lock_duration_ms(group_id) if group_id else 0

    def answer(error, message=None, responses=()):
        return R(throttle_time_ms=0, error_code=error, error_message=message,
                 acquisition_lock_timeout_ms=0 if error else lock_ms,  # (0 on an error, as Kafka)
                 responses=list(responses), node_endpoints=[])

    error, message = check_request(request, ctx)
    if error:
        return answer(error, message)
    if not ctx.may(GROUP, group_id):
        return answer(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    renew = ctx.header.api_version >= 2 and request.is_renew_ack
    if renew and (request.max_wait_ms or request.min_bytes or request.max_bytes or request.max_records):
        return answer(ErrorCode.INVALID_REQUEST)  # a renewal fetches nothing
    mode = request.share_acquire_mode if ctx.header.api_version >= 2 else AcquireMode.BATCH_OPTIMIZED
    if mode not in AcquireMode._value2member_map_:
        return answer(ErrorCode.UNKNOWN_SERVER_ERROR, f"Unknown share acquire mode {mode}")
    named = [(t.topic_id, p.partition_index) for t in request.topics for p in t.partitions]
    forgotten = [(t.topic_id, p) for t in request.forgotten_topics_data for p in t.partitions]
    error, session, replaced = shares.sessions.fetch(group_id, member_id, epoch, named, forgotten,
                                                     ctx.connection)
    if error:
        return answer(error)
    assert session is not None
    if replaced is not None:
        shares.release_session(replaced)
    results: dict[tuple[uuid.UUID, int], P] = {}

    def result(topic_id: uuid.UUID, index: int, topic: str | None) -> P:
        r = results.get((topic_id, index))
        if r is None:
            r = results[(topic_id, index)] = P(
                partition_index=index, error_code=ErrorCode.NONE, acknowledge_error_code=ErrorCode.NONE,
                current_leader=leader_of(ctx, topic, index), records=b"", acquired_records=[])
        return r

    async def acknowledge() -> None:
        for t in request.topics:
            for p in t.partitions:
                if not p.acknowledgement_batches:
                    continue
                try:
                    name, sp = share_partition(ctx, group_id, t.topic_id, p.partition_index)
                except KafkaError as e:
                    result(t.topic_id, p.partition_index, None).acknowledge_error_code = e.code
                    continue
                r = result(t.topic_id, p.partition_index, name)
                if sp is None:  # loading on a new leader: nothing is acquired here yet
                    r.acknowledge_error_code = ErrorCode.INVALID_RECORD_STATE
                    continue
                r.acknowledge_error_code, r.acknowledge_error_message = await shares.acknowledge(
                    sp, member_id, ack_batches(p), renew)

    if epoch == CLOSE_EPOCH:
        await acknowledge()
        shares.release_session(session)
        shares.sessions.close(session)
        return answer(ErrorCode.NONE, responses=_grouped(results))
    if renew:  # acknowledgements only: the answer names the partitions acknowledged (as Kafka's)
        await acknowledge()
        return answer(ErrorCode.NONE, responses=_grouped(results))
    for topic_id, index in named:  # a full answer names every partition it was asked for
        topic = ctx.broker.image.topics_by_id.get(str(topic_id))
        result(topic_id, index, topic.name if topic else None)
    # As Kafka: what this request releases is not acquired again by the same fetch (it goes
    # to the next one, usually another member's): one pass first, then the acknowledgements,
    # then the wait for records if that pass found none.
    loop = asyncio.get_running_loop()
    acquired = await _fetch(ctx, request, session, result, loop.time(), AcquireMode(mode))
    await acknowledge()
    if not acquired:
        await _fetch(ctx, request, session, result, loop.time() + max(request.max_wait_ms, 0) / 1000,
                     AcquireMode(mode))
    return answer(ErrorCode.NONE, responses=_grouped(results))


async def _fetch(ctx, request, session, result, deadline: float, mode: AcquireMode) -> int:
    """Acquire from the session's partitions, waiting until ``deadline`` (the loop's time)
    for something; returns how many records were acquired."""
    shares = ctx.broker.shares
    read_committed = shares.read_committed(session.group_id)
    loop = asyncio.get_running_loop()
    max_records = request.max_records if request.max_records > 0 else 500
    waited_for_load = False
    while True:
        keys, acquired, loading, skipped_only = [], 0, [], False
        remaining = request.max_bytes if request.max_bytes > 0 else 2**31 - 1
        for topic_id, index in sorted(session.partitions, key=lambda k: (str(k[0]), k[1])):
            try:
                name, sp = share_partition(ctx, session.group_id, topic_id, index)
            except KafkaError as e:
                result(topic_id, index, None).error_code = e.code
                continue
            r = result(topic_id, index, name)
            if sp is None:  # its state loads from the share coordinator
                loading.append(shares.loading[(session.group_id, topic_id, index)])
                continue
            keys.append((name, index))
            if acquired >= max_records or remaining <= 0:
                continue
            offset = sp.next_fetch_offset()
            partition = ctx.broker.replicas.leader_partition(name, index)
            bound = partition.last_stable_offset if read_committed else partition.log.high_watermark
            if offset >= bound or not sp.can_acquire():
                continue
            try:
                data = await _read(ctx, name, index, offset, remaining, bound)
            except KafkaError as e:
                r.error_code = e.code
                continue
            headers = batch_headers(data)
            skipped = frozenset(h.base_offset for h, _ in headers if h.is_control)
            if read_committed:
                skipped |= aborted_batches(
                    [(h.base_offset, h.last_offset, h.producer_id, h.is_transactional) for h, _ in headers],
                    [(t.producer_id, t.first_offset, t.last_offset)
                     for t in partition.txn_index.collect(offset, bound)])
            window = sp.end_offset
            r.error_code, got = await shares.acquire(
                sp, session.member_id, [(h.base_offset, h.last_offset) for h, _ in headers],
                max_records - acquired, mode, skipped)
            if not got:
                # only markers or aborted batches read: archived, read on at once
                skipped_only = skipped_only or sp.end_offset > window
                continue
            # Send the batches up to the last one holding an acquired record.
            end = max(pos for h, pos in headers if h.base_offset <= got[-1].last_offset)
            r.records = data[:end]
            r.acquired_records = [P.AcquiredRecords(first_offset=a.first_offset, last_offset=a.last_offset,
                                                    delivery_count=a.delivery_count) for a in got]
            acquired += sum(a.last_offset - a.first_offset + 1 for a in got)
            remaining -= end
        left = deadline - loop.time()
        if skipped_only and not acquired:
            continue
        if loading and not acquired and not waited_for_load:
            # Once per fetch, even with MaxWaitMs 0: the load is quick unless the share
            # coordinator moves, and a first fetch of a group would otherwise come back empty.
            waited_for_load = True
            await asyncio.wait(loading, timeout=LOAD_WAIT_S)
            continue
        if acquired or left <= 0 or not (keys or loading) or any(r.error_code for r in _all(result, session)):
            return acquired
        next_deadline = shares.next_lock_deadline_ms(session.group_id)
        if next_deadline is not None:
            left = max(0.0, min(left, (next_deadline - shares.now_ms()) / 1000 + 0.001))
        if loading:
            left = min(left, LOADING_POLL_S)
        if keys:
            await ctx.broker.replicas.wait_for_data(keys, left)
        else:
            await asyncio.sleep(left)


def _all(result, session) -> list[P]:
    return [result(t, i, None) for t, i in session.partitions]


def _grouped(results: dict[tuple[uuid.UUID, int], P]) -> list[T]:
    topics: dict[uuid.UUID, list[P]] = {}
    for (topic_id, _), r in sorted(results.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        topics.setdefault(topic_id, []).append(r)
    return [T(topic_id=topic_id, partitions=ps) for topic_id, ps in topics.items()]

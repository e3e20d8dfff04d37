"""The ISR and high-watermark rules (pure), including KIP-497."""

from odradek.replication.isr import IsrState

LAG = 3000


def leader(**kw) -> IsrState:
    args = dict(node_id=1, replicas=[1, 2, 3], isr=[1, 2, 3], leader_epoch=5, partition_epoch=7,
                leader_epoch_start_offset=0, high_watermark=0, log_end_offset=0, lag_time_max_ms=LAG,
                now_ms=0)
    args.update(kw)
    return IsrState(**args)


def test_high_watermark_is_the_smallest_isr_log_end():
    s = leader()
    assert not s.on_append(10)
    s.on_follower_fetch(2, 10, 100)
    assert s.high_watermark == 0  # replica 3 has not fetched
    assert s.on_follower_fetch(3, 6, 100)
    assert s.high_watermark == 6
    s.on_follower_fetch(3, 4, 200)  # a follower that truncated cannot pull the HW back
    assert s.high_watermark == 6


def test_lagging_follower_leaves_and_rejoins():
    s = leader()
    s.on_append(10)
    s.on_follower_fetch(2, 10, 1000)
    s.on_follower_fetch(3, 10, 1000)  # both caught up at 1000
    s.on_append(20)
    s.on_follower_fetch(3, 10, 1500)  # behind from now on
    assert s.proposed_isr(1000 + LAG - 1) is None
    s.on_follower_fetch(2, 20, 4500)
    assert s.proposed_isr(4500) == [1, 2]  # 3 has not caught up for longer than the lag
    assert s.proposed_isr(4600) is None  # one change in flight at a time
    s.on_isr_committed([1, 2], 8)
    s.on_follower_fetch(3, 20, 4700)
    assert s.proposed_isr(4700) == [1, 2, 3]


def test_kip_497_no_hw_advance_on_an_uncommitted_shrink():
    s = leader()
    s.on_append(10)
    s.on_follower_fetch(3, 0, 0)
    s.on_follower_fetch(2, 10, LAG + 1)
    assert s.proposed_isr(LAG + 1) == [1, 2]
    assert s.high_watermark == 0  # 3 still counts: the shrink is not committed
    s.on_isr_rejected()  # an isolated leader never gets it committed
    assert s.high_watermark == 0
    assert s.proposed_isr(LAG + 3) == [1, 2]
    assert s.on_isr_committed([1, 2], 8) and s.high_watermark == 10


def test_rejoin_needs_the_high_watermark_and_the_current_epoch():
    s = leader(isr=[1, 2], leader_epoch_start_offset=8, high_watermark=5, log_end_offset=10)
    s.on_follower_fetch(2, 10, 10)
    s.on_follower_fetch(3, 7, 10)  # past the HW but not into this epoch
    assert s.proposed_isr(10) is None
    assert s.high_watermark == 10  # the ISR is [1, 2], both at 10
    s.on_follower_fetch(3, 10, 20)
    assert s.proposed_isr(20) == [1, 2, 3]


def test_single_replica():
    s = leader(replicas=[1], isr=[1])
    assert s.on_append(3) and s.high_watermark == 3
    assert s.proposed_isr(10**6) is None


def test_in_sync_count_drops_before_the_shrink_commits():
    s = leader()
    s.on_append(10)
    s.on_follower_fetch(2, 10, 0)
    s.on_follower_fetch(3, 10, 0)
    assert s.in_sync_count(LAG) == 3
    assert s.in_sync_count(LAG + 1) == 1  # both followers silent past the lag time
    assert s.isr == [1, 2, 3]  # the committed ISR is unchanged


def test_a_follower_that_stopped_fetching_is_not_proposed_again():
    """A dead follower that was caught up when it died must not be re-added on a timer:
    expansion happens on a fetch, as in Kafka (a fenced node's re-add is refused)."""
    s = leader()
    s.on_append(10)
    s.on_follower_fetch(2, 10, 100)
    s.on_follower_fetch(3, 10, 100)  # 3 dies right after this fetch
    s.on_isr_committed([1, 2], 8)  # the controller fenced 3 and dropped it
    s.on_follower_fetch(2, 10, 200)
    assert s.proposed_isr(300) is None
    s.on_follower_fetch(3, 10, 400)  # 3 is back and fetching
    assert s.proposed_isr(400) == [1, 2, 3]
    s.on_isr_rejected()  # e.g. still fenced
    assert s.proposed_isr(500) is None  # not again until it fetches again


def test_low_watermark_is_the_smallest_log_start_of_live_replicas():
    """DeleteRecords' low watermark: the leader's and every live follower's log start offset
    (ISR or not); a follower that has not fetched counts as unknown (-1)."""
    s = leader(isr=[1, 2])
    s.on_append(100)
    assert s.low_watermark(60, alive={1, 2, 3}) == -1  # nobody fetched yet
    s.on_follower_fetch(2, 100, 10, log_start_offset=60)
    s.on_follower_fetch(3, 40, 10, log_start_offset=0)  # out of the ISR, but alive
    assert s.low_watermark(60, alive={1, 2, 3}) == 0
    assert s.low_watermark(60, alive={1, 2}) == 60  # a dead broker does not hold it back
    s.on_follower_fetch(3, 100, 20, log_start_offset=60)
    assert s.low_watermark(60, alive={1, 2, 3}) == 60

"""Client quotas (broker.quotas): Kafka's sampled rate, throttle times and entity order."""

from odradek.broker.quotas import (
    CLIENT_ID,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    USER,
    ClientQuotas,
    Rate,
    resolve,
    throttle_ms,
)


def test_rate_spans_at_least_ten_windows():
    r = Rate()
    r.record(0.0, 1000)
    assert r.rate(0.5) == 100.0  # 1000 bytes over the 10 s floor
    for t in range(1, 20):
        r.record(float(t), 1000)
    # 11 samples of 1000 over the ~10-11 s they span
    assert 1000 * 11 / 11 <= r.rate(19.5) * 1.0 <= 1000 * 11 / 10


def test_throttle_time_is_kafkas():
    r = Rate()
    r.record(0.0, 2000)  # 200 B/s against a quota of 100 B/s over a 10 s span
    ms = throttle_ms(r, 100.0, 0.0)
    assert ms == 10000  # (observed - quota) / quota * span, as Kafka's QuotaUtils.throttleTime
    # the burst's sample leaves the 11 windows a little later: within the quota again
    assert throttle_ms(r, 100.0, 11.0) == 0
    assert throttle_ms(r, 1000.0, 0.0) == 0


def test_request_time_throttle_is_bounded_by_one_window():
    r = Rate()
    r.record(0.0, 10_000)
    assert throttle_ms(r, 1.0, 0.0, bounded=True) == 1000


def test_kafkas_entity_order():
    q = {((CLIENT_ID, None),): {PRODUCER_BYTE_RATE: 1.0},
         ((CLIENT_ID, "app"),): {PRODUCER_BYTE_RATE: 2.0},
         ((USER, None),): {PRODUCER_BYTE_RATE: 3.0},
         ((CLIENT_ID, "app"), (USER, "alice")): {PRODUCER_BYTE_RATE: 4.0}}
    assert resolve(q, "alice", "app", PRODUCER_BYTE_RATE) == (4.0, (PRODUCER_BYTE_RATE, "alice", "app"))
    # the default user comes before any client-id entity; measured per user
    assert resolve(q, "bob", "app", PRODUCER_BYTE_RATE) == (3.0, (PRODUCER_BYTE_RATE, "bob", ""))
    del q[((USER, None),)]
    assert resolve(q, "bob", "app", PRODUCER_BYTE_RATE) == (2.0, (PRODUCER_BYTE_RATE, "", "app"))
    assert resolve(q, "bob", "other", PRODUCER_BYTE_RATE) == (1.0, (PRODUCER_BYTE_RATE, "", "other"))
    assert resolve(q, "bob", "other", REQUEST_PERCENTAGE) is None


def test_default_entities_measure_each_client_on_its_own():
    quotas = ClientQuotas(lambda: {((CLIENT_ID, None),): {PRODUCER_BYTE_RATE: 100.0}})
    assert quotas.record(PRODUCER_BYTE_RATE, "u", "a", 1000, 0.0) == 0  # exactly the quota
    assert quotas.record(PRODUCER_BYTE_RATE, "u", "b", 1000, 0.0) == 0  # another client
    assert quotas.record(PRODUCER_BYTE_RATE, "u", "a", 1000, 0.0) == 10000
    quotas.unrecord(PRODUCER_BYTE_RATE, "u", "a", 1000, 0.0)
    assert quotas.record(PRODUCER_BYTE_RATE, "u", "a", 0, 0.0) == 0


def test_a_client_held_to_its_throttle_times_gets_the_quota():
    """Simulate a client that sends 5 KB whenever it is not throttled, for 60 s."""
    quotas = ClientQuotas(lambda: {((USER, None),): {PRODUCER_BYTE_RATE: 10_000.0}})
    now, sent_after_warmup = 0.0, 0
    while now < 60.0:
        throttle = quotas.record(PRODUCER_BYTE_RATE, "u", "c", 5000, now)
        if now >= 20.0:
            sent_after_warmup += 5000
        now += max(throttle / 1000, 0.01)
    assert abs(sent_after_warmup / 40.0 - 10_000) / 10_000 < 0.1


def test_throttle_fits_an_int32():
    r = Rate()
    r.record(0.0, 10**12)
    assert throttle_ms(r, 1.0, 0.0) == 2**31 - 1

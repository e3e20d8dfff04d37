"""Client quotas as Kafka enforces them: pure rate windows and throttle times.

Quotas (``producer_byte_rate``, ``consumer_byte_rate``, ``request_percentage``) are set
per entity with AlterClientQuotas and live in the metadata log
(``ClientQuotaRecord``); an entity is a user, a client id, or both, each possibly the
default (``<default>``, a None name). A client's quota of one kind is the first set of
(Kafka's DefaultQuotaCallback order):

    user+client-id, user+<default client-id>, user,
    <default user>+client-id, <default user>+<default client-id>, <default user>,
    client-id, <default client-id>

and is measured per client as that entity names it: a default entity's quota applies
to each user / client id on its own, not to all together.

What a client uses is a ``Rate``: Kafka's sampled rate of ``quota.window.num`` (11)
windows of ``quota.window.size.seconds`` (1 s), divided by the time they span but never
less than 10 whole windows, so a new client's first burst is measured against 10 s.
A client over its quota after recording is throttled for
``(rate - quota) / quota * span``, the time after which its rate falls back to the
quota if it sends nothing more; request time is bounded by one window, as Kafka bounds
it. The broker answers with that throttle time and mutes the connection for as long
(server.Connection), as Kafka does since KIP-219.

Byte rates are bytes per second; ``request_percentage`` is the percentage of one
request-handling thread's time per window (a handler busy for 50 ms of each second is 5).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
QUOTA_KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE)
USER, CLIENT_ID = "user", "client-id"
ENTITY_TYPES = (USER, CLIENT_ID)
SAMPLES = 11  # quota.window.num
WINDOW_S = 1.0  # quota.window.size.seconds
IDLE_EXPIRY_S = 3600.0
INT32_MAX = 2**31 - 1  # Kafka expires a client's quota sensors after an hour unused


@dataclass(slots=True)
class Rate:
    """Kafka's sampled Rate: totals of the last ``samples`` windows of ``window_s``."""
    samples: int = SAMPLES
    window_s: float = WINDOW_S
    starts: list[float] = field(default_factory=list)  # each sample's start, oldest first
    totals: list[float] = field(default_factory=list)
    last_record: float = 0.0

    def record(self, now: float, amount: float) -> None:
        self._advance(now)
        self.totals[-1] += amount
        self.last_record = now

    def _advance(self, now: float) -> None:
        if not self.starts or now >= self.starts[-1] + self.window_s:
            self.starts.append(now)
            self.totals.append(0.0)
        # a sample expires samples * window after it started (Kafka's purgeObsoleteSamples)
        while len(self.starts) > self.samples or now - self.starts[0] >= self.samples * self.window_s:
            del self.starts[0], self.totals[0]

    def span(self, now: float) -> float:
        """The time the samples cover, at least ``samples - 1`` whole windows (Kafka's windowSize)."""
        elapsed = now - self.starts[0] if self.starts else 0.0
        return max(elapsed, (self.samples - 1) * self.window_s)

    def rate(self, now: float) -> float:
        self._advance(now)
        return sum(self.totals) / self.span(now)


def entity_candidates(user: str, client_id: str) -> list[tuple]:
    """The quota entities that may apply to (user, client_id), most specific first, each as
    replication.metadata.quota_entity_key gives it (sorted (type, name) pairs; None: default)."""
    return [
        ((CLIENT_ID, client_id), (USER, user)),
        ((CLIENT_ID, None), (USER, user)),
        ((USER, user),),
        ((CLIENT_ID, client_id), (USER, None)),
        ((CLIENT_ID, None), (USER, None)),
        ((USER, None),),
        ((CLIENT_ID, client_id),),
        ((CLIENT_ID, None),),
    ]


def resolve(quotas: dict[tuple, dict[str, float]], user: str, client_id: str,
            key: str) -> tuple[float, tuple] | None:
    """(quota, the key its usage is measured under) for this client, or None: no quota.
    The measuring key names the client's own user / client id where the entity has that
    type, so each client of a default entity is measured on its own."""
    for entity in entity_candidates(user, client_id):
        value = quotas.get(entity, {}).get(key)
        if value is not None:
            names = dict(entity)
            return value, (key, user if USER in names else "", client_id if CLIENT_ID in names else "")
    return None


class ClientQuotas:
    """Usage per measured client and the throttle times it earns. ``quotas`` gives the
    metadata image's ``client_quotas`` (read at each call, so a change applies at once)."""

    def __init__(self, quotas: Callable[[], dict[tuple, dict[str, float]]]):
        self._quotas = quotas
        self.rates: dict[tuple, Rate] = {}
        self._next_expiry = 0.0

    def record(self, key: str, user: str, client_id: str, amount: float, now: float) -> int:
        """Record ``amount`` of ``key`` for this client; the throttle time it earns, in ms."""
        quotas = self._quotas()
        if not quotas:
            return 0
        found = resolve(quotas, user, client_id, key)
        if found is None:
            return 0
        quota, measured = found
        rate = self.rates.get(measured)
        if rate is None:
            rate = self.rates[measured] = Rate()
        rate.record(now, amount)
        self._expire(now)
        return throttle_ms(rate, quota, now, bounded=key == REQUEST_PERCENTAGE)

    def unrecord(self, key: str, user: str, client_id: str, amount: float, now: float) -> None:
        """Take back a recorded amount (a throttled fetch sends no data, as in Kafka)."""
        found = resolve(self._quotas(), user, client_id, key)
        rate = self.rates.get(found[1]) if found is not None else None
        if rate is not None:
            rate.record(now, -amount)

    def _expire(self, now: float) -> None:
        if now < self._next_expiry:
            return
        self._next_expiry = now + 60.0
        for measured in [m for m, r in self.rates.items() if now - r.last_record > IDLE_EXPIRY_S]:
            del self.rates[measured]


def throttle_ms(rate: Rate, quota: float, now: float, bounded: bool = False) -> int:
    """How long a client over ``quota`` waits (0 when within it): the time for its rate to
    fall back to the quota (Kafka's QuotaUtils.throttleTime); bounded by one window for
    request time (ClientRequestQuotaManager)."""
    observed = rate.rate(now)
    if quota <= 0:  # a quota of 0: nothing may pass; wait until the usage has aged out
        return int(rate.span(now) * 1000) if observed > 0 else 0
    if observed <= quota:
        return 0
    ms = (observed - quota) / quota * rate.span(now) * 1000
    if bounded:
        ms = min(ms, rate.window_s * 1000)
    return int(min(round(ms), INT32_MAX))  # throttle_time_ms is an int32 on the wire

"""The last minutes of a few numbers, for the console's charts: per-topic throughput
(bytes in and out per second) and per-group lag.

Kafka's own metrics are counters scraped by Prometheus; the console has no Prometheus,
so it keeps a short window itself: a sample every ``INTERVAL_S``, ``KEPT`` samples, a
fixed bound whatever the traffic. ``History`` is pure: the broker's task feeds it
(``Sampler``), the charts read ``series``.
"""

import asyncio
import collections
import time

INTERVAL_S = 2.0
KEPT = 300  # ten minutes at INTERVAL_S


class History:
    def __init__(self, kept: int = KEPT):
        self.samples: collections.deque = collections.deque(maxlen=kept)

    def add(self, at: float, topic_bytes: dict[str, tuple[int, int]], group_lag: dict[str, int]) -> None:
        """``topic_bytes``: topic -> (bytes in, bytes out) counters; ``group_lag``: group -> lag."""
        self.samples.append((at, dict(topic_bytes), dict(group_lag)))

    def topic_rates(self, topic: str) -> list[dict]:
        """Bytes per second in and out between consecutive samples (counters only grow,
        but a deleted and re-created topic restarts them: never a negative rate)."""
        points, previous = [], None
        for at, topic_bytes, _ in self.samples:
            now = topic_bytes.get(topic, (0, 0))
            if previous is not None and at > previous[0]:
                span = at - previous[0]
                points.append({"t": at, "in": max(0, now[0] - previous[1][0]) / span,
                               "out": max(0, now[1] - previous[1][1]) / span})
            previous = (at, now)
        return points

    def group_lag(self, group_id: str) -> list[dict]:
        return [{"t": at, "lag": lags[group_id]} for at, _, lags in self.samples if group_id in lags]


class Sampler:
    """Feeds a broker's ``History`` every ``INTERVAL_S`` while the HTTP listener runs."""

    def __init__(self, broker, history: History):
        self.broker, self.history = broker, history

    def sample(self) -> None:
        from odradek.broker.console import views  # (views imports kafka-python's codecs)

        b = self.broker
        topic_bytes = {name: (t.bytes_in, t.bytes_out) for name, t in b.stats.topics.items()}
        lags = {g["group_id"]: g["lag"] for g in views.groups(b)["groups"]}
        self.history.add(time.time(), topic_bytes, lags)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(INTERVAL_S)

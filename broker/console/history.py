"""The last minutes of a few numbers, for the console's charts: per-topic throughput
(bytes in and out per second) and each group's lag per partition.

Kafka's own metrics are counters scraped by Prometheus; the console has no Prometheus,
so it keeps a short window itself: a sample every ``INTERVAL_S``, ``KEPT`` samples, a
fixed bound whatever the traffic. ``History`` is pure: a task feeds it (``Sampler``)
while the console is in use, the charts read ``series``.
"""

import asyncio
import collections
import inspect
import time

INTERVAL_S = 2.0
KEPT = 300  # ten minutes at INTERVAL_S


class History:
    def __init__(self, kept: int = KEPT):
        self.samples: collections.deque = collections.deque(maxlen=kept)

    def add(self, at: float, topic_bytes: dict[str, tuple[int, int]],
            group_lag: dict[str, dict[str, int]]) -> None:
        """``topic_bytes``: topic -> (bytes in, bytes out) counters; ``group_lag``: group ->
        {"topic-partition": lag}."""
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
        """One point per sample, one series per partition ("topic-partition": lag)."""
        return [{"t": at, **lags[group_id]} for at, _, lags in self.samples if group_id in lags]


def partition_lags(lags: dict[tuple[str, int], int | None]) -> dict[str, int]:
    """(topic, partition) -> lag as the chart's series names; unknown lags left out."""
    return {f"{t}-{i}": lag for (t, i), lag in sorted(lags.items()) if lag is not None}


class Sampler:
    """Feeds a ``History`` every ``INTERVAL_S``, only while someone uses the console.

    Sampling costs a walk over every group's offsets and every topic each time, so it
    is not done for nobody: the first console request starts it (``touch``), and it
    stops once no console request came for ``IDLE_S`` (a chart left open asks every few
    seconds, so an open page keeps it going). The window kept is as long as the idle
    time, so a returning viewer sees the minutes before they left, never a stale gap
    filled in. ``sample`` is what to record (``topic_bytes``, ``group_lag``, as
    ``History.add`` takes them); ``spawn`` runs a coroutine factory as a task."""

    IDLE_S = INTERVAL_S * KEPT

    def __init__(self, history: History, sample, spawn, clock=time.monotonic, sleep=asyncio.sleep):
        self.history, self.sample, self.spawn = history, sample, spawn
        self.clock, self.sleep = clock, sleep  # (a test's own)
        self.last_use: float | None = None
        self.running = False

    def touch(self) -> None:
        """A console request: start sampling if it is not running."""
        self.last_use = self.clock()
        if not self.running:
            self.running = True
            self.spawn(self.run)

    def idle(self) -> bool:
        return self.last_use is None or self.clock() - self.last_use > self.IDLE_S

    async def run(self) -> None:
        try:
            while not self.idle():
                sampled = self.sample()
                if inspect.isawaitable(sampled):  # odradek console asks the cluster in a thread
                    sampled = await sampled
                topic_bytes, group_lag = sampled
                self.history.add(time.time(), topic_bytes, group_lag)
                await self.sleep(INTERVAL_S)
        finally:
            self.running = False

"""The event loop's lag: how late it runs a periodic timer, the longest stall in the last minute.

Every request, timer and replication step of a node shares one event loop, so a
blocking call anywhere (an fsync, a file replay, an rmtree) delays all of them by
its whole length. The monitor sleeps ``interval_s`` over and over and records how
much longer each sleep took than asked: that oversleep is the time the loop was
busy elsewhere. It keeps the largest lag of each second for the last minute.

``max_lag_ms()`` is the longest stall in that window (the broker exposes it as
``Broker.loop_lag``, and bench/loop_lag.py reports it). A stall of ``warn_ms`` or
more is logged at once (``event_loop_stall``); the window's maximum is logged every
minute and when the node stops (``event_loop_lag``).
"""

import asyncio
import collections
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

INTERVAL_S = 0.05  # fine enough to see a stall of a few ms; costs ~20 wake-ups a second
WINDOW_S = 60
WARN_MS = 100.0


class LoopLagMonitor:
    def __init__(self, interval_s: float = INTERVAL_S, window_s: int = WINDOW_S,
                 warn_ms: float = WARN_MS, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self.window_s = window_s
        self.warn_ms = warn_ms
        self.clock = clock
        self._per_second: collections.deque[tuple[int, float]] = collections.deque()

    def record(self, now_s: float, lag_ms: float) -> None:
        """One measured lag at ``now_s``: kept as its second's maximum, for the window."""
        second = int(now_s)
        buckets = self._per_second
        if buckets and buckets[-1][0] == second:
            if lag_ms > buckets[-1][1]:
                buckets[-1] = (second, lag_ms)
        else:
            buckets.append((second, lag_ms))
        while buckets and buckets[0][0] <= second - self.window_s:
            buckets.popleft()

    def max_lag_ms(self) -> float:
        """The longest stall in the last ``window_s`` seconds, in milliseconds."""
        horizon = int(self.clock()) - self.window_s
        return max((lag for second, lag in self._per_second if second > horizon), default=0.0)

    async def run(self) -> None:
        """Measure until cancelled; start it as a (supervised) task."""
        clock, interval = self.clock, self.interval_s
        next_summary = clock() + self.window_s
        try:
            while True:
                started = clock()
                await asyncio.sleep(interval)
                now = clock()
                lag_ms = max(0.0, (now - started - interval) * 1000)
                self.record(now, lag_ms)
                if lag_ms >= self.warn_ms:
                    log.warning("event_loop_stall", lag_ms=round(lag_ms, 1))
                if now >= next_summary:
                    next_summary = now + self.window_s
                    self.log_summary()
        finally:
            self.log_summary()

    def log_summary(self) -> None:
        log.info("event_loop_lag", max_ms=round(self.max_lag_ms(), 1), window_s=self.window_s)

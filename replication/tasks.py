"""Supervised background tasks: held, logged when they die, and started again.

asyncio keeps only a weak reference to a task, and an exception in a task nobody
awaits is reported (if ever) when the task is garbage-collected. A fire-and-forget
``create_task`` can therefore vanish mid-flight or die unseen, and whatever it was
for stops happening: a leader whose ISR change died kept its change "in flight"
and proposed no other until its leadership moved. Every background task of the
broker and the replication layer goes through a ``Supervisor`` instead:

- it holds each task until the task ends;
- a task that raises (anything but cancellation) is logged with its name and the
  traceback, and its factory is called again after a backoff that doubles up to a
  cap, until it returns or ``retries`` attempts are spent (None: for ever), so one
  surprise costs a delay, not the feature;
- ``close()`` cancels and awaits them all.

The factory, not a coroutine object, is what is retried: each attempt needs a fresh
coroutine, and it should read the state it acts on again (a retried ISR change first
checks that it still leads with the same ISR state).
"""

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class Supervisor:
    def __init__(self, owner: str, *, initial_backoff_s: float = INITIAL_BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S):
        self.owner = owner  # for the log: which component's task died
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.tasks: set[asyncio.Task] = set()

    def spawn(self, name: str, factory: Callable[[], Awaitable], *,
              retries: int | None = None) -> asyncio.Task:
        """Run ``factory()`` in a held task; on failure log it and run it again (at most
        ``retries`` more times; None: until it succeeds or the supervisor closes)."""
        task = asyncio.get_running_loop().create_task(self._supervise(name, factory, retries),
                                                      name=f"{self.owner}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _supervise(self, name: str, factory: Callable[[], Awaitable],
                         retries: int | None):
        backoff, attempt = self.initial_backoff_s, 0
        while True:
            attempt += 1
            try:
                return await factory()
            except asyncio.CancelledError:
                raise
            except Exception:
                again = retries is None or attempt <= retries
                log.exception("background_task_failed", owner=self.owner, task=name,
                              attempt=attempt, retry_in_s=round(backoff, 3) if again else None)
                if not again:
                    return None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    async def close(self) -> None:
        """Cancel every task and wait until they have ended."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

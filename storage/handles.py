"""A bounded budget of open file descriptors for segment files: an LRU of open segments.

Why: a segment holds a ``.log`` descriptor and one mapping per index, and Python's
``mmap`` keeps a duplicate descriptor per mapping. Kept open for every segment, a node
with 10,000 partitions would need 30,000-50,000 descriptors and fail on EMFILE half-way
through a CreateTopics or its own start. Instead, segments open their files on use and
the least recently used ones are closed once the budget (``log.max.open.files``) is
spent; a closed segment reopens on its next use, keeping everything it knows (sizes,
offsets, index entry counts) in memory.

A segment in use is pinned: every operation on its files pins it for its duration, and
a fetch response's file slice or a running fsync pins it until released, so an
``os.sendfile`` never meets a descriptor the LRU closed (or one reused for another
file). Pinned segments may take the open cost above the budget for as long as they
are pinned; the excess is closed as soon as they are released.

``LruBudget`` is the decision (pure, no I/O); ``OpenFiles`` is the I/O around it, with
one lock so that the flusher threads and an executor replaying a log share it safely.
"""

from __future__ import annotations

import errno
import os
import resource
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
_T = TypeVar("_T")


class LruBudget:
    """Which open items to close so that their total cost stays within ``capacity``.

    An item is opened with a cost (its descriptors), used (most recent), pinned and
    unpinned (a pinned item is never chosen), and closed by its owner. The methods
    that can push the total over the capacity return the items to close, least
    recently used first; the caller closes them (and they count as closed at once).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._open: OrderedDict[Hashable, int] = OrderedDict()  # item -> cost, LRU first
        self._pins: dict[Hashable, int] = {}
        self.cost = 0

    def __len__(self) -> int:
        return len(self._open)

    def is_open(self, item: Hashable) -> bool:
        return item in self._open

    def pinned(self, item: Hashable) -> bool:
        return item in self._pins

    def open(self, item: Hashable, cost: int) -> list:
        """``item`` is now open with ``cost`` descriptors; returns the items to close."""
        self.cost += cost - self._open.pop(item, 0)
        self._open[item] = cost
        return self._shed_over(keep=item)

    def use(self, item: Hashable) -> None:
        if item in self._open:
            self._open.move_to_end(item)

    def pin(self, item: Hashable) -> None:
        self._pins[item] = self._pins.get(item, 0) + 1
        self.use(item)

    def unpin(self, item: Hashable) -> list:
        """One pin less; returns the items to close (an excess left by pinned items)."""
        count = self._pins.pop(item) - 1
        if count:
            self._pins[item] = count
            return []
        return self._shed_over(keep=None) if self.cost > self.capacity else []

    def closed(self, item: Hashable) -> None:
        """The owner closed ``item`` (or never opened it): it costs nothing any more."""
        self.cost -= self._open.pop(item, 0)

    def evictable_cost(self) -> int:
        return sum(c for item, c in self._open.items() if item not in self._pins)

    def shed_all(self, keep: Hashable | None = None) -> list:
        """Every unpinned item but ``keep``, to close now (the process ran out of descriptors)."""
        victims = [i for i in self._open if i not in self._pins and i != keep]
        for item in victims:
            self.closed(item)
        return victims

    def _shed_over(self, keep: Hashable | None) -> list:
        victims = []
        if self.cost > self.capacity:
            for item, cost in self._open.items():
                if item in self._pins or item == keep:
                    continue
                victims.append(item)
                self.cost -= cost
                if self.cost <= self.capacity:
                    break
            for item in victims:
                del self._open[item]
        return victims


class Closable:
    """What ``OpenFiles`` manages: an item that can close its descriptors (and reopen them
    later by itself, on its next use)."""

    def close_handles(self) -> None:  # pragma: no cover - an interface
        raise NotImplementedError


class OpenFiles:
    """The LRU budget with its I/O: closes what it says, retries an open after EMFILE.

    Every method takes the one lock; closing a victim happens under it too, so no
    thread can start using a segment between the decision to close it and the close.
    """

    def __init__(self, capacity: int) -> None:
        self.budget = LruBudget(capacity)
        self.lock = threading.RLock()
        self.reopens = 0  # segments reopened after the LRU closed them (a sizing hint)

    @property
    def capacity(self) -> int:
        return self.budget.capacity

    def open(self, item: Closable, cost: int, opener: Callable[[], None]) -> None:
        """Run ``opener`` (which opens ``item``'s descriptors) within the budget.

        Out of descriptors (EMFILE/ENFILE), every unpinned segment is closed and
        ``opener`` runs once more; a second failure is raised (and the item counts as
        closed: ``opener`` must leave nothing open when it raises).
        """
        with self.lock:
            try:
                opener()
            except OSError as exc:
                if exc.errno not in OUT_OF_DESCRIPTORS:
                    raise
                victims = self.budget.shed_all(keep=item)
                log.warning("out_of_descriptors_closing_segments", closing=len(victims),
                            open_file_limit=soft_limit())
                self._close(victims)
                opener()
            self._close(self.budget.open(item, cost))

    def run(self, opener: Callable[[], _T]) -> _T:
        """A transient open (a file opened and closed at once): retried after shedding
        every unpinned segment if the process is out of descriptors."""
        try:
            return opener()
        except OSError as exc:
            if exc.errno not in OUT_OF_DESCRIPTORS:
                raise
        with self.lock:
            self._close(self.budget.shed_all())
        return opener()

    def pin(self, item: Hashable) -> None:
        with self.lock:
            self.budget.pin(item)

    def unpin(self, item: Hashable) -> None:
        with self.lock:
            self._close(self.budget.unpin(item))

    def closed(self, item: Hashable) -> None:
        with self.lock:
            self.budget.closed(item)

    def evictable(self) -> int:
        with self.lock:
            return self.budget.evictable_cost()

    @property
    def open_cost(self) -> int:
        return self.budget.cost

    @staticmethod
    def _close(victims: list) -> None:
        for victim in victims:
            victim.close_handles()


# --- the process's descriptor limit -------------------------------------------------

# Descriptors kept out of the segment budget when it is derived from the limit: client
# and inter-node sockets, the event loop, executor threads, checkpoints, the metadata log.
RESERVED_FRACTION = 0.5
MIN_SEGMENT_DESCRIPTORS = 48  # 16 segments: below this every fetch reopens files
DESCRIPTORS_PER_SEGMENT = 3  # .log + one mapping per index (.index, .timeindex)


def soft_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_soft_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (an unprivileged process may, as the
    Go runtime and the JVM's -XX:+MaxFDLimit do); returns (soft, hard) afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:  # no finite target: keep the soft one
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    elif hard == resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY:
        pass  # no finite target: keep what the operator set
    return soft, hard


def segment_budget(limit: int, configured: int) -> int:
    """Descriptors for segment files: ``configured`` (log.max.open.files) when set (>= 1),
    else half the open-file limit, never below MIN_SEGMENT_DESCRIPTORS."""
    if configured >= 1:
        return configured
    return max(MIN_SEGMENT_DESCRIPTORS, int(limit * (1 - RESERVED_FRACTION)))


def out_of_descriptors_hint(exc: BaseException) -> str:
    """What to raise, for an error caused by running out of descriptors ("" otherwise)."""
    while exc is not None and not (isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS):
        exc = exc.__cause__  # type: ignore[assignment]
    if exc is None:
        return ""
    return (f" (the open-file limit is {soft_limit()}: raise it with `ulimit -n`, LimitNOFILE= "
            "in a systemd unit or --ulimit nofile= with Docker, or lower log.max.open.files)")


def limit_advice(limit: int, budget: int, partitions: int) -> str | None:
    """What to tell the operator at start when the segment budget cannot keep every
    partition's active segment open (idle partitions then reopen their files on use,
    which costs a few system calls per reopen), else None."""
    wanted = DESCRIPTORS_PER_SEGMENT * partitions
    if budget >= wanted:
        return None
    recommended = int(wanted / (1 - RESERVED_FRACTION)) + 1024
    return (f"the open-file limit is {limit}; segment files may hold {budget} descriptors, "
            f"and {partitions} partitions need up to {wanted} to stay open: idle partitions "
            f"reopen their files on use. To keep them all open raise `ulimit -n` (LimitNOFILE= "
            f"in a systemd unit, --ulimit nofile= with Docker) to {recommended}, or set "
            f"log.max.open.files")


def count_open_descriptors(pid: int | str = "self") -> int:
    """Open descriptors of a process (Linux /proc); -1 where /proc is absent."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def descriptor_headroom(limit: int, open_now: int, evictable: int) -> int:
    """Descriptors a new partition could get now: the unused ones below the limit plus
    those the segment LRU would close to make room."""
    return max(0, limit - open_now) + evictable

"""The line's request queue: which queued request goes next, without scanning them all.

Why a module of its own: :class:`~firmware_bridge.exchange.LineMaster` chooses the next request
before every exchange, and the sensors' pollers fill the queue in bursts (16.5 requests queued on
average at a choice on the simulated floor, up to 45). Scanning every queued request for the most
urgent ready one cost 7.3 us a choice at that depth, about half a second of a 15-second short
simulated day (docs/benchmarks.md). Here the choice is two heaps, 1.3 us a choice:

- the requests ready to go (their retry time has come), by (priority, order of queuing): the top
  is the choice;
- the requests waiting for their retry time, by that time: the top says when to look again, and
  those whose time has come move to the first heap when the next choice is made.

The choice is exactly the scan's (:func:`scan_choice`, and ``tests/bridge/test_line_queue.py``
compares the two on random queues): the most urgent ready request, the first queued among equals,
else the earliest retry time, else None. A request leaves the heaps lazily (its entry is skipped
when it reaches a top), so a removal costs no heap work. While a node is *pinned* (it owes the
answer to a request that is not idempotent, and nothing else may go to it) the choice falls back
to the scan: that happens only while such a request waits for its retry, rarely.

The queue also keeps the requests in the order they were queued (a retried request at the end),
which is the order the link fails or supersedes them in.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, Protocol, TypeVar


class Queued(Protocol):
    """What the queue reads of a request (``firmware_bridge.exchange._Job``)."""

    node: int
    priority: int
    order: int  # unique per request, in the order the requests were queued first
    not_before: float  # its retry time (0.0: none); fixed while it is queued
    entry: int  # the number of its entry in the heaps while queued, -1 when not


J = TypeVar("J", bound=Queued)


def scan_choice(jobs: Iterable[J], now: float, pinned: Mapping[int, J]) -> J | float | None:
    """The choice by definition, every request looked at: the most urgent ready one (the first
    queued among equals), else the earliest retry time, else None; a pinned node's others skipped.
    The queue's heaps must agree with it, and it is the queue's own choice while a node is pinned."""
    best: J | None = None
    soonest: float | None = None
    for job in jobs:
        if pinned.get(job.node, job) is not job:
            continue  # its node owes an answer to a request that is not idempotent
        if job.not_before <= now:
            if best is None or (job.priority, job.order) < (best.priority, best.order):
                best = job
        elif soonest is None or job.not_before < soonest:
            soonest = job.not_before
    return best if best is not None else soonest


class RequestQueue(Generic[J]):
    """Queued requests of one line: :meth:`push`, :meth:`remove`, :meth:`choose`; iterates in queuing order."""

    __slots__ = ("_entries", "_live", "_ready", "_seen_now", "_waiting")

    def __init__(self) -> None:
        self._live: dict[int, J] = {}  # order -> request, in the order they were (re-)queued
        self._ready: list[tuple[int, int, int, J]] = []  # (priority, order, entry, request)
        self._waiting: list[tuple[float, int, int, J]] = []  # (retry time, order, entry, request)
        self._entries = itertools.count()
        self._seen_now = float("-inf")  # the latest time a choice was made at (the loop's clock is monotonic)

    def __len__(self) -> int:
        return len(self._live)

    def __bool__(self) -> bool:
        return bool(self._live)

    def __iter__(self) -> Iterator[J]:
        return iter(list(self._live.values()))

    def push(self, job: J) -> None:
        """Queue ``job`` (at the end of the queuing order; its ``not_before`` must not change while queued)."""
        entry = job.entry = next(self._entries)
        self._live[job.order] = job
        if job.not_before <= self._seen_now:  # ready at any later choice
            heapq.heappush(self._ready, (job.priority, job.order, entry, job))
        else:
            heapq.heappush(self._waiting, (job.not_before, job.order, entry, job))
        if len(self._ready) + len(self._waiting) > 2 * len(self._live) + 64:
            self._compact()

    def remove(self, job: J) -> None:
        """Take ``job`` out of the queue (a no-op if it is not queued)."""
        if self._live.get(job.order) is job:
            del self._live[job.order]
            job.entry = -1

    def clear(self) -> None:
        for job in self._live.values():
            job.entry = -1
        self._live.clear()
        self._ready.clear()
        self._waiting.clear()

    def choose(self, now: float, pinned: Mapping[int, J]) -> J | float | None:
        """The request to send now, else the earliest time one becomes ready, else None.

        ``pinned``: node -> its request that is not idempotent and unanswered; no other request
        to that node may go (the scan below is the definition, and runs while any node is pinned).
        """
        if pinned:
            return scan_choice(self._live.values(), now, pinned)
        if now > self._seen_now:
            self._seen_now = now
        ready, waiting = self._ready, self._waiting
        while waiting and waiting[0][0] <= now:
            _, order, entry, job = heapq.heappop(waiting)
            if job.entry == entry:
                heapq.heappush(ready, (job.priority, order, entry, job))
        while ready:
            top = ready[0]
            if top[3].entry == top[2]:
                return top[3]
            heapq.heappop(ready)
        while waiting:
            top_waiting = waiting[0]
            if top_waiting[3].entry == top_waiting[2]:
                return top_waiting[0]
            heapq.heappop(waiting)
        return None

    def _compact(self) -> None:
        """Drop the entries of requests that left the queue (many superseded commands, say)."""
        self._ready = [item for item in self._ready if item[3].entry == item[2]]
        self._waiting = [item for item in self._waiting if item[3].entry == item[2]]
        heapq.heapify(self._ready)
        heapq.heapify(self._waiting)

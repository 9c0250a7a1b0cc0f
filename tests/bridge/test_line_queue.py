"""The line's request queue chooses exactly as a scan of every queued request would: the most
urgent ready request, the first queued among equal priorities, a pinned node's other requests
held back, else the earliest retry time."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from firmware_bridge import BridgeLink
from firmware_bridge.exchange import Priority
from firmware_bridge.line_queue import RequestQueue, scan_choice
from firmware_bridge.messages import MsgType
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine

from .harness import on_line


@dataclass(slots=True, eq=False)
class Request:
    node: int
    priority: int
    order: int
    not_before: float = 0.0
    entry: int = -1


def test_the_queue_chooses_as_the_scan_does_on_random_traffic() -> None:
    for seed in range(40):
        rng = random.Random(seed)
        queue: RequestQueue[Request] = RequestQueue()
        queued: list[Request] = []  # the same requests in a plain list, in queuing order
        pinned: dict[int, Request] = {}
        now, order = 0.0, 0
        for _ in range(600):
            roll = rng.random()
            if roll < 0.45 or not queued:  # a caller queues a request (priorities repeat often)
                job = Request(node=rng.randint(1, 6), priority=rng.choice([0, 1, 1, 3, 3, 3, 4]), order=order)
                order += 1
                queue.push(job)
                queued.append(job)
            elif roll < 0.55:  # a newer command supersedes one, or the caller gave up
                job = rng.choice(queued)
                queue.remove(job)
                queued.remove(job)
            elif roll < 0.62:  # a node is pinned by its unanswered I2C transaction, or let go
                if pinned and rng.random() < 0.5:
                    del pinned[rng.choice(list(pinned))]
                else:
                    job = rng.choice(queued)
                    pinned[job.node] = job
            else:  # the sender chooses; the request goes, and is sometimes retried later
                now += rng.choice([0.0, 0.0, 0.001, 0.0025, 0.01])
                pick = queue.choose(now, pinned)
                assert pick == scan_choice(queued, now, pinned), (seed, now)
                if isinstance(pick, Request):
                    queue.remove(pick)
                    queued.remove(pick)
                    if rng.random() < 0.2:  # no answer: the same request again after a backoff
                        pick.not_before = now + rng.choice([0.002, 0.004, 0.004, 0.05])
                        queue.push(pick)
                        queued.append(pick)
            assert list(queue) == queued
            assert len(queue) == len(queued)
        assert queue.choose(now + 1.0, pinned) == scan_choice(queued, now + 1.0, pinned)
        queue.clear()
        assert not queue and queue.choose(now, {}) is None


def test_a_request_queued_after_a_choice_is_ready_at_once() -> None:
    queue: RequestQueue[Request] = RequestQueue()
    waiting = Request(node=1, priority=Priority.SENSING, order=0, not_before=5.0)
    queue.push(waiting)
    assert queue.choose(4.0, {}) == 5.0
    fresh = Request(node=2, priority=Priority.OTA, order=1)
    queue.push(fresh)
    assert queue.choose(4.0, {}) is fresh
    assert queue.choose(5.0, {}) is waiting  # more urgent once its retry time has come
    queue.remove(waiting)
    assert queue.choose(5.0, {}) is fresh


def test_requests_queued_together_go_by_priority_then_in_queuing_order() -> None:
    """Over the link: a burst queued in one turn reaches the nodes in (priority, queuing) order."""
    priorities = [Priority.POLL, Priority.SENSING, Priority.POLL, Priority.ACTUATION, Priority.SENSING,
                  Priority.EVENTS, Priority.POLL, Priority.SENSING, Priority.ACTUATION, Priority.POLL]  # fmt: skip
    nodes = [1 + i % 5 for i in range(len(priorities))]

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        for node in set(nodes):
            await link.hello(node)
        await asyncio.sleep(0.05)
        assert line.trace is not None
        line.trace.clear()
        # GET_OUTPUT of a distinct channel per request, so each request is told apart on the wire
        calls = [
            link.request(node, MsgType.GET_OUTPUT, bytes([i, 1]), priority=priority)
            for i, (node, priority) in enumerate(zip(nodes, priorities, strict=True))
        ]
        await asyncio.gather(*calls, return_exceptions=True)
        heard = [frame.payload[0] for _, frame in line.trace]
        assert heard == sorted(range(len(priorities)), key=lambda i: (priorities[i], i))

    on_line(scenario, [SimNode(n) for n in sorted(set(nodes))], trace=True)

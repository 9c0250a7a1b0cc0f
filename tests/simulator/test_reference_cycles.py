"""A simulated line leaves no reference cycles behind its requests.

Objects in a cycle are freed only by the garbage collector, whose passes over the whole heap took
about a tenth of a simulated day's CPU when each reply's timer held a closure that held the timer
(docs/benchmarks.md). Freed by reference counting, a request's objects never reach it.
"""

from __future__ import annotations

import gc

from firmware_bridge import BridgeLink
from simulator.clock import run_virtual
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine


def test_requests_on_a_simulated_line_leave_nothing_for_the_garbage_collector() -> None:
    found: list[int] = []

    async def main() -> None:
        line = SimLine([SimNode(3), SimNode(4)])
        async with line.on_memory_line() as memory, BridgeLink(memory.master) as link:
            for _ in range(20):  # the first requests build what lasts (registry entries, caches)
                await link.status(3)
            gc.collect()
            for i in range(400):
                await link.status(3 + i % 2)
            found.append(gc.collect())

    enabled = gc.isenabled()
    gc.disable()
    try:
        run_virtual(main())
    finally:
        if enabled:
            gc.enable()
    # 400 requests and their replies; a cycle per reply would leave thousands of objects
    assert found[0] < 40, f"{found[0]} objects in reference cycles after 400 requests"

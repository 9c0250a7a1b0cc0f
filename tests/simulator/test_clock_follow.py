"""A virtual-time loop can fast-forward and then follow the wall clock (the deployed-rate benchmark's floor)."""

from __future__ import annotations

import asyncio
import time

from simulator.clock import VirtualTimeLoop


def test_fast_forward_then_real_time() -> None:
    loop = VirtualTimeLoop()

    async def main() -> tuple[float, float, float]:
        wall0 = time.monotonic()
        await asyncio.sleep(3600.0)  # an hour, as fast as possible
        fast_wall = time.monotonic() - wall0
        loop.follow_wall_clock()
        t0, wall1 = loop.time(), time.monotonic()
        await asyncio.sleep(0.2)  # now in real time
        return fast_wall, loop.time() - t0, time.monotonic() - wall1

    try:
        asyncio.set_event_loop(loop)
        fast_wall, simulated, wall = loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert fast_wall < 1.0
    assert simulated >= 0.2 and wall >= 0.2  # time moved with the wall clock
    assert abs(simulated - wall) < 0.05

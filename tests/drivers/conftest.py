"""Helpers for driver tests: run a coroutine on the simulator's virtual-time loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from simulator.clock import VirtualClock, run_virtual

T = TypeVar("T")


def on_virtual_time(body: Callable[[VirtualClock], Awaitable[T]]) -> T:
    """Run ``body(clock)`` on a fresh virtual-time loop; waits cost no real time."""

    async def main() -> T:
        clock = VirtualClock(asyncio.get_running_loop(), datetime(2025, 3, 4, 8, 0))
        return await body(clock)

    return run_virtual(main())

"""The virtual-time loop: simulated hours pass in milliseconds, and real I/O still flows."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime

from simulator.clock import VirtualClock, VirtualTimeLoop, run_virtual


def test_a_simulated_day_of_timers_runs_in_well_under_a_second() -> None:
    ticks: list[float] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(14 * 60):  # one tick a simulated minute for 14 hours
            await asyncio.sleep(60)
            ticks.append(loop.time() - t0)
        return loop.time() - t0

    start = time.monotonic()
    elapsed = run_virtual(main())
    assert elapsed == 14 * 3600
    assert ticks[:3] == [60, 120, 180]
    assert time.monotonic() - start < 5.0


def test_timeouts_are_virtual() -> None:
    async def main() -> bool:
        try:
            async with asyncio.timeout(3600):
                await asyncio.Event().wait()
        except TimeoutError:
            return True
        return False

    assert run_virtual(main()) is True


def test_real_socket_io_is_seen_while_time_races() -> None:
    """A reply from a real peer arrives although virtual timers keep the loop busy."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()

        async def busy() -> None:
            for _ in range(100000):
                await asyncio.sleep(1)

        task = asyncio.create_task(busy())
        loop.call_soon(b.send, b"puback")
        data = await loop.sock_recv(a, 16)
        task.cancel()
        return data

    try:
        assert run_virtual(main()) == b"puback"
    finally:
        a.close()
        b.close()


def test_speed_mode_runs_faster_than_real_time() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(10)
        return loop.time() - t0

    start = time.monotonic()
    simulated = run_virtual(main(), speed=100.0)
    assert simulated >= 10
    assert 0.05 < time.monotonic() - start < 2.0


def test_virtual_clock_maps_wall_time() -> None:
    async def main() -> datetime:
        loop = asyncio.get_running_loop()
        clock = VirtualClock(loop, datetime(2026, 3, 3, 7, 30))
        await clock.sleep(1800)
        assert clock.monotonic() - loop.time() == 0
        return clock.now()

    loop = VirtualTimeLoop()
    try:
        assert loop.run_until_complete(main()) == datetime(2026, 3, 3, 8, 0)
    finally:
        loop.close()

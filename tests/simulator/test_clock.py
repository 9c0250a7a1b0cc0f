"""The virtual-time loop: simulated hours pass in milliseconds, and real I/O still flows."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from datetime import datetime
from typing import Any

import pytest

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


def _run_paced(main: Any, pace: float) -> Any:
    loop = VirtualTimeLoop(pace=pace)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_paced_mode_keeps_to_its_pace_on_average() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(20):
            await asyncio.sleep(1)
        return loop.time() - t0

    start = time.monotonic()
    assert _run_paced(main, pace=50.0) == 20  # timers fire at their exact virtual times
    assert 0.35 < time.monotonic() - start < 2.0  # 20 simulated seconds at 50 per wall second: 0.4 s


def test_paced_mode_keeps_short_timeouts_while_the_loop_is_busy() -> None:
    """Work that takes wall time takes no simulated time, so a 3 ms reply timeout still holds."""

    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[str] = loop.create_future()

        async def node() -> None:  # hears the request, works hard for 50 ms of wall time, answers
            await asyncio.sleep(0.001)
            busy_until = time.monotonic() + 0.05
            while time.monotonic() < busy_until:
                pass
            await asyncio.sleep(0.001)
            reply.set_result("pong")

        task = asyncio.create_task(node())
        t0 = loop.time()
        answer = await asyncio.wait_for(reply, timeout=0.003)
        await task
        return answer == "pong", loop.time() - t0

    ok, elapsed = _run_paced(main, pace=50.0)
    assert ok and elapsed == pytest.approx(0.002)


def test_paced_mode_lets_time_flow_while_idle() -> None:
    """With nothing scheduled, simulated time still follows the wall clock (an outside process sees it move)."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        woke = asyncio.Event()
        threading.Timer(0.2, loop.call_soon_threadsafe, (woke.set,)).start()
        await woke.wait()
        return loop.time() - t0

    assert 0.15 * 20 <= _run_paced(main, pace=20.0) <= 1.0 * 20


def test_work_in_a_thread_takes_no_simulated_time() -> None:
    """A slow database write in a thread must not let a pending timer fire first (or not, by luck)."""

    async def main() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        order: list[str] = []
        loop.call_later(0.01, order.append, "timer")  # due long before the thread's real 0.2 s
        await asyncio.to_thread(time.sleep, 0.2)
        order.append("thread")
        elapsed = loop.time() - t0
        await asyncio.sleep(0.02)
        return order, elapsed

    order, elapsed = run_virtual(main())
    assert elapsed == 0.0
    assert order == ["thread", "timer"]


def test_restarting_the_pace_forgets_the_wall_time_spent_before() -> None:
    """Building a floor takes wall time while simulated time stands still; from ``restart_pace`` on,
    a process outside sees the pace, not a burst that spends the time owed."""

    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        busy_until = time.monotonic() + 0.3  # the floor being built: simulated time stands still
        while time.monotonic() < busy_until:
            pass
        owed = loop.paced_limit() - loop.time()
        loop.restart_pace()
        return owed, loop.paced_limit() - loop.time()

    owed, owed_after = _run_paced(main, pace=100.0)
    assert owed >= 0.3 * 100.0  # without the restart, 30 simulated seconds could pass at once
    assert owed_after < 0.1 * 100.0


def test_restarting_the_pace_leaves_the_other_modes_alone() -> None:
    for loop in (VirtualTimeLoop(), VirtualTimeLoop(speed=10.0)):
        try:
            before = loop.time()
            loop.restart_pace()
            assert loop.time() >= before and loop.paced_limit() == math.inf
        finally:
            loop.close()


def test_a_jump_of_time_polls_real_io_only_once_its_wall_window_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated time jumps without a system call each time, yet real I/O is polled every JUMP_POLL_S of wall."""
    import simulator.clock as clock_module

    wall = [0.0]

    def fake_monotonic() -> float:  # each look at the wall clock finds a tenth of the window gone
        wall[0] += clock_module.JUMP_POLL_S / 10
        return wall[0]

    monkeypatch.setattr(clock_module, "_monotonic", fake_monotonic, raising=False)
    loop = VirtualTimeLoop()
    polls: list[float | None] = []
    real = loop._virtual_selector._real
    real_select = real.select

    def counted(timeout: float | None = None) -> Any:
        polls.append(timeout)
        return real_select(timeout)

    monkeypatch.setattr(real, "select", counted)

    async def main() -> float:
        for _ in range(1000):
            await asyncio.sleep(1)  # a jump of simulated time each
        return asyncio.get_running_loop().time()

    try:
        assert loop.run_until_complete(main()) == 1000
    finally:
        loop.close()
    # Every jump polled before: 1000 polls. Now one in about ten jumps (each looks at the wall once).
    assert 50 <= len(polls) <= 200

"""The virtual-time loop runs callbacks in the order asyncio's own loop does.

It fills its handles itself, runs a callback without Handle._run's frame, and goes on in one turn
while the next turn would only run what is ready: none of that may change which callback runs
when, or what happens to one that raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from simulator.clock import POLL_EVERY, VirtualTimeLoop


def _callback_web(loop: asyncio.AbstractEventLoop, order: list[str]) -> Callable[[], Any]:
    """Callbacks, futures and tasks that make each other ready, for hundreds of turns (no timers)."""

    async def worker(name: str, rounds: int) -> None:
        for i in range(rounds):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, i)
            order.append(f"{name} waits {i}")
            await fut
            order.append(f"{name} got {i}")
            if i % 3 == 0:
                await asyncio.sleep(0)
                order.append(f"{name} yielded {i}")

    def chain(name: str, left: int) -> None:
        order.append(f"{name} {left}")
        if left:
            loop.call_soon(chain, name, left - 1)
            if left % 4 == 0:
                loop.call_soon(chain, f"{name}/{left}", 2)

    async def main() -> None:
        loop.call_soon(chain, "a", 3 * POLL_EVERY)
        loop.call_soon(chain, "b", POLL_EVERY + 5)
        await asyncio.gather(worker("w1", 2 * POLL_EVERY), worker("w2", POLL_EVERY // 2), worker("w3", 7))
        order.append("done")

    return main


def _order_on(loop: asyncio.AbstractEventLoop) -> list[str]:
    order: list[str] = []
    try:
        loop.run_until_complete(_callback_web(loop, order)())
    finally:
        loop.close()
    return order


def test_callbacks_futures_and_tasks_run_in_asyncio_order() -> None:
    reference = _order_on(asyncio.SelectorEventLoop())
    assert len(reference) > 4 * POLL_EVERY and reference[-1] == "done"
    assert _order_on(VirtualTimeLoop()) == reference


def test_a_timer_due_now_runs_before_the_callbacks_made_ready_after_it() -> None:
    """asyncio queues a due timer behind what was ready when its turn began, not behind what those
    callbacks made ready since: the loop must not run on past it in one turn."""

    def order_on(loop: asyncio.AbstractEventLoop) -> list[str]:
        order: list[str] = []

        def first() -> None:
            order.append("first")
            loop.call_soon(second)
            loop.call_later(0, order.append, "timer")

        def second() -> None:
            order.append("second")
            loop.call_soon(order.append, "third")

        async def main() -> None:
            loop.call_soon(first)
            await asyncio.sleep(0.01)

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        return order

    assert order_on(asyncio.SelectorEventLoop()) == ["first", "second", "timer", "third"]
    assert order_on(VirtualTimeLoop()) == ["first", "second", "timer", "third"]


def test_a_callback_that_raises_goes_to_the_exception_handler_and_the_loop_goes_on() -> None:
    loop = VirtualTimeLoop()
    seen: list[dict[str, Any]] = []
    ran: list[str] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))

    def broken(x: int) -> None:
        raise ValueError(f"broken {x}")

    async def main() -> None:
        handle = loop.call_soon(broken, 1)
        timer = loop.call_later(5, broken, 2)
        loop.call_soon(ran.append, "after")
        await asyncio.sleep(10)
        assert [c["handle"] for c in seen] == [handle, timer]

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert ran == ["after"]
    assert [str(c["exception"]) for c in seen] == ["broken 1", "broken 2"]
    assert all(c["message"].startswith("Exception in callback") and "broken" in c["message"] for c in seen)


def test_handles_made_by_the_loop_behave_as_asyncios() -> None:
    loop = VirtualTimeLoop()
    try:
        handle = loop.call_soon(print)
        timer = loop.call_at(100.0, print, "x")
        later = loop.call_later(5.0, print)
        assert type(handle) is asyncio.Handle and isinstance(timer, asyncio.TimerHandle)
        assert timer.when() == 100.0 and later.when() == loop.time() + 5.0
        assert not handle.cancelled() and "print" in repr(handle)
        cancelled_before = loop._timer_cancelled_count
        timer.cancel()
        timer.cancel()
        assert timer.cancelled() and loop._timer_cancelled_count == cancelled_before + 1
        assert "cancelled" in repr(timer)
        handle.cancel()
    finally:
        loop.close()
    try:
        loop.call_soon(print)
    except RuntimeError as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a closed loop took a callback")


def test_cancelled_timers_on_top_of_the_heap_keep_the_order_and_take_no_turn_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request's reply wait is a timer cancelled when the reply comes, one per exchange on the
    simulated line: the loop drops such timers where it would jump time anyway, without a turn of
    its own for them, and every live timer still runs at its time in the order it was set."""
    import simulator.clock as clock_module

    monkeypatch.setattr(clock_module, "JUMP_POLL_S", 3600.0)  # no real poll due on a jump: only the heap counts
    loop = VirtualTimeLoop()
    fired: list[tuple[float, str]] = []
    expected: list[tuple[float, int, str]] = []
    made = [0]

    def arm(delay: float, label: str) -> asyncio.TimerHandle:
        when = loop.time() + delay
        expected.append((when, made[0], label))
        made[0] += 1
        return loop.call_at(when, lambda: fired.append((loop.time(), label)))

    async def exchange(node: int, rounds: int) -> None:
        for i in range(rounds):
            wait = loop.call_later(0.005, fired.append, (-1.0, f"timeout {node}/{i}"))  # never fires
            arm(0.001 * (node % 3 + 1), f"reply {node}/{i}")
            await asyncio.sleep(0.001 * (node % 3 + 1) + 0.0001)
            wait.cancel()
            await asyncio.sleep(0.002 * node + 0.001)

    turns = [0]
    run_once = loop._run_once

    def counted_turn() -> None:
        turns[0] += 1
        run_once()

    monkeypatch.setattr(loop, "_run_once", counted_turn)

    async def main() -> None:
        await asyncio.gather(*(exchange(node, 100) for node in range(1, 6)))

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert [label for _, label in fired] == [label for _, _, label in sorted(expected)]
    assert [t for t, _ in fired] == pytest.approx([when for when, _, _ in sorted(expected)], abs=1e-12)
    assert len(fired) == 500
    assert turns[0] < 50  # a turn for each cancelled wait that reaches the top: about 300

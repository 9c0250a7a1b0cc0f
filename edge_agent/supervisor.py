"""Supervised tasks: a task that crashes is logged and restarted with backoff; the daemon lives on.

A gateway runs for months unattended, so a bug in one poller must not take the floor down. Each
long-lived coroutine runs under a :class:`Supervisor`, which restarts it after a crash with
exponential backoff (1 s, 2 s, 4 s ... capped) and, when a task crashes ``crash_loop_count``
times within ``crash_loop_window_s``, reports it as a fault (``on_fault``) so it reaches the
technician and upstream instead of spinning silently. A task that returns normally is done and
is not restarted. Cancellation (shutdown) is never treated as a crash. Backoff and crash windows
keep the daemon's clock (virtual in the simulator).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.ports import Clock
from edge_agent.clock import SystemClock

log = logging.getLogger("edge_agent.supervisor")

TaskFactory = Callable[[], Awaitable[None]]
FaultCallback = Callable[[str, BaseException, int], None]


@dataclass
class TaskRecord:
    """What the supervisor knows about one task, for status and health."""

    name: str
    restarts: int = 0
    last_error: str = ""
    faulted: bool = False
    crashes: deque[float] = field(default_factory=lambda: deque(maxlen=64))


class Supervisor:
    """Runs named coroutine factories and restarts them when they crash."""

    def __init__(
        self,
        *,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        crash_loop_count: int = 5,
        crash_loop_window_s: float = 300.0,
        on_fault: FaultCallback | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.crash_loop_count = crash_loop_count
        self.crash_loop_window_s = crash_loop_window_s
        self.on_fault = on_fault
        self.clock: Clock = clock or SystemClock()
        self.records: dict[str, TaskRecord] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: TaskFactory) -> None:
        """Start (or replace) the supervised task ``name``."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"task {name!r} is already running")
        record = self.records.setdefault(name, TaskRecord(name))
        self._tasks[name] = asyncio.create_task(self._guard(record, factory), name=name)

    async def _guard(self, record: TaskRecord, factory: TaskFactory) -> None:
        backoff = self.initial_backoff_s
        while True:
            started = self.clock.monotonic()
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a crash of any kind is contained here, by design
                now = self.clock.monotonic()
                record.restarts += 1
                record.last_error = f"{type(exc).__name__}: {exc}"
                record.crashes.append(now)
                recent = [t for t in record.crashes if now - t <= self.crash_loop_window_s]
                log.error("task %s crashed (%s); restart %d in %.1fs", record.name, record.last_error,
                          record.restarts, backoff, exc_info=exc)
                if len(recent) >= self.crash_loop_count and not record.faulted:
                    record.faulted = True
                    log.critical("task %s is crashing in a loop (%d crashes in %.0fs)", record.name,
                                 len(recent), self.crash_loop_window_s)
                    if self.on_fault is not None:
                        self.on_fault(record.name, exc, len(recent))
                if now - started > 2 * self.max_backoff_s:
                    backoff = self.initial_backoff_s  # it ran well for a while: start gently again
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def running(self) -> list[str]:
        return [n for n, t in self._tasks.items() if not t.done()]

    async def stop(self, grace_s: float = 3.0) -> None:
        """Cancel every task and wait for them (bounded)."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        self._tasks.clear()

    async def stop_task(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=3.0)

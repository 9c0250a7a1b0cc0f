"""Virtual time for the simulated floor: a library day in seconds, deterministically.

Rather than threading a fake clock through every ``await asyncio.sleep`` in the daemon, the
simulator runs the *real* daemon on an event loop whose notion of time is virtual
(:class:`VirtualTimeLoop`). Every timer, ``asyncio.sleep``, ``asyncio.timeout`` and
``loop.call_later`` then runs on simulated time unchanged.

- ``speed=None`` (as fast as possible): when the loop has nothing ready, it still polls real I/O
  without blocking (so a real MQTT broker's acknowledgements are seen), then jumps simulated
  time straight to the next timer.
- ``speed=N``: simulated time runs N times faster than the wall clock.
- ``pace=N`` (with ``speed=None``): as fast as possible, but never ahead of N simulated seconds
  per wall second. Time moves only while the loop is idle, as in the fast mode, so timeouts of a
  few milliseconds (the RS-485 link's) hold however busy the machine is; yet a process outside
  the loop (a technician's CLI on the control socket) sees a daemon whose clock runs at about N
  times the wall clock.

Work done in threads (``run_in_executor``, ``asyncio.to_thread``: the outbox's SQLite, the
registry's file writes) takes no simulated time: while any is in flight, simulated time stands
still and the loop waits for it in real time. Otherwise a timer could fire "during" a database
write on a busy machine and not on an idle one, and a seeded day would not repeat. Simulated parts
are called inline (the simulated I2C bus does not block).

:class:`VirtualClock` is the :class:`drivers.ports.Clock` for such a loop: monotonic seconds are
the loop's time, wall seconds are a chosen start (e.g. 07:30 on a Tuesday) plus elapsed time.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import heapq
import itertools
import math
import selectors
import time
from asyncio import base_events, format_helpers
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

#: With callbacks ready, real I/O is polled on one loop turn in this many (see _VirtualSelector.select).
POLL_EVERY = 64
#: A jump of simulated time polls real I/O only if this much wall time has passed since the last poll:
#: a few loopback round trips, so a real socket's bytes are still seen within a quarter of a millisecond.
JUMP_POLL_S = 0.00025

# asyncio's own bounds (base_events), for VirtualTimeLoop._run_once.
_MIN_SCHEDULED = base_events._MIN_SCHEDULED_TIMER_HANDLES  # type: ignore[attr-defined]
_MIN_CANCELLED_FRACTION = base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION  # type: ignore[attr-defined]
_MAXIMUM_SELECT_TIMEOUT = base_events.MAXIMUM_SELECT_TIMEOUT  # type: ignore[attr-defined]

# The fields asyncio's Handle.__init__ and TimerHandle.__init__ set. The loop fills them itself
# (see VirtualTimeLoop._handle): only where this Python's handles have exactly these slots, so a
# handle never lacks one that a later asyncio adds; elsewhere it calls the constructors.
_FAST_HANDLES = (
    asyncio.Handle.__slots__
    == ("_callback", "_args", "_cancelled", "_loop", "_source_traceback", "_repr", "__weakref__", "_context")
    and tuple(asyncio.TimerHandle.__slots__) == ("_scheduled", "_when")
)
_copy_context = contextvars.copy_context
_monotonic = time.monotonic
_new_handle = object.__new__
_heappush, _heappop = heapq.heappush, heapq.heappop


class _VirtualTimer(asyncio.TimerHandle):
    """asyncio's timer handle, with its cancel in one call.

    Every ``asyncio.sleep`` cancels its timer when it ends (one that has run, most of the time):
    TimerHandle.cancel calls the loop, Handle.cancel and the loop's ``get_debug`` each time.
    """

    __slots__ = ()

    def cancel(self) -> None:
        if self._cancelled:
            return
        loop = self._loop  # type: ignore[attr-defined]
        if self._scheduled:  # type: ignore[attr-defined]
            loop._timer_cancelled_count += 1  # what loop._timer_handle_cancelled does
        self._cancelled = True
        if loop._debug:
            self._repr = repr(self)
        self._callback = None
        self._args = None  # type: ignore[assignment]


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the loop's real selector; turns blocking waits into jumps of virtual time."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._real = real
        self._loop = loop
        self._busy_turns = 0
        self._quiet_until = 0.0  # no real poll on a jump of simulated time before this (time.monotonic)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        if loop.speed is not None:
            real_timeout = None if timeout is None else timeout / loop.speed
            return self._real.select(real_timeout)
        if timeout == 0:
            # Callbacks are ready: nothing can happen between them in simulated time, so real I/O
            # waits until the loop would let time move (polled below), or every POLL_EVERY turns
            # of a loop that keeps itself busy. A poll is a system call; a simulated day turns the
            # loop over a million times.
            self._busy_turns += 1
            if self._busy_turns < POLL_EVERY:
                return []
        self._busy_turns = 0
        if timeout and not loop.threads_in_flight and loop.pace is None:
            # A jump of simulated time (about a million a simulated day, over ten thousand a wall
            # second): a real poll on each is a system call that releases the GIL, 1-2 us of CPU.
            # Real I/O is polled on a jump once JUMP_POLL_S of wall time has passed since the last
            # poll: a real peer's bytes wait at most that long, and simulated time races on while a
            # peer answers anyway (a loopback round trip spans several jumps).
            now = _monotonic()
            if now < self._quiet_until:
                loop.advance(timeout)
                return []
            self._quiet_until = now + JUMP_POLL_S
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if loop.threads_in_flight:
            # A thread is working for the loop: its result is the next thing to happen, in zero
            # simulated time. Wait for its wake-up (the self-pipe) in real time.
            return self._real.select(0.05 if timeout is None else min(timeout, 0.05))
        if loop.pace is not None:
            return self._paced(timeout)
        if timeout is None:
            # Nothing scheduled: only real I/O (or another thread) can wake us. Wait for it
            # in real time, in short slices, so a stuck simulation is still interruptible.
            return self._real.select(0.05)
        loop.advance(timeout)
        return []

    def _paced(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        """Jump to the next timer if the pace allows it; else wait in real time (for it, or for I/O)."""
        loop = self._loop
        target = math.inf if timeout is None else loop._virtual + timeout
        ready: list[tuple[selectors.SelectorKey, int]] = []
        allowed = loop.paced_limit()
        if target > allowed:
            assert loop.pace is not None
            ready = self._real.select(0.05 if timeout is None else (target - allowed) / loop.pace)
        loop.advance(min(target, loop.paced_limit()) - loop._virtual)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on simulated time (see module docstring)."""

    def __init__(self, *, speed: float | None = None, pace: float | None = None, start: float = 0.0) -> None:
        super().__init__()
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (or None for as fast as possible)")
        if pace is not None and (pace <= 0 or speed is not None):
            raise ValueError("pace must be positive, and only goes with speed=None")
        self.speed = speed
        self.pace = pace
        self._start = start
        self._virtual = start
        self._timer_order = itertools.count()
        self._real_origin = time.monotonic()
        self.threads_in_flight = 0
        self._virtual_selector = _VirtualSelector(self._selector, self)
        self._selector: selectors.BaseSelector = self._virtual_selector

    def time(self) -> float:
        if self.speed is not None:
            return self._virtual + (time.monotonic() - self._real_origin) * self.speed
        return self._virtual

    def paced_limit(self) -> float:
        """How far simulated time may be now in paced mode: ``pace`` seconds per wall second since start."""
        if self.pace is None:
            return math.inf
        return self._start + (time.monotonic() - self._real_origin) * self.pace

    def call_soon(  # type: ignore[override]
        self, callback: Any, *args: Any, context: Any = None
    ) -> asyncio.Handle:
        """As asyncio's: the handle goes to the end of the ready queue (about three million a day).

        The handle is filled in place rather than through two constructors and a debug check each
        time; with the loop in debug mode, asyncio's own path (its checks and tracebacks) runs.
        """
        if self._debug or not _FAST_HANDLES:  # type: ignore[attr-defined]
            return super().call_soon(callback, *args, context=context)
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        handle = _new_handle(asyncio.Handle)
        handle._callback = callback  # type: ignore[attr-defined]
        handle._args = args
        handle._cancelled = False
        handle._loop = self  # type: ignore[attr-defined]
        handle._source_traceback = None  # type: ignore[attr-defined]
        handle._repr = None  # type: ignore[attr-defined]
        handle._context = _copy_context() if context is None else context  # type: ignore[attr-defined]
        self._ready.append(handle)  # type: ignore[attr-defined]
        return handle

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Any, *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        """As asyncio's (every ``asyncio.sleep`` comes here), without its debug bookkeeping when off,
        and the timer made here rather than through a second call that packs the arguments again."""
        if delay is None or self._debug or not _FAST_HANDLES or self._closed:  # type: ignore[attr-defined]
            return super().call_later(delay, callback, *args, context=context)
        return _timer(self, (self._virtual if self.speed is None else self.time()) + delay, callback, args, context)

    def call_at(  # type: ignore[override]
        self, when: float, callback: Any, *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        """Timers due at the same simulated instant run in the order they were set.

        asyncio's timer heap does not keep that order for equal times, and its shape depends on
        every other timer, including those of work whose pace follows the wall clock (a database
        thread, a real socket). Breaking ties by creation order makes a seeded day repeat exactly.
        """
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        if self._debug or not _FAST_HANDLES:  # type: ignore[attr-defined]
            timer = asyncio.TimerHandle(when, callback, args, self, context)
            _heappush(self._scheduled, (when, next(self._timer_order), timer))
            timer._scheduled = True  # type: ignore[attr-defined]
            return timer
        return _timer(self, when, callback, args, context)

    def _run_once(self) -> None:
        """One turn of the loop, as asyncio's own, on the (when, order, timer) heap of :meth:`call_at`.

        It also skips the selector on the busy turns the virtual selector would answer with nothing
        (see _VirtualSelector.select): a simulated day turns the loop about three million times.
        """
        scheduled: list[tuple[float, int, asyncio.TimerHandle]] = self._scheduled  # type: ignore[has-type]
        count = len(scheduled)
        if count > _MIN_SCHEDULED and self._timer_cancelled_count / count > _MIN_CANCELLED_FRACTION:  # type: ignore[has-type]
            live = []
            for entry in scheduled:
                if entry[2]._cancelled:
                    entry[2]._scheduled = False  # type: ignore[attr-defined]
                else:
                    live.append(entry)
            heapq.heapify(live)
            self._scheduled = scheduled = live
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0][2]._cancelled:
                self._timer_cancelled_count -= 1
                _heappop(scheduled)[2]._scheduled = False  # type: ignore[attr-defined]

        ready: collections.deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]
        fast = self.speed is None  # then the loop's time is _virtual (see time())
        timeout: float | None = None
        if ready or self._stopping:  # type: ignore[attr-defined]
            timeout = 0
        elif scheduled:
            now = self._virtual if fast else self.time()
            timeout = min(max(0, scheduled[0][0] - now), _MAXIMUM_SELECT_TIMEOUT)

        selector = self._virtual_selector
        if timeout == 0 and fast and selector._busy_turns + 1 < POLL_EVERY:
            selector._busy_turns += 1  # what selector.select(0) would do, without the calls
        else:
            self._process_events(selector.select(timeout))  # type: ignore[attr-defined]
            fast = self.speed is None  # follow_wall_clock() may have been called meanwhile

        end_time = (self._virtual if fast else self.time()) + self._clock_resolution  # type: ignore[attr-defined]
        _take_due(scheduled, ready, end_time)

        # As asyncio: run the callbacks ready now, not those they make ready (after another poll).
        popleft = ready.popleft
        debug = self._debug  # type: ignore[attr-defined]
        while True:
            for _ in range(len(ready)):
                handle = popleft()
                if handle._cancelled:
                    continue
                if debug:
                    self._run_debug(handle)
                    continue
                # Handle._run inlined (every handle here is asyncio's Handle or TimerHandle, neither
                # of which overrides it): one Python call less on each of millions of callbacks a day.
                try:
                    handle._context.run(handle._callback, *handle._args)  # type: ignore[attr-defined]
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._callback_failed(handle, exc)
            if not ready:
                # The next turn would jump simulated time to the next timer without a real poll
                # (one is not due, see _VirtualSelector.select) and take the timers due then: that
                # turn is taken here, the same jump by the same arithmetic, without its bookkeeping.
                # Anything else (stopping, a poll due, a thread at work, a timer due now, no longer
                # fast) is left to a turn of its own.
                if scheduled is not self._scheduled:
                    return
                # Cancelled timers on top (a reply's wait, cancelled when the reply came: one per
                # exchange on the simulated line) are dropped here as the next turn would drop them
                # (or sweep them with the rest: timers leave the heap in the same order either way).
                while scheduled and scheduled[0][2]._cancelled:
                    self._timer_cancelled_count -= 1
                    _heappop(scheduled)[2]._scheduled = False  # type: ignore[attr-defined]
                if (
                    not scheduled
                    or self._stopping  # type: ignore[attr-defined]
                    or self.speed is not None
                    or self.pace is not None
                    or self.threads_in_flight
                ):
                    return
                jump = scheduled[0][0] - self._virtual
                if not 0 < jump <= _MAXIMUM_SELECT_TIMEOUT or _monotonic() >= selector._quiet_until:
                    return
                selector._busy_turns = 0
                self._virtual += jump
                end_time = self._virtual + self._clock_resolution  # type: ignore[attr-defined]
                _take_due(scheduled, ready, end_time)
                continue
            # The next turn would skip the selector (a busy turn, see above), find no timer due and
            # run what is ready now: that turn is taken here, without its bookkeeping. Anything else
            # (stopping, a poll due, a timer due, no longer fast) is left to a turn of its own.
            if (
                self._stopping  # type: ignore[attr-defined]
                or self.speed is not None
                or selector._busy_turns + 1 >= POLL_EVERY
                or (scheduled and scheduled[0][0] < end_time)
                or scheduled is not self._scheduled
            ):
                return
            selector._busy_turns += 1

    def _callback_failed(self, handle: asyncio.Handle, exc: BaseException) -> None:
        """What Handle._run does when its callback raises: hand it to the loop's exception handler."""
        callback, args = handle._callback, handle._args  # type: ignore[attr-defined]
        context: dict[str, Any] = {
            "message": f"Exception in callback {format_helpers._format_callback_source(callback, args)}",
            "exception": exc,
            "handle": handle,
        }
        if handle._source_traceback:  # type: ignore[attr-defined]
            context["source_traceback"] = handle._source_traceback  # type: ignore[attr-defined]
        self.call_exception_handler(context)

    def _run_debug(self, handle: asyncio.Handle) -> None:
        try:
            self._current_handle = handle
            t0 = self.time()
            handle._run()
            dt = self.time() - t0
            if dt >= self.slow_callback_duration:
                base_events.logger.warning("Executing %s took %.3f seconds", base_events._format_handle(handle), dt)  # type: ignore[attr-defined]
        finally:
            self._current_handle = None  # type: ignore[assignment]

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        """As asyncio's, but counted: simulated time stands still until the work is done."""
        future = super().run_in_executor(executor, func, *args)
        self.threads_in_flight += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _: asyncio.Future[Any]) -> None:
        self.threads_in_flight -= 1

    def restart_pace(self) -> None:
        """Count the pace from now (paced mode): the wall time spent so far does not stay owed.

        The pace allows ``pace`` simulated seconds per wall second since the loop was made, so the
        wall seconds a busy machine takes to build the floor and start the daemon, while simulated
        time stands still, would be spent later in one burst: a process outside meeting a freshly
        started daemon would see its first simulated minutes pass in a fraction of a wall second.
        Nothing to do in the other modes.
        """
        if self.pace is None:
            return
        self._start = self._virtual
        self._real_origin = time.monotonic()

    def follow_wall_clock(self, speed: float = 1.0) -> None:
        """From now on simulated time runs ``speed`` times the wall clock, from where it stands.

        A run can fast-forward (a morning on the floor before a daemon meets it), then serve
        processes outside the loop in real time.
        """
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._virtual = self.time()
        self._real_origin = time.monotonic()
        self.speed, self.pace = speed, None

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (as-fast-as-possible mode only)."""
        if self.speed is None and seconds > 0:
            self._virtual += seconds


def _timer(
    loop: VirtualTimeLoop, when: float, callback: Any, args: tuple[Any, ...], context: Any
) -> asyncio.TimerHandle:
    """A timer at ``when`` on the loop's heap, filled in place: what TimerHandle(when, callback, args,
    loop, context) sets (see _FAST_HANDLES).

    The heap holds (when, order, timer): tuples compare in C, and the order, unique, breaks ties
    before the timer itself is ever compared (millions of comparisons a simulated day).
    """
    timer = _new_handle(_VirtualTimer)
    timer._callback = callback
    timer._args = args
    timer._cancelled = False
    timer._loop = loop  # type: ignore[attr-defined]
    timer._source_traceback = None  # type: ignore[attr-defined]
    timer._repr = None  # type: ignore[assignment]
    timer._context = _copy_context() if context is None else context  # type: ignore[attr-defined]
    timer._when = when  # type: ignore[attr-defined]
    _heappush(loop._scheduled, (when, next(loop._timer_order), timer))
    timer._scheduled = True  # type: ignore[attr-defined]
    return timer


def _take_due(
    scheduled: list[tuple[float, int, asyncio.TimerHandle]], ready: collections.deque[asyncio.Handle], end_time: float
) -> None:
    """Move the timers due before ``end_time`` from the heap to the ready queue, in (when, order) order."""
    while scheduled:
        entry = scheduled[0]
        if entry[0] >= end_time:
            return
        _heappop(scheduled)
        entry[2]._scheduled = False  # type: ignore[attr-defined]
        ready.append(entry[2])


class VirtualClock:
    """The :class:`drivers.ports.Clock` for a :class:`VirtualTimeLoop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wall_start: datetime) -> None:
        self._loop = loop
        self._origin = loop.time()
        self._wall0 = wall_start.timestamp()
        self.wall_start = wall_start
        self.synced = True  # simulated wall time is, by construction, right
        # Monotonic seconds are the loop's time: its own method, not one around it (the daemon asks
        # on every poll, reading and guarded transfer, millions of times a simulated day).
        self.monotonic: Callable[[], float] = loop.time

    def time(self) -> float:
        return self._wall0 + (self._loop.time() - self._origin)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=self.wall_start.tzinfo)

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """``asyncio.sleep`` itself (awaited by the caller): no coroutine of its own around it, on
        the hundreds of thousands of polls a simulated day sleeps between."""
        return asyncio.sleep(max(0.0, seconds))


def run_virtual(main: Coroutine[Any, Any, T], *, speed: float | None = None) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop` and close it."""
    loop = VirtualTimeLoop(speed=speed)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

"""PIR motion sensor on a GPIO pin, through gpiozero with an injected pin factory.

gpiozero's ``MotionSensor`` already smooths the pin (``queue_len`` samples at ``sample_rate``
Hz, default one sample at 10 Hz), so an edge shows up about 0.1 s after the pin moves; callers
must wait for events, never expect them at once. Its callbacks run on gpiozero's own thread, so
they are handed to the event loop with ``call_soon_threadsafe`` and timestamped there with the
injected clock.

Debounce: a change is accepted only if it differs from the last accepted state and comes at
least ``debounce_s`` after the previous accepted change; an early change is re-checked when the
debounce window ends, so the final state is never lost.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from drivers.health import DeviceHealth
from drivers.ports import Clock


@dataclass(frozen=True, slots=True)
class MotionEvent:
    sensor: str
    motion: bool
    t: float


class PirSensor:
    """Motion events from one PIR; use inside a running event loop and ``close()`` afterwards."""

    def __init__(
        self,
        pin: int,
        pin_factory: Any,
        clock: Clock,
        *,
        name: str = "",
        debounce_s: float = 0.5,
        queue_len: int = 1,
        sample_rate: float = 10.0,
        max_events: int = 256,
        smoothing: bool = True,
    ) -> None:
        from gpiozero import DigitalInputDevice, MotionSensor

        self.name = name or f"pir@gpio{pin}"
        self.clock = clock
        self.debounce_s = debounce_s
        self.health = DeviceHealth(self.name)
        self.events: asyncio.Queue[MotionEvent] = asyncio.Queue(maxsize=max_events)
        self._loop = asyncio.get_running_loop()
        self._state = False
        self._changed_at = -1e9
        self._recheck: asyncio.TimerHandle | None = None
        self._device: Any
        if smoothing:
            self._fill_s = (queue_len + 2) / sample_rate
            self._device = MotionSensor(pin, queue_len=queue_len, sample_rate=sample_rate, pin_factory=pin_factory)
            self._device.when_motion = lambda: self._from_thread()
            self._device.when_no_motion = lambda: self._from_thread()
        else:
            # Edge callbacks straight from the pin, no sampling thread: the simulator runs on
            # virtual time, where a thread sampling at 10 Hz of wall time would lag by hours.
            self._fill_s = 0.0
            self._device = DigitalInputDevice(pin, pull_up=False, pin_factory=pin_factory)
            self._device.when_activated = lambda: self._from_thread()
            self._device.when_deactivated = lambda: self._from_thread()

    async def settle(self) -> None:
        """Wait until gpiozero's sample queue has filled, then take the pin's state as the start.

        gpiozero fires no edge events until its queue is full (``queue_len / sample_rate`` s plus
        a sample), so motion in that first instant would otherwise go unnoticed.
        """
        await asyncio.sleep(self._fill_s)
        self._consider()

    @property
    def motion_detected(self) -> bool:
        """The last accepted (debounced) state."""
        return self._state

    def _from_thread(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._consider)

    def _consider(self) -> None:
        """On the loop: accept the pin's current state if it changed and the window has passed."""
        self._recheck = None
        if self._device.closed:
            return
        now = self.clock.monotonic()
        state = bool(self._device.is_active)
        if state == self._state:
            return
        wait = self._changed_at + self.debounce_s - now
        if wait > 0:
            if self._recheck is None:
                self._recheck = self._loop.call_later(wait, self._consider)
            return
        self._state = state
        self._changed_at = now
        self.health.record_good(now)
        if self.events.full():
            self.events.get_nowait()  # drop the oldest; the newest state matters most
        self.events.put_nowait(MotionEvent(self.name, state, now))

    async def next_event(self, timeout_s: float | None = None) -> MotionEvent:
        async with asyncio.timeout(timeout_s):
            return await self.events.get()

    def close(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        self._device.close()

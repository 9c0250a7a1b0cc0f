"""PIR motion sensor module (HC-SR501, AM312 and alike) on a GPIO pin, through gpiozero.

The module does its own signal processing: its output goes high on motion and stays high for its
hold time after the last motion (retriggering), then stays low for a blocking time (HC-SR501
about 2.5 s, AM312 about 2 s) whatever happens. So the pin carries clean pulses of at least the
hold time; what reaches the gateway besides is wiring noise, short spikes.

The driver takes gpiozero's edge callbacks (``DigitalInputDevice``: an interrupt on a gateway,
a call from the simulator's mock pin) and smooths on the injected clock, so the same code runs on
a gateway and on virtual time (gpiozero's own ``MotionSensor`` samples the pin on a thread at 10
Hz of wall time, which a simulated day would outrun):

- smoothing: a new level is believed only once the pin has held it for ``settle_s`` (0.1 s, the
  lag ``MotionSensor``'s default sampling has), so a spike shorter than that is no motion;
- debounce: a change is accepted only ``debounce_s`` after the previous accepted change; a change
  inside the window is judged again when it ends, so the final state is never lost.

Callbacks may come from gpiozero's thread: they are handed to the event loop with
``call_soon_threadsafe`` and timestamped there with the injected clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from drivers.health import DeviceHealth
from drivers.kinds import PartKind, PartPorts, PartSpec, Quantity
from drivers.ports import Clock, Reading


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
        settle_s: float = 0.1,
        max_events: int = 256,
    ) -> None:
        from gpiozero import DigitalInputDevice

        self.name = name or f"pir@gpio{pin}"
        self.clock = clock
        self.debounce_s = debounce_s
        self.settle_s = settle_s
        self.health = DeviceHealth(self.name)
        self.events: asyncio.Queue[MotionEvent] = asyncio.Queue(maxsize=max_events)
        self._loop = asyncio.get_running_loop()
        self._state = False
        self._changed_at = -1e9
        self._edge_at = -1e9
        self._judging: asyncio.Task[None] | None = None
        self._device: Any = DigitalInputDevice(pin, pull_up=False, pin_factory=pin_factory)
        self._device.when_activated = lambda: self._from_thread()
        self._device.when_deactivated = lambda: self._from_thread()

    async def settle(self) -> None:
        """Wait one smoothing interval, then take the pin's state as the start."""
        await self.clock.sleep(self.settle_s)
        self._accept()

    @property
    def motion_detected(self) -> bool:
        """The last accepted (smoothed, debounced) state."""
        return self._state

    def _from_thread(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._edge)

    def _edge(self) -> None:
        """On the loop: the pin moved; judge it once it has held still long enough."""
        self._edge_at = self.clock.monotonic()
        if self._judging is None or self._judging.done():
            self._judging = self._loop.create_task(self._judge(), name=f"{self.name}-judge")

    async def _judge(self) -> None:
        while True:
            now = self.clock.monotonic()
            wait = max(self._edge_at + self.settle_s, self._changed_at + self.debounce_s) - now
            if wait <= 0:
                break
            await self.clock.sleep(wait)
        self._accept()

    def _accept(self) -> None:
        """Take the pin's current level if it differs from the accepted state."""
        if self._device.closed:
            return
        state = bool(self._device.is_active)
        if state == self._state:
            return
        now = self.clock.monotonic()
        self._state = state
        self._changed_at = now
        self.health.record_good(now)
        if self.events.full():
            self.events.get_nowait()  # drop the oldest; the newest state matters most
        self.events.put_nowait(MotionEvent(self.name, state, now))

    async def next_event(self, timeout_s: float | None = None) -> MotionEvent:
        async with asyncio.timeout(timeout_s):
            return await self.events.get()

    async def readings(self) -> list[Reading]:
        """The accepted state now, as a reading (1 motion, 0 none)."""
        return [Reading(self.name, "motion", 1.0 if self._state else 0.0, "", self.clock.monotonic())]

    def close(self) -> None:
        if self._judging is not None:
            self._judging.cancel()
        self._device.close()


def _build(ports: PartPorts, clock: Clock, spec: PartSpec) -> PirSensor | None:
    if spec.pin is None:
        return None  # a PIR on a node: the node reports its edges over the bridge
    return PirSensor(spec.pin, ports.pin_factory(), clock, name=spec.name)


PARTS = (
    PartKind(name="pir", summary="PIR motion module (HC-SR501, AM312) on a GPIO pin or a node's input", build=_build,
             start=PirSensor.settle, readings=PirSensor.readings, quantities=(Quantity("motion", ""),),
             wiring=(("pin",), ("node",)), feed="events", example={"pin": 17}),
)

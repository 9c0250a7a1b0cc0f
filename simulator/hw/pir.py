"""Simulated PIR motion module (HC-SR501 style; AM312 alike): what the world moves, the pin shows.

The world says when something warm moves in the module's view (:meth:`SimPirModule.sense`); the
module drives its output as the real board does (HC-SR501 with the trigger jumper at H, the
usual setting; AM312 is retriggering too):

- output high as soon as motion is seen, and held ``hold_s`` after the last motion (each new
  motion restarts the hold: "repeatable trigger"). HC-SR501's hold is set by its trimmer from
  about 3 s up; AM312's is fixed at about 2 s. The default here is 3 s;
- after the output falls, the module is blind for ``block_s`` (HC-SR501 2.5 s, AM312 about 2 s):
  motion then is not seen; motion still going on when the block ends raises the output again.

Sources: HC-SR501 specifications (delay 0.3..200 s, lock time 2.5 s default, trigger modes L/H),
AM312 specifications (delay about 2 s, blocking about 2 s, repeatable trigger). The output drives
a gpiozero mock pin (a PIR on a GPIO line) or a node's PIR input; the gateway's driver then does
the smoothing it does on a real board. Timing runs on the event loop, which the simulator drives
on virtual time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.hw.gpio import driven_pin
from simulator.hw.parts import SimPart

if TYPE_CHECKING:
    from edge_agent.config import Sensor
    from simulator.hw.floor import SimHardware

HOLD_S = 3.0
BLOCK_S = 2.5


class SimPirModule:
    """One PIR board: ``sense(True/False)`` is the world; ``output`` receives the board's level."""

    kind = "pir"

    def __init__(self, output: Callable[[bool], None], monotonic: Callable[[], float], *,
                 hold_s: float = HOLD_S, block_s: float = BLOCK_S) -> None:
        self.output, self.monotonic = output, monotonic
        self.hold_s, self.block_s = hold_s, block_s
        self.level = self.moving = False  # the output, and whether something moves in view now
        self._blind_until = -1e18
        self._timer: asyncio.TimerHandle | None = None

    def _drive(self, level: bool) -> None:
        self.level = level
        self.output(level)

    def _later(self, delay: float, then: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, delay), then)

    def sense(self, moving: bool) -> None:
        """Something warm starts (True) or stops (False) moving in the module's view."""
        now = self.monotonic()
        self.moving = moving
        if moving:
            if now < self._blind_until:
                return  # blocked: judged again when the block ends
            if not self.level:
                self._drive(True)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif self.level:
            self._later(self.hold_s, self._hold_over)

    def _hold_over(self) -> None:
        self._timer = None
        if self.moving:
            return  # still moving: the hold restarts when the motion stops
        self._drive(False)
        self._blind_until = self.monotonic() + self.block_s
        self._later(self.block_s, self._block_over)

    def _block_over(self) -> None:
        self._timer = None
        if self.moving:
            self.sense(True)

    def reset(self) -> None:
        """Power cycle: output low, no timers."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.moving = False
        self._blind_until = -1e18
        if self.level:
            self._drive(False)


def pin_output(pin: Any) -> Callable[[bool], None]:
    """The module's output wired to a gpiozero mock pin."""

    def drive(level: bool) -> None:
        if level:
            pin.drive_high()
        else:
            pin.drive_low()

    return drive


def _unwired(level: bool) -> None:
    """A node's PIR before the world's binding has wired it to its node: the level goes nowhere."""


def _make(hw: SimHardware, sensor: Sensor) -> SimPirModule:
    if sensor.pin is None:
        return SimPirModule(_unwired, hw.monotonic)  # on a node: wired to the node's PIR input later
    return SimPirModule(pin_output(driven_pin(hw.pin_factory, sensor.pin)), hw.monotonic)


SIM_PARTS = (SimPart("pir", _make),)

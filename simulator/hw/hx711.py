"""Simulated Avia HX711 load-cell amplifier, at the level of its two pins.

Built from the datasheet (HARDWARE.md section 10), not from the driver:

- conversions run freely at the data rate (10 or 80 per second, the RATE pin); after a reset or a
  change of channel or gain the first one comes after 4 conversion periods (the datasheet's
  settling time; whether the real part shows unsettled data earlier is not documented, so the
  model holds DOUT high until then);
- DOUT is low while a conversion waits to be read; each rising edge of PD_SCK shifts out one bit,
  MSB first, 24-bit two's complement; after the 24th DOUT stays high; 25, 26 or 27 pulses in all
  choose channel A gain 128, channel B gain 32 or channel A gain 64 for the next conversion, any
  other count is a communication error that only a reset clears (DOUT then stays high);
- PD_SCK high for more than 60 us powers the part down (DOUT high); taking it low again resets it
  to channel A, gain 128.

A read cycle's pulse count is taken as complete once PD_SCK has rested low for 5 ms (far
longer than any bit period) when DOUT is next looked at or PD_SCK rises again.

The scene: ``mass_g`` on the platform; the cell and board turn it into counts at gain 128 as
``zero_counts + mass_g * counts_per_gram`` (gain 64 halves it), channel B reads ``channel_b_counts``,
plus Gaussian noise of ``noise`` counts, clamped to the 24-bit range.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from gpiozero.pins.mock import MockPWMPin

from simulator.hw.parts import SimPart, part_seed

if TYPE_CHECKING:
    from edge_agent.config import Sensor
    from simulator.hw.floor import SimHardware

GAIN_BY_PULSES = {25: 128, 26: 32, 27: 64}
POWER_DOWN_S = 60e-6
CYCLE_GAP_S = 5e-3
SETTLING_CONVERSIONS = 4


class SimHx711:
    """The part: ``on_clock`` hears PD_SCK, ``dout`` is the level it drives on DOUT."""

    kind = "hx711"

    def __init__(self, monotonic: Callable[[], float], *, rate: int = 10, noise: float = 0.0, seed: int = 0,
                 zero_counts: float = 8000.0, counts_per_gram: float = 430.0) -> None:
        self.monotonic = monotonic
        self.rate = rate
        self.noise = noise
        self.rng = random.Random(seed)
        self.mass_g = 0.0
        self.zero_counts = zero_counts
        self.counts_per_gram = counts_per_gram
        self.channel_b_counts = 0.0
        self.gain = 128  # of the conversions now running
        self.powered_down = False
        self.comm_error = False
        self.pulse_counts: list[int] = []  # every finished read cycle's pulses (tests look)
        self.resets = 0
        self._sck = False
        self._rose_at = 0.0
        self._fell_at = -1.0
        self._pulses = 0
        self._word = 0
        self._read_index = -1
        self._reset(monotonic())

    # -- the scene ---------------------------------------------------------------------------
    def set_mass(self, grams: float) -> None:
        self.mass_g = grams

    def _counts(self) -> int:
        if self.gain == 32:
            value = self.channel_b_counts
        else:
            value = (self.zero_counts + self.mass_g * self.counts_per_gram) * self.gain / 128
        if self.noise > 0:
            value += self.rng.gauss(0.0, self.noise)
        return max(-0x800000, min(0x7FFFFF, round(value)))

    # -- conversions ---------------------------------------------------------------------------
    def _reset(self, t: float) -> None:
        self.resets += 1
        self.gain = 128
        self.comm_error = False
        self._restart(t)

    def _restart(self, t: float) -> None:
        """Conversions (re)start at ``t``: the first settles after four periods."""
        self._first_at = t + SETTLING_CONVERSIONS / self.rate
        self._read_index = -1

    def _latest(self, t: float) -> int:
        """Index of the newest finished conversion at ``t`` (-1: none yet)."""
        if t < self._first_at:
            return -1
        return math.floor((t - self._first_at) * self.rate)

    def _close_cycle(self, t: float) -> None:
        """A read cycle whose PD_SCK has rested low long enough is complete: apply its count."""
        if self._pulses == 0 or self._sck or t - self._fell_at < CYCLE_GAP_S:
            return
        pulses, self._pulses = self._pulses, 0
        self.pulse_counts.append(pulses)
        if pulses not in GAIN_BY_PULSES:
            self.comm_error = True
            return
        gain = GAIN_BY_PULSES[pulses]
        if gain != self.gain:
            self.gain = gain
            self._restart(self._fell_at)

    # -- the pins ------------------------------------------------------------------------------
    def on_clock(self, high: bool) -> None:
        now = self.monotonic()
        if high:
            self._close_cycle(now)
            self._rose_at = now
            if self.powered_down or self.comm_error:
                return
            if self._pulses == 0:  # the first pulse latches the waiting conversion
                latest = self._latest(now)
                self._word = (self._counts() & 0xFFFFFF) if latest > self._read_index else 0xFFFFFF
                self._read_index = max(latest, self._read_index)
            self._pulses += 1
            return
        if now - self._rose_at > POWER_DOWN_S:
            self.powered_down = True  # it went down while high; low again resets it
        if self.powered_down:
            self.powered_down = False
            self._pulses = 0
            self._reset(now)
            return
        self._fell_at = now

    def dout(self) -> bool:
        """The DOUT level now (True is high)."""
        now = self.monotonic()
        if self._sck and now - self._rose_at > POWER_DOWN_S:
            self.powered_down = True
        self._close_cycle(now)
        if self.powered_down or self.comm_error:
            return True
        if 0 < self._pulses <= 24:
            return bool(self._word >> (24 - self._pulses) & 1)
        if self._pulses > 24:
            return True
        return self._latest(now) <= self._read_index  # low: a new conversion waits

    def hear_clock(self, high: bool) -> None:
        """PD_SCK changed (called by its pin)."""
        self._sck = high
        self.on_clock(high)


class Hx711ClockPin(MockPWMPin):  # type: ignore[misc]
    """The PD_SCK line: every change reaches the part (no state history kept: a day has millions)."""

    part: SimHx711 | None = None

    def _change_state(self, value: float) -> bool:
        level = bool(value)
        if bool(self.state) == level:
            return False
        self._state = value
        if self.part is not None:
            self.part.hear_clock(level)
        return True


class Hx711DataPin(MockPWMPin):  # type: ignore[misc]
    """The DOUT line: its level is whatever the part drives now."""

    part: SimHx711 | None = None

    def _get_state(self) -> float:
        return float(self.part.dout()) if self.part is not None else 1.0

    def _change_state(self, value: float) -> bool:
        return False  # the host's pull resistor cannot move a driven output


def attach(part: SimHx711, factory: object, data_pin: int, clock_pin: int) -> SimHx711:
    """Wire ``part`` to two pins of a gpiozero MockFactory (before any device opens them)."""
    sck = factory.pin(clock_pin, pin_class=Hx711ClockPin)  # type: ignore[attr-defined]
    dout = factory.pin(data_pin, pin_class=Hx711DataPin)  # type: ignore[attr-defined]
    sck.part = dout.part = part
    return part


def _make(hw: SimHardware, sensor: Sensor) -> SimHx711 | None:
    if sensor.node is not None:
        return None  # under a desk: the desk node simulates it (simulator.nodes_loadcell)
    if sensor.pin is None:
        raise ValueError(f"{sensor.id}: the simulated HX711 needs its DOUT pin")
    part = SimHx711(hw.monotonic, rate=int(sensor.settings["rate"]), noise=2.0, seed=part_seed(sensor.id))
    return attach(part, hw.pin_factory, sensor.pin, int(sensor.settings["clock_pin"]))


SIM_PARTS = (SimPart("hx711", _make),)

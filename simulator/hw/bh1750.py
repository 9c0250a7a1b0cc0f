"""Simulated ROHM BH1750 ambient light sensor: opcodes only, conversions that take time.

No registers: each write is exactly one opcode (a second byte in the same write is NACKed, the
part "is not able to accept plural command without stop condition"). A read returns the last
*finished* conversion, MSB first. Conversions take the typical time scaled by MTreg/69 (H and
H2 120 ms, L 16 ms); one-time modes power the part down afterwards. Before the first finished
conversion the part returns 0 (the datasheet does not say; UNVERIFIED).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from simulator.hw.bus import SimI2CDevice, SimNack
from simulator.hw.parts import SimPart, on_its_bus, part_seed

if TYPE_CHECKING:
    from edge_agent.config import Sensor
    from simulator.hw.floor import SimHardware

POWER_DOWN, POWER_ON, RESET = 0x00, 0x01, 0x07
H_RES, H_RES2, L_RES = 0x10, 0x11, 0x13
TYPICAL_S = {H_RES: 0.120, H_RES2: 0.120, L_RES: 0.016}


class SimBH1750(SimI2CDevice):
    """Light sensor; ``set_lux`` is the illuminance at its window."""

    kind = "bh1750"

    def __init__(self, monotonic: Callable[[], float], *, noise: float = 0.0, seed: int = 0) -> None:
        super().__init__(monotonic, noise=noise, seed=seed)
        self.lux = 300.0
        self.powered = False
        self.mode: int | None = None  # H_RES / H_RES2 / L_RES
        self.one_time = False
        self.mtreg = 69
        self.counts = 0
        self._started: float | None = None  # start of the conversion in progress

    def set_lux(self, lux: float) -> None:
        self.lux = max(0.0, lux)

    def conversion_time(self) -> float:
        return TYPICAL_S[self.mode or H_RES] * self.mtreg / 69

    def _counts_now(self) -> int:
        lux = self.sample("lux", lambda: max(0.0, self.measured("lux", self.lux)))
        counts = lux * 1.2 * self.mtreg / 69
        if self.mode == H_RES2:
            counts *= 2
        elif self.mode == L_RES:  # 4 lx steps; low bits read as 0 (bit layout UNVERIFIED)
            counts = math.floor(counts / 4) * 4
        return min(0xFFFF, round(counts))

    def _advance(self) -> None:
        """Finish any conversions whose time has come (continuous mode restarts at once)."""
        if self._started is None or self.slow:
            return
        period = self.conversion_time()
        elapsed = self.monotonic() - self._started
        if elapsed < period:
            return
        self.counts = self._counts_now()
        if self.one_time:
            self._started = None
            self.powered = False
        else:
            self._started += math.floor(elapsed / period) * period

    def on_write(self, data: bytes) -> None:
        if len(data) != 1:
            raise SimNack  # one opcode per transaction
        self._advance()
        op = data[0]
        if op == POWER_DOWN:
            self.powered, self._started = False, None
        elif op == POWER_ON:
            self.powered = True
        elif op == RESET:
            if self.powered:  # not accepted in power-down
                self.counts = 0
        elif op in (H_RES, H_RES2, L_RES, 0x20, 0x21, 0x23):  # continuous 0x1x, one-time 0x2x
            self.powered = True
            self.one_time = op >= 0x20
            self.mode = 0x10 | (op & 0x03)
            self._started = self.monotonic()
        elif op & 0xF8 == 0x40:
            self.mtreg = (self.mtreg & 0x1F) | ((op & 0x07) << 5)
        elif op & 0xE0 == 0x60:
            self.mtreg = (self.mtreg & 0xE0) | (op & 0x1F)
        else:
            raise SimNack

    def on_read(self, n: int) -> bytes:
        self._advance()
        return bytes((self.counts >> 8, self.counts & 0xFF))


DEFAULT_LUX = 300.0  # a library room in the morning


def _make(hw: SimHardware, sensor: Sensor) -> SimBH1750:
    bh = SimBH1750(hw.monotonic, noise=1.0, seed=part_seed(sensor.id))
    bh.set_lux(DEFAULT_LUX)
    on_its_bus(hw, sensor, bh)
    return bh


SIM_PARTS = (SimPart("bh1750", _make),)

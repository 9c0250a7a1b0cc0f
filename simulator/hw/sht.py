"""Simulated Sensirion SHT3x (SHT31) and SHT4x humidity/temperature sensors.

Both follow Sensirion's command model: a write carries a command (16-bit for SHT3x, 8-bit for
SHT4x), the part works for its execution time, and a read before the result is ready is NACKed
at the address. Data goes out as words with CRC-8 (:mod:`drivers.sensirion`, the same
codec the real parts use, tested separately on datasheet vectors). SHT3x periodic mode keeps
the latest result for *fetch* (0xE000); a fetch with no new data is NACKed and a fetch clears it
(SHT3x DS v5 section 4.6).

SHT3x single shot *with* clock stretching (0x2C06 / 0x2C0D / 0x2C10): the part acknowledges a
read header sent before the result is ready and holds SCL low until it is (``stretch_s`` says how
long; an adapter with a clock-stretch timeout gives up, see :class:`SimI2CBus`). Break (0x3093)
is accepted in either mode: in single-shot mode it changes nothing, so a reset sequence of Break
then soft reset (what ``Sht31.soft_reset`` sends) works whatever the mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from drivers.sensirion import celsius_to_ticks, crc8, pack_words
from simulator.hw.bus import SimI2CDevice, SimNack
from simulator.hw.parts import SimPart, on_its_bus, part_seed

if TYPE_CHECKING:
    from edge_agent.config import Sensor
    from simulator.hw.floor import SimHardware


class SensirionPart(SimI2CDevice):
    """Shared Sensirion behaviour: one pending response, ready at a time, cleared by reading."""

    def __init__(self, monotonic: Callable[[], float], *, noise: float, seed: int) -> None:
        super().__init__(monotonic, noise=noise, seed=seed)
        self._pending: bytes | None = None
        self._ready_at = 0.0
        self._stretching = False  # the pending command holds SCL instead of NACKing an early read

    def respond(self, data: bytes, after_s: float = 0.0, *, stretch: bool = False) -> None:
        self._pending = data
        self._ready_at = self.monotonic() + after_s
        self._stretching = stretch

    def corrupt(self, data: bytes) -> bytes:
        """Flip a bit of the first CRC byte, as line noise on that byte would."""
        if len(data) < 3:
            return super().corrupt(data)
        return data[:2] + bytes([data[2] ^ 0x10]) + data[3:]

    def on_read(self, n: int) -> bytes:
        early = self._ready_at - self.monotonic()
        if self._pending is not None and self._stretching and not self.slow and early > 0:
            self.stretch_s = early  # acknowledged; SCL held low until the result is ready
            early = 0.0
        if self._pending is None or self.slow or early > 0:
            raise SimNack  # busy or nothing to send: the read header is not acknowledged
        data, self._pending = self._pending, None
        return data


class SimSHT31(SensirionPart):
    """SHT3x at 0x44/0x45: single shot, periodic + fetch, status, heater, soft reset."""

    kind = "sht31"
    # Measurement duration (s) by repeatability: SHT3x DS v5 Table 4 maximum values.
    DURATION = {"high": 0.0155, "medium": 0.0065, "low": 0.0045}
    SINGLE = {0x2C06: "high", 0x2C0D: "medium", 0x2C10: "low", 0x2400: "high", 0x240B: "medium", 0x2416: "low"}
    STRETCHING = frozenset({0x2C06, 0x2C0D, 0x2C10})
    PERIODIC_MPS = {0x20: 0.5, 0x21: 1.0, 0x22: 2.0, 0x23: 4.0, 0x27: 10.0}

    def __init__(self, monotonic: Callable[[], float], *, noise: float = 0.0, seed: int = 0) -> None:
        super().__init__(monotonic, noise=noise, seed=seed)
        self.temperature_c = 22.0
        self.humidity_pct = 40.0
        self.status = 0x8010  # alert pending + system reset detected, as after power-up
        self.periodic_interval: float | None = None
        self._periodic_start = 0.0
        self._fetched_index = 0

    def set_environment(self, temperature_c: float, humidity_pct: float) -> None:
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct

    def measurement(self) -> bytes:
        """Six bytes: T word, CRC, RH word, CRC -- of the environment now, with the part's errors."""
        t_ticks = self.sample("t", lambda: celsius_to_ticks(self.measured("temperature", self.temperature_c)))
        rh = self.sample("rh", lambda: self.measured("humidity", self.humidity_pct, self.noise * 5))
        return pack_words((t_ticks, max(0, min(0xFFFF, round(rh * 65535 / 100)))))

    def _periodic_index(self) -> int:
        assert self.periodic_interval is not None
        return math.floor((self.monotonic() - self._periodic_start) / self.periodic_interval)

    def on_write(self, data: bytes) -> None:
        if len(data) < 2:
            raise SimNack
        code = (data[0] << 8) | data[1]
        if len(data) > 2 and (len(data) != 5 or crc8(data[2:4]) != data[4]):
            self.status |= 0x0001  # write data checksum status
            return
        if self.periodic_interval is not None:
            if code == 0xE000:  # fetch: data only if a new measurement finished since last fetch
                index = self._periodic_index()
                if index > self._fetched_index and not self.slow:
                    self._fetched_index = index
                    self.respond(self.measurement())
                else:
                    self._pending = None
                return
            if code == 0x3093:  # break
                self.periodic_interval = None
                return
            if code in (0xF32D, 0x3041):
                self._status_command(code)
                return
            return  # other commands (soft reset among them) are ignored in periodic mode
        if code in self.SINGLE:
            self.respond(self.measurement(), self.DURATION[self.SINGLE[code]], stretch=code in self.STRETCHING)
        elif code == 0x3093:
            pass  # break: nothing to stop in single-shot mode, yet acknowledged
        elif data[0] in self.PERIODIC_MPS or code == 0x2B32:
            self.periodic_interval = 0.25 if code == 0x2B32 else 1.0 / self.PERIODIC_MPS[data[0]]
            self._periodic_start = self.monotonic()
            self._fetched_index = 0
        elif code == 0x30A2:  # soft reset
            self.status = 0x0010
            self._pending = None
        elif code in (0x306D, 0x3066):
            self.status = (self.status | 0x2000) if code == 0x306D else (self.status & ~0x2000)
        elif code in (0xF32D, 0x3041):
            self._status_command(code)
        elif code == 0x3780:
            self.respond(pack_words((0x1234, 0x5678)), 0.001)
        else:
            self.status |= 0x0002  # command not processed
            raise SimNack

    def _status_command(self, code: int) -> None:
        if code == 0xF32D:
            self.respond(pack_words((self.status,)))
        else:
            self.status &= ~0x8C13 & 0xFFFF


class SimSHT4x(SensirionPart):
    """SHT4x at 0x44: one-byte commands, no clock stretching, heater pulses."""

    kind = "sht4x"
    # Datasheet maximum durations (s); heater commands take ~1.1 s or ~0.11 s then measure.
    MEASURE = {0xFD: 0.0083, 0xF6: 0.0045, 0xE0: 0.0017}
    HEATER = {0x39: 1.1, 0x32: 0.11, 0x2F: 1.1, 0x24: 0.11, 0x1E: 1.1, 0x15: 0.11}

    def __init__(self, monotonic: Callable[[], float], *, noise: float = 0.0, seed: int = 0) -> None:
        super().__init__(monotonic, noise=noise, seed=seed)
        self.temperature_c = 22.0
        self.humidity_pct = 40.0

    def set_environment(self, temperature_c: float, humidity_pct: float) -> None:
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct

    def measurement(self) -> bytes:
        t_ticks = self.sample("t", lambda: celsius_to_ticks(self.measured("temperature", self.temperature_c)))
        rh = self.sample("rh", lambda: self.measured("humidity", self.humidity_pct, self.noise * 5))
        # RH = -6 + 125 * S / 65535 (the part reports up to -6..119 %RH; hosts clamp).
        rh_ticks = max(0, min(0xFFFF, round((rh + 6.0) * 65535 / 125.0)))
        return pack_words((t_ticks, rh_ticks))

    def on_write(self, data: bytes) -> None:
        if len(data) != 1:
            raise SimNack
        code = data[0]
        if code in self.MEASURE:
            self.respond(self.measurement(), self.MEASURE[code])
        elif code in self.HEATER:
            self.respond(self.measurement(), self.HEATER[code])
        elif code == 0x89:
            self.respond(pack_words((0x0BAD, 0xCAFE)), 0.001)
        elif code == 0x94:
            self._pending = None
        else:
            raise SimNack


DEFAULT_T_C, DEFAULT_RH = 22.0, 40.0


def _make_sht31(hw: SimHardware, sensor: Sensor) -> SimSHT31:
    sht = SimSHT31(hw.monotonic, noise=0.02, seed=part_seed(sensor.id))
    sht.set_environment(DEFAULT_T_C, DEFAULT_RH)
    on_its_bus(hw, sensor, sht)
    return sht


def _make_sht4x(hw: SimHardware, sensor: Sensor) -> SimSHT4x:
    sht = SimSHT4x(hw.monotonic, noise=0.02, seed=part_seed(sensor.id))
    sht.set_environment(DEFAULT_T_C, DEFAULT_RH)
    on_its_bus(hw, sensor, sht)
    return sht


SIM_PARTS = (SimPart("sht31", _make_sht31), SimPart("sht4x", _make_sht4x))

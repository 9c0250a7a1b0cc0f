"""Sensirion SHT3x (SHT31) and SHT4x temperature / humidity sensors.

Both are command-driven with CRC-protected words (:mod:`drivers.sensirion`):

- SHT3x: 16-bit commands. We use single shot *without* clock stretching (0x2400 / 0x240B /
  0x2416), because clock stretching through a mux or a bridged node bus is asking for trouble;
  so the driver waits the worst-case measurement time (15.5 / 6.5 / 4.5 ms, Adafruit's figures,
  which cover the datasheet maxima) and then reads 6 bytes. ``stretch=True`` uses 0x2C06 /
  0x2C0D / 0x2C10 instead and reads at once: the part holds SCL low until the result is ready,
  which only an adapter that tolerates long clock stretching survives. Periodic mode with *fetch* (0xE000)
  is available; a fetch with no new data is NACKed by the part, which we report as
  DataNotReadyError. Soft reset is ignored in periodic mode, so :meth:`Sht31.soft_reset`
  sends Break first.
- SHT4x: 8-bit commands, no clock stretching at all; high precision 0xFD waits 9 ms
  (Sensirion's figure; datasheet max 8.3 ms). RH = -6 + 125 * S / 65535, clamped to 0..100 as
  the datasheet recommends.

A raw 0xFFFF temperature (130 C) or 0x0000 (-45 C) is outside the part's -40..125 C range: the
classic signature of a bus returning all ones or zeros; it is reported as implausible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from drivers.errors import DataNotReadyError, NackError, SensorImplausibleError
from drivers.health import DeviceHealth, StuckDetector, check_range, guarded
from drivers.i2c import I2CDevice
from drivers.kinds import Build, Calibration, PartKind, PartPorts, PartSpec, Quantity
from drivers.ports import AsyncI2CBus, Clock, Reading
from drivers.sensirion import command, ticks_to_celsius, ticks_to_rh, unpack_words

SHT3X_SINGLE = {"high": (0x2400, 0.0155), "medium": (0x240B, 0.0065), "low": (0x2416, 0.0045)}
SHT3X_STRETCHED = {"high": 0x2C06, "medium": 0x2C0D, "low": 0x2C10}
SHT3X_PERIODIC = {  # (mps, repeatability) -> command
    (0.5, "high"): 0x2032, (0.5, "medium"): 0x2024, (0.5, "low"): 0x202F,
    (1.0, "high"): 0x2130, (1.0, "medium"): 0x2126, (1.0, "low"): 0x212D,
    (2.0, "high"): 0x2236, (2.0, "medium"): 0x2220, (2.0, "low"): 0x222B,
    (4.0, "high"): 0x2334, (4.0, "medium"): 0x2322, (4.0, "low"): 0x2329,
    (10.0, "high"): 0x2737, (10.0, "medium"): 0x2721, (10.0, "low"): 0x272A,
}  # fmt: skip
SHT4X_MEASURE = {"high": (0xFD, 0.009), "medium": (0xF6, 0.005), "low": (0xE0, 0.002)}
TEMPERATURE_RANGE_C = (-40.01, 125.01)  # the rated range, widened by under one tick of rounding


@dataclass(frozen=True, slots=True)
class HumidityMeasurement:
    temperature_c: float
    humidity_pct: float
    t: float


def sht4x_ticks_to_rh(ticks: int) -> float:
    """SHT4x: RH = -6 + 125 * S / 65535, clamped to the physical 0..100 %RH."""
    return min(100.0, max(0.0, -6.0 + 125.0 * ticks / 65535.0))


class _ShtBase:
    """What SHT3x and SHT4x share: decoding, checks, health, readings."""

    kind = "sht"

    def __init__(
        self,
        bus: AsyncI2CBus,
        clock: Clock,
        *,
        address: int = 0x44,
        name: str = "",
        precision: str = "high",
        stuck_after: int = 20,
    ) -> None:
        if precision not in ("high", "medium", "low"):
            raise ValueError(f"precision must be high, medium or low, not {precision!r}")
        self.device = I2CDevice(bus, address, name=name or f"{self.kind}@0x{address:02x}")
        self.name = self.device.name
        self.clock = clock
        self.precision = precision
        self.health = DeviceHealth(self.name)
        self._stuck = StuckDetector(stuck_after)

    def _rh(self, ticks: int) -> float:
        return ticks_to_rh(ticks)

    def decode(self, raw: bytes) -> HumidityMeasurement:
        """Six bytes -> checked measurement (CRC, range, stuck)."""
        t_ticks, rh_ticks = unpack_words(raw, device=self.name)
        temperature = check_range(self.name, "temperature", ticks_to_celsius(t_ticks), *TEMPERATURE_RANGE_C)
        humidity = self._rh(rh_ticks)
        check_range(self.name, "humidity", humidity, 0.0, 100.0)
        # 16-bit T and RH both repeating to the bit for many reads: the part's noise would move them.
        if self._stuck.observe((t_ticks, rh_ticks)):
            message = f"{self.name}: same raw T/RH {self._stuck.limit} times in a row; the part is stuck"
            raise SensorImplausibleError(message, device=self.name)
        return HumidityMeasurement(temperature, humidity, self.clock.monotonic())

    async def _measure_raw(self) -> bytes:
        raise NotImplementedError

    async def read(self) -> HumidityMeasurement:
        """One checked measurement, with retries."""

        async def attempt() -> HumidityMeasurement:
            return self.decode(await self._measure_raw())

        return await guarded(self.health, attempt, self.clock)

    async def readings(self) -> list[Reading]:
        m = await self.read()
        return [
            Reading(self.name, "temperature", m.temperature_c, "C", m.t),
            Reading(self.name, "humidity", m.humidity_pct, "%", m.t),
        ]


class Sht31(_ShtBase):
    """SHT3x at 0x44 (ADDR low) or 0x45."""

    kind = "sht31"
    periodic = False  # set while the part runs in periodic mode (start_periodic / stop_periodic)
    stretch = False  # single shot with clock stretching: read at once, the part holds SCL

    async def _measure_raw(self) -> bytes:
        if self.periodic:
            return await self._fetch()
        if self.stretch:
            return await self.device.write_read(command(SHT3X_STRETCHED[self.precision]), 6)
        code, wait_s = SHT3X_SINGLE[self.precision]
        return await self.device.write_read(command(code), 6, wait_s, self.clock)

    async def _fetch(self) -> bytes:
        await self.device.write(command(0xE000))
        try:
            return await self.device.read(6)
        except NackError as exc:  # the part NACKs a fetch when no new result exists
            raise DataNotReadyError(f"{self.name}: no new periodic result yet", device=self.name) from exc

    async def start_periodic(self, mps: float = 1.0) -> None:
        """Start periodic measurement at ``mps`` per second (0.5, 1, 2, 4, 10)."""
        key = (mps, self.precision)
        if key not in SHT3X_PERIODIC:
            raise ValueError(f"SHT3x periodic rate must be 0.5, 1, 2, 4 or 10 per second, not {mps}")
        await self.device.write(command(SHT3X_PERIODIC[key]))
        self.periodic = True

    async def stop_periodic(self) -> None:
        """Break (0x3093): back to single-shot mode."""
        await self.device.write(command(0x3093))
        await self.clock.sleep(0.001)
        self.periodic = False

    async def soft_reset(self) -> None:
        """Break, then soft reset (the reset alone is ignored in periodic mode)."""
        await self.stop_periodic()
        await self.device.write(command(0x30A2))
        await self.clock.sleep(0.0015)

    async def status(self) -> int:
        """The 16-bit status register (alert, heater, reset, command and write-CRC flags)."""
        (word,) = unpack_words(await self.device.write_read(command(0xF32D), 3, 0.001, self.clock), device=self.name)
        return word


class Sht4x(_ShtBase):
    """SHT4x at 0x44."""

    kind = "sht4x"

    def _rh(self, ticks: int) -> float:
        return sht4x_ticks_to_rh(ticks)

    async def _measure_raw(self) -> bytes:
        code, wait_s = SHT4X_MEASURE[self.precision]
        return await self.device.write_read(bytes([code]), 6, wait_s, self.clock)

    async def soft_reset(self) -> None:
        await self.device.write(bytes([0x94]))
        await self.clock.sleep(0.001)


def _build_sht31(ports: PartPorts, clock: Clock, spec: PartSpec) -> Sht31:
    return Sht31(ports.i2c(), clock, address=spec.address or 0x44, name=spec.name)


def _build_sht4x(ports: PartPorts, clock: Clock, spec: PartSpec) -> Sht4x:
    return Sht4x(ports.i2c(), clock, address=spec.address or 0x44, name=spec.name)


def _sht_kind(name: str, summary: str, build: Build, readings: Callable[[Any], Awaitable[list[Reading]]]) -> PartKind:
    """SHT3x and SHT4x measure, calibrate and wire alike."""
    return PartKind(
        name=name, summary=summary, build=build, readings=readings,
        quantities=(Quantity("temperature", "C"), Quantity("humidity", "%")),
        wiring=(("bus", "address"),), example={"bus": "i2c1", "address": 0x44},
        calibrations=(Calibration("temperature", "offset", "°C", (-20.0, 60.0)),
                      Calibration("humidity", "offset", "%RH", (0.0, 100.0))),
    )  # fmt: skip


PARTS = (
    _sht_kind("sht31", "Sensirion SHT3x temperature and humidity sensor (I2C, 0x44 or 0x45)", _build_sht31,
              Sht31.readings),
    _sht_kind("sht4x", "Sensirion SHT4x temperature and humidity sensor (I2C, 0x44)", _build_sht4x, Sht4x.readings),
)

"""ROHM BH1750 ambient light sensor.

The part has no registers (ROHM technical note, HARDWARE.md section 2): every write is a single
opcode with its own STOP, and a read is a plain two-byte read, MSB first. So this driver uses raw
writes and reads, never SMBus register calls (which would send an extra byte the part would take
as an opcode).

- lux = counts / 1.2 * 69 / MTreg, halved in H-res mode 2 (0.5 lx steps). Vector:
  0x8390 -> 28067 lx.
- MTreg (31..254, default 69) scales sensitivity and conversion time; it is written as two
  opcodes, ``0x40 | mt >> 5`` then ``0x60 | mt & 0x1F``.
- conversion time: H / H2 max 180 ms, L max 24 ms, times MTreg / 69. We wait the *maximum*.
- Adafruit's ``Resolution.HIGH`` is H-res mode 2; here the modes carry their datasheet names.

Stuck detection is off by default: under steady LED light or at night a BH1750 legitimately
returns the same count for hours, so a repeated value is no evidence of a fault.
"""

from __future__ import annotations

from enum import IntEnum

from drivers.errors import SensorImplausibleError
from drivers.health import DeviceHealth, StuckDetector, guarded
from drivers.i2c import I2CDevice
from drivers.kinds import Calibration, PartKind, PartPorts, PartSpec, Quantity
from drivers.ports import AsyncI2CBus, Clock, Reading

POWER_ON = 0x01
MAX_CONVERSION_S = {0x10: 0.180, 0x11: 0.180, 0x13: 0.024}


class Bh1750Mode(IntEnum):
    """Resolution modes by their continuous-mode opcodes (one-time = opcode + 0x10)."""

    H_RES = 0x10  # 1 lx
    H_RES2 = 0x11  # 0.5 lx
    L_RES = 0x13  # 4 lx


def counts_to_lux(counts: int, mode: Bh1750Mode = Bh1750Mode.H_RES, mtreg: int = 69) -> float:
    """Raw 16-bit count -> lux for the given mode and measurement time register."""
    lux = counts / 1.2 * 69.0 / mtreg
    return lux / 2.0 if mode == Bh1750Mode.H_RES2 else lux


def conversion_time_s(mode: Bh1750Mode, mtreg: int = 69) -> float:
    """Worst-case conversion time for ``mode`` at ``mtreg``."""
    return MAX_CONVERSION_S[int(mode)] * mtreg / 69.0


def mtreg_opcodes(mtreg: int) -> tuple[int, int]:
    """The two opcodes that set MTreg."""
    if not 31 <= mtreg <= 254:
        raise ValueError(f"BH1750 MTreg must be 31..254, not {mtreg}")
    return 0x40 | (mtreg >> 5), 0x60 | (mtreg & 0x1F)


class Bh1750:
    """One light sensor, continuous or one-time measurement."""

    def __init__(
        self,
        bus: AsyncI2CBus,
        clock: Clock,
        *,
        address: int = 0x23,
        name: str = "",
        mode: Bh1750Mode = Bh1750Mode.H_RES,
        mtreg: int = 69,
        one_time: bool = False,
        stuck_after: int = 0,
    ) -> None:
        mtreg_opcodes(mtreg)  # validate early
        self.device = I2CDevice(bus, address, name=name or f"bh1750@0x{address:02x}")
        self.name = self.device.name
        self.clock = clock
        self.mode = mode
        self.mtreg = mtreg
        self.one_time = one_time
        self.health = DeviceHealth(self.name)
        self._stuck = StuckDetector(stuck_after)
        self._started = False

    @property
    def opcode(self) -> int:
        return int(self.mode) + (0x10 if self.one_time else 0)

    async def start(self) -> None:
        """Power on, set MTreg and (continuous) start converting; waits the first conversion."""

        async def init() -> None:
            await self.device.write(bytes([POWER_ON]))
            for op in mtreg_opcodes(self.mtreg):
                await self.device.write(bytes([op]))  # one opcode per transaction
            if not self.one_time:
                await self.device.write(bytes([self.opcode]))
                await self.clock.sleep(conversion_time_s(self.mode, self.mtreg))

        await guarded(self.health, init, self.clock)
        self._started = True

    async def read_counts(self) -> int:
        """One raw count (a one-time conversion is triggered and waited for)."""
        if self.one_time:
            raw = await self.device.write_read(
                bytes([self.opcode]), 2, conversion_time_s(self.mode, self.mtreg), self.clock
            )
        else:
            raw = await self.device.read(2)
        return (raw[0] << 8) | raw[1]

    async def read_lux(self) -> float:
        """Illuminance in lux, checked."""
        if not self._started:
            await self.start()

        async def attempt() -> float:
            counts = await self.read_counts()
            if self._stuck.observe(counts):
                raise SensorImplausibleError(f"{self.name}: count {counts} repeated; stuck", device=self.name)
            return counts_to_lux(counts, self.mode, self.mtreg)

        return await guarded(self.health, attempt, self.clock)

    async def readings(self) -> list[Reading]:
        lux = await self.read_lux()
        return [Reading(self.name, "lux", lux, "lx", self.clock.monotonic())]


def _build(ports: PartPorts, clock: Clock, spec: PartSpec) -> Bh1750:
    return Bh1750(ports.i2c(), clock, address=spec.address or 0x23, name=spec.name)


PARTS = (
    PartKind(name="bh1750", summary="ROHM BH1750 ambient light sensor (I2C, 0x23 or 0x5C)", build=_build,
             start=Bh1750.start, readings=Bh1750.readings, quantities=(Quantity("lux", "lx"),),
             wiring=(("bus", "address"),), example={"bus": "i2c1", "address": 0x23},
             calibrations=(Calibration("lux", "gain", "lx", (0.0, 100_000.0)),)),
)

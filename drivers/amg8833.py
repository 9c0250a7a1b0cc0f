"""Panasonic AMG8833 Grid-EYE 8x8 thermopile array.

Datasheet facts this driver relies on (HARDWARE.md section 1):

- address 0x68 (AD_SELECT low) or 0x69 (high; Adafruit boards);
- pixels are 12-bit two's complement at 0.25 C/LSB, LSB at 0x80+2i, MSB at 0x81+2i; the
  thermistor (0x0E/0x0F) is 12-bit *sign-magnitude* at 0.0625 C/LSB -- different encodings, a
  classic source of sign bugs;
- the register pointer auto-increments, so the 128 pixel bytes are one combined transaction
  (register byte, repeated start, 128 bytes) instead of 64 register reads;
- waking from sleep: PCTL=0, wait 50 ms, RST=0x3F (initial reset), wait 2 ms, RST=0x30;
  registers are undefined after sleep, so the frame rate and interrupt registers are rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.errors import SensorImplausibleError
from drivers.health import DeviceHealth, StuckDetector, check_range, guarded
from drivers.i2c import I2CDevice
from drivers.kinds import PartKind, PartPorts, PartSpec, Quantity
from drivers.ports import AsyncI2CBus, Clock, Reading

PCTL, RST, FPSC, INTC = 0x00, 0x01, 0x02, 0x03
TTHL = 0x0E
PIXEL_BASE = 0x80
PIXEL_RANGE_C = (-20.0, 100.0)  # far outside what a ceiling sensor over desks can see
THERMISTOR_RANGE_C = (-20.0, 80.0)  # the part's operating range
_LSB_OVER_16 = np.float32(0.25 / 16)  # a pixel's 0.25 C per LSB, for a word shifted left by 4


@dataclass(frozen=True)
class ThermalFrame:
    """One 8x8 frame in deg C (row-major as the part numbers pixels), its thermistor, and when.

    ``hottest_c`` is the frame's warmest pixel (found by the range check already: the pollers
    show it without searching the frame again)."""

    pixels: npt.NDArray[np.float32]
    thermistor_c: float
    t: float
    hottest_c: float


def decode_pixels(raw: bytes) -> npt.NDArray[np.float32]:
    """128 register bytes -> (8, 8) float32 deg C (12-bit two's complement, 0.25 C/LSB)."""
    if len(raw) != 128:
        raise ValueError(f"an AMG8833 frame is 128 bytes, got {len(raw)}")
    # Each little-endian word as int16, shifted left by 4: the 12-bit value's sign bit lands on
    # the int16's (the unused top nibble falls off), so the word is the signed value times 16,
    # and times 1/64 it is the value times 0.25 C, exactly (powers of two, well inside float32).
    # Three numpy calls a frame instead of seven (30 frames a second on a 240-seat floor).
    return ((np.frombuffer(raw, dtype="<i2") << 4) * _LSB_OVER_16).reshape(8, 8)


def decode_pixel(word: int) -> float:
    """One 12-bit pixel word -> deg C (for tests and tools; frames use :func:`decode_pixels`)."""
    word &= 0xFFF
    return ((word - 0x1000) if word & 0x800 else word) * 0.25


def decode_thermistor(word: int) -> float:
    """12-bit sign-magnitude thermistor word -> deg C (0.0625 C/LSB)."""
    magnitude = word & 0x7FF
    return (-magnitude if word & 0x800 else magnitude) * 0.0625


class Amg8833:
    """Reads frames from one Grid-EYE, checking them before anyone believes them."""

    def __init__(
        self,
        bus: AsyncI2CBus,
        clock: Clock,
        *,
        address: int = 0x69,
        name: str = "",
        fps: int = 10,
        stuck_after: int = 5,
        thermistor_every: int = 1,
    ) -> None:
        if fps not in (1, 10):
            raise ValueError(f"AMG8833 runs at 1 or 10 frames per second, not {fps}")
        self.device = I2CDevice(bus, address, name=name or f"amg8833@0x{address:02x}")
        self.name = self.device.name
        self.clock = clock
        self.fps = fps
        self.health = DeviceHealth(self.name)
        self._stuck = StuckDetector(stuck_after)
        # The thermistor (the board's own temperature) moves over minutes: on a busy RS-485 line it
        # is read every n-th frame and the last value reused in between.
        self.thermistor_every = max(1, thermistor_every)
        self._frames = 0
        self._therm_word: int | None = None

    async def start(self) -> None:
        """Wake and initialise the part (safe to call again after a failure)."""

        async def init() -> None:
            dev = self.device
            await dev.write_register(PCTL, 0x00)  # normal mode
            await self.clock.sleep(0.050)
            await dev.write_register(RST, 0x3F)  # initial reset
            await self.clock.sleep(0.002)
            await dev.write_register(RST, 0x30)  # flag reset
            await dev.write_register(INTC, 0x00)  # no interrupt pin use
            await dev.write_register(FPSC, 0x01 if self.fps == 1 else 0x00)

        await guarded(self.health, init, self.clock)
        self._stuck.reset()

    async def _read_raw(self) -> tuple[bytes, int]:
        # The register pointer auto-increments: the first pixel's address, a repeated start, then
        # all 128 bytes, as one combined transaction (no 32-byte SMBus limit through i2c_rdwr; on
        # a node's bus one RS-485 exchange, not two: a separate pointer write tells the part nothing
        # the read's own write does not).
        pixels = await self.device.read_register_block(PIXEL_BASE, 128)
        if self._therm_word is None or self._frames % self.thermistor_every == 0:
            therm = await self.device.read_register_block(TTHL, 2)
            self._therm_word = therm[0] | (therm[1] << 8)
        self._frames += 1
        return pixels, self._therm_word

    async def read_frame(self) -> ThermalFrame:
        """One checked frame; raises SensorImplausibleError for stuck or out-of-range data."""

        async def attempt() -> ThermalFrame:
            raw, therm_word = await self._read_raw()
            pixels = decode_pixels(raw)
            thermistor = decode_thermistor(therm_word)
            check_range(self.name, "thermistor", thermistor, *THERMISTOR_RANGE_C)
            low, high = float(pixels.min()), float(pixels.max())
            if low < PIXEL_RANGE_C[0] or high > PIXEL_RANGE_C[1]:
                raise SensorImplausibleError(
                    f"{self.name}: pixels {low:g}..{high:g} C outside {PIXEL_RANGE_C[0]:g}..{PIXEL_RANGE_C[1]:g}",
                    device=self.name,
                )
            # Each pixel has ~0.25 C of noise: 64 of them repeating to the bit means a frozen part.
            if self._stuck.observe(raw):
                raise SensorImplausibleError(
                    f"{self.name}: identical frame {self._stuck.limit} times in a row; the part is stuck",
                    device=self.name,
                )
            return ThermalFrame(pixels, thermistor, self.clock.monotonic(), high)

        return await guarded(self.health, attempt, self.clock)

    async def readings(self) -> list[Reading]:
        """The scalar side of a frame (thermistor and hottest pixel) for the generic pipeline."""
        frame = await self.read_frame()
        return [
            Reading(self.name, "max_pixel", frame.hottest_c, "C", frame.t),
            Reading(self.name, "thermistor", frame.thermistor_c, "C", frame.t),
        ]


def _build(ports: PartPorts, clock: Clock, spec: PartSpec) -> Amg8833:
    # On a node's bus every register read is an RS-485 round trip: the slowly moving thermistor
    # is read every tenth frame there.
    return Amg8833(ports.i2c(), clock, address=spec.address or 0x69, name=spec.name,
                   fps=1 if spec.poll_interval_s >= 1 else 10, thermistor_every=10 if spec.remote else 1)


PARTS = (
    PartKind(name="amg8833", summary="Panasonic AMG8833 Grid-EYE 8x8 thermopile array over desks (I2C, 0x68 or 0x69)",
             build=_build, start=Amg8833.start, readings=Amg8833.readings, feed="frames",
             quantities=(Quantity("max_pixel", "C"), Quantity("thermistor", "C")),
             wiring=(("bus", "address", "mount"),),
             example={"bus": "i2c1", "address": 0x69, "mount": {"x": 2.0, "y": 2.0}}),
)

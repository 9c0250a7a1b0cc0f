"""Simulated Panasonic AMG8833 Grid-EYE: registers, frame timing, pointer auto-increment.

Register map and formats as in HARDWARE.md section 1. A write sets the register pointer (first
byte) and stores any further bytes at successive registers; a read returns bytes from the pointer
on, incrementing it, so both 64 two-byte reads and 32-byte burst reads work. New frames appear
every 100 ms (10 fps) or 1 s (1 fps, where the part averages, so noise is lower). In sleep mode
reads return zeros (the datasheet only says they are invalid). Values that reach the 12-bit
limit set the STAT overflow flag.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from simulator.hw.bus import SimI2CDevice
from simulator.hw.parts import SimPart, on_its_bus, part_seed

if TYPE_CHECKING:
    from edge_agent.config import Sensor
    from simulator.hw.floor import SimHardware

PCTL, RST, FPSC, INTC, STAT, SCLR, AVE = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
TTHL = 0x0E
PIXEL_BASE = 0x80
SLEEP = 0x10
OVF_IRS = 0x04


def encode_pixel(celsius: float) -> int:
    """12-bit two's complement, 0.25 C/LSB, saturating at the 12-bit limits."""
    raw = max(-2048, min(2047, round(celsius / 0.25)))
    return raw & 0xFFF


def encode_pixels(celsius: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """:func:`encode_pixel` over a whole frame (``np.rint`` rounds halves to even, as ``round`` does).

    Ufuncs rather than ``np.round`` and ``np.clip`` (the same arithmetic: dividing by 0.25 is
    exact), whose Python wrappers cost more than an 8 x 8 frame's work: a simulated day encodes
    tens of thousands of frames.
    """
    quarters = np.rint(celsius / 0.25)
    np.maximum(quarters, -2048.0, out=quarters)
    np.minimum(quarters, 2047.0, out=quarters)
    raw: npt.NDArray[np.int64] = quarters.astype(np.int64)
    raw &= 0xFFF
    return raw


_min, _max = np.minimum.reduce, np.maximum.reduce


def pixel_registers(celsius: npt.NDArray[np.float64]) -> tuple[bytes, bool]:
    """The 128 pixel register bytes of a frame (low byte first) and whether a pixel reached either
    12-bit limit (the STAT overflow flag): ``encode_pixels`` as the registers hold it.

    A frame inside the limits (every one of a library day's) takes four ufuncs and two reductions
    instead of that path's eleven numpy calls; a frame at or past a limit, or with a NaN, takes that
    path itself. Within the limits a quarter-degree count fits 16 bits, whose two's complement
    masked to 12 bits is the 64-bit one's.
    """
    quarters = np.rint(celsius / 0.25)
    # The reductions as ufunc reductions: what .min() and .max() run, without their Python wrappers.
    if _min(quarters, axis=None) > -2048.0 and _max(quarters, axis=None) < 2047.0:  # False for a NaN as well
        raw16 = quarters.astype("<i2")
        raw16 &= 0xFFF
        return raw16.tobytes(), False
    raw = encode_pixels(celsius)
    return raw.astype("<u2").tobytes(), bool(0x7FF in raw or 0x800 in raw)


def encode_thermistor(celsius: float) -> int:
    """12-bit sign-magnitude, 0.0625 C/LSB."""
    magnitude = min(0x7FF, round(abs(celsius) / 0.0625))
    return (0x800 | magnitude) if celsius < 0 and magnitude else magnitude


class SimAMG8833(SimI2CDevice):
    """An 8x8 thermopile array; ``set_frame`` is the scene it looks at, in deg C."""

    kind = "amg8833"

    def __init__(self, monotonic: Callable[[], float], *, noise: float = 0.15, seed: int = 0) -> None:
        super().__init__(monotonic, noise=noise, seed=seed)
        self.scene: npt.NDArray[np.float64] = np.full((8, 8), 21.5)
        self.thermistor_c = 23.0
        self.regs = bytearray(256)
        self.pointer = 0
        self._epoch = monotonic()
        self._frame_index = -1
        self._np_rng = np.random.default_rng(seed)

    # -- test controls -----------------------------------------------------------------------
    def set_frame(self, celsius: npt.ArrayLike) -> None:
        frame = np.asarray(celsius, dtype=np.float64)
        if frame.shape != (8, 8):
            raise ValueError(f"an AMG8833 frame is 8x8, not {frame.shape}")
        self.scene = frame.copy()
        self._frame_index = -1  # latch the new scene on the next read

    def set_thermistor(self, celsius: float) -> None:
        self.thermistor_c = celsius

    @property
    def fps(self) -> int:
        return 1 if self.regs[FPSC] & 0x01 else 10

    @property
    def asleep(self) -> bool:
        return self.regs[PCTL] == SLEEP

    # -- state machine ---------------------------------------------------------------------
    def _reset(self, initial: bool) -> None:
        self.regs[STAT] = 0
        if initial:
            for reg in (PCTL, FPSC, INTC, AVE):
                self.regs[reg] = 0
        self._frame_index = -1

    def _refresh(self) -> None:
        """Latch a new frame into the pixel registers when a frame period has passed."""
        if self.asleep or self.slow:
            return
        index = math.floor((self.monotonic() - self._epoch) * self.fps)
        if index == self._frame_index:
            return
        self._frame_index = index
        pixels, overflow = pixel_registers(self.sample("pixels", self._measure_pixels))
        self.regs[PIXEL_BASE : PIXEL_BASE + 128] = pixels
        therm = encode_thermistor(self.sample("thermistor", lambda: self.measured("thermistor", self.thermistor_c, 0)))
        self.regs[TTHL] = therm & 0xFF
        self.regs[TTHL + 1] = therm >> 8
        if overflow:
            self.regs[STAT] |= OVF_IRS

    def _measure_pixels(self) -> npt.NDArray[np.float64]:
        # 1 fps mode averages ten frames inside the part, so its noise is lower by sqrt(10).
        sigma = self.noise / (math.sqrt(10) if self.fps == 1 else 1.0)
        err = self.errors.get("temperature")
        scene = self.scene * err.gain + err.offset if err else self.scene
        if sigma > 0:  # a new array: the scene itself is left as it is
            return (scene + self._np_rng.normal(0.0, sigma, (8, 8))).reshape(64)
        return np.array(scene, dtype=np.float64).reshape(64)

    def on_write(self, data: bytes) -> None:
        if not data:
            return
        self.pointer = data[0]
        for value in data[1:]:
            reg = self.pointer
            if reg == RST:
                if value == 0x3F:
                    self._reset(initial=True)
                elif value == 0x30:
                    self._reset(initial=False)
            elif reg == SCLR:
                self.regs[STAT] &= ~(value & 0x0E) & 0xFF
            elif reg < PIXEL_BASE and reg not in (STAT, TTHL, TTHL + 1):
                self.regs[reg] = value
            self.pointer = (self.pointer + 1) & 0xFF

    def on_read(self, n: int) -> bytes:
        if self.asleep:
            return bytes(n)
        self._refresh()
        start = self.pointer
        self.pointer = (start + n) & 0xFF
        if start + n <= len(self.regs):
            return bytes(self.regs[start : start + n])
        return bytes(self.regs[(start + i) & 0xFF] for i in range(n))  # the pointer wraps at 0xFF


BACKGROUND_C = 21.5  # an empty library room


def _make(hw: SimHardware, sensor: Sensor) -> SimAMG8833:
    amg = SimAMG8833(hw.monotonic, noise=0.15, seed=part_seed(sensor.id))
    amg.set_frame([[BACKGROUND_C] * 8] * 8)
    on_its_bus(hw, sensor, amg)
    return amg


SIM_PARTS = (SimPart("amg8833", _make),)

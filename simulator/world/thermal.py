"""Thermopile frames: what an AMG8833 over a desk cluster sees.

A frame is the background (desks and floor at about the zone's air temperature, minus 0.5 C),
plus each pixel's fixed-pattern offset (drawn once per array, sigma 0.25 C), plus slowly refreshed
temporal noise (sigma 0.1 C, redrawn every 60 s; the simulated device adds its own per-read
noise on top), plus warm things: a seated person's head and shoulders at 28-32 C apparent,
diluted by how much of each pixel they cover; a laptop +6 C over its small area (about +1-2 C on
the pixel it sits in), cooling with a 10-minute time constant when its owner leaves it; and sun
patches on near-window desks, banded by the window frame and drifting as the sun moves.
Bags and coats are at room temperature: belongings alone are invisible, as in reality.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from simulator.world.geometry import ThermopileView

FloatArray = npt.NDArray[np.float64]
FIXED_PATTERN_SIGMA_C = 0.25
TEMPORAL_SIGMA_C = 0.1
LAPTOP_EXCESS_C = 6.0
LAPTOP_COOLING_S = 600.0
SUN_C_PER_LUX = 5e-4  # about +2 C on a desk in a 4000 lx sun patch


class ThermopileScene:
    """Builds frames for one array from what sits under it."""

    def __init__(self, view: ThermopileView, rng: np.random.Generator) -> None:
        self.view = view
        self.fixed = rng.normal(0.0, FIXED_PATTERN_SIGMA_C, (8, 8))
        self.noise = np.zeros((8, 8))
        self.sun = np.zeros((8, 8))

    def refresh_noise(self, rng: np.random.Generator) -> None:
        self.noise = rng.normal(0.0, TEMPORAL_SIGMA_C, (8, 8))

    def set_sun(self, direct_lux: FloatArray, band_phase: float) -> None:
        """Sun on the pixels (direct lux per pixel, (8, 8)), banded by mullions that drift with the sun."""
        if not np.any(direct_lux > 0.0):
            self.sun = np.zeros((8, 8))
            return
        bands = 0.55 + 0.45 * np.cos(2.0 * math.pi * self.view.pixel_x / 1.6 + band_phase)
        self.sun = SUN_C_PER_LUX * direct_lux * bands

    def frame(self, background_c: float, people: list[tuple[int, float]],
              laptops: list[tuple[int, float]]) -> FloatArray:
        """Apparent temperatures: ``people`` are (seat index, skin C); ``laptops`` (seat index, warmth 0..1)."""
        bg = background_c - 0.5
        out = bg + self.fixed + self.noise + self.sun
        for seat, skin in people:
            cover = self.view.person.get(seat)
            if cover is not None:
                out = out + cover * (skin - bg)
        for seat, warmth in laptops:
            cover = self.view.laptop.get(seat)
            if cover is not None and warmth > 0.0:
                out = out + cover * LAPTOP_EXCESS_C * warmth
        return np.asarray(out, dtype=float)


def laptop_warmth(left_at: float | None, now: float) -> float:
    """1 while in use; after its owner leaves it cools towards the room."""
    if left_at is None:
        return 1.0
    return math.exp(-(now - left_at) / LAPTOP_COOLING_S)

"""Thermopile frames: what an AMG8833 over a desk cluster sees.

A frame is the background (desks and floor at about the zone's air temperature, minus 0.5 C),
plus each pixel's fixed-pattern offset (drawn once per array, sigma 0.25 C), plus slowly refreshed
temporal noise (sigma 0.1 C, redrawn every 60 s; the simulated device adds its own per-read
noise on top), plus warm things: a seated person's head and shoulders at 28-32 C apparent,
diluted by how much of each pixel they cover; a laptop +6 C over its small area (about +1-2 C on
the pixel it sits in), cooling with a 10-minute time constant when its owner leaves it; a coat
on the chair back; the chair seat just after someone stood up; and sun patches on near-window
desks, banded by the window frame and drifting as the sun moves.

Things a patron wore or sat on hold body heat, and a thermopile sees that as much as a laptop:

- A coat hung on the chair back is warmed by its owner's back while they sit (the side against
  the back reaches 28-31 C; the surface seen from above settles about +6 C over the room), and
  approaches that with a 12-minute time constant (fabric and lining over a padded back rest: the
  10-15 minutes a garment takes to lose body heat in a room). Left for a break it cools back with
  the same constant, so it is still +5 C two minutes later; a departing patron takes it. While
  the owner sits, their head and shoulders hide the front of it (``coat_exposed``).
- The chair seat is warm after *any* stand-up, a departure as much as a break: its surface starts
  about +6 C over the room but only a 0.09 m^2 part of it shows, and a thin warmed layer of
  upholstery or wood loses that in a minute (60 s time constant: within noise after 3 minutes).
  It is what makes "anything warm left behind" a poor sign of belongings: only warmth that lasts
  about three minutes, or cools as slowly as fabric does, is.
- Bags, books and coats nobody has worn for a while are at room temperature: those belongings are
  invisible, as in reality.
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
COAT_EXCESS_C = 6.0  # surface of a coat warmed by its owner's back, over the room
COAT_TAU_S = 720.0  # warming behind the sitter and cooling once left
CHAIR_EXCESS_C = 6.0  # the seat surface the moment its sitter stands up
CHAIR_TAU_S = 60.0
CHAIR_VISIBLE_S = 5 * CHAIR_TAU_S  # after this the seat is back at room temperature (< 0.05 C)
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
              laptops: list[tuple[int, float]], coats: list[tuple[int, float, bool]] | None = None,
              chairs: list[tuple[int, float]] | None = None) -> FloatArray:
        """Apparent temperatures.

        ``people`` are (seat index, skin C); ``laptops`` and ``chairs`` (seat index, warmth 0..1);
        ``coats`` (seat index, warmth 0..1, owner seated: then only the exposed part shows).
        """
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
        for seat, warmth, seated in coats or []:
            cover = (self.view.coat_exposed if seated else self.view.coat).get(seat)
            if cover is not None and warmth > 0.0:
                out = out + cover * COAT_EXCESS_C * warmth
        for seat, warmth in chairs or []:
            cover = self.view.chair.get(seat)
            if cover is not None and warmth > 0.0:
                out = out + cover * CHAIR_EXCESS_C * warmth
        return np.asarray(out, dtype=float)


def laptop_warmth(left_at: float | None, now: float) -> float:
    """1 while in use; after its owner leaves it cools towards the room."""
    if left_at is None:
        return 1.0
    return math.exp(-(now - left_at) / LAPTOP_COOLING_S)


def chair_warmth(stood_at: float, now: float) -> float:
    """The seat surface's warmth (0..1) ``now - stood_at`` seconds after its sitter stood up."""
    age = now - stood_at
    if not 0.0 <= age < CHAIR_VISIBLE_S:
        return 0.0
    return math.exp(-age / CHAIR_TAU_S)


def coat_warmth(start: float, since: float, seated: bool, now: float) -> float:
    """A coat's warmth (0..1): from ``start`` at ``since`` towards 1 while its owner sits, else 0."""
    target = 1.0 if seated else 0.0
    return target + (start - target) * math.exp(-max(now - since, 0.0) / COAT_TAU_S)

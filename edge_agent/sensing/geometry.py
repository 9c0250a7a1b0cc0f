"""Floor geometry: where a thermopile pixel looks, which seat is nearest, which zone holds a point.

Pixel convention (the simulator renders frames the same way): an AMG8833 frame is indexed
``frame[row, col]``; in the sensor's own frame, ``col`` grows along +x and ``row`` along +y, the
array's optical axis points straight down at ``(mount.x, mount.y)``, and the sensor frame is
rotated counter-clockwise by ``mount.rotation_deg`` on the floor plan (x east, y north). Each of the
8 pixels per axis subtends ``fov_deg / 8``; pixel centres are at angles ``(k - 3.5) * fov / 8`` from
the axis, so the footprint on the desk plane grows towards the edge (``h * tan(angle)``): 0.34 m
per pixel straight below a 2.6 m mount with 60 deg, 0.42 m at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.config import Mount

GRID = 8  # AMG8833: 8 x 8 pixels

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PixelMap:
    """Desk-plane position and footprint of every pixel of one mounted thermopile."""

    x: FloatArray  # (8, 8) floor x of each pixel centre, metres
    y: FloatArray  # (8, 8) floor y of each pixel centre, metres
    area_m2: FloatArray  # (8, 8) desk-plane footprint of each pixel, square metres


def pixel_map(mount: Mount) -> PixelMap:
    """Project every pixel onto the desk plane ``mount.height_m`` below the sensor."""
    step = math.radians(mount.fov_deg) / GRID
    h = mount.height_m
    centres = h * np.tan((np.arange(GRID) - (GRID - 1) / 2) * step)
    edges = h * np.tan((np.arange(GRID + 1) - GRID / 2) * step)
    width = np.diff(edges)
    sx, sy = np.meshgrid(centres, centres)  # sx varies with col, sy with row
    rot = math.radians(mount.rotation_deg)
    c, s = math.cos(rot), math.sin(rot)
    fx = mount.x + c * sx - s * sy
    fy = mount.y + s * sx + c * sy
    area = np.outer(width, width)
    return PixelMap(x=fx, y=fy, area_m2=area)


def floor_to_pixel(mount: Mount, x: float, y: float) -> tuple[float, float]:
    """Fractional (row, col) a floor point appears at; the inverse of :func:`pixel_map` centres."""
    rot = math.radians(mount.rotation_deg)
    dx, dy = x - mount.x, y - mount.y
    c, s = math.cos(rot), math.sin(rot)
    sx, sy = c * dx + s * dy, -s * dx + c * dy
    step = math.radians(mount.fov_deg) / GRID
    col = math.atan2(sx, mount.height_m) / step + (GRID - 1) / 2
    row = math.atan2(sy, mount.height_m) / step + (GRID - 1) / 2
    return row, col


def point_in_polygon(x: float, y: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Even-odd ray casting; a point on the lower/left edge counts as inside, like a half-open box."""
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 <= y < y2) or (y2 <= y < y1):
            cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross:
                inside = not inside
    return inside


@dataclass(frozen=True, slots=True)
class SeatPoint:
    """A seat reduced to what geometry needs."""

    id: str
    x: float
    y: float


def nearest_seat(x: float, y: float, seats: Iterable[SeatPoint], radius_m: float) -> tuple[str, float] | None:
    """The closest seat within ``radius_m`` of a point, with its distance, or None."""
    best: tuple[str, float] | None = None
    for seat in seats:
        d = math.hypot(seat.x - x, seat.y - y)
        if d <= radius_m and (best is None or d < best[1]):
            best = (seat.id, d)
    return best

"""Seeded synthetic AMG8833 frames for the sensing tests (no recorded data is used)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge_agent.config import Mount
from edge_agent.sensing.geometry import floor_to_pixel

Frame = npt.NDArray[np.float64]


def empty_room(rng: np.random.Generator, base_c: float = 22.0, noise_c: float = 0.1) -> Frame:
    """A uniform room with sensor noise, quantised to the part's 0.25 C step."""
    frame = base_c + rng.normal(0.0, noise_c, (8, 8))
    return np.round(frame * 4.0) / 4.0


def block_at(mount: Mount, x: float, y: float, size: int = 2) -> tuple[slice, slice]:
    """Rows and columns of a ``size`` x ``size`` block centred on where floor point (x, y) appears."""
    row, col = floor_to_pixel(mount, x, y)
    r0 = int(np.clip(round(row - (size - 1) / 2), 0, 8 - size))
    c0 = int(np.clip(round(col - (size - 1) / 2), 0, 8 - size))
    return slice(r0, r0 + size), slice(c0, c0 + size)


def add_warm(frame: Frame, where: tuple[slice, slice], delta_c: float) -> Frame:
    out = frame.copy()
    out[where] += delta_c
    return out

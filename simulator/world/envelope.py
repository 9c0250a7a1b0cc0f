"""The envelope of every zone: heat lost through walls, glass and leaks, and sun gained through glass.

A zone's exterior walls are the edges of its polygon that no other zone lies behind; the glazed
part of such a wall is where a configured window runs along it. The floor is one storey of a
building with heated storeys above and below, so floors and ceilings lose nothing. Values and
their sources are in docs/simulator.md ("Heat, air and energy").

Solar gain uses the daylight model's own sky: the illuminance it gives (``simulator.world.daylight``)
is turned into irradiance with the luminous efficacy of skylight and of sunlight, a vertical pane
sees half the sky, and direct sun enters by the incidence angle on the facade, through blinds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.config import Window
from simulator.world.daylight import DIRECT_NORMAL_LUX, FACING_AZIMUTH, exterior_diffuse_lux
from simulator.world.geometry import FloorPlan, polygon_contains

FloatArray = npt.NDArray[np.float64]

STOREY_M = 3.0
WALL_U = 0.30  # W/m2K: BR18 (Danish building regulations) annex 2 table 1, external walls
WINDOW_U = 1.4  # W/m2K: double-glazed low-e unit with argon, frame included
GLAZED_HEIGHT_M = 1.5  # a glazed facade's window band: half the storey, the rest opaque wall
INFILTRATION_ACH = 0.1  # leaks of an airtight building with balanced ventilation
G_VALUE = 0.5  # total solar energy transmittance of that glazing
BLIND_FACTOR = 0.25  # closed external venetian blinds pass about a quarter of the sun's heat (DIN 4108-2 Fc)
SKY_EFFICACY_LM_W = 120.0  # luminous efficacy of diffuse skylight
SUN_EFFICACY_LM_W = 100.0  # luminous efficacy of direct sunlight
AIR_J_M3K = 1.2 * 1005.0
SAMPLE_M = 0.25  # edges are walked in steps this long to find what lies behind them
WINDOW_REACH_M = 0.3  # a wall sample this close to a window's line is glazed


@dataclass(frozen=True)
class Envelope:
    """Per zone: heat-loss coefficient to outdoors (W/K) and glazed area by facing (m2)."""

    ua_w_k: FloatArray
    glazing_m2: dict[str, FloatArray]
    wall_m2: FloatArray

    @classmethod
    def from_plan(cls, plan: FloorPlan, windows: list[Window], volume_m3: FloatArray) -> Envelope:
        n = len(plan.zone_ids)
        wall = np.zeros(n)
        glazing: dict[str, FloatArray] = {w.facing: np.zeros(n) for w in windows}
        for z, poly in enumerate(plan.zone_polygons):
            for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
                samples = _edge_samples(x1, y1, x2, y2)
                for (mx, my, nx, ny, length), outside in zip(samples, _exterior(plan, poly, samples), strict=True):
                    if not outside:
                        continue
                    window = _window_at(windows, mx, my, nx, ny)
                    if window is None:
                        wall[z] += length * STOREY_M
                    else:
                        glazing[window.facing][z] += length * GLAZED_HEIGHT_M
                        wall[z] += length * (STOREY_M - GLAZED_HEIGHT_M)
        glass = sum(glazing.values(), np.zeros(n))
        leaks = INFILTRATION_ACH * volume_m3 / 3600.0 * AIR_J_M3K
        return cls(WALL_U * wall + WINDOW_U * glass + leaks, glazing, wall)

    def solar_w(self, altitude_deg: float, azimuth_deg: float, cloudiness: float) -> FloatArray:
        """Solar heat entering each zone through its glass, W."""
        n = len(self.ua_w_k)
        if altitude_deg <= 0.0:
            return np.zeros(n)
        sky = 0.5 * exterior_diffuse_lux(altitude_deg, cloudiness) / SKY_EFFICACY_LM_W  # on a vertical pane
        beam = DIRECT_NORMAL_LUX * (1.0 - cloudiness) * min(1.0, math.sin(math.radians(altitude_deg)) / 0.3)
        beam /= SUN_EFFICACY_LM_W
        out = np.zeros(n)
        for facing, area in self.glazing_m2.items():
            incidence = math.cos(math.radians(azimuth_deg - FACING_AZIMUTH[facing])) * math.cos(
                math.radians(altitude_deg))
            direct = BLIND_FACTOR * beam * incidence if incidence > 0.0 else 0.0
            out += G_VALUE * area * (sky + direct)
        return out


def _edge_samples(x1: float, y1: float, x2: float, y2: float) -> list[tuple[float, float, float, float, float]]:
    """Midpoints of short pieces of an edge, with the edge's unit normal and the piece length."""
    length = math.hypot(x2 - x1, y2 - y1)
    if length == 0.0:
        return []
    k = max(1, math.ceil(length / SAMPLE_M))
    nx, ny = (y2 - y1) / length, -(x2 - x1) / length
    return [(x1 + (x2 - x1) * (i + 0.5) / k, y1 + (y2 - y1) * (i + 0.5) / k, nx, ny, length / k) for i in range(k)]


def _exterior(plan: FloorPlan, poly: list[tuple[float, float]],
              samples: list[tuple[float, float, float, float, float]]) -> list[bool]:
    """For each piece of an edge of this zone: True when, on the side away from the zone, there is no
    zone (an outside wall). All of an edge's probes go through the point-in-polygon tests at once
    (elementwise: the same answers as one piece at a time; building a floor's world ran them
    thousands of times on two points each)."""
    if not samples:
        return []
    step = 0.05
    px = np.array([p for x, _, nx, _, _ in samples for p in (x + nx * step, x - nx * step)])
    py = np.array([p for _, y, _, ny, _ in samples for p in (y + ny * step, y - ny * step)])
    inside_mine = polygon_contains(px, py, poly)
    # the probe that is not in this zone looks outwards: the first of a piece's two if it is not in
    # this zone, else the second
    outward = np.arange(0, len(px), 2) + inside_mine[0::2]
    return [bool(zone < 0) for zone in plan.zone_of(px[outward], py[outward])]


def _window_at(windows: list[Window], x: float, y: float, nx: float, ny: float) -> Window | None:
    """The window running along this piece of wall (parallel to it and on its line), if any."""
    for w in windows:
        (ax, ay), (bx, by) = w.start, w.end
        vx, vy = bx - ax, by - ay
        length2 = vx * vx + vy * vy
        if length2 > 0.0 and abs(nx * vx + ny * vy) > 0.1 * math.sqrt(length2):
            continue  # the wall turns a corner here: not along this window
        t = 0.0 if length2 == 0.0 else max(0.0, min(1.0, ((x - ax) * vx + (y - ay) * vy) / length2))
        if math.hypot(x - (ax + t * vx), y - (ay + t * vy)) <= WINDOW_REACH_M:
            return w
    return None

"""The floor's geometry as the world needs it: zones, seats, light paths and thermopile footprints.

Everything here is computed once from the site config, as numpy arrays, so that the world's
per-event work is a few array operations:

- :class:`FloorPlan`: zone polygons, seat positions, light-sensor positions, walking paths;
- :func:`luminaire_matrix`: lux at every point per unit dimming level of every luminaire;
- :class:`ThermopileView`: for every seat a thermopile sees, the 8x8 pixel weights of a person
  sitting there, of a laptop on the desk in front, of a coat on the chair back and of the chair seat.

Thermopile pixel convention (shared with the daemon's sensing geometry): ``frame[row, col]``,
``col`` grows along the sensor's +x, ``row`` along its +y, the sensor frame rotated
counter-clockwise by ``mount.rotation_deg``; pixel ``k`` spans angles ``(k - 4) .. (k - 3)`` times
``fov / 8`` from the optical axis, so pixels widen towards the edge of the view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.config import Mount, SiteConfig

FloatArray = npt.NDArray[np.float64]
GRID = 8
LUMINAIRE_HEIGHT_M = 2.05  # above the desk plane: 2.8 m ceiling, 0.75 m desk
PERSON_RADIUS_M = 0.28  # head and shoulders seen from above: about 0.25 m^2
LAPTOP_HALF_M = 0.16  # a 0.32 m square
# A coat hung on the chair back, seen from above: shoulders and collar draped over the back rest,
# about 0.45 m wide and 0.2 m deep, its centre 0.3 m behind the sitter's head (away from the desk).
COAT_HALF_WIDTH_M, COAT_HALF_DEPTH_M, COAT_BACK_M = 0.225, 0.10, 0.30
# The chair seat once its sitter stands: a 0.42 m seat, partly under the desk edge and the back rest,
# shows about 0.09 m^2 (a 0.17 m-radius disc) just behind where the head was.
CHAIR_RADIUS_M, CHAIR_BACK_M = 0.17, 0.10
SUPERSAMPLE = 6  # sub-samples per pixel axis when measuring how much of a pixel a body covers


def polygon_contains(px: FloatArray, py: FloatArray, polygon: list[tuple[float, float]]) -> npt.NDArray[np.bool_]:
    """Even-odd test of many points at once (half-open on the upper/right edges)."""
    inside = np.zeros(px.shape, dtype=bool)
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if y1 == y2:
            continue
        crosses = (y1 <= py) & (py < y2) | (y2 <= py) & (py < y1)
        xc = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < xc)
    return inside


@dataclass(frozen=True)
class FloorPlan:
    """Positions the world uses, indexed consistently with the config's order."""

    zone_ids: list[str]
    zone_polygons: list[list[tuple[float, float]]]
    zone_area_m2: FloatArray
    seat_ids: list[str]
    seat_xy: FloatArray  # (n_seats, 2)
    seat_zone: npt.NDArray[np.int64]  # zone index of each seat
    lux_sensor_ids: list[str]
    lux_sensor_xy: FloatArray  # (n_lux, 2): at the zone's centroid unless mounted
    entrance: tuple[float, float]
    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax
    _walks: dict[tuple[int, float], tuple[float, list[tuple[int, float, float]]]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: SiteConfig, entrance: tuple[float, float] | None = None) -> FloorPlan:
        zone_ids = [z.id for z in cfg.zones]
        polys = [[(float(x), float(y)) for x, y in z.polygon] for z in cfg.zones]
        areas = np.array([_area(p) for p in polys])
        seat_xy = np.array([[s.x, s.y] for s in cfg.seats], dtype=float).reshape(-1, 2)
        seat_zone = np.array([zone_ids.index(s.zone) for s in cfg.seats], dtype=np.int64)
        lux = [s for s in cfg.sensors if s.kind == "bh1750"]
        lux_xy = []
        for s in lux:
            if s.mount is not None:
                lux_xy.append((s.mount.x, s.mount.y))
            elif s.zone is not None:
                lux_xy.append(_centroid(polys[zone_ids.index(s.zone)]))
            else:
                lux_xy.append(_centroid(polys[0]))
        allx = [x for p in polys for x, _ in p]
        ally = [y for p in polys for _, y in p]
        bounds = (min(allx), min(ally), max(allx), max(ally))
        if entrance is None:  # middle of the southern wall, a step inside
            entrance = ((bounds[0] + bounds[2]) / 2.0, bounds[1] + 0.3)
        return cls(
            zone_ids=zone_ids,
            zone_polygons=polys,
            zone_area_m2=areas,
            seat_ids=[s.id for s in cfg.seats],
            seat_xy=seat_xy,
            seat_zone=seat_zone,
            lux_sensor_ids=[s.id for s in lux],
            lux_sensor_xy=np.array(lux_xy, dtype=float).reshape(-1, 2),
            entrance=entrance,
            bounds=bounds,
        )

    def zone_of(self, x: FloatArray, y: FloatArray) -> npt.NDArray[np.int64]:
        """Zone index of each point, -1 outside every zone."""
        out = np.full(x.shape, -1, dtype=np.int64)
        for i, poly in enumerate(self.zone_polygons):
            out[(out < 0) & polygon_contains(x, y, poly)] = i
        return out

    def seat_walk(self, seat: int, speed: float) -> tuple[float, list[tuple[int, float, float]]]:
        """:meth:`zone_crossings` from the entrance to ``seat``, cached (every walk uses one of these)."""
        key = (seat, speed)
        found = self._walks.get(key)
        if found is None:
            found = self._walks[key] = self.zone_crossings(
                self.entrance, (float(self.seat_xy[seat, 0]), float(self.seat_xy[seat, 1])), speed)
        return found

    def zone_crossings(
        self, start: tuple[float, float], end: tuple[float, float], speed: float
    ) -> tuple[float, list[tuple[int, float, float]]]:
        """Walk time and, for each zone passed, (zone index, entry s, exit s) from the walk's start.

        The path is a straight line sampled every 0.5 m: good enough for which PIR sees the walker
        and when, which is all the world needs from it.
        """
        length = math.hypot(end[0] - start[0], end[1] - start[1])
        steps = max(2, int(length / 0.5) + 1)
        f = np.linspace(0.0, 1.0, steps)
        zones = self.zone_of(start[0] + f * (end[0] - start[0]), start[1] + f * (end[1] - start[1]))
        duration = length / speed
        spans: list[tuple[int, float, float]] = []
        i = 0
        while i < steps:
            j = i
            while j + 1 < steps and zones[j + 1] == zones[i]:
                j += 1
            if zones[i] >= 0:
                spans.append((int(zones[i]), float(f[i]) * duration, float(f[j]) * duration))
            i = j + 1
        return duration, spans


def _area(poly: list[tuple[float, float]]) -> float:
    s = 0.0
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def _centroid(poly: list[tuple[float, float]]) -> tuple[float, float]:
    return (sum(p[0] for p in poly) / len(poly), sum(p[1] for p in poly) / len(poly))


def luminaire_spread(xy: FloatArray) -> float:
    """Gaussian sigma of one luminaire's footprint: half the median spacing of the luminaires.

    A configured luminaire stands for the fittings of its part of the zone, designed to light it
    evenly; a footprint of half the spacing gives the even field such a layout is designed for.
    """
    if len(xy) < 2:
        return 3.0
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    np.fill_diagonal(d, np.inf)
    return float(max(1.5, 0.5 * float(np.median(d.min(axis=1)))))


def luminaire_matrix(points: FloatArray, lum_xy: FloatArray, lux_at_full: FloatArray) -> FloatArray:
    """(points x luminaires): lux a luminaire at full gives at each point (Gaussian footprint)."""
    sigma = luminaire_spread(lum_xy)
    d2 = (points[:, None, 0] - lum_xy[None, :, 0]) ** 2 + (points[:, None, 1] - lum_xy[None, :, 1]) ** 2
    return np.asarray(lux_at_full[None, :] * np.exp(-d2 / (2.0 * sigma * sigma)), dtype=float)


def pixel_edges(mount: Mount) -> FloatArray:
    """Desk-plane offsets (sensor frame) of the 9 pixel boundaries along one axis."""
    step = math.radians(mount.fov_deg) / GRID
    return np.asarray(mount.height_m * np.tan((np.arange(GRID + 1) - GRID / 2) * step), dtype=float)


@dataclass(frozen=True)
class ThermopileView:
    """What one mounted AMG8833 sees: seat index -> 8x8 coverage of a person / laptop / coat / chair.

    Coverage is the fraction of each pixel's desk-plane footprint the body covers (0..1), found by
    supersampling the pixel; a warm body's apparent excess is diluted by exactly that fraction.
    ``coat_exposed`` is the part of the coat the seated owner does not hide (the whole coat shows
    once they stand up); the chair seat is hidden under its sitter, so it has a single map.
    """

    sensor_id: str
    zone: int
    person: dict[int, FloatArray]
    laptop: dict[int, FloatArray]
    pixel_x: FloatArray  # (8, 8) floor coordinates of pixel centres
    pixel_y: FloatArray
    coat: dict[int, FloatArray] = field(default_factory=dict)
    coat_exposed: dict[int, FloatArray] = field(default_factory=dict)
    chair: dict[int, FloatArray] = field(default_factory=dict)

    @classmethod
    def build(cls, sensor_id: str, zone: int, mount: Mount, plan: FloorPlan) -> ThermopileView:
        edges = pixel_edges(mount)
        sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
        # Sub-sample coordinates in the sensor frame: (8, S) per axis.
        axis = edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * sub[None, :]
        rot = math.radians(mount.rotation_deg)
        c, s = math.cos(rot), math.sin(rot)
        # Grid (row, S_row, col, S_col): sensor x from columns, sensor y from rows.
        sx = np.broadcast_to(axis[None, None, :, :], (GRID, SUPERSAMPLE, GRID, SUPERSAMPLE))
        sy = np.broadcast_to(axis[:, :, None, None], (GRID, SUPERSAMPLE, GRID, SUPERSAMPLE))
        fx = mount.x + c * sx - s * sy
        fy = mount.y + s * sx + c * sy
        centres = (edges[:-1] + edges[1:]) / 2.0
        cx, cy = np.meshgrid(centres, centres)
        reach = edges[-1] + 0.6
        person: dict[int, FloatArray] = {}
        laptop: dict[int, FloatArray] = {}
        coat: dict[int, FloatArray] = {}
        coat_exposed: dict[int, FloatArray] = {}
        chair: dict[int, FloatArray] = {}
        for idx, (x, y) in enumerate(plan.seat_xy):
            dx, dy = x - mount.x, y - mount.y
            if abs(c * dx + s * dy) > reach or abs(-s * dx + c * dy) > reach:
                continue
            in_body = (fx - x) ** 2 + (fy - y) ** 2 <= PERSON_RADIUS_M**2
            body = in_body.mean(axis=(1, 3))
            if body.max() <= 0.0:
                continue
            person[idx] = body
            # The laptop sits on the desk in front of the seat, towards the cluster centre; the
            # chair and the coat on its back are behind the sitter, away from the desk.
            toward = np.array([mount.x - x, mount.y - y])
            norm = float(np.hypot(*toward))
            ux, uy = (0.0, 1.0) if norm < 1e-6 else (float(toward[0] / norm), float(toward[1] / norm))
            lx, ly = (x, y) if norm < 1e-6 else (x + 0.45 * ux, y + 0.45 * uy)
            lap = ((np.abs(fx - lx) <= LAPTOP_HALF_M) & (np.abs(fy - ly) <= LAPTOP_HALF_M)).mean(axis=(1, 3))
            laptop[idx] = lap
            along = (fx - x) * ux + (fy - y) * uy  # towards the desk
            across = -(fx - x) * uy + (fy - y) * ux
            in_coat = (np.abs(along + COAT_BACK_M) <= COAT_HALF_DEPTH_M) & (np.abs(across) <= COAT_HALF_WIDTH_M)
            coat[idx] = in_coat.mean(axis=(1, 3))
            coat_exposed[idx] = (in_coat & ~in_body).mean(axis=(1, 3))
            chair[idx] = ((along + CHAIR_BACK_M) ** 2 + across**2 <= CHAIR_RADIUS_M**2).mean(axis=(1, 3))
        return cls(sensor_id, zone, person, laptop, mount.x + c * cx - s * cy, mount.y + s * cx + c * cy,
                   coat, coat_exposed, chair)

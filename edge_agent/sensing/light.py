"""Illuminance at each seat, estimated from the zone's lux sensor, the luminaire levels and the plan.

A zone has one light sensor (a BH1750 at its centre, or where its ``mount`` says); desks far from
it, or from the windows, get less light than it reads. Holding the sensor at the target therefore
leaves some occupied desks underlit. The estimate splits the reading into its two sources:

- **electric**: each luminaire gives ``lux_at_full * level * exp(-d^2 / 2 sigma^2)`` on the desk
  plane, ``d`` its horizontal distance. ``sigma`` is half the spacing between neighbouring
  luminaires (a lighting layout is spaced so that footprints overlap there), at least 1.5 m.
- **daylight**: the reading minus the electric part at the sensor; it falls off with distance
  from the nearest window like a daylight factor, ``exp(-d_window / 2.5 m)``, relative to the
  sensor's own distance (and is the sensor's own value in a zone without windows).

The split is re-made on every reading, so an error in the electric model only shifts daylight
between seats. Between two readings the daylight is held and the electric part follows the
levels: a reading is a few seconds old when the levels change (a BH1750 is read every 5 s, the
rules run every 2 s), and split again with the new levels it would credit the light just dimmed
away to daylight. The daylight loop then saw no effect of its own steps until the next reading,
kept stepping, and rang: on the 240-seat benchmark floor every dimmer swung from 100 % down to
30 % and back about every 20 s (a command every 2 s each) while the levels it needed were steady.

The result is reported as a lower bound (``LOWER_BOUND``, 6 % under the estimate): a target
illuminance is a minimum for the desk, and the rules' deadband (25 lux) would otherwise leave half
of the held desks a little under it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.config import SiteConfig

FloatArray = npt.NDArray[np.float64]
DAYLIGHT_DEPTH_M = 2.5
MIN_SPREAD_M = 1.5
LOWER_BOUND = 0.94


def _segment_distance(px: float, py: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    f = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.hypot(px - (ax + f * dx), py - (ay + f * dy))


class SeatLightModel:
    """Seat lux from zone lux and luminaire levels (see the module docstring)."""

    def __init__(self, cfg: SiteConfig) -> None:
        lums = [a for a in cfg.actuators if a.kind == "light" and a.x is not None and a.y is not None]
        self.lum_ids = [a.id for a in lums]
        xy = np.array([[a.x or 0.0, a.y or 0.0] for a in lums]).reshape(-1, 2)
        full = np.array([a.lux_at_full for a in lums], dtype=float)
        spread = MIN_SPREAD_M
        if len(lums) > 1:
            d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
            np.fill_diagonal(d, np.inf)
            spread = max(MIN_SPREAD_M, float(np.median(d.min(axis=1))) / 2.0)
        windows = [((w.start[0], w.start[1]), (w.end[0], w.end[1])) for w in cfg.windows]

        def gains(x: float, y: float) -> FloatArray:
            d2 = (xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2
            return np.asarray(full * np.exp(-d2 / (2.0 * spread * spread)), dtype=float)

        def window_m(x: float, y: float) -> float:
            return min((_segment_distance(x, y, a, b) for a, b in windows), default=0.0)

        sensor_xy: dict[str, tuple[float, float]] = {}
        for zone in cfg.zones:
            mounted = [s.mount for s in cfg.sensors if s.kind == "bh1750" and s.zone == zone.id and s.mount]
            if mounted:
                sensor_xy[zone.id] = (mounted[0].x, mounted[0].y)
            else:
                poly = np.array(zone.polygon, dtype=float)
                sensor_xy[zone.id] = (float(poly[:, 0].mean()), float(poly[:, 1].mean()))
        self._sensor_gain = {z: gains(*p) for z, p in sensor_xy.items()}
        self._seat_zone = {s.id: s.zone for s in cfg.seats}
        self._seat_gain = {s.id: gains(s.x, s.y) for s in cfg.seats}
        self._daylight_ratio = {
            s.id: (math.exp(-(window_m(s.x, s.y) - window_m(*sensor_xy[s.zone])) / DAYLIGHT_DEPTH_M)
                   if windows and s.zone in sensor_xy else 1.0)
            for s in cfg.seats
        }
        self._last_key: tuple[Any, ...] = ()
        self._last_out: dict[str, float | None] | None = None
        # The electric light at each zone's sensor and each seat for the last levels asked.
        self._levels_key: tuple[float, ...] | None = None
        self._sensor_electric: dict[str, float] = {}
        self._seat_electric: dict[str, float] = {}
        # Per zone, the reading (value, time) its daylight was split at, that daylight at the sensor
        # and the electric light there at the split.
        self._split: dict[str, tuple[tuple[float, float | None], float, float]] = {}
        self._sensor_now: dict[str, float | None] = {}

    def seat_gains(self, floor: float = 0.01) -> dict[str, dict[str, float]]:
        """Per seat, the lux each luminaire adds there at full output (those above ``floor`` of the most)."""
        out: dict[str, dict[str, float]] = {}
        for seat, gain in self._seat_gain.items():
            top = float(gain.max()) if gain.size else 0.0
            out[seat] = {lum: round(float(g), 1) for lum, g in zip(self.lum_ids, gain, strict=True)
                         if top > 0 and g >= floor * top}
        return out

    def sensor_electric(self, levels: Mapping[str, float]) -> dict[str, float]:
        """The lux the luminaires at ``levels`` give at each zone's sensor, by the model."""
        lv = np.array([levels.get(i, 0.0) for i in self.lum_ids], dtype=float)
        return {zone: float(gain @ lv) for zone, gain in self._sensor_gain.items()}

    def seat_lux(
        self,
        zone_lux: Mapping[str, float | None],
        levels: Mapping[str, float],
        read_at: Mapping[str, float] | None = None,
    ) -> dict[str, float | None]:
        """Estimated lux per seat; None where the zone's lux is unknown.

        ``read_at`` gives, per zone, when its newest lux reading was taken: a zone's daylight is
        split again only for a new reading (a new value or a new time), with the levels of the
        first call that sees it; without ``read_at`` a new value alone counts as a new reading.

        Asked on every decide pass, while the zones' readings and the levels change every few
        seconds: the same inputs as the last call give the last call's dict (not to be changed).
        The levels change far less often than the readings (a quarter of the changes on the
        simulated day), so the electric light at each seat and sensor (a dot product each) is
        kept for the last levels.
        """
        wanted = tuple([levels.get(i, 0.0) for i in self.lum_ids])
        at = read_at or {}
        key = (tuple([(z, v, at.get(z)) for z, v in zone_lux.items()]), wanted)
        if key == self._last_key and self._last_out is not None:
            return self._last_out
        if wanted != self._levels_key:
            lv = np.array(wanted, dtype=float)
            self._sensor_electric = self.sensor_electric(levels)
            self._seat_electric = {seat: float(gain @ lv) for seat, gain in self._seat_gain.items()}
            self._levels_key = wanted
        sensor_electric, seat_electric, ratio = self._sensor_electric, self._seat_electric, self._daylight_ratio
        daylight: dict[str, float | None] = {}
        split = self._split
        for zone in self._sensor_gain:
            measured = zone_lux.get(zone)
            if measured is None:
                split.pop(zone, None)
                daylight[zone] = None
                continue
            reading = (measured, at.get(zone))
            held = split.get(zone)
            if held is None or held[0] != reading:
                held = split[zone] = (reading, max(0.0, measured - sensor_electric[zone]), sensor_electric[zone])
            daylight[zone] = held[1]
        self._sensor_now = {zone: None if (held := split.get(zone)) is None
                            else max(0.0, held[0][0] + sensor_electric[zone] - held[2])
                            for zone in self._sensor_gain}
        out: dict[str, float | None] = {}
        for seat, zone in self._seat_zone.items():
            day = daylight.get(zone)
            if day is None:
                out[seat] = None
            else:
                out[seat] = LOWER_BOUND * (day * ratio[seat] + seat_electric[seat])
        self._last_key, self._last_out = key, out
        return out

    def sensor_lux_now(self, zone: str) -> float | None:
        """What the zone's sensor would read at the levels of the last :meth:`seat_lux` call: its
        last reading's daylight plus the electric light those levels give there (None if unknown)."""
        return self._sensor_now.get(zone)

"""Daylight: where the sun is, how much light the sky gives, how much of it reaches a desk.

Three small models, each standard and each documented in docs/simulator.md:

1. Sun position from latitude, longitude, day of year and UTC time (Cooper's declination,
   hour angle from approximate solar time; the equation of time, at most 16 minutes, is ignored).
2. Exterior horizontal illuminance: the CIE-overcast-sky approximation ``300 + 21000 sin(alt)``
   and the clear-sky diffuse ``800 + 15500 sqrt(sin(alt))`` (Krochmann and Seidl's fits, as quoted
   in daylighting texts), blended by a cloudiness 0..1 that the weather sets.
3. Indoor daylight: a daylight factor falling exponentially with distance from the nearest window
   (5 % at the glass, halving every ~1.7 m), plus a small share of direct sun for points close to a
   window that faces the sun (blinds pass ~8 %).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import numpy.typing as npt

from edge_agent.config import Window

FloatArray = npt.NDArray[np.float64]

DF_AT_GLASS = 0.05
DF_DEPTH_M = 2.5  # e-folding depth of the daylight factor
SUN_DEPTH_M = 1.5  # direct sun patches reach about this far past the glass
BLIND_TRANSMITTANCE = 0.08
DIRECT_NORMAL_LUX = 95_000.0  # clear-sky direct-normal illuminance at high sun
FACING_AZIMUTH = {"north": 0.0, "east": 90.0, "south": 180.0, "west": 270.0}


def sun_position(when_utc: datetime, latitude: float, longitude: float) -> tuple[float, float]:
    """(altitude, azimuth) of the sun in degrees; azimuth clockwise from north."""
    n = when_utc.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2.0 * math.pi * (284 + n) / 365.0)
    hours = when_utc.hour + when_utc.minute / 60.0 + when_utc.second / 3600.0
    solar = hours + longitude / 15.0
    ha = math.radians(15.0 * (solar - 12.0))
    lat = math.radians(latitude)
    sin_alt = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(ha)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    cos_az = (math.sin(decl) - math.sin(alt) * math.sin(lat)) / max(1e-9, math.cos(alt) * math.cos(lat))
    az = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    if ha > 0:  # afternoon: the sun is in the west
        az = 360.0 - az
    return math.degrees(alt), az


def exterior_diffuse_lux(altitude_deg: float, cloudiness: float) -> float:
    """Horizontal sky (diffuse) illuminance outdoors; 0 at night, a little in civil twilight."""
    if altitude_deg <= -6.0:
        return 0.0
    if altitude_deg <= 0.0:
        return 300.0 * (altitude_deg + 6.0) / 6.0
    s = math.sin(math.radians(altitude_deg))
    overcast = 300.0 + 21_000.0 * s
    clear = 800.0 + 15_500.0 * math.sqrt(s)
    return cloudiness * overcast + (1.0 - cloudiness) * clear


class DaylightField:
    """Daylight lux at fixed points (seats, light sensors) for any sun position and cloudiness."""

    def __init__(self, points: FloatArray, windows: list[Window]) -> None:
        self.points = points
        n = len(points)
        self.factor = np.zeros(n)  # daylight factor of each point (sky light)
        self.sun_weight: list[tuple[float, FloatArray]] = []  # (window azimuth, weight per point)
        for w in windows:
            d = _distance_to_segment(points, w.start, w.end)
            self.factor = np.maximum(self.factor, DF_AT_GLASS * np.exp(-d / DF_DEPTH_M))
            self.sun_weight.append((FACING_AZIMUTH[w.facing], np.exp(-d / SUN_DEPTH_M)))
        self.window_distance = (
            np.min([_distance_to_segment(points, w.start, w.end) for w in windows], axis=0)
            if windows else np.full(n, np.inf)
        )

    def lux(self, altitude_deg: float, azimuth_deg: float, cloudiness: float) -> FloatArray:
        """Indoor daylight at every point."""
        out = self.factor * exterior_diffuse_lux(altitude_deg, cloudiness)
        direct = self.direct_sun(altitude_deg, azimuth_deg, cloudiness)
        return np.asarray(out + direct, dtype=float)

    def direct_sun(self, altitude_deg: float, azimuth_deg: float, cloudiness: float) -> FloatArray:
        """The direct-sun share at every point (also warms thermopile pixels near windows)."""
        out = np.zeros(len(self.points))
        if altitude_deg <= 0.0 or cloudiness >= 1.0:
            return out
        # Low sun passes through more air: fade the beam in over the first ~17 degrees of altitude.
        normal = DIRECT_NORMAL_LUX * (1.0 - cloudiness) * min(1.0, math.sin(math.radians(altitude_deg)) / 0.3)
        for facing, weight in self.sun_weight:
            incidence = math.cos(math.radians(azimuth_deg - facing)) * math.cos(math.radians(altitude_deg))
            if incidence > 0.0:
                out += BLIND_TRANSMITTANCE * normal * incidence * weight
        return out


def _distance_to_segment(points: FloatArray, a: tuple[float, float], b: tuple[float, float]) -> FloatArray:
    ax, ay = a
    bx, by = b
    vx, vy = bx - ax, by - ay
    length2 = vx * vx + vy * vy
    if length2 == 0.0:
        return np.asarray(np.hypot(points[:, 0] - ax, points[:, 1] - ay), dtype=float)
    t = np.clip(((points[:, 0] - ax) * vx + (points[:, 1] - ay) * vy) / length2, 0.0, 1.0)
    return np.asarray(np.hypot(points[:, 0] - (ax + t * vx), points[:, 1] - (ay + t * vy)), dtype=float)


class Weather:
    """Cloudiness over the day: fixed for clear/overcast, an AR(1) walk for variable skies."""

    def __init__(self, kind: str, rng: np.random.Generator) -> None:
        self.kind = kind
        self._rng = rng
        self._value = {"clear": 0.05, "overcast": 1.0}.get(kind, float(rng.uniform(0.3, 0.8)))
        self._last_step: float | None = None

    def cloudiness(self, t: float) -> float:
        """Cloudiness at monotonic time ``t``; variable skies change in 10-minute steps."""
        if self.kind != "variable":
            return self._value
        step = math.floor(t / 600.0)
        if self._last_step is None:
            self._last_step = step
        bounded = 0
        while self._last_step < step and bounded < 1000:  # clouds decorrelate over ~1 h
            self._value = float(np.clip(0.85 * self._value + 0.15 * 0.55 + self._rng.normal(0.0, 0.12), 0.0, 1.0))
            self._last_step += 1
            bounded += 1
        return self._value

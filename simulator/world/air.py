"""Indoor air per zone: CO2, temperature and humidity as well-mixed mass and heat balances.

Each zone is one well-mixed volume (its share, by floor area, of its HVAC group's ``volume_m3``;
zones without an HVAC group get area x 3 m). Between two steps the people count and the airflow
are constant, so the balance ``dC/dt = G*N/V - (Q/V)(C - C_out)`` has an exact solution
``C(t+dt) = C_ss + (C - C_ss) exp(-Q dt / V)``; the step is stable at any ``dt`` and the world
steps every 30 s. Temperature and absolute humidity use the same form. Values and sources are in
docs/simulator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.config import SiteConfig

FloatArray = npt.NDArray[np.float64]

OUTDOOR_CO2_PPM = 420.0
CO2_LPS_PER_PERSON = 0.005  # seated desk work (about 1.2 met)
HEAT_W_PER_PERSON = 75.0  # sensible heat of a seated adult
MOISTURE_G_PER_S_PER_PERSON = 50.0 / 3600.0  # about 50 g/h of water vapour
AIR_HEAT_CAPACITY_J_M3K = 1.2 * 1005.0
THERMAL_MASS_FACTOR = 8.0  # furniture, books and surfaces buffer the air: effective capacity x 8
ENVELOPE_W_PER_M2K = 0.6  # exchange with outdoors per m2 of floor (facade and roof share)
CONDITIONING_W_PER_M2K = 4.0  # the building's own heating/cooling pulls towards the setpoint
CEILING_M = 3.0


def saturation_g_m3(temp_c: FloatArray | float) -> FloatArray:
    """Water vapour density at saturation (Magnus formula), g/m3."""
    t = np.asarray(temp_c, dtype=float)
    p_sat = 6.112 * np.exp(17.67 * t / (t + 243.5))  # hPa
    return np.asarray(p_sat * 216.7 / (273.15 + t), dtype=float)


@dataclass
class HvacGroup:
    """One HVAC group as the world sees it: which zones, its airflow range, its fan."""

    id: str
    zones: list[int]
    min_ach: float
    max_ach: float
    fan_watts: float
    actuator: str | None  # the actuator whose level (0..1) sets airflow between min and max


class ZoneAir:
    """CO2 (ppm), temperature (C) and absolute humidity (g/m3) of every zone."""

    def __init__(self, cfg: SiteConfig, zone_area: FloatArray, outdoor_rh_pct: float, start_temp_c: float) -> None:
        zone_ids = [z.id for z in cfg.zones]
        n = len(zone_ids)
        self.volume = zone_area * CEILING_M
        self.min_ach = np.full(n, 0.5)
        self.max_ach = np.full(n, 0.5)
        self.zone_group = np.full(n, -1, dtype=np.int64)
        self.groups: list[HvacGroup] = []
        vent_actuator: dict[str, str] = {}
        for a in cfg.actuators:
            if a.kind == "hvac" and a.zone is not None:
                group = cfg.zone(a.zone).hvac
                if group is not None:
                    vent_actuator.setdefault(group, a.id)
        for g, h in enumerate(cfg.hvac):
            idx = [zone_ids.index(z) for z in h.zones]
            area = float(sum(zone_area[i] for i in idx))
            for i in idx:
                self.volume[i] = h.volume_m3 * float(zone_area[i]) / area
                self.min_ach[i], self.max_ach[i] = h.min_air_changes_per_h, h.max_air_changes_per_h
                self.zone_group[i] = g
            self.groups.append(HvacGroup(h.id, idx, h.min_air_changes_per_h, h.max_air_changes_per_h,
                                         h.fan_watts_at_full, vent_actuator.get(h.id)))
        self.area = zone_area
        self.co2 = np.full(n, OUTDOOR_CO2_PPM)
        self.temp = np.full(n, start_temp_c)
        self.outdoor_ah = outdoor_rh_pct / 100.0 * float(saturation_g_m3(8.0))
        self.ah = np.full(n, 0.4 * float(saturation_g_m3(start_temp_c)))

    def ach(self, group_level: FloatArray) -> FloatArray:
        """Air changes per hour of every zone from its group's ventilation level (0..1)."""
        level = np.where(self.zone_group >= 0, group_level[np.maximum(self.zone_group, 0)], 0.0)
        return np.asarray(self.min_ach + np.clip(level, 0.0, 1.0) * (self.max_ach - self.min_ach), dtype=float)

    def step(self, dt: float, people: FloatArray, group_level: FloatArray, extra_heat_w: FloatArray,
             outdoor_c: float, outdoor_rh_pct: float, setpoint_c: float) -> None:
        """Advance every zone by ``dt`` seconds with constant people, airflow and heat gains."""
        q = self.ach(group_level) * self.volume / 3600.0  # m3/s of outdoor air
        lam = q / self.volume
        decay = np.exp(-lam * dt)
        co2_ss = OUTDOOR_CO2_PPM + people * CO2_LPS_PER_PERSON * 1e-3 * 1e6 / np.maximum(q, 1e-9)
        self.co2 = co2_ss + (self.co2 - co2_ss) * decay
        self.outdoor_ah = outdoor_rh_pct / 100.0 * float(saturation_g_m3(outdoor_c))
        ah_ss = self.outdoor_ah + people * MOISTURE_G_PER_S_PER_PERSON / np.maximum(q, 1e-9)
        self.ah = ah_ss + (self.ah - ah_ss) * decay
        # Heat: supply air arrives at the setpoint; envelope to outdoors; conditioning to setpoint.
        g_vent = AIR_HEAT_CAPACITY_J_M3K * q
        g_env = ENVELOPE_W_PER_M2K * self.area
        g_cond = CONDITIONING_W_PER_M2K * self.area
        g = g_vent + g_env + g_cond
        gains = people * HEAT_W_PER_PERSON + extra_heat_w
        t_ss = (gains + g_vent * setpoint_c + g_env * outdoor_c + g_cond * setpoint_c) / g
        cap = AIR_HEAT_CAPACITY_J_M3K * self.volume * THERMAL_MASS_FACTOR
        self.temp = t_ss + (self.temp - t_ss) * np.exp(-g * dt / cap)

    @property
    def rh(self) -> FloatArray:
        """Relative humidity of every zone, percent."""
        return np.asarray(np.clip(100.0 * self.ah / saturation_g_m3(self.temp), 5.0, 100.0), dtype=float)


class ShadowCo2:
    """The same people's CO2 with ventilation held at its minimum: the report's baseline."""

    def __init__(self, volume: FloatArray, min_ach: FloatArray) -> None:
        self.q = min_ach * volume / 3600.0
        self.decay_rate = min_ach / 3600.0
        self.co2 = np.full(len(volume), OUTDOOR_CO2_PPM)

    def step(self, dt: float, people: FloatArray) -> None:
        co2_ss = OUTDOOR_CO2_PPM + people * CO2_LPS_PER_PERSON * 1e3 / np.maximum(self.q, 1e-9)
        self.co2 = co2_ss + (self.co2 - co2_ss) * np.exp(-self.decay_rate * dt)


def fan_watts(fan_watts_at_full: float, ach: float, max_ach: float) -> float:
    """Fan power by the fan affinity law: power grows with the cube of the airflow fraction."""
    if max_ach <= 0:
        return 0.0
    return fan_watts_at_full * (min(1.0, ach / max_ach)) ** 3


def outdoor_temperature(mean_c: float, hour: float) -> float:
    """A diurnal swing of +-4 C around ``mean_c``, warmest at 15:00."""
    return mean_c + 4.0 * math.cos(2.0 * math.pi * (hour - 15.0) / 24.0)

"""Indoor climate per zone: CO2, temperature and humidity as well-mixed balances, and the plant holding them.

Each zone is one well-mixed volume (its share, by floor area, of its HVAC group's ``volume_m3``;
zones without an HVAC group get area x 3 m) with an effective heat capacity per m2 of floor.
Between two steps the people, the airflow, the heat gains and the setpoints are constant, so
every balance has an exact solution of the form ``x(t+dt) = x_ss + (x - x_ss) exp(-dt / tau)``;
the step is stable at any ``dt`` and the world steps every 30 s:

- CO2: ``V dC/dt = G N - Q (C - C_out)`` with ``Q`` the AHU's outdoor air plus leaks;
- water vapour: the same form, people's moisture against outdoor air (dried by the AHU's coil);
- heat: ``C_th dT/dt = UA (T_out - T) + c Q_ahu (T_supply - T) + gains + P``, where ``P`` is the
  zone's terminal: zero while the free-running temperature stays between the heating and the
  cooling setpoint, else the constant power that lands it on the setpoint at the end of the step,
  within the terminal's capacity (an ideal thermostat).

A :class:`ZoneClimate` keeps its own energy meters (joules by load), so the world runs two of them
side by side on the same people, weather and sun: the gateway's floor and the conventional one.
Values and sources: docs/simulator.md ("Heat, air and energy").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.config import SiteConfig
from simulator.world import hvac
from simulator.world.envelope import INFILTRATION_ACH, STOREY_M, Envelope

FloatArray = npt.NDArray[np.float64]

OUTDOOR_CO2_PPM = 420.0
CO2_LPS_PER_PERSON = 0.005  # seated reading and desk work, about 1.2 met (ASHRAE 62.1 appendix C)
# A seated adult at very light work: 70 W sensible, 45 W latent (ASHRAE Handbook of Fundamentals,
# chapter 18, table 1, "seated, very light work"); the latent heat is water vapour, 45 / 2450 g/s.
HEAT_W_PER_PERSON = 70.0
MOISTURE_G_PER_S_PER_PERSON = 45.0 / hvac.LATENT_J_G
#: The loads of the report's breakdown that the climate meters (lighting is metered by the world).
CLIMATE_LOADS = ("fans", "ventilation_air", "zone_conditioning")
THERMAL_METERS = ("ahu_heating", "ahu_cooling", "zone_heating", "zone_cooling")


def saturation_g_m3(temp_c: FloatArray | float) -> FloatArray:
    """Water vapour density at saturation (Magnus formula), g/m3."""
    t = np.asarray(temp_c, dtype=float)
    p_sat = 6.112 * np.exp(17.67 * t / (t + 243.5))  # hPa
    return np.asarray(p_sat * 216.7 / (273.15 + t), dtype=float)


@dataclass
class HvacGroup:
    """One HVAC group as the world sees it: which zones, its airflow range, its fan, its request outputs."""

    id: str
    zones: list[int]
    min_ach: float
    max_ach: float
    fan_watts: float
    actuator: str | None  # the actuator whose level (0..1) sets airflow between min and max
    seats: int = 0
    design_ach: float = 0.0  # what a designer gives it for every seat taken (EN 16798-1 cat. II)


class ZoneClimate:
    """CO2 (ppm), temperature (C), absolute humidity (g/m3) of every zone, and the energy that held them."""

    def __init__(self, cfg: SiteConfig, zone_area: FloatArray, envelope: Envelope | None, start_temp_c: float,
                 outdoor_g_m3: float) -> None:
        zone_ids = [z.id for z in cfg.zones]
        n = len(zone_ids)
        self.area = zone_area
        self.volume = zone_volumes(cfg, zone_area)
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
        seats_in = {z: len(cfg.seats_in(z)) for z in zone_ids}
        for g, h in enumerate(cfg.hvac):
            idx = [zone_ids.index(z) for z in h.zones]
            area = float(sum(zone_area[i] for i in idx))
            for i in idx:
                self.min_ach[i], self.max_ach[i] = h.min_air_changes_per_h, h.max_air_changes_per_h
                self.zone_group[i] = g
            seats = sum(seats_in[z] for z in h.zones)
            design = hvac.design_air_changes(seats, area, h.volume_m3, h.min_air_changes_per_h,
                                             h.max_air_changes_per_h)
            self.groups.append(HvacGroup(h.id, idx, h.min_air_changes_per_h, h.max_air_changes_per_h,
                                         h.fan_watts_at_full, vent_actuator.get(h.id), seats, design))
        self.ua = envelope.ua_w_k if envelope is not None else np.zeros(n)
        self.capacity = hvac.CAPACITY_J_M2K * zone_area
        self.terminal_w = hvac.TERMINAL_W_M2 * zone_area
        self.co2 = np.full(n, OUTDOOR_CO2_PPM)
        self.temp = np.full(n, start_temp_c)
        self.outdoor_ah = outdoor_g_m3
        self.ah = np.full(n, min(outdoor_g_m3, 0.6 * float(saturation_g_m3(start_temp_c))))
        self.joules = dict.fromkeys(CLIMATE_LOADS, 0.0)
        self.thermal_j = dict.fromkeys(THERMAL_METERS, 0.0)
        self.terminal_now = np.zeros(n)  # the terminals' last power, W (+ heating, - cooling)

    def ach(self, group_level: FloatArray) -> FloatArray:
        """Air changes per hour of outdoor air from the AHU in every zone, from its group's level (0..1)."""
        level = np.where(self.zone_group >= 0, group_level[np.maximum(self.zone_group, 0)], 0.0)
        return np.asarray(self.min_ach + np.clip(level, 0.0, 1.0) * (self.max_ach - self.min_ach), dtype=float)

    def step(self, dt: float, people: FloatArray, group_level: FloatArray, gains_w: FloatArray, outdoor_c: float,
             outdoor_g_m3: float, heating_c: FloatArray, cooling_c: FloatArray) -> None:
        """Advance every zone by ``dt`` seconds; meter the fans, the AHU coils and the zone terminals."""
        if dt <= 0:
            return
        q_ahu = self.ach(group_level) * self.volume / 3600.0  # m3/s of outdoor air the AHU supplies
        q_out = q_ahu + INFILTRATION_ACH * self.volume / 3600.0
        decay = np.exp(-q_out / self.volume * dt)
        co2_ss = OUTDOOR_CO2_PPM + people * CO2_LPS_PER_PERSON * 1e3 / q_out
        self.co2 = co2_ss + (self.co2 - co2_ss) * decay
        self.outdoor_ah = outdoor_g_m3
        supply_ah = min(outdoor_g_m3, float(saturation_g_m3(hvac.SUPPLY_C)))
        inflow_ah = (q_ahu * supply_ah + (q_out - q_ahu) * outdoor_g_m3) / q_out
        ah_ss = inflow_ah + people * MOISTURE_G_PER_S_PER_PERSON / q_out
        self.ah = ah_ss + (self.ah - ah_ss) * decay
        self._heat(dt, q_ahu, people * HEAT_W_PER_PERSON + gains_w, outdoor_c, heating_c, cooling_c)
        self._ahu(dt, q_ahu, outdoor_c, outdoor_g_m3)

    def _heat(self, dt: float, q_ahu: FloatArray, gains: FloatArray, outdoor_c: float, heating_c: FloatArray,
              cooling_c: FloatArray) -> None:
        g_vent = hvac.AIR_J_M3K * q_ahu
        g = np.maximum(self.ua + g_vent, 1e-9)
        t_free_ss = (self.ua * outdoor_c + g_vent * hvac.SUPPLY_C + gains) / g
        settle = -np.expm1(-g * dt / self.capacity)  # 1 - exp(-dt / tau)
        t_free = t_free_ss + (self.temp - t_free_ss) * (1.0 - settle)
        target = np.clip(t_free, heating_c, cooling_c)
        power = np.clip(g * (target - t_free) / settle, -self.terminal_w, self.terminal_w)
        self.temp = t_free + power * settle / g
        self.terminal_now = power
        heating, cooling = np.maximum(power, 0.0) * dt, np.maximum(-power, 0.0) * dt
        self.thermal_j["zone_heating"] += float(heating.sum())
        self.thermal_j["zone_cooling"] += float(cooling.sum())
        self.joules["zone_conditioning"] += float(hvac.electric_w(heating, cooling).sum())

    def _ahu(self, dt: float, q_ahu: FloatArray, outdoor_c: float, outdoor_g_m3: float) -> None:
        at_supply = float(saturation_g_m3(hvac.SUPPLY_C))
        for group in self.groups:
            q = float(q_ahu[group.zones].sum())
            extract = float(np.average(self.temp[group.zones], weights=q_ahu[group.zones])) if q > 0 else outdoor_c
            coil = hvac.ahu_coil(q, outdoor_c, outdoor_g_m3, extract, at_supply)
            self.thermal_j["ahu_heating"] += coil.heating_w * dt
            self.thermal_j["ahu_cooling"] += coil.cooling_w * dt
            self.joules["ventilation_air"] += float(hvac.electric_w(coil.heating_w, coil.cooling_w)) * dt
            ach = q * 3600.0 / max(float(self.volume[group.zones].sum()), 1e-9)
            self.joules["fans"] += hvac.fan_watts(group.fan_watts, ach / group.max_ach if group.max_ach else 0.0) * dt

    @property
    def rh(self) -> FloatArray:
        """Relative humidity of every zone, percent."""
        return np.asarray(np.clip(100.0 * self.ah / saturation_g_m3(self.temp), 5.0, 100.0), dtype=float)


def zone_volumes(cfg: SiteConfig, zone_area: FloatArray) -> FloatArray:
    """Air volume of every zone: its floor-area share of its HVAC group's volume, else area x storey height."""
    zone_ids = [z.id for z in cfg.zones]
    volume = np.asarray(zone_area * STOREY_M, dtype=float)
    for h in cfg.hvac:
        idx = [zone_ids.index(z) for z in h.zones]
        area = float(sum(zone_area[i] for i in idx))
        for i in idx:
            volume[i] = h.volume_m3 * float(zone_area[i]) / area
    return volume


def outdoor_temperature(mean_c: float, swing_c: float, hour: float) -> float:
    """The day's outdoor temperature: ``mean_c`` +- ``swing_c``, warmest at 15:00."""
    return mean_c + swing_c * math.cos(2.0 * math.pi * (hour - 15.0) / 24.0)


def outdoor_humidity(mean_c: float, rh_pct: float) -> float:
    """Outdoor water vapour, g/m3: ``rh_pct`` at the day's mean temperature, held all day (one dew point)."""
    return rh_pct / 100.0 * float(saturation_g_m3(mean_c))

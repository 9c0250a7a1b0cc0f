"""The conventional floor: the same day, people, weather and sun, run the way a building runs without the gateway.

The report's baseline for every load is this floor, simulated beside the gateway's (docs/simulator.md,
"The conventional floor"):

- luminaires at full output through opening hours (their drivers' standby draw otherwise), no desk lamps;
- each AHU at its design airflow through opening hours, as a BMS time schedule runs it, and at its
  minimum outside them; the design airflow is EN 16798-1 category II for every seat taken
  (:func:`simulator.world.hvac.design_air_changes`);
- the scenario's fixed heating and cooling setpoints through opening hours, night setback outside
  (:func:`simulator.world.hvac.bms_setpoints`);
- seats as a floor without the gateway has them (``seats``, a
  :class:`~simulator.world.seating.SeatFloor` of its own with the same patrons): nobody is shown
  where a seat is free, so everyone walks the floor looking for one, and nobody is dispatched to a
  ghost seat, so belongings hold it until their owner is back or the closing sweep.

Its air, heat and plant are a second :class:`~simulator.world.air.ZoneClimate` with its own
seated people, so its CO2, its temperatures and its comfort come out of the same physics as the
gateway's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from edge_agent.config import SiteConfig
from simulator.world import hvac
from simulator.world.air import ZoneClimate
from simulator.world.envelope import Envelope

if TYPE_CHECKING:
    from simulator.world.seating import SeatFloor

FloatArray = npt.NDArray[np.float64]


class ConventionalFloor:
    """The baseline's climate, its lighting heat and its seats; stepped by the world with the gateway's floor."""

    seats: SeatFloor  # given by the world once the day's patrons are drawn

    def __init__(self, cfg: SiteConfig, zone_area: FloatArray, envelope: Envelope, lum_zone: npt.NDArray[np.int64],
                 lum_watts: FloatArray, standby_fraction: float, start_temp_c: float, outdoor_g_m3: float) -> None:
        self.climate = ZoneClimate(cfg, zone_area, envelope, start_temp_c, outdoor_g_m3)
        self.design_level = np.array([
            (g.design_ach - g.min_ach) / (g.max_ach - g.min_ach) if g.max_ach > g.min_ach else 0.0
            for g in self.climate.groups])
        mine = lum_zone >= 0
        self.lum_heat_full = np.bincount(lum_zone[mine], weights=lum_watts[mine], minlength=len(zone_area))
        self.standby_fraction = standby_fraction
        self.lum_watts_total = float(lum_watts.sum())

    def step(self, dt: float, open_now: bool, people: FloatArray, solar_w: FloatArray, outdoor_c: float,
             outdoor_g_m3: float, heating_c: float, cooling_c: float) -> None:
        """Advance the conventional floor by ``dt`` seconds on its schedule."""
        lights = self.lum_heat_full * (1.0 if open_now else self.standby_fraction)
        levels = self.design_level if open_now else np.zeros(len(self.design_level))
        heat, cool = hvac.bms_setpoints(open_now, heating_c, cooling_c)
        n = len(people)
        self.climate.step(dt, people, levels, lights + solar_w, outdoor_c, outdoor_g_m3,
                          np.full(n, heat), np.full(n, cool))

    def lighting_j(self, lit_s: float, dark_s: float) -> float:
        """Every luminaire at full for ``lit_s`` seconds of opening hours, at standby for ``dark_s``."""
        return self.lum_watts_total * lit_s + self.lum_watts_total * self.standby_fraction * dark_s

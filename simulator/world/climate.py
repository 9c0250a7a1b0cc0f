"""Air, heat and energy every 30 s: the gateway's floor and the conventional one, side by side.

Functions of the :class:`~simulator.world.world.World` (``w``) and the event time ``t``, like
:mod:`simulator.world.physics`. The gateway's floor reads what the daemon asked of each AHU (a
ventilation level and, where wired, a heating and a cooling setpoint); the conventional floor
follows its fixed schedule (:mod:`simulator.world.baseline`). Both see the same weather and
sun; each has its own seated people. Zone temperature, humidity and CO2 of the gateway's floor go
to the simulated sensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from simulator.world import flow, hvac
from simulator.world.air import outdoor_humidity, outdoor_temperature
from simulator.world.metrics import Need
from simulator.world.physics import CO2_LIMIT_PPM, FIDGET_INTERVAL_S, STANDBY_FRACTION, VENT_ABOVE_MIN, start_polling

if TYPE_CHECKING:
    from simulator.world.world import World

FloatArray = npt.NDArray[np.float64]

# EN 16798-1 category II design limits for sedentary spaces: heated to at least 20 C, cooled to at most 26 C.
COMFORT_BAND_C = (20.0, 26.0)


def setpoints(w: World, open_now: bool) -> tuple[FloatArray, FloatArray]:
    """Heating and cooling setpoint of every zone: its AHU's requests, else the BMS's own schedule."""
    head = w.scenario.scenario
    own = hvac.bms_setpoints(open_now, head.heating_setpoint_c, head.cooling_setpoint_c)
    n = len(w.zone_people)
    heating, cooling = np.full(n, own[0]), np.full(n, own[1])
    for group in w.air.groups:
        if group.actuator is None:
            continue
        asked = w.binding.setpoints(group.actuator)
        heat, cool = (hvac.from_volts_reading(x) for x in asked)
        h = own[0] if heat is None else heat
        c = own[1] if cool is None else cool
        heating[group.zones], cooling[group.zones] = h, max(c, h)  # crossed requests: the BMS holds one value
    return heating, cooling


def zone_heat_w(w: World) -> FloatArray:
    """Electric lighting's heat in every zone, W: luminaires (standby included) and desk lamps."""
    n = len(w.zone_people)
    mine = w.lum_zone >= 0
    lum = w.lum_watts * np.where(w.lum_level > 0.0, w.lum_level, STANDBY_FRACTION)
    heat = np.bincount(w.lum_zone[mine], weights=lum[mine], minlength=n).astype(float)
    heat += np.bincount(w.plan.seat_zone, weights=w.lamp_watts * w.lamp_level, minlength=n)
    return heat


def air_step(w: World, t: float) -> None:
    """Step both floors' air and heat; push the environment to the sensors; CO2 needs; PIR fidgets."""
    head = w.scenario.scenario
    dt = t - w.last["physics"]
    w.last["physics"] = t
    levels = np.array([w.binding.ventilation(g.actuator) if g.actuator else 0.0 for g in w.air.groups])
    w.vent_level = levels
    wall = w.wall(t)
    outdoor = outdoor_temperature(head.outdoor_temp_c, head.outdoor_swing_c, wall.hour + wall.minute / 60.0)
    vapour = outdoor_humidity(head.outdoor_temp_c, head.outdoor_rh_pct)
    if dt > 0:
        # Conditions of the interval just ended: the setpoints and schedule as they were at its start.
        was_open = w.is_open(t - dt)
        solar = w.envelope.solar_w(*w.sun)
        heating, cooling = setpoints(w, was_open)
        w.air.step(dt, w.zone_people, levels, zone_heat_w(w) + solar, outdoor, vapour, heating, cooling)
        w.conventional.step(dt, was_open, w.conventional.seats.zone_people, solar, outdoor, vapour,
                            head.heating_setpoint_c, head.cooling_setpoint_c)
    rh = w.air.rh
    for sensor, zone, kind in w.env_sensors:
        co2 = float(w.air.co2[zone]) if kind == "scd41" else None
        w.binding.set_environment(sensor, float(w.air.temp[zone]), float(rh[zone]), co2)
    for g, group in enumerate(w.air.groups):
        peak = float(w.air.co2[group.zones].max())
        before = float(w.co2_prev_max[g])
        if before < CO2_LIMIT_PPM <= peak and ("air", g) not in w.needs and levels[g] <= VENT_ABOVE_MIN:
            crossed = t - dt * (peak - CO2_LIMIT_PPM) / max(peak - before, 1e-9) if dt > 0 else t
            w.needs["air", g] = Need("air", g, crossed)
            start_polling(w, t)
        w.co2_prev_max[g] = peak
    flow.fidget(w, t, 30.0, FIDGET_INTERVAL_S)


def sample_comfort(w: World, t: float) -> None:
    """Once a minute: occupied zones outside the comfort band, and CO2 over the limit, on both floors."""
    s = w.score
    low, high = COMFORT_BAND_C
    for people, temps, out in ((w.zone_people, w.air.temp, s.comfort_out_minutes),
                               (w.conventional.seats.zone_people, w.conventional.climate.temp,
                                s.baseline_comfort_out_minutes)):
        out += ((people > 0) & ((temps < low) | (temps > high))).astype(np.int64)
    s.co2_over_minutes += int((w.air.co2 > CO2_LIMIT_PPM).sum())
    s.baseline_co2_over_minutes += int((w.conventional.climate.co2 > CO2_LIMIT_PPM).sum())

"""The building's plant as the world runs it: air-handling units, zone heating and cooling, the BMS.

Each HVAC group of the floor config is one air-handling unit (AHU): a variable-speed fan pair
moving outdoor air through a heat-recovery exchanger and a coil that brings it to the supply
temperature. Each zone has a terminal (radiator or fan coil) that heats or cools it to keep its
temperature between a heating and a cooling setpoint. Heat pumps make the heat and the cold, so
the electricity is the thermal energy over a coefficient of performance. Every value and its
source is in docs/simulator.md ("Heat, air and energy").

The BMS takes the gateway's requests: a ventilation level (0..1 of the AHU's range) and, on
their own 0-10 V inputs, a heating and a cooling setpoint. Where the gateway sends no setpoint
(a 0 V input: not wired, not yet commanded, a dead gateway) the BMS follows its own schedule,
which is also the conventional floor of the report's baseline (:func:`bms_setpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

AIR_J_M3K = 1.2 * 1005.0  # volumetric heat capacity of air
LATENT_J_G = 2450.0  # heat of condensation of water vapour
SUPPLY_C = 18.0  # AHU supply air: 2-4 K below the room, as mixing ventilation delivers it
HEAT_RECOVERY = 0.75  # sensible effectiveness; EU ecodesign 1253/2014 asks >= 0.73 of non-residential units
HEATING_COP = 3.0  # air-to-water heat pump, seasonal
COOLING_COP = 3.5  # chilled-water plant with pumps, seasonal
TERMINAL_W_M2 = 50.0  # heating and cooling capacity of a zone's terminals per m2 of floor
CAPACITY_J_M2K = 110_000.0  # effective heat capacity per m2 of floor: EN ISO 13790 table 12, "light"
# Part-load power of a variable-speed AHU fan (fraction of full-flow power against fraction of full
# flow): ASHRAE 90.1 appendix G, table G3.1.3.15, method 2. Duct static pressure is held, so power
# falls more slowly than the cube of the flow the fan laws give.
FAN_CURVE = (0.0013, 0.1470, 0.9506, -0.0998)
# Design outdoor air for the conventional floor: EN 16798-1 category II, sedentary occupants:
# 7 L/s per person for their emissions plus 0.7 L/s per m2 for a low-polluting building's own.
DESIGN_LPS_PER_PERSON = 7.0
DESIGN_LPS_PER_M2 = 0.7
NIGHT_SETPOINTS = (16.0, 28.0)  # the BMS's unoccupied heating / cooling setpoints
SETPOINT_VOLTS_FULL_SCALE_C = 40.0  # the BMS's setpoint inputs: 0-10 V is 0-40 C
NO_SETPOINT_BELOW_C = 5.0  # an input reading below this is "no request" (0 V)


def fan_watts(watts_at_full: float, flow_fraction: float) -> float:
    """Electric power of an AHU fan at a fraction of its full airflow (:data:`FAN_CURVE`)."""
    x = min(1.0, max(0.0, flow_fraction))
    a, b, c, d = FAN_CURVE
    return watts_at_full * max(0.0, a + b * x + c * x * x + d * x * x * x)


@dataclass(frozen=True)
class Coil:
    """Thermal power of an AHU's coil for one airflow: heating or cooling (sensible + latent), W."""

    heating_w: float = 0.0
    cooling_w: float = 0.0


def ahu_coil(q_m3s: float, outdoor_c: float, outdoor_g_m3: float, extract_c: float,
             saturation_g_m3_at_supply: float) -> Coil:
    """Bring ``q_m3s`` of outdoor air to :data:`SUPPLY_C`, using heat recovery from the extract air first.

    The exchanger is modulated (bypassed in part) to reach the supply temperature when it can, so
    it never overshoots; the coil makes up the rest. Cooling below the dew point also condenses
    water: that latent heat is the coil's too. The exchanger moves no moisture.
    """
    if q_m3s <= 0.0:
        return Coil()
    if outdoor_c < SUPPLY_C:
        recovered = outdoor_c + HEAT_RECOVERY * max(0.0, extract_c - outdoor_c)
        return Coil(heating_w=AIR_J_M3K * q_m3s * max(0.0, SUPPLY_C - recovered))
    if outdoor_c > SUPPLY_C:
        recovered = outdoor_c - HEAT_RECOVERY * max(0.0, outdoor_c - extract_c)
        sensible = AIR_J_M3K * q_m3s * max(0.0, recovered - SUPPLY_C)
        latent = LATENT_J_G * q_m3s * max(0.0, outdoor_g_m3 - saturation_g_m3_at_supply)
        return Coil(cooling_w=sensible + latent)
    return Coil()


def electric_w(heating_w: float | FloatArray, cooling_w: float | FloatArray) -> FloatArray:
    """Electricity of the heat pumps for a thermal heating and cooling power."""
    return np.asarray(np.asarray(heating_w) / HEATING_COP + np.asarray(cooling_w) / COOLING_COP, dtype=float)


def design_air_changes(seats: int, area_m2: float, volume_m3: float, min_ach: float, max_ach: float) -> float:
    """Air changes per hour a designer gives a space for all its seats taken (EN 16798-1 cat. II),
    within what the AHU can do."""
    lps = DESIGN_LPS_PER_PERSON * seats + DESIGN_LPS_PER_M2 * area_m2
    return float(np.clip(lps * 3.6 / max(volume_m3, 1e-9), min_ach, max_ach))


def bms_setpoints(open_now: bool, heating_c: float, cooling_c: float) -> tuple[float, float]:
    """The BMS's own schedule: the fixed setpoints during opening hours, night setback otherwise."""
    return (heating_c, cooling_c) if open_now else NIGHT_SETPOINTS


def from_volts_reading(celsius: float | None) -> float | None:
    """A setpoint input's reading, or None when it carries no request (0 V: the BMS's own schedule)."""
    return None if celsius is None or celsius < NO_SETPOINT_BELOW_C else celsius

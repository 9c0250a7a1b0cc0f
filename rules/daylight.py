"""Daylight harvesting: the closed-loop step that holds a target illuminance with the least light.

The loop is deliberately simple, because the plant is: illuminance on a desk is daylight plus a
roughly linear contribution from the luminaires, ``lux = daylight + level * lux_at_full``. Each
evaluation moves the level by the error divided by an *estimate* of ``lux_at_full``::

    new_level = clamp(level + (target - measured) / lux_at_full_estimate, min_level, max_level)

With a perfect estimate one step lands on target; with an estimate ``k`` times the true value the
error shrinks by ``|1 - 1/k|`` per step, so it converges for any ``k > 0.5``. A deadband around the
target stops the level from hunting on sensor noise (and saves commands to the dimmers).

Dimming can be limited to ``max_step_down`` per evaluation while raising is not: luminaires
overlap, so one dimming for its own seats takes light from seats its neighbours answer for, and
they can only make up for it at the next evaluation. Small steps down keep that dip within the
margin above the goal; steps up stay whole, because a dark desk should not wait (fast up, slow
down, as in lighting-control practice).
"""

from __future__ import annotations


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def harvest_level(
    level: float,
    measured: float,
    target: float,
    *,
    lux_at_full: float,
    deadband_lux: float = 25.0,
    min_level: float = 0.0,
    max_level: float = 1.0,
    max_step_down: float = 1.0,
) -> float:
    """The next dimming level for one luminaire group, rounded to 0.001 to keep commands stable."""
    if abs(target - measured) <= deadband_lux:
        return round(clamp(level, min_level, max_level), 3)
    step = max((target - measured) / lux_at_full, -max_step_down)
    return round(clamp(level + step, min_level, max_level), 3)

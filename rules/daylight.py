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

:func:`daylight_plan` applies the step to a zone's luminaires one after the other, each seeing
what the steps before it add at its seats (the light model's gains), so overlapping footprints do
not make up the same shortfall twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from rules.actions import DaylightAction
from rules.conditions import Subject, measure_value
from rules.state import SeatStatus


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


# Seats someone may walk to (or back to) next: held at the ready level by ``ready_fraction``.
READY_STATUSES = (SeatStatus.FREE, SeatStatus.AWAY, SeatStatus.GHOST)


def daylight_plan(action: DaylightAction, s: Subject) -> dict[str, tuple[float, str]]:
    """The zone's luminaires one after the other, each seeing the steps planned before it.

    Footprints overlap: a desk gets about half its electric light from its own luminaire and the
    rest from the neighbours. Were every luminaire to correct its own desks' error alone, a
    change of daylight (which every desk feels at once) would be corrected several times over and
    the levels would ring from one evaluation to the next. Planned in turn, with the light model's
    gains (``Topology.light_gain``), a luminaire only makes up what the steps before it did not;
    and its step is sized by its own gain at the desk, so a newcomer's desk lands in one step.
    """
    moved: dict[str, float] = {}
    plan: dict[str, tuple[float, str]] = {}
    for lum in s.state.topology.zone_lights.get(s.zone.id, ()):
        plan[lum] = _step(action, lum, s, moved)
        moved[lum] = plan[lum][0] - s.state.levels.get(lum, 0.0)
    return plan


def _step(action: DaylightAction, lum: str, s: Subject, moved: Mapping[str, float]) -> tuple[float, str]:
    """One luminaire's harvesting step, for the seat it lights that is furthest below its goal.

    An occupied seat's goal is the zone's target plus ``margin_lux``; with ``ready_fraction`` a
    seat nobody sits at has ``ready_fraction`` of the target (plus the margin) as its goal. The
    luminaire moves by the largest shortfall (or, when every seat has light to spare, by the
    smallest surplus), so no seat it lights ends up below its goal.
    """
    state, zone = s.state, s.zone
    target = zone.target_lux
    goal = target + action.margin_lux
    ready = action.ready_fraction * target + action.margin_lux
    gains = state.topology.light_gain
    shortfall: list[tuple[float, str]] = []
    # A luminaire that did not move adds nothing: its terms are left out of the sums (adding a
    # zero changes no sum), which saves most of them on a pass where few luminaires move.
    moving = [(other, step) for other, step in moved.items() if step != 0.0]
    seats, occupied = state.seats, SeatStatus.OCCUPIED
    for sid in state.topology.light_seats.get(lum, ()):
        st = seats.get(sid)
        if st is None or st.lux is None:
            continue
        if moving:
            here = gains.get(sid, {})
            lux = st.lux + sum(here.get(other, 0.0) * step for other, step in moving)
        else:
            lux = st.lux + 0  # what the sum over no luminaire adds (0), as above
        if st.status == occupied:
            shortfall.append((goal - lux, sid))
        elif action.ready_fraction > 0.0 and st.status in READY_STATUSES:
            shortfall.append((ready - lux, sid))
    level = state.levels.get(lum, 0.0)
    lux_at_full = action.lux_at_full
    if shortfall:
        worst, seat = max(shortfall, key=lambda x: x[0])
        measured: float | None = goal - worst
        where = "seats"
        own = gains.get(seat, {}).get(lum, 0.0)
        if own >= 0.2 * action.lux_at_full:  # the light model knows this desk: size the step by it
            lux_at_full = own
    else:
        measured = measure_value(zone.lux)
        if measured is not None and zone.lux_now is not None:
            measured = zone.lux_now  # the reading carried to the levels now: its own last steps show
        where = "sensor"
    if measured is None:
        return action.max_level, f"lux unknown in {zone.id}: {action.max_level:g}"
    new = harvest_level(level, measured, goal, lux_at_full=lux_at_full,
                        deadband_lux=action.deadband_lux, min_level=action.min_level, max_level=action.max_level,
                        max_step_down=action.max_step_down)
    return new, f"daylight {zone.id} ({where}): {measured:.0f}/{goal:.0f} lux, {level:g} -> {new:g}"

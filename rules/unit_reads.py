"""What one rule's units read, and until when an answer that reads the clock stays good.

Why a module of its own: :mod:`rules.incremental` keeps a unit's outcome between passes and
redoes it only when something it read changed. Deciding *what* a rule reads (from its condition
tree's leaves and its actions) and *when* a clock test could next change its answer is analysis
of the rule, done once per rule set, with no state of its own; the evaluator's bookkeeping
between passes (units, candidates, winners, the expiry heap) is the other half. Keeping the two
apart lets each be read on its own: a new kind of test or action is taught here (or it is
redone on every pass, which is always correct), and the evaluator does not change.

A unit reads: state-wide names (opening, day type, wall time, overrides), fields of its zone and
of its seat, the preferences of the patron its seat holds, the levels of its zone's outputs (and,
for daylight harvesting, the status and lux of every seat its luminaires light), and the clock.
The clock is read only through thresholds (``empty_s below 300``, a consenting tag seated for
30 s), so :func:`expiry` gives the first time one of them could be crossed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from rules.actions import (
    Action,
    AlertAction,
    DaylightAction,
    DeskHeightAction,
    DeskLampAction,
    IndicatorAction,
    LightAction,
    ReleaseSeatAction,
    SetpointAction,
    VentilationAction,
)
from rules.conditions import (
    ConsentTest,
    DayTypeTest,
    Leaf,
    MetricTest,
    MotionTest,
    Node,
    OpenTest,
    OverriddenTest,
    StatusTest,
    Subject,
    TimeTest,
    UnhealthyTest,
    WeekdaysTest,
    seat_light,
)
from rules.model import Rule
from rules.state import FloorState, SeatView, ZoneView

# A clock threshold is treated as crossed this long before it is due, so that the rounding of
# ``t - since`` against ``since + threshold`` can never keep a stale outcome: the unit is redone.
MARGIN_S = 1e-3
_ZONE_FIELD_OF = {"people": ("people",), "lux": ("lux",), "temperature": ("temperature",),
                  "humidity": ("humidity",), "co2": ("co2",), "occupancy": ("occupied", "away", "seats_total"),
                  "empty_s": ("empty_since",), "motion_age_s": ("last_motion",), "forecast": ("forecast",),
                  "occupied": ("occupied",), "free": ("free",), "away": ("away",), "ghost": ("ghost",),
                  "unknown": ("unknown",), "seats_total": ("seats_total",)}
_SEAT_FIELD_OF = {"seat_lux": ("lux",), "seat_lux_ratio": ("lux",), "status_s": ("since",),
                  "tag_s": ("tag_since", "consented_tag")}
_TIMED_METRICS = ("empty_s", "motion_age_s", "status_s", "tag_s")
_BANDED_METRICS = ("seat_lux", "seat_lux_ratio")  # read by a unit as sides of thresholds (Reads.bands)


@dataclass
class Reads:
    """What every unit of one rule reads: state-wide names, zone fields, seat fields, the clock."""

    state: set[str] = field(default_factory=set)
    zone: set[str] = field(default_factory=set)
    seat: set[str] = field(default_factory=lambda: {"zone"})
    clock: bool = False
    always: bool = False
    # Read around the zone, as levels of its outputs: "lights" (its luminaires' levels), "lit" (those
    # and the status and lux of every seat they light: daylight harvesting), "hvac" (its AHU's level).
    around: set[str] = field(default_factory=set)
    prefs: bool = False  # the preferences of the patron whose tag the seat holds
    # Tests of a seat's lux (seat_lux, seat_lux_ratio): they read it only through their thresholds,
    # so a unit reads which side of each threshold the value is on (:func:`seat_signature`), not
    # the value itself. A seat's lux moves on most passes (every change of light or daylight),
    # while the side it is on rarely does.
    bands: list[MetricTest] = field(default_factory=list)


def reads_of(rule: Rule) -> Reads:
    """The inputs a rule's units read, from its condition's leaves and its actions."""
    r = Reads()
    for leaf in rule.when.leaves() if rule.when is not None else []:
        _leaf_reads(leaf, r)
    for action in rule.then:
        _action_reads(action, r)
    return r


def _leaf_reads(leaf: Leaf, r: Reads) -> None:
    if isinstance(leaf, MetricTest):
        m = leaf.metric
        if m == "level":
            r.around.add("lights")
        if m == "seat_lux_ratio":
            r.zone.add("target_lux")
        r.zone.update(_ZONE_FIELD_OF.get(m, ()))
        if m in _BANDED_METRICS:
            r.bands.append(leaf)
        else:
            r.seat.update(_SEAT_FIELD_OF.get(m, ()))
        r.clock = r.clock or m in _TIMED_METRICS
        if m not in _ZONE_FIELD_OF and m not in _SEAT_FIELD_OF and m != "level":
            r.always = True
    elif isinstance(leaf, StatusTest):
        r.seat.add("status")
    elif isinstance(leaf, OpenTest):
        r.state.add("open_now")
    elif isinstance(leaf, DayTypeTest):
        r.state.add("day_type")
    elif isinstance(leaf, TimeTest | WeekdaysTest):
        r.state.add("wall")
    elif isinstance(leaf, MotionTest):
        r.zone.add("last_motion")
        r.clock = True
    elif isinstance(leaf, OverriddenTest):
        r.state.add("overrides")
        r.seat.add("desk")
    elif isinstance(leaf, ConsentTest):
        r.prefs = True
        r.seat.update(("consented_tag", "tag_since"))
        r.clock = True
    elif isinstance(leaf, UnhealthyTest):
        r.zone.add("occupancy_healthy" if leaf.unhealthy == "occupancy" else leaf.unhealthy)
    else:
        r.always = True


def _action_reads(action: Action, r: Reads) -> None:
    if isinstance(action, IndicatorAction):
        r.seat.update(("status", "desk"))
    elif isinstance(action, DeskLampAction | DeskHeightAction):
        r.seat.add("desk")
        if action.preference:  # the seated patron's own settings; otherwise the action's fixed value
            r.seat.add("consented_tag")
            r.prefs = True
    elif isinstance(action, VentilationAction):
        r.zone.add("co2")
        r.around.add("hvac")
    elif isinstance(action, LightAction | SetpointAction | AlertAction | ReleaseSeatAction):
        pass  # their intents depend on the wiring, the rule set and the subject's id only
    elif isinstance(action, DaylightAction):
        r.zone.update(("lux", "lux_now", "target_lux"))
        r.around.add("lit")
    else:  # an action this module does not know: redo every pass
        r.always = True


def fixed_intents(rule: Rule) -> bool:
    """True when every action's intents depend on the wiring, the rule set and the subject's id
    only (lights at a level or scene, setpoints, alerts, a seat's release): a unit's intents are
    then the same each time it holds, for as long as the evaluator keeps its rule set and wiring."""
    return all(type(a) in (LightAction, SetpointAction, AlertAction, ReleaseSeatAction) for a in rule.then)


def getter(names: set[str]) -> Callable[[Any], Any]:
    """A function returning the named fields as a tuple (in a fixed order)."""
    ordered = sorted(names)
    if not ordered:
        return lambda _obj: ()
    get = attrgetter(*ordered)
    if len(ordered) == 1:
        return lambda obj: (get(obj),)
    return get


def seat_signature(reads: Reads) -> Callable[[FloorState, ZoneView, SeatView], Any]:
    """What a seat rule's unit reads of its seat: the seat fields, and for each banded test the
    side of each of its thresholds its value is on (None when unknown).

    A banded test's answer is a function of exactly these comparisons (and of its latch, which the
    evaluator checks apart): :func:`rules.engine._leaf` compares the value with ``above``,
    ``below``, ``release_below`` and ``release_above`` and nothing else, and the value is worked
    out here by :func:`rules.conditions.seat_light`, as :func:`rules.conditions.metric_value`
    works it out.
    """
    get = getter(reads.seat)
    if not reads.bands:
        return lambda _state, _zone, seat: get(seat)
    leaves = tuple(reads.bands)

    def signature(state: FloorState, zone: ZoneView, seat: SeatView) -> Any:
        sides = []
        for leaf in leaves:
            v = seat_light(leaf.metric, zone, seat)
            sides.append(None if v is None else (
                leaf.above is not None and v > leaf.above, leaf.below is not None and v < leaf.below,
                leaf.release_below is not None and v >= leaf.release_below,
                leaf.release_above is not None and v <= leaf.release_above))
        return get(seat), tuple(sides)

    return signature


def timed_leaves(node: Node | None) -> list[Leaf]:
    if node is None:
        return []
    return [leaf for leaf in node.leaves()
            if isinstance(leaf, MotionTest | ConsentTest)
            or (isinstance(leaf, MetricTest) and leaf.metric in _TIMED_METRICS)]


def expiry(leaves: list[Leaf], s: Subject, t: float) -> float:
    """The earliest clock time at which a clock test of the unit could change its answer.

    Each such test compares ``t - base`` (an age) with fixed thresholds; until ``t`` reaches the
    first ``base + threshold`` still ahead (less :data:`MARGIN_S`), every answer stays as it is.
    """
    first = math.inf
    zone, seat, state = s.zone, s.seat, s.state
    for leaf in leaves:
        base: float | None
        thresholds: tuple[float, ...]
        if isinstance(leaf, MotionTest):
            base, thresholds = zone.last_motion, (leaf.motion_within_s,)
        elif isinstance(leaf, ConsentTest):
            ok = (seat is not None and seat.consented_tag is not None and seat.tag_since is not None
                  and seat.consented_tag in state.preferences)
            base, thresholds = (seat.tag_since if ok and seat is not None else None), (leaf.consented_for_s,)
        else:
            assert isinstance(leaf, MetricTest)
            m = leaf.metric
            if m == "empty_s":
                base = zone.empty_since
            elif m == "motion_age_s":
                base = zone.last_motion
            elif m == "status_s":
                base = seat.since if seat is not None else None
            else:  # tag_s
                base = (seat.tag_since if seat is not None and seat.consented_tag is not None else None)
            thresholds = tuple(x for x in (leaf.above, leaf.below, leaf.release_below, leaf.release_above)
                               if x is not None)
        if base is None:
            continue  # the value does not move with the clock (unknown, or a constant 0)
        for x in thresholds:
            due = base + x
            if due >= t - MARGIN_S:
                first = min(first, due - MARGIN_S)
    return first


def latch_paths(node: Node | None) -> tuple[str, ...]:
    if node is None:
        return ()
    if node.leaf is not None:
        leaf = node.leaf
        latching = isinstance(leaf, MetricTest) and (leaf.release_below is not None or leaf.release_above is not None)
        return (node.path,) if latching else ()
    return tuple(p for c in node.children for p in latch_paths(c))

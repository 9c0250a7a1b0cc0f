"""The pure rule engine: ``evaluate(rule_set, state, memory)`` returns intents and new memory.

No I/O, no clock: time comes from ``state.t`` (monotonic, for ``for_s`` and ages) and
``state.wall`` (local time, for schedules). :class:`RuleMemory` carries what must survive between
evaluations (when each condition started holding, which hysteresis latches are on) and is never
mutated, so the same inputs always give the same outputs, and a recorded trace replays exactly.

Two safety nets sit outside the rule file and cannot be edited away:

- the *fail-safe* rule: during opening hours, a zone whose occupancy sensing is unhealthy, or
  whose lux sensing is unhealthy while people are there, gets its lights at the safe level;
- the *never-dark* guard: in a zone where someone is sitting and the measured light is low or
  unknown, no luminaire is commanded below ``occupied_min_level``.

Conflicts (two intents for one actuator and kind) are resolved here, by priority, then rule order,
then the higher value (more light, more air), so the arbiter sees at most one per actuator+kind.
An HVAC output serves several zones: each zone's rules are resolved that way for the zone, then
the zones' choices are combined, at the highest priority among them, by what the most demanding
zone needs (the most air, the highest heating and the lowest cooling setpoint).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from drivers.ports import IndicatorColour
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
    WEEKDAYS,
    ConsentTest,
    DayTypeTest,
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
    measure_value,
    metric_value,
)
from rules.daylight import daylight_plan
from rules.model import Rule, RuleSet, Settings
from rules.state import FloorState, Intent, IntentKind, Priority, Quality, SeatStatus

FAILSAFE_ID = "builtin-failsafe-lights"
NEVER_DARK_ID = "builtin-never-dark"
INDICATOR = {
    SeatStatus.FREE: ("free", IndicatorColour.FREE),
    SeatStatus.OCCUPIED: ("occupied", IndicatorColour.OCCUPIED),
    SeatStatus.AWAY: ("occupied", IndicatorColour.OCCUPIED),  # belongings hold the seat
    SeatStatus.GHOST: ("ghost", IndicatorColour.GHOST),
    SeatStatus.UNKNOWN: ("off", IndicatorColour.OFF),
}
SHOW = {"free": IndicatorColour.FREE, "occupied": IndicatorColour.OCCUPIED,
        "ghost": IndicatorColour.GHOST, "off": IndicatorColour.OFF}


@dataclass(frozen=True, slots=True)
class RuleMemory:
    """What the engine remembers between evaluations; replaced, never mutated.

    ``since`` maps ``rule|subject`` to the ``t`` its condition started holding (only rules with a
    ``for_s``); ``latched`` holds ``rule|subject|path`` of hysteresis tests currently on. Only
    keys for current rules and subjects are kept, so memory cannot grow over a week.
    """

    since: Mapping[str, float] = field(default_factory=dict)
    latched: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Evaluation:
    intents: list[Intent]
    memory: RuleMemory
    fired: list[str]


def evaluate(rule_set: RuleSet, state: FloorState, memory: RuleMemory | None = None) -> Evaluation:
    """Evaluate every rule over every subject; at most one intent per (target, kind)."""
    memory = memory or RuleMemory()
    since: dict[str, float] = {}
    latched: set[str] = set()
    candidates: list[tuple[tuple[int, int, float], str, Intent]] = []
    fired: list[str] = []
    subjects = _Subjects(state)
    for rule in (failsafe_rule(rule_set.settings.safe_level), *rule_set.rules):
        if not rule.then:
            continue
        rule_fired = False
        when, for_s, order = rule.when, rule.for_s, rule.order
        rank = -int(rule.priority)  # every intent of a rule carries the rule's priority
        keyed = for_s > 0 or _latching(when)  # the key names a for_s timer or a latch; else it is never read
        for subject_id, subject in subjects.of(rule):
            key = f"{rule.id}|{subject_id}" if keyed else ""
            if when is not None and not _holds(when, subject, key, memory.latched, latched):
                continue
            if for_s > 0:
                start = memory.since.get(key, state.t)
                since[key] = start
                if state.t - start < for_s:
                    continue
            rule_fired = True
            for action in rule.then:
                for intent in _intents(action, rule, subject, rule_set):
                    candidates.append(((rank, order, -(intent.value or 0.0)), subject_id, intent))
        if rule_fired:
            fired.append(rule.id)
    intents = _never_dark(_resolve(candidates), state, rule_set.settings)
    return Evaluation(intents, RuleMemory(since, frozenset(latched)), fired)


_LATCHING: dict[int, tuple[Node, bool]] = {}  # id(tree) -> (tree, answer); trees are not hashable


def _latching(node: Node | None) -> bool:
    """Whether a condition tree holds a hysteresis test (whose latch is keyed by rule and subject)."""
    if node is None:
        return False
    known = _LATCHING.get(id(node))
    if known is not None and known[0] is node:
        return known[1]
    answer = any(isinstance(leaf, MetricTest) and (leaf.release_below is not None or leaf.release_above is not None)
                 for leaf in node.leaves())
    if len(_LATCHING) > 1024:  # rule sets are replaced whole on reload: forget the old trees
        _LATCHING.clear()
    _LATCHING[id(node)] = (node, answer)
    return answer


@lru_cache(maxsize=8)
def failsafe_rule(safe_level: float) -> Rule:
    """The built-in SAFETY rule: unhealthy sensing during opening hours means lights at the safe level."""
    people = Node("any", "when.all[1].any[1].all[1]", (
        Node("leaf", "p", leaf=MetricTest(metric="people", above=0)),
        Node("leaf", "o", leaf=MetricTest(metric="occupied", above=0)),
    ))
    unhealthy = Node("any", "when.all[1]", (
        Node("leaf", "occ", leaf=UnhealthyTest(unhealthy="occupancy")),
        Node("all", "lux", (Node("leaf", "lux-bad", leaf=UnhealthyTest(unhealthy="lux")), people)),
    ))
    when = Node("all", "when", (Node("leaf", "open", leaf=OpenTest(open=True)), unhealthy))
    action = LightAction(do="light", level=safe_level)
    return Rule(id=FAILSAFE_ID, scope="zone", priority=Priority.SAFETY, when=when, then=(action,), order=-1,
                description="unhealthy sensing during opening hours: lights to the safe level, never off")


class _Subjects:
    """Every zone and seat subject of one state, built once per evaluation and shared by all rules."""

    def __init__(self, state: FloorState) -> None:
        self.zones = [(zid, Subject(state, state.zones[zid])) for zid in sorted(state.zones)]
        self.seats: list[tuple[str, str, Subject]] = []
        for sid in sorted(state.seats):
            seat = state.seats[sid]
            zone = state.zones.get(seat.zone)
            if zone is not None:
                self.seats.append((sid, seat.zone, Subject(state, zone, seat)))

    def of(self, rule: Rule) -> Iterator[tuple[str, Subject]]:
        """The subjects ``rule`` is evaluated over, in id order, filtered by its ``zones``."""
        if rule.scope == "zone":
            return iter([(zid, s) for zid, s in self.zones if not rule.zones or zid in rule.zones])
        return iter([(sid, s) for sid, zid, s in self.seats if not rule.zones or zid in rule.zones])


def _holds(node: Node, s: Subject, key: str, before: frozenset[str], after: set[str]) -> bool:
    """Evaluate a condition tree. Every child is evaluated (no short-circuit) so latches stay current."""
    op = node.op
    if op == "leaf":
        return _leaf(node, s, key, before, after)
    if op == "all":
        result = True
        for c in node.children:
            if not _holds(c, s, key, before, after):
                result = False
        return result
    if op == "any":
        result = False
        for c in node.children:
            if _holds(c, s, key, before, after):
                result = True
        return result
    return not _holds(node.children[0], s, key, before, after)


def _leaf(node: Node, s: Subject, key: str, before: frozenset[str], after: set[str]) -> bool:
    leaf, state = node.leaf, s.state
    if isinstance(leaf, MetricTest):
        value = metric_value(leaf.metric, s, leaf.within_min)
        latching = leaf.release_below is not None or leaf.release_above is not None
        latch = f"{key}|{node.path}" if latching else ""  # only a hysteresis test has a latch
        was = latching and latch in before
        if value is None:  # unknown: a latch keeps its state, a plain test is false
            on = was and (leaf.release_below is not None or leaf.release_above is not None)
        elif leaf.release_below is not None and leaf.above is not None:
            on = value > leaf.above or (was and value >= leaf.release_below)
        elif leaf.release_above is not None and leaf.below is not None:
            on = value < leaf.below or (was and value <= leaf.release_above)
        else:
            on = (leaf.above is None or value > leaf.above) and (leaf.below is None or value < leaf.below)
        if on and (leaf.release_below is not None or leaf.release_above is not None):
            after.add(latch)
        return on
    if isinstance(leaf, StatusTest):
        return s.seat is not None and s.seat.status in leaf.status
    if isinstance(leaf, OpenTest):
        return state.open_now == leaf.open
    if isinstance(leaf, DayTypeTest):
        return state.day_type in leaf.day_type
    if isinstance(leaf, TimeTest):
        return _in_window(state.wall, leaf)
    if isinstance(leaf, WeekdaysTest):
        return WEEKDAYS[state.wall.weekday()] in leaf.weekdays
    if isinstance(leaf, MotionTest):
        age = metric_value("motion_age_s", s, None)
        return age is not None and age <= leaf.motion_within_s
    if isinstance(leaf, OverriddenTest):
        return _overridden(s) == leaf.overridden
    if isinstance(leaf, ConsentTest):
        seat = s.seat
        return (seat is not None and seat.consented_tag is not None and seat.tag_since is not None
                and seat.consented_tag in state.preferences and state.t - seat.tag_since >= leaf.consented_for_s)
    if isinstance(leaf, UnhealthyTest):
        if leaf.unhealthy == "occupancy":
            return not s.zone.occupancy_healthy
        m = getattr(s.zone, leaf.unhealthy)
        return bool(m.quality in (Quality.UNHEALTHY, Quality.STALE) or (m.quality == Quality.GOOD and m.value is None))
    raise AssertionError(f"unhandled test {leaf!r}")


def _in_window(wall: datetime, leaf: TimeTest) -> bool:
    now, (start, end) = wall.time().replace(tzinfo=None), leaf.time
    return start <= now < end if start <= end else (now >= start or now < end)


def _overridden(s: Subject) -> bool:
    ov = s.state.overrides
    if s.zone.id in ov or any(x in ov for x in s.state.topology.zone_lights.get(s.zone.id, ())):
        return True
    return s.seat is not None and (s.seat.id in ov or (s.seat.desk is not None and s.seat.desk in ov))


def _intents(action: Action, rule: Rule, s: Subject, rs: RuleSet) -> list[Intent]:
    """The intents one action asks for on one subject (none when its target is not wired)."""
    # Runs for every seat and rule on every evaluation (hundreds per pass): the action's kind is
    # looked up once per class, and intents are created positionally.
    kind = _ACTION_KIND.get(type(action))
    if kind is None:
        kind = _ACTION_KIND[type(action)] = _action_kind(action)
    state = s.state
    topo = state.topology
    seat = s.seat
    priority, rule_id, ramp_s = rule.priority, rule.id, action.ramp_s
    because = f"{rule_id} on {seat.id if seat is not None else s.zone.id}"

    if kind is _Kind.INDICATOR:
        if seat is None:
            return []
        desk = topo.seat_desk.get(seat.id) or seat.desk
        if desk is None:
            return []
        show = action.show  # type: ignore[attr-defined]
        text, code = INDICATOR[seat.status] if show == "status" else (show, SHOW[show])
        return [_desk_intent(desk, IntentKind.INDICATOR, float(code), text, priority, rule_id, because, ramp_s)]
    if kind is _Kind.DESK_LAMP or kind is _Kind.DESK_HEIGHT:
        if seat is None:
            return []
        desk = topo.seat_desk.get(seat.id) or seat.desk
        if desk is None:
            return []
        pref = state.preferences.get(seat.consented_tag) if seat.consented_tag is not None else None
        if kind is _Kind.DESK_LAMP:
            lamp_action: DeskLampAction = action  # type: ignore[assignment]
            lamp = lamp_action.level if not lamp_action.preference else (pref.lamp_level if pref else None)
            return [] if lamp is None else [_desk_intent(desk, IntentKind.DESK_LAMP, lamp, None, priority, rule_id,
                                                         because, ramp_s)]
        height_action: DeskHeightAction = action  # type: ignore[assignment]
        height = height_action.mm or height_action.preset
        if height_action.preference:
            height = pref.desk_height_mm if pref else None
        return [] if height is None else [_desk_intent(desk, IntentKind.DESK_HEIGHT, float(height), None, priority,
                                                       rule_id, because, ramp_s)]
    return _zone_intents(action, rule, s, rs, because)


_DESK_INTENTS: dict[tuple[object, ...], Intent] = {}


def _desk_intent(*fields: Any) -> Intent:
    """The desk's intent with these fields: one per desk, rule and value, kept (intents are frozen).

    Every desk's indicator and lamp rules ask for the same thing pass after pass; the intent is
    made once instead of on every pass.
    """
    key = (*fields, type(fields[2]))  # 1 and 1.0 are one key, but not one value
    found = _DESK_INTENTS.get(key)
    if found is None:
        if len(_DESK_INTENTS) > 8192:  # a few per desk and rule; rule sets are replaced whole on reload
            _DESK_INTENTS.clear()
        found = _DESK_INTENTS[key] = Intent(*fields)
    return found


class _Kind(Enum):
    LIGHT = 1
    DAYLIGHT = 2
    VENTILATION = 3
    SETPOINT = 4
    ALERT = 5
    RELEASE_SEAT = 6
    INDICATOR = 7
    DESK_LAMP = 8
    DESK_HEIGHT = 9
    OTHER = 10


_ACTION_KIND: dict[type, _Kind] = {}


def _action_kind(action: Action) -> _Kind:
    for cls, kind in ((LightAction, _Kind.LIGHT), (DaylightAction, _Kind.DAYLIGHT),
                      (VentilationAction, _Kind.VENTILATION), (SetpointAction, _Kind.SETPOINT),
                      (AlertAction, _Kind.ALERT), (ReleaseSeatAction, _Kind.RELEASE_SEAT),
                      (IndicatorAction, _Kind.INDICATOR), (DeskLampAction, _Kind.DESK_LAMP),
                      (DeskHeightAction, _Kind.DESK_HEIGHT)):
        if isinstance(action, cls):
            return kind
    return _Kind.OTHER


def _zone_intents(action: Action, rule: Rule, s: Subject, rs: RuleSet, because: str) -> list[Intent]:
    """The intents of the actions that are not the desk's own (lights, air, alerts, seat release)."""
    topo, state = s.state.topology, s.state
    where = s.seat.id if s.seat is not None else s.zone.id
    priority, rule_id, ramp_s = rule.priority, rule.id, action.ramp_s

    def make(target: str, kind: IntentKind, value: float | None = None, text: str | None = None,
             reason: str = "") -> Intent:
        return Intent(target, kind, value, text, priority, rule_id, reason or because, ramp_s)

    if isinstance(action, LightAction):
        level = action.level if action.level is not None else rs.scenes[action.scene or ""]
        return [make(lum, IntentKind.LIGHT_LEVEL, level) for lum in _luminaires(action, s)]
    if isinstance(action, DaylightAction):
        return [make(lum, IntentKind.LIGHT_LEVEL, value, reason=why)
                for lum, (value, why) in daylight_plan(action, s).items()]
    if isinstance(action, VentilationAction | SetpointAction):
        hvac = topo.zone_hvac.get(s.zone.id)
        if hvac is None:
            return []
        if isinstance(action, VentilationAction):
            co2 = measure_value(s.zone.co2)
            why = f"{rule.id} on {where}" + (f": CO2 {co2:.0f} ppm" if co2 is not None and action.co2_ppm else "")
            return [make(hvac, IntentKind.VENTILATION, action.level_for(co2, state.levels.get(hvac)), reason=why)]
        heating = action.celsius if action.celsius is not None else action.heating_c
        wanted = [(IntentKind.SETPOINT, heating), (IntentKind.COOLING_SETPOINT, action.cooling_c)]
        return [make(hvac, kind, value) for kind, value in wanted if value is not None]
    if isinstance(action, AlertAction):
        text = action.message.format_map({"zone": s.zone.id, "seat": s.seat.id if s.seat else "", "rule": rule.id})
        return [make(s.zone.id, IntentKind.ALERT, text=text)]
    if isinstance(action, ReleaseSeatAction) and s.seat is not None:
        return [make(s.seat.id, IntentKind.RELEASE_SEAT)]
    return []


def _luminaires(action: LightAction, s: Subject) -> tuple[str, ...]:
    if action.luminaires:
        return tuple(action.luminaires)
    topo = s.state.topology
    if s.seat is not None:
        over_seat = tuple(lum for lum, seats in sorted(topo.light_seats.items()) if s.seat.id in seats)
        if over_seat:
            return over_seat
    return tuple(topo.zone_lights.get(s.zone.id, ()))


# Kinds whose output serves several zones (an AHU), and which way is "more demanding": +1 the
# higher value (more air, warmer heating setpoint), -1 the lower (cooler cooling setpoint).
SHARED_KINDS = {IntentKind.VENTILATION: 1.0, IntentKind.SETPOINT: 1.0, IntentKind.COOLING_SETPOINT: -1.0}


def _resolve(candidates: list[tuple[tuple[int, int, float], str, Intent]]) -> list[Intent]:
    """One intent per (target, kind): by priority, rule order, value; shared outputs by zone first."""
    per_subject: dict[tuple[str, IntentKind, str], tuple[tuple[int, int, float], Intent]] = {}
    for rank, subject, intent in candidates:
        k = (intent.target, intent.kind, subject if intent.kind in SHARED_KINDS else "")
        if k not in per_subject or rank < per_subject[k][0]:
            per_subject[k] = (rank, intent)
    best: dict[tuple[str, IntentKind], tuple[tuple[float, float, float], Intent]] = {}
    for (target, kind, _), (rank, intent) in per_subject.items():  # one per (target, kind) unless shared
        sign = SHARED_KINDS.get(kind)
        combined = rank if sign is None else (rank[0], -sign * (intent.value or 0.0), rank[1])
        if (target, kind) not in best or combined < best[target, kind][0]:
            best[target, kind] = (combined, intent)
    return [best[k][1] for k in sorted(best)]


NEVER_OFF_LEVEL = 0.15  # occupied zones keep this much on the luminaires over their occupied seats


def _never_off(by_key: MutableMapping[tuple[str, IntentKind], Intent], state: FloorState, zid: str) -> None:
    """An occupied zone never goes fully dark, even when its light sensor says daylight suffices:
    that reading may be stuck or shaded, and a reader must never be left in the dark. The
    luminaires over occupied seats keep at least :data:`NEVER_OFF_LEVEL`."""
    lights = state.topology.zone_lights.get(zid, ())

    def level(lum: str) -> float:
        intent = by_key.get((lum, IntentKind.LIGHT_LEVEL))
        return (intent.value or 0.0) if intent is not None else state.levels.get(lum, 0.0)

    # "Below the floor level everywhere", not just "all off": a loop dimming in small steps would
    # otherwise bounce between a level under the floor and the floor on every evaluation.
    if any(level(lum) >= NEVER_OFF_LEVEL for lum in lights):
        return
    occupied = {sid for sid, seat in state.seats.items()
                if seat.zone == zid and seat.status in (SeatStatus.OCCUPIED, SeatStatus.UNKNOWN)}
    serving = [lum for lum in lights if occupied & set(state.topology.light_seats.get(lum, ()))] or list(lights)
    for lum in serving:
        current = by_key.get((lum, IntentKind.LIGHT_LEVEL))
        if current is not None:
            by_key[(lum, IntentKind.LIGHT_LEVEL)] = replace(current, value=max(current.value or 0.0, NEVER_OFF_LEVEL),
                                                            reason=f"{current.reason}; kept on: {zid} is occupied")
        elif state.levels.get(lum, 0.0) < NEVER_OFF_LEVEL:
            by_key[(lum, IntentKind.LIGHT_LEVEL)] = Intent(
                lum, IntentKind.LIGHT_LEVEL, NEVER_OFF_LEVEL, priority=Priority.SAFETY, rule_id=NEVER_DARK_ID,
                reason=f"{zid} is occupied: never fully dark")


def _unknown_seats_lit(by_key: MutableMapping[tuple[str, IntentKind], Intent], state: FloorState,
                       safe_level: float) -> None:
    """Seats whose sensing failed may be occupied: during opening hours their luminaires go to the
    safe level, even when the rest of the zone looks empty (the fail-safe, seat by seat)."""
    if not state.open_now:
        return
    unknown = {sid for sid, seat in state.seats.items() if seat.status is SeatStatus.UNKNOWN}
    if not unknown:
        return
    for lum, seats in sorted(state.topology.light_seats.items()):
        if unknown & set(seats):
            current = by_key.get((lum, IntentKind.LIGHT_LEVEL))
            if current is None or (current.value or 0.0) < safe_level:
                by_key[(lum, IntentKind.LIGHT_LEVEL)] = Intent(
                    lum, IntentKind.LIGHT_LEVEL, safe_level, priority=Priority.SAFETY, rule_id=FAILSAFE_ID,
                    reason="a seat it lights has failed sensing: safe level")


def _never_dark(intents: list[Intent], state: FloorState, settings: Settings) -> list[Intent]:
    """Raise light intents in occupied, dark zones to at least ``occupied_min_level`` (add missing ones)."""
    by_key = {(i.target, i.kind): i for i in intents}
    guard_lights(by_key, state, settings)
    return [by_key[k] for k in sorted(by_key)]


def guard_lights(by_key: MutableMapping[tuple[str, IntentKind], Intent], state: FloorState, settings: Settings) -> None:
    """The two safety nets over the resolved intents, in place: seats with failed sensing lit at the
    safe level, and occupied dark zones at least at ``occupied_min_level`` (never fully dark)."""
    floor = settings.occupied_min_level
    _unknown_seats_lit(by_key, state, settings.safe_level)
    for zid in sorted(state.zones):
        zone = state.zones[zid]
        people = measure_value(zone.people)
        if not ((people is not None and people > 0) or zone.occupied > 0):
            continue
        lux = measure_value(zone.lux)
        if lux is not None and lux >= zone.target_lux * settings.dark_fraction:
            _never_off(by_key, state, zid)
            continue
        for lum in state.topology.zone_lights.get(zid, ()):
            current = by_key.get((lum, IntentKind.LIGHT_LEVEL))
            if current is not None and (current.value or 0.0) < floor:
                by_key[(lum, IntentKind.LIGHT_LEVEL)] = replace(
                    current, value=floor, reason=f"{current.reason}; raised: {zid} is occupied and dark")
            elif current is None and state.levels.get(lum, 0.0) < floor:
                by_key[(lum, IntentKind.LIGHT_LEVEL)] = Intent(
                    lum, IntentKind.LIGHT_LEVEL, floor, priority=Priority.SAFETY, rule_id=NEVER_DARK_ID,
                    reason=f"{zid} is occupied and dark")

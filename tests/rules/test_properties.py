"""Properties over random floor states: determinism, one intent per actuator+kind, never dark."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rules import RuleMemory, evaluate, load_rules
from rules.state import FloorState, IntentKind, Measure, Preference, Quality, SeatStatus, SeatView, ZoneView
from tests.rules.floors import TOPOLOGY

DEFAULTS = load_rules(None)
measures = st.builds(Measure, st.one_of(st.none(), st.floats(0, 3000, allow_nan=False)), st.sampled_from(Quality))


@st.composite
def zones(draw: st.DrawFn, zid: str, t: float) -> ZoneView:
    occupied = draw(st.integers(0, 2))
    return ZoneView(
        id=zid, people=draw(measures), seats_total=2, free=2 - occupied, occupied=occupied, away=0, ghost=0,
        unknown=0, lux=draw(measures), temperature=draw(measures), humidity=draw(measures), co2=draw(measures),
        occupancy_healthy=draw(st.booleans()),
        last_motion=draw(st.one_of(st.none(), st.floats(0, t))),
        empty_since=draw(st.one_of(st.none(), st.floats(0, t))),
        forecast=draw(st.dictionaries(st.sampled_from([15, 30, 60]), st.floats(0, 40), max_size=3)),
        target_lux=draw(st.sampled_from([300.0, 500.0, 750.0])),
    )


@st.composite
def floor_states(draw: st.DrawFn) -> FloorState:
    t = draw(st.floats(0, 100_000))
    seats = {}
    for sid, zid in (("S1", "z1"), ("S2", "z1"), ("S3", "z2"), ("S4", "z2")):
        tag = draw(st.sampled_from([None, "tag-a", "tag-b"]))
        status, since = draw(st.sampled_from(SeatStatus)), draw(st.floats(0, t))
        lux = draw(st.one_of(st.none(), st.floats(0, 2000)))
        tag_since = None if tag is None else draw(st.floats(0, t))
        seats[sid] = SeatView(sid, zid, status, since, TOPOLOGY.seat_desk[sid], lux, tag, tag_since)
    return FloorState(
        t=t, wall=datetime(2025, 3, 3) + timedelta(minutes=draw(st.integers(0, 7 * 24 * 60))), seats=seats,
        zones={"z1": draw(zones("z1", t)), "z2": draw(zones("z2", t))}, topology=TOPOLOGY,
        levels={lum: draw(st.floats(0, 1)) for lum in ("L1", "L2", "L3")},
        preferences={"tag-a": Preference(720, 0.5)}, open_now=draw(st.booleans()),
        day_type=draw(st.sampled_from(["term", "exam", "holiday"])),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(floor_states(), min_size=1, max_size=4))
def test_evaluation_is_deterministic_and_never_conflicting(states: list[FloorState]) -> None:
    states = sorted(states, key=lambda s: s.t)
    runs = []
    for _ in range(2):
        memory, trail = RuleMemory(), []
        for state in states:
            result = evaluate(DEFAULTS, state, memory)
            memory = result.memory
            trail.append((result.intents, result.fired, memory))
            keys = [(i.target, i.kind) for i in result.intents]
            assert len(keys) == len(set(keys)), keys
            for intent in result.intents:
                if intent.kind in (IntentKind.LIGHT_LEVEL, IntentKind.VENTILATION, IntentKind.DESK_LAMP):
                    assert intent.value is not None and 0.0 <= intent.value <= 1.0
        runs.append(trail)
    assert runs[0] == runs[1]


@settings(max_examples=100, deadline=None)
@given(floor_states())
def test_no_reader_left_in_the_dark(state: FloorState) -> None:
    intents = {(i.target, i.kind): i for i in evaluate(DEFAULTS, state).intents}
    for zid, zone in state.zones.items():
        people = zone.people.value if zone.people.quality not in (Quality.UNHEALTHY, Quality.MISSING) else None
        someone = (people is not None and people > 0) or zone.occupied > 0
        lux_ok = zone.lux.value is not None and zone.lux.quality in (Quality.GOOD, Quality.STALE)
        dark = not lux_ok or (zone.lux.value or 0.0) < zone.target_lux * 0.5
        for lum in TOPOLOGY.zone_lights[zid]:
            intent = intents.get((lum, IntentKind.LIGHT_LEVEL))
            level = intent.value if intent is not None else state.levels[lum]
            if someone and dark:
                assert level is not None and level >= 0.3, (zid, lum, intent)
            if state.open_now and not zone.occupancy_healthy:
                assert level == 1.0, (zid, lum, intent)
        if someone:  # whatever the light sensor says (it may be stuck), an occupied zone is never fully dark
            levels = [
                (intents[(lum, IntentKind.LIGHT_LEVEL)].value or 0.0) if (lum, IntentKind.LIGHT_LEVEL) in intents
                else state.levels[lum] for lum in TOPOLOGY.zone_lights[zid]
            ]
            assert max(levels) > 0.0, (zid, levels)

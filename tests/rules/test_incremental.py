"""The incremental evaluator against the engine's own ``evaluate``: the same intents, fired rules
and memory, pass after pass, over random walks of a floor's state.

Each walk starts from a random floor and changes a few seats, zones or floor-wide inputs per step
(often none, as most of the daemon's passes find), moves the clock by steps that cross the rules'
thresholds (``for_s``, ``empty_s``, a consenting tag's 30 s), and hands the evaluator views that
are sometimes the same objects and sometimes equal copies. Besides the shipped rules, a rule set
uses every kind of test and action the engine knows.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from rules import RuleMemory, RuleSet, evaluate, load_rules
from rules.incremental import Evaluator
from rules.state import FloorState, Measure, Preference, Quality, SeatStatus, SeatView, Topology, ZoneView

ZONES = ("z1", "z2", "z3")
SEATS = {f"S{i}": ZONES[i % 3] for i in range(12)}
LIGHTS = {z: tuple(f"L{z}{k}" for k in range(2)) for z in ZONES}
TOPOLOGY = Topology(
    zone_lights=LIGHTS,
    zone_hvac={"z1": "ahu1", "z2": "ahu1", "z3": "ahu2"},
    seat_desk={sid: f"D{sid[1:]}" for sid in SEATS if sid != "S11"},  # S11 has no desk
    light_seats={lum: tuple(sid for i, sid in enumerate(SEATS) if SEATS[sid] == z and i % 2 == k)
                 for z, lums in LIGHTS.items() for k, lum in enumerate(lums)},
    light_gain={sid: {lum: 300.0 + 40 * k for k, lum in enumerate(LIGHTS[z])} for sid, z in SEATS.items()},
)

EVERY_KIND = RuleSet.parse("""
version = 1
[scenes]
bright = 0.8

[[rules]]
id = "status-age"
scope = "seat"
when = { all = [{ status = ["away", "ghost"] }, { metric = "status_s", above = 20, below = 200 }] }
then = [{ do = "indicator", show = "ghost" }]

[[rules]]
id = "tag-age"
scope = "seat"
priority = "preference"
when = { any = [{ metric = "tag_s", above = 15 }, { not = { consented_for_s = 5 } }] }
then = [{ do = "desk_lamp", preference = true }, { do = "desk_height", preference = true }]

[[rules]]
id = "seat-latch"
scope = "seat"
for_s = 7
when = { metric = "seat_lux", below = 300, release_above = 400 }
then = [{ do = "light", scene = "bright" }, { do = "desk_lamp", level = 0.7 }]

[[rules]]
id = "release-old-ghosts"
scope = "seat"
for_s = 30
when = { status = "ghost" }
then = [{ do = "release_seat" }]

[[rules]]
id = "overridden-alert"
zones = ["z1", "z2"]
when = { all = [{ overridden = true }, { weekdays = ["mon", "tue", "wed", "thu", "fri"] }] }
then = [{ do = "alert", message = "{zone} overridden by {rule}" }]

[[rules]]
id = "evening"
when = { all = [{ time = ["18:00", "23:00"] }, { day_type = ["term", "exam"] }] }
then = [{ do = "light", level = 0.4, ramp_s = 2 }]

[[rules]]
id = "humid"
for_s = 12
when = { any = [{ metric = "humidity", above = 60, release_below = 50 }, { unhealthy = "temperature" },
                { metric = "level", above = 0.9 }] }
then = [{ do = "ventilation", level = 0.6 }, { do = "setpoint", celsius = 20.5 }]

[[rules]]
id = "quiet"
when = { all = [{ metric = "motion_age_s", above = 40 }, { metric = "occupancy", below = 0.5 },
                { metric = "free", above = 1 }, { metric = "forecast", within_min = 30, below = 5 }] }
then = [{ do = "light", level = 0.1 }]

[[rules]]
id = "motion"
when = { all = [{ motion_within_s = 25 }, { open = true }, { unhealthy = "occupancy" }] }
then = [{ do = "daylight", min_level = 0.2, lux_at_full = 450, ready_fraction = 0.5 }]

[[rules]]
id = "seat-ratio"
scope = "seat"
zones = ["z2", "z3"]
when = { metric = "seat_lux_ratio", below = 0.5 }
then = [{ do = "ventilation", level = 0.3, co2_ppm = [700, 1100] }]
""")


# A seat's lux on and either side of the thresholds the rules test it against (seat_lux 300/400;
# seat_lux_ratio 0.5, 0.94 and 0.97 of a 300 or 500 lx target), and well away from them.
LUX_STEPS = (None, 250.0, 800.0, 140.0, 150.0, 160.0, 282.0, 290.0, 291.0, 299.0, 300.0, 350.0, 400.0, 401.0,
             469.0, 470.0, 484.0, 485.0, 486.0)


def _measure(rng: random.Random, low: float, high: float) -> Measure:
    if rng.random() < 0.1:
        return Measure(None, rng.choice([Quality.UNHEALTHY, Quality.MISSING, Quality.STALE]))
    return Measure(round(rng.uniform(low, high), 1), rng.choice([Quality.GOOD] * 5 + [Quality.STALE]))


def _seat(rng: random.Random, sid: str, t: float) -> SeatView:
    tag = rng.choice([None, None, "tag-a", "tag-b", "tag-x"])
    return SeatView(sid, SEATS[sid], rng.choice(list(SeatStatus)), t - rng.uniform(0, 100),
                    TOPOLOGY.seat_desk.get(sid), rng.choice([None, round(rng.uniform(100, 900), 1)]),
                    tag, None if tag is None else t - rng.uniform(0, 40))


def _zone(rng: random.Random, zid: str, t: float, seats: dict[str, SeatView]) -> ZoneView:
    mine = [s for s in seats.values() if s.zone == zid]
    count = {status: sum(s.status is status for s in mine) for status in SeatStatus}
    people = _measure(rng, 0, 5)
    return ZoneView(zid, people, len(mine), count[SeatStatus.FREE], count[SeatStatus.OCCUPIED],
                    count[SeatStatus.AWAY], count[SeatStatus.GHOST], count[SeatStatus.UNKNOWN],
                    _measure(rng, 50, 900), _measure(rng, 18, 26), _measure(rng, 30, 70), _measure(rng, 450, 1500),
                    occupancy_healthy=rng.random() > 0.15,
                    last_motion=rng.choice([None, t - rng.uniform(0, 60)]),
                    empty_since=None if people.value else rng.choice([None, t - rng.uniform(0, 400)]),
                    forecast=rng.choice([{}, {15: rng.uniform(0, 9), 30: rng.uniform(0, 12)}]),
                    target_lux=rng.choice([300.0, 500.0]))


def _walk(seed: int, steps: int) -> list[FloorState]:
    """A floor that changes a little at a time, as the daemon's passes see it."""
    rng = random.Random(seed)
    t = 1000.0
    wall = datetime(2025, 3, 3, 17, 55) + timedelta(days=rng.randrange(7))
    seats = {sid: _seat(rng, sid, t) for sid in sorted(SEATS)}
    zones = {z: _zone(rng, z, t, seats) for z in ZONES}
    outputs = (*(lum for lums in LIGHTS.values() for lum in lums), "ahu1", "ahu2")
    levels = {out: round(rng.random(), 2) for out in outputs}
    prefs: dict[str, Preference] = {"tag-a": Preference(720, 0.5), "tag-b": Preference(None, 0.2)}
    extra: dict[str, Any] = {"open_now": True, "day_type": "term", "overrides": frozenset()}
    out = []
    for _ in range(steps):
        step = rng.choice([0.0, 0.01, 0.5, 2.0, 2.0, 2.0, 5.0, 13.0, 31.0])
        t += step
        wall += timedelta(seconds=step)
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 5])):
            sid = rng.choice(sorted(SEATS))
            seats[sid] = rng.choice([_seat(rng, sid, t), replace(seats[sid], lux=rng.choice(LUX_STEPS)),
                                     replace(seats[sid], status=rng.choice(list(SeatStatus)), since=t)])
        for _ in range(rng.choice([0, 0, 1, 3])):
            z = rng.choice(ZONES)
            zones[z] = rng.choice([_zone(rng, z, t, seats), replace(zones[z]),
                                   replace(zones[z], last_motion=t, empty_since=None)])
        if rng.random() < 0.3:  # an output moved
            levels = dict(levels, **{rng.choice(outputs): round(rng.random(), 2)})
        if rng.random() < 0.05:
            extra["open_now"] = not extra["open_now"]
        if rng.random() < 0.03:
            extra["day_type"] = rng.choice(["term", "exam", "holiday"])
        if rng.random() < 0.05:
            extra["overrides"] = frozenset(rng.sample(["z1", "Lz20", "S3", "D4", "z3"], rng.randrange(3)))
        if rng.random() < 0.15:  # a patron's preferences added, changed or forgotten
            tag = rng.choice(["tag-a", "tag-x"])
            prefs = {k: v for k, v in prefs.items() if k != tag}
            if rng.random() < 0.7:
                prefs[tag] = Preference(rng.choice([None, 700, 740]), rng.choice([None, 0.9, 0.4]))
        seats_now = seats if rng.random() < 0.7 else {k: replace(v) for k, v in seats.items()}  # equal copies
        out.append(FloorState(t, wall, dict(seats_now), dict(zones), TOPOLOGY, levels=dict(levels),
                              preferences=dict(prefs), **extra))
    return out


@pytest.mark.parametrize("rule_set", [load_rules(None), EVERY_KIND], ids=["shipped", "every-kind"])
@pytest.mark.parametrize("seed", range(12))
def test_the_same_result_as_evaluate_pass_after_pass(rule_set: RuleSet, seed: int) -> None:
    evaluator = Evaluator(compact_over=4096 if seed % 2 else 0)  # odd seeds: the clock heap rebuilt often
    reference, incremental = RuleMemory(), RuleMemory()
    fired_anything: set[str] = set()
    for n, state in enumerate(_walk(seed, 300)):
        want = evaluate(rule_set, state, reference)
        got = evaluator.evaluate(rule_set, state, incremental)
        assert got.intents == want.intents, (n, state.t)
        assert got.fired == want.fired, (n, state.t)
        assert got.memory == want.memory, (n, state.t)
        reference, incremental = want.memory, got.memory
        fired_anything.update(want.fired)
    # the walk must reach the rules it is meant to compare, not just the ones with no condition
    assert len(fired_anything) >= len(rule_set.rules) // 2, fired_anything


def test_reuses_what_did_not_change_and_starts_afresh_on_a_foreign_memory() -> None:
    rules = load_rules(None)
    states = _walk(3, 40)
    evaluator = Evaluator()
    memory = RuleMemory()
    result = evaluator.evaluate(rules, states[0], memory)
    full = evaluator.units_run
    still = replace(states[0], t=states[0].t + 0.01)  # the same floor a moment later
    again = evaluator.evaluate(rules, still, result.memory)
    assert again.intents == evaluate(rules, still, result.memory).intents
    assert evaluator.units_run - full < full // 4  # only the units redone on every pass (daylight)
    before = evaluator.units_run
    evaluator.evaluate(rules, still, RuleMemory())  # not the memory it returned: everything again
    assert evaluator.units_run - before == full


def test_a_seat_lux_test_is_redone_only_when_the_lux_crosses_one_of_its_thresholds() -> None:
    rules = RuleSet.parse("""
version = 1
[[rules]]
id = "top-up"
scope = "seat"
when = { all = [{ status = "occupied" }, { metric = "seat_lux_ratio", below = 0.94, release_above = 0.97 }] }
then = [{ do = "desk_lamp", level = 0.5 }]
""")
    rng = random.Random(5)
    t = 1000.0
    seats = {sid: replace(_seat(rng, sid, t), status=SeatStatus.OCCUPIED, lux=100.0) for sid in SEATS}
    zones = {z: replace(_zone(rng, z, t, seats), target_lux=500.0) for z in ZONES}
    evaluator, memory = Evaluator(), RuleMemory()
    runs = []
    # 100 lx (under 0.94 of 500: lamp on, latched), 200 and 400 (still under), 475 (between 0.94 and
    # 0.97: the latch holds it on), 490 (over 0.97: off), 492 and 495 (still over), 100 (on again).
    for n, lux in enumerate((100.0, 200.0, 400.0, 475.0, 490.0, 492.0, 495.0, 100.0)):
        seats = {sid: replace(view, lux=lux) for sid, view in seats.items()}
        state = FloorState(t + n, datetime(2025, 3, 3, 12, 0), dict(seats), dict(zones), TOPOLOGY)
        before = evaluator.units_run
        got = evaluator.evaluate(rules, state, memory)
        want = evaluate(rules, state, memory)
        assert (got.intents, got.fired, got.memory) == (want.intents, want.fired, want.memory), lux
        memory = got.memory
        runs.append(evaluator.units_run - before)
        lamps = {i.target for i in got.intents if i.value == 0.5}
        assert (len(lamps) == len(TOPOLOGY.seat_desk)) == (lux < 0.94 * 500 or n == 3), (lux, lamps)
    seats_n = len(SEATS)
    # Redone: the first pass, each crossing, and the pass after a latch moved (to see it settle);
    # not a move that stays on the same side of every threshold (400 after 200, 495 after 492).
    assert runs == [seats_n + len(ZONES), seats_n, 0, seats_n, seats_n, seats_n, 0, seats_n], runs

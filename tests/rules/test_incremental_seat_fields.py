"""The evaluator against ``evaluate`` when a seat's view changes in one field at a time.

A unit whose rule reads neither a seat's lux nor a band of it is not checked again for a seat
whose view changed in its lux alone (most changed views: any change of light moves every seat's
lux); every other change is checked. These walks change one field of a seat's view at a time
(status, since, desk, the consenting tag, when it sat down, lux), so a change the evaluator took
for a change of lux alone would leave a unit stale and show here.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from rules import RuleMemory, RuleSet, evaluate, load_rules
from rules.incremental import Evaluator
from rules.state import FloorState, Preference, SeatStatus, SeatView
from tests.rules.test_incremental import EVERY_KIND, LIGHTS, LUX_STEPS, SEATS, TOPOLOGY, ZONES, _seat, _zone

FIELDS = ("status", "since", "desk", "consented_tag", "tag_since", "lux")


def _one_field(rng: random.Random, view: SeatView, t: float) -> tuple[str, SeatView]:
    name = rng.choice(FIELDS)
    value = {"status": lambda: rng.choice(list(SeatStatus)), "since": lambda: t - rng.uniform(0, 50),
             "desk": lambda: rng.choice([None, TOPOLOGY.seat_desk.get(view.id)]),
             "consented_tag": lambda: rng.choice([None, "tag-a", "tag-b", "tag-x"]),
             "tag_since": lambda: rng.choice([None, t - rng.uniform(0, 40)]),
             "lux": lambda: rng.choice(LUX_STEPS)}[name]()
    return name, replace(view, **{name: value})


@pytest.mark.parametrize("rule_set", [load_rules(None), EVERY_KIND], ids=["shipped", "every-kind"])
@pytest.mark.parametrize("seed", range(8))
def test_a_seat_field_changed_alone_is_seen(rule_set: RuleSet, seed: int) -> None:
    rng = random.Random(seed)
    t = 1000.0
    wall = datetime(2025, 3, 4, 9, 0)
    seats = {sid: _seat(rng, sid, t) for sid in sorted(SEATS)}
    zones = {z: _zone(rng, z, t, seats) for z in ZONES}
    levels = {lum: 0.5 for lums in LIGHTS.values() for lum in lums}
    prefs = {"tag-a": Preference(720, 0.5), "tag-b": Preference(None, 0.2)}
    evaluator, reference, incremental = Evaluator(), RuleMemory(), RuleMemory()
    changed = {name: 0 for name in FIELDS}
    for n in range(400):
        t += rng.choice([0.0, 0.5, 2.0, 13.0])
        wall += timedelta(seconds=2)
        for _ in range(rng.choice([1, 1, 2, 4])):
            sid = rng.choice(sorted(SEATS))
            name, view = _one_field(rng, seats[sid], t)
            changed[name] += view != seats[sid]
            seats[sid] = view
        if rng.random() < 0.1:
            z = rng.choice(ZONES)
            zones[z] = _zone(rng, z, t, seats)
        state = FloorState(t, wall, dict(seats), dict(zones), TOPOLOGY, levels=dict(levels), preferences=dict(prefs))
        want = evaluate(rule_set, state, reference)
        got = evaluator.evaluate(rule_set, state, incremental)
        assert (got.intents, got.fired, got.memory) == (want.intents, want.fired, want.memory), (n, t)
        reference, incremental = want.memory, got.memory
    assert all(changed.values()), changed

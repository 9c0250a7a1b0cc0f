"""CPU per rule evaluation with the shipped rules, for a 200-seat and a 240-seat floor.

The floors come from ``simulator.floorgen.floor_toml``; states vary seat statuses, lux, CO2 and
forecasts so every default rule is exercised. Reported per evaluation (rules + conflict resolution
+ never-dark guard), and as a share of one core at one evaluation per second.

At 240 seats both ways the daemon can evaluate are measured, each on two sequences of states:
``evaluate`` (the pure engine) and :class:`rules.incremental.Evaluator` (what the decide loop
uses), on states drawn afresh each pass (every seat changed: the evaluator's worst case) and on
a *walk* (a pass every 0.5 s in which up to three seats change status and a zone's light reading
every tenth pass: what most of the daemon's passes see, since news wakes the loop for one seat).
"""

from __future__ import annotations

import random
import time
import tomllib
from dataclasses import replace
from datetime import datetime

from edge_agent.actuation.topology import topology_from_config
from edge_agent.config import parse_config
from rules import RuleMemory, RuleSet, evaluate, load_rules
from rules.incremental import Evaluator
from rules.state import FloorState, Measure, SeatStatus, SeatView, ZoneView
from simulator.floorgen import floor_toml


def _states(n: int, n_zones: int = 10, n_seats: int = 200) -> list[FloorState]:
    cfg = parse_config(tomllib.loads(floor_toml(zones=n_zones, seats=n_seats)), "bench")
    topo = topology_from_config(cfg)
    rng = random.Random(7)
    out = []
    for i in range(n):
        t = 10_000.0 + i
        seats = {s.id: SeatView(s.id, s.zone, rng.choice(list(SeatStatus)), t - rng.uniform(0, 3000), s.desk,
                                rng.uniform(100, 900), None, None) for s in cfg.seats}
        zones = {}
        for z in cfg.zones:
            mine = [s for s in seats.values() if s.zone == z.id]
            occ = sum(s.status == SeatStatus.OCCUPIED for s in mine)
            zones[z.id] = ZoneView(
                z.id, Measure(float(occ)), len(mine), sum(s.status == SeatStatus.FREE for s in mine), occ,
                sum(s.status == SeatStatus.AWAY for s in mine), sum(s.status == SeatStatus.GHOST for s in mine),
                sum(s.status == SeatStatus.UNKNOWN for s in mine), Measure(rng.uniform(50, 900)), Measure(21.0),
                Measure(40.0), Measure(rng.uniform(500, 1500)), occupancy_healthy=rng.random() > 0.05,
                last_motion=t - rng.uniform(0, 600), empty_since=None if occ else t - rng.uniform(0, 1200),
                forecast={15: rng.uniform(0, 10), 30: rng.uniform(0, 10)}, target_lux=z.target_lux)
        out.append(FloorState(t, datetime(2025, 3, 4, 8 + i % 14, 0), seats, zones, topo,
                              levels={a: rng.random() for lights in topo.zone_lights.values() for a in lights}))
    return out


def _walk(start: FloorState, n: int) -> list[FloorState]:
    """Passes 0.5 s apart from ``start``: up to three seats change status, a zone's lux every tenth."""
    rng = random.Random(11)
    seats, zones = dict(start.seats), dict(start.zones)
    out = []
    for i in range(n):
        t = start.t + 0.5 * (i + 1)
        for sid in rng.sample(sorted(seats), rng.choice([0, 1, 1, 2, 3])):
            seats[sid] = replace(seats[sid], status=rng.choice(list(SeatStatus)), since=t)
            zone = zones[seats[sid].zone]
            mine = [s for s in seats.values() if s.zone == zone.id]
            zones[zone.id] = replace(zone, free=sum(s.status == SeatStatus.FREE for s in mine),
                                     occupied=sum(s.status == SeatStatus.OCCUPIED for s in mine),
                                     away=sum(s.status == SeatStatus.AWAY for s in mine),
                                     ghost=sum(s.status == SeatStatus.GHOST for s in mine),
                                     unknown=sum(s.status == SeatStatus.UNKNOWN for s in mine))
        if i % 10 == 9:
            zid = rng.choice(sorted(zones))
            zones[zid] = replace(zones[zid], lux=Measure(rng.uniform(50, 900)))
        out.append(replace(start, t=t, seats=dict(seats), zones=dict(zones)))
    return out


def _per_evaluation(rules: RuleSet, states: list[FloorState], incremental: bool, rounds: int) -> float:
    """Seconds of CPU per evaluation over ``states`` in order, the memory carried pass to pass."""
    best = float("inf")
    for _ in range(rounds):
        evaluator = Evaluator()
        run = evaluator.evaluate if incremental else evaluate
        memory = run(rules, states[0], RuleMemory()).memory
        start = time.process_time()
        for state in states[1:]:
            memory = run(rules, state, memory).memory
        best = min(best, (time.process_time() - start) / (len(states) - 1))
    return best


def run() -> list[tuple[str, float, str]]:
    rules = load_rules(None)
    states = _states(50)
    memory = RuleMemory()
    evaluate(rules, states[0], memory)  # warm caches
    start = time.process_time()
    rounds = 4
    intents = 0
    for _ in range(rounds):
        for state in states:
            result = evaluate(rules, state, memory)
            memory = result.memory
            intents += len(result.intents)
    per_eval = (time.process_time() - start) / (rounds * len(states))
    fresh = _states(40, n_zones=8, n_seats=240)
    walk = _walk(fresh[0], 200)
    timed = {(seq, way): _per_evaluation(rules, states_, way == "incremental", 3) * 1000.0
             for seq, states_ in (("fresh", fresh), ("walk", walk)) for way in ("evaluate", "incremental")}
    return [
        ("rules.evaluate_200_seats", per_eval * 1000.0, "ms"),
        ("rules.cpu_share_at_1hz", per_eval * 100.0, "% of one core"),
        ("rules.intents_per_evaluation", intents / (rounds * len(states)), "intents"),
        *((f"rules.{way}_240_seats_{seq}", ms, "ms") for (seq, way), ms in timed.items()),
        # side by side in one run: what the guard compares across runs
        ("rules.incremental_over_evaluate_fresh", timed["fresh", "incremental"] / timed["fresh", "evaluate"], "ratio"),
        ("rules.incremental_over_evaluate_walk", timed["walk", "incremental"] / timed["walk", "evaluate"], "ratio"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<32} {value:10.3f} {unit}")

"""CPU per rule evaluation for a 200-seat floor with the shipped rules.

The floor comes from ``simulator.floorgen.floor_toml(zones=10, seats=200)``; states vary seat
statuses, lux, CO2 and forecasts so every default rule is exercised. Reported per evaluation
(rules + conflict resolution + never-dark guard), and as a share of one core at one evaluation
per second, the daemon's steady-state cadence.
"""

from __future__ import annotations

import random
import time
import tomllib
from datetime import datetime

from edge_agent.actuation.topology import topology_from_config
from edge_agent.config import parse_config
from rules import RuleMemory, evaluate, load_rules
from rules.state import FloorState, Measure, SeatStatus, SeatView, ZoneView
from simulator.floorgen import floor_toml


def _states(n: int) -> list[FloorState]:
    cfg = parse_config(tomllib.loads(floor_toml(zones=10, seats=200)), "bench")
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
    return [
        ("rules.evaluate_200_seats", per_eval * 1000.0, "ms"),
        ("rules.cpu_share_at_1hz", per_eval * 100.0, "% of one core"),
        ("rules.intents_per_evaluation", intents / (rounds * len(states)), "intents"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<32} {value:10.3f} {unit}")

"""CPU cost of the sensing pipeline: thermopile frame -> seat states, and one UWB fix.

``run()`` returns (name, value, unit) rows; ``python -m benchmarks.bench_sensing`` prints them.
Frames and ranges are seeded synthetic data on the example floor (examples/floor-3.toml).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

from edge_agent.config import load_config
from edge_agent.sensing.floor import FloorModel
from edge_agent.sensing.uwb import solve

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "floor-3.toml"


def _per_call_us(fn: Callable[[int], object], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def run() -> list[tuple[str, float, str]]:
    cfg = load_config(EXAMPLE)
    rng = np.random.default_rng(0)
    frames = 22.0 + rng.normal(0, 0.1, (64, 8, 8))
    frames[:, 5:7, 5:7] += 4.0  # one person under every sensor
    thermal = [s.id for s in cfg.sensors if s.kind == "amg8833"]
    model = FloorModel(cfg)
    one = thermal[0]
    single = _per_call_us(lambda i: model.on_thermal(one, frames[i % 64], 2.0 * i), 500)
    model = FloorModel(cfg)

    def whole_floor(i: int) -> None:
        for sid in thermal:
            model.on_thermal(sid, frames[i % 64], 2.0 * i)

    floor = _per_call_us(whole_floor, 50)

    snap = _per_call_us(lambda i: model.snapshot(100.0 + i, datetime(2025, 1, 1)), 50)
    anchors = {a.id: (a.x, a.y, a.z) for a in cfg.anchors}
    cases = []
    for _ in range(200):
        p = np.array([rng.uniform(1, 38), rng.uniform(1, 23), 1.0])
        r = {a: float(np.linalg.norm(p - np.array(xyz)) + rng.normal(0, 0.05)) for a, xyz in anchors.items()}
        r["A3"] += 0.6
        cases.append(r)
    robust = _per_call_us(lambda i: solve(cases[i % 200], anchors, 1.0), 400)
    plain = _per_call_us(lambda i: solve(cases[i % 200], anchors, 1.0, robust=False), 400)
    return [
        ("thermal frame -> seat states, 1 sensor", single, "us/frame"),
        (f"thermal frames -> seat states, {len(thermal)} sensors / {len(cfg.seats)} seats", floor, "us/cycle"),
        ("floor snapshot (120 seats, 6 zones)", snap, "us"),
        ("UWB fix, robust (6 anchors, 1 NLOS)", robust, "us/fix"),
        ("UWB fix, plain least squares", plain, "us/fix"),
        ("UWB robust / plain cost ratio", robust / plain, "x"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:70s} {value:10.1f} {unit}")

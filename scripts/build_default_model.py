"""Rebuild the shipped model ``models/default.onnx`` from simulated data, and score it.

    .venv/bin/python scripts/build_default_model.py [--out models/default.onnx]

Simulates the example floor (``examples/floor-3.toml``: six zones of 20 seats, quiet, group,
silent, open, quiet, lounge) with :mod:`simulator.demand` from 2 September 2024 for 20 weeks
(term, December exams, the Christmas vacation, January exams), trains on everything before
6 January 2025 with each zone's seat count as its scale, and scores the last two weeks
(January exams) against the baselines. The figures go into ``models/MODEL_CARD.md``.
Deterministic: fixed seeds throughout.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from pathlib import Path

from edge_agent.config import load_config
from models.calendar import LibraryCalendar
from models.evaluation import evaluate
from models.inference import Forecaster
from models.training import TrainingParams, train
from simulator.demand import calendar_toml, generate_history

ROOT = Path(__file__).resolve().parents[1]
START = date(2024, 9, 2)
DAYS = 140
SPLIT = datetime(2025, 1, 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "default.onnx")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    cfg = load_config(ROOT / "examples" / "floor-3.toml")
    history: dict[str, list[tuple[datetime, float]]] = {}
    for t, zone, count in generate_history(cfg, START, DAYS, seed=args.seed):
        history.setdefault(zone, []).append((t, float(count)))
    calendar = LibraryCalendar.from_toml(calendar_toml(START, DAYS))
    capacities = {z.id: float(len(cfg.seats_in(z.id))) for z in cfg.zones}
    # the settings models/default.onnx was built with (model train's defaults have moved on since)
    params = TrainingParams(max_iter=120, max_leaf_nodes=15, learning_rate=0.08, min_samples_leaf=40, target="level",
                            feature_version="demand-v3")
    model = train(history, (15, 30, 60, 120), calendar, SPLIT, capacities, params)
    args.out.write_bytes(model.onnx_bytes)
    report = evaluate(Forecaster.from_path(args.out), history, SPLIT, calendar)
    print(f"wrote {args.out} ({len(model.onnx_bytes) // 1024} KiB)")
    print(report.table())
    print(json.dumps(report.to_json()))


if __name__ == "__main__":
    main()

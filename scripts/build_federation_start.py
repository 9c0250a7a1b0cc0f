"""Rebuild ``models/federation_start.onnx``, the quantile MLP a federation starts from, and score it.

    .venv/bin/python scripts/build_federation_start.py [--out models/federation_start.onnx]

DP-SGD spreads its noise over every trained parameter while the clipped signal of a few hundred
zone-days stays small, so a federation that starts from random weights spends its privacy budget
learning what any library's day looks like. The start is therefore trained centrally, without
privacy (there is nothing private in it), on the project's public demand model: the example floor
(``examples/floor-3.toml``, six zones of 20 seats) simulated by :mod:`simulator.demand` from
2 September 2024 for 20 weeks (term, exams, the Christmas vacation), each zone-day seen once with
the site calendar and once without (gateways without a calendar get ``calendar_missing``).
Training covers everything before 6 January 2025; the last two weeks (January exams) are scored
against the baselines. Federated rounds then fine-tune it on the gateways' own histories.
Deterministic: fixed seeds throughout.

``--in-day`` builds ``models/federation_start_in_day.onnx`` instead: the same, reading only the
columns a gateway may train on under differential privacy (``IN_DAY_FEATURES`` of
:mod:`models.quantile_mlp`: time, weekday, calendar, the count now and its last hour), the start
of private sessions.
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
from models.quantile_mlp import LocalTraining, ZoneDays, export_onnx, fit_central, zone_days
from simulator.demand import calendar_toml, generate_history

ROOT = Path(__file__).resolve().parents[1]
START = date(2024, 9, 2)
DAYS = 140
SPLIT = datetime(2025, 1, 6)
HORIZONS = (15, 30, 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="[default: models/federation_start.onnx, or federation_start_in_day.onnx]")
    parser.add_argument("--in-day", action="store_true", help="Read only the in-day columns (private sessions).")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    out: Path = args.out or ROOT / "models" / ("federation_start_in_day.onnx" if args.in_day
                                               else "federation_start.onnx")
    cfg = load_config(ROOT / "examples" / "floor-3.toml")
    history: dict[str, list[tuple[datetime, float]]] = {}
    for t, zone, count in generate_history(cfg, START, DAYS, seed=args.seed):
        history.setdefault(zone, []).append((t, float(count)))
    calendar = LibraryCalendar.from_toml(calendar_toml(START, DAYS))
    capacities = {z.id: float(len(cfg.seats_in(z.id))) for z in cfg.zones}
    train = {z: [o for o in obs if o[0] < SPLIT] for z, obs in history.items()}
    data = ZoneDays.join([zone_days(train, HORIZONS, cal, capacities=capacities) for cal in (calendar, None)])
    how = LocalTraining(steps=100, batch_groups=32, learning_rate=0.003, clip=float("inf"))
    params = fit_central(data, HORIZONS, args.rounds, how, seed=args.seed, in_day=args.in_day)
    onnx_bytes = export_onnx(params, HORIZONS, {
        "training": "central, simulated example floor (public demand model), no privacy needed",
        "inputs": "in-day" if args.in_day else "all",
        "trained_until": SPLIT.isoformat(), "zone_days": str(data.groups),
    })
    out.write_bytes(onnx_bytes)
    print(f"wrote {out} ({len(onnx_bytes) // 1024} KiB, {data.groups} zone-days)")
    for name, cal in (("with calendar", calendar), ("without calendar", None)):
        report = evaluate(Forecaster.from_path(out), history, SPLIT, cal)
        print(name)
        print(report.table())
        print(json.dumps(report.to_json()))


if __name__ == "__main__":
    main()

"""What differential privacy costs the hourly export: error added to hourly zone counts, and forecast skill.

    .venv/bin/python -m benchmarks.privacy_utility [DATA_DIR] [--epsilons 0.5,1,3] [--repeats 3]

For each data set (the simulated example floor, 20 weeks from :func:`simulator.demand.generate_history`;
with DATA_DIR, e.g. ../shared/data, also the DTU library and the campus gym), the gateway's own export
code (:class:`edge_agent.privacy.policy.HourlyExport`, OpenDP's discrete Laplace) turns the counts
into hourly means during opening hours, exactly and at each per-day epsilon, with the gateway's own
budget arithmetic (the opening day's clock hours, hours past midnight included). Printed:

- the epsilon of one hourly release (the mean over the data's opening days), and how many releases
  the budget withheld (there should be none: a withheld hour is reported, never counted as 0);
- the mean absolute error the noise adds to an hourly zone mean (people), over the hours released,
  and the same relative to the mean count of open hours;
- the +60 min forecast skill (:func:`models.evaluation.evaluate`, ``1 - MAE / best baseline``) of
  the shipped training path (:func:`models.training.train`) fitted on the exact export and on the
  noisy one before the split, both scored on the exact held-out 15-minute data: what a data platform
  that retrains the forecast from the export loses.

The table in docs/privacy.md comes from this script. A few minutes (one model fit per row).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.privacy.budget import EpsilonBudget
from edge_agent.privacy.config import Privacy
from edge_agent.privacy.policy import HourlyExport, HourRelease, PublicationPolicy
from models.calendar import LibraryCalendar
from models.evaluation import evaluate
from models.history import Observation
from models.inference import Forecaster
from models.training import TrainingParams, train
from simulator.demand import calendar_toml, generate_history

ROOT = Path(__file__).resolve().parents[1]
SIM_START, SIM_DAYS, SIM_SPLIT = date(2024, 11, 4), 140, datetime(2025, 3, 3)


def hourly(history: Mapping[str, Sequence[Observation]], calendar: LibraryCalendar, policy: str, epsilon: float,
           tmp: Path) -> dict[tuple[str, datetime], HourRelease]:
    """(zone, hour) -> the export's release of that hour under ``policy`` at per-day ``epsilon``."""
    conf = Privacy(export_counts=policy, daily_epsilon=epsilon)  # type: ignore[arg-type]
    budget = EpsilonBudget(tmp / f"budget-{policy}-{epsilon:g}.json", epsilon)
    budget.path.unlink(missing_ok=True)
    pol = PublicationPolicy(conf, zones=len(history), budget=budget, hours=calendar.hours)
    export = HourlyExport(pol)
    by_time: dict[datetime, dict[str, float | None]] = {}
    for zone, obs in history.items():
        for t, v in obs:
            by_time.setdefault(t, {})[zone] = v
    out: dict[tuple[str, datetime], HourRelease] = {}
    for t in sorted(by_time):
        if not calendar.is_open(t):
            if export.hour is not None:  # closing time: the export sends the last open hour (export_loop)
                out.update(((r.zone, r.start), r) for r in export.release())
                export.hour = None
            continue
        out.update(((r.zone, r.start), r) for r in export.sample(t, {z: by_time[t].get(z) for z in history}))
    out.update(((r.zone, r.start), r) for r in export.release())
    budget.path.unlink(missing_ok=True)
    return out


def as_history(export: Mapping[tuple[str, datetime], HourRelease]) -> dict[str, list[Observation]]:
    """The export as 15-minute observations (each hour's mean at its four slots), for training."""
    out: dict[str, list[Observation]] = {}
    for (zone, start), release in sorted(export.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if release.people_mean is not None:
            for q in range(1, 5):
                out.setdefault(zone, []).append((start + timedelta(minutes=15 * q), float(release.people_mean)))
    return out


def skill_60(train_on: Mapping[str, Sequence[Observation]], truth: Mapping[str, Sequence[Observation]],
             calendar: LibraryCalendar, split: datetime) -> float | None:
    cut = {z: [o for o in obs if o[0] < split] for z, obs in train_on.items()}
    model = train(cut, (60,), calendar, split, params=TrainingParams(max_iter=80))
    return evaluate(Forecaster.from_bytes(model.onnx_bytes), truth, split, calendar).skill.get("60")


def data_sets(data_dir: Path | None) -> list[tuple[str, dict[str, list[Observation]], LibraryCalendar, datetime]]:
    cfg = load_config(ROOT / "examples" / "floor-3.toml")
    sim: dict[str, list[Observation]] = {}
    for t, zone, count in generate_history(cfg, SIM_START, SIM_DAYS, seed=3):
        sim.setdefault(zone, []).append((t, float(count)))
    out = [("simulated floor 3", sim, LibraryCalendar.from_toml(calendar_toml(SIM_START, SIM_DAYS)), SIM_SPLIT)]
    if data_dir is not None and data_dir.is_dir():
        from models.public_data import SPLITS, load

        for name in ("dtu", "gym"):
            history, calendar = load(data_dir, name)
            out.append((name, history, calendar, SPLITS[name]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.privacy_utility")
    parser.add_argument("data_dir", type=Path, nargs="?",
                        help="the directory holding dtu_library/ and gym_crowdedness/")
    parser.add_argument("--epsilons", default="0.5,1,3", help="per-day epsilons to measure")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"), help="where the runs' epsilon ledgers go")
    parser.add_argument("--repeats", type=int, default=1,
                        help="noise draws per epsilon (a model fit each): mean and range of MAE and skill")
    args = parser.parse_args(argv)
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"{args.data_dir} is not a directory; give the one holding dtu_library/ and gym_crowdedness/")
    epsilons = [float(e) for e in args.epsilons.split(",")]
    print(f"{'data set':<18} {'epsilon/day':>11} {'eps/hour':>9} {'withheld':>9} {'MAE added':>10} "
          f"{'relative':>9} {'+60 min skill':>14}")
    for name, history, calendar, split in data_sets(args.data_dir):
        exact = hourly(history, calendar, "exact", 1.0, args.tmp)
        truth = {k: r.people_mean for k, r in exact.items() if r.people_mean is not None}
        mean = sum(truth.values()) / max(1, len(truth))
        base = skill_60(as_history(exact), history, calendar, split)
        print(f"{name:<18} {'exact':>11} {'-':>9} {0:>9} {0.0:>10.2f} {0.0:>8.1%} {_fmt(base):>14}  "
              f"({len(truth)} zone-hours, mean {mean:.1f} people)")
        for eps in epsilons:
            maes: list[float] = []
            skills: list[float] = []
            for _ in range(max(1, args.repeats)):  # OpenDP draws from its own secure source: no seed
                noisy = hourly(history, calendar, "noisy", eps, args.tmp)
                released = {k: r for k, r in noisy.items() if r.people_mean is not None}
                withheld = sum(1 for k in truth if k not in released)
                errors = [abs(float(released[k].people_mean or 0.0) - v) for k, v in truth.items() if k in released]
                maes.append(sum(errors) / max(1, len(errors)))
                per_hour = [r.epsilon for r in released.values() if r.epsilon is not None]
                skill = skill_60(as_history(noisy), history, calendar, split)
                if skill is not None:
                    skills.append(skill)
            mae = sum(maes) / len(maes)
            print(f"{'':<18} {eps:>11g} {sum(per_hour) / max(1, len(per_hour)):>9.3f} {withheld:>9} {mae:>10.2f} "
                  f"{mae / max(mean, 1e-9):>8.1%} {_spread(skills):>14}")
    return 0


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.2f} ({min(values):.2f}..{max(values):.2f})"


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    sys.exit(main())

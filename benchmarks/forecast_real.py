"""What the site calendar is worth on real data: +60 min skill without and with it.

    .venv/bin/python -m benchmarks.forecast_real /work/shared/data [--horizons 15,30,60,120]

For each public data set (see :mod:`models.public_data`) the shipped training path
(:func:`models.training.train`, gradient-boosted quantile trees) is fitted on everything before
the split and scored after it (:func:`models.evaluation.evaluate`), once without a calendar and
once with the data's own calendar and the opening hours derived from the training part. Prints
one table; the figures go in docs/model.md. Takes about a minute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.calendar import LibraryCalendar
from models.evaluation import evaluate
from models.inference import Forecaster
from models.public_data import SPLITS, load
from models.training import TrainingParams, train


def skill(name: str, data_dir: Path, horizons: tuple[int, ...], calendar: bool) -> dict[str, float | None]:
    history, cal = load(data_dir, name)
    use: LibraryCalendar | None = cal if calendar else None
    model = train(history, horizons, use, SPLITS[name], params=TrainingParams())
    return evaluate(Forecaster.from_bytes(model.onnx_bytes), history, SPLITS[name], use).skill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forecast_real")
    parser.add_argument("data_dir", type=Path, help="the directory holding gym_crowdedness/ and dtu_library/")
    parser.add_argument("--horizons", default="30,60,120")
    args = parser.parse_args(argv)
    horizons = tuple(int(h) for h in args.horizons.split(","))
    print(f"{'data set':<10} {'horizon':>8} {'no calendar':>12} {'calendar':>10} {'gain':>7}")
    for name in ("gym", "dtu"):
        plain = skill(name, args.data_dir, horizons, calendar=False)
        with_cal = skill(name, args.data_dir, horizons, calendar=True)
        for h in horizons:
            a, b = plain.get(str(h)), with_cal.get(str(h))
            if a is None or b is None:
                continue
            print(f"{name:<10} {h:>6}min {a:>12.3f} {b:>10.3f} {b - a:>+7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

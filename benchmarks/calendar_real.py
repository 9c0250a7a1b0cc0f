"""What else a calendar could give at +60 min on real data: candidate calendar columns and calendar contents.

    .venv/bin/python -m benchmarks.calendar_real /work/shared/data [--variants all] [--seeds 0]

``benchmarks.forecast_real`` measures the shipped model with and without the calendar. This
measures candidates that are not shipped, each once without and once with the data's calendar,
to see whether any would lift the calendar's gain at +60 min to the issue's +0.05:

- ``shipped``: the demand-v3 columns as they are (the reference);
- ``demand-v4``: the demand-v4 columns (v3 and the count now carried by each profile's change,
  :mod:`models.features`), learning the level;
- ``hours``: minutes since opening and until closing at the target time, from the calendar's hours;
- ``position``: days until the day type changes, days since it began, days to the next exam
  period, the next day's type (semester week, days to exam);
- ``holiday-hours``: the calendar gains special opening hours on every holiday day, derived from
  the training part's holiday days (intersession hours, where the institution publishes none);
- ``persistence``: the count now plus each profile's change from now to the target time (the
  typed, weekday, seven-day and yesterday profiles), columns a tree cannot form by itself;
- ``change``: the demand-v4 columns, the trees learning the change from the count now rather than
  the level (``TrainingParams.target``);
- ``demand-v5``: the demand-v5 columns (v4, the count's mean over the last 30 and 60 minutes, each
  profile at the target time plus today's mean offset from it over the last hour, and the change
  from the count now that each of those, the carried columns and the lags and profiles forecast),
  learning the change, what ``model train`` builds now; ``v5-without-vs-now`` leaves out the
  ``*_vs_now`` columns; ``v5-from-mean30``/``v5-from-mean60``
  learn the change from the recent mean, ``v5-500`` boosts 500 rounds, ``v5-leaf200`` wants leaves of
  200 rows, ``v5-smooth`` learns the median of the three readings around the target time.

To keep it to minutes, one model per variant: the median (the skill is scored on it) at +60 min,
the shipped training settings (:class:`models.training.TrainingParams`), fitted before the split
and scored after it on the same rows and against the same baselines as
:func:`models.evaluation.evaluate`. ``--seeds`` repeats with other jitter of the tied counts, to
show how much of a difference is noise. ``--fold A`` or ``--fold B`` scores weeks inside the training
part instead (:data:`VALIDATION`; the model learns from the rest of the training part), so
variants are chosen without looking at the held-out weeks. Prints one line per variant and seed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.calendar import DAY_TYPES, WEEKDAYS, LibraryCalendar
from models.evaluation import weekday_time_table
from models.features import (
    DAY_STEPS,
    FEATURE_NAMES,
    LAG_LEADS_MIN,
    RELATIVE_TO_NOW,
    V3,
    V4,
    V5,
    WEEK_STEPS,
    feature_names,
    feature_rows,
)
from models.history import STEP_MIN, Grid, Observation, resample
from models.public_data import SPLITS, derived_hours, load
from models.training import CHANGE_FROM, TrainingParams, zone_scales

STEPS = 60 // STEP_MIN
Columns = Callable[[Grid, npt.NDArray[np.int64], float, LibraryCalendar | None], npt.NDArray[np.float64]]
F = npt.NDArray[np.float64]


def _days(grid: Grid, k: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    minute = grid.start.hour * 60 + grid.start.minute + (k + STEPS) * STEP_MIN
    return minute // 1440, minute % 1440


def hours_columns(grid: Grid, k: npt.NDArray[np.int64], scale: float, cal: LibraryCalendar | None) -> F:
    """Minutes of the target time since opening and until closing (-1, -1 when closed all day)."""
    out = np.zeros((k.size, 2))
    if cal is None:
        return out
    day, minute = _days(grid, k)
    for d in np.unique(day).tolist():
        rows = day == d
        hours = cal.hours(grid.start.date() + timedelta(days=d))
        if hours is None:
            out[rows] = -1.0
            continue
        opens, closes = (h.hour * 60 + h.minute for h in hours)
        closes += 1440 if closes <= opens else 0
        out[rows, 0], out[rows, 1] = minute[rows] - opens, closes - minute[rows]
    return out


def position_columns(grid: Grid, k: npt.NDArray[np.int64], scale: float, cal: LibraryCalendar | None) -> F:
    """Days until the day type changes, since it began, to the next exam day; tomorrow's type."""
    out = np.zeros((k.size, 4))
    if cal is None:
        return out
    day, _ = _days(grid, k)
    for d in np.unique(day).tolist():
        date = grid.start.date() + timedelta(days=d)
        kind = cal.day_type(date)
        ahead = next((i for i in range(1, 29) if cal.day_type(date + timedelta(days=i)) != kind), 29)
        since = next((i for i in range(1, 57) if cal.day_type(date - timedelta(days=i)) != kind), 57)
        exam = next((i for i in range(57) if cal.day_type(date + timedelta(days=i)) == "exam"), 57)
        out[day == d] = (ahead, since, exam, DAY_TYPES.index(cal.day_type(date + timedelta(days=1))))
    return out


def persistence_columns(grid: Grid, k: npt.NDArray[np.int64], scale: float, cal: LibraryCalendar | None) -> F:
    """The count now plus each profile's change from now to the target time."""
    x = feature_rows(grid, k, scale, cal)
    col = {n: x[:, i].astype(np.float64) for i, n in enumerate(FEATURE_NAMES)}
    lead = max(lead for lead in LAG_LEADS_MIN if lead <= 60)
    return np.stack([col["now"] + col[f"{b}_{lead}"] - col[f"{b}_0"] for b in ("typed", "weeks4", "days7", "day")],
                    axis=1)


def holiday_hours(name: str, history: dict[str, list[Observation]], cal: LibraryCalendar) -> LibraryCalendar:
    """``cal`` with special hours on every holiday day: the hours of the training part's holidays."""
    split = SPLITS[name]
    holidays = {z: [o for o in obs if cal.day_type(o[0].date()) == "holiday"] for z, obs in history.items()}
    hours = derived_hours(holidays, split)
    first = min(o[0] for obs in history.values() for o in obs).date()
    last = max(o[0] for obs in history.values() for o in obs).date()
    special = []
    for i in range((last - first).days + 1):
        date = first + timedelta(days=i)
        wanted = hours[WEEKDAYS[date.weekday()]]
        if cal.day_type(date) == "holiday" and not cal.closed_all_day(date) and wanted != "closed":
            special.append({"date": date, "hours": wanted})
    doc = cal.doc.model_dump(exclude_defaults=True)
    return LibraryCalendar.from_data({**doc, "special_hours": [*doc.get("special_hours", []), *special]}, name)


#: Validation weeks inside each training part: (first day, day after the last). Gym A is a winter like
#: the scored one (Thanksgiving, exams, winter and spring break), trained on the rest of the part.
VALIDATION: dict[str, dict[str, tuple[datetime, datetime]]] = {
    "gym": {"A": (datetime(2015, 11, 1), datetime(2016, 3, 19)), "B": (datetime(2016, 8, 15), datetime(2016, 11, 1))},
    "dtu": {"A": (datetime(2021, 9, 13), datetime(2021, 9, 30)), "B": (datetime(2021, 11, 1), datetime(2021, 11, 15))},
}


def _first_at(grid: Grid, t: datetime) -> int:
    """The first grid index at or after ``t``."""
    i = grid.index_of(t)
    return i + int(grid.time_at(i) < t)


#: name: (extra columns, holiday hours, feature version, training target)
VARIANTS: dict[str, tuple[Columns | None, bool, str, str]] = {
    "shipped": (None, False, V3, "level"), "demand-v4": (None, False, V4, "level"),
    "hours": (hours_columns, False, V3, "level"), "position": (position_columns, False, V3, "level"),
    "holiday-hours": (None, True, V3, "level"), "persistence": (persistence_columns, False, V3, "level"),
    "change": (None, False, V4, "change"), "demand-v5": (None, False, V5, "change"),
    "v5-from-mean30": (None, False, V5, "change from mean_30"),
    "v5-from-mean60": (None, False, V5, "change from mean_60"),
    "v5-500": (None, False, V5, "change"), "v5-leaf200": (None, False, V5, "change"),
    "v5-smooth": (None, False, V5, "change"), "v5-without-vs-now": (None, False, V5, "change"),
}
#: Variants that leave out demand-v5's last columns (all of ``*_vs_now``).
LEFT_OUT: dict[str, int] = {"v5-without-vs-now": len(RELATIVE_TO_NOW)}
#: Training settings other than :class:`models.training.TrainingParams`' defaults, by variant.
SETTINGS: dict[str, TrainingParams] = {"v5-500": TrainingParams(max_iter=500),
                                       "v5-leaf200": TrainingParams(min_samples_leaf=200)}
#: Variants that learn the median of the three readings around the target time (t+45, t+60, t+75 min).
SMOOTHED = ("v5-smooth",)


def skill(name: str, data_dir: Path, variant: str, calendar: bool, seed: int, fold: str | None = None) -> float:
    """+60 min skill of the median model of ``variant`` against the best naive baseline (on the
    held-out weeks, or on validation ``fold`` of the training part)."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # the train extra
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    extra, special, version, target = VARIANTS[variant]
    history, full = load(data_dir, name)
    cal = (holiday_hours(name, history, full) if special else full) if calendar else None
    split = SPLITS[name]
    zone, obs = next(iter(history.items()))
    scale = zone_scales({zone: obs})[zone]

    def rows(grid: Grid, k: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        x = feature_rows(grid, k, scale, cal, version)
        x = x[:, : x.shape[1] - LEFT_OUT.get(variant, 0)]
        return x if extra is None else np.hstack([x, extra(grid, k, scale, cal)]).astype(np.float32)

    past = resample([o for o in obs if o[0] < split])
    k = np.arange(past.values.size - STEPS)
    y = past.values[k + STEPS] / scale
    if variant in SMOOTHED:
        around = np.stack([past.values[np.clip(k + STEPS + d, 0, past.values.size - 1)] for d in (-1, 0, 1)])
        y = np.where(np.isnan(y), np.nan, np.nanmedian(around, axis=0) / scale)
    known = ~np.isnan(y)
    if fold is not None:
        lo, hi = (_first_at(past, t) for t in VALIDATION[name][fold])
        known &= (k + STEPS < lo) | (k >= hi)  # no target inside the fold, no anchor in it either
    p = SETTINGS.get(variant, TrainingParams())
    x, y = rows(past, k)[known][-p.max_rows:], y[known][-p.max_rows:]
    now = feature_names(version).index(target.removeprefix("change from ") if target != "change" else CHANGE_FROM)

    def base(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64] | float:
        return rows[:, now].astype(np.float64) if target.startswith("change") else 0.0

    y = y - base(x) + np.random.default_rng(seed).uniform(-0.5, 0.5, y.size) / scale  # as models.training breaks ties
    with threadpool_limits(limits=1):
        model = HistGradientBoostingRegressor(
            loss="quantile", quantile=0.5, max_iter=p.max_iter, learning_rate=p.learning_rate,
            max_leaf_nodes=p.max_leaf_nodes, min_samples_leaf=p.min_samples_leaf, early_stopping=False,
            random_state=seed).fit(x, y)
    if fold is None:
        grid = resample(obs)
        first, end = _first_at(grid, split), grid.values.size - STEPS
    else:
        grid, first, end = past, lo, min(hi, past.values.size) - STEPS
    v = grid.values
    k = np.arange(first, end)
    ok = ~np.isnan(v[k])
    for back in (0, DAY_STEPS, WEEK_STEPS):  # the rows models.evaluation scores
        idx = k + STEPS - back
        ok &= (idx >= 0) & ~np.isnan(v[np.clip(idx, 0, v.size - 1)])
    k = k[ok]
    truth = v[k + STEPS]
    minute = grid.start.hour * 60 + grid.start.minute + (k + STEPS) * STEP_MIN
    weekday = (grid.start.weekday() + minute // 1440) % 7
    mean = weekday_time_table(grid, first)[weekday, (minute % 1440) // STEP_MIN]
    best = min(float(np.mean(np.abs(b - truth))) for b in (v[k], v[k + STEPS - DAY_STEPS],
                                                             v[k + STEPS - WEEK_STEPS], mean))
    x = rows(grid, k)
    return 1.0 - float(np.mean(np.abs((model.predict(x) + base(x)) * scale - truth))) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calendar_real")
    parser.add_argument("data_dir", type=Path, help="the directory holding gym_crowdedness/ and dtu_library/")
    parser.add_argument("--variants", default="all", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated jitter seeds")
    parser.add_argument("--fold", choices=("A", "B"), default=None,
                        help="score validation weeks inside the training part instead of the held-out weeks")
    parser.add_argument("--only-calendar", action="store_true", help="only the rows with the calendar (the no-calendar"
                        " cells print as nan)")
    args = parser.parse_args(argv)
    wanted = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; use {', '.join(VARIANTS)}")
    print(f"{'variant':<15} {'seed':>4}  " + "  ".join(f"{n + ' no cal / cal / gain':>28}" for n in ("gym", "dtu")))
    for variant in wanted:
        for seed in (int(s) for s in args.seeds.split(",")):
            cells = []
            for name in ("gym", "dtu"):
                a, b = (skill(name, args.data_dir, variant, c, seed, args.fold) if c or not args.only_calendar
                        else float("nan") for c in (False, True))
                cells.append(f"{a:>10.3f} {b:>8.3f} {b - a:>+8.3f}")
            print(f"{variant:<15} {seed:>4}  " + "  ".join(f"{c:>28}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

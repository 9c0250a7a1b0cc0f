"""Scoring a model against the baselines a library would otherwise use.

Rows are (zone, anchor time ``t``) with ``t`` at or after ``start``, chronological, unshuffled. The
model's features at ``t`` use grid values at or before ``t`` only (see :mod:`models.features`).
Every method is scored on the *same* rows: those where the count at ``t``, at ``t + h``, one day
and one week before ``t + h`` are all known for every horizon ``h``, so no baseline is excused
from a row it cannot handle. Errors are in people (the model's fractions times the zone scale).

Baselines, for the count at ``t + h``:

- ``last_value``: the count at ``t``;
- ``same_time_yesterday``, ``same_time_last_week``: the count at ``t + h`` one day / one week ago;
- ``weekday_time_mean``: the zone's mean for that weekday and 15-minute slot, fitted on grid
  values before ``start`` only (falling back to the slot's mean over all weekdays, then the
  zone's mean).

``skill = 1 - MAE_model / MAE_best_baseline`` per horizon (positive: the model beats every baseline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from models.calendar import LibraryCalendar
from models.errors import HistoryError
from models.features import DAY_STEPS, WEEK_STEPS, feature_rows
from models.history import STEP_MIN, Grid, Observation, resample
from models.inference import Forecaster

BASELINES = ("last_value", "same_time_yesterday", "same_time_last_week", "weekday_time_mean")


@dataclass(frozen=True)
class EvalReport:
    """MAE per horizon (keys are horizon minutes as strings, as in the JSON)."""

    horizons: tuple[int, ...]
    model_mae: dict[str, float]
    baseline_mae: dict[str, dict[str, float]]
    skill: dict[str, float | None]
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "horizons": list(self.horizons),
            "model_mae": self.model_mae,
            "baseline_mae": self.baseline_mae,
            "skill": self.skill,
            "rows": self.rows,
        }

    def table(self) -> str:
        """Plain-text table, one line per horizon."""
        head = f"{'horizon':>8} {'model':>8} " + " ".join(f"{b:>20}" for b in BASELINES) + f" {'skill':>7}"
        lines = [head]
        for h in self.horizons:
            key = str(h)
            base = " ".join(f"{self.baseline_mae[b][key]:>20.3f}" for b in BASELINES)
            skill = self.skill[key]
            shown = f"{skill:>7.3f}" if skill is not None else f"{'n/a':>7}"
            lines.append(f"{h:>6}min {self.model_mae[key]:>8.3f} {base} {shown}")
        lines.append(f"rows: {self.rows} (MAE in people)")
        return "\n".join(lines)


def weekday_time_table(grid: Grid, before: int) -> npt.NDArray[np.float64]:
    """Mean count per (weekday, slot of day) over grid indices ``< before``; gaps filled by fallbacks."""
    values = grid.values[: max(0, before)]
    k = np.arange(values.size)
    start_min = grid.start.hour * 60 + grid.start.minute
    slot = ((start_min + k * STEP_MIN) % 1440) // STEP_MIN
    weekday = (grid.start.weekday() + (start_min + k * STEP_MIN) // 1440) % 7
    known = ~np.isnan(values)
    sums = np.zeros((7, DAY_STEPS))
    counts = np.zeros((7, DAY_STEPS))
    np.add.at(sums, (weekday[known], slot[known]), values[known])
    np.add.at(counts, (weekday[known], slot[known]), 1.0)
    overall = float(values[known].mean()) if known.any() else 0.0
    slot_counts = counts.sum(axis=0)
    by_slot = np.where(slot_counts > 0, sums.sum(axis=0) / np.maximum(slot_counts, 1), overall)
    return np.where(counts > 0, sums / np.maximum(counts, 1), by_slot[None, :])


def evaluate(
    forecaster: Forecaster,
    history: Mapping[str, Sequence[Observation]],
    start: datetime,
    calendar: LibraryCalendar | None = None,
) -> EvalReport:
    """Score ``forecaster`` and the baselines on every zone's rows at or after ``start``."""
    horizons = forecaster.horizons
    errors: dict[str, list[list[npt.NDArray[np.float64]]]] = {
        name: [[] for _ in horizons] for name in ("model", *BASELINES)
    }
    rows = 0
    for zone, obs in history.items():
        if len(obs) < 2:
            continue
        grid = resample(obs)
        y = grid.values
        first = grid.index_of(start)
        if grid.time_at(first) < start:
            first += 1
        first = max(0, first)
        steps = [h // STEP_MIN for h in horizons]
        k = np.arange(first, y.size - max(steps), dtype=np.int64)
        if k.size == 0:
            continue
        ok = ~np.isnan(y[k])
        for s in steps:
            for back in (0, DAY_STEPS, WEEK_STEPS):
                idx = k + s - back
                ok &= (idx >= 0) & ~np.isnan(y[np.clip(idx, 0, y.size - 1)])
        k = k[ok]
        if k.size == 0:
            continue
        before = [v for t, v in obs if t < start]
        scale = forecaster.info.zone_scale.get(zone) or max([1.0, *before] if before else [1.0, *(v for _, v in obs)])
        fitted = weekday_time_table(grid, first)
        start_min = grid.start.hour * 60 + grid.start.minute
        x = feature_rows(grid, k, scale, calendar, forecaster.info.feature_version)
        pred = forecaster.quantiles(x)[:, :, 1] * scale
        rows += int(k.size)
        for j, s in enumerate(steps):
            truth = y[k + s]
            target_min = start_min + (k + s) * STEP_MIN
            weekday = (grid.start.weekday() + target_min // 1440) % 7
            slot = (target_min % 1440) // STEP_MIN
            guesses = {
                "model": pred[:, j],
                "last_value": y[k],
                "same_time_yesterday": y[k + s - DAY_STEPS],
                "same_time_last_week": y[k + s - WEEK_STEPS],
                "weekday_time_mean": fitted[weekday, slot],
            }
            for name, guess in guesses.items():
                errors[name][j].append(np.abs(guess - truth))
    if rows == 0:
        raise HistoryError(
            f"no rows to score at or after {start.isoformat()}: each needs the count at t, t+h, "
            "and one day and one week before t+h; give at least a week of history before --from"
        )

    def mae(name: str, j: int) -> float:
        return round(float(np.concatenate(errors[name][j]).mean()), 4)

    model_mae = {str(h): mae("model", j) for j, h in enumerate(horizons)}
    baseline_mae = {b: {str(h): mae(b, j) for j, h in enumerate(horizons)} for b in BASELINES}
    skill: dict[str, float | None] = {}
    for h in horizons:
        best = min(baseline_mae[b][str(h)] for b in BASELINES)
        skill[str(h)] = round(1.0 - model_mae[str(h)] / best, 4) if best > 0 else None
    return EvalReport(tuple(horizons), model_mae, baseline_mae, skill, rows)

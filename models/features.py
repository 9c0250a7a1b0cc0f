"""The forecast's features: one function used by training, evaluation and the edge.

Training (``models.training``), scoring (``models.evaluation``) and the gateway
(``models.inference``) all call :func:`feature_rows` on a :class:`~models.history.Grid`, so the
three cannot drift apart. Any change to what a column means needs a new version in
:data:`FEATURE_VERSIONS`; a model's metadata names the version it was trained on, and the gateway
computes that version's columns for it (so models of older versions keep running).

Versions: ``demand-v3`` (:data:`FEATURE_NAMES`, 102 columns: the shipped models and the
federation's start) and ``demand-v4`` (:data:`FEATURE_NAMES_V4`: the v3 columns, then the
*carried* columns below, 142 in all).

A row describes one zone at one grid time ``t`` (the anchor) using only grid values at or before
``t``. Counts are divided by the zone's *scale* (its seat count, or the largest count seen), so
one model serves zones of any size: the model predicts fractions, the edge multiplies back.
Missing inputs (sensor gaps, the first week of a new gateway) are 0 with a ``*_missing`` column
set to 1, so the model learns to lean on the calendar and time of day instead.

Columns, in order (see :data:`FEATURE_NAMES`):

- ``tod_sin``, ``tod_cos``: time of day on the unit circle (23:45 is next to 00:00);
- ``dow_0`` .. ``dow_6``: weekday one-hot, Monday first;
- ``day_exam``, ``day_holiday``: the calendar's day type (term is both 0). Nested on purpose: a
  model that never saw an exam day treats one as term (the teaching year goes on), where a
  one-hot ``day_term = 0`` would send it down the holiday branch;
- ``now`` and the trends ``trend_15``, ``trend_60`` (change over 15 and 60 minutes), each with ``*_missing``;
- for each lead ``L`` in :data:`LAG_LEADS_MIN`, at the time ``t + L`` one day and one week earlier
  (``day_L``, ``week_L``), the mean over the last seven days at that time (``days7_L``) and the mean
  over the same weekday of the last four weeks (``weeks4_L``, the weekday profile), each with
  ``*_missing``;
- ``now_vs_days7``, ``now_vs_weeks4``: the current count minus those profiles at ``t`` (a busy day
  stays busy), each with ``*_missing``. The leads cover the usual horizons, so "same time yesterday" of the target
  time is a column for every horizon up to four hours;
- the calendar's view of each lead's target time ``t + L``: ``open_L`` (the library is open then,
  from the calendar's opening hours), ``sametype_day_L`` and ``sametype_week_L`` (the day one day
  and one week earlier was of the same kind, holiday or teaching year: is that lag a fair guide?),
  and ``typed_L``, the mean over the last five days *of the same kind and weekday class* (Monday-Friday,
  Saturday, Sunday) within four weeks, with ``*_missing``; ``now_vs_typed`` the current count
  minus that profile at ``t``. Without a calendar every day is term and open all day, and
  ``calendar_missing`` is 1. After a holiday week, "last week" is a holiday while the typed
  profile is last term week: the calendar tells the model which of its lags to believe.

demand-v4 adds, for each lead ``L`` in :data:`CARRY_LEADS_MIN` and each profile ``P`` of
:data:`CARRY_PROFILES` (the typed and weekday profiles, the last seven days, yesterday),
``carry_P_L = now + P(t + L) - P(t)``: the count now carried to the target time by the change the
profile makes over the same stretch of the day. A tree splits on one column at a time and cannot
form this sum; it is the forecast "today runs like the usual day, shifted to today's level", which
an hour or two ahead beats both the count now and the profile. When the profile is unknown at
``t`` or at ``t + L`` (a new gateway, a sensor gap) the column falls back to the count now (no
change expected) with ``carry_P_L_missing`` = 1; with the count now unknown as well it is 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from models.calendar import DAY_TYPES, LibraryCalendar
from models.history import STEP_MIN, Grid

V3 = "demand-v3"
V4 = "demand-v4"
FEATURE_VERSIONS: tuple[str, ...] = (V3, V4)
#: The base version: what :data:`FEATURE_NAMES` lists, the shipped models and the federation use.
FEATURE_VERSION = V3
#: What ``edge-agent model train`` builds unless told otherwise.
LATEST_VERSION = V4
LAG_LEADS_MIN: tuple[int, ...] = (0, 15, 30, 60, 120, 240)
DAY_STEPS = 1440 // STEP_MIN
WEEK_STEPS = 7 * DAY_STEPS
HISTORY_WEEKS = 4  # the weekday profile looks back four weeks: the edge keeps 29 days per zone
TYPED_DAYS = 5  # the typed profile averages the last five days of the same kind ...
TYPED_WINDOW_DAYS = 28  # ... found within four weeks


def _names() -> tuple[str, ...]:
    names = ["tod_sin", "tod_cos", *(f"dow_{d}" for d in range(7)), *(f"day_{k}" for k in DAY_TYPES[1:])]
    for base in ("now", "trend_15", "trend_60"):
        names += [base, f"{base}_missing"]
    for lead in LAG_LEADS_MIN:
        for base in ("day", "week", "days7", "weeks4"):
            names += [f"{base}_{lead}", f"{base}_{lead}_missing"]
    for base in ("now_vs_days7", "now_vs_weeks4"):
        names += [base, f"{base}_missing"]
    for lead in LAG_LEADS_MIN:
        names += [f"open_{lead}", f"sametype_day_{lead}", f"sametype_week_{lead}", f"typed_{lead}",
                  f"typed_{lead}_missing"]
    names += ["now_vs_typed", "now_vs_typed_missing", "calendar_missing"]
    return tuple(names)


CARRY_LEADS_MIN: tuple[int, ...] = tuple(lead for lead in LAG_LEADS_MIN if lead > 0)
CARRY_PROFILES: tuple[str, ...] = ("typed", "weeks4", "days7", "day")


def _carry_names() -> tuple[str, ...]:
    return tuple(n for lead in CARRY_LEADS_MIN for p in CARRY_PROFILES for n in (f"carry_{p}_{lead}",
                                                                                  f"carry_{p}_{lead}_missing"))


FEATURE_NAMES: tuple[str, ...] = _names()
N_FEATURES = len(FEATURE_NAMES)
FEATURE_NAMES_V4: tuple[str, ...] = FEATURE_NAMES + _carry_names()
_NAMES = {V3: FEATURE_NAMES, V4: FEATURE_NAMES_V4}


def feature_names(version: str) -> tuple[str, ...]:
    """The columns of ``version``, in order; ValueError naming the known versions for any other."""
    try:
        return _NAMES[version]
    except KeyError:
        raise ValueError(f"unknown feature version {version!r}; this code computes {', '.join(FEATURE_VERSIONS)}"
                         ) from None


def version_of_width(width: int) -> str:
    """The feature version whose column count is ``width`` (ValueError if none)."""
    for version, names in _NAMES.items():
        if len(names) == width:
            return version
    known = ", ".join(f"{v}: {len(n)}" for v, n in _NAMES.items())
    raise ValueError(f"{width} feature columns match no version ({known})")

DayTypeOf = Callable[[date], str]


def _take(values: npt.NDArray[np.float64], idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """values[idx] with NaN where idx is before the start of the grid."""
    out = np.full(idx.shape, np.nan)
    ok = (idx >= 0) & (idx < values.size)
    out[ok] = values[idx[ok]]
    return out


def _with_flag(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    missing = np.isnan(x)
    return np.where(missing, 0.0, x), missing.astype(np.float64)


def _mean_of(y: npt.NDArray[np.float64], indices: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.float64]:
    """Mean of the known values among ``y[i]`` for each row's set of indices; NaN if none is known."""
    past = np.stack([_take(y, i) for i in indices])
    seen = ~np.isnan(past)
    n = seen.sum(axis=0)
    total = np.where(seen, past, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def feature_rows(
    grid: Grid,
    at: npt.NDArray[np.int64] | list[int],
    scale: float,
    calendar: LibraryCalendar | None = None,
    version: str = FEATURE_VERSION,
) -> npt.NDArray[np.float32]:
    """Feature matrix ``[len(at), len(feature_names(version))]`` (float32) for the zone in ``grid`` at
    grid indices ``at``.

    ``scale`` (> 0) normalises counts; ``calendar`` None means every day is term.
    """
    width = len(feature_names(version))
    if grid.step_min != STEP_MIN:
        raise ValueError(f"features are defined on a {STEP_MIN}-minute grid, not {grid.step_min}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    k = np.asarray(at, dtype=np.int64)
    y = grid.values / scale
    cols: list[npt.NDArray[np.float64]] = []

    start_min = grid.start.hour * 60 + grid.start.minute
    tod = ((start_min + k * STEP_MIN) % 1440) / 1440.0 * 2.0 * math.pi
    cols += [np.sin(tod), np.cos(tod)]
    day_offset = (start_min + k * STEP_MIN) // 1440
    first_day = grid.start.date()
    days = np.unique(day_offset)
    by_day: dict[int, tuple[int, str]] = {}
    for d in days.tolist():
        day = first_day + timedelta(days=int(d))
        by_day[int(d)] = (day.weekday(), calendar.day_type(day) if calendar is not None else "term")
    weekday = np.array([by_day[int(d)][0] for d in day_offset], dtype=np.int64)
    kind = [by_day[int(d)][1] for d in day_offset]
    cols += [(weekday == w).astype(np.float64) for w in range(7)]
    cols += [np.array([x == t for x in kind], dtype=np.float64) for t in DAY_TYPES[1:]]

    now = _take(y, k)
    for series in (now, now - _take(y, k - 1), now - _take(y, k - 60 // STEP_MIN)):
        cols += list(_with_flag(series))
    profiles: list[npt.NDArray[np.float64]] = []
    for lead in LAG_LEADS_MIN:
        target = k + lead // STEP_MIN
        cols += list(_with_flag(_take(y, target - DAY_STEPS)))
        cols += list(_with_flag(_take(y, target - WEEK_STEPS)))
        days7 = _mean_of(y, [target - d * DAY_STEPS for d in range(1, 8)])
        weeks4 = _mean_of(y, [target - w * WEEK_STEPS for w in range(1, HISTORY_WEEKS + 1)])
        cols += [*_with_flag(days7), *_with_flag(weeks4)]
        if lead == 0:
            profiles = [days7, weeks4]
    # How far today runs above or below the usual level right now: busy days stay busy.
    for profile in profiles:
        cols += list(_with_flag(now - profile))
    cols += _calendar_columns(grid, k, y, now, calendar)
    if version == V4:
        cols += carry_columns({name: col for name, col in zip(FEATURE_NAMES, cols, strict=True)})
    return np.stack(cols, axis=1).astype(np.float32) if k.size else np.zeros((0, width), np.float32)


def carry_columns(v3: dict[str, npt.NDArray[np.float64]]) -> list[npt.NDArray[np.float64]]:
    """The demand-v4 columns from the v3 columns of the same rows (by name): see the module docstring.

    A v3 value that is missing is 0 with its flag set; the flags, not the zeros, say what is known.
    """
    now = np.where(v3["now_missing"] > 0, np.nan, v3["now"])
    cols: list[npt.NDArray[np.float64]] = []
    for lead in CARRY_LEADS_MIN:
        for p in CARRY_PROFILES:
            change = v3[f"{p}_{lead}"] - v3[f"{p}_0"]
            unknown = (v3[f"{p}_{lead}_missing"] > 0) | (v3[f"{p}_0_missing"] > 0) | np.isnan(now)
            carried = np.where(unknown, now, now + change)
            cols += [np.where(np.isnan(carried), 0.0, carried), unknown.astype(np.float64)]
    return cols


def _day_kinds(first_day: date, lo: int, hi: int, calendar: LibraryCalendar | None) -> npt.NDArray[np.int64]:
    """For day offsets ``lo..hi`` from ``first_day``: holiday (0/1) * 3 + weekday class (0 weekday, 1 Sat, 2 Sun).

    Term and exam days are one kind here: both are the teaching year, and a profile of exam days
    alone would be empty for the first exam week a gateway ever sees.
    """
    out = np.zeros(hi - lo + 1, dtype=np.int64)
    for i in range(hi - lo + 1):
        day = first_day + timedelta(days=lo + i)
        holiday = calendar is not None and calendar.day_type(day) == "holiday"
        out[i] = int(holiday) * 3 + max(0, day.weekday() - 4)
    return out


def _day_hours(first_day: date, lo: int, hi: int, calendar: LibraryCalendar) -> npt.NDArray[np.int64]:
    """Opening and closing minute of each day offset ``lo..hi`` (-1, -1 when closed all day)."""
    out = np.full((hi - lo + 1, 2), -1, dtype=np.int64)
    for i in range(hi - lo + 1):
        hours = calendar.hours(first_day + timedelta(days=lo + i))
        if hours is not None:
            out[i] = (hours[0].hour * 60 + hours[0].minute, hours[1].hour * 60 + hours[1].minute)
    return out


def _open_at(hours: npt.NDArray[np.int64], day: npt.NDArray[np.int64], minute: npt.NDArray[np.int64]) -> npt.NDArray[
        np.float64]:
    """1 where the library is open at ``minute`` of day index ``day`` (hours may cross midnight), as
    :meth:`LibraryCalendar.is_open` decides."""
    opens, closes = hours[day, 0], hours[day, 1]
    known = opens >= 0
    same_day = (opens < closes) & (opens <= minute) & (minute < closes)
    today = known & (same_day | ((opens >= closes) & (minute >= opens)))
    prev_open, prev_close = hours[np.maximum(day - 1, 0), 0], hours[np.maximum(day - 1, 0), 1]
    spill = (day > 0) & (prev_open >= 0) & (prev_open >= prev_close) & (minute < prev_close)
    out: npt.NDArray[np.float64] = (today | spill).astype(np.float64)
    return out


def _calendar_columns(
    grid: Grid, k: npt.NDArray[np.int64], y: npt.NDArray[np.float64], now: npt.NDArray[np.float64],
    calendar: LibraryCalendar | None,
) -> list[npt.NDArray[np.float64]]:
    """The calendar-aware columns (see the module docstring), for anchors ``k``."""
    start_min = grid.start.hour * 60 + grid.start.minute
    first_day = grid.start.date()
    leads = np.array(LAG_LEADS_MIN, dtype=np.int64) // STEP_MIN
    if k.size == 0:
        return [np.zeros(0)] * (5 * len(LAG_LEADS_MIN) + 3)
    day_lo = int((start_min + (k.min()) * STEP_MIN) // 1440) - TYPED_WINDOW_DAYS
    day_hi = int((start_min + (k.max() + leads.max()) * STEP_MIN) // 1440)
    kinds = _day_kinds(first_day, day_lo, day_hi, calendar)
    hours = None if calendar is None else _day_hours(first_day, day_lo, day_hi, calendar)
    cols: list[npt.NDArray[np.float64]] = []
    typed_now = np.full(k.shape, np.nan)
    for lead, steps in zip(LAG_LEADS_MIN, leads.tolist(), strict=True):
        target = k + steps
        minute = start_min + target * STEP_MIN
        day = minute // 1440
        kind = kinds[day - day_lo]
        cols.append(np.ones(k.shape) if hours is None else _open_at(hours, day - day_lo, minute % 1440))
        cols.append((kinds[day - 1 - day_lo] // 3 == kind // 3).astype(np.float64))
        cols.append((kinds[day - 7 - day_lo] // 3 == kind // 3).astype(np.float64))
        total, count = np.zeros(k.shape), np.zeros(k.shape)
        for back in range(1, TYPED_WINDOW_DAYS + 1):
            same = (kinds[day - back - day_lo] == kind) & (count < TYPED_DAYS)
            past = _take(y, target - back * DAY_STEPS)
            use = same & ~np.isnan(past)
            total += np.where(use, past, 0.0)
            count += use
        typed = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        cols += list(_with_flag(typed))
        if lead == 0:
            typed_now = typed
    cols += list(_with_flag(now - typed_now))
    cols.append(np.full(k.shape, 1.0 if calendar is None else 0.0))
    return cols

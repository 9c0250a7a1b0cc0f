"""The forecast's features: one function used by training, evaluation and the edge.

Training (``models.training``), scoring (``models.evaluation``) and the gateway
(``models.inference``) all call :func:`feature_rows` on a :class:`~models.history.Grid`, so the
three cannot drift apart. Any change to what a column means needs a new version in
:data:`FEATURE_VERSIONS`; a model's metadata names the version it was trained on, and the gateway
computes that version's columns for it (so models of older versions keep running).

Versions: ``demand-v3`` (:data:`FEATURE_NAMES`, 102 columns: the shipped models and the
federation's start), ``demand-v4`` (:data:`FEATURE_NAMES_V4`: the v3 columns, then the
*carried* columns below, 142 in all) and ``demand-v5`` (:data:`FEATURE_NAMES_V5`: the v4 columns,
then the recent means, the *offset* columns and the differences from the count now below, 253 in
all; what ``model train`` builds).

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

demand-v5 adds ``mean_30`` and ``mean_60``, the mean of the known grid values from ``t - 30`` (``t -
60``) minutes to ``t``, both ends included, each with ``*_missing``; then, for each lead ``L`` and
profile ``P`` as above, ``offset_P_L = P(t + L) + mean(y(t - j) - P(t - j))`` over the grid times
``t - 60 min .. t`` where both are known: the profile at the target time, shifted by how far today
has run from it over the last hour. The counts are noisy (a gym's readings 10 minutes apart differ
by four people on average); an hour's mean offset is a steadier "today's level" than the single
count now that ``carry_P_L`` rests on. The profiles at the past times are computed as at the target
times (the typed profile from the day type of ``t - j``'s own day). When the profile at ``t + L`` or
every offset is unknown the column falls back to ``mean_60`` with ``offset_P_L_missing`` = 1, and
to 0 without any count in the hour. Last, for each of those columns, each ``carry_P_L`` and each
lag and profile at a lead after 0 (``day_L``, ``week_L``, ``days7_L``, ``weeks4_L``, ``typed_L``;
:data:`RELATIVE_TO_NOW`), ``X_vs_now = X - now``, the change each forecasts, from the columns as
they stand (a missing ``X`` is 0 or its fallback, and its own flag says so; 0 when the count now
is unknown). The trees learn the change from the count now (``models.training``) and split on
one column at a time, so a forecast of the change must be a column, not a level they would have
to subtract the count now from. Every value still lies at or before ``t``, within the 29 days the
edge keeps.
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
V5 = "demand-v5"
FEATURE_VERSIONS: tuple[str, ...] = (V3, V4, V5)
#: The base version: what :data:`FEATURE_NAMES` lists, the shipped models and the federation use.
FEATURE_VERSION = V3
#: What ``edge-agent model train`` builds unless told otherwise.
LATEST_VERSION = V5
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
#: demand-v5's windows: the count's mean over the last 30 and 60 minutes, both ends included.
MEAN_WINDOWS_MIN: tuple[int, ...] = (30, 60)
#: demand-v5 measures today's offset from each profile over the last hour (grid times t-60 .. t).
OFFSET_WINDOW_MIN = 60


def _offset_names() -> tuple[str, ...]:
    names = [n for w in MEAN_WINDOWS_MIN for n in (f"mean_{w}", f"mean_{w}_missing")]
    names += [n for lead in CARRY_LEADS_MIN for p in CARRY_PROFILES for n in (f"offset_{p}_{lead}",
                                                                              f"offset_{p}_{lead}_missing")]
    return tuple(names) + tuple(f"{n}_vs_now" for n in RELATIVE_TO_NOW)


#: The demand-v5 columns whose difference from the count now is a column too (``X_vs_now``).
RELATIVE_TO_NOW: tuple[str, ...] = (
    *(f"mean_{w}" for w in MEAN_WINDOWS_MIN),
    *(f"{kind}_{p}_{lead}" for kind in ("carry", "offset") for lead in CARRY_LEADS_MIN for p in CARRY_PROFILES),
    *(f"{b}_{lead}" for lead in CARRY_LEADS_MIN for b in ("day", "week", "days7", "weeks4", "typed")),
)


FEATURE_NAMES_V5: tuple[str, ...] = FEATURE_NAMES_V4 + _offset_names()
_NAMES = {V3: FEATURE_NAMES, V4: FEATURE_NAMES_V4, V5: FEATURE_NAMES_V5}


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
    if version in (V4, V5):
        v3 = {name: col for name, col in zip(FEATURE_NAMES, cols, strict=True)}
        now_missing = v3["now_missing"] > 0
        cols += carry_columns(v3)
        if version == V5:
            cols += offset_columns(grid, k, y, calendar, v3)
            named = dict(zip(FEATURE_NAMES_V5, cols, strict=False))  # all but the _vs_now columns
            cols += [np.where(now_missing, 0.0, named[n] - v3["now"]) for n in RELATIVE_TO_NOW]
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


def _typed_profile(y: npt.NDArray[np.float64], target: npt.NDArray[np.int64], day: npt.NDArray[np.int64],
                   kinds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """The typed profile at grid indices ``target`` whose days are ``day`` (indices into ``kinds``):
    the mean of the last :data:`TYPED_DAYS` known values at that time of day on days of the same
    kind within :data:`TYPED_WINDOW_DAYS`; NaN if none."""
    kind = kinds[day]
    total, count = np.zeros(target.shape), np.zeros(target.shape)
    for back in range(1, TYPED_WINDOW_DAYS + 1):
        same = (kinds[day - back] == kind) & (count < TYPED_DAYS)
        past = _take(y, target - back * DAY_STEPS)
        use = same & ~np.isnan(past)
        total += np.where(use, past, 0.0)
        count += use
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


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
        typed = _typed_profile(y, target, day - day_lo, kinds)
        cols += list(_with_flag(typed))
        if lead == 0:
            typed_now = typed
    cols += list(_with_flag(now - typed_now))
    cols.append(np.full(k.shape, 1.0 if calendar is None else 0.0))
    return cols


def offset_columns(
    grid: Grid, k: npt.NDArray[np.int64], y: npt.NDArray[np.float64], calendar: LibraryCalendar | None,
    v3: dict[str, npt.NDArray[np.float64]],
) -> list[npt.NDArray[np.float64]]:
    """The demand-v5 columns for anchors ``k`` (see the module docstring); ``v3`` holds the same
    rows' demand-v3 columns by name (the profiles at the target times)."""
    window = [_take(y, k - j) for j in range(OFFSET_WINDOW_MIN // STEP_MIN + 1)]
    cols: list[npt.NDArray[np.float64]] = []
    means: dict[int, npt.NDArray[np.float64]] = {}
    for w in MEAN_WINDOWS_MIN:
        means[w] = _nanmean(window[: w // STEP_MIN + 1])
        cols += list(_with_flag(means[w]))
    fallback = means[max(MEAN_WINDOWS_MIN)]
    past = _past_profiles(grid, k, y, calendar)
    offsets = {p: _nanmean([now - before for now, before in zip(window, past[p], strict=True)])
               for p in CARRY_PROFILES}
    for lead in CARRY_LEADS_MIN:
        for p in CARRY_PROFILES:
            at_target = np.where(v3[f"{p}_{lead}_missing"] > 0, np.nan, v3[f"{p}_{lead}"])
            value = at_target + offsets[p]
            unknown = np.isnan(value)
            value = np.where(unknown, fallback, value)
            cols += [np.where(np.isnan(value), 0.0, value), unknown.astype(np.float64)]
    return cols


def _nanmean(values: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    """Element-wise mean of the known values; NaN where none is known."""
    stack = np.stack(values)
    seen = ~np.isnan(stack)
    n = seen.sum(axis=0)
    return np.where(n > 0, np.where(seen, stack, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)


def _past_profiles(grid: Grid, k: npt.NDArray[np.int64], y: npt.NDArray[np.float64],
                   calendar: LibraryCalendar | None) -> dict[str, list[npt.NDArray[np.float64]]]:
    """Each profile of :data:`CARRY_PROFILES` at the grid times ``t``, ``t - 15 min`` .. ``t - 60 min``
    (one array per time, newest first), computed exactly as the demand-v3 columns compute them at
    the target times."""
    out: dict[str, list[npt.NDArray[np.float64]]] = {p: [] for p in CARRY_PROFILES}
    if k.size == 0:
        return {p: [np.zeros(0)] * (OFFSET_WINDOW_MIN // STEP_MIN + 1) for p in CARRY_PROFILES}
    start_min = grid.start.hour * 60 + grid.start.minute
    back = OFFSET_WINDOW_MIN // STEP_MIN
    day_lo = int((start_min + (k.min() - back) * STEP_MIN) // 1440) - TYPED_WINDOW_DAYS
    day_hi = int((start_min + k.max() * STEP_MIN) // 1440)
    kinds = _day_kinds(grid.start.date(), day_lo, day_hi, calendar)
    target = (k[None, :] - np.arange(back + 1)[:, None]).ravel()  # all five times at once: one pass per profile
    day = (start_min + target * STEP_MIN) // 1440
    values = {
        "typed": _typed_profile(y, target, day - day_lo, kinds),
        "weeks4": _mean_of(y, [target - w * WEEK_STEPS for w in range(1, HISTORY_WEEKS + 1)]),
        "days7": _mean_of(y, [target - d * DAY_STEPS for d in range(1, 8)]),
        "day": _take(y, target - DAY_STEPS),
    }
    for p in CARRY_PROFILES:
        out[p] = list(values[p].reshape(back + 1, k.size))
    return out

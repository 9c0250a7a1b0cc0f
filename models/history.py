"""Occupancy histories: the CSV format, the regular time grid, and the edge's bounded memory.

History CSV (what ``edge-agent model train/eval`` read)::

    timestamp,zone,occupied
    2024-10-01T08:15:00,z1-quiet,7
    2024-10-01T08:15:00+02:00,z2-group,3

One row per zone and time, any order, sampled irregularly (every 5-60 minutes) with gaps.
Timestamps are ISO 8601. Demand follows the *local wall clock* (opening hours, lunch), so a
timestamp with an offset is read as the wall time written in it and the offset is dropped:
``2015-08-14 17:00:11-07:00`` becomes 17:00:11 local. Across a daylight-saving change this keeps
17:00 at 17:00 (converting to UTC would shift the daily pattern by an hour for half the year).

Everything downstream works on a :class:`Grid`: occupancy on a regular grid (``STEP_MIN``) where
the value at grid time ``g`` is the last observation at or before ``g`` no older than
``HOLD_MIN``, else missing (NaN). Values are carried forward over short gaps only and never
interpolated, and a grid value never uses data after its own time, so features are causal.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.errors import HistoryError

STEP_MIN = 15
HOLD_MIN = 60
EPOCH = datetime(2000, 1, 3)  # a Monday: grid arithmetic in minutes since then
HEADER = ("timestamp", "zone", "occupied")

Observation = tuple[datetime, float]


def wall_time(t: datetime) -> datetime:
    """The local wall time of ``t``: naive stays as is, an offset is dropped (see module doc)."""
    return t.replace(tzinfo=None) if t.tzinfo is not None else t


def minutes(t: datetime) -> float:
    """Minutes since :data:`EPOCH` of a wall time."""
    return (wall_time(t) - EPOCH) / timedelta(minutes=1)


def at_minutes(m: float) -> datetime:
    """Inverse of :func:`minutes`."""
    return EPOCH + timedelta(minutes=m)


def floor_to_grid(t: datetime, step_min: int = STEP_MIN) -> datetime:
    """The grid time at or before ``t``."""
    return at_minutes(math.floor(minutes(t) / step_min) * step_min)


def read_history_csv(path: str | Path) -> dict[str, list[Observation]]:
    """Read a history CSV into time-sorted observations per zone.

    Every malformed line raises :class:`HistoryError` ``file:line: what is wrong; what to write``.
    A repeated (zone, timestamp) keeps the later row.
    """
    p = Path(path)
    try:
        handle = p.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise HistoryError(f"{p}: cannot read the history ({exc.strerror or exc})") from None
    with handle:
        try:
            return parse_history(csv.reader(handle), str(p))
        except UnicodeDecodeError:
            raise HistoryError(f"{p}: not UTF-8 text; is this really a history CSV?") from None
        except csv.Error as exc:
            raise HistoryError(f"{p}: not valid CSV ({exc})") from None


def parse_history(rows: Iterable[Sequence[str]], source: str = "<history>") -> dict[str, list[Observation]]:
    """Validate CSV rows (header first); see :func:`read_history_csv`."""
    it = iter(rows)
    header = next(it, None)
    if header is None:
        raise HistoryError(f"{source}: the file is empty; the first line must be {','.join(HEADER)}", line=1)
    if tuple(h.strip().lower() for h in header) != HEADER:
        raise HistoryError(f"{source}:1: header is {','.join(header)!r}; write {','.join(HEADER)}", line=1)
    by_zone: dict[str, dict[datetime, float]] = {}
    for line, row in enumerate(it, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 3:
            raise HistoryError(f"{source}:{line}: {len(row)} fields; write timestamp,zone,occupied", line=line)
        stamp, zone, count = (c.strip() for c in row)
        try:
            t = wall_time(datetime.fromisoformat(stamp))
        except ValueError:
            raise HistoryError(
                f"{source}:{line}: bad timestamp {stamp!r}; write ISO 8601 like 2024-10-01T08:15:00 or with +02:00",
                line=line,
            ) from None
        if not zone:
            raise HistoryError(f"{source}:{line}: empty zone; write the zone id", line=line)
        try:
            value = float(count)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or value < 0:
            raise HistoryError(f"{source}:{line}: occupied {count!r} is not a count >= 0", line=line)
        by_zone.setdefault(zone, {})[t] = value
    if not by_zone:
        raise HistoryError(f"{source}: no data rows after the header", line=None)
    return {z: sorted(obs.items()) for z, obs in by_zone.items()}


def sampling_interval_min(observations: Sequence[Observation]) -> float:
    """Median spacing of observations in minutes (inf with fewer than two)."""
    if len(observations) < 2:
        return math.inf
    t = np.array([minutes(o[0]) for o in observations])
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else math.inf


@dataclass(frozen=True)
class Grid:
    """Occupancy on a regular grid: ``values[k]`` is the count at ``start + k * step_min`` (NaN: unknown)."""

    start: datetime
    values: npt.NDArray[np.float64]
    step_min: int = STEP_MIN

    def time_at(self, k: int) -> datetime:
        return self.start + timedelta(minutes=k * self.step_min)

    def index_of(self, t: datetime) -> int:
        """Index of the grid time at or before ``t`` (may be out of range)."""
        return math.floor((minutes(t) - minutes(self.start)) / self.step_min)


def resample(
    observations: Sequence[Observation],
    start: datetime | None = None,
    end: datetime | None = None,
    step_min: int = STEP_MIN,
    hold_min: float = HOLD_MIN,
) -> Grid:
    """Put time-sorted observations on the grid from ``start`` to ``end`` (grid-aligned, inclusive).

    Defaults span the observations. The value at grid time ``g`` is the last observation ``<= g``
    if it is younger than ``hold_min``, else NaN: short gaps are carried forward, long ones stay gaps.
    """
    t_obs = np.array([minutes(o[0]) for o in observations], dtype=np.float64)
    v_obs = np.array([o[1] for o in observations], dtype=np.float64)
    if start is None or end is None:
        if not observations:
            raise HistoryError("no observations to put on the grid")
        start = start or observations[0][0]
        end = end or observations[-1][0]
    g0 = math.floor(minutes(start) / step_min) * step_min
    g1 = math.floor(minutes(end) / step_min) * step_min
    grid_t = np.arange(g0, g1 + step_min / 2, step_min, dtype=np.float64)
    values = np.full(grid_t.shape, np.nan)
    if t_obs.size:
        idx = np.searchsorted(t_obs, grid_t, side="right") - 1
        ok = idx >= 0
        last = np.where(ok, idx, 0)
        ok &= (grid_t - t_obs[last]) < hold_min
        values[ok] = v_obs[last[ok]]
    return Grid(start=at_minutes(g0), values=values, step_min=step_min)


class ZoneHistory:
    """The edge's bounded memory of one zone's people count, fed by :meth:`add`.

    Keeps the last observation in each grid slot ``(g - step, g]`` for ``keep_days`` (default
    29: the four-week weekday profile plus the longest lead), which is exactly what :func:`resample` needs, so
    the edge builds its features from the same grid function as training. Memory is bounded:
    at most ``keep_days * 96 + 5`` slots at 15 minutes (under 3,000 pairs per zone), however often counts arrive.
    """

    def __init__(self, capacity: float | None = None, keep_days: float = 29.0, step_min: int = STEP_MIN) -> None:
        self.capacity = capacity
        self.step_min = step_min
        # the span plus the hold window before its first grid time, so the oldest grid value is exact
        self.max_slots = int(keep_days * 1440 / step_min) + math.ceil(HOLD_MIN / step_min) + 1
        self._slots: dict[int, Observation] = {}

    def add(self, t: datetime, count: float) -> None:
        """Record the zone's count at wall time ``t`` (late arrivals fill their own slot)."""
        m = minutes(t)
        slot = math.ceil(m / self.step_min)
        held = self._slots.get(slot)
        if held is None or minutes(held[0]) <= m:
            self._slots[slot] = (wall_time(t), float(count))
        if len(self._slots) > self.max_slots:
            newest = max(self._slots)
            for old in [s for s in self._slots if s <= newest - self.max_slots]:
                del self._slots[old]

    def snapshot(self) -> ZoneHistory:
        """An independent copy, so a worker thread can read while the event loop keeps adding."""
        copy = ZoneHistory(self.capacity, step_min=self.step_min)
        copy.max_slots = self.max_slots
        copy._slots = dict(self._slots)
        return copy

    def __len__(self) -> int:
        return len(self._slots)

    def observations(self) -> list[Observation]:
        """Kept observations, oldest first."""
        return [self._slots[s] for s in sorted(self._slots)]

    def grid(self, end: datetime, span_days: float = 29.0) -> Grid:
        """The grid ending at ``floor(end)`` over ``span_days``, from observations ``<= end`` only."""
        g_end = floor_to_grid(end, self.step_min)
        start = g_end - timedelta(days=span_days)
        obs = [o for o in self.observations() if o[0] <= g_end]
        return resample(obs, start, g_end, self.step_min)

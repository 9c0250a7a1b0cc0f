"""A differentially private profile of each zone's day, for the typed-profile columns under DP.

demand-v4's ``carry_typed_L`` (the count now carried to the target time by the typed profile's
change, :mod:`models.features`) is the column that helps most, and it reads the last weeks' counts:
a model trained under DP over zone-days may not read it as computed (one zone-day would reach the
gradients of the next four weeks' rows). The gateway can instead *release* its profile with the
Gaussian mechanism, once per session, and compute the column from the release: a row then depends
on its own zone-day and on the release, and by composition the model costs the release's epsilon
plus DP-SGD's, accounted together (:func:`models.privacy.epsilon` with the entry
:func:`release_entry`; the unit stays one zone-day). The same release gives the typed profile's
own columns (``typed_L``, ``now_vs_typed``), so the model can weigh the profile's level against
the count now.

The release, per zone: each zone-day in the window is one vector, its hourly mean counts (fractions
of the zone scale, clipped to [0, 1]) and, weighted by :data:`KNOWN_WEIGHT`, which hours had data;
the vector is clipped to L2 norm ``clip`` and added to the sum of its kind (holiday or not x
Monday-Friday, Saturday, Sunday: the typed profile's kinds); every kind's sum, empty or not, gets
N(0, (noise_multiplier x clip)^2) on each coordinate. Adding or removing one zone-day moves one
kind's sum by at most ``clip``: the sensitivity under add/remove neighbours, the relation the RDP
accountant of DP-SGD's Poisson sampling uses too. The profile is sum / known, per hour, linearly
interpolated to the 15-minute grid (post-processing, free). A kind whose noisy count of known
days is below :data:`MIN_DAYS` stays unknown and the column falls back to the count now.

The release is used only as training input on the gateway; it is not sent anywhere (it would be
safe to: it is DP itself). The served model computes the column from the gateway's own history,
exactly as without DP: serving never leaves the gateway. A gateway draws it once in its life, with
its share of the budget (:func:`release_noise`), and keeps it in its state directory
(:func:`releases_to_json`): drawing it again would spend again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from models.calendar import LibraryCalendar
from models.features import CARRY_LEADS_MIN, DAY_STEPS, LAG_LEADS_MIN
from models.history import STEP_MIN, Grid, Observation
from models.quantile_mlp import START_SPREAD, Params, skip_from
from models.training import zone_grids, zone_scales

KINDS = 6  # holiday (0/1) x 3 + weekday class (0 Monday-Friday, 1 Saturday, 2 Sunday)
HOURS = 24
SLOTS_PER_HOUR = 60 // STEP_MIN
KNOWN_WEIGHT = 0.25  # how much of the clipped vector the "hour had data" part takes
MIN_DAYS = 2.0  # a kind with fewer (noisy) known days is not used
RELEASE_CLIP = 2.0  # L2 bound of one zone-day's vector: what the benchmark measured and a gateway uses

F64 = npt.NDArray[np.float64]


def day_kind(day: date, calendar: LibraryCalendar | None) -> int:
    """The typed profile's kind of a day (as :func:`models.features._day_kinds`)."""
    holiday = calendar is not None and calendar.day_type(day) == "holiday"
    return int(holiday) * 3 + max(0, day.weekday() - 4)


@dataclass(frozen=True)
class ReleasedProfile:
    """One zone's released profile: ``mean[kind, slot]`` (fractions; NaN: unknown) and how it was made."""

    mean: F64  # [KINDS, DAY_STEPS]
    clip: float
    noise_multiplier: float
    days: int  # zone-days that went in (treated as public, as DP-SGD's sampling rate does)


def release_entry(noise_multiplier: float) -> tuple[float, float, int]:
    """The release as an entry of :func:`models.privacy.epsilon`: one Gaussian mechanism (q = 1)."""
    return (1.0, noise_multiplier, 1)


def release_noise(epsilon: float, delta: float) -> float:
    """The release's noise multiplier that spends exactly ``epsilon`` at ``delta`` by itself."""
    from models.privacy import noise_for

    return noise_for(epsilon, 1.0, 1, delta)


def releases_to_json(releases: Mapping[str, ReleasedProfile]) -> str:
    """A gateway's release as JSON (unknown slots as null), to keep it across restarts."""
    return json.dumps({zone: {"mean": [[None if np.isnan(v) else float(v) for v in row] for row in r.mean],
                              "clip": r.clip, "noise_multiplier": r.noise_multiplier, "days": r.days}
                       for zone, r in sorted(releases.items())})


def releases_from_json(text: str) -> dict[str, ReleasedProfile]:
    """Read :func:`releases_to_json`'s text back (ValueError, KeyError or TypeError if it is not)."""
    doc: dict[str, Any] = json.loads(text)
    out: dict[str, ReleasedProfile] = {}
    for zone, r in doc.items():
        mean = np.array([[np.nan if v is None else float(v) for v in row] for row in r["mean"]], np.float64)
        if mean.shape != (KINDS, DAY_STEPS):
            raise ValueError(f"zone {zone}: a profile of shape {mean.shape}, not {(KINDS, DAY_STEPS)}")
        out[str(zone)] = ReleasedProfile(mean, float(r["clip"]), float(r["noise_multiplier"]), int(r["days"]))
    return out


def profile_start(in_day_start: Params, horizons: Sequence[int]) -> Params:
    """The released-profile federation's start: the in-day start's hidden layer, its output layer zeroed,
    the skip path reading the count now carried by the typed profile (``carry_typed`` of each horizon;
    demand-v4 and later), so training learns corrections to "now plus the profile's change"."""
    w1, b1, w2, _, ws = in_day_start
    spread = np.tile(np.asarray(START_SPREAD, np.float32), len(horizons))
    return skip_from([w1, b1, np.zeros_like(w2), spread, ws], horizons, lambda h: f"carry_typed_{h}")


def _day_vectors(grid: Grid, scale: float, lo: int, hi: int) -> tuple[list[int], F64]:
    """Day numbers (from ``grid.start``'s date) and the unclipped vector of each whole day in ``[lo, hi)``."""
    start_min = grid.start.hour * 60 + grid.start.minute
    k = np.arange(lo, hi)
    day = (start_min + k * STEP_MIN) // 1440
    slot = ((start_min + k * STEP_MIN) % 1440) // STEP_MIN
    frac = np.clip(grid.values[lo:hi] / scale, 0.0, 1.0)
    days = np.unique(day).tolist()
    out = np.zeros((len(days), 2 * HOURS))
    for i, d in enumerate(days):
        rows = day == d
        values = np.full(DAY_STEPS, np.nan)
        values[slot[rows]] = frac[rows]
        hourly = values.reshape(HOURS, SLOTS_PER_HOUR)
        known = ~np.all(np.isnan(hourly), axis=1)
        out[i, :HOURS] = np.where(known, np.nanmean(np.where(known[:, None], hourly, 0.0), axis=1), 0.0)
        out[i, HOURS:] = known * KNOWN_WEIGHT
    return [int(d) for d in days], out


def release_profiles(
    history: Mapping[str, Sequence[Observation]],
    calendar: LibraryCalendar | None,
    *,
    clip: float,
    noise_multiplier: float,
    rng: np.random.Generator,
    capacities: Mapping[str, float] | None = None,
    until: datetime | None = None,
) -> dict[str, ReleasedProfile]:
    """Each zone's profile from its zone-days before ``until``, released with the Gaussian mechanism.

    ``noise_multiplier`` 0 gives the exact (clipped) profile: no privacy, for comparison only.
    The noise must come from a generator the server cannot know (the OS's entropy on a gateway).
    """
    if not clip > 0:
        raise ValueError(f"clip must be > 0, not {clip!r}")
    scales = zone_scales(history, capacities)
    out: dict[str, ReleasedProfile] = {}
    for zone, data in sorted(zone_grids(history, scales, until).items()):
        sums, days = kind_sums(data.grid, data.scale, calendar, clip)
        if noise_multiplier > 0:
            sums += rng.normal(0.0, noise_multiplier * clip, sums.shape)
        known = sums[:, HOURS:] / KNOWN_WEIGHT
        hourly = np.where(known >= MIN_DAYS, sums[:, :HOURS] / np.maximum(known, MIN_DAYS), np.nan)
        out[zone] = ReleasedProfile(_to_slots(hourly), clip, noise_multiplier, days)
    return out


def kind_sums(grid: Grid, scale: float, calendar: LibraryCalendar | None, clip: float) -> tuple[F64, int]:
    """The sum of each kind's clipped zone-day vectors ``[KINDS, 2 * HOURS]`` before noise, and the number of
    zone-days: one zone-day moves exactly one kind's row, by at most ``clip`` (the release's sensitivity)."""
    days, vectors = _day_vectors(grid, scale, 0, grid.values.size)
    norms = np.linalg.norm(vectors, axis=1)
    vectors *= np.minimum(1.0, clip / np.maximum(norms, 1e-12))[:, None]
    sums = np.zeros((KINDS, 2 * HOURS))
    first = grid.start.date()
    for d, v in zip(days, vectors, strict=True):
        sums[day_kind(first + timedelta(days=d), calendar)] += v
    return sums, len(days)


def _to_slots(hourly: F64) -> F64:
    """Hourly means (each the middle of its hour) linearly interpolated onto the 15-minute slots, around
    the clock; an unknown hour leaves the slots that lean on it unknown."""
    centre = np.arange(HOURS) * SLOTS_PER_HOUR + (SLOTS_PER_HOUR - 1) / 2
    slots = np.arange(DAY_STEPS, dtype=np.float64)
    out = np.full((hourly.shape[0], DAY_STEPS), np.nan)
    for kind, row in enumerate(hourly):
        xs = np.concatenate([centre - DAY_STEPS, centre, centre + DAY_STEPS])
        ys = np.tile(row, 3)
        out[kind] = np.interp(slots, xs, ys)  # NaN propagates from an unknown neighbour
    return out


def carry_from_release(feats: npt.NDArray[np.float32], names: Sequence[str], grid: Grid, k: npt.NDArray[np.int64],
                       profile: ReleasedProfile | None, calendar: LibraryCalendar | None) -> None:
    """Overwrite the typed-profile columns of ``feats`` (rows at grid indices ``k``) in place from the
    *released* profile: ``typed_L`` (its value at the target time), ``now_vs_typed`` and
    ``carry_typed_L`` (the count now carried by its change). Without a release, or where it is
    unknown, they are missing as :mod:`models.features` makes them (the carried column: the count now)."""
    col = {n: i for i, n in enumerate(names)}
    now = feats[:, col["now"]].astype(np.float64)
    now_known = feats[:, col["now_missing"]] == 0
    start_min = grid.start.hour * 60 + grid.start.minute
    minute = start_min + k * STEP_MIN
    first = grid.start.date()
    kind_cache: dict[int, int] = {}

    def kinds(day_numbers: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        for d in np.unique(day_numbers).tolist():
            if d not in kind_cache:
                kind_cache[d] = day_kind(first + timedelta(days=int(d)), calendar)
        return np.array([kind_cache[int(d)] for d in day_numbers], dtype=np.int64)

    day, slot = minute // 1440, (minute % 1440) // STEP_MIN
    kind_now = kinds(day)
    for lead in LAG_LEADS_MIN:
        later = minute + lead
        level = (np.full(k.shape, np.nan) if profile is None
                 else profile.mean[kinds(later // 1440), (later % 1440) // STEP_MIN])
        feats[:, col[f"typed_{lead}"]] = np.where(np.isnan(level), 0.0, level)
        feats[:, col[f"typed_{lead}_missing"]] = np.isnan(level)
        if lead == 0:
            gap = np.where(now_known, now - level, np.nan)
            feats[:, col["now_vs_typed"]] = np.where(np.isnan(gap), 0.0, gap)
            feats[:, col["now_vs_typed_missing"]] = np.isnan(gap)
    for lead in CARRY_LEADS_MIN:
        if f"carry_typed_{lead}" not in col:  # demand-v3: the typed profile's own columns only
            continue
        later = minute + lead
        day2, slot2 = later // 1440, (later % 1440) // STEP_MIN
        if profile is None:
            change = np.full(k.shape, np.nan)
        else:
            change = profile.mean[kinds(day2), slot2] - profile.mean[kind_now, slot]
        unknown = np.isnan(change) | ~now_known
        feats[:, col[f"carry_typed_{lead}"]] = np.where(unknown, np.where(now_known, now, 0.0), now + change)
        feats[:, col[f"carry_typed_{lead}_missing"]] = unknown

"""Seat demand of a simulated library: how full each zone is, by time of day, day type and weekday.

One source of truth for "how busy is the library", used by

- the floor simulator's patron model (``simulator/world``), which draws arrivals from
  :func:`arrival_rate` and stay lengths from :func:`mean_stay_min`, so that the simulated floor
  reproduces :func:`expected_occupancy` on average (for a birth-death process with mean stay
  ``tau``, ``N' = lambda - N / tau``, hence ``lambda = N' + N / tau``);
- the seat-demand model's shipped default (``scripts/build_default_model.py``), trained on
  :func:`generate_history`, so a new gateway forecasts from day one.

The curves are fractions of a zone's seats, drawn from what academic libraries report: closed
overnight; a morning ramp from 08:00; a first peak late morning; a lunch dip around 12:30; the
day's peak mid-afternoon; an evening tail to 22:00. Exam weeks fill earlier, higher and stay later;
holidays (vacations) are low and short; weekends open later and close earlier. Quiet and silent
zones fill first (patrons who come early choose them), group rooms peak in the afternoon, lounges
bump at lunch, circulation space stays nearly empty.

Everything here is a pure function of its arguments, except :func:`generate_history`, whose
randomness comes from its ``seed`` only.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # only the type: the simulator does not depend on the daemon at run time
    from edge_agent.config import SiteConfig

DayType = Literal["term", "exam", "holiday"]
DAY_TYPES: tuple[DayType, ...] = ("term", "exam", "holiday")

# Knots (hour of day, fraction of seats) of the weekday curve per day type; linear in between,
# zero outside the first and last knot (the library is closed).
_WEEKDAY_CURVES: dict[str, tuple[tuple[float, float], ...]] = {
    "term": (
        (8.0, 0.0), (9.0, 0.22), (10.0, 0.48), (11.0, 0.62), (12.0, 0.60), (12.5, 0.50),
        (13.5, 0.58), (14.5, 0.72), (15.5, 0.76), (17.0, 0.62), (18.0, 0.44), (19.0, 0.36),
        (20.0, 0.27), (21.0, 0.16), (22.0, 0.0),
    ),
    "exam": (
        (8.0, 0.0), (8.5, 0.30), (9.0, 0.48), (10.0, 0.76), (11.0, 0.88), (12.0, 0.86), (12.5, 0.76),
        (13.5, 0.86), (15.0, 0.95), (17.0, 0.90), (18.0, 0.80), (19.0, 0.72), (20.0, 0.62),
        (21.0, 0.46), (21.75, 0.25), (22.0, 0.0),
    ),
    "holiday": (
        (10.0, 0.0), (11.0, 0.09), (12.0, 0.13), (13.0, 0.11), (14.5, 0.16), (16.0, 0.13),
        (17.0, 0.07), (18.0, 0.0),
    ),
}
# Weekends: opening 10:00-18:00 in term and exams (holiday weekends use the holiday curve).
_WEEKEND_CURVE: tuple[tuple[float, float], ...] = (
    (10.0, 0.0), (11.0, 0.25), (12.0, 0.38), (13.0, 0.36), (14.0, 0.45), (15.5, 0.48),
    (17.0, 0.30), (18.0, 0.0),
)
# Monday..Sunday multipliers: busy early week, Friday thinner, Saturday thinnest.
_WEEKDAY_FACTOR = (1.0, 1.04, 1.0, 0.95, 0.78, 0.62, 0.72)
# Per zone kind: (hours earlier the zone fills, peak multiplier, extra lunch bump).
_ZONE_PROFILE: dict[str, tuple[float, float, float]] = {
    "silent": (0.75, 1.08, 0.0),
    "quiet": (0.5, 1.05, 0.0),
    "open": (0.0, 0.95, 0.0),
    "group": (-1.0, 0.90, 0.0),
    "lounge": (0.0, 0.60, 0.18),
    "circulation": (0.0, 0.12, 0.05),
}
_MEAN_STAY_MIN: dict[str, float] = {"term": 95.0, "exam": 150.0, "holiday": 70.0}


def _curve(knots: tuple[tuple[float, float], ...], hour: float) -> float:
    """Piecewise-linear value of ``knots`` at ``hour``; 0 outside (closed)."""
    if hour <= knots[0][0] or hour >= knots[-1][0]:
        return 0.0
    for (h0, v0), (h1, v1) in itertools.pairwise(knots):
        if h0 <= hour <= h1:
            return v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
    return 0.0


def occupancy_fraction(zone_kind: str, when: datetime, day_type: str) -> float:
    """Expected fraction of a zone's seats taken at ``when`` (0..1), before any randomness."""
    shift, peak, lunch = _ZONE_PROFILE.get(zone_kind, _ZONE_PROFILE["open"])
    hour = when.hour + when.minute / 60.0 + when.second / 3600.0
    weekend = when.weekday() >= 5
    if day_type == "holiday":
        knots = _WEEKDAY_CURVES["holiday"]
    elif weekend:
        knots = _WEEKEND_CURVE
    else:
        knots = _WEEKDAY_CURVES["exam" if day_type == "exam" else "term"]
    # Early-filling zones reach the curve's level sooner in the morning (the shift fades out
    # between 12:00 and 14:00, so every zone empties at closing), but nobody is in before opening.
    fade = 1.0 if hour <= 12.0 else max(0.0, (14.0 - hour) / 2.0)
    base = _curve(knots, hour + shift * fade) if knots[0][0] < hour < knots[-1][0] else 0.0
    base *= min(1.0, max(0.0, (hour - knots[0][0]) / 0.5))  # doors open: nobody appears at once
    if base > 0.0 and lunch > 0.0:
        base += lunch * math.exp(-(((hour - 12.75) / 0.6) ** 2))
    factor = _WEEKDAY_FACTOR[when.weekday()] if day_type != "holiday" else 1.0
    return max(0.0, min(0.98, base * peak * factor))


def expected_occupancy(zone_kind: str, capacity: int, when: datetime, day_type: str) -> float:
    """Expected number of people in a zone of ``capacity`` seats at local wall time ``when``.

    ``zone_kind`` is a :class:`edge_agent.config.Zone` kind (unknown kinds behave like "open");
    ``day_type`` is "term", "exam" or "holiday".
    """
    return capacity * occupancy_fraction(zone_kind, when, day_type)


def mean_stay_min(zone_kind: str, day_type: str) -> float:
    """Mean length of one visit in minutes: exam-time stays are long, lounge visits short."""
    stay = _MEAN_STAY_MIN.get(day_type, _MEAN_STAY_MIN["term"])
    if zone_kind == "lounge":
        return stay * 0.4
    if zone_kind == "circulation":
        return 10.0
    return stay


def arrival_rate(zone_kind: str, capacity: int, when: datetime, day_type: str) -> float:
    """Arrivals per minute into the zone at ``when`` that sustain :func:`expected_occupancy`.

    From ``N' = lambda - N / tau``: ``lambda = max(0, N' + N / tau)``. The derivative is taken
    over +-5 minutes. The rate cannot be negative, so where the curve falls faster than stays
    end (the last hour before closing) the patron model must send people home itself: at closing
    time everyone leaves.
    """
    step = timedelta(minutes=5)
    now = expected_occupancy(zone_kind, capacity, when, day_type)
    ahead = expected_occupancy(zone_kind, capacity, when + step, day_type)
    behind = expected_occupancy(zone_kind, capacity, when - step, day_type)
    slope = (ahead - behind) / 10.0
    return max(0.0, slope + now / mean_stay_min(zone_kind, day_type))


def academic_day_type(day: date) -> DayType:
    """Day type of a generic academic year (northern hemisphere), the simulator's default calendar.

    Exams 2-20 December, 5-23 January and 20 May-14 June; vacation 21 December-4 January and
    15 June-24 August; term otherwise.
    """
    md = (day.month, day.day)
    if md >= (12, 21) or md <= (1, 4) or (6, 15) <= md <= (8, 24):
        return "holiday"
    if (12, 2) <= md <= (12, 20) or (1, 5) <= md <= (1, 23) or (5, 20) <= md <= (6, 14):
        return "exam"
    return "term"


def calendar_toml(start: date, days: int, day_type: Callable[[date], str] = academic_day_type) -> str:
    """The calendar file (format in docs/model.md) describing ``days`` days from ``start``.

    Consecutive non-term days become one ``[[periods]]`` entry; term is the default.
    """
    lines = ['# Day types of the simulated academic year (simulator.demand.academic_day_type).',
             'default = "term"', ""]
    run_start: date | None = None
    run_type = "term"
    for i in range(days + 1):
        d = start + timedelta(days=i)
        kind = day_type(d) if i < days else "term"
        if run_start is not None and kind != run_type:
            end = d - timedelta(days=1)
            lines += ["[[periods]]", f"start = {run_start.isoformat()}", f"end = {end.isoformat()}",
                      f'type = "{run_type}"', ""]
            run_start = None
        if kind != "term" and run_start is None:
            run_start, run_type = d, kind
    return "\n".join(lines)


def _zone_capacity(cfg: SiteConfig, zone_id: str) -> int:
    seats = len(cfg.seats_in(zone_id))
    return seats if seats > 0 else 20


def generate_history(
    cfg: SiteConfig,
    start: date,
    days: int,
    seed: int,
    step_min: int = 15,
    day_type: Callable[[date], str] = academic_day_type,
) -> list[tuple[datetime, str, int]]:
    """A plausible occupancy record of every zone in ``cfg``: (local time, zone id, people).

    One row per zone every ``step_min`` minutes from ``start`` 00:00 for ``days`` days, sorted by
    time. Randomness, all from ``seed``: a day-level busyness factor shared by the floor (weather,
    deadlines), a per-zone day factor, slowly varying noise within the day (AR(1), so deviations
    persist as they do in a real building) and binomial sampling of seats. A zone without seats
    in the config is given 20.
    """
    if days < 0 or step_min <= 0 or 1440 % step_min != 0:
        raise ValueError("days must be >= 0 and step_min a divisor of 1440")
    rng = random.Random(seed)
    zones = [(z.id, z.kind, _zone_capacity(cfg, z.id)) for z in cfg.zones]
    rows: list[tuple[datetime, str, int]] = []
    noise = dict.fromkeys((z[0] for z in zones), 0.0)
    rho = math.exp(-step_min / 90.0)  # noise decorrelates over about 1.5 h
    for d in range(days):
        day = start + timedelta(days=d)
        kind_of_day = day_type(day)
        floor_factor = math.exp(rng.gauss(0.0, 0.10))
        zone_factor = {zid: math.exp(rng.gauss(0.0, 0.06)) for zid, _, _ in zones}
        t = datetime.combine(day, time(0, 0))
        for _ in range(1440 // step_min):
            for zid, kind, capacity in zones:
                noise[zid] = rho * noise[zid] + math.sqrt(1 - rho * rho) * rng.gauss(0.0, 0.08)
                p = occupancy_fraction(kind, t, kind_of_day)
                if p > 0.0:
                    p = min(0.99, max(0.0, p * floor_factor * zone_factor[zid] * math.exp(noise[zid])))
                rows.append((t, zid, _binomial(rng, capacity, p)))
            t += timedelta(minutes=step_min)
    return rows


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial draw for the small n of a zone (a sum of Bernoulli trials)."""
    if p <= 0.0:
        return 0
    return sum(1 for _ in range(n) if rng.random() < p)

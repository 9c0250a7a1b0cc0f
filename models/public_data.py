"""Two public occupancy data sets as histories and site calendars, for measuring the forecast.

The data stays where it is (a directory given on the command line); nothing of it is copied into
the project, and no test needs it. ``scripts/convert_data.py`` writes the histories as CSV;
``benchmarks/forecast_real.py`` and ``benchmarks/federation_real.py`` use them directly.

- **gym**: the UC Berkeley campus gym's head count (``gym_crowdedness/data.csv``, about every
  10 minutes, -07:00/-08:00 offsets dropped to keep the local wall time). Its calendar is derived
  from the data set's own flags (``is_during_semester``: term, otherwise holiday; ``is_holiday``)
  plus the university's public calendar: RRR and finals weeks (exam), Thanksgiving and spring
  break (holiday), US federal holidays, and the two days the gym is closed (Thanksgiving Day,
  Christmas Day).
- **dtu**: DTU Library's 30-minute entrance gate counts (``dtu_library/Occu_data_library.csv``):
  occupancy is the running sum of in - out over both doors, reset at 04:00, floored at 0, stamped
  at the bin's end (the sum includes the whole bin). Its calendar is DTU's published academic
  calendar (dtu.dk, Education, "Academic calendar"): the 3-week period 2-20 August 2021 with its
  re-exams and exams 11-20 August and the replacement exam 21 August; the 13-week period
  30 August-3 December with the autumn holiday in week 42 (18-22 October); the winter exams
  5-22 December and the replacement exam 23 December (with 4 December, the reading day between);
  the Christmas holiday 24 December-1 January (the library closed 24-26 December); the 3-week
  period from 3 January 2022.

Opening hours are derived from the training part of the data only (:func:`derived_hours`): per
weekday, the span in which the mean count before the split exceeds 5 % of that weekday's peak.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from models.calendar import WEEKDAYS, LibraryCalendar
from models.history import STEP_MIN, Observation, resample

GYM_FILE = Path("gym_crowdedness/data.csv")
DTU_FILE = Path("dtu_library/Occu_data_library.csv")
SPLITS = {"gym": datetime(2016, 11, 1), "dtu": datetime(2021, 11, 15)}


def read_gym(path: Path) -> dict[str, list[Observation]]:
    """The gym's head count as one zone ``gym``."""
    obs: list[Observation] = []
    with path.open(encoding="utf-8", newline="") as fin:
        for line, rec in enumerate(csv.DictReader(fin), start=2):
            try:
                obs.append((datetime.fromisoformat(rec["date"]).replace(tzinfo=None), float(rec["number_people"])))
            except (KeyError, ValueError) as exc:
                raise SystemExit(f"{path}:{line}: unreadable row ({exc})") from None
    return {"gym": sorted(obs)}


def read_dtu(path: Path, reset_hour: int = 4) -> dict[str, list[Observation]]:
    """DTU Library's occupancy from gate counts as one zone ``library`` (see the module docstring)."""
    net: dict[datetime, int] = defaultdict(int)
    with path.open(encoding="utf-8", newline="") as fin:
        for line, rec in enumerate(csv.DictReader(fin, delimiter=";"), start=2):
            try:
                net[datetime.fromisoformat(rec["Timestamp"])] += int(rec["in"]) - int(rec["out"])
            except (KeyError, ValueError) as exc:
                raise SystemExit(f"{path}:{line}: unreadable row ({exc})") from None
    obs: list[Observation] = []
    occupancy, day_of = 0, None
    for t in sorted(net):
        day = (t - timedelta(hours=reset_hour)).date()
        if day != day_of:
            occupancy, day_of = 0, day
        occupancy = max(0, occupancy + net[t])
        obs.append((t + timedelta(minutes=30), float(occupancy)))
    return {"library": obs}


def _periods(*spans: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"start": date.fromisoformat(a), "end": date.fromisoformat(b), "type": kind} for a, b, kind in spans]


def gym_calendar_doc(path: Path) -> dict[str, Any]:
    """The gym's calendar: the data's own semester and holiday flags plus the public academic calendar."""
    semester: dict[date, bool] = {}
    flagged: set[date] = set()
    with path.open(encoding="utf-8", newline="") as fin:
        for rec in csv.DictReader(fin):
            day = date.fromisoformat(rec["date"][:10])
            semester[day] = rec["is_during_semester"] == "1"
            if rec["is_holiday"] == "1":
                flagged.add(day)
    spans: list[tuple[str, str, str]] = []
    run: list[date] = []
    for day in sorted(semester):  # consecutive semester days of the data become term periods
        if semester[day] and run and (day - run[-1]).days <= 3:
            run.append(day)
            continue
        if len(run) > 1:
            spans.append((run[0].isoformat(), run[-1].isoformat(), "term"))
        run = [day] if semester[day] else []
    if len(run) > 1:
        spans.append((run[0].isoformat(), run[-1].isoformat(), "term"))
    spans += [  # RRR + finals weeks, Thanksgiving break, spring break (the university's published calendar)
        ("2015-12-07", "2015-12-18", "exam"), ("2016-05-02", "2016-05-13", "exam"),
        ("2016-12-05", "2016-12-16", "exam"), ("2015-11-25", "2015-11-29", "holiday"),
        ("2016-11-23", "2016-11-27", "holiday"), ("2016-03-19", "2016-03-27", "holiday"),
    ]
    federal = ["2015-09-07", "2015-11-11", "2016-01-18", "2016-02-15", "2016-05-30", "2016-07-04",
               "2016-09-05", "2016-11-11", "2017-01-16", "2017-02-20"]
    holidays = sorted({date.fromisoformat(d) for d in federal} | flagged)
    closures = ["2015-11-26", "2015-12-25", "2016-11-24", "2016-12-25"]
    return {"default": "holiday", "periods": _periods(*spans),
            "holidays": [{"date": d} for d in holidays],
            "closures": [{"date": date.fromisoformat(d)} for d in closures]}


def dtu_calendar_doc() -> dict[str, Any]:
    """DTU's published academic calendar for the data's span (summer 2021 to January 2022)."""
    return {"default": "holiday", "periods": _periods(
        ("2021-08-02", "2021-08-20", "term"), ("2021-08-11", "2021-08-21", "exam"),
        ("2021-08-30", "2021-12-03", "term"), ("2021-10-18", "2021-10-22", "holiday"),
        ("2021-12-04", "2021-12-23", "exam"), ("2021-12-24", "2022-01-01", "holiday"),
        ("2022-01-03", "2022-01-21", "term"),
    ), "closures": [{"start": date(2021, 12, 24), "end": date(2021, 12, 26), "name": "Christmas"}]}


def derived_hours(history: Mapping[str, Sequence[Observation]], until: datetime) -> dict[str, Any]:
    """Weekday opening hours from the data before ``until``: where the mean count exceeds 5 % of the peak.

    Scanned from 04:00, so hours that run past midnight come out as ``["06:00", "01:00"]``.
    """
    sums = np.zeros((7, 1440 // STEP_MIN))
    counts = np.zeros((7, 1440 // STEP_MIN))
    for obs in history.values():
        grid = resample([o for o in obs if o[0] < until])
        for k, value in enumerate(grid.values):
            if not np.isnan(value):
                t = grid.time_at(k)
                slot = (t.hour * 60 + t.minute) // STEP_MIN
                sums[t.weekday(), slot] += value
                counts[t.weekday(), slot] += 1
    mean = sums / np.maximum(counts, 1)
    hours: dict[str, Any] = {}
    shift = 4 * 60 // STEP_MIN
    for wd, name in enumerate(WEEKDAYS):
        order = np.roll(mean[wd], -shift)  # slot 0 is 04:00
        busy = np.flatnonzero(order > 0.05 * order.max()) if order.max() > 0 else np.array([], dtype=np.int64)
        if busy.size == 0:
            hours[name] = "closed"
            continue
        first, last = (int(busy[0]) + shift) * STEP_MIN, (int(busy[-1]) + 1 + shift) * STEP_MIN
        hours[name] = [_hhmm(first), _hhmm(last)]
    return hours


def _hhmm(minute: int) -> str:
    minute %= 1440
    return time(minute // 60, minute % 60).strftime("%H:%M")


def load(data_dir: Path, name: str) -> tuple[dict[str, list[Observation]], LibraryCalendar]:
    """History and calendar (with hours derived before the split) of data set ``name`` under ``data_dir``."""
    if name == "gym":
        history, doc = read_gym(data_dir / GYM_FILE), gym_calendar_doc(data_dir / GYM_FILE)
    elif name == "dtu":
        history, doc = read_dtu(data_dir / DTU_FILE), dtu_calendar_doc()
    else:
        raise ValueError(f"unknown data set {name!r}; use gym or dtu")
    doc["hours"] = derived_hours(history, SPLITS[name])
    return history, LibraryCalendar.from_data(doc, name)

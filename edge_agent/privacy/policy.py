"""What each publication may say about the people on the floor: the ``[privacy]`` policy at work.

The publisher asks this module before a zone's counts or a seat's state go into the outbox:

- **Seat states** (:meth:`PublicationPolicy.seat_state`): a ``seat/{seat}/state`` only for the
  zones whose policy is ``per_seat``; under ``off`` a zone summary carries no seat counts either.
- **Zone summary counts** (:meth:`PublicationPolicy.summary_counts`, ``[privacy] zone_counts``):
  ``exact``; ``thresholded``: a zone with 1 to k - 1 people, or 1 to k - 1 seats taken, has all
  its counts withheld (``null``); ``noisy``: each zone's people and taken-seat counts get discrete
  Laplace noise once per ``noise_window_min`` and the same noisy values are repeated until the
  next window (repeating a release costs no privacy). One person changes the two counts by at
  most 1 each (L1 sensitivity 2); a person can be in every zone within a window, so the zones
  are charged one after the other: each zone's release costs epsilon_window / zones.
- **The hourly export** (:class:`HourlyExport`, ``[privacy] export_counts``): each zone's mean
  people count over the hour, from samples of the whole floor taken at the same instants; one
  person is in one zone at a sample, so the vector of the zones' sums moves by at most the number
  of samples (L1): one release per hour for all zones together.

Epsilon for a release is the day's budget shared between the noisy publications and spread over
the releases the day's opening will make (the site calendar: clock hours, or noise windows, that
the opening touches), so that a day's releases fit the budget. The day is the **opening day**:
hours that run past midnight (``["08:00", "02:00"]``) belong to the day the library opened, so a
late evening and the small hours after it are one account. The privacy unit is one person's
presence on one opening day: whatever they do in it, every noisy count published about it
together is ``[privacy] daily_epsilon``-differentially private.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from edge_agent.privacy.budget import EpsilonBudget, discrete_laplace
from edge_agent.privacy.config import Privacy
from rules.state import ZoneView

log = logging.getLogger(__name__)

SUMMARY_SENSITIVITY = 2.0  # people + taken seats, one person, one zone at a time


Hours = tuple[time, time]  # opens, closes; closes <= opens: the next morning


def parse_hours(hours: tuple[str, str] | list[str] | None) -> Hours | None:
    """``["HH:MM", "HH:MM"]`` (as the config and the calendar topic write them) as times; None: closed."""
    if not hours:
        return None
    return time.fromisoformat(hours[0]), time.fromisoformat(hours[1])


def releases_in(hours: Hours | None, minutes: int) -> int:
    """How many clock-aligned windows of ``minutes`` an opening touches (hours may cross midnight).

    ``08:30-23:00`` touches 15 clock hours (08:00 ... 22:00), ``09:30-02:00`` touches 17, and
    ``04:00-04:00`` (open round the clock) 24: each is one release of the hourly export.
    """
    if hours is None:
        return 0
    opens, closes = (t.hour * 60 + t.minute for t in hours)
    if closes <= opens:
        closes += 24 * 60
    return -(-closes // minutes) - opens // minutes


def opening_day(local: datetime, hours_of: Callable[[date], Hours | None]) -> date:
    """The day whose opening ``local`` belongs to: yesterday's in the small hours after a late closing."""
    yesterday = local.date() - timedelta(days=1)
    before = hours_of(yesterday)
    if before is not None and before[1] <= before[0] and local.time().replace(tzinfo=None) < before[1]:
        return yesterday
    return local.date()


@dataclass
class PublicationPolicy:
    """The ``[privacy]`` section applied to one gateway's publications (see module docstring)."""

    conf: Privacy
    zones: int = 1
    budget: EpsilonBudget | None = None
    #: Opening hours of a local date (the site calendar's; None: closed all day).
    hours: Callable[[date], Hours | None] = field(default=lambda _d: (time(8, 0), time(22, 0)))
    _windows: dict[str, tuple[tuple[str, int], dict[str, Any]]] = field(default_factory=dict)

    # -- seat states -------------------------------------------------------------------------------
    def seat_state(self, zone: str) -> bool:
        return self.conf.seat_policy(zone) == "per_seat"

    def seat_counts(self, zone: str) -> bool:
        return self.conf.seat_policy(zone) != "off"

    # -- shares of the day's budget ------------------------------------------------------------------
    def _share(self) -> float:
        noisy = (self.conf.zone_counts == "noisy") + (self.conf.export_counts == "noisy")
        return 1.0 / max(1, noisy)

    def opening_day(self, local: datetime) -> date:
        """The opening day (and so the budget's day) of local time ``local``."""
        return opening_day(local, self.hours)

    def window_epsilon(self, day: date) -> float:
        """Epsilon of one zone's noisy summary window in the opening of ``day``."""
        windows = max(1, releases_in(self.hours(day), self.conf.noise_window_min))
        return self._share() * self.conf.daily_epsilon / windows / max(1, self.zones)

    def hour_epsilon(self, day: date) -> float:
        """Epsilon of one hour of the export (all zones together) in the opening of ``day``."""
        return self._share() * self.conf.daily_epsilon / max(1, releases_in(self.hours(day), 60))

    # -- zone summaries --------------------------------------------------------------------------
    def summary_counts(self, zone: ZoneView, local: datetime) -> dict[str, Any]:
        """The count fields of a zone summary: people (value, quality), seat counts, counts_policy."""
        seats = self.seat_counts(zone.id)
        people = zone.people.value
        out: dict[str, Any] = {
            "people": {"value": people, "quality": zone.people.quality.value},
            "free": zone.free if seats else None, "occupied": zone.occupied if seats else None,
            "away": zone.away if seats else None, "ghost": zone.ghost if seats else None,
            "unknown": zone.unknown if seats else None, "counts_policy": self.conf.zone_counts,
        }
        taken = zone.occupied + zone.away + zone.ghost
        if self.conf.zone_counts == "thresholded":
            k = self.conf.threshold_k
            if (people is not None and 0 < round(people) < k) or 0 < taken < k:
                return _withheld(out)
        elif self.conf.zone_counts == "noisy":
            return self._noisy_summary(zone, local, out, taken)
        return out

    def _noisy_summary(self, zone: ZoneView, local: datetime, out: dict[str, Any], taken: int) -> dict[str, Any]:
        day = self.opening_day(local)  # windows counted from the opening day's midnight, as releases_in counts
        minute = int((local.replace(tzinfo=None) - datetime.combine(day, time())).total_seconds() // 60)
        window = (day.isoformat(), minute // self.conf.noise_window_min)
        cached = self._windows.get(zone.id)
        if cached is None or cached[0] != window:
            epsilon = self.window_epsilon(day)
            noisy: dict[str, Any] = {"suppressed": True}
            if self.budget is not None and zone.people.value is not None and self.budget.spend(window[0], epsilon):
                scale = SUMMARY_SENSITIVITY / epsilon
                noisy = {"people": max(0, discrete_laplace(round(zone.people.value), scale)),
                         "taken": min(zone.seats_total, max(0, discrete_laplace(taken, scale)))}
            self._windows[zone.id] = cached = (window, noisy)
        noisy = cached[1]
        if noisy.get("suppressed"):
            return _withheld(out)
        out["people"]["value"] = float(noisy["people"])
        if out["free"] is not None:
            occupied = int(noisy["taken"])
            out.update(occupied=occupied, free=max(0, zone.seats_total - zone.unknown - occupied), away=None,
                       ghost=None)
        return out


def _withheld(out: dict[str, Any]) -> dict[str, Any]:
    out["people"]["value"] = None
    for key in ("free", "occupied", "away", "ghost", "unknown"):
        out[key] = None
    out["counts_policy"] = "suppressed"
    return out


@dataclass
class HourRelease:
    """One zone's hourly export: what ``zone/{zone}/hourly`` carries."""

    zone: str
    start: datetime
    end: datetime
    people_mean: float | None
    samples: int
    counts_policy: str
    epsilon: float | None = None
    noise_scale: float | None = None


@dataclass
class HourlyExport:
    """Samples every zone's people count at the same instants; releases one hour at a time."""

    policy: PublicationPolicy
    hour: datetime | None = None  # local start of the hour being sampled
    sums: dict[str, int] = field(default_factory=dict)
    samples: int = 0

    def sample(self, local: datetime, people: Mapping[str, float | None]) -> list[HourRelease]:
        """Add one sample of the floor at local time ``local``; the releases of an hour that ended."""
        hour = local.replace(minute=0, second=0, microsecond=0)
        out: list[HourRelease] = []
        if self.hour is not None and hour != self.hour:
            out = self.release()
        if self.hour != hour:
            self.hour, self.sums, self.samples = hour, dict.fromkeys(people, 0), 0
        for zone, value in people.items():
            self.sums[zone] = self.sums.get(zone, 0) + (0 if value is None else max(0, round(value)))
        self.samples += 1
        return out

    def release(self) -> list[HourRelease]:
        """The hour sampled so far, under ``[privacy] export_counts`` (and the budget for noisy)."""
        conf, hour, n = self.policy.conf, self.hour, self.samples
        if hour is None or n == 0 or conf.export_counts == "off":
            return []
        end = hour + timedelta(hours=1)
        out: list[HourRelease] = []
        if conf.export_counts == "noisy":
            day = self.policy.opening_day(hour)
            epsilon = self.policy.hour_epsilon(day)
            budget = self.policy.budget
            if budget is None or not budget.spend(day.isoformat(), epsilon):
                return [HourRelease(z, hour, end, None, n, "suppressed") for z in sorted(self.sums)]
            scale = n / epsilon  # one person adds at most 1 per sample to one zone's sum
            for zone in sorted(self.sums):
                noisy = discrete_laplace(self.sums[zone], scale)
                out.append(HourRelease(zone, hour, end, round(max(0.0, noisy / n), 2), n, "noisy",
                                       round(epsilon, 6), round(1.0 / epsilon, 4)))
            return out
        for zone in sorted(self.sums):
            mean = self.sums[zone] / n
            if conf.export_counts == "thresholded" and 0 < mean < conf.threshold_k:
                out.append(HourRelease(zone, hour, end, None, n, "suppressed"))
            else:
                out.append(HourRelease(zone, hour, end, round(mean, 2), n, conf.export_counts))
        return out


async def export_loop(daemon: Any, gw: Any, sample_s: float = 60.0) -> None:
    """The hourly export: sample the floor every ``sample_s`` of the daemon's clock while the library is
    open, publish each hour as it ends (``zone/{zone}/hourly``)."""
    export = HourlyExport(gw.uplink.policy)
    while True:
        state = gw.controller.state
        local = gw.controller.wall()
        if state is not None and gw.controller.is_open(local):
            people = {zid: z.people.value for zid, z in state.zones.items()}
            for release in export.sample(local, people):
                gw.uplink.publish_hourly(release)
        elif export.hour is not None:
            for release in export.release():  # closing time: the last open hour goes out now
                gw.uplink.publish_hourly(release)
            export.hour = None
        await daemon.clock.sleep(sample_s)

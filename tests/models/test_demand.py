"""The simulator's demand curves: library-shaped, seeded, consistent with the arrival rate."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from simulator.demand import (
    academic_day_type,
    arrival_rate,
    expected_occupancy,
    generate_history,
    mean_stay_min,
    occupancy_fraction,
)
from tests.models.conftest import two_zone_site

TUESDAY = date(2024, 10, 8)


def at(hour: float, day: date = TUESDAY) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hour)


def test_closed_overnight_and_open_by_day() -> None:
    for kind in ("quiet", "group", "open", "lounge"):
        assert expected_occupancy(kind, 40, at(3), "term") == 0.0
        assert expected_occupancy(kind, 40, at(23), "exam") == 0.0
        assert expected_occupancy(kind, 40, at(15), "term") > 10


def test_lunch_dip_and_afternoon_peak_in_term() -> None:
    noon, lunch, afternoon = (occupancy_fraction("open", at(h), "term") for h in (11.5, 12.5, 15.5))
    assert lunch < noon < afternoon


def test_exam_fuller_and_later_holiday_low() -> None:
    for hour in (10, 15, 20):
        assert occupancy_fraction("quiet", at(hour), "exam") > occupancy_fraction("quiet", at(hour), "term")
    assert occupancy_fraction("quiet", at(20.5), "exam") > 1.5 * occupancy_fraction("quiet", at(20.5), "term")
    assert occupancy_fraction("quiet", at(15), "holiday") < 0.3 * occupancy_fraction("quiet", at(15), "term")


def test_quiet_zones_fill_before_group_rooms() -> None:
    assert occupancy_fraction("quiet", at(9), "term") > occupancy_fraction("group", at(9), "term") + 0.1


def test_weekend_lower_than_weekday() -> None:
    saturday = date(2024, 10, 12)
    assert occupancy_fraction("open", at(15, saturday), "term") < occupancy_fraction("open", at(15), "term")
    assert occupancy_fraction("open", at(9, saturday), "term") == 0.0  # opens 10:00


def test_arrival_rate_sustains_the_curve() -> None:
    # Integrate dN/dt = lambda - N / tau until 21:00 (the closing hour is emptied by the patron
    # model, not by the rate); it must track the expected curve.
    n, worst = 0.0, 0.0
    t = at(0)
    for _ in range(21 * 60):
        n += arrival_rate("quiet", 30, t, "term") - n / mean_stay_min("quiet", "term")
        t += timedelta(minutes=1)
        worst = max(worst, abs(n - expected_occupancy("quiet", 30, t, "term")))
    assert worst < 1.0


def test_history_is_seeded_bounded_and_regular() -> None:
    site = two_zone_site()
    a = generate_history(site, TUESDAY, 2, seed=3)
    assert a == generate_history(site, TUESDAY, 2, seed=3)
    assert a != generate_history(site, TUESDAY, 2, seed=4)
    assert len(a) == 2 * 96 * 2
    capacity = {"quiet": 12, "group": 8}
    assert all(0 <= c <= capacity[z] for _, z, c in a)
    assert all(c == 0 for t, _, c in a if t.hour < 8)
    assert max(c for _, z, c in a if z == "quiet") >= 6


def test_default_academic_calendar() -> None:
    assert academic_day_type(date(2024, 10, 8)) == "term"
    assert academic_day_type(date(2024, 12, 10)) == "exam"
    assert academic_day_type(date(2024, 12, 25)) == "holiday"
    assert academic_day_type(date(2025, 7, 10)) == "holiday"

"""Publication policies: seat states by zone, thresholded and noisy counts, the epsilon budget across restarts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_config
from edge_agent.privacy.budget import EpsilonBudget, discrete_laplace, error_bound
from edge_agent.privacy.config import Privacy
from edge_agent.privacy.policy import HourlyExport, PublicationPolicy, opening_day, releases_in
from rules.state import Measure, Quality, ZoneView
from tests.conftest import EXAMPLE_FLOOR

T = datetime(2025, 3, 11, 10, 0)


def zone(people: float, occupied: int, seats: int = 20) -> ZoneView:
    none = Measure(None, Quality.MISSING)
    return ZoneView(id="z1", people=Measure(people, Quality.GOOD), seats_total=seats, free=seats - occupied,
                    occupied=occupied, away=0, ghost=0, unknown=0, lux=none, temperature=none, humidity=none, co2=none,
                    occupancy_healthy=True)


def test_seat_states_follow_the_zone_policy_and_the_old_key_still_turns_them_off() -> None:
    cfg = load_config(EXAMPLE_FLOOR)
    assert {cfg.privacy.seat_policy(z.id) for z in cfg.zones} == {"coarse"}  # the example keeps the default
    assert Privacy().seat_policy("anything") == "coarse"
    per_seat = Privacy(per_seat_zones=["z1"])
    assert per_seat.seat_policy("z1") == "per_seat" and per_seat.seat_policy("z2") == "coarse"
    assert PublicationPolicy(per_seat).seat_state("z1") and not PublicationPolicy(per_seat).seat_state("z2")
    assert Privacy(publish_seat_states=False, per_seat_zones=["z1"]).seat_policy("z1") == "off"
    policy = PublicationPolicy(Privacy(seat_states="off"))
    counts = policy.summary_counts(zone(4, 4), T)
    assert counts["occupied"] is None and counts["free"] is None and counts["people"]["value"] == 4


def test_an_unknown_zone_in_per_seat_zones_is_refused_with_its_path() -> None:
    from edge_agent.config import ConfigError, parse_config

    doc = {"site": {"id": "s", "floor": "1", "gateway": "g"}, "zones": [{"id": "z1", "polygon": [[0, 0], [1, 0],
                                                                                            [1, 1]]}],
           "privacy": {"per_seat_zones": ["z9"]}}
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert any("privacy.per_seat_zones[0]: unknown zone 'z9'" in p for p in err.value.problems)


@pytest.mark.parametrize(("people", "occupied", "withheld"), [(0, 0, False), (3, 3, True), (4, 0, True),
                                                               (5, 5, False), (12, 9, False)])
def test_thresholded_counts_withhold_small_ones(people: int, occupied: int, withheld: bool) -> None:
    counts = PublicationPolicy(Privacy(zone_counts="thresholded", threshold_k=5)).summary_counts(
        zone(people, occupied), T)
    assert (counts["counts_policy"] == "suppressed") is withheld
    if withheld:
        assert counts["people"]["value"] is None and counts["occupied"] is None and counts["free"] is None
    else:
        assert counts["people"]["value"] == people and counts["occupied"] == occupied


def test_discrete_laplace_comes_from_opendp_and_stays_within_its_bound() -> None:
    draws = [discrete_laplace(10, 2.0) for _ in range(2000)]
    assert all(isinstance(d, int) for d in draws)
    assert len(set(draws)) > 5, "no noise at all"
    assert all(abs(d - 10) <= error_bound(2.0, 1e-6) for d in draws)
    mean_abs = sum(abs(d - 10) for d in draws) / len(draws)
    assert 1.2 < mean_abs < 2.8  # discrete Laplace of scale 2: E|N| is about 1.9
    with pytest.raises(ValueError, match="positive"):
        discrete_laplace(1, 0.0)


def test_the_budget_is_spent_once_persisted_and_refuses_past_the_day(tmp_path: Path) -> None:
    budget = EpsilonBudget(tmp_path / "b.json", 1.0)
    assert budget.spend("2025-03-11", 0.4) and budget.spend("2025-03-11", 0.6)
    assert not budget.spend("2025-03-11", 0.01)
    again = EpsilonBudget(tmp_path / "b.json", 1.0)  # a restart
    assert again.spent("2025-03-11") == pytest.approx(1.0) and not again.spend("2025-03-11", 0.1)
    assert again.spend("2025-03-12", 0.5) and again.state("2025-03-12")["epsilon_remaining"] == pytest.approx(0.5)
    (tmp_path / "b.json").write_text("{not json")
    broken = EpsilonBudget(tmp_path / "b.json", 1.0)
    assert not broken.spend("2025-03-13", 0.1), "an unreadable ledger must not hand out a fresh budget"
    assert broken.spend("2025-03-14", 0.1)
    assert broken.prune("2026-06-01") == 2 and set(broken.days()) == set()


def test_noisy_summaries_repeat_within_a_window_and_stop_when_the_budget_is_spent(tmp_path: Path) -> None:
    budget = EpsilonBudget(tmp_path / "b.json", 0.2)
    policy = PublicationPolicy(Privacy(zone_counts="noisy", export_counts="off", daily_epsilon=0.2,
                                       noise_window_min=15), zones=1, budget=budget,
                              hours=lambda _d: (time(10, 0), time(10, 30)))
    first = policy.summary_counts(zone(8, 6), T)
    again = policy.summary_counts(zone(9, 7), T.replace(minute=10))
    assert first["counts_policy"] == "noisy" and first["people"] == again["people"]
    assert first["away"] is None and first["free"] == 20 - first["occupied"]
    assert budget.spent("2025-03-11") == pytest.approx(0.1)
    policy.summary_counts(zone(8, 6), T.replace(minute=20))
    late = policy.summary_counts(zone(8, 6), T.replace(minute=40))
    assert late["counts_policy"] == "suppressed" and late["people"]["value"] is None


def test_the_hourly_export_releases_each_hour_once_with_its_epsilon(tmp_path: Path) -> None:
    budget = EpsilonBudget(tmp_path / "b.json", 20.0)
    policy = PublicationPolicy(Privacy(export_counts="noisy", daily_epsilon=20.0), zones=2, budget=budget,
                               hours=lambda _d: (time(10, 0), time(12, 0)))
    export = HourlyExport(policy)
    out = []
    for minute in range(0, 121):
        t = T.replace(hour=10 + minute // 60, minute=minute % 60)
        out += export.sample(t, {"z1": 10.0, "z2": 0.0})
    assert [(r.zone, r.start.hour) for r in out] == [("z1", 10), ("z2", 10), ("z1", 11), ("z2", 11)]
    for r in out:
        assert r.counts_policy == "noisy" and r.epsilon == pytest.approx(10.0) and r.samples == 60
        truth = 10.0 if r.zone == "z1" else 0.0
        assert r.people_mean is not None and abs(r.people_mean - truth) <= error_bound(r.noise_scale or 0, 1e-6)
    assert budget.spent("2025-03-11") == pytest.approx(20.0)
    assert export.sample(T.replace(hour=13), {"z1": 1.0, "z2": 1.0})[0].counts_policy == "suppressed"
    exact = HourlyExport(PublicationPolicy(Privacy(export_counts="thresholded", threshold_k=5)))
    for minute in range(60):
        exact.sample(T.replace(minute=minute), {"z1": 3.0, "z2": 7.0})
    got = {r.zone: r for r in exact.release()}
    assert got["z1"].people_mean is None and got["z2"].people_mean == 7.0


@pytest.mark.parametrize(("opens", "closes", "hours", "quarters"), [
    ("08:00", "22:00", 14, 56), ("08:30", "23:00", 15, 58), ("09:30", "02:00", 17, 66), ("04:00", "04:00", 24, 96),
    ("06:15", "02:15", 21, 80)])
def test_an_opening_counts_the_clock_hours_and_windows_it_touches(opens: str, closes: str, hours: int,
                                                                  quarters: int) -> None:
    span = (time.fromisoformat(opens), time.fromisoformat(closes))
    assert (releases_in(span, 60), releases_in(span, 15)) == (hours, quarters)
    assert releases_in(None, 60) == 0


def test_the_small_hours_after_a_late_closing_belong_to_the_day_that_opened() -> None:
    late = {date(2025, 3, 11): (time(9, 30), time(2, 0)), date(2025, 3, 12): (time(9, 30), time(22, 0))}
    hours = late.get
    assert opening_day(datetime(2025, 3, 12, 1, 30), hours) == date(2025, 3, 11)
    assert opening_day(datetime(2025, 3, 12, 2, 0), hours) == date(2025, 3, 12)
    assert opening_day(datetime(2025, 3, 13, 1, 0), hours) == date(2025, 3, 13)  # the 12th closed at 22:00


def test_an_opening_past_midnight_is_exported_whole_on_one_days_budget(tmp_path: Path) -> None:
    """09:30-02:00: seventeen hourly releases, all noisy, spending exactly the opening day's budget."""
    budget = EpsilonBudget(tmp_path / "b.json", 3.0)
    policy = PublicationPolicy(Privacy(export_counts="noisy", daily_epsilon=3.0), zones=1, budget=budget,
                               hours=lambda _d: (time(9, 30), time(2, 0)))
    export = HourlyExport(policy)
    out = []
    t = datetime(2025, 3, 11, 9, 30)
    while t < datetime(2025, 3, 12, 2, 0):
        out += export.sample(t, {"z1": 12.0})
        t += timedelta(minutes=5)
    out += export.release()
    assert len(out) == 17 and {r.counts_policy for r in out} == {"noisy"}
    assert all(r.epsilon == pytest.approx(3.0 / 17, abs=1e-6) for r in out)
    assert budget.spent("2025-03-11") == pytest.approx(3.0) and budget.spent("2025-03-12") == 0.0


def test_opendp_is_loaded_only_by_the_first_noisy_count_and_without_scipy() -> None:
    """The daemon's modules do not import OpenDP; the first noisy count does, module by module (opendp.prelude
    would also load scipy: about 97 MiB more, docs/benchmarks.md)."""
    import subprocess
    import sys

    probe = ("import sys, edge_agent.assembly, edge_agent.privacy.policy\n"
             "before = 'opendp' in sys.modules\n"
             "from edge_agent.privacy.budget import discrete_laplace\n"
             "discrete_laplace(3, 2.0)\n"
             "print(before, 'opendp' in sys.modules, 'scipy' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "True", "False"], done.stdout + done.stderr


def test_the_sweep_clears_the_retained_topics_the_policy_no_longer_allows() -> None:
    from types import SimpleNamespace

    from edge_agent.privacy.retention import seat_topic_cleared

    cfg = load_config(EXAMPLE_FLOOR)
    seat, root = cfg.seats[0], "library/v1/s/g"
    state, availability = f"{root}/seat/{seat.id}/state", f"{root}/zone/{seat.zone}/availability"

    def cleared(privacy: Privacy) -> Any:
        return seat_topic_cleared(SimpleNamespace(cfg=cfg.model_copy(update={"privacy": privacy})))

    coarse = cleared(Privacy())
    assert coarse(state) and not coarse(availability)
    assert not cleared(Privacy(per_seat_zones=[seat.zone]))(state)
    off = cleared(Privacy(seat_states="off"))
    assert off(state) and off(availability) and not off(f"{root}/calendar")


async def test_availability_is_not_published_when_seat_states_are_off(tmp_path: Path) -> None:
    from edge_agent.availability import ZoneAvailability
    from edge_agent.sync.outbox import Outbox
    from edge_agent.sync.publisher import Publisher
    from tests.sync.conftest import WallClock

    zone = ZoneAvailability("z1-quiet", "Quiet", 2, 1, 0, 1, 0, 0, 0, ("S001",), ())
    cfg = load_config(EXAMPLE_FLOOR)
    async with Outbox(tmp_path / "o.sqlite3") as ob:
        assert Publisher(cfg, ob, WallClock(), version="t", config_hash="h").publish_availability(zone) is not None
        off = cfg.model_copy(update={"privacy": Privacy(seat_states="off")})
        assert Publisher(off, ob, WallClock(), version="t", config_hash="h").publish_availability(zone) is None

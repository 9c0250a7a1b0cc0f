"""The simulated normal day, end to end: report, targets, privacy of everything sent upstream."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import REPORT_KEYS, energy_problems, forbidden_fields, run_observed

pytestmark = pytest.mark.slow
SEAT_STATE_BAR = 0.98  # measured 0.9811 on this day (docs/simulator.md; the goal 0.98)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    report, capture = run_observed(tmp_path_factory.mktemp("normal-day"), "normal-day")
    return {"report": report, "messages": capture.json_docs()}


def test_report_has_every_key_and_a_full_day(day: dict[str, Any]) -> None:
    report = day["report"]
    assert set(report) >= REPORT_KEYS, REPORT_KEYS - set(report)
    assert report["sim_hours"] >= 14.0
    assert set(report["actuation_latency_s"]) >= {"p50", "p99", "max"}
    assert report["wall_seconds"] > 0


def test_every_message_produced_was_delivered(day: dict[str, Any]) -> None:
    report = day["report"]
    assert report["messages_produced"] > 100
    assert report["messages_dropped"] == 0
    # Everything is delivered but what the daemon produced in its last seconds, while stopping.
    assert report["messages_produced"] - report["messages_delivered"] <= 20
    ids = {doc["msg_id"] for topic, doc in day["messages"] if isinstance(doc, dict) and "msg_id" in doc}
    assert len(ids) >= report["messages_produced"]


def test_nothing_upstream_carries_frames_positions_or_tags(day: dict[str, Any]) -> None:
    assert day["messages"], "the observer saw nothing"
    leaks = [(topic, f) for topic, doc in day["messages"] for f in forbidden_fields(doc)]
    assert leaks == []
    topics = {topic for topic, _ in day["messages"]}
    assert any(t.endswith("/status") for t in topics)
    assert any("/zone/" in t and t.endswith("/summary") for t in topics)
    assert not any("/seat/" in t for t in topics), "per-seat states went out under the coarse default"


def test_every_need_is_met_within_the_two_minute_bar(day: dict[str, Any]) -> None:
    report = day["report"]
    assert report["actuation_latency_s"]["count"] > 0
    assert report["actuations_over_120s"] == 0
    # Event rules act in well under a second: the first patron in a dark zone trips its PIR, which
    # wakes the decide loop; everyone else finds their seat held ready (docs/rules.md).
    assert report["actuation_latency_s"]["p99"] <= 2.0


def test_seat_states_and_counts_track_the_truth(day: dict[str, Any]) -> None:
    report = day["report"]
    # Thermopiles, the desks' load cells and the "back soon" button together (docs/sensing.md).
    assert report["seat_state_accuracy"] >= SEAT_STATE_BAR
    # What no sensor sees (a bag on the chair, nothing on the desk, no press) is measured, and
    # it is all that stands between the gateway and a perfect score.
    assert report["chair_belongings_seat_minutes"] > 0
    assert report["seat_state_accuracy"] <= report["seat_state_accuracy_ceiling"] < 1.0
    assert report["seat_state_accuracy_thermal_ceiling"] < report["seat_state_accuracy_ceiling"]
    by_truth = report["seat_state_accuracy_by_truth"]
    assert set(by_truth) == {"free", "occupied", "away", "ghost"}
    assert by_truth["free"] >= 0.97 and by_truth["occupied"] >= 0.97
    assert report["zone_count_mae"] <= 0.5


def test_seats_for_patrons_against_the_conventional_floor(day: dict[str, Any]) -> None:
    """A normal day is no crunch: everyone finds a seat on both floors; ghosts are cleared, searches shorter."""
    report = day["report"]
    assert report["arrivals"] > 400
    assert report["seat_demand_met"] == report["baseline_seat_demand_met"] == 1.0
    assert report["ghost_seat_minutes"] < report["baseline_ghost_seat_minutes"]
    assert report["staff_cleared"] > 0 and report["baseline_ghost_to_release_s"]["ended_by"]["staff"] == 0
    assert report["seat_search_s"]["p50"] < report["baseline_seat_search_s"]["p50"]
    # The dispatch reached the staff through the gateway's own event, upstream too.
    ghosts = [doc for topic, doc in day["messages"] if isinstance(doc, dict) and doc.get("kind") == "ghost_seat"]
    assert ghosts, "no ghost_seat event upstream"


def test_lighting_saves_energy_without_leaving_readers_in_the_dark(day: dict[str, Any]) -> None:
    report = day["report"]
    assert report["lighting_saving"] >= 0.40
    assert report["underlit_occupied_seat_minutes_fraction"] <= 0.01
    assert report["lights_off_in_occupied_zone_minutes"] == 0


def test_the_whole_floor_saves_over_a_third_against_a_conventional_floor_at_equal_comfort(day: dict[str, Any]) -> None:
    assert energy_problems(day["report"], saving=0.35, lighting=0.40) == []


def test_ventilation_and_setpoints_go_through_the_arbiter(day: dict[str, Any]) -> None:
    """Every AHU's ventilation level and both setpoints were applied and confirmed (actuation events)."""
    applied = [doc for topic, doc in day["messages"] if topic.endswith("/actuation") and isinstance(doc, dict)]
    for ahu in ("ahu1-vent", "ahu2-vent", "ahu3-vent"):
        kinds = {doc["kind"] for doc in applied if doc["actuator"] == ahu}
        assert kinds >= {"ventilation", "setpoint", "cooling_setpoint"}, (ahu, kinds)
    setbacks = [doc for doc in applied if doc["kind"] == "setpoint" and doc["new"] < 21.0]
    assert setbacks and all(doc["rule_id"] in ("temp-standby", "temp-night") for doc in setbacks)
    late = [doc for topic, doc in day["messages"] if isinstance(doc, dict) and doc.get("kind") == "deadline_missed"]
    assert late == []  # every request confirmed (read back) within the 2-minute deadline, paced one a minute



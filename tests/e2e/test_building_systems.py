"""The building-systems day end to end: DALI lights and BMS ventilation over BACnet/IP meet the normal day's targets.

The same day, seed and report targets as ``test_normal_day``, on a floor whose luminaires are DALI
gear and whose ventilation is commanded in the (simulated) BMS: actuation latency, under-lit
minutes and CO2 minutes must not get worse because the outputs are the building's own.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import REPORT_KEYS, forbidden_fields, run_observed

pytestmark = [pytest.mark.slow, pytest.mark.soak]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    report, capture = run_observed(tmp_path_factory.mktemp("building-systems"), "building-systems")
    return {"report": report, "messages": capture.json_docs()}


def test_a_full_day_ran_and_nothing_was_lost(day: dict[str, Any]) -> None:
    report = day["report"]
    assert set(report) >= REPORT_KEYS, REPORT_KEYS - set(report)
    assert report["sim_hours"] >= 14.0
    assert report["messages_dropped"] == 0
    assert report["messages_produced"] - report["messages_delivered"] <= 20
    assert [(t, f) for t, doc in day["messages"] for f in forbidden_fields(doc)] == []


def test_every_need_is_met_within_the_two_minute_bar(day: dict[str, Any]) -> None:
    report = day["report"]
    assert report["actuation_latency_s"]["count"] > 0
    assert report["actuations_over_120s"] == 0
    assert report["actuation_latency_s"]["p99"] <= 2.0


def test_dali_lights_save_energy_without_leaving_readers_in_the_dark(day: dict[str, Any]) -> None:
    report = day["report"]
    assert report["lighting_saving"] >= 0.35
    assert report["underlit_occupied_seat_minutes_fraction"] <= 0.01
    assert report["lights_off_in_occupied_zone_minutes"] == 0


def test_bms_ventilation_keeps_co2_no_worse_than_the_conventional_floor(day: dict[str, Any]) -> None:
    report = day["report"]
    assert report["co2_over_1000ppm_minutes"] <= report["baseline_co2_over_1000ppm_minutes"]
    assert report["energy_by_load_kwh"]["fans"] < report["baseline_energy_by_load_kwh"]["fans"]


def test_the_daemon_stopped_cleanly_and_said_nothing_alarming(day: dict[str, Any]) -> None:
    stderr = day["report"]["_stderr"]
    assert "Traceback" not in stderr
    assert "could not relinquish" not in stderr
    assert "cannot be set up" not in stderr

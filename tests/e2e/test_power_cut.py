"""The daemon is killed mid-day and started again on the same state: nothing in the outbox is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import run_observed

pytestmark = pytest.mark.slow


def test_power_cut_restarts_and_loses_nothing(tmp_path: Path) -> None:
    report, capture = run_observed(tmp_path, "power-cut")
    assert report["daemon_starts"] == 2
    assert report["sim_hours"] >= 1.9
    statuses = [d.get("state") for t, d in capture.json_docs() if t.endswith("/status") and isinstance(d, dict)]
    assert statuses.count("online") >= 2, statuses  # a birth message after the restart
    assert report["messages_dropped"] == 0
    assert report["lights_off_in_occupied_zone_minutes"] == 0

"""The exam-week and BLE-dropout days run to their end; the same seed gives the same day."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import REPORT_KEYS, run_scenario, scenario_copy

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["exam-week", "ble-dropout"])
def test_scenario_runs_to_the_end(tmp_path: Path, name: str) -> None:
    report = run_scenario(tmp_path, scenario_copy(tmp_path, name), broker_port=9)
    assert set(report) >= REPORT_KEYS
    assert report["sim_hours"] >= (14.0 if name == "exam-week" else 1.9)
    assert report["lights_off_in_occupied_zone_minutes"] == 0
    assert report["actuations_over_120s"] == 0


def test_same_seed_same_report(tmp_path: Path) -> None:
    first = run_scenario(tmp_path / "a", scenario_copy(_mk(tmp_path / "a"), "normal-day", end="10:30", seed=7),
                         broker_port=9)
    second = run_scenario(tmp_path / "b", scenario_copy(_mk(tmp_path / "b"), "normal-day", end="10:30", seed=7),
                          broker_port=9)
    other = run_scenario(tmp_path / "c", scenario_copy(_mk(tmp_path / "c"), "normal-day", end="10:30", seed=8),
                         broker_port=9)
    ignore = {"wall_seconds", "world_cpu_seconds", "_stderr"}
    same = {k: v for k, v in first.items() if k not in ignore}
    assert same == {k: v for k, v in second.items() if k not in ignore}
    assert same != {k: v for k, v in other.items() if k not in ignore}


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path

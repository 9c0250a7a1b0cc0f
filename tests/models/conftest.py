"""Fixtures for the seat-demand model tests: a two-zone site and its simulated history, generated here."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from edge_agent.config import SiteConfig, parse_config
from simulator.demand import calendar_toml, generate_history

START = date(2024, 10, 14)  # a Monday in term (the simulated calendar has exams from 2 December)
DAYS = 35


def two_zone_site() -> SiteConfig:
    """A small floor: a quiet zone of 12 seats and a group zone of 8."""
    seats = [{"id": f"q{i}", "zone": "quiet", "x": i, "y": 1} for i in range(12)]
    seats += [{"id": f"g{i}", "zone": "group", "x": i, "y": 5} for i in range(8)]
    square = [[0, 0], [10, 0], [10, 4], [0, 4]]
    return parse_config({
        "site": {"id": "test-lib", "floor": "1", "gateway": "gw-1"},
        "zones": [
            {"id": "quiet", "kind": "quiet", "polygon": square},
            {"id": "group", "kind": "group", "polygon": square},
        ],
        "seats": seats,
    })


@pytest.fixture(scope="session")
def history_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """HISTORY.csv (five weeks, 15 min, two zones) and its calendar, written once per session."""
    root = tmp_path_factory.mktemp("demand")
    rows = generate_history(two_zone_site(), START, DAYS, seed=7)
    csv_path = root / "history.csv"
    with csv_path.open("w", encoding="utf-8") as handle:
        handle.write("timestamp,zone,occupied\n")
        handle.writelines(f"{t.isoformat()},{z},{c}\n" for t, z, c in rows)
    cal_path = root / "calendar.toml"
    cal_path.write_text(calendar_toml(START, DAYS), encoding="utf-8")
    return csv_path, cal_path

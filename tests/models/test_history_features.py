"""History CSV, the grid, the calendar and the shared feature function."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.calendar import LibraryCalendar
from models.errors import CalendarError, HistoryError
from models.features import FEATURE_NAMES, N_FEATURES, feature_rows
from models.history import ZoneHistory, parse_history, read_history_csv, resample

T0 = datetime(2024, 10, 7, 8, 0)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "h.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("time,zone,count\n", 1, "header"),
        ("timestamp,zone,occupied\n2024-10-07T08:00,z1,3\n2024-13-07T08:00,z1,3\n", 3, "bad timestamp"),
        ("timestamp,zone,occupied\n2024-10-07T08:00,z1\n", 2, "2 fields"),
        ("timestamp,zone,occupied\n2024-10-07T08:00,z1,-1\n", 2, "count >= 0"),
        ("timestamp,zone,occupied\n2024-10-07T08:00,z1,many\n", 2, "count >= 0"),
        ("timestamp,zone,occupied\n2024-10-07T08:00,,4\n", 2, "empty zone"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    with pytest.raises(HistoryError) as err:
        read_history_csv(write(tmp_path, text))
    message = str(err.value)
    assert f"h.csv:{line}:" in message and words in message and "\n" not in message
    assert err.value.line == line


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="empty"):
        read_history_csv(write(tmp_path, ""))
    with pytest.raises(HistoryError, match="no data rows"):
        read_history_csv(write(tmp_path, "timestamp,zone,occupied\n"))
    with pytest.raises(HistoryError, match="cannot read"):
        read_history_csv(tmp_path / "absent.csv")


def test_offsets_keep_the_local_wall_time(tmp_path: Path) -> None:
    text = "timestamp,zone,occupied\n2015-08-14 17:00:11-07:00,gym,37\n2015-12-14T17:00:00-08:00,gym,40\n"
    obs = read_history_csv(write(tmp_path, text))["gym"]
    assert [t for t, _ in obs] == [datetime(2015, 8, 14, 17, 0, 11), datetime(2015, 12, 14, 17, 0)]


def test_grid_holds_short_gaps_and_keeps_long_ones() -> None:
    obs = [(T0, 4.0), (T0 + timedelta(minutes=10), 6.0), (T0 + timedelta(hours=3), 9.0)]
    grid = resample(obs)
    assert grid.start == T0
    values = grid.values
    assert values[0] == 4.0 and values[1] == 6.0  # 08:15 holds the 08:10 reading
    assert values[4] == 6.0  # 09:00: 50 min old, still held
    assert np.isnan(values[5]) and np.isnan(values[11])  # older than an hour: a gap, not a line
    assert values[12] == 9.0


def test_features_never_look_ahead() -> None:
    rng = np.random.default_rng(1)
    obs = [(T0 + timedelta(minutes=15 * i), float(rng.integers(0, 20))) for i in range(96 * 9)]
    grid = resample(obs)
    k = 96 * 8
    before = feature_rows(grid, [k], 20.0)
    changed = resample(obs[: k + 1] + [(t, v + 7.0) for t, v in obs[k + 1:]])
    assert np.array_equal(before, feature_rows(changed, [k], 20.0))
    assert before.shape == (1, N_FEATURES) and before.dtype == np.float32


def test_missing_lags_are_zero_with_indicator() -> None:
    obs = [(T0 + timedelta(minutes=15 * i), 5.0) for i in range(8)]
    row = dict(zip(FEATURE_NAMES, feature_rows(resample(obs), [7], 10.0)[0], strict=True))
    assert row["now"] == pytest.approx(0.5) and row["now_missing"] == 0.0
    assert row["week_0"] == 0.0 and row["week_0_missing"] == 1.0
    assert row["day_60"] == 0.0 and row["day_60_missing"] == 1.0
    assert row["dow_0"] == 1.0 and row["day_exam"] == 0.0 and row["day_holiday"] == 0.0


def test_calendar_drives_the_day_type_columns() -> None:
    cal = LibraryCalendar.from_toml(
        'default = "term"\n[[periods]]\nstart = 2024-10-07\nend = 2024-10-11\ntype = "exam"\n'
        "[[holidays]]\ndate = 2024-10-09\n"
    )
    assert cal.day_type(date(2024, 10, 8)) == "exam"
    assert cal.day_type(date(2024, 10, 9)) == "holiday"
    assert cal.day_type(date(2024, 10, 12)) == "term"
    obs = [(T0, 1.0), (T0 + timedelta(days=1), 1.0)]
    rows = feature_rows(resample(obs), [0, 96], 10.0, cal)
    exam = FEATURE_NAMES.index("day_exam")
    assert rows[0, exam] == 1.0 and rows[1, exam] == 1.0


@pytest.mark.parametrize(
    "text",
    ["[[periods]]\nstart = 2024-10-07\nend = 2024-10-01\ntype = \"exam\"\n",
     "[[periods]]\nstart = 2024-10-07\nend = 2024-10-09\ntype = \"party\"\n",
     "holidays = 3\n", "not toml ["],
)
def test_bad_calendars_fail_in_one_line(text: str) -> None:
    with pytest.raises(CalendarError) as err:
        LibraryCalendar.from_toml(text, "cal.toml")
    assert str(err.value).startswith("cal.toml: ") and "\n" not in str(err.value)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12 * 24 * 60), st.integers(0, 50)), min_size=2, max_size=200))
def test_edge_memory_matches_the_training_grid(points: list[tuple[int, int]]) -> None:
    obs = sorted({T0 + timedelta(minutes=m): float(c) for m, c in points}.items())
    history = ZoneHistory()
    for t, c in obs:
        history.add(t, c)
    end = obs[-1][0]
    assert len(history) <= history.max_slots
    edge = history.grid(end)
    full = resample(obs, edge.start, end)
    assert np.array_equal(np.nan_to_num(edge.values, nan=-1), np.nan_to_num(full.values, nan=-1))


def test_edge_memory_is_bounded() -> None:
    history = ZoneHistory(keep_days=1)
    for i in range(5000):
        history.add(T0 + timedelta(minutes=i), float(i % 30))
    assert len(history) <= history.max_slots == 96 + 5


def test_parse_history_keeps_last_duplicate() -> None:
    rows = [["timestamp", "zone", "occupied"], ["2024-10-07T08:00", "z", "1"], ["2024-10-07T08:00", "z", "2"]]
    assert parse_history(rows)["z"] == [(T0, 2.0)]

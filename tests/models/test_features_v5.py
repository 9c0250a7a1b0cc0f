"""demand-v5: the count's recent means and each profile shifted by today's offset from it over the
last hour; the same columns at the edge as in training, and models of older versions still served."""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli.model_cmd import FEATURE_SETS
from edge_agent.history import HistoryStore
from models.calendar import LibraryCalendar
from models.features import (
    CARRY_LEADS_MIN,
    CARRY_PROFILES,
    DAY_STEPS,
    FEATURE_NAMES_V4,
    FEATURE_NAMES_V5,
    FEATURE_VERSIONS,
    LATEST_VERSION,
    RELATIVE_TO_NOW,
    V3,
    V4,
    V5,
    feature_names,
    feature_rows,
    version_of_width,
)
from models.history import Observation, ZoneHistory, resample
from models.inference import ModelSlot, forecast_features
from models.quantile_mlp import init_params, predict, widen
from models.training import TrainingParams, train

START = datetime(2024, 9, 2)  # a Monday
NOW = datetime(2024, 10, 2, 10, 7)  # a Wednesday, four weeks and two days later
#: A holiday week inside the four weeks and a special day: the typed profile has kinds to tell apart.
CALENDAR = LibraryCalendar.from_data({
    "periods": [{"start": date(2024, 9, 16), "end": date(2024, 9, 20), "type": "holiday"}],
    "holidays": [{"date": date(2024, 9, 30), "name": "a Monday off"}],
}, "test")


def curve(t: datetime) -> float:
    """A weekday's people count: 0 at night, a morning ramp to a midday peak; weekends quieter."""
    hour = t.hour + t.minute / 60
    peak = 40.0 if t.weekday() < 5 else 12.0
    return max(0.0, peak * math.sin(math.pi * (hour - 7) / 14)) if 7 <= hour <= 21 else 0.0


def history(days: int = 31, seed: int = 0) -> list[Observation]:
    """Noisy counts every 15 minutes, with a gap on the second Thursday afternoon."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(days * 96):
        t = START + timedelta(minutes=15 * i)
        if t.date() == date(2024, 9, 12) and 13 <= t.hour < 17:
            continue
        out.append((t, float(max(0, round(curve(t) + rng.normal(0, 3))))))
    return out


def test_v5_extends_v4_and_is_built_by_default() -> None:
    assert FEATURE_VERSIONS == (V3, V4, V5) == FEATURE_SETS
    assert LATEST_VERSION == V5 == FEATURE_SETS[-1]
    assert feature_names(V5)[: len(FEATURE_NAMES_V4)] == FEATURE_NAMES_V4
    offsets = 2 * len(CARRY_LEADS_MIN) * len(CARRY_PROFILES)
    assert len(RELATIVE_TO_NOW) == 2 + offsets + 5 * len(CARRY_LEADS_MIN)
    assert len(FEATURE_NAMES_V5) == len(FEATURE_NAMES_V4) + 4 + offsets + len(RELATIVE_TO_NOW) == 253
    assert version_of_width(len(FEATURE_NAMES_V5)) == V5
    with pytest.raises(ValueError, match="demand-v3, demand-v4, demand-v5"):
        feature_names("demand-v9")


def test_a_federated_start_widens_to_v5_with_the_same_forecast() -> None:
    params = widen(init_params((15, 60), seed=1), V4)
    wide = widen(params, V5)
    x = np.random.default_rng(2).random((4, len(FEATURE_NAMES_V5)), dtype=np.float32)
    assert np.allclose(predict(wide, x), predict(params, x[:, : len(FEATURE_NAMES_V4)]), atol=1e-6)


def test_offset_columns_are_the_profile_plus_the_last_hours_offset() -> None:
    obs = history()
    busy = [(t, v + 8.0) if t.date() == date(2024, 10, 1) else (t, v) for t, v in obs]
    grid = resample(busy)
    k = grid.index_of(datetime(2024, 10, 1, 11, 0))  # a Tuesday running 8 people above the usual
    x = feature_rows(grid, [k], 40.0, CALENDAR, V5)[0]
    row = dict(zip(FEATURE_NAMES_V5, x.tolist(), strict=True))
    v4 = feature_rows(grid, [k], 40.0, CALENDAR, V4)[0]
    assert np.array_equal(x[: v4.size], v4)  # v4's columns unchanged
    y = grid.values / 40.0
    assert row["mean_30"] == pytest.approx(np.mean(y[k - 2: k + 1]), abs=1e-6)
    assert row["mean_60"] == pytest.approx(np.mean(y[k - 4: k + 1]), abs=1e-6)
    # yesterday and the seven-day profile, by hand: over t-60 .. t, today minus the profile, averaged
    offset_day = np.mean([y[k - j] - y[k - j - DAY_STEPS] for j in range(5)])
    offset_days7 = np.mean([y[k - j] - np.mean([y[k - j - d * DAY_STEPS] for d in range(1, 8)]) for j in range(5)])
    for lead in CARRY_LEADS_MIN:
        assert row[f"offset_day_{lead}"] == pytest.approx(row[f"day_{lead}"] + offset_day, abs=1e-5)
        assert row[f"offset_days7_{lead}"] == pytest.approx(row[f"days7_{lead}"] + offset_days7, abs=1e-5)
        assert all(row[f"offset_{p}_{lead}_missing"] == 0.0 for p in CARRY_PROFILES)
    # the typed profile (Monday 30 September was a holiday: it is skipped) lies 8 people below today
    assert row["offset_typed_60"] - row["typed_60"] == pytest.approx(8.0 / 40.0, abs=0.05)
    assert row["offset_typed_60"] > row["typed_60"]


def test_vs_now_columns_are_each_forecast_minus_the_count_now() -> None:
    grid = resample(history())
    k = grid.index_of(datetime(2024, 10, 1, 11, 0))
    row = dict(zip(FEATURE_NAMES_V5, feature_rows(grid, [k], 40.0, CALENDAR, V5)[0].tolist(), strict=True))
    assert row["now"] == pytest.approx(grid.values[k] / 40.0) and row["now_missing"] == 0.0
    for name in RELATIVE_TO_NOW:
        assert row[f"{name}_vs_now"] == pytest.approx(row[name] - row["now"], abs=1e-6), name
    assert {"mean_30", "carry_typed_60", "offset_weeks4_120", "day_60", "typed_240"} <= set(RELATIVE_TO_NOW)
    # without a count now (a sensor gap) the differences are 0, not minus nothing
    gap = grid.values.copy()
    gap[k] = np.nan
    row = dict(zip(FEATURE_NAMES_V5, feature_rows(type(grid)(grid.start, gap), [k], 40.0, CALENDAR, V5)[0].tolist(),
                   strict=True))
    assert row["now_missing"] == 1.0 and row["mean_60_missing"] == 0.0
    assert all(row[f"{name}_vs_now"] == 0.0 for name in RELATIVE_TO_NOW)


def test_cold_start_falls_back_to_the_recent_mean_flagged_missing() -> None:
    first = [(START + timedelta(hours=9), 17.0), (START + timedelta(hours=9, minutes=30), 21.0)]
    grid = resample(first)
    row = dict(zip(FEATURE_NAMES_V5, feature_rows(grid, [grid.values.size - 1], 40.0, None, V5)[0].tolist(),
                   strict=True))
    recent = (17.0 + 17.0 + 21.0) / 3 / 40.0  # the grid holds 09:00's count at 09:15
    assert row["mean_60"] == pytest.approx(recent) and row["mean_60_missing"] == 0.0
    for lead in CARRY_LEADS_MIN:
        for p in CARRY_PROFILES:
            assert row[f"offset_{p}_{lead}"] == pytest.approx(recent)
            assert row[f"offset_{p}_{lead}_missing"] == 1.0
    nothing = resample([], START, START + timedelta(hours=2))  # no count at all yet
    row = dict(zip(FEATURE_NAMES_V5, feature_rows(nothing, [8], 40.0, None, V5)[0].tolist(), strict=True))
    assert row["mean_30"] == 0.0 and row["mean_30_missing"] == 1.0
    assert all(row[f"offset_{p}_{lead}"] == 0.0 and row[f"offset_{p}_{lead}_missing"] == 1.0
               for lead in CARRY_LEADS_MIN for p in CARRY_PROFILES)


def test_v5_columns_never_look_ahead() -> None:
    grid = resample(history())
    k = grid.index_of(datetime(2024, 9, 30, 11, 0))
    changed = grid.values.copy()
    changed[k + 1:] = 99.0
    before = feature_rows(grid, [k], 40.0, CALENDAR, V5)
    assert np.array_equal(before, feature_rows(type(grid)(grid.start, changed), [k], 40.0, CALENDAR, V5))


def test_rows_at_one_anchor_equal_the_rows_of_a_batch() -> None:
    """Training computes every anchor at once, the edge one at a time: the same values either way."""
    grid = resample(history())
    k = np.arange(grid.values.size - 3 * DAY_STEPS, grid.values.size, 7)
    batch = feature_rows(grid, k, 40.0, CALENDAR, V5)
    for i in (0, 5, len(k) // 2, len(k) - 1):
        assert np.array_equal(batch[i], feature_rows(grid, [int(k[i])], 40.0, CALENDAR, V5)[0])


def test_edge_rows_from_the_durable_history_equal_the_training_rows(tmp_path: Path) -> None:
    obs = history(31)
    store = HistoryStore(tmp_path / "history.sqlite")
    store.record_many((t, "z1", v) for t, v in obs if t <= NOW)
    store.close()
    reopened = HistoryStore(tmp_path / "history.sqlite")  # a restarted gateway
    histories = {"z1": ZoneHistory(capacity=40.0)}
    assert reopened.warm(histories, NOW) > 27 * 96
    reopened.close()
    edge = forecast_features(histories, ["z1"], [40.0], NOW, CALENDAR, V5)
    # training's grid starts at the data's first count, four weeks and more before the edge's
    training_grid = resample(obs)
    training = feature_rows(training_grid, np.arange(training_grid.values.size), 40.0, CALENDAR, V5)
    row = training[training_grid.index_of(NOW)]
    assert edge.shape == (1, len(FEATURE_NAMES_V5))
    assert np.allclose(edge[0], row, atol=1e-6), [n for n, a, b in zip(FEATURE_NAMES_V5, edge[0], row, strict=True)
                                                  if abs(a - b) > 1e-6]
    assert edge[0, FEATURE_NAMES_V5.index("offset_typed_60_missing")] == 0.0


def test_a_gateway_serves_models_of_every_version_from_the_same_history(tmp_path: Path) -> None:
    data = {"z1": history(21)}
    histories = {"z1": ZoneHistory(capacity=40.0)}
    for t, v in history(31):
        if t <= NOW:
            histories["z1"].add(t, v)
    for version in (V3, V4, V5):
        model = train(data, (15, 60), CALENDAR, params=TrainingParams(max_iter=5, feature_version=version))
        path = tmp_path / f"{version}.onnx"
        path.write_bytes(model.onnx_bytes)
        slot = ModelSlot(path, shipped=None)
        assert slot.load().startswith("model ")
        loaded = slot.forecaster
        assert loaded is not None and loaded.info.feature_version == version
        served = asyncio.run(slot.forecast(histories, NOW, CALENDAR))["z1"]
        # the slot computed this version's columns: the same as running the graph on them by hand
        x = forecast_features(histories, ["z1"], [40.0], NOW, CALENDAR, version)
        assert x.shape[1] == len(feature_names(version))
        by_hand = loaded.quantiles(x)[0].reshape(2, 3) * 40.0
        for j, h in enumerate((15, 60)):
            assert served[h] == pytest.approx(tuple(by_hand[j]), abs=1e-3), version
        # the daemon's slot checks and runs the model in a child process: the same forecast
        isolated = ModelSlot(tmp_path / f"isolated-{version}.onnx", shipped=None, isolated=True)
        assert isolated.try_swap(model.onnx_bytes, hashlib.sha256(model.onnx_bytes).hexdigest()).ok, version
        assert isolated.predict(histories, NOW, CALENDAR) == slot.predict(histories, NOW, CALENDAR), version

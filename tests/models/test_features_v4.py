"""demand-v4: the count now carried by each profile's change, at the edge from the durable history,
with a defined cold start, in models of either version."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli import cli
from edge_agent.cli.model_cmd import FEATURE_SETS
from edge_agent.history import HistoryStore
from models.features import (
    CARRY_LEADS_MIN,
    CARRY_PROFILES,
    FEATURE_NAMES,
    FEATURE_NAMES_V4,
    FEATURE_VERSIONS,
    V3,
    V4,
    feature_names,
    feature_rows,
    version_of_width,
)
from models.history import Observation, ZoneHistory, resample
from models.inference import Forecaster, ModelSlot, forecast_features
from models.quantile_mlp import export_onnx, init_params, params_from_onnx, predict, widen
from models.training import TrainingParams, train
from tests.clirunner import CliRunner

START = datetime(2024, 9, 2)  # a Monday
NOW = datetime(2024, 10, 2, 10, 7)  # a Wednesday, four weeks and two days later


def curve(t: datetime) -> float:
    """A weekday's people count: 0 at night, a morning ramp to a midday peak; weekends quieter."""
    hour = t.hour + t.minute / 60
    peak = 40.0 if t.weekday() < 5 else 12.0
    return max(0.0, peak * math.sin(math.pi * (hour - 7) / 14)) if 7 <= hour <= 21 else 0.0


def history(days: int = 30, level: float = 1.0) -> list[Observation]:
    return [(START + timedelta(minutes=15 * i), round(level * curve(START + timedelta(minutes=15 * i))))
            for i in range(days * 96)]


def test_versions_are_named_and_v4_extends_v3() -> None:
    assert FEATURE_VERSIONS[:2] == (V3, V4) and FEATURE_VERSIONS == FEATURE_SETS  # the CLI spells them out
    assert feature_names(V4)[: len(FEATURE_NAMES)] == FEATURE_NAMES
    assert len(FEATURE_NAMES_V4) == len(FEATURE_NAMES) + 2 * len(CARRY_LEADS_MIN) * len(CARRY_PROFILES)
    assert version_of_width(len(FEATURE_NAMES)) == V3 and version_of_width(len(FEATURE_NAMES_V4)) == V4
    with pytest.raises(ValueError, match="demand-v3, demand-v4"):
        feature_names("demand-v9")
    with pytest.raises(ValueError, match="match no version"):
        version_of_width(7)


def test_carried_columns_are_now_plus_each_profiles_change() -> None:
    obs = history()
    busy = [(t, v * 1.5) if t.date() == datetime(2024, 10, 1).date() else (t, v) for t, v in obs]
    grid = resample(busy)
    k = grid.index_of(datetime(2024, 10, 1, 9, 0))  # a Tuesday running 50 % above the usual
    v3 = feature_rows(grid, [k], 40.0, None, V3)[0]
    v4 = dict(zip(FEATURE_NAMES_V4, feature_rows(grid, [k], 40.0, None, V4)[0].tolist(), strict=True))
    assert np.array_equal(v3, np.array([v4[n] for n in FEATURE_NAMES], np.float32))  # v3's columns unchanged
    now = grid.values[k] / 40.0
    for lead in CARRY_LEADS_MIN:
        for p in CARRY_PROFILES:
            assert v4[f"carry_{p}_{lead}_missing"] == 0
            assert v4[f"carry_{p}_{lead}"] == pytest.approx(now + v4[f"{p}_{lead}"] - v4[f"{p}_0"], abs=1e-6)
    # the typed profile is last Monday-Friday days at those times: the rise from 09:00 to 10:00, on today's level
    typed_change = (curve(datetime(2024, 9, 30, 10)) - curve(datetime(2024, 9, 30, 9))) / 40.0
    assert v4["carry_typed_60"] == pytest.approx(now + typed_change, abs=0.02)
    assert v4["carry_typed_60"] > v4["typed_60"]  # a busy day stays busy: above the plain profile


def test_cold_start_falls_back_to_the_count_now_flagged_missing() -> None:
    first = [(START + timedelta(hours=9), 17.0)]  # a gateway's very first count
    row = dict(zip(FEATURE_NAMES_V4, feature_rows(resample(first), [0], 40.0, None, V4)[0].tolist(), strict=True))
    for lead in CARRY_LEADS_MIN:
        for p in CARRY_PROFILES:
            assert row[f"carry_{p}_{lead}"] == pytest.approx(17.0 / 40.0)
            assert row[f"carry_{p}_{lead}_missing"] == 1.0
    nothing = resample([], START, START + timedelta(hours=2))  # no count at all yet
    row = dict(zip(FEATURE_NAMES_V4, feature_rows(nothing, [8], 40.0, None, V4)[0].tolist(), strict=True))
    assert all(row[f"carry_{p}_{lead}"] == 0.0 and row[f"carry_{p}_{lead}_missing"] == 1.0
               for lead in CARRY_LEADS_MIN for p in CARRY_PROFILES)
    assert all(np.isfinite(v) for v in row.values())


def test_carried_columns_never_look_ahead() -> None:
    obs = history()
    grid = resample(obs)
    k = grid.index_of(datetime(2024, 9, 30, 11, 0))
    changed = grid.values.copy()
    changed[k + 1:] = 99.0
    before = feature_rows(grid, [k], 40.0, None, V4)
    assert np.array_equal(before, feature_rows(type(grid)(grid.start, changed), [k], 40.0, None, V4))


def test_edge_rows_from_the_durable_history_match_the_offline_rows(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    store.record_many((t, "z1", v) for t, v in history(31) if t <= NOW)
    store.close()
    reopened = HistoryStore(tmp_path / "history.sqlite")  # a restarted gateway
    histories = {"z1": ZoneHistory(capacity=40.0), "z2": ZoneHistory(capacity=40.0)}  # z2: new, no history yet
    assert reopened.warm(histories, NOW) > 27 * 96
    reopened.close()
    histories["z2"].add(NOW - timedelta(minutes=10), 5.0)  # 09:57: the 10:00 slot's count
    edge = forecast_features(histories, ["z1", "z2"], [40.0, 40.0], NOW, None, V4)
    offline_grid = resample([o for o in history(31) if o[0] <= NOW])
    offline = feature_rows(offline_grid, [offline_grid.index_of(NOW)], 40.0, None, V4)[0]
    names = list(FEATURE_NAMES_V4)
    carried = [names.index(f"carry_{p}_{lead}") for lead in CARRY_LEADS_MIN for p in CARRY_PROFILES]
    assert np.allclose(edge[0, carried], offline[carried])
    assert edge[0, names.index("carry_typed_60_missing")] == 0.0
    assert np.all(edge[1, carried] == np.float32(5.0 / 40.0))  # the new zone: cold start
    assert edge[1, names.index("carry_typed_60_missing")] == 1.0


def test_boosted_models_of_both_versions_round_trip_and_serve(tmp_path: Path) -> None:
    data = {"z1": history(21)}
    histories = {"z1": ZoneHistory(capacity=40.0)}
    for t, v in history(31):
        if t <= NOW:
            histories["z1"].add(t, v)
    served = {}
    for version in (V3, V4):
        model = train(data, (15, 60), params=TrainingParams(max_iter=5, feature_version=version))
        path = tmp_path / f"{version}.onnx"
        path.write_bytes(model.onnx_bytes)
        slot = ModelSlot(path, shipped=None)
        assert slot.load().startswith("model ")
        loaded = slot.forecaster
        assert loaded is not None
        assert loaded.info.feature_version == version
        assert loaded.info.metadata["feature_count"] == str(len(feature_names(version)))
        served[version] = asyncio.run(slot.forecast(histories, NOW))["z1"]
    for version, forecast in served.items():
        assert set(forecast) == {15, 60}, version
        assert all(0.0 <= p10 <= p50 <= p90 <= 60.0 for p10, p50, p90 in forecast.values()), version


def test_quantile_mlp_v4_round_trips_through_onnx() -> None:
    params = widen(init_params((15, 30, 60), seed=3), V4)
    rng = np.random.default_rng(0)
    params = [(p + rng.normal(0.0, 0.05, p.shape)).astype(np.float32) for p in params]
    data = export_onnx(params, (15, 30, 60), {"training": "test"})
    back, horizons = params_from_onnx(data)
    assert horizons == (15, 30, 60) and all(np.array_equal(a, b) for a, b in zip(params, back, strict=True))
    model = Forecaster.from_bytes(data)
    assert model.info.feature_version == V4
    x = rng.random((5, len(FEATURE_NAMES_V4)), dtype=np.float32)
    assert np.allclose(model.run(x), predict(params, x), atol=1e-5)


def test_widening_keeps_the_forecast() -> None:
    params = init_params((15, 60), seed=1)
    wide = widen(params, V4)
    x = np.random.default_rng(2).random((4, len(FEATURE_NAMES_V4)), dtype=np.float32)
    assert np.allclose(predict(wide, x), predict(params, x[:, : len(FEATURE_NAMES)]), atol=1e-6)
    with pytest.raises(ValueError, match="cannot be widened"):
        widen(wide, V3)


def test_train_cli_writes_the_asked_version(tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    csv.write_text("timestamp,zone,occupied\n" + "".join(f"{t.isoformat()},z1,{v:g}\n" for t, v in history(10)))
    for version in FEATURE_SETS:
        out = tmp_path / f"{version}.onnx"
        result = CliRunner().invoke(cli, ["model", "train", "--history", str(csv), "--max-iter", "5",
                                           "--features", version, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"features {version}" in result.output
        assert Forecaster.from_path(out).info.feature_version == version
    bad = CliRunner().invoke(cli, ["model", "train", "--history", str(csv), "--features", "demand-v9",
                                    "--out", str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and "demand-v9" in bad.output

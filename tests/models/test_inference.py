"""Edge inference: model checks at load, batched forecasts, and a slot that never takes a bad model."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from drivers.errors import ModelError
from models import DEFAULT_MODEL_PATH
from models.features import FEATURE_VERSION, N_FEATURES
from models.history import ZoneHistory
from models.inference import Forecaster, ModelSlot

NOW = datetime(2024, 10, 15, 14, 7)


def tiny_model(
    level: float = 0.25,
    *,
    n_features: int = N_FEATURES,
    horizons: str = "15,30,60",
    width: int | None = None,
    meta: Mapping[str, str] | None = None,
) -> bytes:
    """A valid-looking model predicting a constant fraction (``level``), with adjustable defects."""
    out_width = width if width is not None else 3 * len(horizons.split(","))
    weights = numpy_helper.from_array(np.zeros((n_features, out_width), np.float32), "w")
    bias = numpy_helper.from_array(np.full((out_width,), level, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["forecast"])],
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("forecast", TensorProto.FLOAT, [None, out_width])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {
        "feature_version": FEATURE_VERSION, "feature_count": str(N_FEATURES), "horizons_min": horizons,
        "quantiles": "0.1,0.5,0.9", "step_min": "15", "zone_scale": '{"a": 10.0}',
    }
    props.update(meta or {})
    helper.set_model_props(model, props)
    data: bytes = model.SerializeToString()
    return data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def histories(zones: int = 3) -> dict[str, ZoneHistory]:
    out: dict[str, ZoneHistory] = {}
    for z in range(zones):
        h = ZoneHistory(capacity=20.0)
        for i in range(29 * 96):
            t = NOW - timedelta(minutes=15 * i)
            h.add(t, float(10 + z if 8 <= t.hour < 22 else 0))
        out[f"z{z}"] = h
    return out


def test_shipped_default_model_loads_and_predicts() -> None:
    model = Forecaster.from_path(DEFAULT_MODEL_PATH)
    assert model.info.metadata["feature_version"] == FEATURE_VERSION
    assert model.info.metadata["zone_agnostic"] == "true"
    forecast = model.predict(histories(6), NOW)
    assert set(forecast) == {f"z{i}" for i in range(6)}
    for per_zone in forecast.values():
        assert set(per_zone) == set(model.horizons)
        for p10, p50, p90 in per_zone.values():
            assert 0.0 <= p10 <= p50 <= p90 <= 25.0
        assert 3.0 < per_zone[15][1] < 18.0  # a Tuesday afternoon with 10-15 of 20 seats taken


def test_constant_model_scales_by_capacity() -> None:
    model = Forecaster.from_bytes(tiny_model(0.25))
    forecast = model.predict({"a": ZoneHistory(capacity=40.0), "b": ZoneHistory()}, NOW)
    assert forecast["a"][30] == (10.0, 10.0, 10.0)  # the daemon's capacity wins
    assert forecast["b"][30] == (0.25, 0.25, 0.25)  # no capacity, no data: scale 1


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "not a loadable ONNX model"),
        (b"\x00garbage" * 50, "not a loadable ONNX model"),
        (tiny_model()[:-40], "not a loadable ONNX model"),
        (tiny_model(meta={"feature_version": "demand-v0"}), "feature version"),
        (tiny_model(n_features=N_FEATURES - 1), "input shape"),
        (tiny_model(width=6), "output shape"),
        (tiny_model(horizons="15,20,60"), "horizons_min"),
        (tiny_model(meta={"quantiles": "0.05,0.5,0.95"}), "quantiles"),
        (tiny_model(float("nan")), "non-finite"),
    ],
)
def test_bad_models_raise_model_error(data: bytes, words: str) -> None:
    with pytest.raises(ModelError, match=words) as err:
        Forecaster.from_bytes(data, "m.onnx")
    assert str(err.value).startswith("m.onnx: ") and "\n" not in str(err.value)


@pytest.fixture
def slot(tmp_path: Path) -> ModelSlot:
    s = ModelSlot(tmp_path / "state" / "model.onnx", shipped=None)
    first = tiny_model(0.2)
    assert s.try_swap(first, sha(first)).ok
    return s


BAD = {
    "corrupted": b"\x08\x07" + bytes(range(256)) * 4,
    "truncated": tiny_model(0.4)[:100],
    "feature version": tiny_model(0.4, meta={"feature_version": "demand-v9"}),
    "input shape": tiny_model(0.4, n_features=N_FEATURES + 3),
    "horizons": tiny_model(0.4, meta={"horizons_min": "15,30,60,120"}),
}


@pytest.mark.parametrize("defect", sorted(BAD))
def test_bad_model_never_replaces_a_working_one(slot: ModelSlot, defect: str) -> None:
    on_disk = slot.path.read_bytes()
    before = slot.predict(histories(1), NOW)
    result = slot.try_swap(BAD[defect], sha(BAD[defect]))
    assert not result.ok and result.reason
    assert slot.path.read_bytes() == on_disk
    assert slot.predict(histories(1), NOW) == before
    assert [p.name for p in slot.path.parent.iterdir()] == ["model.onnx"]  # no temp file left behind
    assert ModelSlot(slot.path, shipped=None).load() == slot.serving  # a restart loads the good one


def test_hash_mismatch_is_refused(slot: ModelSlot) -> None:
    good = tiny_model(0.5)
    result = slot.try_swap(good, sha(good + b"x"))
    assert not result.ok and "sha256" in result.reason
    assert slot.predict(histories(1), NOW)["z0"][15][1] == pytest.approx(4.0)


def test_swap_persists_keeps_previous_and_rolls_back(slot: ModelSlot) -> None:
    old = slot.path.read_bytes()
    new = tiny_model(0.5)
    assert slot.try_swap(new, sha(new).upper()).ok
    assert slot.path.read_bytes() == new and slot.previous_path.read_bytes() == old
    assert slot.predict(histories(1), NOW)["z0"][60][1] == pytest.approx(10.0)
    assert slot.rollback().ok
    assert slot.path.read_bytes() == old
    assert slot.predict(histories(1), NOW)["z0"][60][1] == pytest.approx(4.0)


def test_load_falls_back_to_previous_then_baseline(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"half a model")
    good = tiny_model(0.3)
    path.with_name("model.onnx.prev").write_bytes(good)
    s = ModelSlot(path, shipped=None)
    assert s.load() == f"model {sha(good)[:12]}"
    assert s.problems and "not a loadable" in s.problems[0]
    path.with_name("model.onnx.prev").unlink()
    assert s.load() == "baseline"


def test_baseline_serves_same_time_last_week(tmp_path: Path) -> None:
    s = ModelSlot(tmp_path / "none.onnx", shipped=None)
    assert s.load() == "baseline"
    h = ZoneHistory()
    for i in range(29 * 96):
        t = NOW.replace(minute=0) - timedelta(minutes=15 * i)
        h.add(t, float(t.hour))
    forecast = s.predict({"z": h}, NOW)["z"]
    assert forecast[60][1] == 15.0  # 15:00 last week
    assert forecast[60][0] <= forecast[60][1] <= forecast[60][2]


async def test_async_forecast_runs_off_the_event_loop(slot: ModelSlot, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = slot.predict

    def spy(*args: object) -> object:
        seen.append(threading.get_ident())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(slot, "predict", spy)
    forecast = await slot.forecast(histories(2), NOW)
    assert seen and seen[0] != threading.get_ident()
    assert set(forecast) == {"z0", "z1"}
    assert isinstance(asyncio.get_running_loop(), asyncio.AbstractEventLoop)

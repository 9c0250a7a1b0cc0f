"""The isolated model slot: checks and forecasts in a child process, the same answers, no onnxruntime here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models import DEFAULT_MODEL_PATH
from models.inference import Forecaster, ModelSlot

from .test_inference import BAD, NOW, histories, sha, tiny_model

ROOT = Path(__file__).resolve().parents[2]


def test_isolated_forecast_equals_the_in_process_one(tmp_path: Path) -> None:
    slot = ModelSlot(tmp_path / "model.onnx", isolated=True)  # nothing there: the shipped model serves
    here = Forecaster.from_path(DEFAULT_MODEL_PATH)
    assert slot.load() == f"model {here.info.sha256[:12]}"
    assert slot.forecaster is None  # nothing loaded in this process
    assert slot.predict(histories(4), NOW) == here.predict(histories(4), NOW)


def test_isolated_slot_refuses_a_bad_model_and_swaps_and_rolls_back(tmp_path: Path) -> None:
    slot = ModelSlot(tmp_path / "model.onnx", shipped=None, isolated=True)
    first, second = tiny_model(0.2), tiny_model(0.5)
    assert slot.try_swap(first, sha(first)).ok
    for defect in ("corrupted",):
        result = slot.try_swap(BAD[defect], sha(BAD[defect]))
        assert not result.ok and "rejected" in result.reason
    assert slot.path.read_bytes() == first
    assert slot.predict(histories(1), NOW)["z0"][15][1] == pytest.approx(4.0)  # 0.2 of 20 seats
    assert slot.try_swap(second, sha(second)).ok and slot.serving == f"model {sha(second)[:12]}"
    assert slot.predict(histories(1), NOW)["z0"][15][1] == pytest.approx(10.0)
    assert slot.rollback().ok
    assert slot.predict(histories(1), NOW)["z0"][15][1] == pytest.approx(4.0)


def test_a_model_changed_behind_the_slot_gives_the_baseline_not_an_error(tmp_path: Path) -> None:
    slot = ModelSlot(tmp_path / "model.onnx", shipped=None, isolated=True)
    first = tiny_model(0.2)
    assert slot.try_swap(first, sha(first)).ok
    slot.path.write_bytes(tiny_model(0.9))  # not through the slot: its digest no longer matches
    assert slot.predict(histories(1), NOW) == slot.baseline.predict(histories(1), NOW)


def test_the_daemons_process_never_imports_onnxruntime(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from models.inference import ModelSlot\n"
        "from tests.models.test_inference import NOW, histories\n"
        f"slot = ModelSlot({str(tmp_path / 'model.onnx')!r}, isolated=True)\n"
        "serving = slot.load()\n"
        "forecast = slot.predict(histories(2), NOW)\n"
        "print(json.dumps([serving, sorted(forecast), 'onnxruntime' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    serving, zones, imported = json.loads(out.stdout)
    assert serving.startswith("model ") and zones == ["z0", "z1"] and imported is False

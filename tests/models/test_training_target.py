"""The trees learn the change from the count now (the default) or the level: the exported graph
adds the count now back, so both serve the same forecast at the edge as scikit-learn computes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from edge_agent.cli import cli
from models.features import FEATURE_NAMES, feature_rows
from models.history import resample
from models.inference import Forecaster
from models.training import CHANGE_FROM, TrainingParams, _train
from tests.clirunner import CliRunner
from tests.models.test_features_v4 import history


def fit_recorded(target: str) -> tuple[Forecaster, list[Any]]:
    """Train through the shipped path, keeping the fitted scikit-learn ensembles to compare with."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    fitted: list[Any] = []

    class Recorded(HistGradientBoostingRegressor):  # type: ignore[misc]
        def fit(self, *args: Any, **kwargs: Any) -> Any:
            fitted.append(self)
            return super().fit(*args, **kwargs)

    model = _train(Recorded, {"z1": history(21)}, (15, 60), None, None, {"z1": 40.0},
                   TrainingParams(max_iter=8, target=target))
    return Forecaster.from_bytes(model.onnx_bytes), fitted


@pytest.mark.parametrize("target", ["change", "level"])
def test_the_graph_is_the_trees_plus_the_count_now(target: str) -> None:
    model, fitted = fit_recorded(target)
    assert len(fitted) == 6  # two horizons, three quantiles
    grid = resample(history(28))
    x = feature_rows(grid, np.arange(100, grid.values.size, 7), 40.0, None, model.info.feature_version)
    trees = np.stack([m.predict(x) for m in fitted], axis=1)
    now = x[:, FEATURE_NAMES.index(CHANGE_FROM)].astype(np.float64)[:, None]
    expected = trees + now if target == "change" else trees
    assert np.allclose(model.run(x), expected, atol=1e-5)
    assert model.info.metadata["target"] == ("change from now" if target == "change" else "level")


def test_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="change, level"):
        _train(object, {"z1": history(21)}, (15,), None, None, None, TrainingParams(target="levels"))


def test_train_cli_writes_the_asked_target(tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    csv.write_text("timestamp,zone,occupied\n" + "".join(f"{t.isoformat()},z1,{v:g}\n" for t, v in history(10)))
    for target, says in (("change", "change from now"), ("level", "level")):
        out = tmp_path / f"{target}.onnx"
        result = CliRunner().invoke(cli, ["model", "train", "--history", str(csv), "--max-iter", "5",
                                           "--target", target, "--out", str(out)])
        assert result.exit_code == 0, result.output
        graph = onnx.load(str(out))
        assert ("Add" in [n.op_type for n in graph.graph.node]) == (target == "change")
        assert Forecaster.from_path(out).info.metadata["target"] == says

"""Local adaptation: a gateway fits the delivered federated model to its own floor, and serves it only if better."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edge_agent.federation.trainer import GatewayTrainer
from edge_agent.forecast_config import FederationConf
from models.inference import ModelSlot
from models.quantile_mlp import export_onnx, init_params, params_from_onnx
from tests.federation.conftest import floor, gateway_state, history_reader


def _gateway(tmp_path: Path) -> tuple[GatewayTrainer, ModelSlot, list[tuple[Any, str | None]]]:
    cfg = floor("a", ["group", "silent"], 12)
    state = gateway_state(tmp_path, cfg, 4)
    slot = ModelSlot(state / "model.onnx")
    slot.load()

    load = history_reader(state)

    def install(data: bytes, sha: str, signature: Any, adapted_from: str | None) -> tuple[bool, str]:
        calls.append((signature, adapted_from))
        result = slot.try_swap(data, sha)
        return result.ok, result.reason

    calls: list[tuple[Any, str | None]] = []
    conf = FederationConf.model_validate({"holdout_days": 7, "adapt_steps": 80})
    return GatewayTrainer(conf, load, lambda: None, state, capacities={z.id: 12.0 for z in cfg.zones},
                          install=install), slot, calls


def test_the_delivered_model_is_adapted_on_the_floor_and_served_when_better(tmp_path: Path) -> None:
    trainer, slot, calls = _gateway(tmp_path)
    assert trainer.adapt(80) == (False, "no federated model delivered")
    # A federation's first model, before any floor trained it: the weekday profile and an idle hidden layer.
    delivered = export_onnx(init_params((15, 30, 60)), (15, 30, 60), {"training": "federated"})
    sha = hashlib.sha256(delivered).hexdigest()
    params, _ = params_from_onnx(delivered)
    signature = {"key_id": "publisher-1", "signature": "stated by the server"}
    _, _, metrics = trainer.evaluate(params, {"horizons": "15,30,60", "install_model": delivered, "install_sha256": sha,
                                              "install_manifest": json.dumps({"signature": signature})})  # delivery
    assert metrics["installed"] == 1 and slot.serving == f"model {sha[:12]}"
    served, why = trainer.adapt(80)
    assert served, why
    # The delivery went to the install with its manifest's signature; the adapted model with its origin.
    assert calls == [(signature, None), (None, sha)]
    assert slot.forecaster is not None and slot.forecaster.info.metadata["adapted_from"] == sha
    assert slot.serving != f"model {sha[:12]}"
    mae_after, mae_before = (float(x) for x in why.removeprefix("adapted held-out MAE ").split(" < "))
    assert mae_after < mae_before

"""A gateway's own model mixed with the delivered federated model: served as one model, never sent.

The gateway (the real :class:`GatewayTrainer` on its own ``history.sqlite`` and :class:`ModelSlot`)
receives a federated model, trains its own, serves the mixture; the test reads the model the slot
serves from disk and checks that it forecasts exactly ``a * own + (1 - a) * adapted federated``, with
``a`` the weight of smallest held-out error. Then the gateway joins a Flower session and a client
mod records every message it sends: only arrays shaped like the federated model (never the
mixture's wider hidden layer), none of them holding its own model's weights, and named scalars.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.federation.client import run_client
from edge_agent.federation.personal import adapt_params
from edge_agent.federation.server import DirectoryPublisher, FederationServer, SessionPlan
from edge_agent.federation.trainer import RELEASE_FILE, GatewayTrainer
from edge_agent.forecast_config import FederationConf
from models.features import version_of_width
from models.inference import Forecaster, ModelSlot
from models.mixture import blend, choose_weight, validation_rows
from models.quantile_mlp import export_onnx, init_params, params_from_onnx, predict
from tests.federation.conftest import floor, gateway_state, history_reader
from tests.federation.test_federated_run import Sent, _recorder, check_scalars
from tests.mosquitto import free_port

HORIZONS = (15, 30, 60)


def _gateway(tmp_path: Path, conf: FederationConf) -> tuple[GatewayTrainer, ModelSlot, list[bytes]]:
    cfg = floor("m", ["quiet", "group"], 12)
    state = gateway_state(tmp_path, cfg, 9)
    slot = ModelSlot(state / "model.onnx")
    slot.load()

    load = history_reader(state)

    installed: list[bytes] = []

    def install(data: bytes, sha: str, signature: Any, adapted_from: str | None) -> tuple[bool, str]:
        result = slot.try_swap(data, sha)
        if result.ok:
            installed.append(data)
        return result.ok, result.reason

    trainer = GatewayTrainer(conf, load, lambda: None, state, capacities={z.id: 12.0 for z in cfg.zones},
                             install=install)
    return trainer, slot, installed


def _deliver(trainer: GatewayTrainer, params: list[Any]) -> bytes:
    delivered = export_onnx(params, HORIZONS, {"training": "federated"})
    _, _, metrics = trainer.evaluate(params, {"horizons": "15,30,60", "install_model": delivered,
                                              "install_sha256": hashlib.sha256(delivered).hexdigest()})
    assert metrics["installed"] == 1
    return delivered


def test_blend_forecasts_the_linear_mixture_of_the_two_models() -> None:
    local, federated = init_params(HORIZONS, seed=1), init_params(HORIZONS, seed=2, in_day=True)
    local[2] = local[2] + 0.05  # an output layer that does something
    x = np.random.default_rng(3).random((50, local[0].shape[0])).astype(np.float32)
    for a in (0.0, 0.3, 1.0):
        mixed = Forecaster.from_bytes(export_onnx(blend(local, federated, a), HORIZONS, {}))
        want = a * predict(local, x) + (1 - a) * predict(federated, x)
        assert np.allclose(mixed.run(x), want, atol=1e-5)
    with pytest.raises(ValueError):
        blend(local, federated, 1.5)


def test_the_gateway_serves_its_own_model_mixed_with_the_delivered_one_and_never_sends_it(tmp_path: Path) -> None:
    port = free_port()
    conf = FederationConf.model_validate({
        "enabled": True, "server": f"127.0.0.1:{port}", "holdout_days": 7, "adapt_steps": 30, "local_steps": 200,
        "cpu_seconds_per_round": 120, "profile_share": 0.3,
        "privacy": {"epsilon_total": 100.0, "noise_multiplier": 1.0},
    })
    trainer, slot, installed = _gateway(tmp_path, conf)
    assert trainer.adapt(30) == (False, "no federated model delivered")
    # A federation's first model, before any floor trained it (the in-day public start of a DP session).
    first = init_params(HORIZONS, in_day=True)
    delivered = _deliver(trainer, first)
    served, why = trainer.adapt(conf.adapt_steps)
    assert served, why
    assert trainer.local is not None and trainer.mixture is not None
    mixture = trainer.mixture

    # What the slot serves, read back from its file, is the mixture: one graph, both hidden layers.
    on_disk = slot.path.read_bytes()
    assert on_disk == installed[-1] and slot.serving == f"model {hashlib.sha256(on_disk).hexdigest()[:12]}"
    params, _ = params_from_onnx(on_disk)
    assert params[0].shape[1] == 2 * first[0].shape[1]
    assert slot.forecaster is not None
    meta = slot.forecaster.info.metadata
    assert meta["adapted_from"] == hashlib.sha256(delivered).hexdigest()
    assert float(meta["mixture_weight"]) == mixture.weight
    before = trainer.data(HORIZONS, version=version_of_width(first[0].shape[0]))
    rows = validation_rows(before.history, before.holdout_from, datetime.max, HORIZONS, None,
                           version_of_width(first[0].shape[0]))
    want = mixture.weight * predict(mixture.local, rows.x) + (1 - mixture.weight) * predict(mixture.federated, rows.x)
    assert np.allclose(slot.forecaster.run(rows.x), want, atol=1e-5)
    # The weight is the best of those tried on the held-out days, for the two models trained before them
    # (the delivered model adapted on those days, the gateway's own from the public start); the gateway's
    # own model weighs in, and the mixture beats the delivered model there.
    adapted_before = adapt_params(first, before.train, HORIZONS, conf.adapt_steps, conf.cpu_seconds_per_round)
    assert choose_weight(trainer.local.before, adapted_before, rows) == (mixture.weight, mixture.errors)
    assert mixture.weight > 0.0
    assert mixture.errors[mixture.weight] == min(mixture.errors.values()) < mixture.mae_delivered
    # What is served was trained again on every day, the held-out days too.
    assert not np.allclose(trainer.local.before[2], trainer.local.every[2])
    assert not np.allclose(mixture.federated[2], adapted_before[2])
    assert all(np.array_equal(x, y) for x, y in zip(mixture.local, trainer.local.every, strict=True))

    # A second delivery on the same history: mixed with the kept model, which is not trained again.
    kept = trainer.local
    second = [p.copy() for p in first]
    second[3] = second[3] + np.float32(0.01)
    _deliver(trainer, second)
    served, why = trainer.adapt(conf.adapt_steps)
    assert served, why
    assert trainer.local is kept and trainer.mixture is not mixture
    assert hashlib.sha256(slot.path.read_bytes()).hexdigest() != hashlib.sha256(on_disk).hexdigest()

    # Then the gateway takes part in a session: every message it sends is recorded.
    plan = SessionPlan(rounds=1, min_gateways=1, steps=20, batch_groups=16)
    server = FederationServer(f"127.0.0.1:{port}", plan, DirectoryPublisher(tmp_path / "published")).start()
    sent: list[Sent] = []
    thread = threading.Thread(target=run_client, args=(trainer, conf), kwargs={"mods": [_recorder(sent)]})
    thread.start()
    server.wait(timeout_s=120)
    thread.join(60)
    assert not thread.is_alive()
    assert len(sent) >= 2  # a fit and an evaluation at least
    shapes = [p.shape for p in init_params(HORIZONS)]
    own = [a for model in (kept.before, kept.every, trainer.mixture.local) for a in model]
    arrays_seen = 0
    for arrays, scalars in sent:
        check_scalars(scalars)
        if arrays:
            assert [a.shape for a in arrays] == shapes  # the federated model's shape, never the mixture's
            arrays_seen += 1
        for a in arrays:
            for mine in own:
                assert a.shape != mine.shape or not np.allclose(a, mine), "the gateway's own model was sent"
    assert arrays_seen >= 1
    # The session's DP round read the profile this gateway released (profile_share 0.3): kept here, never sent.
    assert trainer.releases is not None and trainer.release_path.name == RELEASE_FILE and trainer.release_path.exists()
    assert any(k.endswith("/epsilon_release") for _, scalars in sent for k in scalars)

"""A Flower server and three gateway clients on loopback: rounds, DP, a published and installed model.

Each gateway is the real client code a daemon runs (:class:`GatewayTrainer` on its own
``history.sqlite``, installing into its own :class:`ModelSlot`); a Flower client mod records every
message each gateway sends, so the test can show that only model parameters and a few scalars
leave it, never a count. The server signs what it publishes with a model-publisher key; each
gateway installs only after checking that signature against its own keyring, as a daemon does.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.federation.client import run_client
from edge_agent.federation.server import DirectoryPublisher, FederationServer, SessionPlan
from edge_agent.federation.trainer import GatewayTrainer, install_checked
from edge_agent.forecast_config import FederationConf
from edge_agent.history import FILE_NAME, HistoryStore
from edge_agent.trust.artefacts import artefact_signer, check_artefact
from edge_agent.trust.keys import new_key
from edge_agent.trust.policy import Keyring, SecurityConf
from models.inference import ModelSlot
from models.privacy import epsilon
from models.private_profile import release_entry, release_noise
from models.quantile_mlp import init_params, params_from_onnx, reads_in_day_only
from tests.federation.conftest import floor, gateway_state
from tests.mosquitto import free_port

pytestmark = pytest.mark.slow

SHAPES = [("a", ["quiet", "silent"]), ("b", ["group", "lounge"]), ("c", ["open", "quiet"])]
ALLOWED_FIT = {"refused", "steps", "budget_stop", "epsilon_round", "epsilon_total", "epsilon_release"}
ALLOWED_EVAL = {"mae_new", "mae_baseline", "mae_current", "rows", "installed"}
ENVELOPE = {"code", "message", "num_examples", "loss"}  # Flower's status, weight and loss of every reply


Sent = tuple[list[np.ndarray[Any, Any]], dict[str, Any]]


def _recorder(sent: list[Sent]) -> Any:
    def mod(msg: Any, ctx: Any, call_next: Any) -> Any:
        reply = call_next(msg, ctx)
        # Read the reply as it leaves: once Flower has serialised a reply its array records are emptied,
        # so a message kept and read after the session would show no arrays at all.
        sent.append(_arrays_and_scalars(reply))
        return reply

    return mod


def _arrays_and_scalars(message: Any) -> Sent:
    arrays: list[np.ndarray[Any, Any]] = []
    scalars: dict[str, Any] = {}
    content = message.content
    for record in content.array_records.values():
        arrays += [np.array(a.numpy()) for a in record.values()]
    for name, record in list(content.metric_records.items()) + list(content.config_records.items()):
        for key, value in record.items():
            scalars[f"{name}/{key}"] = value
    return arrays, scalars


def scalar_names(scalars: dict[str, Any]) -> set[str]:
    """The scalars' own names (without the record each travels in)."""
    return {key.rsplit("/", 1)[1] for key in scalars}


def check_scalars(scalars: dict[str, Any]) -> None:
    """Only the named scalars a gateway may send, each one number (never a sequence, bytes or text)."""
    assert scalar_names(scalars) <= ALLOWED_FIT | ALLOWED_EVAL | ENVELOPE, scalar_names(scalars)
    for key, value in scalars.items():
        assert not isinstance(value, list | bytes), f"{key} carries a sequence"
        if key.endswith("/message"):
            assert value == "Success"
        else:
            assert not isinstance(value, str), f"{key} is text"


def test_three_gateways_federate_publish_and_hot_swap(tmp_path: Path) -> None:
    port = free_port()
    conf = FederationConf.model_validate({
        "enabled": True, "server": f"127.0.0.1:{port}", "holdout_days": 7, "cpu_seconds_per_round": 60,
        "profile_share": 0.3, "privacy": {"epsilon_total": 100.0, "noise_multiplier": 1.0},
    })
    plan = SessionPlan(rounds=3, min_gateways=3, steps=100, batch_groups=16)
    key = new_key("publisher-1")
    ring = Keyring(SecurityConf.model_validate(
        {"keys": [{"id": key.key_id, "role": "model-publisher", "public_key": key.public}]}))
    publisher = DirectoryPublisher(tmp_path / "published", sign=artefact_signer(key))
    server = FederationServer(f"127.0.0.1:{port}", plan, publisher).start()
    gateways: list[tuple[GatewayTrainer, ModelSlot, list[Sent], list[tuple[Any, float]]]] = []
    for seed, (name, kinds) in enumerate(SHAPES):
        cfg = floor(name, kinds, 12)
        state = gateway_state(tmp_path, cfg, seed)
        slot = ModelSlot(state / "model.onnx")
        slot.load()
        store_path = state / FILE_NAME

        def load(path: Path = store_path) -> dict[str, list[Any]]:
            store = HistoryStore(path, readonly=True)
            try:
                return store.observations()
            finally:
                store.close()

        def install(data: bytes, sha: str, signature: Any, adapted_from: str | None,
                    slot: ModelSlot = slot) -> tuple[bool, str]:
            return install_checked(data, sha, signature, adapted_from, swap=slot.try_swap, audit=lambda _: None,
                                   check=lambda s, n, sig: check_artefact(ring, "model", s, n, sig))

        trainer = GatewayTrainer(conf, load, lambda: None, state, capacities={z.id: 12.0 for z in cfg.zones},
                                 install=install)
        counts = [(t, v) for obs in load().values() for t, v in obs]
        gateways.append((trainer, slot, [], counts))
    threads = [threading.Thread(target=run_client, args=(g[0], conf), kwargs={"mods": [_recorder(g[2])]})
               for g in gateways]
    for t in threads:
        t.start()
    report = server.wait(timeout_s=120)
    assert report.start == "federation_start_in_day.onnx"
    for t in threads:
        t.join(30)
        assert not t.is_alive()

    # A model was published, and every gateway now serves exactly it.
    assert report.published is not None, [{k: v for k, v in r.items()} for r in report.rounds]
    published = (tmp_path / "published" / "model.onnx").read_bytes()
    assert hashlib.sha256(published).hexdigest() == report.published["sha256"]
    assert report.published["heldout_mae"] < report.published["heldout_baseline_mae"]
    assert check_artefact(ring, "model", report.published["sha256"], len(published),
                          report.published["signature"]) == "publisher-1"
    # DP gateways train the in-day columns and those of the profile each released (profile_share 0.3)
    published_params = params_from_onnx(published)[0]
    assert reads_in_day_only(published_params, profile=True) and not reads_in_day_only(published_params)
    for trainer, slot, _, _ in gateways:
        assert slot.serving == f"model {report.published['sha256'][:12]}"
        assert slot.forecaster is not None and slot.forecaster.info.metadata["model_family"] == "quantile-mlp"
        assert trainer.installed == [report.published["sha256"]]

    # Privacy was spent and accounted per round and in total, within the budget: the profile's release
    # first (once, one Gaussian mechanism), then the three rounds of DP-SGD, in one account.
    release = release_entry(release_noise(100.0 * conf.profile_share, conf.privacy.delta))
    for trainer, _, _, _ in gateways:
        assert trainer.ledger.rounds == 3 and trainer.ledger.spent[0] == release and len(trainer.ledger.spent) == 4
        assert epsilon(trainer.ledger.spent[1:], 1e-5) < trainer.ledger.total() <= 100.0
        assert trainer.releases is not None  # kept on the gateway: no message below carries it
    assert all(r["refused"] == 0 and r["gateways"] == 3 for r in report.rounds if "gateways" in r)

    # What each gateway sent: parameters shaped like the model, and a few named scalars; no counts, and
    # nothing of the released profile (its arrays are [6, 96] per zone; its epsilon is a named scalar).
    shapes = [p.shape for p in init_params(plan.horizons)]
    for _, _, sent, counts in gateways:
        assert len(sent) >= 7  # 3 fits, 4 evaluations
        assert sum(1 for arrays, _ in sent if arrays) >= 3  # every fit sent its parameters
        values = {round(v, 6) for _, v in counts}
        for arrays, scalars in sent:
            check_scalars(scalars)
            assert all(v == 0 for k, v in scalars.items() if k.endswith("/code"))
            if arrays:
                assert [a.shape for a in arrays] == shapes
            for a in arrays:
                assert a.dtype == np.float32
        assert len(values) > 3  # the gateway had a real history to protect
        # the fits ran the released-profile path, and said so only by its epsilon
        assert sum(1 for _, scalars in sent for k in scalars if k.endswith("/epsilon_release")) == 3

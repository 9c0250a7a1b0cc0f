"""A delivered federated model is installed only with a model-publisher signature, and every outcome is audited.

The gateway's install (:func:`install_checked`, what the daemon's federation task uses) runs the
same signed-artefact check as ``update_model`` on the real :class:`GatewayTrust` (keyring, audit
log in SQLite) before the model slot's swap. A refused model never reaches the slot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.federation.trainer import delivered_signature, install_checked
from edge_agent.trust.artefacts import sign_artefact
from edge_agent.trust.gateway import GatewayTrust
from edge_agent.trust.keys import KeyFile, new_key
from edge_agent.trust.policy import AuditConf, SecurityConf
from models.inference import ModelSlot
from models.quantile_mlp import export_onnx, init_params

HORIZONS = (15, 30, 60)
MODEL = export_onnx(init_params(HORIZONS, seed=4), HORIZONS, {"training": "federated"})


class Clock:
    synced = True

    def time(self) -> float:
        return 1_741_083_362.0

    async def sleep(self, seconds: float) -> None:
        pass


@pytest.fixture(scope="module")
def publisher() -> KeyFile:
    return new_key("publisher-1")


@pytest.fixture
async def trust(tmp_path: Path, publisher: KeyFile) -> AsyncIterator[GatewayTrust]:
    keys = [{"id": "publisher-1", "role": "model-publisher", "public_key": publisher.public},
            {"id": "central-1", "role": "central", "public_key": new_key("central-1").public}]
    security = SecurityConf.model_validate({"keys": keys, "signatures": "required"})
    gt = await GatewayTrust(tmp_path, "lib", "gw-a", security, AuditConf(), Clock()).open()
    yield gt
    await gt.close()


def _install(trust: GatewayTrust, slot: ModelSlot, data: bytes, signature: Mapping[str, Any] | None,
             adapted_from: str | None = None, sha: str | None = None) -> tuple[bool, str]:
    """The daemon's install (edge_agent.federation.client) with this test's trust and slot."""
    return install_checked(
        data, sha or hashlib.sha256(data).hexdigest(), signature, adapted_from,
        check=lambda s, n, sig: trust.check_artefact("model", s, n, sig, actor="federation"),
        swap=slot.try_swap, audit=lambda record: trust.record("model", "federation", record))


async def test_a_signed_delivery_is_installed_and_audited_with_its_signer(tmp_path: Path, trust: GatewayTrust,
                                                                          publisher: KeyFile) -> None:
    slot = ModelSlot(tmp_path / "model.onnx", shipped=None)
    slot.load()
    manifest = json.dumps({"round": 3, "signature": sign_artefact(publisher, "model", MODEL)})
    ok, why = _install(trust, slot, MODEL, delivered_signature(manifest))
    sha = hashlib.sha256(MODEL).hexdigest()
    assert ok, why
    assert slot.serving == f"model {sha[:12]}"
    [record] = await trust.records(kind="model")
    assert record["actor"] == "federation"
    assert record["data"] == {**record["data"], "sha256": sha, "ok": True, "signer": "publisher-1",
                              "source": "federation"}


@pytest.mark.parametrize("case", ["forged", "unsigned", "wrong role", "other bytes", "manifest not JSON"])
async def test_a_delivery_without_a_good_signature_is_refused_and_audited(
        tmp_path: Path, trust: GatewayTrust, publisher: KeyFile, case: str) -> None:
    slot = ModelSlot(tmp_path / "model.onnx", shipped=None)
    before = slot.load()
    forger = new_key("publisher-1")  # the trusted key's id, another secret
    manifest = {
        "forged": json.dumps({"signature": sign_artefact(forger, "model", MODEL)}),
        "unsigned": json.dumps({"signature": None}),
        "wrong role": json.dumps({"signature": sign_artefact(new_key("central-1"), "model", MODEL)}),
        "other bytes": json.dumps({"signature": sign_artefact(publisher, "model", MODEL + b"\0")}),
        "manifest not JSON": "{signature",
    }[case]
    ok, why = _install(trust, slot, MODEL, delivered_signature(manifest))
    assert not ok and why.startswith("signature refused"), why
    assert slot.serving == before and not (tmp_path / "model.onnx").exists()
    [record] = await trust.records(kind="model")
    reason = {"forged": "bad_signature", "unsigned": "unsigned", "wrong role": "bad_signature",
              "other bytes": "bad_signature", "manifest not JSON": "unsigned"}[case]
    assert record["actor"] == "federation"
    assert record["data"]["ok"] is False and record["data"]["reason"] == reason, record


async def test_bytes_that_are_not_the_announced_model_are_refused(tmp_path: Path, trust: GatewayTrust,
                                                                  publisher: KeyFile) -> None:
    slot = ModelSlot(tmp_path / "model.onnx", shipped=None)
    slot.load()
    other = export_onnx(init_params(HORIZONS, seed=5), HORIZONS, {})
    ok, why = _install(trust, slot, other, sign_artefact(publisher, "model", MODEL),
                       sha=hashlib.sha256(MODEL).hexdigest())
    assert not ok and "not the announced" in why
    [record] = await trust.records(kind="model")
    assert record["data"]["ok"] is False


async def test_a_model_adapted_on_the_gateway_is_served_without_a_publisher_signature_and_audited(
        tmp_path: Path, trust: GatewayTrust) -> None:
    slot = ModelSlot(tmp_path / "model.onnx", shipped=None)
    slot.load()
    params = init_params(HORIZONS, seed=4)
    params[3] = params[3] + np.float32(0.01)
    adapted = export_onnx(params, HORIZONS, {"training": "federated, then adapted on this gateway"})
    delivered = hashlib.sha256(MODEL).hexdigest()
    ok, why = _install(trust, slot, adapted, None, adapted_from=delivered)
    assert ok, why
    [record] = await trust.records(kind="model")
    assert record["data"]["adapted_from"] == delivered and record["data"]["ok"] is True
    assert record["data"]["source"] == "federation, adapted on this gateway"

"""Signed artefacts: a model or firmware image without a model-publisher's valid signature over its own
bytes is refused before anything is written or flashed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge_agent.control.protocol import ControlRefused
from edge_agent.node_operations import NodeOperations, NodeUpdate
from edge_agent.sync.commands import CommandProcessor, Outcome, ResultCache
from edge_agent.sync.outbox import Outbox
from edge_agent.trust.artefacts import artefact_signer, sign_artefact
from edge_agent.trust.envelope import sign_request
from edge_agent.trust.gateway import GatewayTrust
from edge_agent.trust.keys import KeyFile
from firmware_bridge import BridgeLink, build_image
from firmware_bridge.messages import HardwareKind
from models import DEFAULT_MODEL_PATH
from models.inference import ModelSlot
from tests.trust.conftest import AUDIENCE, NOW

MODEL = DEFAULT_MODEL_PATH.read_bytes()


class SlotTarget:
    """The daemon's model slot behind ``update_model``, as GatewayOperations drives it."""

    def __init__(self, path: Path) -> None:
        self.slot = ModelSlot(path, shipped=None)

    async def update_model(self, data: bytes, sha256: str) -> dict[str, Any]:
        result = self.slot.try_swap(data, sha256)
        return {"serving": result.serving, "ok": result.ok}


async def upload(processor: CommandProcessor, key: KeyFile, data: bytes, signature: dict[str, Any] | None, *,
                 sha: str | None = None) -> Outcome:
    """Send ``data`` as update_model chunks (each signed by ``key``); the first failure, or the last result."""
    piece = 256 * 1024
    count = -(-len(data) // piece)
    outcome = None
    for i in range(count):
        args = {"transfer_id": "m1", "index": i, "count": count, "total_size": len(data),
                "sha256": sha or hashlib.sha256(data).hexdigest(),
                "data": base64.b64encode(data[i * piece:(i + 1) * piece]).decode(), "signature": signature}
        doc = sign_request(key, "update_model", AUDIENCE, {"id": f"up-{i}", "args": args}, now=NOW)
        outcome = await processor.handle("update_model", json.dumps(doc).encode())
        if not outcome.ok:
            return outcome
    assert outcome is not None
    return outcome


@pytest.mark.parametrize("case", ["unsigned", "wrong role", "other bytes", "bad signature", "swapped bytes"])
async def test_a_model_without_a_good_signature_is_never_written(tmp_path: Path, trust: GatewayTrust,
                                                                 keys: dict[str, KeyFile], case: str) -> None:
    publisher = keys["publisher"]
    good = sign_artefact(publisher, "model", MODEL, {"name": "demand"})
    signature: dict[str, Any] | None = {
        "unsigned": None,
        "wrong role": sign_artefact(keys["central"], "model", MODEL),
        "other bytes": sign_artefact(publisher, "model", MODEL + b"\0"),
        "bad signature": {**good, "metadata": {"name": "other"}},
        "swapped bytes": good,
    }[case]
    data = MODEL[:-1] + b"\x01" if case == "swapped bytes" else MODEL
    target = SlotTarget(tmp_path / "model.onnx")
    async with Outbox(tmp_path / "outbox.sqlite3") as ob:
        cache = ResultCache(ob.call)
        await cache.open()
        processor = CommandProcessor(target, cache, guard=trust)  # type: ignore[arg-type]
        outcome = await upload(processor, publisher, data, signature, sha=hashlib.sha256(MODEL).hexdigest())
    want = {"unsigned": "unsigned", "wrong role": "forbidden", "other bytes": "bad_signature",
            "bad signature": "bad_signature", "swapped bytes": "bad_request"}[case]
    assert not outcome.ok and outcome.error_code == want, outcome
    assert outcome.request_id == ("up-5" if case == "swapped bytes" else "up-0")  # refused at the first chunk
    assert not any(p.name.startswith(("model.onnx", ".model.onnx")) for p in os.scandir(tmp_path))
    commands = await trust.records(kind="command")
    assert commands[-1]["data"]["ok"] is False and commands[-1]["data"]["code"] == want


async def test_a_signed_model_is_installed_and_the_federation_hook_signs_alike(
        tmp_path: Path, trust: GatewayTrust, keys: dict[str, KeyFile]) -> None:
    signature = artefact_signer(keys["publisher"])(MODEL)  # the shape a model publisher's sign= hook returns
    target = SlotTarget(tmp_path / "model.onnx")
    async with Outbox(tmp_path / "outbox.sqlite3") as ob:
        cache = ResultCache(ob.call)
        await cache.open()
        processor = CommandProcessor(target, cache, guard=trust)  # type: ignore[arg-type]
        outcome = await upload(processor, keys["publisher"], MODEL, signature)
    assert outcome.ok and outcome.result and outcome.result["serving"].startswith("model "), outcome
    assert hashlib.sha256(MODEL).hexdigest()[:12] in outcome.result["serving"]


@pytest.mark.parametrize("case", ["unsigned", "wrong role", "other bytes"])
async def test_firmware_without_a_good_signature_is_never_flashed(trust: GatewayTrust, keys: dict[str, KeyFile],
                                                                  case: str) -> None:
    image = build_image(HardwareKind.DESK_CLUSTER, (1, 2, 0), bytes(range(256)) * 8)
    signature = {"unsigned": None, "wrong role": sign_artefact(keys["operator"], "firmware", image),
                 "other bytes": sign_artefact(keys["publisher"], "firmware", image[:-1] + b"\x7f")}[case]
    daemon = SimpleNamespace(gateway=SimpleNamespace(hardware=SimpleNamespace(link=BridgeLink.__new__(BridgeLink))),
                             cfg=SimpleNamespace(bridge=None), node_updates={},
                             check_artefact=trust.check_artefact)
    ops = NodeOperations()
    ops.daemon = daemon  # type: ignore[assignment]
    sha = hashlib.sha256(image).hexdigest()
    daemon.node_updates[5] = NodeUpdate(5, len(image), sha, "alice", bytearray(image))
    with pytest.raises(ControlRefused, match="firmware refused"):
        await ops.node_ota_start(5, sha, "alice", signature=signature)
    update = daemon.node_updates[5]
    assert update.state == "uploading" and update.task is None and update.sent == 0  # nothing went to the node
    refused = await trust.records(kind="firmware")
    assert refused[-1]["actor"] == "alice" and refused[-1]["data"]["ok"] is False

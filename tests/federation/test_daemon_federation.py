"""The real daemon with ``[federation] enabled`` joins a Flower server in its window and serves the result.

The simulated floor's state directory starts with five weeks of durable history (as a gateway that
has been running would have); the daemon's federation task joins the server at once (the window
covers the scenario's morning), trains on that history in its worker thread, and installs the
model the server publishes into the slot its forecasts come from. The floor's ``[security]`` trusts
one model-publisher key: a model the server signs with it is installed, one signed with another
secret under that key's id is refused before the slot, and both outcomes are in the audit log.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_config
from edge_agent.federation.server import DirectoryPublisher, FederationServer, SessionPlan
from edge_agent.history import HistoryStore
from edge_agent.trust.artefacts import artefact_signer
from edge_agent.trust.audit import AUDIT_DB, AuditLog
from edge_agent.trust.keys import new_key
from simulator.demand import generate_history
from tests.control.simfloor import LiveFloor
from tests.mosquitto import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ea-fed-", dir="/tmp"))  # short: unix socket paths <= 107 bytes
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("signer", ["trusted", "forged"])
def test_the_daemon_federates_in_its_window_and_serves_the_published_model_only_signed(state_dir: Path,
                                                                                      signer: str) -> None:
    port = free_port()
    key = new_key("publisher-1")
    sign_with = key if signer == "trusted" else new_key("publisher-1")  # the trusted id, another secret
    floor = state_dir / "floor.toml"
    floor.write_text((ROOT / "examples" / "floor-3.toml").read_text() + f"""
[federation]
enabled = true
server = "127.0.0.1:{port}"
window = ["07:00", "09:00"]
holdout_days = 7

[federation.privacy]
epsilon_total = 50.0

[security]
signatures = "required"

[[security.keys]]
id = "publisher-1"
role = "model-publisher"
public_key = "{key.public}"
""")
    cfg = load_config(floor)
    store = HistoryStore.in_state_dir(state_dir)
    # five weeks up to the scenario's 11 March
    store.record_many((t, zone, float(n)) for t, zone, n in generate_history(cfg, date(2025, 2, 4), 35, seed=3))
    store.close()

    plan = SessionPlan(rounds=1, min_gateways=1, steps=40, round_timeout_s=120.0)
    publisher = DirectoryPublisher(state_dir / "published", sign=artefact_signer(sign_with))
    server = FederationServer(f"127.0.0.1:{port}", plan, publisher).start()

    def model_records() -> list[dict[str, Any]]:
        if not (state_dir / AUDIT_DB).exists():
            return []
        audit = AuditLog(state_dir / AUDIT_DB, readonly=True)
        try:
            return [r for r in audit.records(kind="model") if r["actor"] == "federation"]
        finally:
            audit.close()

    with LiveFloor(state_dir, speed=10.0, floor=floor) as live:
        report = server.wait(timeout_s=150)
        assert report.rounds[0]["gateways"] == 1 and report.rounds[0]["refused"] == 0, report.rounds
        assert report.published is not None, report.rounds
        sha = report.published["sha256"]
        slot = live.gateway.model
        [record] = live.wait_for("the delivery's audit record", lambda: model_records() or None, wall_s=30.0)
        serving = live.on_loop(lambda: slot.serving)
    assert record["data"]["sha256"] == sha
    if signer == "trusted":
        assert serving == f"model {sha[:12]}"
        assert record["data"]["ok"] is True and record["data"]["signer"] == "publisher-1"
    else:
        assert serving != f"model {sha[:12]}" and not (state_dir / "model.onnx").exists()
        assert record["data"]["ok"] is False and record["data"]["reason"] == "bad_signature", record
    ledger = (state_dir / "federation-privacy.json").read_text()
    assert '"rounds": 1' in ledger

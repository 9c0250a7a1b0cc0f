"""The inventory: docs/privacy.md carries the store registry's table, and `privacy report` covers every store."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from edge_agent.cli import cli
from edge_agent.privacy.stores import STORES, markdown_table
from tests.clirunner import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "privacy.md"


def test_the_doc_carries_the_registrys_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- stores:begin -->\n(.*?)\n<!-- stores:end -->", text, re.S)
    assert found, "docs/privacy.md lost its stores table markers"
    assert found[1] == markdown_table(), ("docs/privacy.md drifted from edge_agent/privacy/stores.py: "
                                          "paste the output of `python -m edge_agent.privacy.stores`")


def test_every_state_file_the_daemon_writes_is_in_the_registry() -> None:
    named = {f for s in STORES for f in s.files}
    for wanted in ("outbox.sqlite3", "audit.sqlite3", "history.sqlite", "consent.json", "calibration.json",
                   "nodes.json", "nonces.sqlite3", "trace.jsonl", "tag-salt", "gateway.key", "privacy-budget.json",
                   "calendar.json", "model.onnx", "federation-privacy.json", "federation-profile.json"):
        assert wanted in named, wanted


def test_report_shows_size_oldest_and_who_can_read_each_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "consent.json").write_text(json.dumps({"consents": {"1": {"pseudonym": "p-0001", "granted_at":
                                                                       1741680000.0}}}))
    os.chmod(state / "consent.json", 0o644)  # readable by every account: the report must say so
    done = CliRunner().invoke(cli, ["privacy", "report", "--json", "--config", str(tmp_path / "none.toml"),
                          "--state-dir", str(state)])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    stores = {s["store"]: s for s in doc["stores"]}
    assert set(stores) == {s.key for s in STORES}
    consent = stores["consent"]
    assert consent["bytes"] == (state / "consent.json").stat().st_size
    assert consent["oldest"] == "2025-03-11T08:00:00+00:00"
    assert consent["files"][0]["mode"] == "0644" and ":" in consent["files"][0]["owner"]
    assert any("consent.json can be read by every local account" in w for w in doc["warnings"])
    assert stores["tags"]["place"] == "memory" and stores["logs"]["place"] == "journal"
    table = CliRunner().invoke(cli, ["privacy", "report", "--config", str(tmp_path / "none.toml"),
                                     "--state-dir", str(state)])
    assert table.exit_code == 0 and "consent" in table.stdout and "0644" in table.stdout
    assert "warning: consent.json" in table.stderr

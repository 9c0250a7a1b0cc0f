"""Consent and preferences on disk: consent gates everything, withdrawal deletes, writes are atomic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge_agent.actuation.preferences import ConsentRequiredError, PreferenceRegistry
from rules import evaluate, load_rules
from rules.state import IntentKind, Preference, SeatStatus
from tests.rules.floors import seat, state

ROOT = Path(__file__).resolve().parents[2]


def test_preferences_need_consent_and_withdrawal_deletes_them(tmp_path: Path) -> None:
    path = tmp_path / "prefs.json"
    reg = PreferenceRegistry(path, wall=lambda: 1234.0)
    with pytest.raises(ConsentRequiredError):
        reg.set_preferences("tag-0001", height_mm=740)
    assert reg.get("tag-0001") is None
    reg.set_consent("tag-0001", True)
    reg.set_preferences("tag-0001", height_mm=740, lamp=0.4)
    reg.set_consent("tag-0002", True)  # consent without preferences yet
    assert reg.consented_tags() == {"tag-0001", "tag-0002"}
    assert reg.preferences() == {"tag-0001": Preference(740, 0.4)}
    reg.close()

    again = PreferenceRegistry(path)  # survives a restart
    record = again.get("tag-0001")
    assert record is not None and record.desk_height_mm == 740 and record.updated_at == 1234.0
    again.set_consent("tag-0001", False)
    assert again.get("tag-0001") is None and again.preferences() == {}
    assert "740" not in path.read_text()  # gone from the file, not just flagged
    with pytest.raises(ConsentRequiredError):
        again.set_preferences("tag-0001", lamp=0.5)
    with pytest.raises(ValueError, match=r"outside 550\.\.1350"):
        again.set_preferences("tag-0002", height_mm=3000)


def test_rules_apply_registry_preferences_only_for_consenting_tags(tmp_path: Path) -> None:
    reg = PreferenceRegistry(tmp_path / "p.json")
    reg.set_consent("tag-0001", True)
    reg.set_preferences("tag-0001", height_mm=760, lamp=0.7)
    seats = {"S1": seat("S1", "z1", SeatStatus.OCCUPIED, consented_tag="tag-0001", tag_since=0.0),
             "S2": seat("S2", "z1", SeatStatus.OCCUPIED, consented_tag="tag-0002", tag_since=0.0)}
    rules = load_rules(None)
    got = {(i.target, i.kind): i.value for i in evaluate(rules, state(100.0, seats=seats,
                                                                          preferences=reg.preferences())).intents}
    assert got[("D1", IntentKind.DESK_HEIGHT)] == 760 and got[("D1", IntentKind.DESK_LAMP)] == 0.7
    assert ("D2", IntentKind.DESK_HEIGHT) not in got
    reg.set_consent("tag-0001", False)
    after = evaluate(rules, state(100.0, seats=seats, preferences=reg.preferences())).intents
    keys = {(i.target, i.kind): i for i in after}
    assert ("D1", IntentKind.DESK_HEIGHT) not in keys
    assert keys[("D1", IntentKind.DESK_LAMP)].value == 0.0 and keys[("D1", IntentKind.DESK_LAMP)].rule_id == "lamp-off"


WRITER = textwrap.dedent("""
    import sys
    from edge_agent.actuation.preferences import PreferenceRegistry
    reg = PreferenceRegistry(sys.argv[1])
    print("ready", flush=True)
    for i in range(200_000):
        tag = f"tag-{i % 50:04d}"
        reg.set_consent(tag, True)
        reg.set_preferences(tag, height_mm=600 + i % 700, lamp=(i % 10) / 10)
""")


def test_killed_mid_write_leaves_a_parseable_file(tmp_path: Path) -> None:
    path = tmp_path / "prefs.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay in (0.4, 0.7):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        doc = json.loads(path.read_text())  # must parse: old or new document, never half of one
        assert doc["preferences"], "the writer made progress before the kill"
        reg = PreferenceRegistry(path)
        assert reg.consented_tags() and all(p.desk_height_mm for p in reg.preferences().values())
        reg.close()

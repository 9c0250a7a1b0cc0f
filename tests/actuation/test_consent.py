"""Consent and preferences on disk: consent gates everything, scope by scope, until it lapses;
withdrawal deletes, writes are atomic."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.actuation.consent import SCOPES, ConsentRequiredError, ConsentStore, add_months, drop_legacy_registry
from edge_agent.actuation.preferences import PatronPreferences
from edge_agent.config import SiteConfig
from edge_agent.sensing.floor import FloorModel
from edge_agent.sensing.tags import TagDirectory, pseudonymise
from rules import evaluate, load_rules
from rules.state import IntentKind, Preference, SeatStatus
from tests.rules.floors import seat, state

ROOT = Path(__file__).resolve().parents[2]


class Wall:
    """A settable wall clock (seconds since the epoch)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


T0 = datetime(2025, 3, 11, 9, 0, tzinfo=UTC).timestamp()


def test_preferences_need_consent_and_withdrawal_deletes_them(tmp_path: Path) -> None:
    path = tmp_path / "consent.json"
    store = ConsentStore(path, wall=Wall(T0))
    with pytest.raises(ConsentRequiredError):
        store.set_preferences("tag-0001", height_mm=740)
    assert store.get("tag-0001") is None
    store.grant("tag-0001", SCOPES)
    store.set_preferences("tag-0001", height_mm=740, lamp=0.4)
    store.grant("tag-0002", SCOPES)  # consent without preferences yet
    assert store.consented() == {"tag-0001", "tag-0002"}
    assert store.preferences() == {"tag-0001": Preference(740, 0.4)}
    store.close()

    again = ConsentStore(path, wall=Wall(T0 + 60))  # survives a restart
    record = again.get("tag-0001")
    assert record is not None and record.desk_height_mm == 740 and record.updated_at == T0
    assert again.withdraw("tag-0001") and not again.withdraw("tag-0001")
    assert again.get("tag-0001") is None and again.preferences() == {}
    assert "tag-0001" not in path.read_text()  # gone, not flagged
    kept = [doc for table in json.loads(path.read_text()).values() for doc in table.values()]
    assert kept and all(doc.get("desk_height_mm") != 740 for doc in kept)  # the height went with it
    with pytest.raises(ConsentRequiredError):
        again.set_preferences("tag-0001", lamp=0.5)
    with pytest.raises(ValueError, match=r"outside 550\.\.1350"):
        again.set_preferences("tag-0002", height_mm=3000)


def test_scopes_are_stored_and_honoured_separately(tmp_path: Path) -> None:
    store = ConsentStore(tmp_path / "consent.json", wall=Wall(T0))
    store.grant("tag-0001", ["desk_preferences"])
    with pytest.raises(ConsentRequiredError, match="does not cover lamp_preferences"):
        store.set_preferences("tag-0001", height_mm=760, lamp=0.7)
    assert store.get("tag-0001").desk_height_mm is None  # type: ignore[union-attr]  # all or nothing
    store.set_preferences("tag-0001", height_mm=760)
    assert store.preferences() == {"tag-0001": Preference(760, None)}
    store.grant("tag-0001", SCOPES)  # widened: the height stays
    store.set_preferences("tag-0001", lamp=0.7)
    assert store.preferences() == {"tag-0001": Preference(760, 0.7)}
    store.grant("tag-0001", ["lamp_preferences"])  # narrowed: the height goes with its scope
    assert store.preferences() == {"tag-0001": Preference(None, 0.7)}
    assert store.get("tag-0001").desk_height_mm is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="non-empty subset"):
        store.grant("tag-0001", ["camera"])


def test_consent_lapses_after_twelve_months_unless_renewed(tmp_path: Path) -> None:
    wall = Wall(T0)
    store = ConsentStore(tmp_path / "consent.json", wall=wall)
    first = store.grant("tag-0001", SCOPES)
    store.set_preferences("tag-0001", height_mm=700, lamp=0.2)
    assert first.expires_at == datetime(2026, 3, 11, 9, 0, tzinfo=UTC).timestamp()
    assert first.receipt_doc() == {"receipt": first.receipt, "scopes": list(SCOPES),
                                   "granted_at": "2025-03-11T09:00:00Z", "expires_at": "2026-03-11T09:00:00Z"}
    wall.t = first.expires_at - 86400.0
    renewed = store.grant("tag-0001", SCOPES)  # renewal: a new receipt, twelve months from now
    assert renewed.receipt != first.receipt and renewed.expires_at > first.expires_at
    assert store.preferences() == {"tag-0001": Preference(700, 0.2)}
    store.grant("tag-0002", SCOPES, valid_months=1)
    assert store.next_expiry() == datetime(2026, 4, 10, 9, 0, tzinfo=UTC).timestamp()
    wall.t = renewed.expires_at
    assert store.get("tag-0001") is None and store.preferences() == {} and store.consented() == set()
    assert "tag-0001" not in (tmp_path / "consent.json").read_text()


def test_months_are_calendar_months() -> None:
    leap = datetime(2024, 2, 29, 12, 0, tzinfo=UTC).timestamp()
    assert add_months(leap, 12) == datetime(2025, 2, 28, 12, 0, tzinfo=UTC).timestamp()
    assert add_months(datetime(2025, 1, 31, tzinfo=UTC).timestamp(), 1) == datetime(2025, 2, 28, tzinfo=UTC).timestamp()


def test_the_old_registry_without_scopes_is_not_carried_over(tmp_path: Path) -> None:
    (tmp_path / "preferences.json").write_text(json.dumps({"preferences": {"1": {"tag": "tag-0001"}}}))
    assert drop_legacy_registry(tmp_path) == 1 and not (tmp_path / "preferences.json").exists()
    assert drop_legacy_registry(tmp_path) == 0


def test_withdrawal_forgets_the_pseudonym_mapping_and_the_track(tmp_path: Path, floor_config: SiteConfig) -> None:
    floor = FloorModel(floor_config)
    tags = TagDirectory(b"salt", 300.0)
    store = ConsentStore(tmp_path / "consent.json", wall=Wall(T0))
    patrons = PatronPreferences(store, tags, floor, Wall(T0))
    name = tags.pseudonym("2A7F", 10.0)
    assert name == pseudonymise("2a7f", b"salt") and tags.name_of(" 2a7f") == name
    floor.on_tag_position(name, 5.0, 5.0, 10.0)
    receipt = asyncio.run(patrons.grant("2A7F", ["desk_preferences"]))
    assert receipt["consented"] and receipt["receipt"].startswith("c-") and name not in json.dumps(receipt)
    stored = asyncio.run(patrons.set_preferences("2A7F", 800, None))
    assert stored["stored"] == ["desk_height_mm"] and "800" not in json.dumps(stored)
    assert patrons() == {name: Preference(800, None)}
    assert floor.tag_counts(11.0)["tracked"] == 1 and len(tags) == 1
    done = asyncio.run(patrons.withdraw("2a7f"))
    assert done["had_consent"] and done["tag_forgotten"] and done["preferences_deleted"]
    assert floor.tag_counts(11.0)["known"] == 0 and len(tags) == 0 and patrons() == {}
    assert store.get(name) is None


def test_rules_apply_stored_preferences_only_for_consenting_tags(tmp_path: Path) -> None:
    store = ConsentStore(tmp_path / "p.json")
    store.grant("tag-0001", SCOPES)
    store.set_preferences("tag-0001", height_mm=760, lamp=0.7)
    seats = {"S1": seat("S1", "z1", SeatStatus.OCCUPIED, consented_tag="tag-0001", tag_since=0.0),
             "S2": seat("S2", "z1", SeatStatus.OCCUPIED, consented_tag="tag-0002", tag_since=0.0)}
    rules = load_rules(None)
    got = {(i.target, i.kind): i.value for i in evaluate(rules, state(100.0, seats=seats,
                                                                          preferences=store.preferences())).intents}
    assert got[("D1", IntentKind.DESK_HEIGHT)] == 760 and got[("D1", IntentKind.DESK_LAMP)] == 0.7
    assert ("D2", IntentKind.DESK_HEIGHT) not in got
    free = {"S1": seat("S1", "z1", SeatStatus.FREE)}
    neutral = [i for i in evaluate(rules, state(100.0, seats=free)).intents if i.kind is IntentKind.DESK_HEIGHT]
    assert [(i.target, i.value, i.rule_id) for i in neutral] == [("D1", 720.0, "desk-neutral")]
    store.withdraw("tag-0001")
    after = evaluate(rules, state(100.0, seats=seats, preferences=store.preferences())).intents
    keys = {(i.target, i.kind): i for i in after}
    assert ("D1", IntentKind.DESK_HEIGHT) not in keys
    assert keys[("D1", IntentKind.DESK_LAMP)].value == 0.0 and keys[("D1", IntentKind.DESK_LAMP)].rule_id == "lamp-off"


WRITER = textwrap.dedent("""
    import sys
    from edge_agent.actuation.consent import SCOPES, ConsentStore
    store = ConsentStore(sys.argv[1])
    print("ready", flush=True)
    for i in range(200_000):
        tag = f"tag-{i % 50:04d}"
        store.grant(tag, SCOPES)
        store.set_preferences(tag, height_mm=600 + i % 700, lamp=(i % 10) / 10)
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
        assert doc["consents"], "the writer made progress before the kill"
        store = ConsentStore(path)
        assert store.consented() and all(p.desk_height_mm for p in store.preferences().values())
        store.close()

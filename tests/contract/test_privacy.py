"""Privacy through the real daemon and a real broker: a patron's export and erasure (MQTT and CLI), the audit
log's keyed subject hash, the retention sweep at start, and everything a broker sees on ``#`` with every
publication on (per-seat states, exact summaries, the noisy hourly export, forecasts, Home Assistant). A tag's
position shown to a technician is tested on the live floor (tests/control/test_cli_on_simulator.py).

One daemon serves the module at 60 simulated seconds per wall second; the floor opens at 07:00 so the first
hourly export (07:00-08:00, published at closing time, 07:34) comes four simulated minutes after the 07:30 start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from edge_agent.privacy.budget import error_bound
from edge_agent.sensing.tags import pseudonymise, subject_hash
from simulator.world.patrons import TAG_ADDRESS_BASE
from tests.contract.outside import TOPIC_ROOT, OutsideDaemon
from tests.e2e.harness import forbidden_fields

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

SUBJECT = "2A7F"
OLD = datetime(2022, 1, 10, 9, 0, tzinfo=UTC).timestamp()  # far past every retention on 2025-03-11


def every_publication(floor: str) -> str:
    floor = floor.replace('opening_hours = ["08:00", "22:00"]', 'opening_hours = ["07:00", "07:34"]')
    floor = re.sub(r'(?m)^seat_states = "coarse"$', 'seat_states = "per_seat"', floor)
    return re.sub(r"(?m)^daily_epsilon = 3.0$", "daily_epsilon = 20.0", floor)


def hex_windows(payload: bytes) -> set[str]:
    """Every 16-hex-digit substring of the payload: a pseudonym or subject hash anywhere in it is among them."""
    runs = re.findall(r"[0-9a-f]{16,}", payload.decode())
    return {run[i:i + 16] for run in runs for i in range(len(run) - 15)}


def json_strings(payload: bytes) -> set[str]:
    """Every string in the JSON payload, keys and values at any depth: a tag id sent as either is among them."""
    out: set[str] = set()
    todo: list[Any] = [json.loads(payload)]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            out.update(str(k) for k in item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str):
            out.add(item)
    return out


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsideDaemon]:
    daemon = OutsideDaemon(tmp_path_factory.mktemp("contract-privacy"), speed=60.0, floor_edit=every_publication)
    state = daemon.state_dir
    state.mkdir(parents=True)
    old_wall = datetime.fromtimestamp(OLD, UTC).isoformat()
    (state / "trace.jsonl").write_text(json.dumps({"v": 1, "wall": old_wall, "seats": {}}) + "\n")
    (state / "calibration.json").write_text(json.dumps({"_default": {"1": {"sensor": "sht-z1-quiet", "history": [
        {"at": OLD, "user": "old-technician-account", "quantity": "temperature", "action": "offset"}]}}}))
    with daemon:
        yield daemon
        daemon.assert_healthy_session()


def test_the_sweep_at_start_removed_what_was_past_its_retention(gw: OutsideDaemon) -> None:
    gw.wait_until("the sweep at start", lambda: not (gw.state_dir / "trace.jsonl").exists())
    assert "old-technician-account" not in (gw.state_dir / "calibration.json").read_text()
    report = json.loads(gw.cli("privacy", "report", "--json").stdout)
    assert {s["store"] for s in report["stores"]} >= {"outbox", "audit", "consent", "tags", "logs"}
    assert not report["warnings"], report["warnings"]


def test_export_and_erase_over_mqtt_and_on_the_gateway(gw: OutsideDaemon) -> None:
    assert gw.command("consent_set", {"subject": SUBJECT, "scopes": ["desk_preferences"]})["ok"]
    assert gw.command("preferences_set", {"subject": SUBJECT, "desk_height_mm": 742})["ok"]
    export = gw.command("privacy_export", {"subject": SUBJECT})
    assert export["ok"], export
    doc = export["result"]
    hashed = subject_hash(SUBJECT, (gw.state_dir / "tag-salt").read_bytes().strip())
    assert "subject_hash" not in doc and "pseudonym" not in doc
    assert doc["consent"]["scopes"] == ["desk_preferences"] and doc["preferences"]["desk_height_mm"] == 742
    assert {r["kind"] for r in doc["audit_records"]} >= {"consent", "preferences"}
    local = gw.cli("privacy", "export", SUBJECT)
    assert local.code == 0, local.stderr
    pseudonym = json.loads(local.stdout)["pseudonym"]
    assert json.loads(local.stdout)["subject_hash"] == hashed
    erased = gw.command("privacy_erase", {"subject": SUBJECT})
    assert erased["ok"] and erased["result"]["had_consent"] is True
    after = gw.command("privacy_export", {"subject": SUBJECT})["result"]
    assert after["consent"] is None and after["preferences"] is None
    assert pseudonym not in (gw.state_dir / "consent.json").read_text()
    again = gw.cli("privacy", "erase", SUBJECT, "--yes")
    assert again.code == 0 and "none on record" in again.stdout, again.stderr
    records = [json.loads(line) for line in gw.cli("audit", "show", "--json").stdout.splitlines()]
    text = json.dumps(records)
    assert f'"{SUBJECT}"' not in text and f'"{SUBJECT.lower()}"' not in text and pseudonym not in text
    about = [r for r in records if r["data"].get("subject") == hashed or
             (r["data"].get("args") or {}).get("subject") == hashed]
    assert {r["data"].get("action") for r in about} >= {"grant", "export", "erase"}
    assert gw.cli("audit", "verify").code == 0


def test_everything_on_the_broker_is_free_of_identifiers_positions_and_trails(gw: OutsideDaemon) -> None:
    hourly = gw.observer.wait_for("the first hourly export", lambda m: m.topic.endswith("/hourly"), timeout=90)
    gw.observer.wait_for("a health message after it", lambda m: m.topic == f"{TOPIC_ROOT}/health"
                         and (m.json().get("privacy_epsilon_spent") or 0) > 0, timeout=60)
    mark = gw.observer.mark()  # per_seat everywhere here: a republish sends every seat state again
    assert gw.command("republish_state", {})["ok"]
    gw.observer.wait_for("the calendar republished", lambda m: m.topic == f"{TOPIC_ROOT}/calendar", after=mark)
    seats = {m.topic for m in gw.observer.seen(lambda m: "/seat/" in m.topic, after=mark)}
    assert len(seats) >= 100, f"{len(seats)} seat states republished"
    requests = re.compile(rf"^{re.escape(TOPIC_ROOT)}/(cmd/[^/]+|ha/.*/set)$")  # what the test itself sent
    messages = gw.observer.seen(lambda m: bool(m.payload) and not requests.match(m.topic))
    salt = (gw.state_dir / "tag-salt").read_bytes().strip()
    secrets = {pseudonymise(f"{TAG_ADDRESS_BASE + i:04X}", salt) for i in range(4096)}
    secrets |= {subject_hash(SUBJECT, salt).removeprefix("sh-"), pseudonymise(SUBJECT, salt)}
    tags = {f"{TAG_ADDRESS_BASE + i:04X}" for i in range(4096)} | {SUBJECT}
    topics = set()
    for m in messages:
        topics.add(re.sub(r"/(seat|zone)/[^/]+/", r"/\1/+/", m.topic.removeprefix(TOPIC_ROOT)))
        leaked = sorted((hex_windows(m.payload) & secrets) | (json_strings(m.payload) & tags))
        assert not leaked, f"{m.topic} carries an identifier {leaked[:3]}"
        doc = m.json()
        assert forbidden_fields(doc) == [], (m.topic, forbidden_fields(doc))
        if "/seat/" in m.topic:  # a seat state says the seat, its zone, its status and since when: nothing to link
            assert set(doc) <= {"schema_version", "seq", "msg_id", "ts", "clock_synced", "backfill", "seat", "zone",
                                "status", "since"}
    for wanted in ("/status", "/health", "/zone/+/summary", "/zone/+/forecast", "/zone/+/hourly", "/seat/+/state",
                   "/calendar", "/audit/head", "/cmd/privacy_export/result", "/cmd/privacy_erase/result"):
        assert wanted in topics, f"no {wanted} seen: {sorted(topics)}"
    assert any(t.startswith("homeassistant/") for t in (m.topic for m in messages))
    hour = hourly.json()
    start, end = datetime.fromisoformat(hour["start"]), datetime.fromisoformat(hour["end"])
    assert hour["counts_policy"] == "noisy" and hour["epsilon"] == pytest.approx(20.0)  # one open hour: all of it
    for m in gw.observer.seen(lambda m: m.topic.endswith("/hourly")):
        h = m.json()
        exact = [s.json()["people"]["value"] for s in gw.observer.seen(
            lambda s, z=h["zone"]: s.topic == f"{TOPIC_ROOT}/zone/{z}/summary")
            if start <= datetime.fromisoformat(s.json()["ts"].replace("Z", "+00:00")) < end]
        truth = sum(v for v in exact if v is not None) / max(1, len(exact))
        bound = error_bound(h["noise_scale"], 1e-6) + 1.5  # noise, plus summaries and samples taken apart
        assert abs(h["people_mean"] - truth) <= bound, (h, truth, bound)

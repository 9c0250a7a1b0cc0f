"""Retention, store by store: nothing older than its limit survives a sweep, and deleted bytes leave the files.

Each store is swept through the method the daemon's sweep (edge_agent.privacy.retention) calls; the
sweep at start through the real daemon is in tests/contract/test_privacy.py.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.actuation.consent import ConsentStore
from edge_agent.actuation.recorder import erase_from_traces, prune_traces
from edge_agent.calibration import CalibrationStore
from edge_agent.history import HistoryStore
from edge_agent.privacy.budget import EpsilonBudget
from edge_agent.privacy.retention import tighten_permissions
from edge_agent.sync.commands import Outcome, ResultCache
from edge_agent.sync.outbox import MessageClass, Outbox
from edge_agent.trust.audit import AuditLog
from edge_agent.trust.keys import new_key

NOW = datetime(2025, 3, 11, 12, 0, tzinfo=UTC).timestamp()
DAY = 86400.0


class Clock:
    """A settable wall and monotonic clock, synchronised."""

    synced = True

    def __init__(self, t: float) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def test_outbox_sweep_drops_old_rows_and_results_and_zeroes_them(tmp_path: Path) -> None:
    clock = Clock(NOW - 10 * DAY)
    path = tmp_path / "outbox.sqlite3"
    async with Outbox(path, max_age_s=7 * DAY, clock=clock) as outbox:
        cache = ResultCache(outbox.call, wall=clock.time)
        await cache.open()
        outbox.put(outbox.next_seq(), "t/old", b'{"marker":"OLD-ROW-7f3a"}', MessageClass.RECORD)
        await cache.put(Outcome("privacy_erase", "r-old", True, result={"marker": "OLD-RESULT-91c2"}))
        outbox.put_retained("library/v1/s/g/seat/S041/state", b'{"marker":"SEAT-STATE"}')
        outbox.put_retained("library/v1/s/g/seat/S001/state", b'{"kept":1}')
        clock.t = NOW
        outbox.put(outbox.next_seq(), "t/new", b'{"marker":"NEW-ROW"}', MessageClass.RECORD)
        await cache.put(Outcome("privacy_erase", "r-new", True, result={"marker": "NEW-RESULT"}))
        done = await outbox.sweep(results_before=NOW - 7 * DAY, clear_retained=lambda t: "/S041/" in t)
        assert done["command_results"] == 1 and done["retained_cleared"] == 1
        topics = await outbox.call(lambda db: [t for (t,) in db.execute("SELECT topic FROM outbox")])
        assert topics == ["t/new"]  # the old row went past the age bound (the sweep commits first)
        assert await cache.get("r-old") is None and await cache.get("r-new") is not None
        await outbox.sweep(results_before=NOW - 7 * DAY, clear_retained=lambda t: False)  # commits the clearing
        retained = dict(await outbox.call(lambda db: db.execute("SELECT topic, payload FROM retained").fetchall()))
        assert retained["library/v1/s/g/seat/S041/state"] == b"" and retained["library/v1/s/g/seat/S001/state"]
    raw = file_bytes(path)
    for gone in (b"OLD-ROW-7f3a", b"OLD-RESULT-91c2", b"SEAT-STATE"):
        assert gone not in raw, f"{gone!r} is still in the outbox file"
    assert b"NEW-ROW" in raw


async def test_an_export_result_is_not_kept_in_the_result_cache(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.sqlite3", clock=Clock(NOW)) as outbox:
        cache = ResultCache(outbox.call, wall=lambda: NOW)
        await cache.open()
        await cache.put(Outcome("privacy_export", "x-1", True, result={"preferences": {"lamp_level": 0.42}}))
        kept = await cache.get("x-1")
        assert kept is not None and "withheld" in (kept.result or {}) and "0.42" not in json.dumps(kept.result)


def test_audit_records_past_the_retention_go_and_their_bytes_with_them(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    log = AuditLog(path)
    log.append("technician", "alice-old-account", {"op": "calibrate"}, at=NOW - 400 * DAY, synced=True)
    log.append("technician", "bob", {"op": "calibrate"}, at=NOW - 10 * DAY, synced=True)
    key = new_key("gw")
    assert log.prune(NOW - 365 * DAY, "s/g", lambda b: (key.key_id, key.sign(b))) == 1
    assert [r["actor"] for r in log.records()] == ["bob"]
    assert log.verify(key.signing.verify_key).ok
    log.close()
    raw = file_bytes(path)
    assert b"alice-old-account" not in raw and b"bob" in raw


def test_trace_lines_past_the_retention_and_a_subjects_lines_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"

    def line(hours_ago: float, extra: str = "") -> str:
        wall = datetime.fromtimestamp(NOW - hours_ago * 3600, UTC).isoformat()
        return json.dumps({"v": 1, "wall": wall, "seats": {"S1": {"consented_tag": extra or None}}}) + "\n"

    path.with_name("trace.jsonl.1").write_text(line(30) + line(25))
    path.write_text(line(23, "9f2c41aa0b1c2d3e") + line(1) + "not json\n")
    assert prune_traces(path, NOW - 24 * 3600) == 3  # two old lines and the unreadable one
    assert not path.with_name("trace.jsonl.1").exists()
    assert erase_from_traces(path, "9f2c41aa0b1c2d3e") == 1
    assert "9f2c41aa0b1c2d3e" not in path.read_text() and len(path.read_text().splitlines()) == 1


def test_calibration_history_past_the_retention_goes_and_the_coefficients_stay(tmp_path: Path) -> None:
    clock = Clock(NOW - 800 * DAY)
    store = CalibrationStore(tmp_path / "calibration.json", clock)
    store.calibrate_offset("sht-1", "temperature", 21.0, 20.0, "alice-2023")
    clock.t = NOW - DAY
    store.calibrate_offset("sht-1", "humidity", 40.0, 42.0, "bob")
    assert store.prune_history(NOW - 730 * DAY) == 1
    assert [e["user"] for e in store.history("sht-1")] == ["bob"]
    assert store.coefficients("sht-1")["temperature"].offset == pytest.approx(1.0)
    store.close()
    assert "alice-2023" not in (tmp_path / "calibration.json").read_text()


def test_lapsed_consents_go_with_their_preferences(tmp_path: Path) -> None:
    clock = Clock(NOW)
    store = ConsentStore(tmp_path / "consent.json", wall=clock.time)
    store.grant("pseudo-lapsing", ["desk_preferences"], valid_months=1)
    store.set_preferences("pseudo-lapsing", height_mm=777)
    store.grant("pseudo-staying", ["lamp_preferences"], valid_months=12)
    clock.t = NOW + 40 * DAY
    assert store.purge_expired() == 1
    store.close()
    text = (tmp_path / "consent.json").read_text()
    assert "pseudo-lapsing" not in text and "pseudo-staying" in text
    # The lapsed patron's desk height is gone: no stored value is 777 (the file's random record
    # ids may well contain those digits, so the values are looked at, not the text).
    assert 777 not in _leaves(json.loads(text))


def _leaves(doc: object) -> list[object]:
    """Every scalar value in a JSON document."""
    if isinstance(doc, dict):
        return [leaf for value in doc.values() for leaf in _leaves(value)]
    if isinstance(doc, list):
        return [leaf for value in doc for leaf in _leaves(value)]
    return [doc]


def test_zone_history_and_the_epsilon_ledger_keep_only_their_days(tmp_path: Path) -> None:
    history = HistoryStore(tmp_path / "history.sqlite", retention_days=400)
    t0 = datetime(2024, 1, 1, 10, 0)
    history.record(t0, {"z1": (3.0, 17.0)})
    history.record(t0 + timedelta(days=420), {"z1": (4.0, 16.0)})
    history.record(t0 + timedelta(days=420, minutes=30), {"z1": (4.0, 16.0)})
    history.prune(t0 + timedelta(days=420))
    assert min(t for t, _, _ in history.rows()) >= t0 + timedelta(days=20)
    history.close()
    budget = EpsilonBudget(tmp_path / "privacy-budget.json", 3.0, keep_days=400)
    budget.spend("2024-01-01", 1.0)
    budget.spend("2025-03-01", 1.0)
    assert budget.prune("2025-03-11") == 1 and list(budget.days()) == ["2025-03-01"]


def test_personal_stores_lose_every_account_access(tmp_path: Path) -> None:
    for name, mode in (("consent.json", 0o644), ("audit.sqlite3", 0o664), ("history.sqlite", 0o644)):
        (tmp_path / name).write_text("x")
        os.chmod(tmp_path / name, mode)
    assert tighten_permissions(tmp_path) == 2
    assert oct((tmp_path / "consent.json").stat().st_mode & 0o777) == "0o640"
    assert oct((tmp_path / "audit.sqlite3").stat().st_mode & 0o777) == "0o660"
    assert oct((tmp_path / "history.sqlite").stat().st_mode & 0o777) == "0o644"  # aggregates only

"""``set_calendar`` and the retained ``calendar`` topic, through the real daemon on the simulated floor.

A central system (a paho client written from docs/mqtt.md) reads the retained calendar, opens the
library early on the scenario's day (the simulated day starts at 07:30, the config opens at 08:00),
sees the gateway's opening logic follow at once and the retained topic change, has a malformed
calendar refused with the key named and nothing changed, and hands control back to the config's
calendar with ``null``.
"""

from __future__ import annotations

import json
import queue
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.sync.messages import CalendarState, CommandResult
from tests.control.simfloor import LiveFloor
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.slow

ROOT = "library/v1/central-library/gw-floor-3"
DAY = "2025-03-11"  # the scenario's date (tests/control/simfloor.py)


class Central:
    """What a central system sees of one gateway: the retained calendar and command results."""

    def __init__(self, port: int) -> None:
        self.inbox: dict[str, queue.Queue[dict[str, Any]]] = {
            f"{ROOT}/{t}": queue.Queue() for t in ("calendar", "cmd/set_calendar/result")}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central", protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.inbox[m.topic].put(json.loads(m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(f"{ROOT}/calendar", 1), (f"{ROOT}/cmd/set_calendar/result", 1)])
        self.client.loop_start()

    def next(self, topic: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.inbox[f"{ROOT}/{topic}"].get(timeout=timeout)

    def calendar(self, source: str) -> CalendarState:
        """The next retained calendar from ``source`` (the broker may hand the previous one over again first)."""
        while True:
            state = CalendarState.model_validate(self.next("calendar"))
            if state.source == source:
                return state

    def command(self, rid: str, calendar: Any) -> dict[str, Any]:
        self.client.publish(f"{ROOT}/cmd/set_calendar", json.dumps({"id": rid, "args": {"calendar": calendar}}), 1)
        while True:
            doc = self.next("cmd/set_calendar/result")
            if doc["request_id"] == rid:
                CommandResult.model_validate(doc)
                return doc

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[LiveFloor, Central]]:
    state_dir = Path(tempfile.mkdtemp(prefix="ea-cal-", dir="/tmp"))  # short: unix socket paths <= 107 bytes
    try:
        with Mosquitto(state_dir / "broker") as broker, LiveFloor(state_dir, speed=10.0,
                                                                  broker=("127.0.0.1", broker.port)) as live:
            central = Central(broker.port)
            try:
                yield live, central
            finally:
                central.close()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def _open_now(live: LiveFloor) -> bool:
    return bool(live.on_loop(lambda: live.gateway.controller.is_open(live.gateway.controller.wall())))


def test_set_calendar_closes_the_day_publishes_it_and_hands_back(gateway: tuple[LiveFloor, Central]) -> None:
    live, central = gateway
    first = central.calendar("config")
    assert (first.source, first.today, first.day_type) == ("config", DAY, "term")
    assert first.hours == ["08:00", "22:00"] and not _open_now(live)

    early = {"special_hours": [{"date": DAY, "hours": ["07:00", "22:00"], "name": "exam rush"}], "periods": [
        {"start": "2025-03-10", "end": "2025-03-21", "type": "exam", "name": "midterms"}]}
    done = central.command("cal-1", early)
    assert done["ok"] and done["result"]["source"] == "command", done
    assert done["result"]["hours"] == ["07:00", "22:00"] and done["result"]["day_type"] == "exam"
    state = central.calendar("command")
    assert state.source == "command" and state.day_type == "exam" and state.digest == done["result"]["digest"]
    assert state.calendar["special_hours"][0]["name"] == "exam rush" and state.digest != first.digest
    assert _open_now(live)
    assert json.loads((live.state_dir / "calendar.json").read_text())["special_hours"][0]["date"] == DAY

    bad = central.command("cal-2", {"periods": [{"start": "2025-04-10", "end": "2025-04-01", "type": "exam"}]})
    assert not bad["ok"] and bad["error"]["code"] == "bad_request"
    assert bad["error"]["message"].startswith("args.calendar.periods.0"), bad["error"]["message"]
    assert "swap them" in bad["error"]["message"] and _open_now(live)

    again = central.command("cal-1", None)  # a redelivered request is answered, not executed again
    assert again["replayed"] and again["result"] == done["result"]

    back = central.command("cal-3", None)
    assert back["ok"] and back["result"]["source"] == "config" and back["result"]["digest"] == first.digest
    assert central.calendar("config").digest == first.digest
    assert not _open_now(live) and not (live.state_dir / "calendar.json").exists()


def test_a_pushed_calendar_survives_a_restart_and_a_broken_one_falls_back(tmp_path: Path) -> None:
    from datetime import date

    from edge_agent.config import load_config
    from edge_agent.site_calendar import CalendarBook
    from models.calendar import CalendarDoc

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "floor-3.toml")
    CalendarBook(cfg, tmp_path).set(CalendarDoc.model_validate({"closures": [{"date": DAY}]}))
    reborn = CalendarBook(cfg, tmp_path)  # the daemon restarted (or the power came back)
    assert reborn.source == "command" and reborn.calendar.hours(date.fromisoformat(DAY)) is None
    (tmp_path / "calendar.json").write_text('{"closures": [{"date": "not a date"}]}')
    broken = CalendarBook(cfg, tmp_path)
    assert broken.source == "config" and broken.calendar.hours(date.fromisoformat(DAY)) is not None
    assert "calendar.json" in broken.problem and "closures.0.date" in broken.problem

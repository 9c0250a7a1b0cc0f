"""A floor whose config lists no tag: the real daemon discovers a tag, and serves its consenting patron.

The daemon runs on the simulated floor (listener on a UART, desks on RS-485 nodes) against a real
mosquitto; the library's patron system is played by an MQTT client that knows only docs/mqtt.md.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import load_config
from tests.control.simfloor import LiveFloor
from tests.mosquitto import Mosquitto

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]
ROOT = Path(__file__).resolve().parents[2]
TAG = "2A7F"


def floor_without_tags(tmp: Path) -> Path:
    """floor-3 with its one configured BLE tag taken out: only the listener is left."""
    text = (ROOT / "examples" / "floor-3.toml").read_text()
    text = re.sub(r'\[\[sensors\]\]\nid = "uwb-ble"\n(?:[^\[\n][^\n]*\n)+', "", text)
    path = tmp / "floor.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert [s.settings.get("role") for s in cfg.sensors if s.kind == "dwm1001"] == ["listener"]
    return path


class PatronSystem:
    """The central side: publishes commands to one gateway and collects the results."""

    def __init__(self, port: int, root: str) -> None:
        self.root = root
        self.results: dict[str, dict[str, Any]] = {}
        self.raw: list[bytes] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="patron-system", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self.ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{root}/cmd/+/result", qos=1)
        self.client.loop_start()
        assert self.ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.raw.append(bytes(msg.payload))
        doc = json.loads(msg.payload)
        self.results[doc["request_id"]] = doc

    def send(self, name: str, request_id: str, args: dict[str, Any]) -> None:
        self.client.publish(f"{self.root}/cmd/{name}", json.dumps({"id": request_id, "args": args}), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_no_tag_in_the_config_a_tag_is_discovered_and_its_consenting_patron_served(tmp_path: Path) -> None:
    floor = floor_without_tags(tmp_path)
    with Mosquitto(tmp_path / "broker") as broker:
        state = tmp_path / "state"
        state.mkdir()
        with LiveFloor(state, speed=30.0, floor=floor, broker=("127.0.0.1", broker.port), tag_interval_s=5.0) as live:
            cfg = live.sim.cfg
            patrons = PatronSystem(broker.port, f"library/v1/{cfg.site.id}/{cfg.site.gateway}")
            try:
                _serve_and_withdraw(live, patrons)
            finally:
                patrons.close()


def _serve_and_withdraw(live: LiveFloor, patrons: PatronSystem) -> None:
    gw = live.gateway
    world = live.sim.world
    assert world is not None
    up = gw.uplink
    live.wait_for("the uplink to connect", lambda: up is not None and up.connected.is_set(), wall_s=30)
    patrons.send("consent_set", "c-1", {"subject": TAG.lower(), "scopes": ["desk_preferences", "lamp_preferences"]})
    patrons.send("preferences_set", "p-1", {"subject": TAG, "desk_height_mm": 1050, "lamp_level": 0.65})
    live.wait_for("both results", lambda: {"c-1", "p-1"} <= set(patrons.results), wall_s=30)
    consent, prefs = patrons.results["c-1"], patrons.results["p-1"]
    assert consent["ok"] and consent["result"]["receipt"].startswith("c-")
    assert consent["result"]["scopes"] == ["desk_preferences", "lamp_preferences"]
    assert prefs["ok"] and prefs["result"]["stored"] == ["desk_height_mm", "lamp_level"]

    live.wait_sim(300)  # the thermopiles learn the empty room first, as on any morning
    sat_at = live.sim_time()
    live.on_loop(world.place_patron, "S010", tag=TAG)  # nobody listed this tag anywhere

    def served() -> bool:
        desk = ("desk-S010",)
        return bool(abs(live.on_loop(world.binding.desk_height, *desk) - 1050) <= 10
                    and abs(live.on_loop(world.binding.desk_lamp, *desk) - 0.65) <= 0.02)

    live.wait_for("the desk at the patron's height and lamp level", served, wall_s=60, every_s=0.1)
    assert live.sim_time() - sat_at <= 120.0

    listed = live.cli("sensors", "list")
    listener = next(s for s in listed.json() if s["id"] == "uwb-listener")
    assert listener["healthy"] and listener["last_values"]["tags_tracked"] >= 1
    assert listener["last_values"]["tags_discovered"] >= 1
    name = live.on_loop(gw.pollers.tags.name_of, TAG)
    for text in (listed.stdout, live.cli("status").stdout, *(r.decode() for r in patrons.raw)):
        assert TAG not in text.upper() and name not in text  # counts and health, never an id or a trail
    assert "1050" not in b"".join(patrons.raw).decode()

    patrons.send("consent_withdraw", "w-1", {"subject": TAG})
    live.wait_for("the withdrawal's result", lambda: "w-1" in patrons.results, wall_s=30)
    done = patrons.results["w-1"]["result"]
    assert done["had_consent"] and done["preferences_deleted"] and done["tag_forgotten"]
    assert live.on_loop(gw.consents.get, name) is None and live.on_loop(gw.patrons) == {}
    assert name not in (live.state_dir / "consent.json").read_text()

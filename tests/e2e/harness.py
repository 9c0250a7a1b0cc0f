"""Run a scenario of the simulated floor end to end: the real daemon, a real broker, a subscriber.

Each scenario test runs ``edge-agent run --simulate`` as a real process against a private
mosquitto, with a subscriber on ``#`` for the whole run, and returns the report and every
message the broker delivered.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "simulator" / "scenarios"

# Keys that would carry raw frames, positions or tag ids: none may appear in any upstream message.
FORBIDDEN_KEYS = {"x", "y", "z", "position", "positions", "tag", "tag_id", "tags", "pixels", "frame", "frames",
                  "ranges", "distances", "pseudonym", "consented_tag", "ble_address"}


@dataclass
class Capture:
    """Every message seen on ``#`` (topic, payload), in arrival order."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def json_docs(self) -> list[tuple[str, Any]]:
        out = []
        for topic, payload in self.messages:
            try:
                out.append((topic, json.loads(payload)))
            except ValueError:
                out.append((topic, payload.decode(errors="replace")))
        return out


def subscribe_all(port: int) -> tuple[mqtt.Client, Capture]:
    capture = Capture()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-observer", protocol=mqtt.MQTTv5)
    ready = threading.Event()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with capture.lock:
            capture.messages.append((msg.topic, bytes(msg.payload)))

    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    client.connect("127.0.0.1", port)
    client.subscribe("#", qos=1)
    client.loop_start()
    if not ready.wait(10):
        raise RuntimeError("the observer could not subscribe")
    return client, capture


def scenario_copy(tmp: Path, name: str, *, end: str | None = None, seed: int | None = None) -> Path:
    """The shipped scenario with an absolute floor path and, optionally, an earlier end or another seed."""
    text = (SCENARIOS / f"{name}.toml").read_text()
    floor = tomllib.loads(text)["scenario"].get("floor", "examples/floor-3.toml")
    text = re.sub(r'(?m)^floor = ".*"$', f'floor = "{(ROOT / floor).as_posix()}"', text)
    if end is not None:
        text = re.sub(r'(?m)^end = ".*"$', f'end = "{end}"', text)
    if seed is not None:
        text = re.sub(r"(?m)^seed = \d+$", f"seed = {seed}", text)
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def run_scenario(tmp: Path, scenario: Path, *, broker_port: int | None, timeout_s: float = 1800,
                 baseline: bool = False) -> dict[str, Any]:
    """``edge-agent run --simulate`` (``--baseline``: the conventional floor alone) as a process; its report."""
    report = tmp / f"{scenario.stem}-report.json"
    cmd = [sys.executable, "-m", "edge_agent.cli", "run", "--simulate", str(scenario), "--as-fast-as-possible",
           "--report", str(report), "--state-dir", str(tmp / f"{scenario.stem}-state"), "--log-level", "warning"]
    if baseline:
        cmd.append("--baseline")
    if broker_port is not None:
        cmd += ["--broker", f"127.0.0.1:{broker_port}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise AssertionError(f"simulation exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    doc: dict[str, Any] = json.loads(report.read_text())
    doc["_stderr"] = proc.stderr
    return doc


def run_observed(tmp: Path, name: str) -> tuple[dict[str, Any], Capture]:
    """Run a shipped scenario against a private mosquitto with an observer on ``#`` throughout."""
    from tests.mosquitto import Mosquitto

    with Mosquitto(tmp / "broker") as broker:
        client, capture = subscribe_all(broker.port)
        try:
            report = run_scenario(tmp, scenario_copy(tmp, name), broker_port=broker.port)
        finally:
            client.loop_stop()
            client.disconnect()
    return report, capture


def forbidden_fields(doc: Any, path: str = "") -> list[str]:
    """Key paths in ``doc`` that are on the forbidden list."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).lower() in FORBIDDEN_KEYS:
                found.append(where)
            found += forbidden_fields(value, where)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += forbidden_fields(value, f"{path}[{i}]")
    return found


REPORT_KEYS = {
    "sim_hours", "wall_seconds", "lighting_kwh", "baseline_lighting_kwh", "lighting_saving",
    "underlit_occupied_seat_minutes_fraction", "actuation_latency_s", "actuations_over_120s", "seat_state_accuracy",
    "zone_count_mae", "co2_over_1000ppm_minutes", "baseline_co2_over_1000ppm_minutes", "seat_utilisation",
    "ghost_seat_minutes", "messages_produced", "messages_delivered", "messages_dropped",
    "seat_state_accuracy_ceiling", "cold_belongings_seat_minutes",
    "total_energy_kwh", "baseline_total_energy_kwh", "total_saving", "energy_by_load_kwh",
    "baseline_energy_by_load_kwh", "occupied_minutes_outside_comfort", "baseline_occupied_minutes_outside_comfort",
    "occupied_minutes_outside_comfort_by_zone", "baseline_occupied_minutes_outside_comfort_by_zone",
    "baseline_underlit_occupied_seat_minutes_fraction", "comfort_band_c",
    "seat_state_accuracy_by_truth", "chair_belongings_seat_minutes", "seat_state_accuracy_thermal_ceiling",
    "arrivals", "seat_claims", "displaced_patrons", "staff_dispatches", "staff_cleared",
}
#: The seats-for-patrons keys; each has its baseline_ twin (the conventional floor, docs/simulator.md).
SEAT_KEYS = ("seat_utilisation", "seat_demand_met", "turned_away", "seat_search_s", "ghost_seat_minutes",
             "ghost_to_release_s")
REPORT_KEYS |= set(SEAT_KEYS) | {f"baseline_{k}" for k in SEAT_KEYS}
LOADS = {"luminaires", "desk_lamps", "fans", "ventilation_air", "zone_conditioning"}


def seat_problems(report: dict[str, Any]) -> list[str]:
    """What keeps a crowded day from the seat targets against its baseline (empty when it meets them).

    On the same demand and seed as the conventional floor: at most half as many turned away, at
    most a third of the ghost seat-minutes, a higher seat utilisation.
    """
    out = []
    mine, base = report["turned_away"], report["baseline_turned_away"]
    if base == 0 or mine > 0.5 * base:
        out.append(f"turned_away {mine}, conventional floor {base}: not at most half")
    mine, base = report["ghost_seat_minutes"], report["baseline_ghost_seat_minutes"]
    if base == 0 or mine > base / 3.0:
        out.append(f"ghost_seat_minutes {mine}, conventional floor {base}: not at most a third")
    if report["seat_utilisation"] <= report["baseline_seat_utilisation"]:
        out.append(f"seat_utilisation {report['seat_utilisation']} not above the conventional floor's "
                   f"{report['baseline_seat_utilisation']}")
    return out


def energy_problems(report: dict[str, Any], *, saving: float, lighting: float) -> list[str]:
    """What keeps a day from the floor's energy targets at equal comfort (empty when it meets them).

    The targets: the whole floor uses ``saving`` less than the conventional floor and its lighting
    ``lighting`` less; CO2 over 1000 ppm and occupied minutes outside the comfort band no worse than
    the conventional floor's (in every zone); under 1 % of occupied seat-minutes under-lit.
    """
    out = []
    mine, base = report["energy_by_load_kwh"], report["baseline_energy_by_load_kwh"]
    if set(mine) != LOADS or set(base) != LOADS:
        out.append(f"the breakdown must name every load: {sorted(mine)} / {sorted(base)}")
    if abs(sum(mine.values()) - report["total_energy_kwh"]) > 0.01:
        out.append(f"the loads {mine} do not add up to total_energy_kwh {report['total_energy_kwh']}")
    if abs(sum(base.values()) - report["baseline_total_energy_kwh"]) > 0.01:
        out.append(f"the loads {base} do not add up to baseline_total_energy_kwh {report['baseline_total_energy_kwh']}")
    if not all(base[k] > 0 for k in ("luminaires", "fans", "zone_conditioning")):
        out.append(f"the conventional floor must light, ventilate and condition: {base}")
    if report["total_saving"] < saving:
        out.append(f"total_saving {report['total_saving']} < {saving}")
    if report["lighting_saving"] < lighting:
        out.append(f"lighting_saving {report['lighting_saving']} < {lighting}")
    if report["co2_over_1000ppm_minutes"] > report["baseline_co2_over_1000ppm_minutes"]:
        out.append(f"CO2 over 1000 ppm {report['co2_over_1000ppm_minutes']} zone-minutes, "
                   f"conventional {report['baseline_co2_over_1000ppm_minutes']}")
    outside, base_outside = (report["occupied_minutes_outside_comfort_by_zone"],
                             report["baseline_occupied_minutes_outside_comfort_by_zone"])
    worse = {z: (n, base_outside[z]) for z, n in outside.items() if n > base_outside[z]}
    if worse:
        out.append(f"occupied minutes outside the comfort band worse than conventional (zone: mine, theirs): {worse}")
    if report["underlit_occupied_seat_minutes_fraction"] > 0.01:
        out.append(f"under-lit occupied seat-minutes {report['underlit_occupied_seat_minutes_fraction']} > 0.01")
    return out

"""`edge-agent demo` needs no broker installed: it embeds one, runs the floor, prints the headline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT, scenario_copy

pytestmark = pytest.mark.slow


def test_demo_with_embedded_broker_reports(tmp_path: Path) -> None:
    scenario = scenario_copy(tmp_path, "normal-day", end="09:30")
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "edge_agent.cli", "demo", "--scenario", str(scenario),
                           "--report", str(report)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "embedded MQTT broker (amqtt)" in proc.stdout
    for phrase in ("whole floor:", "on a conventional floor", "lighting:", "actuation latency:", "seat-state accuracy",
                   "sensors' ceiling", "seats (conventional floor in brackets)", "turned away", "ghost seats:",
                   "ghost to release", "MQTT:"):
        assert phrase in proc.stdout
    # Every load and both floors' comfort stand beside the lighting saving: nothing is left out of the headline.
    for load in ("luminaires", "desk lamps", "fans", "ventilation air", "zone heating/cooling"):
        assert f"{load} " in proc.stdout
    assert "outside 20-26 C" in proc.stdout and "CO2 over 1000 ppm" in proc.stdout and "under-lit" in proc.stdout
    doc = json.loads(report.read_text())
    assert doc["messages_produced"] > 0
    # The embedded broker takes every message but those produced while the daemon stops.
    assert doc["messages_produced"] - doc["messages_delivered"] <= 20

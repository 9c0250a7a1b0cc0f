"""DALI and BACnet are optional: nothing imports python-dali or bacpypes3 unless the configuration uses them,
and a configuration that uses them on a gateway without the extras says what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WITHOUT_EXTRAS = """
import asyncio, sys
sys.modules["dali"] = None          # as if python-dali were not installed
sys.modules["bacpypes3"] = None     # nor bacpypes3
from edge_agent.building.devices import Building
from edge_agent.config import load_config
from edge_agent.clock import SystemClock

class NoBackend:
    pass

async def main():
    cfg = load_config("examples/floor-3-building.toml")
    building = Building(cfg, NoBackend(), SystemClock())
    await building.open()
    print(building.errors["dali1"])
    print(building.errors["bacnet"])
    light = next(a for a in cfg.actuators if a.output == "dali")
    try:
        building.output(light)
    except Exception as exc:
        print(type(exc).__name__, exc)
    await building.close()

asyncio.run(main())
"""


def test_the_daemon_and_cli_do_not_import_the_extras_for_a_floor_without_them() -> None:
    code = ("import sys, edge_agent.assembly, edge_agent.simulate, edge_agent.cli.doctor_cmd, edge_agent.operations, "
            "edge_agent.cli.dali_cmd, edge_agent.cli.bacnet_cmd, simulator.hw.floor; "
            "from edge_agent.config import load_config; load_config('examples/floor-3.toml'); "
            "print(sorted(m for m in ('dali', 'bacpypes3') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_without_the_extras_the_parts_say_what_to_install() -> None:
    run = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "python-dali is not installed; install the extra on the gateway: pip install 'edge-agent[dali]'" in lines[0]
    assert "bacpypes3 is not installed; install the extra on the gateway: pip install 'edge-agent[bacnet]'" in lines[1]
    assert lines[2].startswith("BusError DALI master dali1: ")

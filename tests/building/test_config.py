"""DALI and BACnet in the site configuration: the example validates; broken addresses and object ids are
named by key path with what to write instead, through ``edge-agent config check``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import ConfigError
from edge_agent.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
BUILDING_FLOOR = ROOT / "examples" / "floor-3-building.toml"


def example() -> dict[str, Any]:
    return tomllib.loads(BUILDING_FLOOR.read_text())


def _first(doc: dict[str, Any], table: str, key: str) -> int:
    return next(i for i, x in enumerate(doc[table]) if key in x)


def test_the_building_floor_is_valid() -> None:
    cfg = load_config(BUILDING_FLOOR)
    assert [m.id for m in cfg.dali] == ["dali1", "dali2", "dali3"]
    assert cfg.bacnet is not None and cfg.bacnet.port == 47808
    lights = [a for a in cfg.actuators if a.kind == "light"]
    assert lights and all(a.output == "dali" and a.dali is not None for a in lights)
    vents = [a for a in cfg.actuators if a.kind == "hvac"]
    assert vents and all(a.bacnet is not None and a.bacnet.priority == 12 for a in vents)
    quantities = {s.quantity for s in cfg.sensors if s.kind == "bacnet"}
    assert quantities == {"temperature", "supply_air_temperature", "damper_position"}


def life_safety_priority(doc: dict[str, Any]) -> str:
    i = _first(doc, "actuators", "bacnet")
    doc["actuators"][i]["bacnet"]["priority"] = 2
    return f"actuators[{i}].bacnet.priority: priority 2 is automatic life safety"


def minimum_on_off_priority(doc: dict[str, Any]) -> str:
    i = _first(doc, "actuators", "bacnet")
    doc["actuators"][i]["bacnet"]["priority"] = 6
    return f"actuators[{i}].bacnet.priority: priority 6 is minimum on/off"


def bad_object_id(doc: dict[str, Any]) -> str:
    i = _first(doc, "actuators", "bacnet")
    doc["actuators"][i]["bacnet"]["object"] = "AV101"
    return f"actuators[{i}].bacnet.object: 'AV101' is not an object id; write it like \"analog-value,101\""


def read_only_object_commanded(doc: dict[str, Any]) -> str:
    i = _first(doc, "actuators", "bacnet")
    doc["actuators"][i]["bacnet"]["object"] = "analog-input,3"
    return f"actuators[{i}].bacnet.object: object type 'analog-input' is not usable here"


def instance_out_of_range(doc: dict[str, Any]) -> str:
    i = _first(doc, "sensors", "bacnet")
    doc["sensors"][i]["bacnet"]["object"] = "analog-input,4194303"
    return f"sensors[{i}].bacnet.object: instance 4194303 is out of range"


def bad_device_address(doc: dict[str, Any]) -> str:
    i = _first(doc, "sensors", "bacnet")
    doc["sensors"][i]["bacnet"]["device"] = "bms.local"
    return f"sensors[{i}].bacnet.device: 'bms.local' is not a BACnet/IP address"


def unknown_quantity(doc: dict[str, Any]) -> str:
    i = _first(doc, "sensors", "bacnet")
    doc["sensors"][i]["quantity"] = "airspeed"
    return f"sensors[{i}]: a bacnet sensor needs quantity = one of temperature"


def no_bacnet_table(doc: dict[str, Any]) -> str:
    del doc["bacnet"]
    return "bacnet: BMS points are used but there is no [bacnet] table"


def bad_interface(doc: dict[str, Any]) -> str:
    doc["bacnet"]["interface"] = "eth0"
    return "bacnet.interface: 'eth0' is not an IPv4 interface"


def short_address_out_of_range(doc: dict[str, Any]) -> str:
    i = _first(doc, "actuators", "dali")
    doc["actuators"][i]["dali"]["short_address"] = 64
    return f"actuators[{i}].dali.short_address: Input should be less than or equal to 63"


def short_address_and_group(doc: dict[str, Any]) -> str:
    i = _first(doc, "actuators", "dali")
    doc["actuators"][i]["dali"]["group"] = 2
    return f"actuators[{i}].dali: set exactly one of short_address (0-63) or group (0-15)"


def unknown_master(doc: dict[str, Any]) -> str:
    i = _first(doc, "actuators", "dali")
    doc["actuators"][i]["dali"]["master"] = "dali9"
    return f"actuators[{i}].dali.master: unknown DALI master 'dali9'; known: dali1, dali2, dali3"


def one_gear_two_actuators(doc: dict[str, Any]) -> str:
    lights = [i for i, a in enumerate(doc["actuators"]) if "dali" in a]
    doc["actuators"][lights[1]]["dali"] = dict(doc["actuators"][lights[0]]["dali"])
    return f"actuators[{lights[1]}].dali.short_address: 0 on 'dali1' is already driven by"


def unknown_driver(doc: dict[str, Any]) -> str:
    doc["dali"][0]["driver"] = "dali-usb"
    return "dali[0].driver: Input should be 'hasseb', 'tridonic', 'luba232' or 'scirs232'"


def dali_on_a_desk(doc: dict[str, Any]) -> str:
    i = next(i for i, a in enumerate(doc["actuators"]) if a["kind"] == "desk")
    doc["actuators"][i]["output"] = "dali"
    return f"actuators[{i}]: output = \"dali\" drives luminaires: use it with kind = \"light\""


MUTATIONS: list[Callable[[dict[str, Any]], str]] = [
    life_safety_priority, minimum_on_off_priority, bad_object_id, read_only_object_commanded, instance_out_of_range,
    bad_device_address, unknown_quantity, no_bacnet_table, bad_interface, short_address_out_of_range,
    short_address_and_group, unknown_master, one_gear_two_actuators, unknown_driver, dali_on_a_desk,
]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda m: m.__name__)
def test_each_problem_names_its_key_and_the_fix(mutate: Callable[[dict[str, Any]], str]) -> None:
    doc = example()
    expected = mutate(doc)
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "gateway.toml")
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_config_check_lists_them_all_and_exits_2(tmp_path: Path) -> None:
    text = BUILDING_FLOOR.read_text()
    text = text.replace("priority = 12", "priority = 1", 1)
    text = text.replace('object = "analog-input,1"', 'object = "analog-input;1"', 1)
    text = text.replace("short_address = 3 }", "short_address = 99 }", 1)
    broken = tmp_path / "gateway.toml"
    broken.write_text(text)
    run = subprocess.run([sys.executable, "-m", "edge_agent.cli", "config", "check", str(broken)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert run.returncode == 2
    assert "3 problem(s)" in run.stderr
    assert "priority 1 is manual life safety (firefighter override); a gateway never writes there" in run.stderr
    assert "'analog-input;1' is not an object id" in run.stderr
    assert "short_address: Input should be less than or equal to 63" in run.stderr
    ok = subprocess.run([sys.executable, "-m", "edge_agent.cli", "config", "check", str(BUILDING_FLOOR)],
                        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr

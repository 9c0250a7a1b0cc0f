"""A technician commissions a DALI line and finds the BMS objects from the CLI alone (docs/technician.md).

The real daemon runs the building floor (three DALI lines, the BMS over BACnet/IP on the loopback
interface) on paced virtual time; the commands run as subprocesses through its control socket, in
the order the field guide gives them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.simfloor import LiveFloor

ROOT = Path(__file__).resolve().parents[2]
BUILDING_FLOOR = ROOT / "examples" / "floor-3-building.toml"


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFloor]:
    with LiveFloor(tmp_path_factory.mktemp("building-cli"), speed=30.0, floor=BUILDING_FLOOR) as live:
        live.wait_sim(90.0)  # the first levels are out and the BMS holds the gateway's requests
        yield live


def test_dali_scan_lists_the_gear_on_every_line(floor: LiveFloor) -> None:
    masters = floor.cli("dali", "scan").json()["masters"]
    assert [m["master"] for m in masters] == ["dali1", "dali2", "dali3"]
    for line in masters:
        assert not line["error"] and not line["unaddressed"] and line["missing"] == []
        assert [g["short_address"] for g in line["gear"]] == list(range(8))
        assert all(g["device_types"] == ["LED"] and g["actuator"] for g in line["gear"])
    table = floor.cli("dali", "scan", "--master", "dali1", json_output=False)
    assert table.code == 0 and "light-z1-quiet-1" in table.stdout and "LED" in table.stdout


def test_a_replaced_line_is_commissioned_from_the_cli(floor: LiveFloor) -> None:
    assert floor.sim.hardware is not None and floor.sim.hardware.building is not None
    floor.on_loop(floor.sim.hardware.building.lines["dali3"].factory_reset)  # new gear, straight from the box
    before = floor.cli("dali", "scan", "--master", "dali3").json()["masters"][0]
    assert before["gear"] == [] and before["unaddressed"]
    assert len(before["missing"]) == 8
    ambiguous = floor.cli("dali", "assign", json_output=False)
    assert ambiguous.code != 0 and "say which with --master" in ambiguous.stderr
    done = floor.cli("dali", "assign", "--master", "dali3", json_output=False, timeout=120.0)
    assert done.code == 0, done.stderr
    assert "Ballast found" in done.stdout
    assert "dali3: 8 short address(es) assigned: 0, 1, 2, 3, 4, 5, 6, 7" in done.stdout
    after = floor.cli("dali", "scan", "--master", "dali3").json()["masters"][0]
    assert [g["short_address"] for g in after["gear"]] == list(range(8)) and not after["unaddressed"]


def test_groups_are_set_and_cleared(floor: LiveFloor) -> None:
    added = floor.cli("dali", "group", "3", "1", "--master", "dali1").json()
    assert added == {"master": "dali1", "short_address": 3, "groups": [1]}
    removed = floor.cli("dali", "group", "3", "1", "--remove", "--master", "dali1", json_output=False)
    assert removed.code == 0 and "short address 3 is in groups: none" in removed.stdout
    absent = floor.cli("dali", "group", "40", "1", "--master", "dali1", json_output=False)
    assert absent.code != 0 and "no answer from short address 40" in absent.stderr


def test_the_bms_is_found_and_its_objects_read(floor: LiveFloor) -> None:
    found = floor.cli("bacnet", "discover").json()
    assert [(d["instance"], d["name"], d["configured_as"]) for d in found["devices"]] == [
        (1200, "bms-1", "192.168.10.40")]
    assert found["silent"] == []
    vent = floor.cli("bacnet", "read", "analog-value,101").json()
    assert vent["units"] == "percent"
    assert set(vent["priority_array"]) == {"12"}  # the gateway's request, at its priority only
    assert vent["value"] == vent["priority_array"]["12"]
    assert vent["relinquish_default"] == 30.0
    zone = floor.cli("bacnet", "read", "analog-input,1", json_output=False)
    assert zone.code == 0 and "degrees-celsius" in zone.stdout
    missing = floor.cli("bacnet", "read", "analog-input,99", json_output=False)
    assert missing.code != 0 and "unknown-object" in missing.stderr
    typo = floor.cli("bacnet", "read", "AI99", json_output=False)
    assert typo.code != 0 and "write it like" in typo.stderr


def test_doctor_reports_dali_and_bacnet_reachability(floor: LiveFloor) -> None:
    run = floor.cli("doctor", "--config", str(BUILDING_FLOOR), json_output=False)
    doc = floor.cli("doctor", "--config", str(BUILDING_FLOOR))
    findings = {f["check"]: f for f in json.loads(doc.stdout)}
    for master in ("dali1", "dali2", "dali3"):
        assert findings[f"dali {master}"]["level"] == "OK", findings[f"dali {master}"]
    assert findings["bacnet"]["level"] == "OK" and "1 BMS device(s) answer" in findings["bacnet"]["message"]
    assert "dali dali1" in run.stdout

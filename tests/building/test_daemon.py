"""The real daemon on the simulated floor with DALI lights and BMS ventilation over BACnet/IP.

One short window of the building-systems scenario (07:45-08:40, the library opens at 08:00) runs
in-process on virtual time, with the simulated BMS served by bacpypes3 on the loopback interface.
During it a DALI gear loses mains and comes back; after it the daemon has stopped cleanly. The
tests then look at what the BMS saw (every write, its priority, the relinquish) and at the DALI
line's frames.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from edge_agent.simulate import Simulation, SimulationOptions
from simulator.bms import RELINQUISH_DEFAULT_PCT
from simulator.clock import run_virtual

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("building-window")
    text = (ROOT / "simulator" / "scenarios" / "building-systems.toml").read_text()
    text = text.replace('floor = "examples/floor-3-building.toml"',
                        f'floor = "{(ROOT / "examples" / "floor-3-building.toml").as_posix()}"')
    text = text.replace('start = "07:30"', 'start = "07:45"').replace('end = "22:30"', 'end = "08:40"')
    scenario = tmp / "window.toml"
    scenario.write_text(text)
    options = SimulationOptions(scenario=scenario, state_dir=tmp / "state", broker=("127.0.0.1", _closed_port()))
    sim = Simulation(options)
    seen: dict[str, Any] = {}

    async def mains_cut() -> None:
        await asyncio.sleep(30 * 60)  # 08:15, lights on in occupied zones
        assert sim.hardware is not None and sim.hardware.building is not None
        line = sim.hardware.building.lines["dali1"]
        gear = line.at(0)[0]
        loop = asyncio.get_running_loop()
        seen["before"] = gear.actual(loop.time())
        gear.power_cut(loop.time())
        await asyncio.sleep(5.0)
        gear.power_restored(loop.time())
        seen["restored_t"] = loop.time()
        seen["at_power_on"] = gear.actual(loop.time())
        await asyncio.sleep(70.0)  # one status poll of the line (60 s)
        seen["target_after_poll"] = gear.fade_to
        assert sim.daemon is not None
        gw = sim.daemon.gateway
        assert gw is not None
        seen["commanded"] = gw.hardware.building.lights["light-z1-quiet-1"].sent_arc
        seen["health"] = await _health(gw)
        seen["samples"] = {sid: gw.pollers.last.get(sid) for sid in ("bms-temp-z1-quiet", "ahu1-supply-air",
                                                                       "ahu1-damper")}
        seen["zone_temperature"] = float(sim.world.air.temp[0]) if sim.world is not None else None

    async def main() -> dict[str, Any]:
        cut = asyncio.create_task(mains_cut())
        report = await sim.run()
        await cut
        return report

    seen["report"] = run_virtual(main())
    seen["sim"] = sim
    return seen


async def _health(gw: Any) -> dict[str, Any]:
    from edge_agent.building.operations import BuildingArgs, BuildingOperations

    return await BuildingOperations(gw.hardware.building).run(BuildingArgs(action="health", timeout_s=1.0))


def test_ventilation_is_written_at_priority_12_only_and_relinquished_at_the_stop(window: dict[str, Any]) -> None:
    building = window["sim"].hardware.building
    (bms,) = building.bms.values()
    vents = ["analog-value,101", "analog-value,102", "analog-value,103"]
    for oid in vents:
        writes = [w for w in bms.writes if w[0] == oid]
        assert writes, f"the gateway never wrote {oid}"
        assert {priority for _, priority, _ in writes} == {12}
        assert any(value is not None and value > 0 for _, _, value in writes)
        assert writes[-1] == (oid, 12, None)  # the last thing the gateway did: NULL at its priority
        assert bms.slots(oid) == {}
        assert bms.present_value(oid) == RELINQUISH_DEFAULT_PCT


def test_the_bms_values_are_read_as_sensors(window: dict[str, Any]) -> None:
    samples = window["samples"]
    zone = samples["bms-temp-z1-quiet"]
    assert zone is not None and zone.values["temperature"] == pytest.approx(window["zone_temperature"], abs=0.3)
    assert samples["ahu1-supply-air"].values["supply_air_temperature"] == pytest.approx(17.0, abs=3.0)
    assert 0.0 < samples["ahu1-damper"].values["damper_position"] <= 100.0


def test_health_shows_the_lines_and_the_bms(window: dict[str, Any]) -> None:
    health = window["health"]
    assert [line["master"] for line in health["dali"]] == ["dali1", "dali2", "dali3"]
    assert all(line["open"] and not line["silent"] for line in health["dali"])
    assert all(light["healthy"] for line in health["dali"] for light in line["lights"])
    assert health["bacnet"]["open"] and all(d["answered"] for d in health["bacnet"]["devices"])
    assert {o["priority"] for o in health["bacnet"]["outputs"]} == {12}
    assert all(o["holding"] for o in health["bacnet"]["outputs"])


def test_dali_lights_fade_on_the_curve_and_come_back_after_a_mains_cut(window: dict[str, Any]) -> None:
    building = window["sim"].hardware.building
    line = building.lines["dali1"]
    assert all(g.fade_code == 2 for g in line.gear)  # ramp_s 1.0 -> fade time code 2 (1.0 s)
    dapc = [f for _, f, _ in line.frames if not f >> 8 & 1 and f >> 9 < 64]
    assert dapc, "no DAPC reached the line"
    assert window["before"] > 0
    assert window["at_power_on"] == 254  # POWER ON LEVEL
    # the status poll saw the power-failure bit (QUERY STATUS to short address 0, bit 7) and sent a DAPC
    after = [(f, answer) for t, f, answer in line.frames if t >= window["restored_t"]]
    polls = [k for k, (f, answer) in enumerate(after) if f == 0x0190 and answer is not None and answer & 0x80]
    assert polls, "no status poll saw the mains cut"
    assert any(f >> 8 == 0x00 for f, _ in after[polls[0]:]), "no DAPC to short address 0 after the poll"
    assert window["target_after_poll"] == window["commanded"] != 254


def test_every_need_in_the_window_is_met_within_the_two_minute_bar(window: dict[str, Any]) -> None:
    report = window["report"]  # the day's light and air targets: tests/e2e/test_building_systems.py
    assert report["actuation_latency_s"]["count"] > 0
    assert report["actuations_over_120s"] == 0
    assert report["lights_off_in_occupied_zone_minutes"] == 0

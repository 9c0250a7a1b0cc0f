"""Scenario files: the shipped ones validate; broken ones name the file and the key path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers.errors import ConfigError
from edge_agent.config import load_config
from simulator.clock import VirtualClock, run_virtual
from simulator.world import MemoryBinding, World, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "simulator" / "scenarios").glob("*.toml"))
FLOOR = ROOT / "examples" / "floor-3.toml"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_validate(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.floor_path.is_file()
    day = path.stem in ("normal-day", "exam-week")
    assert sc.duration_s >= (14 * 3600 if day else 2 * 3600)  # a whole opening day, or the incident and after
    assert 1.0 <= sc.poll_overrides()["amg8833"] <= 60.0  # a day must fit its wall-time budget


def test_all_six_scenarios_ship() -> None:
    assert {p.stem for p in SCENARIOS} >= {
        "normal-day", "exam-week", "sensor-failure", "broker-outage", "ble-dropout", "power-cut"}


def test_broken_scenario_names_file_and_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'[scenario]\nname = "x"\nfloor = "{FLOOR}"\nday_type = "weekend"\n\n'
        '[[events]]\nat = "12:00"\nkind = "broker_down"\n\n'
        '[[events]]\nat = "25:00"\nkind = "power_cut"\ncolour = "red"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_scenario(bad)
    text = str(caught.value)
    assert str(bad) in text
    assert "scenario.day_type" in text
    assert "events[1].at" in text
    assert "events[1].colour: unknown key" in text
    assert "events[0]" not in text


def test_unknown_event_target_and_missing_floor(tmp_path: Path) -> None:
    bad = tmp_path / "target.toml"
    bad.write_text(f'[scenario]\nname = "x"\nfloor = "{FLOOR}"\n\n'
                   '[[events]]\nat = "12:00"\nkind = "sensor_fault"\ntarget = "thermal-nowhere"\nfault = "nack"\n')
    with pytest.raises(ConfigError, match=r"events\[0\]\.target: unknown sensor 'thermal-nowhere'"):
        load_scenario(bad)
    gone = tmp_path / "gone.toml"
    gone.write_text('[scenario]\nname = "x"\nfloor = "no/such/floor.toml"\n')
    with pytest.raises(ConfigError, match=r"scenario\.floor: no such file"):
        load_scenario(gone)


def test_world_executes_faults_and_hands_runtime_events_over() -> None:
    sc = load_scenario(ROOT / "simulator" / "scenarios" / "sensor-failure.toml")
    sc = sc.model_copy(update={"scenario": sc.scenario.model_copy(update={"start": "11:00", "end": "12:30"})})
    cfg = load_config(sc.floor_path)
    power = load_scenario(ROOT / "simulator" / "scenarios" / "power-cut.toml")

    async def main() -> tuple[dict[str, list[str]], list[str], float, float]:
        clock = VirtualClock(asyncio.get_running_loop(), sc.wall_start(ZoneInfo(cfg.site.timezone)))
        binding = MemoryBinding()
        w = World(cfg, sc, binding, clock)
        runtime = World(cfg, power, MemoryBinding(), clock).scheduled_events()
        await w.run()
        return binding.faults, [e.kind for e in runtime], runtime[0].at, w.t0

    faults, kinds, at, t0 = run_virtual(main())
    assert at - t0 == pytest.approx(4 * 3600 + 20 * 60)  # 15:20 on a clock that started at 11:00
    assert faults["thermal-z1-quiet-2"] == ["nack"]
    assert faults["lux-z1-quiet"] == ["stuck"]  # injected at 12:15, cleared only after 180 min
    assert kinds == ["power_cut"]

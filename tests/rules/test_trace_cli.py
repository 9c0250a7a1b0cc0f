"""Trace format, the bounded recorder, the topology from config, and the rules CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from edge_agent.actuation.recorder import TraceRecorder, read_trace
from edge_agent.actuation.topology import actuator_groups, topology_from_config
from edge_agent.cli import cli
from edge_agent.config import SiteConfig
from rules import DEFAULT_RULES
from rules.state import Measure, Preference, SeatStatus
from rules.trace import dump_state, load_state
from tests.clirunner import CliRunner
from tests.rules.floors import occupied_zone, seat, state, zone

ROOT = Path(__file__).resolve().parents[2]


def test_dump_and_load_round_trip_including_tags_when_asked() -> None:
    seats = {"S1": seat("S1", "z1", SeatStatus.OCCUPIED, lux=321.0, consented_tag="tag-a", tag_since=5.0),
             "S2": seat("S2", "z1")}
    original = state(42.0, zones={"z1": occupied_zone(forecast={30: 4.0}, co2=Measure(None)), "z2": zone("z2")},
                     seats=seats, levels={"L1": 0.25}, preferences={"tag-a": Preference(720, 0.5)},
                     overrides=frozenset({"L2"}), open_now=False, day_type="exam")
    doc = json.loads(json.dumps(dump_state(original, keep_tags=True)))
    assert load_state(doc) == original
    private = load_state(json.loads(json.dumps(dump_state(original))))
    assert private.seats["S1"].consented_tag is None and private.preferences == {}


def test_recorder_samples_rotates_and_bounds_the_files(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    rec = TraceRecorder(path, max_bytes=20_000, max_age_s=3600.0, min_interval_s=10.0)
    written = sum(rec.record(state(float(t))) for t in range(0, 20_000, 5))
    assert written == 2000  # one line per 10 s
    assert path.stat().st_size < 20_000 + 4000 and rec.rotated.exists()
    newest = list(read_trace(path))
    oldest_kept = min(s.t for s in [*newest, *read_trace(rec.rotated)])
    assert 19_995 - oldest_kept <= 3600.0
    assert [s.t for s in newest] == sorted(s.t for s in newest)


def test_topology_from_example_floor(floor_config: SiteConfig) -> None:
    topo = topology_from_config(floor_config)
    assert topo.zone_lights["z1-quiet"] and all(x.startswith("light-z1") for x in topo.zone_lights["z1-quiet"])
    assert topo.seat_desk["S001"] == "desk-S001"
    assert {z for z in topo.zone_hvac} >= {"z1-quiet", "z3-silent", "z5-quiet"}
    lit = sorted(s for seats in topo.light_seats.values() for s in seats)
    assert lit == sorted(s.id for s in floor_config.seats)
    groups = actuator_groups(topo)
    assert "desk-S001" in groups["S001"] and set(topo.zone_lights["z1-quiet"]) <= set(groups["z1-quiet"])


def test_rules_check_cli_ok_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["rules", "check", str(DEFAULT_RULES), "--config", str(ROOT / "examples/floor-3.toml")])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("\n") == 1 and "valid: 20 rules" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\nid = "vent-co2-high"\nwhen = { metric = "co2", above = "x" }\n'
                   'then = [{ do = "ventilation", level = 1 }]\n')
    res = runner.invoke(cli, ["rules", "check", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}: rule 'vent-co2-high': when.above: must be a number, e.g. 1000" in res.output
    zones = tmp_path / "zones.toml"
    zones.write_text('[[rules]]\nid = "a"\nzones = ["nowhere"]\nthen = [{ do = "light", level = 1 }]\n')
    res = runner.invoke(cli, ["rules", "check", str(zones), "--config", str(ROOT / "examples/floor-3.toml")])
    assert res.exit_code == 2 and "unknown zone 'nowhere'" in res.output


def test_rules_replay_cli_prints_changes_and_summary(tmp_path: Path) -> None:
    trace = tmp_path / "day.jsonl"
    rec = TraceRecorder(trace, min_interval_s=0.0)
    co2 = [600.0, 1100.0, 900.0, 700.0]
    for i, c in enumerate(co2):
        rec.record(replace(state(float(i * 60)), zones={"z1": occupied_zone(co2=Measure(c)), "z2": zone("z2")}))
    runner = CliRunner()
    res = runner.invoke(cli, ["rules", "replay", str(DEFAULT_RULES), "--trace", str(trace)])
    assert res.exit_code == 0, res.output
    vent_lines = [line for line in res.output.splitlines() if "ahu1" in line and "ventilation" in line]
    # Demand control: minimum airflow at 600 ppm; full above 1000 and held to 800; back to minimum at 700.
    assert [line.split()[2] for line in vent_lines] == ["0", "1", "0"]
    summary = runner.invoke(cli, ["rules", "replay", str(DEFAULT_RULES), "--trace", str(trace), "--summary"])
    assert summary.exit_code == 0
    row = next(line for line in summary.output.splitlines() if line.startswith("vent-co2-high"))
    assert row.split()[1] == "2"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"v": 1, "t": 0}\n')
    res = runner.invoke(cli, ["rules", "replay", str(DEFAULT_RULES), "--trace", str(broken)])
    assert res.exit_code == 2 and "broken.jsonl:1" in res.output


def test_limits_from_config_carry_ramps_and_pace_hvac(floor_config: SiteConfig) -> None:
    from edge_agent.actuation.topology import limits_from_config

    limits = limits_from_config(floor_config)
    assert limits["light-z1-quiet-1"].ramp_s == 1.0
    # A 0-10 V request at 0 is the AHU's minimum airflow, not a stop: no minimum on/off; a relay has them.
    assert limits["ahu1-vent"].min_interval_s == 60.0 and limits["ahu1-vent"].min_on_s == 0.0
    relay = floor_config.model_copy(update={"actuators": [
        a.model_copy(update={"output": "relay"}) if a.id == "ahu1-vent" else a for a in floor_config.actuators]})
    assert limits_from_config(relay)["ahu1-vent"].min_on_s == 120.0
    assert limits["desk-S001"].tolerance == 0.5  # heights in mm, indicator codes
    from edge_agent.actuation.topology import channel_limits_from_config
    from rules.state import IntentKind

    assert channel_limits_from_config(floor_config)["desk-S001", IntentKind.DESK_LAMP].tolerance == 0.01

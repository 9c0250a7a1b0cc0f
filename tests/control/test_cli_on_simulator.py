"""The technicians' CLI, as a subprocess, against the real daemon on the simulated floor.

One simulation serves the whole module (tests/control/simfloor.py): the real daemon with its
control socket, the simulated parts and the world, on a virtual clock paced at SPEED simulated
seconds per wall second. Each test takes the truth of the sensors it calibrates away from the
world, sets the truth and a calibration error on the simulated part, and checks what the CLI
reports against that truth. Every test uses its own sensors, so the order does not matter.
"""

from __future__ import annotations

import math
import os
import pwd
import shutil
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.errors import EdgeError
from edge_agent.control.client import ControlClient
from edge_agent.simulate import SIMULATED_NODE_POLL_S
from simulator.nodes_loadcell import AVERAGED, NOMINAL_COUNTS_PER_GRAM
from tests.control.simfloor import LiveFloor

pytestmark = pytest.mark.slow

SPEED = 15.0  # simulated seconds per wall second
BH1750_STEP_LX = 1 / 1.2  # one count in H-resolution mode at the default MTreg


@pytest.fixture(scope="module")
def floor() -> Iterator[LiveFloor]:
    state_dir = Path(tempfile.mkdtemp(prefix="ea-cli-sim-", dir="/tmp"))  # short: unix socket paths <= 107 bytes
    try:
        with LiveFloor(state_dir, speed=SPEED) as live:
            live.wait_for("every polled sensor to be healthy", lambda: _settled(live), wall_s=20.0, every_s=0.5)
            yield live
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def _settled(live: LiveFloor) -> bool:
    # Every sensor settles: a BLE tag once its first notification is in, a listener once it answers
    # (tags or none); only a tag on its own UART may stay silent without a tag to report.
    uart_tags = {s.id for s in live.sim.cfg.sensors
                 if s.kind == "dwm1001" and s.settings.get("role", "tag") == "tag" and s.serial_port}
    polled = [s.id for s in live.sim.cfg.sensors if s.id not in uart_tags]
    return all(live.on_loop(lambda: [live.gateway.pollers.healthy(sid) for sid in polled]))


def _healthy(live: LiveFloor, sensor: str) -> bool:
    """The daemon's own view, asked in-process: cheaper than a CLI call while waiting."""
    return bool(live.on_loop(live.gateway.pollers.healthy, sensor))


def _people_seen(live: LiveFloor, sensor: str) -> int:
    return int(live.on_loop(lambda: live.gateway.floor.thermal_status(sensor).people))


def _in_view(live: LiveFloor, sensor: str) -> int:
    """People and candidate warm spots the daemon sees under ``sensor``: a background capture needs none."""
    blobs = live.on_loop(lambda: live.gateway.floor.thermal_status(sensor).blobs)
    return sum(1 for b in blobs if b.person or b.reason == "candidate")


def _os_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _read(live: LiveFloor, sensor: str) -> dict[str, Any]:
    reading: dict[str, Any] = live.cli("sensors", "read", sensor).json()
    return reading


# -- 1. looking at the floor -------------------------------------------------------------------------


def test_status_sensors_and_actuators_describe_the_live_floor(floor: LiveFloor) -> None:
    cfg = floor.sim.cfg
    status = floor.cli("status").json()
    assert (status["site"], status["gateway"]) == (cfg.site.id, cfg.site.gateway)
    assert status["simulated"] is True
    assert status["uptime_s"] > 0
    # Counted from the floor's config, whatever it holds (the example floor: 176 sensors, 120 of them the
    # desks' load cells); only a tag may be silent, when nobody carries it.
    assert status["sensors_healthy"] + len(status["sensors_unhealthy"]) == len(cfg.sensors)
    assert set(status["sensors_unhealthy"]) <= {s.id for s in cfg.sensors if s.kind == "dwm1001"}

    infos = floor.cli("sensors", "list").json()
    assert sorted(s["id"] for s in infos) == sorted(s.id for s in cfg.sensors)
    assert Counter(s["kind"] for s in infos) == Counter(s.kind for s in cfg.sensors)
    health = [bool(s["healthy"]) for s in infos]
    assert health == sorted(health), "unhealthy sensors are listed first"
    by_id = {s["id"]: s for s in infos}
    for sensor in cfg.sensors:
        row = by_id[sensor.id]
        assert (row["kind"], row["zone"], row["bus"], row["address"]) == (
            sensor.kind, sensor.zone, sensor.bus, sensor.address)  # fmt: skip
    # Tags come and go with the patrons who carry them, also between these two calls; the rest agrees.
    tags = {s.id for s in cfg.sensors if s.kind == "dwm1001"}
    assert {s["id"] for s in infos if not s["healthy"]} - tags == set(status["sensors_unhealthy"]) - tags
    lux_row = by_id["lux-z2-group"]
    assert set(lux_row["last_values"]) == {"lux"} and lux_row["last_good_age_s"] is not None

    # A fresh read reports what the simulated part sees (the world's truth, within the part's noise).
    reading = _read(floor, "rh-z2-group")
    truth = floor.on_loop(lambda: (floor.device("rh-z2-group").temperature_c, floor.device("rh-z2-group").humidity_pct))
    assert reading["kind"] == "sht4x" and reading["units"] == {"temperature": "C", "humidity": "%"}
    assert reading["raw"]["temperature"] == pytest.approx(truth[0], abs=0.2)
    assert reading["raw"]["humidity"] == pytest.approx(truth[1], abs=1.0)
    assert reading["calibrated"] == reading["raw"]  # nothing calibrated on this sensor

    lux = _read(floor, "lux-z2-group")
    true_lux = floor.on_loop(lambda: floor.device("lux-z2-group").lux)
    assert lux["raw"]["lux"] == pytest.approx(true_lux, abs=5.0 + 0.02 * true_lux)

    actuators = floor.cli("actuators", "list").json()
    assert [a["id"] for a in actuators] == [a.id for a in cfg.actuators]
    assert {a["kind"] for a in actuators} <= {"light", "hvac", "desk"}
    lights = [a for a in actuators if a["kind"] == "light"]
    assert lights and [a for a in lights if not a["healthy"]] == [], "every light answers and holds its output"

    typo = floor.cli("sensors", "read", "lux-z1-quite")
    line = typo.error_line()
    assert "unknown sensor 'lux-z1-quite'" in line
    closest = line.split("closest:", 1)[1].split(", ")
    assert closest[0].strip() == "lux-z1-quiet"


# -- 2. light ----------------------------------------------------------------------------------------


def test_light_gain_calibration_reads_true_lux_and_undo_restores(floor: LiveFloor) -> None:
    sensor, true_lux, gain_error = "lux-z1-quiet", 400.0, 1.25
    part = floor.hold(sensor)
    floor.on_loop(part.set_lux, true_lux)
    floor.on_loop(part.set_error, "lux", gain=gain_error)
    noise = float(part.noise)

    before = _read(floor, sensor)
    assert before["raw"]["lux"] == pytest.approx(true_lux * gain_error, abs=BH1750_STEP_LX + 4 * noise * gain_error)

    result = floor.cli("calibrate", "light", sensor, "--reference", f"{true_lux:g}").json()
    assert (result["sensor"], result["quantity"], result["action"]) == (sensor, "lux", "gain")
    assert result["old"] == {"gain": 1.0, "offset": 0.0}
    assert result["new"]["gain"] == pytest.approx(1 / gain_error, rel=0.01)

    # Two independent noisy reads (the calibration's and this one), each within one count.
    tolerance = 1.0 + 4 * math.sqrt(2) * noise / gain_error
    after = _read(floor, sensor)
    assert after["calibrated"]["lux"] == pytest.approx(true_lux, abs=tolerance)
    assert after["raw"]["lux"] == pytest.approx(true_lux * gain_error, abs=BH1750_STEP_LX + 4 * noise * gain_error)

    undo = floor.cli("calibrate", "light", sensor, "--undo").json()
    assert undo["action"] == "undo" and undo["new"] == {"gain": 1.0, "offset": 0.0}
    restored = _read(floor, sensor)
    assert restored["calibrated"]["lux"] == restored["raw"]["lux"]
    assert restored["calibrated"]["lux"] == pytest.approx(before["raw"]["lux"], abs=2 * BH1750_STEP_LX + 6 * noise)

    history = floor.cli("calibrate", "history", sensor).json()
    assert [e["action"] for e in history] == ["gain", "undo"]
    assert {e["user"] for e in history} == {_os_user()}
    assert history[0]["undone"] is True and history[0]["reference"] == true_lux
    table = floor.cli("calibrate", "history", sensor, json_output=False)
    assert table.code == 0 and table.stdout.count(_os_user()) == 2


# -- 3. temperature ----------------------------------------------------------------------------------


def test_temperature_offset_calibration_removes_the_parts_error(floor: LiveFloor) -> None:
    sensor, true_c, rh, error_c = "rh-z1-quiet", 22.0, 45.0, 1.5
    part = floor.hold(sensor)
    floor.on_loop(part.set_environment, true_c, rh)
    floor.on_loop(part.set_error, "temperature", offset=error_c)

    before = _read(floor, sensor)
    assert before["calibrated"]["temperature"] == pytest.approx(true_c + error_c, abs=0.1)

    result = floor.cli("calibrate", "temperature", sensor, "--reference", f"{true_c:g}").json()
    assert (result["quantity"], result["action"]) == ("temperature", "offset")
    assert result["new"]["offset"] == pytest.approx(-error_c, abs=0.1)

    for _ in range(2):  # fresh reads, each with its own noise
        after = _read(floor, sensor)
        assert after["calibrated"]["temperature"] == pytest.approx(true_c, abs=0.1)
        assert after["raw"]["temperature"] == pytest.approx(true_c + error_c, abs=0.1)
        assert after["calibrated"]["humidity"] == after["raw"]["humidity"]  # only temperature was corrected

    history = floor.cli("calibrate", "history", sensor).json()
    assert [(e["quantity"], e["action"], e["user"]) for e in history] == [("temperature", "offset", _os_user())]


# -- 5. thermal background ---------------------------------------------------------------------------


def _people(live: LiveFloor, sensor: str) -> int:
    return int(_read(live, sensor)["thermal"]["people"])


def test_thermal_background_is_refused_with_a_person_and_matches_the_empty_frame(floor: LiveFloor) -> None:
    sensor = "thermal-z1-quiet-1"
    part = floor.hold(sensor)
    scene = floor.on_loop(lambda: part.scene.copy())
    # The empty room differs from what the daemon has learnt by a checkerboard of +-0.4 C: nowhere
    # near the 2 C a person needs, and no warm region bigger than a pixel.
    rows, cols = np.mgrid[0:8, 0:8]
    empty = scene + np.where((rows + cols) % 2 == 0, 0.4, -0.4)
    person = empty.copy()
    person[3:5, 3:5] += 6.0  # head and shoulders from 2.6 m: four warm pixels
    floor.on_loop(part.set_frame, person)
    floor.wait_for("the daemon to see the person", lambda: _people_seen(floor, sensor) >= 1)
    assert _people(floor, sensor) == 1

    refused = floor.cli("calibrate", "thermal", sensor, "--empty")
    assert "person" in refused.error_line()

    floor.on_loop(part.set_frame, empty)
    # Gone means what the capture checks: no person, and no warm spot that might still become one
    # (a person's residue is a candidate for a frame or two after the person count drops to 0).
    floor.wait_for("the person to be gone", lambda: _in_view(floor, sensor) == 0)
    learnt = floor.on_loop(lambda: floor.gateway.floor.thermal_status(sensor).background)
    assert learnt is not None and float(np.abs(learnt - empty).mean()) > 0.25  # adapting, far from there yet

    result = floor.cli("calibrate", "thermal", sensor, "--empty").json()
    assert (result["quantity"], result["action"]) == ("thermal", "thermal-background")
    assert result["new"]["mean_c"] == pytest.approx(float(empty.mean()), abs=0.1)
    background = floor.on_loop(lambda: floor.gateway.floor.thermal_status(sensor).background)
    assert background is not None
    noise = float(part.noise)
    assert float(np.abs(background - empty).max()) <= 0.125 + 4 * noise  # half a 0.25 C step plus the noise
    assert float(np.abs(background - empty).mean()) <= 0.2  # mean |noise| + |rounding| is about 0.14
    assert _people(floor, sensor) == 0


# -- 6. actuator test --------------------------------------------------------------------------------


def test_actuator_test_drives_the_dimmer_and_then_restores_it(floor: LiveFloor) -> None:
    actuator = next(a for a in floor.sim.cfg.actuators if a.id == "light-z3-silent-1")
    assert actuator.node is not None
    node = floor.sim.nodes[actuator.node]

    def level() -> float:
        return float(floor.on_loop(node.dimmer_level, actuator.channel))

    before = level()
    assert before != pytest.approx(0.7)
    started = floor.sim_time()
    # A minute of simulated time is 4 s of wall time: room for the next CLI call on a busy machine.
    result = floor.cli("actuators", "test", actuator.id, "--level", "0.7", "--for", "60s").json()
    assert (result["actuator"], result["level"], result["duration_s"]) == (actuator.id, 0.7, 60.0)
    assert result["previous"] == pytest.approx(before, abs=0.01)

    floor.wait_for("the dimmer to reach 0.7", lambda: abs(level() - 0.7) < 0.005, every_s=0.05)
    held = {a["id"]: a for a in floor.cli("actuators", "list").json()}[actuator.id]
    assert held["value"] == pytest.approx(0.7) and held["source"] == f"override:cli:{_os_user()}"

    floor.wait_for("the dimmer to go back", lambda: abs(level() - before) < 0.005, every_s=0.1)
    assert floor.sim_time() - started >= 60.0  # held for the whole test duration first


# -- UWB anchor survey -------------------------------------------------------------------------------


def test_anchor_survey_applies_at_once_and_undo_puts_it_back(floor: LiveFloor) -> None:
    anchor = floor.sim.cfg.anchors[1]

    def position() -> tuple[float, float, float]:
        return floor.on_loop(lambda: floor.gateway.floor._anchors[anchor.id])

    assert position() == (anchor.x, anchor.y, anchor.z)
    moved = (anchor.x + 0.2, anchor.y + 0.1, anchor.z - 0.1)
    result = floor.cli("calibrate", "uwb-anchor", anchor.id, "--x", f"{moved[0]:g}", "--y", f"{moved[1]:g}",
                       "--z", f"{moved[2]:g}").json()  # fmt: skip
    assert result["old"] == {"x": anchor.x, "y": anchor.y, "z": anchor.z}
    assert position() == pytest.approx(moved)
    undo = floor.cli("calibrate", "uwb-anchor", anchor.id, "--undo").json()
    assert undo["new"] == {"x": anchor.x, "y": anchor.y, "z": anchor.z}
    assert position() == (anchor.x, anchor.y, anchor.z)


# -- 8. desk load cells -------------------------------------------------------------------------------

def test_a_desk_load_step_is_seen_within_seconds_not_at_the_next_poll(floor: LiveFloor) -> None:
    """A laptop put on a desk: the node raises LOAD_STEP once the load has settled, the gateway hears
    of it at its next exchange with the node (a STATUS poll every 10 s on the simulated floor), reads
    the load cell at once and the seat's thermopile with it. The load cells' own poll is once a minute,
    and may by chance fall between the settling and the STATUS poll: the step is heard all the same."""
    seat = "S111"
    node, channel = floor.hold_desk(seat)
    floor.on_loop(node.set_desk_load, channel, 0.0)
    floor.wait_sim(5.0)
    desks = floor.gateway.desks
    steps = desks.load_steps
    loaded = floor.on_loop(floor.gateway.floor.desk_load, seat) or 0.0
    floor.on_loop(node.set_desk_load, channel, 2400.0)  # a laptop and books
    put_at = floor.sim_time()
    floor.wait_for("the gateway to hear the node's LOAD_STEP", lambda: desks.load_steps > steps,
                   wall_s=60.0, every_s=0.05)
    heard_after = floor.sim_time() - put_at
    assert desks.load_steps == steps + 1
    # Settled after 1.8 s (10 SPS); heard at the next STATUS poll or any other exchange.
    assert 1.8 <= heard_after <= 1.8 + SIMULATED_NODE_POLL_S + 2.0, heard_after
    # ... and read at once: the seat's load follows within a second or two of simulated time.
    floor.wait_for("the gateway's reading of the laptop", lambda: (
        (floor.on_loop(floor.gateway.floor.desk_load, seat) or 0.0) - loaded > 2000.0), wall_s=10.0, every_s=0.05)
    assert floor.sim_time() - put_at <= 1.8 + SIMULATED_NODE_POLL_S + 4.0
    read_t = floor.gateway.pollers.last[f"weight-{seat}"].t
    assert read_t - put_at >= 1.8  # the reading that saw it came after the step had settled
    floor.on_loop(node.set_desk_load, channel, 0.0)


WEIGHT_SEAT = "S110"  # z6-lounge: no other test here uses that zone's parts


def _grams(live: LiveFloor, sensor: str) -> tuple[float, float]:
    """A fresh read of a load cell: (raw grams at the board's nominal scale, calibrated grams)."""
    reading = _read(live, sensor)
    assert reading["kind"] == "hx711" and reading["units"] == {"mass": "g"}, reading
    return float(reading["raw"]["mass"]), float(reading["calibrated"]["mass"])


def _put_on_desk(live: LiveFloor, node: Any, channel: int, grams: float) -> None:
    live.on_loop(node.set_desk_load, channel, grams)
    live.wait_sim(1.5)  # past the node block's 1 s cache, so the next read converts the new load


def test_weight_calibration_tare_and_known_mass_then_undo(floor: LiveFloor) -> None:
    """docs/technician.md's round trip on a desk of the simulated floor: tare with the desk cleared, a known
    mass sets the scale, the next reading of another mass is right, the history names both, undo puts the
    tared-only scale back."""
    sensor = f"weight-{WEIGHT_SEAT}"
    node, channel = floor.hold_desk(WEIGHT_SEAT)
    platform = node.platforms[channel]
    scale_error = platform.counts_per_gram / NOMINAL_COUNTS_PER_GRAM  # this desk's cells against the board's figure
    assert abs(scale_error - 1.0) > 0.01, "the test needs a desk whose cells are off by more than 1 %"
    _put_on_desk(floor, node, channel, 0.0)
    # One report's noise in grams (the mean of the firmware's conversions) plus its rounding to 1 g;
    # drift and creep add about a gram over the few simulated minutes of the test.
    sigma_g = platform.noise_counts / math.sqrt(AVERAGED) / NOMINAL_COUNTS_PER_GRAM
    tol = 4 * math.sqrt(2) * sigma_g + 1.0 + 3.0

    empty_raw, empty_before = _grams(floor, sensor)
    assert empty_before == empty_raw and empty_raw > 10_000  # uncalibrated: the desktop's own dead load
    tare = floor.cli("calibrate", "weight", WEIGHT_SEAT, "--tare").json()
    assert (tare["sensor"], tare["quantity"], tare["action"], tare["reference"]) == (sensor, "mass", "offset", 0.0)
    assert tare["new"]["gain"] == 1.0 and tare["new"]["offset"] == pytest.approx(-empty_raw, abs=tol)
    assert _grams(floor, sensor)[1] == pytest.approx(0.0, abs=tol)

    known_g = 2000.0  # a calibration weight alone on the cleared desk
    _put_on_desk(floor, node, channel, known_g)
    raw, tared = _grams(floor, sensor)
    assert tared == pytest.approx(known_g * scale_error, abs=tol)  # the cells' scale error, still there
    scale = floor.cli("calibrate", "weight", f"desk-{WEIGHT_SEAT}", "--known-mass", f"{known_g:g}").json()
    assert (scale["action"], scale["reference"]) == ("scale", known_g)
    assert scale["new"]["gain"] == pytest.approx(1 / scale_error, rel=0.002)

    laptop_g = 1350.0
    _put_on_desk(floor, node, channel, laptop_g)
    raw, calibrated = _grams(floor, sensor)
    assert calibrated == pytest.approx(laptop_g, abs=tol)
    assert raw - empty_raw == pytest.approx(laptop_g * scale_error, abs=tol)  # the part is unchanged
    floor.wait_for("the daemon's own next reading of the laptop", lambda: abs(
        (floor.on_loop(floor.gateway.floor.desk_load, WEIGHT_SEAT) or 0.0) - laptop_g) <= tol)

    history = floor.cli("calibrate", "history", sensor).json()
    assert [(e["quantity"], e["action"], e["reference"], e["user"]) for e in history] == [
        ("mass", "offset", 0.0, _os_user()), ("mass", "scale", known_g, _os_user())]
    assert history[1]["old"] == tare["new"] and history[1]["new"] == scale["new"]

    undo = floor.cli("calibrate", "weight", sensor, "--undo").json()
    assert undo["action"] == "undo" and undo["new"] == tare["new"]
    assert _grams(floor, sensor)[1] == pytest.approx(laptop_g * scale_error, abs=tol)  # tared, not scaled
    after = floor.cli("calibrate", "history", sensor).json()
    assert [e["action"] for e in after] == ["offset", "scale", "undo"] and after[1]["undone"] is True

    # Refusals a technician meets: a known mass with nothing on the desk, an unknown desk, a bad mass.
    _put_on_desk(floor, node, channel, 0.0)
    empty = floor.cli("calibrate", "weight", WEIGHT_SEAT, "--known-mass", "500")
    assert "put the known mass" in empty.error_line()  # noise either side of the zero: either refusal
    typo = floor.cli("calibrate", "weight", "desk-S1100", "--tare")
    assert "unknown desk with a load cell 'desk-S1100'" in typo.error_line()
    negative = floor.cli("calibrate", "weight", WEIGHT_SEAT, "--known-mass", "-5")
    assert negative.code == 2 and "above 0 g" in negative.stderr
    assert len(floor.cli("calibrate", "history", sensor).json()) == 3  # nothing refused was recorded


def test_a_tags_position_is_shown_only_on_a_technicians_ask_and_the_look_is_audited(floor: LiveFloor) -> None:
    from edge_agent.trust.audit import AUDIT_DB, AuditLog

    sensor = next(s for s in floor.sim.cfg.sensors if s.id == "uwb-ble")
    assert sensor.ble_address is not None
    floor.on_loop(floor.device("uwb-ble").set_position, 12.5, 4.25, 1.2)
    name = floor.on_loop(floor.gateway.tags.name_of, sensor.ble_address)  # type: ignore[union-attr]

    def tracked() -> tuple[float, float, float] | None:
        return floor.on_loop(lambda: floor.gateway.floor.tag_fix(name, floor.sim.daemon.clock.monotonic()))

    floor.wait_for("the tag's track on the floor", tracked, wall_s=30.0)  # the simulation's tags report each 60 s
    plain = _read(floor, "uwb-ble")
    assert not {"x", "y", "z"} & (set(plain["raw"]) | set(plain["calibrated"]) | set(plain["units"])), plain
    listed = {s["id"]: s for s in floor.cli("sensors", "list").json()}
    assert not {"x", "y"} & set(listed["uwb-ble"]["last_values"])
    shown = floor.cli("sensors", "read", "uwb-ble", "--show-position").json()
    assert shown["raw"]["x"] == pytest.approx(12.5, abs=0.3) and shown["raw"]["y"] == pytest.approx(4.25, abs=0.3)
    assert shown["units"]["x"] == "m" and 0.0 <= shown["position_age_s"] <= 300.0
    log = AuditLog(floor.state_dir / AUDIT_DB, readonly=True)
    try:
        looks = [r for r in log.records() if r["data"].get("op") == "read_sensor"]
    finally:
        log.close()
    assert len(looks) == 1, looks  # the plain read is not recorded; the look at a position is
    assert looks[0]["actor"] == _os_user() and looks[0]["data"]["args"] == {"sensor": "uwb-ble", "show_position": True}


# -- 7. failures -------------------------------------------------------------------------------------


def test_failures_exit_non_zero_with_one_clear_line(floor: LiveFloor) -> None:
    out_of_range = floor.cli("calibrate", "temperature", "rh-z3-silent", "--reference", "85")
    assert "outside the plausible temperature range" in out_of_range.error_line()
    frc_range = floor.cli("calibrate", "co2", "co2-z3-silent", "--reference", "3000")
    assert "400..2000 ppm" in frc_range.error_line()
    bad_gain = floor.cli("calibrate", "light", "lux-z3-silent", "--reference", "90000")  # the daemon refuses
    assert "outside 0.2..5" in bad_gain.error_line()

    # A part that stops answering: an SCD41, which must also be restarted properly once it answers again.
    sensor = "co2-z4-open"
    part = floor.device(sensor)
    floor.on_loop(part.inject, "nack")
    try:
        floor.wait_for(f"{sensor} to turn unhealthy", lambda: not _healthy(floor, sensor))
        assert sensor in floor.cli("status").json()["sensors_unhealthy"]
        row = {s["id"]: s for s in floor.cli("sensors", "list").json()}[sensor]
        assert row["healthy"] is False and "Nack" in row["reason"]
        refused = floor.cli("calibrate", "co2", sensor, "--reference", "420")
        line = refused.error_line()
        assert f"{sensor} is unhealthy" in line and "Nack" in line
        # The daemon checks it too, for clients that skip the CLI's own check.
        with ControlClient(floor.socket) as client, pytest.raises(EdgeError, match="unhealthy"):
            client.request("calibrate", sensor=sensor, quantity="co2", reference=420.0)
        assert floor.cli("calibrate", "history", sensor).json() == []
    finally:
        floor.on_loop(part.clear_faults)
        cleared_at = floor.sim_time()
    floor.wait_for(f"{sensor} to recover", lambda: _healthy(floor, sensor))
    # Periodic measurement was started again after the fault went: it has run for no longer than the
    # simulated time since. (A fixed bound does not hold: the floor runs at SPEED times the wall clock,
    # and a CLI call on a busy machine takes seconds of wall time.)
    measuring_for_s = _read(floor, sensor)["measuring_for_s"]
    assert 0.0 <= measuring_for_s <= floor.sim_time() - cleared_at


# -- 4. CO2 (last: it needs three simulated minutes of periodic measurement, which earlier tests provide) --


def _co2_samples(live: LiveFloor, sensor: str, n: int) -> list[float]:
    """The daemon's next ``n`` CO2 measurements (one every 5 s), as its poller stored them."""

    def after(t: float) -> Any:
        sample = live.gateway.pollers.last[sensor]
        return sample if sample.t > t else None

    values: list[float] = []
    last = live.on_loop(lambda: live.gateway.pollers.last[sensor].t)
    for _ in range(n):
        sample = live.wait_for("a new CO2 measurement", partial(live.on_loop, after, last))
        last = sample.t
        values.append(sample.values["co2"])
    return values


def test_co2_forced_recalibration_needs_three_minutes_then_matches_the_reference(floor: LiveFloor) -> None:
    sensor, true_ppm, error_ppm = "co2-z2-group", 600.0, 150.0
    part = floor.hold(sensor)
    floor.on_loop(part.set_environment, true_ppm, 22.0, 40.0)
    floor.on_loop(part.set_error, "co2", offset=error_ppm)
    noise = float(part.noise)

    _co2_samples(floor, sensor, 2)  # the part now measures the new air
    driver = floor.gateway.hardware.sensors[sensor].driver
    floor.wait_for("3 minutes of periodic measurement",
                   lambda: floor.on_loop(driver.seconds_in_periodic) >= 180.0, wall_s=30.0)
    drifted = _read(floor, sensor)
    assert drifted["measuring_for_s"] >= 180.0
    assert drifted["calibrated"]["co2"] == pytest.approx(true_ppm + error_ppm, abs=4 * noise)

    result = floor.cli("calibrate", "co2", sensor, "--reference", f"{true_ppm:g}").json()
    assert (result["quantity"], result["action"], result["reference"]) == ("co2", "frc", true_ppm)
    assert result["new"]["correction_ppm"] == pytest.approx(-error_ppm, abs=4 * noise)

    # The FRC restarted periodic measurement: another one now is refused, by the CLI and by the daemon.
    again = floor.cli("calibrate", "co2", sensor, "--reference", f"{true_ppm:g}")
    assert "must measure periodically for 180 s" in again.error_line()
    with ControlClient(floor.socket) as client, pytest.raises(EdgeError, match="180 s"):
        client.request("calibrate", sensor=sensor, quantity="co2", reference=true_ppm)

    # Each measurement and the FRC's own sample carry the part's noise: 4 sigma of their difference.
    corrected = _co2_samples(floor, sensor, 3)
    assert statistics.fmean(corrected) == pytest.approx(true_ppm, abs=4 * noise * math.sqrt(1 + 1 / 3))
    assert all(abs(v - true_ppm) <= 4 * noise * math.sqrt(2) for v in corrected)
    shown = _read(floor, sensor)
    assert shown["calibrated"]["co2"] == pytest.approx(true_ppm, abs=4 * noise * math.sqrt(2))
    assert shown["calibrated"]["co2"] == shown["raw"]["co2"]  # the correction lives in the part

    undo = floor.cli("calibrate", "co2", sensor, "--undo")
    assert "held by the device" in undo.error_line()
    history = floor.cli("calibrate", "history", sensor).json()
    assert [(e["action"], e["user"]) for e in history] == [("frc", _os_user())]

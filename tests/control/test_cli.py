"""Technicians' commands against the real ControlServer serving a recording target."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import Result

from edge_agent.cli import cli
from edge_agent.cli.technician import parse_duration, sensors_list, sensors_read, sensors_watch
from edge_agent.control.wire import state_dir_socket
from tests.clirunner import CliRunner
from tests.conftest import EXAMPLE_FLOOR
from tests.control.conftest import FakeTarget, ServedTarget

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_env_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_AGENT_SOCKET", raising=False)
    monkeypatch.delenv("EDGE_AGENT_CONFIG", raising=False)
    monkeypatch.delenv("SUDO_USER", raising=False)


def run(served: ServedTarget, *args: str, command: click.Command = cli, input: str | None = None) -> Result:
    return CliRunner().invoke(command, [*args, "--socket", str(served.path)], input=input)


def error_line(result: Result) -> str:
    """The failure text: exactly one non-empty line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_status_table_and_json(served: ServedTarget) -> None:
    table = run(served, "status")
    assert table.exit_code == 0, table.output
    assert "central-library / gw-floor-3" in table.stdout and "up 1h02m" in table.stdout
    assert "17 waiting" in table.stdout and "NOT synchronised" in table.stdout
    assert "4 healthy, 1 unhealthy: lux-z2-group" in table.stdout
    assert "light-z1 -> 0.45" in table.stdout
    doc = json.loads(run(served, "status", "--json").stdout)
    assert doc["outbox"]["depth"] == 17 and doc["sensors_unhealthy"] == ["lux-z2-group"]


def test_sensors_list_puts_unhealthy_first(served: ServedTarget) -> None:
    out = run(served, command=sensors_list)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "KIND", "ZONE"]
    assert lines[1].startswith("lux-z2-group") and "NO" in lines[1] and "NackError" in lines[1]
    assert len(lines) == 6
    doc = json.loads(run(served, "--json", command=sensors_list).stdout)
    assert {s["id"] for s in doc} >= {"rh-z1-quiet", "co2-z1-quiet"}


def test_sensors_read_shows_raw_and_calibrated(served: ServedTarget, target: FakeTarget) -> None:
    target.store.calibrate_offset("rh-z1-quiet", "temperature", 20.5, 21.0, "alice")
    out = run(served, "rh-z1-quiet", command=sensors_read)
    assert out.exit_code == 0, out.output
    temp = next(line for line in out.stdout.splitlines() if "temperature" in line)
    assert "20.5" in temp and "raw 21" in temp
    doc = json.loads(run(served, "rh-z1-quiet", "--json", command=sensors_read).stdout)
    assert doc["calibrated"]["temperature"] == pytest.approx(20.5) and doc["raw"]["temperature"] == 21.0


def test_unknown_sensor_lists_closest_ids(served: ServedTarget) -> None:
    out = run(served, "lux-z1-quite", command=sensors_read)
    assert out.exit_code == 1
    assert "unknown sensor 'lux-z1-quite'; closest: lux-z1-quiet" in error_line(out)
    cal = run(served, "calibrate", "temperature", "rh-z1-quite", "--reference", "21")
    assert cal.exit_code == 1 and "closest: rh-z1-quiet" in error_line(cal)


def test_watch_plain_lines_end_after_count(served: ServedTarget, target: FakeTarget) -> None:
    start = time.monotonic()
    out = run(served, "co2-z1-quiet", "--count", "3", "--interval", "0.05", command=sensors_watch)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and all("co2 455" in line for line in lines)
    assert "\x1b[" not in out.stdout
    assert [c for c in target.calls if c[0] == "read_sensor"] == [("read_sensor", ("co2-z1-quiet",))] * 3
    assert time.monotonic() - start < 3
    js = run(served, "co2-z1-quiet", "--count", "2", "--interval", "0.05", "--json", command=sensors_watch)
    assert [json.loads(line)["raw"]["co2"] for line in js.stdout.splitlines()] == [455.0, 455.0]


def test_watch_updates_in_place_on_a_tty(served: ServedTarget) -> None:
    script = ("import sys; from edge_agent.cli.technician import sensors_watch; "
              "sensors_watch(sys.argv[1:], standalone_mode=True)")  # fmt: skip
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "lux-z1-quiet", "--count", "3", "--interval", "0.05", "--socket",
         str(served.path)], stdout=slave, stderr=slave, cwd=ROOT,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        proc.wait(10)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0, text
    assert text.count("\x1b[3F") == 2  # moved back over the 3-line block twice
    assert "#3" in text and "lux" in text


def test_calibrate_light_single_then_two_point_and_history(served: ServedTarget, target: FakeTarget) -> None:
    out = run(served, "calibrate", "light", "lux-z1-quiet", "--reference", "520")
    assert out.exit_code == 0, out.output
    assert "gain against 520" in out.stdout and "gain 1.3" in out.stdout
    target.sensors_by_id["lux-z1-quiet"].raw["lux"] = 100.0  # lights dimmed for the second point
    second = run(served, "calibrate", "light", "lux-z1-quiet", "--reference", "140", "--json")
    doc = json.loads(second.stdout)
    assert doc["action"] == "two-point"
    gain = (520 - 140) / (400 - 100)
    assert doc["new"]["gain"] == pytest.approx(gain) and doc["new"]["offset"] == pytest.approx(140 - 100 * gain)
    target.sensors_by_id["lux-z1-quiet"].script = [100.0, 500.0]
    both = run(served, "calibrate", "light", "lux-z1-quiet", "--reference", "130", "--reference", "600",
               input="\n\n")  # fmt: skip
    assert both.exit_code == 0, both.output
    fresh_flags = [c[1][4] for c in target.calls if c[0] == "calibrate"]
    assert fresh_flags == [False, False, True, False]  # the pair starts a new session
    hist = run(served, "calibrate", "history", "lux-z1-quiet")
    assert hist.exit_code == 0
    rows = hist.stdout.splitlines()[1:]
    assert [r.split()[r.split().index("lux") + 1] for r in rows] == ["gain", "two-point", "gain", "two-point"]
    assert target.store.coefficients("lux-z1-quiet")["lux"].gain == pytest.approx(470 / 400)
    undo = run(served, "calibrate", "light", "lux-z1-quiet", "--undo", "--json")
    assert json.loads(undo.stdout)["action"] == "undo"
    assert json.loads(run(served, "calibrate", "history", "lux-z1-quiet", "--json").stdout)[-2]["undone"] is True


def test_out_of_range_reference_is_refused_without_asking_the_daemon(served: ServedTarget, target: FakeTarget) -> None:
    for args, reason in [
        (["temperature", "rh-z1-quiet", "--reference", "85"], "-20..60"),
        (["humidity", "rh-z1-quiet", "--reference", "120"], "0..100"),
        (["light", "lux-z1-quiet", "--reference", "-3"], "0..100000"),
        (["co2", "co2-z1-quiet", "--reference", "2500"], "400..2000 ppm"),
    ]:
        out = run(served, "calibrate", *args)
        assert out.exit_code == 1, out.output
        assert reason in error_line(out)
    assert not [c for c in target.calls if c[0] == "calibrate"]


def test_unhealthy_sensor_is_not_calibrated(served: ServedTarget, target: FakeTarget) -> None:
    out = run(served, "calibrate", "light", "lux-z2-group", "--reference", "300")
    assert out.exit_code == 1
    assert "lux-z2-group is unhealthy (NackError: no acknowledge)" in error_line(out)
    assert not [c for c in target.calls if c[0] == "calibrate"]


def test_co2_frc_needs_three_minutes_of_measurement(served: ServedTarget, target: FakeTarget) -> None:
    target.sensors_by_id["co2-z1-quiet"].measuring_for_s = 60.0
    early = run(served, "calibrate", "co2", "co2-z1-quiet", "--reference", "420")
    assert early.exit_code == 1 and "180 s" in error_line(early) and "running for 60 s" in error_line(early)
    target.sensors_by_id["co2-z1-quiet"].measuring_for_s = 400.0
    done = run(served, "calibrate", "co2", "co2-z1-quiet", "--reference", "420", "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["action"] == "frc" and doc["new"] == {"frc_correction_ppm": -35.0}
    undo = run(served, "calibrate", "co2", "co2-z1-quiet", "--undo")
    assert undo.exit_code == 1 and "held by the device" in error_line(undo)


def test_thermal_background_refused_while_people_present(served: ServedTarget, target: FakeTarget) -> None:
    target.sensors_by_id["thermal-z1-quiet-1"].people = 2
    busy = run(served, "calibrate", "thermal", "thermal-z1-quiet-1", "--empty")
    assert busy.exit_code == 1 and "sees 2 people" in error_line(busy)
    target.sensors_by_id["thermal-z1-quiet-1"].people = 0
    ok = run(served, "calibrate", "thermal", "thermal-z1-quiet-1", "--empty")
    assert ok.exit_code == 0 and "thermal-background" in ok.stdout


def test_uwb_anchor_survey(served: ServedTarget, target: FakeTarget) -> None:
    out = run(served, "calibrate", "uwb-anchor", "anchor-2", "--x", "10.2", "--y", "0.1", "--z", "2.4")
    assert out.exit_code == 0, out.output
    assert target.anchors["anchor-2"] == (10.2, 0.1, 2.4)
    assert "x 10 y 0 z 2.5  ->  x 10.2 y 0.1 z 2.4" in out.stdout
    missing = run(served, "calibrate", "uwb-anchor", "anchor-2", "--x", "1")
    assert missing.exit_code == 2 and "--x, --y and --z" in missing.stderr


def test_actuators_list_and_timed_test(served: ServedTarget, target: FakeTarget) -> None:
    listing = run(served, "actuators", "list")
    assert listing.exit_code == 0 and "light-z1" in listing.stdout and "daylight" in listing.stdout
    out = run(served, "actuators", "test", "light-z1", "--level", "0.8", "--for", "2m")
    assert out.exit_code == 0, out.output
    assert ("actuator_test", ("light-z1", 0.8, 120.0, target.calls[-1][1][3])) == target.calls[-1]
    assert "holding 0.8 for 2m00s; restores to 0.45" in out.stdout
    refused = run(served, "actuators", "test", "light-z1", "--level", "3")
    assert refused.exit_code == 1 and "outside 0..1" in error_line(refused)
    bad = run(served, "actuators", "test", "light-z1", "--level", "0.5", "--for", "ten")
    assert bad.exit_code == 2 and "10s, 2m" in bad.stderr


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("10s", "2m", "1m30s", "45", "1h")] == [10, 120, 90, 45, 3600]
    for bad in ("", "5x", "m", "1s2"):
        with pytest.raises(click.BadParameter):
            parse_duration(bad)


def test_every_command_without_daemon_says_so(sock_dir: Path) -> None:
    gone = str(sock_dir / "control.sock")
    for args in (["status"], ["actuators", "list"], ["calibrate", "history", "x"],
                 ["calibrate", "temperature", "rh-1", "--reference", "21"]):  # fmt: skip
        out = CliRunner().invoke(cli, [*args, "--socket", gone])
        assert out.exit_code == 1, (args, out.output)
        assert "daemon not running" in error_line(out) and "systemctl start edge-agent" in error_line(out)


@pytest.fixture
def site_config(tmp_path: Path) -> Path:
    text = EXAMPLE_FLOOR.read_text().replace('state_dir = "/var/lib/edge-agent"', f'state_dir = "{tmp_path}/state"')
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_without_daemon_list_shows_config_and_read_tries_the_bus(site_config: Path) -> None:
    env = {"EDGE_AGENT_SOCKET": str(site_config.parent / "none.sock")}
    listing = CliRunner(env=env).invoke(sensors_list, ["--config", str(site_config)])
    assert listing.exit_code == 0, listing.output
    assert "daemon not running: showing the configuration" in listing.stderr
    assert "lux-z1-quiet" in listing.stdout
    read = CliRunner(env=env).invoke(sensors_read, ["lux-z1-quiet", "--config", str(site_config)])
    assert read.exit_code == 1
    line = error_line(read)
    if Path("/dev/i2c-1").exists():
        pytest.fail("this test assumes a machine without /dev/i2c-1")
    assert "daemon not running, and /dev/i2c-1 cannot be opened directly" in line
    remote = CliRunner(env=env).invoke(sensors_read, ["thermal-z1-quiet-1", "--config", str(site_config)])
    assert remote.exit_code == 1 and "not on the gateway's own ports" in error_line(remote)
    typo = CliRunner(env=env).invoke(sensors_read, ["lux-z1-quite", "--config", str(site_config)])
    assert typo.exit_code == 1 and "closest: lux-z1-quiet" in error_line(typo)


def test_socket_found_in_state_dir_of_config(site_config: Path, target: FakeTarget) -> None:
    # Where a daemon with that state dir serves: <state>/control.sock, or its short stand-in when the
    # temporary directory is too deep for a unix socket path.
    path = state_dir_socket(site_config.parent / "state")
    with ServedTarget(path, target):
        out = CliRunner().invoke(cli, ["status", "--config", str(site_config)])
    assert out.exit_code == 0, out.output
    assert "gw-floor-3" in out.stdout


def test_commands_that_talk_to_the_daemon_leave_the_server_and_config_unimported() -> None:
    """A technician's command starts a process each time: it imports the client, not what the daemon runs.

    The request models (pydantic) and the site configuration cost each call a few tenths of a second
    of CPU; a command that only asks the daemon needs neither (the config only when there is none).
    """
    script = (
        "import json, sys\n"
        "from edge_agent.cli import COMMANDS, cli\n"
        "import click\n"
        "ctx = click.Context(cli)\n"
        "for name in ('status', 'actuators', 'sensors', 'seats'):\n"
        "    cli.get_command(ctx, name)\n"
        "heavy = ('pydantic', 'numpy', 'edge_agent.config', 'edge_agent.control.server',\n"
        "         'edge_agent.control.protocol')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout) == []

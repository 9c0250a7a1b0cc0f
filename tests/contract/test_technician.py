"""docs/technician.md, run as written against the real daemon: the CLI finds the daemon from the config.

The calibration paths themselves are exercised against the real daemon in
tests/control/test_cli_on_simulator.py; here are the ways in (``--config``, ``--socket``,
``EDGE_AGENT_SOCKET``), the readable tables, ``sensors watch``, ``doctor`` with a daemon, and what
the CLI says once the daemon is gone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.control.wire import state_dir_socket
from tests.contract.outside import OutsideDaemon, serving

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsideDaemon]:
    yield from serving(tmp_path_factory, "contract-cli")


def test_status_table_as_documented(gw: OutsideDaemon) -> None:
    out = gw.cli("status")
    assert out.code == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names[:6] == ["gateway", "broker", "outbox", "clock", "sensors", "last"]
    assert re.search(r"central-library / gw-floor-3 \(pid \d+, up ", out.stdout)
    assert re.search(r"broker\s+connected 127\.0\.0\.1:\d+ since (\d{4}-\d\d-\d\d )?\d\d:\d\d", out.stdout), out.stdout


def test_every_way_to_name_the_socket(gw: OutsideDaemon) -> None:
    sock = state_dir_socket(gw.state_dir)
    by_config = gw.cli("status", json_output=True).json()
    by_socket = gw.cli("status", "--socket", str(sock), json_output=True, config=False).json()
    by_env = gw.cli("status", json_output=True, config=False, env={"EDGE_AGENT_SOCKET": str(sock)}).json()
    assert by_config["pid"] == by_socket["pid"] == by_env["pid"]


def test_sensors_list_read_and_watch(gw: OutsideDaemon) -> None:
    listing = gw.cli("sensors", "list")
    header = listing.stdout.splitlines()[0].split()
    assert header == ["ID", "KIND", "ZONE", "BUS", "ADDR", "HEALTHY", "LAST", "VALUES", "AGE", "REASON"]
    read = gw.cli("sensors", "read", "rh-z1-quiet")
    assert read.code == 0 and read.stdout.startswith("rh-z1-quiet (sht31)"), read.stdout
    assert re.search(r"temperature\s+[\d.]+ C\s+raw [\d.]+", read.stdout), read.stdout
    typo = gw.cli("sensors", "read", "lux-z1-quite").error_line()
    assert typo.startswith("Error: unknown sensor 'lux-z1-quite'; closest: lux-z1-quiet")
    watch = gw.cli("sensors", "watch", "lux-z1-quiet", "--interval", "1", "--count", "3")
    assert watch.code == 0, watch.stderr
    lines = [line for line in watch.stdout.splitlines() if line.strip()]
    assert len(lines) == 3 and all("lux" in line for line in lines), watch.stdout


def test_doctor_asks_the_running_daemon(gw: OutsideDaemon) -> None:
    out = gw.cli("doctor")
    lines = out.stdout.splitlines()
    daemon_line = next(line for line in lines if line.split()[1:2] == ["daemon"])
    assert daemon_line.startswith("OK") and "answering on its control socket" in daemon_line
    broker = next(line for line in lines if line.split()[1:2] == ["broker"])
    assert "FAIL" not in broker or "127.0.0.1:1883" in broker  # the config's broker, not the test's
    assert all(line[:4] in ("OK  ", "WARN", "FAIL") for line in lines), out.stdout


def test_without_the_daemon_the_cli_says_so(gw: OutsideDaemon, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text(gw.good_config.replace(gw.state_dir.as_posix(), (tmp_path / "nothing-here").as_posix()))
    for args in (("status",), ("actuators", "list"), ("calibrate", "history", "lux-z1-quiet")):
        line = gw.cli(*args, "--config", str(other), config=False).error_line()
        assert "daemon not running" in line and "systemctl start edge-agent" in line, line
    listing = gw.cli("sensors", "list", "--config", str(other), config=False)
    assert listing.code == 0 and "lux-z1-quiet" in listing.stdout  # the configuration, health unknown
    assert os.environ.get("EDGE_AGENT_SOCKET") is None

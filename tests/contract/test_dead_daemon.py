"""A dead daemon is never a silent success, and paths that cannot work are refused in one line.

``edge-agent run --simulate`` is started as a process, as a developer or CI starts it: with a
state directory that cannot be used, with a runtime directory too deep for a unix socket, with a
daemon that dies as it starts, and with one that dies at a restart in the middle of the day (a
power cut, after which its state directory is gone). The deep-state-directory case shows the
control socket moving to a short path the CLI finds from the config.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.errors import EdgeError
from edge_agent.control.client import ControlClient
from edge_agent.control.wire import state_dir_socket
from tests.contract.outside import ROOT, SCENARIO, TOPIC_ROOT, OutsideDaemon
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.slow

SHORT = SCENARIO.replace('end = "21:00"', 'end = "07:45"')


def scenario(tmp: Path, events: str = "") -> Path:
    path = tmp / "scenario.toml"
    path.write_text(SHORT.format(floor=(ROOT / "examples" / "floor-3.toml").as_posix(), events=events))
    return path


def simulate(tmp: Path, state_dir: Path, *extra: str, env: dict[str, str] | None = None,
             events: str = "", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "edge_agent.cli", "run", "--simulate", str(scenario(tmp, events)),
           "--state-dir", str(state_dir), "--report", str(tmp / "report.json"), "--log-level", "warning", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def test_a_state_dir_that_cannot_be_used_is_refused_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = simulate(tmp_path, blocker / "state", "--as-fast-as-possible", "--broker", "127.0.0.1:9")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: state directory {blocker / 'state'} is not usable"), lines[0]
    assert not (tmp_path / "report.json").exists()
    gateway = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config",
                              str(ROOT / "examples" / "floor-3.toml"), "--state-dir", str(blocker / "state")],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert gateway.returncode == 2
    lines = gateway.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not usable" in lines[0], gateway.stderr


def test_a_socket_path_that_cannot_fit_is_refused_in_one_line(tmp_path: Path) -> None:
    deep = tmp_path / ("r" * 60) / ("t" * 60)
    done = simulate(tmp_path, tmp_path / "state", "--as-fast-as-possible", "--broker", "127.0.0.1:9",
                    env={"RUNTIME_DIRECTORY": str(deep)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"control socket path {deep / 'control.sock'}" in lines[0] and "at most 107" in lines[0], lines[0]


def test_a_daemon_that_dies_at_start_fails_the_run_with_its_traceback(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    sock = state_dir_socket(state)
    sock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock.write_text("a regular file where the socket must go")
    done = simulate(tmp_path, state, "--as-fast-as-possible", "--broker", "127.0.0.1:9")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback (most recent call last)" in done.stderr
    assert "a non-socket file is in the way" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: the daemon died at 07:30")
    assert not (tmp_path / "report.json").exists()


POWER_CUT = """
[[events]]
at = "07:32"
kind = "power_cut"
duration_min = 1
"""


def _running(sock: Path) -> bool:
    """The first life has started: it answers on its socket, and its clock has moved since its start.

    The socket file alone is not enough: it is bound in the middle of the start, and the simulation
    seeds the patrons' consents in the state directory right after it. Both take no simulated time,
    so a daemon whose clock has moved on is past them.
    """
    try:
        with ControlClient(sock, timeout_s=10.0) as client:
            return float(client.request("status")["uptime_s"]) > 0.0
    except EdgeError:
        return False


def test_a_daemon_that_dies_mid_day_fails_the_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Mosquitto(tmp_path / "broker") as broker:
        cmd = [sys.executable, "-m", "edge_agent.cli", "run", "--simulate", str(scenario(tmp_path, POWER_CUT)),
               "--state-dir", str(state), "--report", str(tmp_path / "report.json"), "--speed", "10",
               "--broker", f"127.0.0.1:{broker.port}", "--log-level", "warning"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            sock = state_dir_socket(state)
            deadline = 60.0
            start = time.monotonic()
            while not _running(sock):
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                assert time.monotonic() - start < deadline, "the daemon did not start"
                time.sleep(0.1)
            # While the first life runs, its state directory goes away (a failed SD card, say): the
            # restart after the power cut cannot work.
            state.rename(tmp_path / "state-gone")
            state.write_text("not a directory any more")
            _, stderr = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 1, stderr[-3000:]
    assert "Traceback (most recent call last)" in stderr and "is not usable" in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: the daemon died at 07:3"), last
    assert not (tmp_path / "report.json").exists()


def test_a_deep_state_dir_gets_a_short_socket_the_cli_finds(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 50) / ("e" * 50)
    with OutsideDaemon(deep) as gw:
        assert len(os.fsencode(gw.state_dir / "control.sock")) > 107
        assert not (gw.state_dir / "control.sock").exists()
        status = gw.cli("status", json_output=True).json()
        assert status["gateway"] == "gw-floor-3"
        assert gw.command("republish_state", {})["ok"] is True
        assert gw.observer.seen(lambda m: m.topic == f"{TOPIC_ROOT}/status")
        gw.assert_healthy_session()

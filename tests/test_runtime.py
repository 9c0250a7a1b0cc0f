"""The daemon's runtime: supervision, systemd notify, signals and config reload, on real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.notify import SystemdNotifier
from edge_agent.supervisor import Supervisor
from tests.conftest import EXAMPLE_FLOOR


async def test_crashing_task_is_restarted_and_daemon_lives_on() -> None:
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("sensor driver bug")
        done.set()

    sup = Supervisor(initial_backoff_s=0.01, max_backoff_s=0.05)
    sup.start("flaky", flaky)
    await asyncio.wait_for(done.wait(), 5)
    assert len(runs) == 3
    assert sup.records["flaky"].restarts == 2
    assert "sensor driver bug" in sup.records["flaky"].last_error
    await sup.stop()


async def test_crash_loop_becomes_a_reported_fault() -> None:
    faults: list[tuple[str, int]] = []

    async def always() -> None:
        raise ValueError("bad frame")

    sup = Supervisor(initial_backoff_s=0.001, max_backoff_s=0.002, crash_loop_count=4,
                     on_fault=lambda name, exc, n: faults.append((name, n)))
    sup.start("poller", always)
    for _ in range(200):
        if faults:
            break
        await asyncio.sleep(0.01)
    await sup.stop()
    assert faults == [("poller", 4)]
    assert sup.records["poller"].faulted


def _notify_listener(tmp_path: Path) -> tuple[socket.socket, str]:
    """systemd's notify socket, in the abstract namespace as systemd may give it: no path, so no
    limit from how deep the test's temporary directory is."""
    name = f"@edge-agent-test-notify-{os.getpid()}-{abs(hash(str(tmp_path))) % 10**9}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(20)
    return sock, name


def test_notifier_sends_datagrams(tmp_path: Path) -> None:
    sock, path = _notify_listener(tmp_path)
    try:
        n = SystemdNotifier(path)
        assert n.ready("ok")
        assert sock.recv(256) == b"READY=1\nSTATUS=ok"
        assert n.watchdog()
        assert sock.recv(256) == b"WATCHDOG=1"
        n.close()
    finally:
        sock.close()
    assert not SystemdNotifier("").enabled


def _config_copy(tmp_path: Path) -> Path:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(EXAMPLE_FLOOR.read_text())
    return cfg


def _start_daemon(tmp_path: Path, cfg: Path, env_extra: dict[str, str]) -> subprocess.Popen[str]:
    env = dict(os.environ, **env_extra)
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg), "--state-dir", str(tmp_path / "state"),
         "--broker", "127.0.0.1:9"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _wait_ready(sock: socket.socket) -> list[bytes]:
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = sock.recv(4096)
        seen.append(msg)
        if msg.startswith(b"READY=1"):
            return seen
    raise AssertionError(f"no READY=1, got {seen}")


@pytest.mark.slow
def test_ready_watchdog_sigterm_within_5s(tmp_path: Path) -> None:
    sock, path = _notify_listener(tmp_path)
    proc = _start_daemon(tmp_path, _config_copy(tmp_path), {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    try:
        _wait_ready(sock)
        pings = 0
        deadline = time.monotonic() + 10
        while pings < 2 and time.monotonic() < deadline:
            if sock.recv(4096) == b"WATCHDOG=1":
                pings += 1
        assert pings == 2, "WATCHDOG=1 must be pinged from the event loop"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        assert time.monotonic() - t0 < 5.0
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


@pytest.mark.slow
def test_sighup_broken_config_keeps_old_then_valid_applies(tmp_path: Path) -> None:
    sock, path = _notify_listener(tmp_path)
    cfg = _config_copy(tmp_path)
    proc = _start_daemon(tmp_path, cfg, {"NOTIFY_SOCKET": path})
    try:
        _wait_ready(sock)
        good = cfg.read_text()
        cfg.write_text(good.replace('id = "central-library"', 'id = "central-library"\nbogus_key = 1'))
        proc.send_signal(signal.SIGHUP)
        msgs = _wait_ready(sock)
        assert any(b"reload refused" in m for m in msgs), msgs
        assert proc.poll() is None, "an invalid reload must not stop the daemon"
        cfg.write_text(good.replace('name = "Floor 3"', 'name = "Floor three"'))
        proc.send_signal(signal.SIGHUP)
        msgs = _wait_ready(sock)
        assert any(b"configuration reloaded" in m for m in msgs), msgs
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert "site.bogus_key: unknown key" in out
        assert "configuration reloaded" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def test_run_with_invalid_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[site]\nid = 'x'\n")
    r = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "site.floor: required key is missing" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_flag_is_usage_error() -> None:
    r = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--no-such-flag"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "No such option" in r.stderr


def test_systemd_unit_verifies_and_is_hardened() -> None:
    unit = Path(__file__).resolve().parents[1] / "systemd" / "edge-agent.service"
    analyze = "/usr/bin/systemd-analyze"
    if not Path(analyze).exists():
        pytest.fail("systemd-analyze is required for this test (apt-get install systemd)")
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert all("/opt/edge-agent/venv/bin/edge-agent" in ln for ln in lines), lines
    r = subprocess.run([analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    score = float(r.stdout.split("Overall exposure level for edge-agent.service:")[1].split()[0])
    assert score <= 3.0


def test_a_crash_in_an_extension_prints_the_python_stacks() -> None:
    """``edge-agent run`` turns faulthandler on: a segmentation fault in SQLite or onnxruntime then
    leaves every thread's Python stack in the journal, not only an exit status of -11."""
    crash = ("import ctypes\n"
             "from edge_agent.cli.daemon_cmd import print_stacks_on_crash\n"
             "def poller_reads_the_part():\n"
             "    ctypes.string_at(0)\n"
             "print_stacks_on_crash()\n"
             "poller_reads_the_part()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    done = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=60, env=env,
                          check=False)
    assert done.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert "in poller_reads_the_part" in done.stderr, done.stderr


async def test_a_reload_that_leaves_no_floor_stops_the_daemon_loudly(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A reload whose new configuration cannot start, and whose running one cannot start again either,
    leaves the floor without its components. It ran in a task nobody awaited: the error vanished and
    the daemon ran on, empty. Now it is logged and the daemon stops with an error (systemd restarts it)."""
    from drivers.errors import EdgeError
    from edge_agent.clock import SystemClock
    from edge_agent.config import load_config
    from edge_agent.daemon import Component, Daemon, DaemonOptions, serve

    builds: list[int] = []
    built = asyncio.Event()

    async def build(_daemon: Daemon) -> list[Component]:
        builds.append(len(builds))
        built.set()
        if len(builds) > 1:
            raise RuntimeError("the I2C adapter is gone")
        return []

    daemon = Daemon(DaemonOptions(config_path=EXAMPLE_FLOOR, state_dir=tmp_path / "state"), load_config(EXAMPLE_FLOOR),
                    clock=SystemClock(), build=build)
    serving = asyncio.create_task(serve(daemon))
    async with asyncio.timeout(60):
        await built.wait()
        daemon.schedule_reload()
        with pytest.raises(EdgeError, match="reload failed: RuntimeError: the I2C adapter is gone"):
            await serving
    assert builds == [0, 1, 2]  # the new configuration, then the running one again: both failed
    assert any(r.levelname == "CRITICAL" and "reload failed" in r.getMessage() and r.exc_info for r in caplog.records)

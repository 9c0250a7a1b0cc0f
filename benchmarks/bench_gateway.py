"""The daemon alone at a gateway's own rates, on the simulated 120- and 240-seat floors, in real time.

Two processes, so the daemon's figures hold only the daemon:

- the floor (``benchmarks.gateway_floor``): the world, every RS-485 node and the UWB listener,
  served on ptys; it fast-forwards the morning to ``START`` and then runs on the wall clock;
- the daemon (``benchmarks.gateway_daemon``): ``edge-agent run``'s daemon with its default
  tuning (rules every 2 s, arbiter every 0.5 s, nodes every 1 s) and every sensor at its
  configured period (thermopiles every 2 s, PIRs sampled at 10 Hz, light every 5 s, the UWB
  listener's feed every 0.5 s), talking to a private mosquitto.

The parts on the gateway's own I2C bus and GPIO pins (6 or 12 light and air sensor sets, the
PIRs, the HVAC outputs) have no seam between processes here, so they stay simulated inside the
daemon's process, driven over a unix socket; that relay and the simulated bus measure their own
thread CPU, which is taken out of the daemon's (``simulated_parts``). What remains counted as the
daemon's is an upper bound: the event-loop wake-ups for those parts (a GPIO read on a gateway)
stay in.

Measured per floor: start-up (process start to the first status message on the broker), CPU
as % of one core over a steady window after a warm-up (/proc/PID/stat, the forecast's worker
processes included), RSS (median of 1 s
samples over the window, and the peak, VmHWM), and the world's event-to-actuation latencies
in real time (from a true need, a patron arriving at a seat darker than its zone's target or CO2
over its limit, to the actuator's response, checked every 0.1 s).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.floorgen import floor_toml  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402

FLOORS = ((120, 6), (240, 8))  # seats, zones: past 8 zones floorgen gives two parts one GPIO pin
START = "08:02"  # local time when the daemon meets the floor: an exam day just opened, filling, zones dark
# Empty zones go dark 5 minutes after the daemon starts (rule lights-off-empty): the latency probes need them.
WARMUP_S = float(os.environ.get("BENCH_GATEWAY_WARMUP_S", "330"))
WINDOW_S = float(os.environ.get("BENCH_GATEWAY_WINDOW_S", "120"))
PROBE_EVERY_S = 4.0  # someone walks into an empty dark zone this often during the window (latency samples)
TAG_INTERVAL_S = 10  # seated UWB tags report at a stationary rate; docs/benchmarks.md says why

SCENARIO = """[scenario]
name = "deployed-rates"
floor = "{floor}"
date = 2025-03-11
day_type = "exam"
weather = "variable"
latitude = 55.68
longitude = 12.57
outdoor_temp_c = 6.0
outdoor_swing_c = 3.5
outdoor_rh_pct = 80
seed = 11
start = "07:30"
end = "22:30"

[sim]
tag_interval_s = {tags}
"""


def clock_ticks() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) and of its children it has waited for (the
    forecast's short-lived worker), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / clock_ticks()


def status_kib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    raise KeyError(key)


def simulated_cpu(stats: Path) -> float:
    """CPU seconds the daemon's process spent on the simulated parts and the relay (its stats file)."""
    return float(json.loads(stats.read_text())["simulated_parts_cpu_s"])


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class StatusWatch:
    """A subscriber on the broker noting when the first status message of the gateway arrives."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.first: float | None = None
        self.seen = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("library/v1/+/+/status", qos=1)  # retained ones (an earlier run's) are skipped
        self.client.loop_start()

    def _message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if self.first is None and message.payload and not message.retain:
            self.first = time.monotonic()
            self.seen.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def ask(proc: subprocess.Popen[bytes], command: str) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(command.encode() + b"\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline()))


def read_ready(stream: IO[bytes], within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if line.startswith(b"{"):
            return dict(json.loads(line))
    raise RuntimeError("the floor process did not become ready")


def one_floor(seats: int, zones: int, tmp: Path, broker: Mosquitto) -> dict[str, float]:
    try:
        return _one_floor(seats, zones, tmp, broker)
    except RuntimeError as exc:
        logs = {name: (tmp / f"floor-{seats}" / name).read_text(errors="replace")[-3000:]
                for name in ("daemon.log", "floor.log") if (tmp / f"floor-{seats}" / name).exists()}
        raise RuntimeError(f"{exc}; the processes' last words: {logs}") from exc


def _one_floor(seats: int, zones: int, tmp: Path, broker: Mosquitto) -> dict[str, float]:
    work = tmp / f"floor-{seats}"
    work.mkdir()
    floor = work / "floor.toml"
    floor.write_text(floor_toml(zones=zones, seats=seats, floor=str(seats)))
    scenario = work / "scenario.toml"
    scenario.write_text(SCENARIO.format(floor=floor, tags=TAG_INTERVAL_S))
    relay = work / "relay.sock"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    floor_proc = subprocess.Popen([sys.executable, "-m", "benchmarks.gateway_floor", "--scenario", str(scenario),
                                   "--start", START, "--relay", str(relay), "--probe-every-s", str(PROBE_EVERY_S)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env,
                                  stderr=(work / "floor.log").open("wb"))
    daemon: subprocess.Popen[bytes] | None = None
    watch: StatusWatch | None = None
    try:
        assert floor_proc.stdout is not None
        ready = read_ready(floor_proc.stdout, 120)
        text = floor.read_text().replace('port = "/dev/ttyUSB0"', f'port = "{ready["line"]}"')
        for path in ready["listeners"].values():
            text = text.replace('serial_port = "/dev/ttyACM0"', f'serial_port = "{path}"', 1)
        gateway = work / "gateway.toml"
        gateway.write_text(text)
        stats = work / "stats.json"
        watch = StatusWatch(broker.port)
        started = time.monotonic()
        daemon_env = env
        code = os.environ.get("BENCH_GATEWAY_DAEMON_CODE")  # another checkout's daemon (a before/after pair)
        if code:
            daemon_env = dict(env, PYTHONPATH=code)
        script = str(ROOT / "benchmarks" / "gateway_daemon.py")
        daemon = subprocess.Popen([sys.executable, script, "--config", str(gateway),
                                   "--state-dir", str(work / "state"), "--broker", f"127.0.0.1:{broker.port}",
                                   "--relay", str(relay), "--wall", ready["wall"], "--stats", str(stats)],
                                  cwd=ROOT, env=daemon_env, stderr=(work / "daemon.log").open("wb"))
        if not watch.seen.wait(60):
            raise RuntimeError("no status message from the daemon within 60 s")
        assert watch.first is not None
        startup = watch.first - started
        time.sleep(WARMUP_S)
        if not ask(floor_proc, "reset")["relay_connected"]:
            raise RuntimeError("the daemon's process never connected to the floor's relay")
        load0 = loadavg()
        cpu0, sim0, t0 = cpu_seconds(daemon.pid), simulated_cpu(stats), time.monotonic()
        rss: list[float] = []
        while time.monotonic() - t0 < WINDOW_S:
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}")
            rss.append(status_kib(daemon.pid, "VmRSS") / 1024)
            time.sleep(1.0)
        cpu1, sim1, t1 = cpu_seconds(daemon.pid), simulated_cpu(stats), time.monotonic()
        peak = status_kib(daemon.pid, "VmHWM") / 1024
        latency = ask(floor_proc, "report")
        both = latency["light"]["count"] + latency["air"]["count"]
        by_type: dict[str, float] = latency.get("line_requests_per_s", {})  # the RS-485 line's requests
        nodes = work / "state" / "nodes.json"  # the daemon's node registry (a health change is saved within 5 s)
        health = [n.get("health") for n in json.loads(nodes.read_text())["nodes"]] if nodes.exists() else []
        window = t1 - t0
        return {
            "startup_s": startup,
            "cpu_pct": 100.0 * ((cpu1 - cpu0) - (sim1 - sim0)) / window,
            "simulated_parts_cpu_pct": 100.0 * (sim1 - sim0) / window,
            "rss_steady_mib": statistics.median(rss),
            "rss_peak_mib": peak,
            "motion_to_light_p50_s": _or_nan(latency["motion_to_light_s"]["p50"]),
            "motion_to_light_p99_s": _or_nan(latency["motion_to_light_s"]["p99"]),
            "motion_to_light_max_s": _or_nan(latency["motion_to_light_s"]["max"]),
            "motion_probes": float(latency["motion_to_light_s"]["count"]),
            "motion_probes_unanswered": float(latency["no_light_in_5s"]),
            "world_light_needs": float(both),
            "world_light_need_p99_s": _or_nan(latency["light"]["p99"]),
            "luminaire_wh": float(latency["luminaire_wh"]),  # the floor's luminaires over the window
            "people_on_floor": float(latency["people"]),
            "load_average": (load0 + loadavg()) / 2,
            "nodes_not_ok": float(sum(1 for h in health if h != "ok")),  # a line still recovering from start-up
            "line_requests_per_s": float(sum(by_type.values())),
            **{f"line_{kind.lower()}_per_s": float(rate) for kind, rate in by_type.items()},
        }
    finally:
        if watch is not None:
            watch.close()
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(5)
        if floor_proc.poll() is None:
            try:
                assert floor_proc.stdin is not None
                floor_proc.stdin.write(b"quit\n")
                floor_proc.stdin.flush()
                floor_proc.wait(15)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                floor_proc.kill()
                floor_proc.wait(5)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def run() -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    units = {"startup_s": "s", "cpu_pct": "% of one core", "simulated_parts_cpu_pct": "% of one core",
             "rss_steady_mib": "MiB", "rss_peak_mib": "MiB", "motion_to_light_p50_s": "s",
             "motion_to_light_p99_s": "s", "motion_to_light_max_s": "s", "motion_probes": "events",
             "motion_probes_unanswered": "events", "world_light_needs": "needs", "world_light_need_p99_s": "s",
             "luminaire_wh": "Wh", "people_on_floor": "people", "load_average": "load", "nodes_not_ok": "nodes"}
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        for seats, zones in FLOORS:
            figures = one_floor(seats, zones, Path(tmp), broker)
            rows += [(f"{seats} seats: {key}", round(value, 3), units.get(key, "requests/s"))
                     for key, value in figures.items()]
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<44} {value:>10.3f} {unit}")

"""Side by side with the ThingsBoard IoT Gateway: sensor messages to an upstream broker at QoS 1.

The same job for both, on the same machine in one run: sensors publish JSON readings to a
sensors' mosquitto (``sensors/<id>/reading``, QoS 1); the gateway forwards each one to an
upstream mosquitto at QoS 1. Ours is :mod:`benchmarks.peer_edge` (the durable SQLite outbox and
the uplink); theirs is ``thingsboard-gateway`` with its MQTT connector and its in-memory storage,
installed with pip into a venv of its own under the cache directory (``BENCH_PEERS_CACHE``,
default ``~/.cache/edge-agent-bench``), never into the project's. Both brokers are private
mosquittos on free loopback ports. ThingsBoard's gateway asks the server for its session limits
(``getSessionLimits`` on ``v1/devices/me/rpc/request/N``) and sends nothing until it has an
answer, so the benchmark answers it (no rate limits, 100 messages in flight).

Ours runs twice: one upstream message per reading, and batched (each sensor's readings gathered
for ``BATCH_S`` into one ``event/readings`` message, see :mod:`benchmarks.peer_edge`), both
through the durable outbox.

Per side: throughput (a burst of ``BURST`` readings, counted as they reach the upstream broker;
ThingsBoard packs several readings into one publish, so readings are counted, not publishes; the
burst comes from :mod:`benchmarks.peer_sensors`, pre-encoded and offered far faster than either
gateway forwards, its rate reported as ``offered_msg_s``),
readings of the burst that never arrived (``lost_in_burst``: counted once nothing has arrived for
``QUIET_S``; the rate is then over what did), CPU per reading of the gateway's process (/proc),
its peak RSS (VmHWM), and the time to resume
after the upstream broker has been down 10 s (readings flowing at ``RATE`` a second; from the
broker listening again to the first reading arriving).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_gateway import cpu_seconds, loadavg, status_kib  # noqa: E402
from benchmarks.peer_sensors import Burst  # noqa: E402
from tests.mosquitto import QUEUED_MAX, Mosquitto  # noqa: E402

BURST = int(os.environ.get("BENCH_PEERS_BURST", "60000"))
RATE = 200.0
OUTAGE_S = 10.0
#: After the burst, this long without a reading arriving upstream ends the wait: what has not
#: arrived by then is counted lost (``lost_in_burst``), not waited for until the bound.
QUIET_S = 30.0
SENSORS = 60
BATCH_S = 0.2  # ours, batched: each sensor's readings gathered this long into one message
TB_PACKAGE = "thingsboard-gateway"
CACHE = Path(os.environ.get("BENCH_PEERS_CACHE", Path.home() / ".cache" / "edge-agent-bench"))


def tb_venv() -> Path:
    """ThingsBoard's gateway in a venv of its own (installed once, with pip)."""
    venv = CACHE / "thingsboard-gateway-venv"
    exe = venv / "bin" / "thingsboard-gateway"
    if not exe.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", TB_PACKAGE], check=True)
    return venv


def tb_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('thingsboard-gateway'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def tb_config(venv: Path, work: Path, sensors_port: int, upstream_port: int) -> Path:
    """Its shipped config directory, pointed at our brokers, one MQTT connector, memory storage."""
    shipped = next(venv.glob("lib/python*/site-packages/thingsboard_gateway/config"))
    conf = work / "tb-config"
    shutil.copytree(shipped, conf)
    gateway = json.loads((conf / "tb_gateway.json").read_text())
    gateway["thingsboard"].update({"host": "127.0.0.1", "port": upstream_port, "remoteConfiguration": False,
                                   "remoteShell": False, "qos": 1,
                                   "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
                                   "security": {"type": "accessToken", "accessToken": "bench"}})
    gateway["storage"] = {"type": "memory", "read_records_count": 100, "max_records_count": 1_000_000}
    gateway["connectors"] = [{"type": "mqtt", "name": "sensors", "configuration": "mqtt.json"}]
    gateway.pop("grpc", None)
    (conf / "tb_gateway.json").write_text(json.dumps(gateway, indent=2))
    mqtt = json.loads((conf / "mqtt.json").read_text())
    mqtt["broker"].update({"host": "127.0.0.1", "port": sensors_port, "clientId": "tb-gateway-bench"})
    mqtt["mapping"] = [{
        "topicFilter": "sensors/+/reading", "subscriptionQos": 1,
        "converter": {"type": "json", "deviceInfo": {
            "deviceNameExpressionSource": "topic", "deviceNameExpression": "(?<=sensors/)(.*?)(?=/reading)",
            "deviceProfileExpressionSource": "constant", "deviceProfileExpression": "default"},
            "sendDataOnlyOnChange": False, "timeout": 60000, "attributes": [],
            "timeseries": [{"type": "double", "key": "value", "value": "${value}"},
                           {"type": "integer", "key": "n", "value": "${n}"}]}}]
    for key in ("requestsMapping", "connectRequests", "disconnectRequests", "attributeRequests",
                "attributeUpdates", "serverSideRpc"):
        mqtt.pop(key, None)
    (conf / "mqtt.json").write_text(json.dumps(mqtt, indent=2))
    logs = json.loads((conf / "logs.json").read_text())
    for handler in logs.get("handlers", {}).values():
        if "filename" in handler:
            handler["filename"] = str(work / "tb-logs" / Path(handler["filename"]).name)
    for logger in logs.get("loggers", {}).values():
        logger["level"] = "ERROR"
    (work / "tb-logs").mkdir()
    (conf / "logs.json").write_text(json.dumps(logs, indent=2))
    return conf


class Upstream:
    """A subscriber on the upstream broker: counts readings, answers ThingsBoard's session-limits RPC,
    and reconnects every 20 ms while the broker is down."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.readings = 0
        self.last_at = 0.0
        self.lock = threading.Lock()
        self.limits_answered = threading.Event()
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-upstream-counter",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.on_connect = lambda c, *_: c.subscribe([("v1/#", 1), ("library/#", 1)])
        self.client.reconnect_delay_set(0.02, 0.02)
        # A session the broker keeps (and saves across its restart): what a gateway publishes before
        # this subscriber is back is queued for it, not dropped, so a fast gateway is not counted as
        # having lost readings.
        session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        session.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=session)
        self.client.loop_start()

    def _message(self, client: Any, _userdata: Any, message: Any) -> None:
        topic: str = message.topic
        if topic.startswith("v1/devices/me/rpc/request/"):
            request = json.loads(message.payload)
            if request.get("method") == "getSessionLimits":
                answer = {"maxPayloadSize": 65536, "maxInflightMessages": 100,
                          "rateLimits": {"messages": "0:0,", "telemetryMessages": "0:0,",
                                         "telemetryDataPoints": "0:0,"}}
                client.publish("v1/devices/me/rpc/response/" + topic.rsplit("/", 1)[1], json.dumps(answer), qos=1)
                self.limits_answered.set()
            return
        n = 0
        if topic == "v1/gateway/telemetry":  # {"device": [{"ts": .., "values": {..}}, ..], ..}
            packed = json.loads(message.payload).values()
            n = sum(len(entries) if isinstance(entries, list) else 1 for entries in packed)
        elif topic.endswith("/event/readings"):  # ours, batched: {.., "data": {"source": .., "readings": [..]}}
            n = len(json.loads(message.payload)["data"]["readings"])
        elif topic.startswith("library/") and b'"reading"' in message.payload:
            n = 1
        if n:
            with self.lock:
                self.readings += n
                self.last_at = time.monotonic()

    def count(self) -> int:
        with self.lock:
            return self.readings

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Sensors:
    """``SENSORS`` sensors publishing readings to the sensors' broker at QoS 1."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.sent = 0

    def publish(self, n: int) -> None:
        for _ in range(n):
            i = self.sent
            self.client.publish(f"sensors/s{i % SENSORS}/reading", json.dumps({"value": 20.0 + i % 50 / 10, "n": i}),
                                qos=1)
            self.sent += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(cond: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not within {within_s:g} s")
        time.sleep(0.02)


def restart(broker: Mosquitto, tries: int = 20) -> None:
    """Start a stopped broker again on its port. A client retrying a loopback port with no listener
    can, rarely, get that very port as its own ephemeral port (a TCP self-connect) and hold it for
    a moment: try again then."""
    for attempt in range(tries):
        try:
            broker.start()
            return
        except RuntimeError:
            if attempt == tries - 1:
                raise
            time.sleep(0.25)


def burst_arrived(upstream: Upstream, base: int, started: float, name: str, *, bound_s: float = 300.0,
                  quiet_s: float = QUIET_S, cpu: Callable[[], float] = time.process_time) -> tuple[int, float]:
    """Wait for the burst upstream; return how many of its readings arrived, and ``cpu()`` as the
    last of them arrived. A gateway that stops short (ThingsBoard's, in about a third of the runs
    here, a few hundred readings short of 60,000) is charged with the rest as lost once nothing has
    arrived for ``quiet_s``: its rate and CPU a reading are then over what it delivered (not over
    the CPU it spent stalled), and the loss is reported beside them. Nothing arriving at all is an
    error."""
    deadline = started + bound_s
    seen, cpu_then = 0, cpu()
    while True:
        arrived = upstream.count() - base
        now = time.monotonic()
        if arrived != seen:
            seen, cpu_then = arrived, cpu()
        if arrived >= BURST:
            return BURST, cpu_then
        if arrived > 0 and now - (upstream.last_at or started) > quiet_s:
            return arrived, cpu_then
        if now > deadline or (arrived == 0 and now - started > quiet_s):
            raise RuntimeError(f"{name}: {BURST} readings upstream not within {bound_s:g} s: {arrived} arrived, "
                               f"the last {now - (upstream.last_at or started):.0f} s ago")
        time.sleep(0.02)


def one_side(name: str, command: list[str], work: Path, env: dict[str, str]) -> dict[str, float]:
    sensors_broker = Mosquitto(work / "sensors-broker")
    # Its sessions saved across the restart, by the user running the benchmark (as root, mosquitto
    # would otherwise switch to its own user, who may not write in this private temporary directory).
    upstream_broker = Mosquitto(work / "upstream-broker", extra_conf=(
        f"persistence true\npersistence_location {work / 'upstream-broker'}/\nuser {getpass.getuser()}"))
    sensors_broker.start()
    upstream_broker.start()
    upstream = Upstream(upstream_broker.port)
    proc: subprocess.Popen[bytes] | None = None
    sensors: Sensors | None = None
    try:
        argv = [a.format(sensors=sensors_broker.port, upstream=upstream_broker.port, work=work) for a in command]
        proc = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.DEVNULL,
                                stderr=(work / f"{name}.log").open("wb"))
        sensors = Sensors(sensors_broker.port)
        # Ready when a probe reading gets through (ThingsBoard's only after its session limits).
        deadline = time.monotonic() + 90
        while upstream.count() == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (work / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name}: nothing forwarded (exit {proc.poll()}): {log}")
            sensors.publish(1)
            time.sleep(0.5)
        time.sleep(1.0)
        base = upstream.count()
        unheard = sensors.sent - base  # probes published before the gateway subscribed: nobody got them
        burst = Burst(sensors_broker.port, sensors.sent, BURST)  # encoded and connected before the clock starts
        sensors.sent += BURST
        try:
            load0, cpu0, started = loadavg(), cpu_seconds(proc.pid), time.monotonic()
            burst.go()
            offered = BURST / burst.acked_s()
            gateway = proc.pid
            arrived, cpu1 = burst_arrived(upstream, base, started, name, cpu=lambda: cpu_seconds(gateway))
        finally:
            burst.close()
        done = upstream.last_at
        figures = {"throughput_msg_s": arrived / (done - started), "cpu_us_per_msg": 1e6 * (cpu1 - cpu0) / arrived,
                   "rss_peak_mib": status_kib(proc.pid, "VmHWM") / 1024, "offered_msg_s": offered,
                   "lost_in_burst": float(BURST - arrived)}
        # Resume: readings flow at RATE/s; the upstream broker goes away for OUTAGE_S.
        stop = threading.Event()

        def trickle() -> None:
            assert sensors is not None
            while not stop.is_set():
                sensors.publish(1)
                time.sleep(1.0 / RATE)

        flow = threading.Thread(target=trickle, daemon=True)
        flow.start()
        time.sleep(3.0)
        upstream_broker.stop()
        time.sleep(OUTAGE_S)
        restart(upstream_broker)
        back = time.monotonic()
        before = upstream.count()
        wait_for(lambda: upstream.count() > before, 120, f"{name}: readings after the outage")
        figures["resume_s"] = upstream.last_at - back
        stop.set()
        flow.join()
        expected = sensors.sent - unheard
        try:
            wait_for(lambda: upstream.count() >= expected, 60, f"{name}: the outage's backlog upstream")
        except RuntimeError:
            pass
        figures["lost_in_outage"] = float(max(0, expected - upstream.count()))
        figures["load_average"] = (load0 + loadavg()) / 2
        return figures
    finally:
        if sensors is not None:
            sensors.close()
        upstream.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        sensors_broker.stop()
        upstream_broker.stop()


def receive_floor(work: Path, env: dict[str, str]) -> dict[str, float]:
    """The burst into our side's receiving half alone (``peer_edge --receive-only``: paho's thread,
    each reading decoded, nothing forwarded), in a process of its own: its CPU per reading is what
    receiving costs before anything is stored or sent, its rate what the harness delivers."""
    broker = Mosquitto(work / "floor-broker")
    broker.start()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.peer_edge", "--sensors", str(broker.port),
                             "--receive-only", str(BURST)], cwd=work, env=env, stdout=subprocess.PIPE, text=True)
    burst: Burst | None = None
    try:
        assert proc.stdout is not None
        if "ready" not in proc.stdout.readline():
            raise RuntimeError("the receive-only subscriber did not start")
        burst = Burst(broker.port, 0, BURST)
        burst.go()
        offered = BURST / burst.acked_s()
        line = proc.stdout.readline()  # the subscriber ends by itself within its bound if readings go missing
        if not line:
            raise RuntimeError(f"the receive-only subscriber ended without figures (exit {proc.wait(15)})")
        figures: dict[str, float] = json.loads(line)
        figures["offered_msg_s"] = offered
        return figures
    finally:
        if burst is not None:
            burst.close()
        if proc.poll() is None:
            proc.terminate()
        proc.wait(15)
        broker.stop()


def run() -> list[tuple[str, float, str]]:
    if BURST > QUEUED_MAX:
        raise ValueError(f"BENCH_PEERS_BURST={BURST}: at most {QUEUED_MAX}, what the sensors' broker queues for a "
                         "client (tests/mosquitto.py); more would be dropped before any gateway saw it")
    venv = tb_venv()
    rows: list[tuple[str, float, str]] = []
    units = {"throughput_msg_s": "msg/s", "cpu_us_per_msg": "us CPU/msg", "rss_peak_mib": "MiB", "resume_s": "s",
             "lost_in_outage": "msgs", "lost_in_burst": "msgs", "load_average": "load", "offered_msg_s": "msg/s"}
    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmp:
        work = Path(tmp)
        ours_dir, tb_dir = work / "edge-agent", work / "thingsboard"
        ours_dir.mkdir()
        tb_dir.mkdir()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        edge = [sys.executable, "-m", "benchmarks.peer_edge", "--sensors", "{sensors}", "--upstream", "{upstream}",
                "--state-dir", "{work}/state"]
        ours = one_side("edge-agent", edge, ours_dir, env)
        batched_dir = work / "edge-agent-batched"
        batched_dir.mkdir()
        batched = one_side("edge-agent-batched", [*edge, "--batch-s", str(BATCH_S)], batched_dir, env)
        # Its config needs the brokers' ports, which one_side formats into the command line.
        launcher = [sys.executable, "-m", "benchmarks.bench_peers", "--launch-thingsboard", str(venv),
                    "{sensors}", "{upstream}", "{work}"]
        theirs = one_side("thingsboard", launcher, tb_dir, env)
        version = tb_version(venv)
        floor = receive_floor(work, env)
    for key, unit in units.items():
        rows.append((f"edge-agent outbox: {key}", round(ours[key], 3), unit))
        rows.append((f"edge-agent outbox, batched per sensor per {BATCH_S:g} s: {key}", round(batched[key], 3), unit))
        rows.append((f"thingsboard-gateway {version} memory storage: {key}", round(theirs[key], 3), unit))
    rows.append(("our receiving alone (peer_edge --receive-only): throughput_msg_s",
                 round(floor["throughput_msg_s"], 1), "msg/s"))
    rows.append(("our receiving alone (peer_edge --receive-only): cpu_us_per_msg",
                 round(floor["cpu_us_per_msg"], 1), "us CPU/msg"))
    rows.append(("our receiving alone (peer_edge --receive-only): offered_msg_s",
                 round(floor["offered_msg_s"], 1), "msg/s"))
    for label, side in (("edge-agent", ours), ("edge-agent batched", batched)):
        rows.append((f"throughput ratio {label} / thingsboard",
                     round(side["throughput_msg_s"] / theirs["throughput_msg_s"], 3), "ratio"))
        rows.append((f"CPU per message ratio {label} / thingsboard",
                     round(side["cpu_us_per_msg"] / theirs["cpu_us_per_msg"], 3), "ratio"))
    return rows


def launch_thingsboard(venv: str, sensors: str, upstream: str, work: str) -> None:
    """Write ThingsBoard's config for these brokers, then become its gateway (same pid, for /proc)."""
    conf = tb_config(Path(venv), Path(work), int(sensors), int(upstream))
    os.environ["TB_GW_CONFIG_DIR"] = f"{conf}/"
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHASHSEED"):  # its own venv, nothing of ours
        os.environ.pop(name, None)
    exe = str(Path(venv) / "bin" / "thingsboard-gateway")
    os.execv(exe, [exe])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--launch-thingsboard"]:
        launch_thingsboard(*sys.argv[2:6])
    for label, value, unit in run():
        print(f"{label:<60} {value:>12.3f} {unit}")

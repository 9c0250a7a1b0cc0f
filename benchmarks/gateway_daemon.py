"""The daemon under test in the deployed-rate benchmark: ``edge-agent run``'s daemon, in its own process.

``python -m benchmarks.gateway_daemon --config C --state-dir D --broker H:P --relay SOCK --wall ISO
--stats FILE`` runs :class:`edge_agent.daemon.Daemon` with the components ``edge-agent run`` builds
(``build_components``, the default :class:`~edge_agent.assembly.Tuning`: rules every 2 s, the
arbiter every 0.5 s, nodes polled every 1 s, every sensor at its configured period) on the real
clock, with two differences a benchmark needs and says:

- the wall clock reads the simulated floor's local time (``--wall``: the floor process's clock
  when it started serving), so opening hours and the calendar see a library day, not the night
  the benchmark may run in; intervals are the real monotonic clock;
- the backend: the RS-485 line and the UWB listener's UART are the ptys the floor process serves
  (opened by path, as on a gateway), while the parts on the gateway's own I2C bus, GPIO pins and
  BLE stay simulated in this process, driven by the floor process over ``--relay``.

The relay's work (reading the floor's lines, setting the simulated parts), the simulated I2C
bus's and this stats file's are measured in this process's thread CPU and written to ``--stats``
every second, so the benchmark can take them out of the daemon's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.serial import SerialStream
from edge_agent.assembly import build_components
from edge_agent.backend import ReopeningSerial, SimulatedBackend
from edge_agent.clock import SystemClock
from edge_agent.config import load_config
from edge_agent.daemon import Daemon, DaemonOptions, install_signal_handlers, serve
from edge_agent.logs import setup_logging
from simulator.hw.floor import build_simulated_hardware
from simulator.world.binding import HardwareBinding

log = logging.getLogger("benchmarks.gateway_daemon")


class FloorDayClock(SystemClock):
    """The real clock, with wall time shifted to the simulated floor's (intervals untouched)."""

    def __init__(self, wall_now: float) -> None:
        super().__init__()
        self._offset = wall_now - time.time()

    def time(self) -> float:
        return time.time() + self._offset

    @property
    def synced(self) -> bool:
        return True


class SimulatedCost:
    """Thread CPU spent in this process on the simulated parts and the relay (not the daemon's)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap_bus(self, bus: Any) -> None:
        inner = bus._run

        def timed(*args: Any) -> bytes:
            started = time.thread_time()
            try:
                return bytes(inner(*args))
            finally:
                self.seconds += time.thread_time() - started

        bus._run = timed


async def relay(path: str, binding: HardwareBinding, pins: list[int], factory: Any, cost: SimulatedCost) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    sent: dict[int, float] = {}

    async def report_pins() -> None:
        while True:
            started = time.thread_time()
            now = {p: float(factory.pin(p).state or 0.0) for p in pins}
            if now != sent:
                sent.update(now)
                writer.write(json.dumps(["pins", now]).encode() + b"\n")
            cost.seconds += time.thread_time() - started
            await asyncio.sleep(1.0)

    pinger = asyncio.create_task(report_pins())
    try:
        while raw := await reader.readline():
            started = time.thread_time()
            kind, sensor_id, *values = json.loads(raw)
            if kind == "lux":
                binding.set_lux(sensor_id, values[0])
            elif kind == "env":
                binding.set_environment(sensor_id, *values)
            elif kind == "motion":
                binding.set_motion(sensor_id, values[0])
            elif kind == "fault":
                binding.inject_fault(sensor_id, values[0])
            elif kind == "clear":
                binding.clear_faults(sensor_id)
            cost.seconds += time.thread_time() - started
    finally:
        pinger.cancel()


async def main(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    cfg = load_config(config_path)
    hw = build_simulated_hardware(cfg, time.monotonic)
    cost = SimulatedCost()
    for bus_id, bus in hw.sim_buses.items():
        if any(b.id == bus_id and b.kind == "linux" for b in cfg.buses):
            cost.wrap_bus(bus)
    binding = HardwareBinding(cfg, hw, {})
    pins = sorted({p for a in cfg.actuators for p in (a.pin, a.heating_setpoint_pin, a.cooling_setpoint_pin)
                   if p is not None})
    streams = {s.id: SerialStream(s.serial_port) for s in cfg.sensors if s.serial_port is not None}
    assert cfg.bridge is not None
    backend = SimulatedBackend(i2c_buses=hw.buses, pin_factory=hw.pin_factory, ble_backend=hw.ble_backend,
                               transport=ReopeningSerial(cfg.bridge.port, cfg.bridge.baud),
                               serial_streams=streams)
    options = DaemonOptions(config_path=config_path, state_dir=Path(args.state_dir),
                            broker=(args.broker.rsplit(":", 1)[0], int(args.broker.rsplit(":", 1)[1])))
    clock = FloorDayClock(datetime.fromisoformat(args.wall).timestamp())

    async def build(d: Daemon) -> list[Any]:
        return await build_components(d, backend=backend)

    daemon = Daemon(options, cfg, clock=clock, build=build)
    install_signal_handlers(daemon)
    floor = asyncio.create_task(relay(args.relay, binding, pins, hw.pin_factory, cost))
    floor.add_done_callback(lambda t: t.cancelled() or t.exception() is None
                            or log.error("the relay to the floor failed: %r", t.exception()))

    async def stats() -> None:
        while True:
            started = time.thread_time()
            packages = sorted({name.split(".")[0] for name in list(sys.modules) if not name.startswith("_")})
            text = json.dumps({"simulated_parts_cpu_s": cost.seconds, "packages": packages})
            Path(args.stats).write_text(text)  # noqa: ASYNC240 (a small local file, once a second)
            cost.seconds += time.thread_time() - started  # the benchmark's own bookkeeping, not the daemon's
            await asyncio.sleep(1.0)

    writer = asyncio.create_task(stats())
    try:
        await serve(daemon)
    finally:
        for task in (floor, writer):
            task.cancel()
        hw.close()
    return 0


def cli() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gateway_daemon", description=__doc__.splitlines()[0])
    for name in ("config", "state-dir", "broker", "relay", "wall", "stats"):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args()
    setup_logging("text", "warning")
    raise SystemExit(asyncio.run(main(args)))


if __name__ == "__main__":
    cli()

"""The simulated floor in a process of its own, for the deployed-rate benchmark (bench_gateway.py).

``python -m benchmarks.gateway_floor --scenario S --start 19:00 --relay SOCK`` fast-forwards the
world (no daemon yet) from the scenario's start to ``--start``, then lets simulated time follow
the wall clock and serves the floor to a daemon in another process:

- the RS-485 line with every node (desk clusters with their thermopiles, dimmers) on a pty, as
  ``simulator.nodes_process`` does: the daemon opens the slave as its RS-485 adapter;
- the UWB listener's UART on a pty (the DWM1001-DEV on USB);
- the gateway's own parts (the I2C bus behind the mux, the PIRs on GPIO pins, the BLE tag) have
  no operating-system seam here, so the daemon's process keeps them simulated and this process
  drives them over a unix socket (``--relay``): one JSON array a line, ``["lux", id, v]``,
  ``["env", id, t, rh, co2]``, ``["motion", id, moving]``; the daemon's process answers with the
  HVAC outputs' pin states (``["pins", {pin: state}]``), which the world reads back.

Commands on stdin, one JSON line out for each: ``reset`` (forget the latencies measured so far:
start of the measured window; with ``--probe-every-s`` someone then walks into an empty, dark
zone that often: :func:`probe_motion`), ``report`` (light and
air latencies since the reset, real seconds, as the world measures them: from the true need to
the actuator's response, checked every 0.1 s), ``quit``. It prints ``{"ready": ...}`` with the pty
paths once it serves the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tty
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.config import SiteConfig, load_config
from edge_agent.simulate import build_nodes
from firmware_bridge.codec import Frame
from firmware_bridge.messages import MsgType
from firmware_bridge.transport import SerialTransport
from simulator.clock import VirtualClock, VirtualTimeLoop
from simulator.hw.floor import build_simulated_hardware
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine
from simulator.world.binding import HardwareBinding
from simulator.world.hvac import SETPOINT_VOLTS_FULL_SCALE_C
from simulator.world.metrics import percentiles
from simulator.world.scenario import load_scenario
from simulator.world.world import World


def local_sensor_ids(cfg: SiteConfig) -> set[str]:
    """Sensors the gateway reads itself (its I2C bus, GPIO pins, BLE): not on the RS-485 line or a UART."""
    root = {b.id: b for b in cfg.buses}

    def on_linux_bus(bus_id: str | None) -> bool:
        seen = 0
        while bus_id is not None and seen < len(root):
            bus = root[bus_id]
            if bus.kind == "linux":
                return True
            bus_id, seen = bus.parent, seen + 1
        return False

    return {s.id for s in cfg.sensors
            if s.pin is not None or s.ble_address is not None or on_linux_bus(s.bus)}


class RelayBinding(HardwareBinding):
    """The world's binding: node and UART parts here, the gateway's own parts over the relay."""

    def __init__(self, cfg: SiteConfig, hardware: Any, nodes: Mapping[int, Any]) -> None:
        super().__init__(cfg, hardware, nodes)
        self.local = local_sensor_ids(cfg)
        self.writer: asyncio.StreamWriter | None = None
        self.pins: dict[int, float] = {}

    def _send(self, *message: Any) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(json.dumps(message).encode() + b"\n")

    def set_lux(self, sensor_id: str, lux: float) -> None:
        if sensor_id in self.local:
            self._send("lux", sensor_id, lux)
        else:
            super().set_lux(sensor_id, lux)

    def set_environment(self, sensor_id: str, temperature_c: float, humidity_pct: float,
                        co2_ppm: float | None) -> None:
        if sensor_id in self.local:
            self._send("env", sensor_id, temperature_c, humidity_pct, co2_ppm)
        else:
            super().set_environment(sensor_id, temperature_c, humidity_pct, co2_ppm)

    def set_motion(self, sensor_id: str, moving: bool) -> None:
        if sensor_id in self.local:
            self._send("motion", sensor_id, moving)
        else:
            super().set_motion(sensor_id, moving)

    def inject_fault(self, sensor_id: str, fault: str) -> None:
        if sensor_id in self.local:
            self._send("fault", sensor_id, fault)
        else:
            super().inject_fault(sensor_id, fault)

    def clear_faults(self, sensor_id: str) -> None:
        if sensor_id in self.local:
            self._send("clear", sensor_id)
        else:
            super().clear_faults(sensor_id)

    def ventilation(self, actuator_id: str) -> float:
        act = self._actuators[actuator_id]
        return 0.0 if act.pin is None else self.pins.get(act.pin, 0.0)

    def setpoints(self, actuator_id: str) -> tuple[float | None, float | None]:
        act = self._actuators[actuator_id]

        def read(pin: int | None) -> float | None:
            return None if pin is None else self.pins.get(pin, 0.0) * SETPOINT_VOLTS_FULL_SCALE_C

        return read(act.heating_setpoint_pin), read(act.cooling_setpoint_pin)


async def probe_motion(world: World, binding: RelayBinding, every_s: float, results: dict[str, list[float]]) -> None:
    """Someone walks into an empty, dark zone: its PIR fires (over the relay, as the world's own walks
    do) and the time until one of the zone's luminaires is above 0 on its dimmer node is the
    event-to-actuation latency, in real time (read every 10 ms, gives up after 5 s)."""
    loop = asyncio.get_running_loop()
    turn = 0
    while True:
        await asyncio.sleep(every_s)
        dark = [z for z, pirs in enumerate(world.pirs) if pirs and world.zone_people[z] == 0
                and all(binding.light_level(world.lum_ids[k]) == 0.0 for k in world.zone_lums[z])]
        if not dark:
            results["no_dark_zone"].append(1.0)
            continue
        zone = dark[turn % len(dark)]
        turn += 1
        pir = world.pirs[zone][0]
        started = loop.time()
        binding.set_motion(pir, True)
        lit = False
        while loop.time() - started < 5.0:
            await asyncio.sleep(0.01)
            if any(binding.light_level(world.lum_ids[k]) > 0.0 for k in world.zone_lums[zone]):
                lit = True
                break
        binding.set_motion(pir, False)
        results["motion_to_light_s" if lit else "no_light_in_5s"].append(loop.time() - started)


class CountingLine(SimLine):
    """The floor's RS-485 line, counting the requests it hears by type (the line's load)."""

    counts: dict[str, int]

    def _frame(self, block: bytes, frame: Frame | None, listeners: list[SimNode], transport: Any,
               now: float) -> None:
        if frame is not None:
            name = MsgType(frame.type).name if frame.type in MsgType._value2member_map_ else str(frame.type)
            self.counts[name] = self.counts.get(name, 0) + 1
        super()._frame(block, frame, listeners, transport, now)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    sc = load_scenario(args.scenario)
    cfg = load_config(sc.floor_path)
    tz = ZoneInfo(cfg.site.timezone)
    clock = VirtualClock(loop, sc.wall_start(tz))
    hw = build_simulated_hardware(cfg, clock.monotonic)
    nodes = build_nodes(cfg, hw)  # the line's serve() puts them on the loop's clock (a power-on)
    binding = RelayBinding(cfg, hw, nodes)
    world = World(cfg, sc, binding, clock)
    hh, mm = (int(x) for x in args.start.split(":"))
    switch = world.t0 + (hh * 60 + mm) * 60 - (clock.wall_start.hour * 60 + clock.wall_start.minute) * 60
    await world.run(switch)  # the morning so far, as fast as possible, with nobody to act on it
    loop.follow_wall_clock()

    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    baud = cfg.bridge.baud if cfg.bridge else 115200
    line = CountingLine(nodes.values(), seed=sc.scenario.seed)
    line.counts = {}
    counted_from = loop.time()
    luminaire_j0 = 0.0  # the luminaires' energy, counted from the window's start
    serving = loop.create_task(line.serve(SerialTransport.from_fd(master, "pty-master", baud)))
    listeners = {}
    for sensor_id in hw.uart_listeners:
        uart = hw.uwb_uart(sensor_id)
        await uart.start()
        listeners[sensor_id] = uart.port

    connected = asyncio.Event()
    probes: asyncio.Task[None] | None = None
    measured: dict[str, list[float]] = {"motion_to_light_s": [], "no_light_in_5s": [], "no_dark_zone": []}

    async def daemon_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        binding.writer = writer
        connected.set()
        while raw := await reader.readline():
            kind, value = json.loads(raw)
            if kind == "pins":
                binding.pins.update({int(k): float(v) for k, v in value.items()})

    server = await asyncio.start_unix_server(daemon_side, args.relay)
    world_task = loop.create_task(world.run(world.end_time))
    print(json.dumps({"ready": True, "line": os.ttyname(slave), "listeners": listeners,
                      "wall": clock.now().isoformat()}), flush=True)

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while command := (await reader.readline()).decode().strip():
            if command == "quit":
                break
            if command == "reset":
                world.needs.clear()
                for xs in world.score.latencies.values():
                    xs.clear()
                for xs in measured.values():
                    xs.clear()
                if probes is None and args.probe_every_s > 0:
                    probes = loop.create_task(probe_motion(world, binding, args.probe_every_s, measured))
                line.counts.clear()
                counted_from = loop.time()
                luminaire_j0 = world.score.luminaire_j
                answer: dict[str, Any] = {"ok": True, "relay_connected": connected.is_set()}
            elif command == "report":
                answer = {kind: percentiles(list(xs)) for kind, xs in world.score.latencies.items()}
                answer["world_cpu_s"] = world.cpu_seconds
                answer["people"] = sum(world.people_in_zone(z.id) for z in cfg.zones)
                if serving.done():
                    answer["line_failed"] = repr(serving.exception()) if not serving.cancelled() else "cancelled"
                seconds = max(1e-9, loop.time() - counted_from)
                answer["luminaire_wh"] = (world.score.luminaire_j - luminaire_j0) / 3600.0
                answer["line_requests_per_s"] = {k: round(n / seconds, 2) for k, n in sorted(line.counts.items())}
                answer["motion_to_light_s"] = percentiles(measured["motion_to_light_s"])
                answer["no_light_in_5s"] = len(measured["no_light_in_5s"])
                answer["no_dark_zone"] = len(measured["no_dark_zone"])
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        tasks = [t for t in (world_task, serving, probes) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.close()
        hw.close()
        os.close(slave)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gateway_floor", description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--start", default="10:30", help="local time at which the daemon meets the floor")
    ap.add_argument("--relay", required=True, help="unix socket path the daemon's process connects to")
    ap.add_argument("--probe-every-s", type=float, default=0.0,
                    help="after `reset`, motion in an empty dark zone this often (0: never)")
    args = ap.parse_args()
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve(args))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


if __name__ == "__main__":
    main()

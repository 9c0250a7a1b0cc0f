"""The simulator seam: ``edge-agent run --simulate SCENARIO`` is the real daemon on a simulated floor.

This module only *assembles*: the scenario and floor config (simulator.world), the simulated
parts built from that config (simulator.hw), the simulated RS-485 nodes (simulator.nodes), the
virtual-time loop (simulator.clock), and the same :class:`edge_agent.daemon.Daemon` with the
same components as on a gateway, on a :class:`edge_agent.backend.SimulatedBackend`.

It also plays the scenario's runtime events: a broker outage cuts the network path between the
daemon and its broker (simulator.network), a power cut kills the daemon abruptly (nothing is
flushed) and starts a new one on the same state directory. At the end it writes the report:
the world's truth-based metrics plus the runtime's own (wall seconds, messages).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from drivers.errors import ConfigError, EdgeError
from edge_agent.assembly import Gateway, Tuning, build_components
from edge_agent.backend import SimulatedBackend
from edge_agent.config import Sensor, SiteConfig, load_config
from edge_agent.daemon import Daemon, DaemonOptions, check_daemon_paths
from edge_agent.sim_library import GatewayDisplay, StaffPager
from simulator.clock import VirtualClock, VirtualTimeLoop
from simulator.hw.floor import SimHardware, build_simulated_hardware
from simulator.network import NetworkPath
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine
from simulator.world.binding import HardwareBinding, WorldBinding
from simulator.world.memory import MemoryBinding
from simulator.world.scenario import Scenario, load_scenario
from simulator.world.world import World

log = logging.getLogger("edge_agent.simulate")

ProgressCallback = Callable[[str, float], None]
#: Besides the ``baseline_`` keys, what a ``--baseline`` report carries: the day's, not the gateway's.
CONVENTIONAL_KEYS = ("sim_hours", "arrivals", "seats_wanted", "events", "comfort_band_c")
#: Builds the world's hold on the simulated parts; tests pass one that lets them own some sensors' truth.
BindingFactory = Callable[[SiteConfig, SimHardware, Mapping[int, SimNode]], WorldBinding]


@dataclass
class SimulationOptions:
    scenario: Path
    state_dir: Path | None = None
    broker: tuple[str, int] | None = None
    speed: float | None = None  # None: as fast as possible; else at most this many simulated seconds a wall second
    report: Path | None = None
    render: Path | None = None
    seed: int | None = None
    progress: ProgressCallback | None = None
    drain_s: float = 10.0  # wall seconds allowed at the end for the outbox to empty
    mqtt_protocol: str | None = None  # "3.1.1" for the embedded amqtt broker
    tuning: Tuning | None = None  # loop periods; default: the scenario's (tuning_for)
    binding: BindingFactory = HardwareBinding
    baseline: bool = False  # the conventional floor alone: no daemon, no gateway (its figures only)


def build_nodes(cfg: SiteConfig, hw: SimHardware) -> dict[int, SimNode]:
    """One simulated node per bridge address, of the current firmware (PROTOCOL.md revision 4):
    desk clusters carry their local I2C bus and, where desks stand, a load-cell platform under each."""
    nodes: dict[int, SimNode] = {}
    dimmers = {a.node for a in cfg.actuators if a.node is not None and a.output == "dimmer"}
    desks = {a.node for a in cfg.actuators if a.node is not None and a.kind == "desk"}
    addresses = {b.node for b in cfg.buses if b.node is not None}
    addresses |= {a.node for a in cfg.actuators if a.node is not None}
    addresses |= {s.node for s in cfg.sensors if s.node is not None}
    for addr in sorted(a for a in addresses if a is not None):
        kind = "dimmer" if addr in dimmers and addr not in hw.node_buses else "desk-cluster"
        nodes[addr] = SimNode(addr, kind, i2c=hw.node_buses.get(addr), seed=addr, revision=4,
                              load_cells=kind == "desk-cluster" and addr in desks)
    return nodes


#: Poll intervals of the simulated day where its scenario names none: a desk's weight is read once
#: a minute (with the thermopile's frames), not every 5 s, so 120 desks fit the day's time budget.
SIMULATED_POLL_S = {"hx711": 60.0}
#: How often the simulated day asks each node its STATUS (a real gateway: every second). A node
#: cannot speak unasked, so this bounds how late the gateway hears of a desk's LOAD_STEP or a
#: "back soon" press on a node nothing else was asked of meanwhile (PROTOCOL.md 5.7).
SIMULATED_NODE_POLL_S = 10.0


def tuning_for(scenario: Scenario, cfg: SiteConfig) -> Tuning:
    overrides = {**SIMULATED_POLL_S, **scenario.poll_overrides()}

    def interval(sensor: Sensor) -> float:
        return overrides.get(sensor.kind, sensor.poll_interval_s)

    day_type = scenario.scenario.demand_day_type
    # Seat news wakes the decide loop at once, as before the gateway coalesced it: the day's
    # report (the seats' and lights' timing, decide_passes) stays comparable with earlier days.
    return Tuning(decide_interval_s=30.0, seat_news_gap_s=0.0, arbiter_interval_s=5.0,
                  node_poll_interval_s=SIMULATED_NODE_POLL_S,
                  poll_interval=interval,
                  forecast_interval_s=900.0, history_sample_s=300.0, mqtt_timeout_s=1800.0,
                  inline_inference=True, inline_outbox=True,
                  day_type=lambda _wall: day_type)


class Simulation:
    """One scenario run (see module docstring)."""

    def __init__(self, options: SimulationOptions) -> None:
        self.options = options
        self.scenario = load_scenario(options.scenario)
        if options.seed is not None:
            header = replace_header_seed(self.scenario, options.seed)
            self.scenario = header
        self.config_path = self.scenario.floor_path
        self.cfg = load_config(self.config_path)
        if options.mqtt_protocol is not None:
            broker = self.cfg.broker.model_copy(update={"protocol": options.mqtt_protocol})
            self.cfg = self.cfg.model_copy(update={"broker": broker})
        self.state_dir = options.state_dir or Path(tempfile.mkdtemp(prefix="edge-agent-sim-"))
        self.daemon: Daemon | None = None
        # The simulated floor, set when run() starts (tests reach the parts through these).
        self.hardware: SimHardware | None = None
        self.nodes: dict[int, SimNode] = {}
        self.world: World | None = None
        self.incarnations = 0
        self._tag_names: dict[str, str] = {}  # gateway pseudonym -> world tag id (the probe's translation)
        self.messages = {"produced": 0, "delivered": 0, "dropped": 0}
        self._lives: dict[int, dict[str, int]] = {}

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        tz = ZoneInfo(self.cfg.site.timezone)
        clock = VirtualClock(loop, self.scenario.wall_start(tz))
        hw = self.hardware = build_simulated_hardware(self.cfg, clock.monotonic)
        tuning = self.options.tuning or tuning_for(self.scenario, self.cfg)
        for sensor in self.cfg.sensors:  # tags notify at the rate the daemon is tuned to read them
            if sensor.kind == "dwm1001" and sensor.ble_address is not None:
                hw.devices[sensor.id].period_s = tuning.poll_interval(sensor)  # type: ignore[attr-defined]
        nodes = self.nodes = build_nodes(self.cfg, hw)
        line = SimLine(nodes.values(), seed=self.scenario.scenario.seed)
        world = self.world = World(self.cfg, self.scenario, self.options.binding(self.cfg, hw, nodes), clock)
        if hw.building is not None:
            await hw.building.open()  # the BMS devices listen before the daemon's first request
        network: NetworkPath | None = None
        broker = self.options.broker or (self.cfg.broker.host, self.cfg.broker.port)
        network = NetworkPath(broker)
        await network.start()
        state_dir = self.state_dir
        salt = state_dir / "tag-salt"  # pseudonyms, and so the day, repeat with the seed
        if not salt.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            salt.write_text(f"simulated-floor-{self.scenario.scenario.seed}")
        wall0 = time.monotonic()
        end = world.end_time
        self._stop_event = asyncio.Event()
        self._restart_event = asyncio.Event()
        daemon_task = asyncio.create_task(self._daemon_lifecycle(clock, hw, line, tuning, state_dir, network))
        world.set_daemon_probe(self._probe)
        world.set_availability(GatewayDisplay(self._gateway))
        helpers = [asyncio.create_task(self._play_events(world, network, clock)),
                   asyncio.create_task(self._progress(clock, world, end)),
                   asyncio.create_task(StaffPager(self._gateway, world).run())]
        if hw.building is not None:
            helpers.append(asyncio.create_task(hw.building.follow(world)))
        day = self._day = asyncio.create_task(self._run_day(world, end))
        try:
            await asyncio.wait({day, daemon_task}, return_when=asyncio.FIRST_COMPLETED)
            if not day.done():  # the daemon ended before the day did: it died
                day.cancel()
            elif not day.cancelled():
                day.result()
        finally:
            for task in (day, *helpers):
                task.cancel()
            self._stop_event.set()
            await asyncio.gather(day, daemon_task, *helpers, return_exceptions=True)
            await network.aclose()
            hw.close()
        if daemon_task.done() and not daemon_task.cancelled() and daemon_task.exception() is not None:
            raise DaemonDied(self._when(clock), daemon_task.exception())
        if self._interrupted:
            raise SimulationInterrupted(f"interrupted at {self._when(clock)} simulated")
        if not day.done() or day.cancelled():
            raise DaemonDied(self._when(clock), None)
        extra = {"wall_seconds": round(time.monotonic() - wall0, 2),
                 "messages_produced": self.messages["produced"],
                 "messages_delivered": self.messages["delivered"],
                 "messages_dropped": self.messages["dropped"],
                 "daemon_starts": self.incarnations,
                 "decide_passes": sum(life.get("decide_passes", 0) for life in self._lives.values())}
        report = world.report(extra)
        # A timing, like wall_seconds, but not in the report: a seeded day's report repeats exactly.
        log.info("simulated %.1f h in %.1f s wall; the world's own share %.1f s CPU",
                 (end - world.t0) / 3600.0, extra["wall_seconds"], world.cpu_seconds)
        if self.options.render is not None:
            world.render(self.options.render)
        return report

    async def run_conventional(self) -> dict[str, Any]:
        """The day on the conventional floor alone (``--baseline``): no daemon, no broker, no hardware.

        The world runs as in :meth:`run` (the same patrons, weather and seed); with nothing behind
        its gateway floor, only the conventional floor's figures mean anything, and only they are
        reported, under the names a gateway run gives them (the ``baseline_`` twins).
        """
        loop = asyncio.get_running_loop()
        clock = VirtualClock(loop, self.scenario.wall_start(ZoneInfo(self.cfg.site.timezone)))
        world = self.world = World(self.cfg, self.scenario, MemoryBinding(), clock)
        wall0 = time.monotonic()
        await world.run(world.end_time)
        report = world.report()
        out = {k: v for k, v in report.items() if k.startswith("baseline_") or k in CONVENTIONAL_KEYS}
        out["wall_seconds"] = round(time.monotonic() - wall0, 2)
        return out

    async def _run_day(self, world: World, end: float) -> None:
        await world.run(end)
        await self._drain()

    def interrupt(self) -> None:
        """End the run early (SIGTERM, Ctrl-C): the daemon stops cleanly, no report is written."""
        self._interrupted = True
        if self._day is not None:
            self._day.cancel()

    @staticmethod
    def _when(clock: VirtualClock) -> str:
        return clock.now().strftime("%H:%M:%S")

    # -- the daemon's lives ------------------------------------------------------------------
    _stop_event: asyncio.Event
    _restart_event: asyncio.Event
    _day: asyncio.Task[None] | None = None
    _interrupted = False

    def _gateway(self) -> Gateway | None:
        """The running daemon's gateway (None while it is down or restarting)."""
        return self.daemon.gateway if self.daemon is not None else None

    def _probe(self) -> dict[str, Any]:
        gw = self.daemon.gateway if self.daemon is not None else None
        if gw is None:
            return {"seats": {}, "zones": {}}
        probe: dict[str, Any] = gw.probe()
        positions, seats = probe.pop("tag_positions", {}), probe.pop("tag_seats", {})
        if (positions or seats) and self.world is not None:  # the world knows its tags by id, the gateway by pseudonym
            if not self._tag_names:
                self._tag_names = {gw.pollers.tags.name_of(p.tag): p.tag for p in self.world.patrons if p.tag}
            probe["tags"] = {self._tag_names[n]: xy for n, xy in positions.items() if n in self._tag_names}
            probe["tag_seats"] = {seat: self._tag_names.get(n) for seat, n in seats.items()}
        return probe

    async def _patron_system(self, gw: Gateway) -> None:
        """The library's patron system: the consent (and preferences) of today's consenting patrons.

        They consented before the day, so it is on record when the gateway starts, through the same
        code the ``consent_set`` and ``preferences_set`` commands run; it is kept across restarts.
        """
        assert self.world is not None
        for p in self.world.patrons:
            if p.consents and p.tag is not None:
                await gw.patrons.grant(p.tag, ["desk_preferences", "lamp_preferences"])
                await gw.patrons.set_preferences(p.tag, p.desk_height_mm, p.lamp_level)

    async def _daemon_lifecycle(self, clock: VirtualClock, hw: SimHardware, line: SimLine, tuning: Tuning,
                                state_dir: Path, network: NetworkPath) -> None:
        self._power_off_s = 0.0
        while True:
            async with line.on_memory_line(self.cfg.bridge.baud if self.cfg.bridge else 115200) as mline:
                backend = SimulatedBackend(
                    i2c_buses=hw.buses, pin_factory=hw.pin_factory, ble_backend=hw.ble_backend,
                    transport=mline.master,
                    serial_streams={s: hw.loopback_uart(s) for s in self._uart_sensors()},
                    building_parts=hw.building,
                )
                options = DaemonOptions(config_path=self.config_path, state_dir=state_dir, broker=network.address,
                                        stop_budget_s=3600.0)

                async def build(d: Daemon, backend: SimulatedBackend = backend) -> list[Any]:
                    return await build_components(d, backend=backend, tuning=tuning)

                daemon = Daemon(options, self.cfg, clock=clock, build=build)
                self.daemon = daemon
                self.incarnations += 1
                await daemon.start()
                if self.incarnations == 1 and daemon.gateway is not None:
                    await self._patron_system(daemon.gateway)
                if self.incarnations == 1 and isinstance(loop := asyncio.get_running_loop(), VirtualTimeLoop):
                    loop.restart_pace()  # --speed counts from the daemon's start, not from the floor's building
                stop = asyncio.create_task(self._stop_event.wait())
                cut = asyncio.create_task(self._restart_event.wait())
                await asyncio.wait({stop, cut}, return_when=asyncio.FIRST_COMPLETED)
                self._collect_messages(daemon)
                if self._stop_event.is_set():
                    cut.cancel()
                    await daemon.stop()
                    return
                stop.cancel()
                self._restart_event.clear()
                await self._kill(daemon)
            await asyncio.sleep(self._power_off_s)

    def _uart_sensors(self) -> list[str]:
        return [s.id for s in self.cfg.sensors if s.kind == "dwm1001" and s.serial_port is not None]

    async def _kill(self, daemon: Daemon) -> None:
        """A power cut: the uplink and outbox stop where they stand (nothing more is committed or
        sent, no MQTT disconnect, so the broker fires the last will); the rest is shut down."""
        self._collect_messages(daemon)
        gw = daemon.gateway
        if gw is not None and gw.uplink is not None:
            gw.uplink.abandon()
        if gw is not None and gw.hardware.building is not None:
            gw.hardware.building.abandon()  # a dead gateway relinquishes nothing: the BMS keeps its last request
        await daemon.stop()
        self.daemon = None

    def _collect_messages(self, daemon: Daemon) -> None:
        """Add up the outbox counts of every life of the daemon (a power cut starts a new one)."""
        life = self._lives.setdefault(self.incarnations, {})
        gw = daemon.gateway
        if gw is not None:
            if gw.ledger is not None:
                life.update(gw.ledger.counts())
            life["decide_passes"] = gw.controller.evaluations  # rule evaluations of this life
        for key in self.messages:
            self.messages[key] = sum(life.get(key, 0) for life in self._lives.values())

    async def _drain(self) -> None:
        """Give the outbox a little wall time to deliver what the last minutes produced."""
        gw = self.daemon.gateway if self.daemon is not None else None
        if self.daemon is None or gw is None or gw.outbox is None or gw.uplink is None:
            return
        gw.outbox.cut()  # the figures are the day's: what the daemon produces while draining is not counted
        # With no broker to drain to, waiting would only let simulated time run on.
        if gw.uplink.connected.is_set():
            deadline = time.monotonic() + self.options.drain_s
            while not gw.outbox.drained() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(1.0)  # polls real-time progress of a real broker
        self._collect_messages(self.daemon)

    # -- scenario events the runtime plays ----------------------------------------------------
    async def _play_events(self, world: World, network: NetworkPath, clock: VirtualClock) -> None:
        for event in world.scheduled_events():
            wait = event.at - clock.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            log.warning("scenario %s at %s", event.kind, event.wall)
            if event.kind == "broker_down":
                await network.cut()
                if event.duration_s:
                    asyncio.get_running_loop().call_later(event.duration_s,
                                                          lambda: asyncio.ensure_future(network.restore()))
            elif event.kind == "broker_up":
                await network.restore()
            elif event.kind == "power_cut":
                self._power_off_s = event.duration_s or 60.0
                self._restart_event.set()

    async def _progress(self, clock: VirtualClock, world: World, end: float) -> None:
        report = self.options.progress
        if report is None:
            return
        start = clock.monotonic()
        while True:
            done = (clock.monotonic() - start) / max(1.0, end - start)
            report(clock.now().strftime("%H:%M"), min(1.0, done))
            await asyncio.sleep(900)


class DaemonDied(EdgeError):
    """The daemon ended before the simulated day did: the run failed, whatever the world measured."""

    def __init__(self, when: str, cause: BaseException | None) -> None:
        what = f"{type(cause).__name__}: {cause}" if cause is not None else "it stopped without an error"
        super().__init__(f"the daemon died at {when} simulated ({what})")
        self.cause = cause


class SimulationInterrupted(EdgeError):
    """The run was stopped from outside (SIGTERM, Ctrl-C) before the day ended."""


def replace_header_seed(scenario: Scenario, seed: int) -> Scenario:
    header = scenario.scenario.model_copy(update={"seed": seed})
    return scenario.model_copy(update={"scenario": header})


def cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and reap whatever a stopped simulation left behind (as asyncio.run does), quietly."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def run_simulation(options: SimulationOptions) -> int:
    """Run a scenario to its end; writes the report; returns the exit code."""
    try:
        sim = Simulation(options)
        check_daemon_paths(sim.state_dir, DaemonOptions(config_path=sim.config_path, state_dir=sim.state_dir))
    except (ConfigError, EdgeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        for line in getattr(exc, "problems", []) or []:
            print(f"  {line}", file=sys.stderr)
        return 2
    # --speed paces the floor (time moves only while the loop is idle) rather than tying it to the wall
    # clock: on a busy machine a floor tied to the wall clock outruns its own daemon, the RS-485 link's
    # deadlines (1 s, a tenth of a wall second at --speed 10) lapse and healthy nodes read as failed.
    loop = VirtualTimeLoop(pace=options.speed)
    try:
        asyncio.set_event_loop(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, sim.interrupt)
        report = loop.run_until_complete(sim.run_conventional() if options.baseline else sim.run())
    except DaemonDied as exc:
        if exc.cause is not None:
            traceback.print_exception(exc.cause, file=sys.stderr)
        print(f"error: {exc}; no report written", file=sys.stderr)
        return 1
    except SimulationInterrupted as exc:
        print(f"error: {exc}; no report written", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()
    if options.report is not None:
        options.report.parent.mkdir(parents=True, exist_ok=True)
        options.report.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0




"""Assembling the daemon's components from the configuration and a hardware backend.

This is the one place where the layers meet: the backend's buses and outputs, the sensing
pipeline, the rules and arbiter, the MQTT uplink and the control socket. Each piece is a
:class:`edge_agent.daemon.Component` with a start and a stop, so a config reload rebuilds
exactly what the configuration describes. The live objects are kept on a :class:`Gateway`
(``daemon.gateway``) for the control socket, the MQTT commands and the simulator's probe. The
parts get what they publish through as constructor arguments, in build order: the outbox and
the uplink first, then the arbiter and the pollers that report through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from drivers.ports import Clock
from edge_agent.actuation.arbiter import Arbiter
from edge_agent.actuation.consent import ConsentStore, drop_legacy_registry
from edge_agent.actuation.overrides import OverrideBook
from edge_agent.actuation.preferences import PatronPreferences
from edge_agent.actuation.recorder import TraceWriter
from edge_agent.actuation.topology import actuator_groups, channel_limits_from_config, limits_from_config
from edge_agent.availability import FloorAvailability
from edge_agent.backend import Backend
from edge_agent.calibration import CalibrationStore
from edge_agent.config import Sensor, SiteConfig, rules_file
from edge_agent.controller import FloorController
from edge_agent.daemon import Component
from edge_agent.hardware import Hardware
from edge_agent.history import ZoneRecorder
from edge_agent.operations import GatewayOperations
from edge_agent.pollers import SensorPollers
from edge_agent.privacy.budget import EpsilonBudget
from edge_agent.privacy.policy import export_loop
from edge_agent.privacy.retention import retention_loop
from edge_agent.sensing.floor import FloorModel
from edge_agent.sensing.tags import TagDirectory
from edge_agent.services import (
    MessageLedger,
    calendar_loop,
    forecast_loop,
    health_loop,
    new_outbox,
    new_uplink,
    start_control,
)
from edge_agent.site_calendar import CalendarBook
from edge_agent.sync.outbox import Outbox
from edge_agent.sync.uplink import Uplink
from edge_agent.upstream import FloorReports
from models.inference import ModelSlot
from rules import RuleSet, load_rules

if TYPE_CHECKING:
    from edge_agent.daemon import Daemon

log = logging.getLogger("edge_agent.assembly")

@dataclass
class Tuning:
    """Loop periods; the simulator may slow polls down so a day fits its wall-time budget."""

    decide_interval_s: float = 2.0
    # Seat news (a seat taken, a held seat free) passes the decide loop no sooner than this after
    # its last pass (edge_agent.controller); urgent news (motion, health, commands) at once.
    seat_news_gap_s: float = 1.0
    arbiter_interval_s: float = 0.5
    forecast_interval_s: float | None = None  # None: the config's [model] interval_s
    history_sample_s: float = 300.0
    control_socket: bool = True
    uplink: bool = True
    mqtt_timeout_s: float = 15.0  # on virtual time, a real broker's answers take "minutes": allow them
    inline_inference: bool = False  # on virtual time, keep forecasts off threads so a day repeats exactly
    inline_outbox: bool = False  # on virtual time, the outbox's SQLite on the loop (no thread hand-offs)
    node_poll_interval_s: float = 1.0
    poll_interval: Callable[[Sensor], float] = field(default=lambda s: s.poll_interval_s)
    day_type: Callable[[datetime], str] | None = None


@dataclass
class Gateway:
    """The live objects of a running daemon, as the daemon assembled them (one per configuration).

    ``availability.snapshot()`` is what the gateway shows arriving patrons, per zone
    (:class:`edge_agent.availability.ZoneAvailability`: free and ready-soon counts and seat ids),
    the same content as the retained ``zone/{zone}/availability`` messages and the floor page.
    """

    cfg: SiteConfig
    clock: Clock
    hardware: Hardware
    floor: FloorModel
    arbiter: Arbiter
    pollers: SensorPollers
    controller: FloorController
    consents: ConsentStore
    rules: RuleSet
    patrons: PatronPreferences
    calibration: CalibrationStore
    reports: FloorReports
    model: ModelSlot
    availability: FloorAvailability = field(default_factory=FloorAvailability)
    model_serving: str | None = None  # what the model slot serves, once the forecast loop has loaded it
    uplink: Uplink | None = None  # None when the tuning runs without MQTT
    outbox: Outbox | None = None
    ledger: MessageLedger | None = None
    calendar: CalendarBook | None = None  # the site calendar in force (config, or the last set_calendar)
    zone_history: ZoneRecorder | None = None  # the durable history, once the forecast loop has opened it
    tags: TagDirectory | None = None  # raw tag id -> pseudonym while heard (edge_agent.sensing.tags)
    traces: TraceWriter | None = None  # the floor-state recorder, when [rules] record_trace is on
    budget: EpsilonBudget | None = None  # the per-day epsilon account of noisy publications
    last_sweep: dict[str, float] = field(default_factory=dict)  # the retention sweep's last pass
    desks: Any = None  # edge_agent.desks.DeskInputs: the desk nodes' events, when the floor has a bridge

    def probe(self) -> dict[str, Any]:
        """What the simulator compares with its truth: seat statuses and zone people counts."""
        state = self.controller.state
        if state is None:
            return {"seats": {}, "zones": {}}
        return {
            "seats": {sid: seat.status.value for sid, seat in state.seats.items()},
            "zones": {zid: zone.people.value for zid, zone in state.zones.items()},
            "tag_positions": self.floor.tag_positions(self.clock.monotonic()),  # in process only, by pseudonym
            "tag_seats": {sid: seat.consented_tag for sid, seat in state.seats.items() if seat.consented_tag},  # ditto
        }


def tag_salt(state_dir: Path, configured: Path | None) -> bytes:
    """The key for tag pseudonyms: from the configured file, else one generated once per gateway."""
    path = configured or state_dir / "tag-salt"
    if path.exists():
        return path.read_bytes().strip()
    salt = secrets.token_hex(32).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(salt)
    return salt


async def build_components(daemon: Daemon, *, backend: Backend | None = None,
                           tuning: Tuning | None = None) -> list[Component]:
    """The components of a running gateway, in start order."""
    from edge_agent.backend import HardwareBackend

    cfg, clock = daemon.cfg, daemon.clock
    tuning = tuning or Tuning()
    backend = backend or HardwareBackend()
    state_dir = daemon.state_dir
    hardware = Hardware(cfg, backend, clock, state_dir, node_poll_interval_s=tuning.node_poll_interval_s)
    floor = FloorModel(cfg)
    rules = load_rules(rules_file(cfg, daemon.options.config_path))
    calendar = CalendarBook(cfg, state_dir)
    if calendar.problem:
        log.warning("site calendar: %s", calendar.problem)
    drop_legacy_registry(state_dir)
    consents = ConsentStore(state_dir / "consent.json", wall=clock.time)
    stack = contextlib.AsyncExitStack()
    calibration = CalibrationStore(state_dir / "calibration.json", cast(Any, clock))

    async def start_hardware() -> None:
        await hardware.open()
        ops = GatewayOperations(daemon, calibration)
        outbox = (await stack.enter_async_context(new_outbox(daemon, inline=tuning.inline_outbox))
                  if tuning.uplink else None)
        uplink = None if outbox is None else new_uplink(daemon, outbox, ops, timeout_s=tuning.mqtt_timeout_s)
        reports = FloorReports(cfg, uplink, clock)
        arbiter = Arbiter(hardware.outputs, clock, limits=limits_from_config(cfg),
                          channel_limits=channel_limits_from_config(cfg), on_event=reports.arbiter_event,
                          overrides=OverrideBook(actuator_groups(floor.topology)))
        tags = TagDirectory(tag_salt(state_dir, cfg.privacy.tag_salt_file), cfg.privacy.tag_retention_s)
        patrons = PatronPreferences(consents, tags, floor, clock.time)
        traces = trace_writer(cfg, state_dir) if cfg.rules.record_trace else None
        availability = FloorAvailability({z.id: z.name for z in cfg.zones}, ready_soon_s=cfg.sensing.ready_soon_s)
        controller = FloorController(
            cfg, floor, rules, arbiter, clock, upstream=uplink, preferences=patrons,
            day_type=tuning.day_type or calendar.day_type_at, opening=calendar.is_open,
            interval_s=tuning.decide_interval_s, on_state=traces, availability=availability,
            news_gap_s=tuning.seat_news_gap_s,
        )
        budget = EpsilonBudget.in_state_dir(state_dir, cfg.privacy.daily_epsilon, keep_days=cfg.privacy.budget_days)
        if uplink is not None:  # [privacy] at work on what is published (edge_agent.privacy.policy)
            uplink.policy.budget = budget
            uplink.policy.hours = lambda day: calendar.calendar.hours(day)  # the calendar in force, pushed or not
            uplink.commands.subject_hash = tags.subject_hash
        pollers = SensorPollers(hardware, floor, clock, daemon.supervisor,
                                tag_salt=tag_salt(state_dir, cfg.privacy.tag_salt_file),
                                on_news=controller.wake, on_seat_news=controller.seat_news,
                                interval_scale=tuning.poll_interval,
                                corrections=calibration, on_health=reports.sensor_health, tags=tags)
        desks = None
        if hardware.link is not None:  # the desks' buttons and load steps, and the nodes' PIR inputs
            from edge_agent.desks import DeskInputs

            desks = DeskInputs(cfg, floor, controller, read_now=pollers.read_now)
            hardware.link.add_listener(desks.on_node_event)
        gw = daemon.gateway = Gateway(
            cfg, clock, hardware, floor, arbiter, pollers, controller, consents, rules, patrons, calibration,
            reports, ModelSlot(state_dir / "model.onnx", isolated=not tuning.inline_inference),
            availability=availability, uplink=uplink, outbox=outbox,
            ledger=None if outbox is None else MessageLedger(outbox), calendar=calendar, tags=tags, traces=traces,
            budget=budget, desks=desks)
        if uplink is not None:
            await stack.enter_async_context(uplink)
            daemon.supervisor.start("health", lambda: health_loop(daemon, gw, uplink))
            daemon.supervisor.start("calendar", lambda: calendar_loop(daemon, gw))
            if daemon.trust is not None:  # the signed audit head, retained upstream
                daemon.trust.on_head = uplink.publish_audit_head
                daemon.supervisor.start("audit", daemon.trust.maintain)
        if tuning.control_socket:
            await start_control(stack, daemon, ops)
        if cfg.display is not None:
            await start_display(stack, gw)
        pollers.start()
        for name, job in hardware.jobs().items():
            daemon.supervisor.start(name, job)
        daemon.supervisor.start("arbiter", lambda: arbiter.run(interval_s=tuning.arbiter_interval_s))
        daemon.supervisor.start("decide", controller.run)
        interval = tuning.forecast_interval_s or cfg.model.interval_s
        daemon.supervisor.start("forecast", lambda: forecast_loop(daemon, gw, interval, tuning.history_sample_s,
                                                                  inline=tuning.inline_inference))
        daemon.supervisor.start("retention", lambda: retention_loop(daemon, gw))
        if uplink is not None and cfg.privacy.export_counts != "off":
            daemon.supervisor.start("export", lambda: export_loop(daemon, gw))
        if cfg.federation.enabled:
            from edge_agent.federation.client import federation_loop

            daemon.supervisor.start("federation", lambda: federation_loop(daemon, gw))

    async def stop_hardware() -> None:
        for name in ("decide", "arbiter", "forecast", "health", "calendar", "federation", "audit", "retention",
                     "export", *hardware.jobs()):
            await daemon.supervisor.stop_task(name)
        if daemon.trust is not None:
            daemon.trust.on_head = None
        if daemon.gateway is not None:
            await daemon.gateway.pollers.stop()
        await stack.aclose()
        await hardware.close()
        await asyncio.to_thread(consents.close)
        await asyncio.to_thread(calibration.close)
        daemon.gateway = None

    return [Component("floor", start_hardware, stop_hardware)]


async def start_display(stack: contextlib.AsyncExitStack, gw: Gateway) -> None:
    """The floor display page ([display]); without the ``http`` extra the floor runs on, and says why not."""
    try:
        import aiohttp  # noqa: F401  (the extra's one dependency)

        from edge_agent.display import FloorDisplay
    except ImportError:
        log.error("[display] is configured but aiohttp is not installed: pip install 'edge-agent[http]' "
                  "(the floor runs on without its display page)")
        return
    display = FloorDisplay(gw.cfg, lambda: gw.controller.state, gw.availability)
    await stack.enter_async_context(display)
    gw.controller.listeners.append(display.notify)


def trace_writer(cfg: SiteConfig, state_dir: Path) -> TraceWriter:
    """Record sampled floor states to ``<state_dir>/trace.jsonl`` off the event loop (one writer thread)."""
    from edge_agent.actuation.recorder import TraceRecorder

    recorder = TraceRecorder(state_dir / "trace.jsonl", max_age_s=cfg.privacy.trace_retention_h * 3600.0,
                             min_interval_s=cfg.rules.trace_interval_s)
    return TraceWriter(recorder, cfg.rules.trace_interval_s)

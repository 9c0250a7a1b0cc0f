"""The edge-agent daemon: one process per floor, everything else plugs into it.

:class:`Daemon` owns the configuration, the clock, the hardware backend and the supervised
tasks. Its life:

1. ``start()``: open the backend (real buses or the simulator), build the floor model, rules,
   arbiter, outbox/uplink, forecaster and control socket, start one supervised task per device
   poller and per service loop, then tell systemd ``READY=1``.
2. ``reload()`` (SIGHUP): read and validate the config file again; a valid one is applied
   without a restart (the parts that depend on it are rebuilt), an invalid one is logged with
   every error and the old one keeps running.
3. ``stop()`` (SIGTERM/SIGINT): stop tasks, flush the outbox, close buses, within 5 s.

Nothing here talks to hardware directly; see :mod:`edge_agent.hardware` and
:mod:`edge_agent.backend`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.errors import ConfigError, EdgeError
from drivers.ports import Clock
from edge_agent.config import SiteConfig, config_hash, load_config
from edge_agent.notify import SystemdNotifier, watchdog_interval, watchdog_loop
from edge_agent.supervisor import Supervisor

log = logging.getLogger("edge_agent.daemon")

STOP_BUDGET_S = 4.5  # SIGTERM must end the process within 5 s


@dataclass
class DaemonOptions:
    """What `edge-agent run` passes on the command line."""

    config_path: Path
    state_dir: Path | None = None
    broker: tuple[str, int] | None = None
    runtime_dir: Path | None = None
    stop_budget_s: float = STOP_BUDGET_S  # on virtual time, real I/O at shutdown needs "longer"


@dataclass
class Component:
    """Something with a lifecycle inside the daemon (built per config)."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


@dataclass
class DaemonState:
    """Small facts other parts (status, health, control) read."""

    started_clock: float = 0.0  # the daemon clock's monotonic reading at start (virtual in simulation)
    reloads: int = 0
    last_reload_error: str = ""
    faults: list[str] = field(default_factory=list)


class Daemon:
    """The running gateway (see module docstring)."""

    def __init__(
        self,
        options: DaemonOptions,
        cfg: SiteConfig,
        *,
        clock: Clock,
        notifier: SystemdNotifier | None = None,
        build: Callable[[Daemon], Awaitable[list[Component]]] | None = None,
    ) -> None:
        self.options = options
        self.cfg = cfg
        self.clock = clock
        self.notifier = notifier or SystemdNotifier()
        self.state = DaemonState()
        self.config_hash = config_hash(options.config_path)
        self.supervisor = Supervisor(on_fault=self._on_task_fault)
        self._build = build
        self._components: list[Component] = []
        self._stop_event = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.extras: dict[str, Any] = {}  # components register themselves here for status/control

    # -- paths -------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.options.state_dir or self.cfg.storage.state_dir

    @property
    def runtime_dir(self) -> Path:
        if self.options.runtime_dir is not None:
            return self.options.runtime_dir
        env = os.environ.get("RUNTIME_DIRECTORY")  # set by systemd's RuntimeDirectory=
        return Path(env.split(":")[0]) if env else self.state_dir

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.state.started_clock = self.clock.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._build is not None:
            self._components = await self._build(self)
        for comp in self._components:
            await comp.start()
        interval = watchdog_interval()
        if interval is not None:
            self.supervisor.start("watchdog", lambda: watchdog_loop(self.notifier, interval))
        self.notifier.ready(f"running: {len(self.cfg.sensors)} sensors, {len(self.cfg.actuators)} actuators")
        log.info("edge-agent running for %s/%s (%d seats, %d sensors, %d actuators), state in %s",
                 self.cfg.site.id, self.cfg.site.gateway, len(self.cfg.seats), len(self.cfg.sensors),
                 len(self.cfg.actuators), self.state_dir)

    async def stop(self) -> None:
        self.notifier.stopping()
        log.info("stopping")
        try:
            async with asyncio.timeout(self.options.stop_budget_s - 1.0):
                for comp in reversed(self._components):
                    try:
                        await comp.stop()
                    except Exception as exc:  # one component failing to stop must not block the rest
                        log.warning("stopping %s failed: %s", comp.name, exc)
        except TimeoutError:
            log.warning("components did not stop in time; exiting anyway")
        await self.supervisor.stop(grace_s=1.0)
        self.notifier.close()

    def request_stop(self) -> None:
        self._stop_event.set()

    async def wait_stopped(self) -> None:
        await self._stop_event.wait()

    async def reload(self) -> bool:
        """Re-read the config file; apply it when valid, keep the old one otherwise."""
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                new = load_config(self.options.config_path)
            except ConfigError as exc:
                self.state.last_reload_error = str(exc)
                log.error("config reload refused, the running configuration stays: %s", exc)
                for line in exc.problems:
                    log.error("  %s", line)
                self.notifier.ready("running (reload refused: invalid config)")
                return False
            old_components = self._components
            for comp in reversed(old_components):
                await comp.stop()
            self.cfg = new
            self.config_hash = config_hash(self.options.config_path)
            if self._build is not None:
                self._components = await self._build(self)
            for comp in self._components:
                await comp.start()
            self.state.reloads += 1
            self.state.last_reload_error = ""
            log.info("configuration reloaded (%s)", self.config_hash)
            self.notifier.ready("running (configuration reloaded)")
            return True

    def _on_task_fault(self, name: str, exc: BaseException, count: int) -> None:
        text = f"task {name} crashing in a loop: {type(exc).__name__}: {exc}"
        self.state.faults.append(text)
        hook = self.extras.get("on_fault")
        if callable(hook):
            hook(name, text)


def install_signal_handlers(daemon: Daemon) -> None:
    """SIGTERM/SIGINT stop; SIGHUP reloads the configuration."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, daemon.request_stop)
    loop.add_signal_handler(signal.SIGINT, daemon.request_stop)

    pending: set[asyncio.Task[bool]] = set()

    def hup() -> None:
        task = asyncio.ensure_future(daemon.reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, hup)


async def serve(daemon: Daemon) -> None:
    """Run a daemon until asked to stop (signals installed by the caller)."""
    try:
        await daemon.start()
    except EdgeError as exc:
        log.critical("cannot start: %s", exc)
        await daemon.stop()
        raise
    try:
        await daemon.wait_stopped()
    finally:
        await daemon.stop()

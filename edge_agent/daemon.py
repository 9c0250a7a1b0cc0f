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

The daemon's trust (keys, nonces, the audit log: :mod:`edge_agent.trust`) lives as long as the
daemon; a reload only gives it the new keys. Parts record what they change with :meth:`Daemon.audit`.

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
from typing import TYPE_CHECKING, Any

from drivers.errors import ConfigError, EdgeError, RulesError
from drivers.ports import Clock
from edge_agent.config import SiteConfig, config_hash, load_config, rules_file
from edge_agent.control.wire import SOCKET_PATH_MAX, socket_path_bytes, state_dir_socket
from edge_agent.notify import SystemdNotifier, watchdog_interval, watchdog_loop
from edge_agent.supervisor import Supervisor
from edge_agent.trust.artefacts import Kind
from edge_agent.trust.gateway import GatewayTrust
from rules import load_rules

if TYPE_CHECKING:
    from edge_agent.assembly import Gateway
    from edge_agent.node_operations import NodeUpdate

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
    fatal: str = ""  # why the daemon stopped itself (a background task of its own failed); empty while it runs


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
        self.supervisor = Supervisor(on_fault=self._on_task_fault, clock=clock)
        self._build = build
        self._components: list[Component] = []
        self._stop_event = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.gateway: Gateway | None = None  # the live objects while the components run (edge_agent.assembly)
        self.node_updates: dict[int, NodeUpdate] = {}  # bridge nodes' firmware updates of this daemon's life
        self.trust: GatewayTrust | None = None  # keys, nonces and the audit log, open while the daemon runs

    # -- paths -------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.options.state_dir or self.cfg.storage.state_dir

    @property
    def control_socket(self) -> Path:
        return control_socket_path(self.state_dir, self.options)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.state.started_clock = self.clock.monotonic()
        check_daemon_paths(self.state_dir, self.options)
        cfg = self.cfg
        self.trust = await GatewayTrust(self.state_dir, cfg.site.id, cfg.site.gateway, cfg.security, cfg.audit,
                                        self.clock).open()
        self.audit("start", {"config_hash": self.config_hash, **self.trust.ring.summary()})
        try:
            await self._start_components()
        except BaseException:
            await self._stop_components()  # what did start (an uplink, an outbox) must not linger
            raise
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
                await self._stop_components()
        except TimeoutError:
            log.warning("components did not stop in time; exiting anyway")
        for task in list(self._background):
            task.cancel()
        await self.supervisor.stop(grace_s=1.0)
        if self.trust is not None:
            self.audit("stop", {"config_hash": self.config_hash})
            await self.trust.close()
        self.notifier.close()

    def request_stop(self) -> None:
        self._stop_event.set()

    async def wait_stopped(self) -> None:
        await self._stop_event.wait()

    def check_config(self) -> SiteConfig:
        """Read and validate the config file and the rule file it names (ConfigError/RulesError)."""
        new = load_config(self.options.config_path)
        path = rules_file(new, self.options.config_path)
        load_rules(path)
        return new

    async def reload(self) -> bool:
        """Re-read the config file; apply it when valid, keep the old one otherwise.

        Either way an upstream ``config_reloaded`` event says what happened: sent by the rebuilt
        components when the new config applies, by the running ones when it is refused.
        """
        async with self._reload_lock:
            self.notifier.reloading()
            old_hash = self.config_hash
            try:
                new = self.check_config()
            except (ConfigError, RulesError) as exc:
                self.refuse_reload(str(exc), getattr(exc, "problems", []) or [])
                return False
            await self._stop_components()
            old_cfg, self.cfg = self.cfg, new
            self.config_hash = config_hash(self.options.config_path)
            try:
                await self._start_components()
            except Exception as exc:  # the new config cannot run here: go back to the one that did
                log.exception("the new configuration could not start; going back to the running one")
                await self._stop_components()
                self.cfg, self.config_hash = old_cfg, old_hash
                await self._start_components()
                self.refuse_reload(f"it did not start: {type(exc).__name__}: {exc}", [])
                return False
            self.state.reloads += 1
            self.state.last_reload_error = ""
            if self.trust is not None:
                self.trust.use(new.site.id, new.site.gateway, new.security, new.audit)
                self.audit("config", {"ok": True, "config_hash": self.config_hash, "previous_hash": old_hash,
                                      **self.trust.ring.summary()})
            log.info("configuration reloaded (%s)", self.config_hash)
            self.publish_event("config_reloaded", {"ok": True, "config_hash": self.config_hash,
                                                   "previous_hash": old_hash})
            self.notifier.ready("running (configuration reloaded)")
            return True

    def schedule_reload(self) -> None:
        """Reload soon, in a task of the daemon's own: asked for over MQTT, the reload rebuilds the
        uplink that carries the request, so it must not run inside that request, and it waits
        (bounded) for the request's result to reach the broker first."""
        self.track(asyncio.get_running_loop().create_task(self._reload_soon(), name="reload"))

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep a one-off task of the daemon's own (a reload) until it ends; one that fails stops the daemon.

        A reload that raises has gone past every fallback (the running configuration could not be
        started again either), so the floor may be left without its components: nothing would say
        so, as nobody awaits the task. Its error is logged with the traceback, kept as
        ``state.fatal``, and the daemon stops; :func:`serve` then fails, and systemd starts the
        service again (``Restart=on-failure``).
        """
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        self.state.fatal = f"{task.get_name()} failed: {type(exc).__name__}: {exc}"
        log.critical("%s; stopping, for the service manager to start the daemon again", self.state.fatal,
                     exc_info=exc)
        self.request_stop()

    async def _reload_soon(self, settle_s: float = 0.5, within_s: float = 10.0) -> None:
        await self.clock.sleep(settle_s)  # the result is cached and enqueued right after the command returns
        deadline = self.clock.monotonic() + within_s
        while (gw := self.gateway) is not None and gw.outbox is not None and not gw.outbox.drained() \
                and self.clock.monotonic() < deadline:
            await self.clock.sleep(0.1)
        await self.reload()

    def refuse_reload(self, reason: str, problems: list[str]) -> None:
        self.state.last_reload_error = reason
        self.audit("config", {"ok": False, "config_hash": self.config_hash, "error": reason.splitlines()[0][:300]})
        log.error("config reload refused, the running configuration stays: %s", reason)
        for line in problems:
            log.error("  %s", line)
        self.publish_event("config_reloaded", {"ok": False, "config_hash": self.config_hash,
                                               "error": reason.splitlines()[0][:500]}, severity="error")
        self.notifier.ready("running (reload refused: invalid config)")

    async def _start_components(self) -> None:
        self._components = await self._build(self) if self._build is not None else []
        for comp in self._components:
            await comp.start()

    async def _stop_components(self) -> None:
        components, self._components = self._components, []
        for comp in reversed(components):
            try:
                await comp.stop()
            except Exception as exc:  # one component failing to stop must not block the rest
                log.warning("stopping %s failed: %s", comp.name, exc)

    def publish_event(self, kind: str, data: dict[str, Any], *, severity: str = "info") -> None:
        """An upstream event through the running uplink (dropped, with a log line, while there is none)."""
        uplink = self.gateway.uplink if self.gateway is not None else None
        if uplink is None:
            log.info("event %s not published (no uplink): %s", kind, data)
            return
        uplink.publish_event(kind, data, severity=severity)

    def audit(self, kind: str, data: dict[str, Any], *, actor: str = "gateway") -> None:
        """One record in the audit log (queued; never blocks, never raises)."""
        if self.trust is not None:
            self.trust.record(kind, actor, data)

    def check_artefact(self, kind: Kind, sha256: str, size: int, signature: dict[str, Any] | None, *,
                       actor: str) -> str | None:
        """The model-publisher key that signed a model or firmware image (TrustError when refused)."""
        return None if self.trust is None else self.trust.check_artefact(kind, sha256, size, signature, actor=actor)

    def _on_task_fault(self, name: str, exc: BaseException, count: int) -> None:
        text = f"task {name} crashing in a loop: {type(exc).__name__}: {exc}"
        self.state.faults.append(text)
        self.publish_event("task_fault", {"task": name, "error": f"{type(exc).__name__}: {exc}"[:500],
                                          "crashes": count}, severity="error")


def control_socket_path(state_dir: Path, options: DaemonOptions) -> Path:
    """The runtime directory's ``control.sock`` (``options.runtime_dir``, systemd's RuntimeDirectory=),
    else the state directory's socket (a short stand-in when the state directory is deep)."""
    runtime = options.runtime_dir
    env = os.environ.get("RUNTIME_DIRECTORY")  # set by systemd's RuntimeDirectory=
    if runtime is None and env:
        runtime = Path(env.split(":")[0])
    return runtime / "control.sock" if runtime is not None else state_dir_socket(state_dir)


def check_daemon_paths(state_dir: Path, options: DaemonOptions) -> None:
    """Refuse, in one line naming the path and the limit, paths a daemon could not work with."""
    usable_state_dir(state_dir)
    sock = control_socket_path(state_dir, options)
    if socket_path_bytes(sock) > SOCKET_PATH_MAX:
        raise ConfigError(f"control socket path {sock} is {socket_path_bytes(sock)} bytes; a unix socket path "
                          f"holds at most {SOCKET_PATH_MAX}: choose a shorter runtime directory")


def usable_state_dir(path: Path) -> None:
    """Create the state directory if needed and prove it takes files; ConfigError in one line if not."""
    probe = path / f".write-test-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"state directory {path} is not usable: {exc.strerror or exc}; give a writable directory "
                          "with --state-dir or [storage] state_dir") from exc


def install_signal_handlers(daemon: Daemon) -> None:
    """SIGTERM/SIGINT stop; SIGHUP reloads the configuration."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, daemon.request_stop)
    loop.add_signal_handler(signal.SIGINT, daemon.request_stop)

    def hup() -> None:
        daemon.track(loop.create_task(daemon.reload(), name="reload"))

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
    if daemon.state.fatal:
        raise EdgeError(daemon.state.fatal)

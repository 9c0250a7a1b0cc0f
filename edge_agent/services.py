"""The daemon's upstream services: MQTT uplink with its outbox, health, forecasts, control socket.

The outbox, the uplink and the control socket are entered in an :class:`contextlib.AsyncExitStack`
owned by the daemon's components, so stopping (or reloading) closes them in the right order:
control socket, uplink, then the outbox, which flushes last. Loops keep time with the daemon's
clock (virtual in the simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import resource
import stat
import time
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.errors import ConfigError
from edge_agent.config import SiteConfig
from edge_agent.control.wire import SHORT_RUNTIME_ROOT
from edge_agent.sync.outbox import Outbox, open_path
from edge_agent.sync.uplink import Uplink

if TYPE_CHECKING:
    from edge_agent.assembly import Gateway
    from edge_agent.daemon import Daemon
    from edge_agent.operations import GatewayOperations
    from edge_agent.upstream import Upstream

log = logging.getLogger("edge_agent.services")


def software_version() -> str:
    try:
        return version("edge-agent")
    except PackageNotFoundError:
        return "0+unknown"


def with_broker(cfg: SiteConfig, broker: tuple[str, int] | None) -> SiteConfig:
    """The config with ``--broker HOST:PORT`` applied."""
    if broker is None:
        return cfg
    return cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"host": broker[0], "port": broker[1]})})


def new_outbox(daemon: Daemon, *, inline: bool = False) -> Outbox:
    """The outbox in the state directory, bounded as configured (enter it in the daemon's stack).

    ``inline`` keeps its database on the loop's thread: for virtual time only (see :class:`Outbox`).
    """
    cfg = daemon.cfg
    return Outbox(open_path(daemon.state_dir), max_bytes=cfg.storage.outbox_max_bytes,
                  max_age_s=cfg.storage.outbox_max_age_h * 3600.0, clock=daemon.clock, inline=inline)


def new_uplink(daemon: Daemon, outbox: Outbox, ops: GatewayOperations, *, timeout_s: float = 15.0) -> Uplink:
    """The uplink for this configuration (``--broker`` applied); entering it starts the connection."""
    cfg = with_broker(daemon.cfg, daemon.options.broker)
    clock: Any = daemon.clock  # SystemClock and VirtualClock both carry `synced`
    uplink = Uplink(cfg, outbox, clock, ops, version=software_version(), config_hash=daemon.config_hash,
                    timeout_s=timeout_s, guard=daemon.trust)
    if daemon.trust is not None:
        uplink.signer = daemon.trust.sign_document
    return uplink


class MessageLedger:
    """Outbox messages of one daemon life: produced, delivered (PUBACKed), dropped by the bounds.

    Retained state (status, seat states) is last-value: a superseded value is not a message. After
    :meth:`Outbox.cut` only what was produced by the cut counts (the simulator's end of day).
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._dropped_at_start = outbox.stats().dropped

    def counts(self) -> dict[str, int]:
        ob = self.outbox
        if ob.cut_seq is not None:
            return {"produced": ob.rows_put_by_cut, "delivered": ob.rows_acked_by_cut,
                    "dropped": max(0, ob.dropped_by_cut - self._dropped_at_start)}
        return {"produced": ob.rows_put, "delivered": ob.rows_acked,
                "dropped": max(0, ob.stats().dropped - self._dropped_at_start)}


async def health_loop(daemon: Daemon, gw: Gateway, upstream: Upstream) -> None:
    """Periodic health upstream: sensor health, CPU share and RSS of this process.

    The period is the daemon's clock; the CPU share is measured against real time, as it is the
    process's own cost (in a simulation too).
    """
    last_cpu, last_wall = time.process_time(), time.monotonic()
    while True:
        await daemon.clock.sleep(daemon.cfg.mqtt.health_interval_s)
        cpu, wall = time.process_time(), time.monotonic()
        cpu_percent = 100.0 * (cpu - last_cpu) / max(1e-6, wall - last_wall)
        last_cpu, last_wall = cpu, wall
        healthy = sum(1 for sid in gw.hardware.sensors if gw.pollers.healthy(sid))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        upstream.publish_health(sensors_healthy=healthy, sensors_unhealthy=len(gw.hardware.sensors) - healthy,
                                cpu_percent=round(cpu_percent, 2), rss_bytes=rss, ghosts=gw.controller.ghosts.stats())


def publish_calendar(gw: Gateway) -> dict[str, Any]:
    """Publish the site calendar in force (retained ``calendar``); returns what was published."""
    if gw.calendar is None:
        return {}
    state = gw.calendar.describe(gw.controller.wall().date())
    if gw.uplink is not None:
        gw.uplink.publish_calendar(state)
    return state


async def calendar_loop(daemon: Daemon, gw: Gateway) -> None:
    """The retained ``calendar`` at start and just after every local midnight (its ``today`` moves on)."""
    while True:
        publish_calendar(gw)
        now = gw.controller.wall()
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), now.tzinfo)
        await daemon.clock.sleep((midnight - now).total_seconds() + 1.0)


ISOLATED_MODEL_GRACE_S = 10.0  # the first forecast of a daemon whose model runs in a child process


async def forecast_loop(daemon: Daemon, gw: Gateway, interval_s: float, sample_s: float = 300.0,
                        *, inline: bool = False) -> None:
    """Feed zone counts into the edge history (and its durable store) and forecast every ``interval_s``
    (in a worker thread), with the site calendar in force.

    ``inline`` runs inference on the loop instead: on virtual time a thread's result would land at
    a simulated moment that depends on wall-clock luck, and the simulated day would not repeat.
    """
    from edge_agent.history import ZoneRecorder

    slot = gw.model
    if slot.isolated:  # its child process (about 0.4 s of CPU here) waits until start-up is over
        await daemon.clock.sleep(ISOLATED_MODEL_GRACE_S)
    if gw.model_serving is None:
        gw.model_serving = slot.load() if inline else await asyncio.to_thread(slot.load)
        log.info("forecast model: %s", gw.model_serving)
    capacity = {z.id: float(len(daemon.cfg.seats_in(z.id))) or None for z in daemon.cfg.zones}
    opened = (capacity, daemon.state_dir, daemon.cfg.history.retention_days, gw.controller.wall().replace(tzinfo=None))
    recorder = ZoneRecorder.open(*opened) if inline else await asyncio.to_thread(ZoneRecorder.open, *opened)
    log.info("zone history: %s", recorder.problem or f"{recorder.warmed} slots loaded from the store")
    gw.zone_history = recorder
    histories, book = recorder.histories, gw.calendar
    next_forecast = 0.0
    try:
        while True:
            state = gw.controller.state
            now_mono = daemon.clock.monotonic()
            if state is None:
                await daemon.clock.sleep(sample_s)
                continue
            wall = gw.controller.wall().replace(tzinfo=None)
            counts = {zid: (float(z.people.value), float(z.free)) for zid, z in state.zones.items()
                      if z.people.value is not None}
            recorder.note(wall, counts)
            if inline:
                recorder.commit(wall, counts)
            else:
                await asyncio.to_thread(recorder.commit, wall, counts)
            calendar = book.calendar if book is not None else None
            if now_mono >= next_forecast:
                next_forecast = now_mono + interval_s
                if inline:
                    forecast = slot.predict({z: h.snapshot() for z, h in histories.items()}, wall, calendar)
                else:
                    forecast = await slot.forecast(histories, wall, calendar)
                for zid, horizons in forecast.items():
                    gw.floor.set_forecast(zid, {h: q[1] for h, q in horizons.items()})
                    if gw.uplink is not None:
                        gw.uplink.publish_forecast(zid, {h: (q[1], q[0], q[2]) for h, q in horizons.items()})
            await daemon.clock.sleep(sample_s)
    finally:
        recorder.close()


def private_dir(path: Path) -> None:
    """A directory in a shared place (``/tmp``) that only this user may use; refuse one someone else made."""
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigError(f"{path} is not a directory of uid {os.geteuid()}; remove it and start again")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


async def start_control(stack: contextlib.AsyncExitStack, daemon: Daemon, ops: GatewayOperations) -> Path:
    """The technicians' unix socket in the runtime directory (group of the service when it exists)."""
    from edge_agent.control.server import ControlServer

    path = daemon.control_socket
    if path.parent.parent == SHORT_RUNTIME_ROOT:
        private_dir(path.parent)
    group: str | None = None
    with contextlib.suppress(KeyError):
        group = grp.getgrgid(os.getegid()).gr_name if os.geteuid() != 0 else grp.getgrnam("edge-agent").gr_name
    await stack.enter_async_context(ControlServer(path, ops, group=group, guard=daemon.trust))
    return path


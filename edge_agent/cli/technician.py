"""Technicians' commands on a live gateway: status, sensors list/read/watch, actuators list/test.

Everything goes through the daemon's control socket: the daemon owns the buses, so a second
process poking /dev/i2c-1 would race it. The one exception: with no daemon running, ``sensors
list`` shows the configuration and ``sensors read`` reads the sensor directly, through the same
backend and driver code the daemon uses (:meth:`edge_agent.hardware.Hardware.read_once`), and
says so.

Output is a readable table by default and JSON with ``--json`` (for scripts). Every failure ends
with one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from drivers.errors import EdgeError, PortUnavailableError
from edge_agent.control.client import (
    START_HINT,
    ControlClient,
    DaemonNotRunning,
    configured_state_dir,
    resolve_socket,
)
from edge_agent.control.wire import unknown_id_message

DEFAULT_CONFIG = "/etc/edge-agent/gateway.toml"
CONFIG_ENV = "EDGE_AGENT_CONFIG"

F = TypeVar("F", bound=Callable[..., Any])


# ---- shared plumbing (also used by calibrate_cmd and doctor_cmd) ------------------------------


def control_options(func: F) -> F:
    """--socket, --config and --json, shared by every command that talks to the daemon."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(func)
    func = click.option(
        "--config", "config_path", envvar=CONFIG_ENV, default=DEFAULT_CONFIG, show_default=True,
        type=click.Path(dir_okay=False), help="Site configuration (used to find the socket in simulated runs).",
    )(func)  # fmt: skip
    func = click.option(
        "--socket", "socket_path", default=None,
        help="Control socket [default: $EDGE_AGENT_SOCKET, /run/edge-agent/control.sock, <state_dir>/control.sock].",
    )(func)  # fmt: skip
    return func


def load_site(config_path: str | None) -> Any:
    """The site config if it exists and is valid, else None (the socket search then skips state_dir)."""
    if not config_path or not Path(config_path).is_file():
        return None
    from edge_agent.config import load_config

    try:
        return load_config(config_path)
    except EdgeError:
        return None


@contextlib.contextmanager
def daemon(socket_path: str | None, config_path: str | None) -> Iterator[ControlClient]:
    """A connected client; every control failure becomes one clear ClickException line."""
    state_dir = configured_state_dir(config_path) if not socket_path else None
    try:
        with ControlClient(resolve_socket(socket_path, state_dir)) as client:
            yield client
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from None


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table: readable over SSH, greppable, no box drawing."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def clock_time(wall: float | None) -> str:
    """Wall time as local HH:MM:SS (date added when not today)."""
    if wall is None:
        return "-"
    t = time.localtime(wall)
    fmt = "%H:%M:%S" if time.strftime("%Y%m%d", t) == time.strftime("%Y%m%d") else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, t)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{seconds:.0f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def parse_duration(text: str) -> float:
    """``10s``, ``2m``, ``1m30s``, ``1h`` or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"{text!r} is not a duration; write it like 10s, 2m or 1m30s")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


# ---- status -----------------------------------------------------------------------------------


@click.command()
@control_options
def status(socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Gateway, broker connection, outbox depth, clock sync, sensor health, last actuation."""
    with daemon(socket_path, config_path) as client:
        st = client.request("status")
    if as_json:
        emit_json(st)
        return
    broker, outbox = st.get("broker") or {}, st.get("outbox") or {}
    unhealthy = st.get("sensors_unhealthy") or []
    mode = "  SIMULATED" if st.get("simulated") else ""
    rows = [
        ("gateway", f"{st.get('site')} / {st.get('gateway')} (pid {st.get('pid')}, up {duration(st.get('uptime_s'))})"
         + mode),
        ("broker", f"{'connected' if broker.get('connected') else 'DISCONNECTED'} {broker.get('host')}:"
         f"{broker.get('port')} since {clock_time(broker.get('since'))}"
         + (f" ({broker['last_error']})" if broker.get("last_error") and not broker.get("connected") else "")),
        ("outbox", f"{outbox.get('depth', 0)} waiting, {outbox.get('bytes', 0)} B, oldest "
         f"{duration(outbox.get('oldest_age_s'))}"),
        ("clock", "synchronised" if st.get("clock_synced") else "NOT synchronised (timestamps marked unsynced)"),
        ("sensors", f"{st.get('sensors_healthy', 0)} healthy, {len(unhealthy)} unhealthy"
         + (f": {', '.join(unhealthy)}" if unhealthy else "")),
    ]  # fmt: skip
    last = st.get("last_actuation")
    rows.append(
        ("last action", f"{last['actuator']} -> {_cell(last['value'])} at {clock_time(last['at'])} by {last['source']}")
        if last else ("last action", "none yet")
    )  # fmt: skip
    rows += [("FAULT", fault) for fault in st.get("faults") or []]
    for name, text in rows:
        click.echo(f"{name:<12}{text}")


# ---- sensors list / read / watch --------------------------------------------------------------


def _values(values: dict[str, float] | None) -> str:
    return ", ".join(f"{q} {_cell(float(v))}" for q, v in (values or {}).items()) or "-"


@click.command("list")
@control_options
def sensors_list(socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Every configured sensor with its health and last values (unhealthy first)."""
    try:
        with ControlClient(_socket(socket_path, config_path)) as client:
            infos = client.request("sensors")
    except DaemonNotRunning as exc:
        infos = _configured_sensors(config_path, exc)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from None
    infos = sorted(infos, key=lambda s: (bool(s.get("healthy")), s.get("id", "")))
    if as_json:
        emit_json(infos)
        return
    rows = [
        (s["id"], s.get("kind"), s.get("zone"), s.get("bus"), _address(s.get("address")), s.get("healthy"),
         _values(s.get("last_values")), duration(s.get("last_good_age_s")), s.get("reason") or "")
        for s in infos
    ]  # fmt: skip
    click.echo(table(["id", "kind", "zone", "bus", "addr", "healthy", "last values", "age", "reason"], rows))


@click.command("read")
@click.argument("sensor_id")
@click.option("--show-position", is_flag=True,
              help="Also show a UWB tag's x/y (a person's badge: on the gateway only; recorded in the audit log).")
@control_options
def sensors_read(sensor_id: str, show_position: bool, socket_path: str | None, config_path: str | None,
                 as_json: bool) -> None:
    """A fresh reading of one sensor, raw and calibrated (a UWB tag's position only with --show-position)."""
    try:
        with ControlClient(_socket(socket_path, config_path)) as client:
            args: dict[str, Any] = {"show_position": True} if show_position else {}
            reading = client.request("read_sensor", sensor=sensor_id, **args)
    except DaemonNotRunning as exc:
        if show_position:  # the daemon records who looked in the audit log; a direct read could not
            raise click.ClickException(f"{exc}; --show-position needs the running daemon, which records the "
                                       "look in the audit log: start it, or read without --show-position") from None
        reading = _read_directly(config_path, sensor_id, exc)
        for key in ("raw", "calibrated", "units"):
            reading[key] = {q: v for q, v in reading[key].items() if q not in ("x", "y", "z")}
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        emit_json(reading)
        return
    for line in reading_lines(reading):
        click.echo(line)


@click.command("watch")
@click.argument("sensor_id")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=2.0, show_default=True, help="Seconds.")
@click.option("--count", type=click.IntRange(0), default=0, help="Stop after N readings (0: until Ctrl-C).")
@control_options
def sensors_watch(
    sensor_id: str, interval: float, count: int, socket_path: str | None, config_path: str | None, as_json: bool
) -> None:
    """Read a sensor again and again: updates in place on a terminal, one line per reading otherwise."""
    in_place = sys.stdout.isatty() and not as_json
    shown = 0
    n = 0
    with daemon(socket_path, config_path) as client:
        try:
            while count == 0 or n < count:
                if n:
                    time.sleep(interval)
                try:
                    reading = client.request("read_sensor", sensor=sensor_id)
                except EdgeError as exc:
                    if n == 0:
                        raise
                    reading = {"id": sensor_id, "error": str(exc)}
                n += 1
                if as_json:
                    click.echo(json.dumps({"t": time.time(), **reading}, default=str))
                elif in_place:
                    lines = [f"{clock_time(time.time())}  #{n}", *reading_lines(reading)]
                    if shown:
                        click.echo(f"\x1b[{shown}F", nl=False)  # back to the first line of the last block
                    for line in lines:
                        click.echo("\x1b[2K" + line)
                    shown = len(lines)
                else:
                    click.echo(f"{clock_time(time.time())}  {sensor_id}  {_one_line(reading)}")
        except KeyboardInterrupt:
            click.echo("")


def reading_lines(reading: dict[str, Any]) -> list[str]:
    """A reading as aligned lines: quantity, calibrated value with unit, raw value."""
    if "error" in reading:
        return [f"{reading.get('id')}: read failed: {reading['error']}"]
    units = reading.get("units") or {}
    raw = reading.get("raw") or {}
    note = f"  -- {reading['note']}" if reading.get("note") else ""
    lines = [f"{reading.get('id')} ({reading.get('kind')}){note}"]
    for q, v in (reading.get("calibrated") or {}).items():
        r = raw.get(q)
        lines.append(f"  {q:<12}{_cell(float(v)):>10} {units.get(q, ''):<4}  raw {_cell(r)}")
    th = reading.get("thermal")
    if th:
        lines.append(
            f"  {'thermal':<12}max {th['max_c']:.1f} °C  min {th['min_c']:.1f} °C  mean {th['mean_c']:.1f} °C  "
            f"people {th['people']}"
        )
    if reading.get("measuring_for_s") is not None:
        lines.append(f"  {'measuring':<12}{duration(reading['measuring_for_s'])} (periodic)")
    if reading.get("position_age_s") is not None:
        lines.append(f"  {'fix age':<12}{duration(reading['position_age_s']):>10}       (shown on request; audited)")
    return lines


def _one_line(reading: dict[str, Any]) -> str:
    if "error" in reading:
        return f"read failed: {reading['error']}"
    parts = [f"{q} {_cell(float(v))}" for q, v in (reading.get("calibrated") or {}).items()]
    th = reading.get("thermal")
    if th:
        parts.append(f"max {th['max_c']:.1f} people {th['people']}")
    return "  ".join(parts)


def _address(address: int | None) -> str | None:
    return None if address is None else f"0x{address:02x}"


def _socket(socket_path: str | None, config_path: str | None) -> Path:
    return resolve_socket(socket_path, configured_state_dir(config_path) if not socket_path else None)


def _configured_sensors(config_path: str | None, why: DaemonNotRunning) -> list[dict[str, Any]]:
    """No daemon: list the configuration, clearly marked as such (health is unknown)."""
    site = load_site(config_path)
    if site is None:
        raise click.ClickException(f"{why}; and no readable config at {config_path} to list sensors from")
    click.echo(f"daemon not running: showing the configuration in {config_path}, health unknown; {START_HINT}",
               err=True)  # fmt: skip
    return [
        {"id": s.id, "kind": s.kind, "zone": s.zone, "bus": s.bus, "address": s.address, "healthy": None,
         "reason": "daemon not running", "last_values": {}, "last_good_age_s": None}
        for s in site.sensors
    ]  # fmt: skip


def _read_directly(config_path: str | None, sensor_id: str, why: DaemonNotRunning) -> dict[str, Any]:
    """No daemon: build the sensor's driver as the daemon does, on the gateway's own ports, and read it.

    The bus is opened by the same backend code the daemon uses (``/dev/i2c-N`` through smbus2,
    gpiozero's pin factory, the tag's tty or BLE), so only a port that really cannot be opened
    ends in "cannot be opened"; a part that does not answer is reported as a failed read.
    """
    site = load_site(config_path)
    if site is None:
        raise click.ClickException(str(why))
    sensors = {s.id: s for s in site.sensors}
    if sensor_id not in sensors:
        raise click.ClickException(unknown_id_message("sensor", sensor_id, sensors))
    sensor = sensors[sensor_id]
    from edge_agent.backend import HardwareBackend
    from edge_agent.clock import SystemClock
    from edge_agent.hardware import DaemonOnlyError, Hardware

    hardware = Hardware(site, HardwareBackend(), SystemClock(), site.storage.state_dir)
    where = _port_name(site, sensor)
    try:
        readings = asyncio.run(hardware.read_once(sensor))
    except DaemonOnlyError as exc:
        raise click.ClickException(f"daemon not running, and {exc}: it is not on the gateway's own ports, "
                                   f"only the daemon reads it; {START_HINT}") from None
    except PortUnavailableError as exc:
        raise click.ClickException(f"daemon not running, and {where} cannot be opened directly ({exc}); "
                                   f"{START_HINT}") from None
    except EdgeError as exc:
        raise click.ClickException(f"direct read of {sensor_id} on {where} failed: {exc}") from None
    values = {r.quantity: r.value for r in readings}
    click.echo(f"daemon not running; read directly from {where} (no calibration applied)", err=True)
    return {"id": sensor_id, "kind": sensor.kind, "raw": values, "calibrated": values,
            "units": {r.quantity: sensor.part.unit(r.quantity) for r in readings},
            "note": f"direct from {where}, pid {os.getpid()}"}  # fmt: skip


def _port_name(site: Any, sensor: Any) -> str:
    """Where a direct read went: the root I2C device, the GPIO pin, the tag's tty or BLE address."""
    buses = {b.id: b for b in site.buses}
    bus = buses.get(sensor.bus or "")
    while bus is not None and bus.kind == "mux":
        bus = buses.get(bus.parent or "")
    if bus is not None:
        return str(bus.device or bus.id)
    if sensor.pin is not None:
        return f"GPIO{sensor.pin}"
    return str(sensor.serial_port or sensor.ble_address or sensor.id)


# ---- actuators --------------------------------------------------------------------------------


@click.group()
def actuators() -> None:
    """List actuators; test one with a timed override."""


@actuators.command("list")
@control_options
def actuators_list(socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Every actuator: last commanded value, read-back, and who holds it."""
    with daemon(socket_path, config_path) as client:
        items = client.request("actuators")
    if as_json:
        emit_json(items)
        return
    rows = [(a["id"], a.get("kind"), a.get("zone"), a.get("value"), a.get("read_back"), a.get("source"),
             a.get("healthy")) for a in items]  # fmt: skip
    click.echo(table(["id", "kind", "zone", "value", "read back", "held by", "healthy"], rows))


@actuators.command("test")
@click.argument("actuator_id")
@click.option("--level", type=float, required=True, help="Light/lamp 0..1, desk height mm, indicator code.")
@click.option("--for", "for_", default="10s", show_default=True, help="How long to hold it (10s, 2m; max 10m).")
@control_options
def actuators_test(
    actuator_id: str, level: float, for_: str, socket_path: str | None, config_path: str | None, as_json: bool
) -> None:
    """Override one actuator for a while through the arbiter; its previous value comes back afterwards."""
    seconds = parse_duration(for_)
    if not 0 < seconds <= 600:
        raise click.BadParameter("must be between 1s and 10m", param_hint="--for")
    with daemon(socket_path, config_path) as client:
        result = client.request("actuator_test", actuator=actuator_id, level=level, duration_s=seconds)
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"{result['actuator']}: holding {_cell(float(result['level']))} for {duration(result['duration_s'])}; "
        f"restores to {_cell(result.get('previous'))} at {clock_time(result.get('restores_at'))}"
    )


"""``edge-agent calibrate``: calibrate a sensor against a reference, undo, and show history.

The checks that need no daemon run first, so a mistyped reference is refused at once with its
reason (physical range; for CO2 the FRC range). Then the sensor is looked up through the daemon:
an unknown id lists the closest ones, and an unhealthy sensor is refused (calibrating a part
that is failing bakes its fault into the coefficients). The daemon re-checks all of it.
"""

from __future__ import annotations

from typing import Any

import click

from edge_agent.calibration import CalibrationError, check_frc, check_frc_reference, check_reference
from edge_agent.cli.technician import _cell, clock_time, control_options, daemon, emit_json, table
from edge_agent.control.client import ControlClient
from edge_agent.control.wire import unknown_id_message

KIND_QUANTITY = {"light": "lux", "temperature": "temperature", "humidity": "humidity", "co2": "co2",
                 "thermal": "thermal", "uwb-anchor": "position", "weight": "mass"}  # fmt: skip


@click.group()
def calibrate() -> None:
    """Calibrate a sensor against a reference; --undo the last change; history."""


def _refuse(exc: CalibrationError) -> click.ClickException:
    return click.ClickException(str(exc))


def _preflight(client: ControlClient, sensor_id: str) -> dict[str, Any]:
    """The sensor's entry from the daemon; refuse unknown ids (with the closest) and unhealthy sensors."""
    infos = {s["id"]: s for s in client.request("sensors")}
    if sensor_id not in infos:
        raise click.ClickException(unknown_id_message("sensor", sensor_id, infos))
    info: dict[str, Any] = infos[sensor_id]
    if not info.get("healthy"):
        raise click.ClickException(
            f"{sensor_id} is unhealthy ({info.get('reason') or 'no recent good reading'}); fix it before calibrating "
            f"(see: edge-agent sensors read {sensor_id})"
        )
    return info


def _show(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    ref = f" against {_cell(result['reference'])}" if result.get("reference") is not None else ""
    raw = f" (sensor read {_cell(result['raw'])})" if result.get("raw") is not None else ""
    click.echo(f"{result['sensor']} {result['quantity']}: {result['action']}{ref}{raw}")
    click.echo(f"  {_coefficients(result.get('old'))}  ->  {_coefficients(result.get('new'))}")
    if result.get("note"):
        click.echo(f"  {result['note']}")


def _coefficients(value: Any) -> str:
    if isinstance(value, dict) and value:
        return " ".join(f"{k} {_cell(v)}" for k, v in value.items())
    return "-"


def _undo(client: ControlClient, sensor_id: str, kind: str, as_json: bool) -> None:
    _show(client.request("calibrate_undo", sensor=sensor_id, quantity=KIND_QUANTITY[kind]), as_json)


def _offset_command(kind: str, unit: str, quantity: str) -> click.Command:
    """temperature and humidity: the same one-point offset procedure."""

    @click.command(kind, help=f"Offset from a reference {kind} reading ({unit}).")
    @click.argument("sensor_id")
    @click.option("--reference", type=float, help=f"What the reference instrument shows, {unit}.")
    @click.option("--undo", is_flag=True, help="Restore the coefficients from before the last change.")
    @control_options
    def command(
        sensor_id: str, reference: float | None, undo: bool, socket_path: str | None, config_path: str | None,
        as_json: bool,
    ) -> None:  # fmt: skip
        if not undo and reference is None:
            raise click.UsageError("give --reference VALUE (or --undo)")
        if reference is not None:
            try:
                check_reference(quantity, reference)
            except CalibrationError as exc:
                raise _refuse(exc) from None
        with daemon(socket_path, config_path) as client:
            if undo:
                _undo(client, sensor_id, kind, as_json)
                return
            _preflight(client, sensor_id)
            assert reference is not None
            _show(client.request("calibrate", sensor=sensor_id, quantity=quantity, reference=reference), as_json)

    return command


calibrate.add_command(_offset_command("temperature", "°C", "temperature"))
calibrate.add_command(_offset_command("humidity", "%RH", "humidity"))


@calibrate.command("light")
@click.argument("sensor_id")
@click.option("--reference", type=float, multiple=True, help="Lux-meter reading; give two for a two-point fit.")
@click.option("--fresh", is_flag=True, help="Start a new session (do not pair with a recent point).")
@click.option("--yes", "-y", is_flag=True, help="Do not wait for Enter between two references.")
@click.option("--undo", is_flag=True, help="Restore the coefficients from before the last change.")
@control_options
def light(
    sensor_id: str, reference: tuple[float, ...], fresh: bool, yes: bool, undo: bool, socket_path: str | None,
    config_path: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Gain from a lux meter held at the sensor; a second reference at another light level makes it two-point."""
    if not undo and not reference:
        raise click.UsageError("give --reference LUX (twice for two-point), or --undo")
    if len(reference) > 2:
        raise click.UsageError("at most two --reference values")
    try:
        for ref in reference:
            check_reference("lux", ref)
    except CalibrationError as exc:
        raise _refuse(exc) from None
    with daemon(socket_path, config_path) as client:
        if undo:
            _undo(client, sensor_id, "light", as_json)
            return
        _preflight(client, sensor_id)
        for i, ref in enumerate(reference):
            if len(reference) > 1 and not yes:
                click.confirm(
                    f"point {i + 1}/{len(reference)}: set the light so the meter at the sensor shows {ref:g} lx; "
                    "ready?", default=True, abort=True, err=True,
                )  # fmt: skip
            first_of_pair = i == 0 and len(reference) > 1
            result = client.request(
                "calibrate", sensor=sensor_id, quantity="lux", reference=ref, fresh=fresh or first_of_pair
            )
            _show(result, as_json)


def _load_cell(client: ControlClient, desk: str) -> str:
    """The load cell under ``desk`` (a desk id, one of its seats, or the load cell's own sensor id)."""
    infos = client.request("sensors")
    cells = [s for s in infos if s.get("kind") == "hx711"]
    for s in cells:
        if desk == s["id"] or desk in (s.get("desks") or []) or desk in (s.get("seats") or []):
            return str(s["id"])
    known = {d: s for s in cells for d in (s.get("desks") or [s["id"]])}
    raise click.ClickException(unknown_id_message("desk with a load cell", desk, known))


@calibrate.command("weight")
@click.argument("desk")
@click.option("--tare", is_flag=True, help="The desk is cleared: its load now reads 0 g.")
@click.option("--known-mass", type=float, metavar="G", help="A known mass (grams) stands alone on the cleared desk.")
@click.option("--undo", is_flag=True, help="Restore the coefficients from before the last change.")
@control_options
def weight(
    desk: str, tare: bool, known_mass: float | None, undo: bool, socket_path: str | None, config_path: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """A desk's load cell: --tare with the desk cleared, then --known-mass G with a known mass on it."""
    if sum((tare, known_mass is not None, undo)) != 1:
        raise click.UsageError("give one of --tare (desk cleared), --known-mass GRAMS, or --undo")
    if known_mass is not None:
        if known_mass <= 0:
            raise click.UsageError(f"--known-mass must be above 0 g, not {known_mass:g}; to zero the desk use --tare")
        try:
            check_reference("mass", known_mass)
        except CalibrationError as exc:
            raise _refuse(exc) from None
    with daemon(socket_path, config_path) as client:
        sensor_id = _load_cell(client, desk)
        if undo:
            _undo(client, sensor_id, "weight", as_json)
            return
        _preflight(client, sensor_id)
        reference = 0.0 if tare else float(known_mass or 0.0)
        _show(client.request("calibrate", sensor=sensor_id, quantity="mass", reference=reference), as_json)


@calibrate.command("co2")
@click.argument("sensor_id")
@click.option("--reference", type=float, help="Reference CO2, ppm (400..2000; outdoor air is about 420).")
@click.option("--undo", is_flag=True, help="Explain how an FRC is reverted.")
@control_options
def co2(
    sensor_id: str, reference: float | None, undo: bool, socket_path: str | None, config_path: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """SCD41 forced recalibration (FRC) against a known CO2 level, preconditions checked first."""
    if not undo and reference is None:
        raise click.UsageError("give --reference PPM (or --undo)")
    if reference is not None:
        try:
            check_frc_reference(reference)
        except CalibrationError as exc:
            raise _refuse(exc) from None
    with daemon(socket_path, config_path) as client:
        if undo:
            _undo(client, sensor_id, "co2", as_json)
            return
        assert reference is not None
        _preflight(client, sensor_id)
        reading = client.request("read_sensor", sensor=sensor_id)
        try:
            check_frc(reference, reading.get("measuring_for_s"))
        except CalibrationError as exc:
            raise _refuse(exc) from None
        click.echo(f"forced recalibration of {sensor_id} to {reference:g} ppm (sensor reads "
                   f"{_cell((reading.get('calibrated') or {}).get('co2'))} ppm); takes about a second...", err=True)
        _show(client.request("calibrate", sensor=sensor_id, quantity="co2", reference=reference), as_json)


@calibrate.command("thermal")
@click.argument("sensor_id")
@click.option("--empty", is_flag=True, help="Capture the empty-room background now (nobody under the sensor).")
@click.option("--undo", is_flag=True, help="Go back to the previous background.")
@control_options
def thermal(
    sensor_id: str, empty: bool, undo: bool, socket_path: str | None, config_path: str | None, as_json: bool
) -> None:
    """Capture a thermopile's empty background; refused while people are detected."""
    if not (empty or undo):
        raise click.UsageError("give --empty (with nobody under the sensor) or --undo")
    with daemon(socket_path, config_path) as client:
        if undo:
            _undo(client, sensor_id, "thermal", as_json)
            return
        _preflight(client, sensor_id)
        _show(client.request("thermal_capture_background", sensor=sensor_id), as_json)


@calibrate.command("uwb-anchor")
@click.argument("anchor_id")
@click.option("--x", type=float, help="Surveyed position, metres (floor coordinates).")
@click.option("--y", type=float)
@click.option("--z", type=float)
@click.option("--undo", is_flag=True, help="Go back to the previous position.")
@control_options
def uwb_anchor(
    anchor_id: str, x: float | None, y: float | None, z: float | None, undo: bool, socket_path: str | None,
    config_path: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Set a UWB anchor's surveyed position."""
    if not undo and None in (x, y, z):
        raise click.UsageError("give --x, --y and --z in metres (or --undo)")
    with daemon(socket_path, config_path) as client:
        if undo:
            _undo(client, anchor_id, "uwb-anchor", as_json)
            return
        _show(client.request("set_anchor", anchor=anchor_id, x=x, y=y, z=z), as_json)


@calibrate.command("history")
@click.argument("sensor_id")
@control_options
def history(sensor_id: str, socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Every calibration change of a sensor: when, who, old -> new, reference and raw value."""
    with daemon(socket_path, config_path) as client:
        entries = client.request("calibration_history", sensor=sensor_id)
    if as_json:
        emit_json(entries)
        return
    if not entries:
        click.echo(f"{sensor_id}: no calibration history")
        return
    rows = [
        (clock_time(e.get("at")) + ("" if e.get("synced", True) else " *"), e.get("user"), e.get("quantity"),
         e.get("action") + (" (undone)" if e.get("undone") else ""),
         f"{_coefficients(e.get('old'))} -> {_coefficients(e.get('new'))}", e.get("reference"), e.get("raw"))
        for e in entries
    ]  # fmt: skip
    click.echo(table(["when", "user", "quantity", "action", "coefficients", "reference", "raw"], rows))
    if any(not e.get("synced", True) for e in entries):
        click.echo("* clock was not synchronised: the time may be off")

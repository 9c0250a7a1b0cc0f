"""``edge-agent nodes``: the firmware-bridge nodes a technician looks after.

``nodes list`` reads the registry the daemon persists (``<state_dir>/nodes.json``), so it works
while the daemon runs and without touching the serial line. ``nodes ota`` opens the serial port
itself for now; once the daemon's control socket exists it will route through the daemon, which
owns the line. Do not run it against a line the daemon is polling.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from pathlib import Path

import click

from drivers.errors import BridgeError
from firmware_bridge import BridgeLink, NodeRegistry, OtaReport, SerialTransport, load_registry, update_firmware
from firmware_bridge.ota import parse_image_header

DEFAULT_STATE_DIR = Path("/var/lib/edge-agent")
state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="The daemon's state directory ([storage] state_dir).",
)


@click.group()
def nodes() -> None:
    """Firmware-bridge nodes: list them, update their firmware."""


def _ago(last_seen: float | None, now: float) -> str:
    if last_seen is None:
        return "never"
    age = max(0.0, now - last_seen)
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= seconds:
            return f"{age / seconds:.0f} {unit} ago"
    return f"{age:.0f} s ago"


@nodes.command("list")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def list_nodes(state_dir: Path, as_json: bool) -> None:
    """Show every node the gateway has seen: address, kind, firmware, health, last seen."""
    try:
        records = sorted(load_registry(state_dir).values(), key=lambda r: r.address)
    except BridgeError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([asdict(r) for r in records], indent=1))
        return
    if not records:
        click.echo(f"no nodes recorded in {state_dir / 'nodes.json'} (has the daemon run with a [bridge]?)")
        return
    now = time.time()
    rows = [("ADDR", "KIND", "FIRMWARE", "HEALTH", "LAST SEEN", "RETRIES", "REBOOTS")]
    rows += [
        (str(r.address), r.kind, r.firmware or "?", r.health, _ago(r.last_seen, now), str(r.retries), str(r.reboots))
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


async def _ota(port: str, baud: int, state_dir: Path | None, node: int, image: bytes, label: str) -> OtaReport:
    registry = NodeRegistry(state_dir) if state_dir is not None else None
    async with BridgeLink(SerialTransport(port, baud), baud=baud, registry=registry) as link:
        with click.progressbar(length=len(image), label=label, show_percent=True, show_pos=True) as bar:
            sent = 0

            def progress(done: int, total: int) -> None:
                nonlocal sent
                bar.update(done - sent)
                sent = done

            return await update_firmware(link, node, image, progress=progress)


@nodes.command("ota")
@click.argument("node", type=click.IntRange(1, 247))
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--port", default="/dev/ttyUSB0", show_default=True, help="Serial port of the RS-485 line.")
@click.option("--baud", type=click.Choice(["115200", "460800"]), default="115200", show_default=True)
@state_dir_option
def ota(node: int, image: Path, port: str, baud: str, state_dir: Path) -> None:
    """Update NODE with firmware IMAGE (resumable; verified by SHA-256; reports a rollback)."""
    data = image.read_bytes()
    try:
        header = parse_image_header(data)
    except BridgeError as exc:
        raise click.ClickException(f"{image}: {exc}") from exc
    label = f"node {node} <- {image.name} {header.firmware}"
    try:
        report = asyncio.run(_ota(port, int(baud), state_dir if state_dir.is_dir() else None, node, data, label))
    except BridgeError as exc:
        raise click.ClickException(f"node {node}: update failed: {exc}") from exc
    slot = "AB"[report.slot]
    if report.resumed_from:
        click.echo(f"node {node}: resumed at byte {report.resumed_from} of {report.size}")
    if report.outcome == "updated":
        click.echo(f"node {node}: updated {report.firmware_before} -> {report.firmware_after} (slot {slot})")
        return
    click.echo(
        f"node {node}: the new firmware did not start; rolled back to {report.firmware_after} (slot {slot})", err=True
    )
    raise click.exceptions.Exit(1)

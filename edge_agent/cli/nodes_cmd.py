"""``edge-agent nodes``: the firmware-bridge nodes a technician looks after.

``nodes list`` reads the registry the daemon persists (``<state_dir>/nodes.json``), so it works
while the daemon runs and without touching the serial line.

``nodes ota`` respects that a line has one master. When the daemon answers on its control
socket, the update is a daemon operation: the image goes up through the socket, the daemon runs
it on its own link and the CLI shows its progress. Only when no daemon runs does the CLI open the
serial port itself, and then it takes the port's lock like the daemon does, so a second program
on the same line is refused with a clear line instead of stealing replies.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from drivers.errors import BridgeError, EdgeError, TrustError
from edge_agent.control.client import ControlClient, DaemonNotRunning, resolve_socket
from edge_agent.control.nodes import UPLOAD_PIECE
from firmware_bridge import BridgeLink, NodeRegistry, OtaReport, SerialTransport, load_registry, update_firmware
from firmware_bridge.ota import ImageHeader, parse_image_header

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


def progress_bar(length: int, label: str) -> Any:
    """click's progress bar over ``length`` bytes (typed Any: click's stubs differ between 8.1 and 8.2)."""
    return click.progressbar(length=length, label=label, show_percent=True, show_pos=True)


async def _ota(port: str, baud: int, state_dir: Path, node: int, image: bytes, label: str) -> OtaReport:
    async with BridgeLink(SerialTransport(port, baud), baud=baud, registry=NodeRegistry(state_dir)) as link:
        with progress_bar(len(image), label) as bar:
            sent = 0

            def progress(done: int, total: int) -> None:
                nonlocal sent
                bar.update(done - sent)
                sent = done

            return await update_firmware(link, node, image, progress=progress)


def _daemon(socket_path: str | None, state_dir: Path) -> ControlClient | None:
    """A connected client when a daemon answers; None when none runs (then the CLI may own the line)."""
    try:
        client = ControlClient(resolve_socket(socket_path, state_dir))
        client.connect()
    except DaemonNotRunning:
        return None
    except EdgeError as exc:  # it runs, but will not talk to us (permissions): say so, never go around it
        raise click.ClickException(str(exc)) from None
    return client


def _through_daemon(client: ControlClient, node: int, image: bytes, label: str, port: str | None,
                    signature: dict[str, Any] | None = None) -> dict[str, Any]:
    """Upload, start, and follow the daemon's update of ``node``; returns its final state."""
    sha = hashlib.sha256(image).hexdigest()
    for offset in range(0, len(image), UPLOAD_PIECE):
        piece = base64.b64encode(image[offset : offset + UPLOAD_PIECE]).decode()
        client.request("node_ota_upload", node=node, size=len(image), sha256=sha, offset=offset, data=piece)
    state: dict[str, Any] = client.request("node_ota_start", node=node, sha256=sha, port=port, signature=signature)
    with progress_bar(len(image), label) as bar:
        shown = 0
        while state["state"] == "running":
            time.sleep(0.25)
            state = client.request("node_ota_status", node=node)
            bar.update(state["sent"] - shown)
            shown = state["sent"]
    return state


@nodes.command("ota")
@click.argument("node", type=click.IntRange(1, 247))
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--port", default="/dev/ttyUSB0", show_default=True,
              help="Serial port of the RS-485 line (opened only when no daemon runs; the daemon refuses "
                   "a port that is not its line).")  # fmt: skip
@click.option("--baud", type=click.Choice(["115200", "460800"]), default="115200", show_default=True)
@state_dir_option
@click.option("--socket", "socket_path", default=None,
              help="Control socket [default: $EDGE_AGENT_SOCKET, /run/edge-agent/control.sock, "
                   "<state_dir>/control.sock].")  # fmt: skip
@click.option("--signature", "signature_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The image's signature document (keys sign) [default: IMAGE.sig when it exists].")
@click.option("--config", "config_path", envvar="EDGE_AGENT_CONFIG", default="/etc/edge-agent/gateway.toml",
              show_default=True, help="Site config whose keys check the signature when no daemon runs.")
@click.pass_context
def ota(ctx: click.Context, node: int, image: Path, port: str, baud: str, state_dir: Path,
        socket_path: str | None, signature_path: Path | None, config_path: str) -> None:  # fmt: skip
    """Update NODE with firmware IMAGE (resumable; verified by SHA-256; reports a rollback).

    Goes through the running daemon, which owns the line; opens PORT itself only when no daemon
    runs. Exits 0 only when the node runs and has confirmed the new firmware.
    """
    data = image.read_bytes()
    try:
        header = parse_image_header(data)
    except BridgeError as exc:
        raise click.ClickException(f"{image}: {exc}") from exc
    explicit = ctx.get_parameter_source("state_dir") is not click.core.ParameterSource.DEFAULT
    if explicit and not state_dir.is_dir():
        raise click.ClickException(f"--state-dir {state_dir} does not exist; give the daemon's state directory "
                                   "([storage] state_dir)")  # fmt: skip
    label = f"node {node} <- {image.name} {header.firmware}"
    signature = _signature(signature_path or image.with_name(image.name + ".sig"), signature_path is not None)
    client = _daemon(socket_path, state_dir)
    if client is not None:
        click.echo(f"node {node}: updating through the running daemon, which owns the line ({client.path})")
        try:
            with client:
                named = port if ctx.get_parameter_source("port") is not click.core.ParameterSource.DEFAULT else None
                state = _through_daemon(client, node, data, label, named, signature)
        except EdgeError as exc:
            raise click.ClickException(f"node {node}: {exc}") from None
        except KeyboardInterrupt:
            click.echo(f"\nnode {node}: the update goes on in the daemon; `edge-agent nodes list` shows the firmware "
                       "the node runs when it is done", err=True)  # fmt: skip
            raise click.exceptions.Exit(130) from None
        if state["state"] == "failed":
            raise click.ClickException(f"node {node}: update failed: {state['message']}")
        _report(node, header, state["state"], state["firmware_before"], state["firmware_after"], state["slot"],
                state["resumed_from"], state["total"])  # fmt: skip
        return
    if not state_dir.is_dir():
        raise click.ClickException(f"{state_dir} does not exist: no daemon state directory to keep the node registry "
                                   "in; pass --state-dir")  # fmt: skip
    _check_signature(config_path, data, signature)
    try:
        report = asyncio.run(_ota(port, int(baud), state_dir, node, data, label))
    except BridgeError as exc:
        raise click.ClickException(f"node {node}: update failed: {exc}") from exc
    _report(node, header, report.outcome, report.firmware_before, report.firmware_after, "AB"[report.slot],
            report.resumed_from, report.size)  # fmt: skip


def _signature(path: Path, named: bool) -> dict[str, Any] | None:
    """The signature document beside the image (None when there is none and none was named)."""
    if not path.exists() and not named:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"--signature {path}: cannot read a signature document there ({exc})") from None
    if not isinstance(doc, dict):
        raise click.ClickException(f"--signature {path}: not a signature document (edge-agent keys sign writes one)")
    return doc


def _check_signature(config_path: str, image: bytes, signature: dict[str, Any] | None) -> None:
    """With no daemon: the site config's keys check the image before the line is opened."""
    from edge_agent.cli.technician import load_site
    from edge_agent.trust.artefacts import check_artefact
    from edge_agent.trust.policy import Keyring

    cfg = load_site(config_path)
    if cfg is None or cfg.security.policy == "off":
        return
    try:
        check_artefact(Keyring(cfg.security), "firmware", hashlib.sha256(image).hexdigest(), len(image), signature)
    except TrustError as exc:
        if cfg.security.policy == "required":
            raise click.ClickException(f"firmware refused ({exc.reason}): {exc}") from None
        click.echo(f"warning: {exc} (accepted: signatures = log-only)", err=True)


def _report(node: int, header: ImageHeader, outcome: str, before: str, after: str, slot: str, resumed_from: int,
            size: int) -> None:  # fmt: skip
    """One line for the outcome; exit 1 unless the node runs the new firmware."""
    if resumed_from:
        click.echo(f"node {node}: resumed at byte {resumed_from} of {size}")
    if outcome == "updated":
        click.echo(f"node {node}: updated {before} -> {after} (slot {slot})")
        return
    if outcome == "rolled-back":
        click.echo(f"node {node}: the new firmware ({header.firmware}) did not start; rolled back to {after} "
                   f"(slot {slot})", err=True)  # fmt: skip
    else:
        click.echo(f"node {node}: update ended as {outcome!r}", err=True)
    raise click.exceptions.Exit(1)

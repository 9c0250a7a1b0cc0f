"""``edge-agent seats``: ghost seats for staff, and what arriving patrons are shown.

``seats release SEAT`` is what staff run once a ghost seat's belongings are in lost property
(the desk button held 3 s and the MQTT ``release_seat`` command do the same); the daemon
answers with how long the seat was ghost. ``seats list`` shows the ghost seats waiting, the
dispatch figures, and each zone's availability.
"""

from __future__ import annotations

from typing import Any

import click

from edge_agent.cli.technician import control_options, daemon, emit_json, table


@click.group()
def seats() -> None:
    """Ghost seats and availability: list, release."""


@seats.command("release")
@click.argument("seat")
@control_options
def release(seat: str, socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Mark SEAT free now: staff have cleared it (a ghost seat's belongings taken away)."""
    with daemon(socket_path, config_path) as client:
        result: dict[str, Any] = client.request("release_seat", seat=seat)
    if as_json:
        emit_json(result)
        return
    ghost = result.get("ghost_to_release_s")
    how_long = f"; it was ghost for {ghost:.0f} s" if ghost is not None else ""
    click.echo(f"{seat} ({result.get('zone')}) released: was {result.get('was')}{how_long}")


@seats.command("list")
@control_options
def list_(socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Ghost seats waiting for staff, the time from ghost to cleared, and availability per zone."""
    with daemon(socket_path, config_path) as client:
        result: dict[str, Any] = client.request("seats")
    if as_json:
        emit_json(result)
        return
    ghosts = result["ghosts"]
    times = ghosts.get("ghost_to_release_s", {})
    click.echo(f"ghost seats waiting: {', '.join(result['ghost_seats']) or 'none'}; cleared {ghosts.get('cleared', 0)}"
               f" (ghost to cleared: p50 {times.get('p50')} s, p90 {times.get('p90')} s)")
    rows = [(z, a["free"], a["ready_soon"], a["occupied"], a["away"], a["ghost"], a["unknown"], a["seats_total"])
            for z, a in sorted(result["availability"].items())]
    click.echo(table(["zone", "free", "ready soon", "occupied", "away", "ghost", "unknown", "seats"], rows))

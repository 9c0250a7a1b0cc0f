"""``edge-agent dali``: commission a DALI line from the gateway's shell (scan, assign, group).

The daemon owns the DALI masters while it runs (a second process on the same USB master would
mix its frames with the daemon's), so these commands go through its control socket. With no
daemon running they open the master themselves, from the configuration, and say so; with
``--simulate`` they work on a simulated line built from the configuration (a fresh one per
command: for trying the commands out).

- ``scan``: every short address that answers, its device type, groups, level and status; the
  configured lights that did not answer; whether gear without a short address are on the line.
- ``assign``: give a short address to every gear without one (``--all``: readdress the whole
  line) by python-dali's random-address search, printing its progress.
- ``group ADDRESS GROUP``: add a gear to a group (``--remove`` to take it out).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import click

from drivers.errors import EdgeError
from edge_agent.building.operations import BuildingArgs
from edge_agent.cli.technician import control_options, emit_json, load_site, table
from edge_agent.control.client import ControlClient, DaemonNotRunning, resolve_socket

Printer = Callable[[str], None]
_NOTED: list[bool] = []  # the "no daemon" note, said once per command


def building_request(socket_path: str | None, config_path: str | None, simulate: bool, args: BuildingArgs,
                     *, on_progress: Printer | None = None) -> dict[str, Any]:
    """Ask the running daemon; without one, do it here on the configured (or simulated) parts."""
    site = load_site(config_path)
    if not simulate:
        try:
            with ControlClient(resolve_socket(socket_path, site.storage.state_dir if site else None),
                               timeout_s=60) as client:
                return _through_daemon(client, args, on_progress)
        except DaemonNotRunning:
            if site is None:
                raise click.ClickException(f"no daemon is running and {config_path} is not a valid configuration; "
                                           "pass --config gateway.toml") from None
            if not _NOTED:
                click.echo(f"note: no daemon is running; using the interfaces directly, from {config_path}", err=True)
                _NOTED.append(True)
        except EdgeError as exc:
            raise click.ClickException(str(exc)) from None
    if site is None:
        raise click.ClickException(f"{config_path}: not a valid configuration; run: edge-agent config check")
    try:
        return asyncio.run(_direct(site, simulate, args, on_progress))
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from None


def _through_daemon(client: ControlClient, args: BuildingArgs, on_progress: Printer | None) -> dict[str, Any]:
    result: dict[str, Any] = client.request("building", **args.model_dump(exclude_defaults=True))
    if args.action != "dali_assign":
        return result
    shown = 0
    follow = BuildingArgs(action="dali_progress", master=result["master"])
    while not result.get("done"):
        time.sleep(0.5)
        result = client.request("building", **follow.model_dump(exclude_defaults=True))
        for line in result["messages"][shown:]:
            if on_progress is not None:
                on_progress(line)
        shown = len(result["messages"])
    return result


async def _direct(site: Any, simulate: bool, args: BuildingArgs, on_progress: Printer | None) -> dict[str, Any]:
    from edge_agent.building.devices import Building
    from edge_agent.building.operations import BuildingOperations
    from edge_agent.clock import SystemClock

    backend: Any
    if simulate:
        from simulator.building import SimBuilding

        parts = SimBuilding(site, asyncio.get_running_loop().time)
        await parts.open()
        backend = _PartsOnly(parts)
    else:
        from edge_agent.backend import HardwareBackend

        backend = HardwareBackend()
    building = Building(site, backend, SystemClock())
    await building.open()
    try:
        ops = BuildingOperations(building)
        result = await ops.run(args)
        if args.action == "dali_assign":
            shown = 0
            while not result.get("done"):
                await asyncio.sleep(0.2)
                result = await ops.run(BuildingArgs(action="dali_progress", master=result["master"]))
                for line in result["messages"][shown:]:
                    if on_progress is not None:
                        on_progress(line)
                shown = len(result["messages"])
        return result
    finally:
        await building.close()
        if simulate:
            with contextlib.suppress(Exception):
                backend.building_parts.close()


class _PartsOnly:
    """A backend that only carries the simulator's building parts (what ``Building`` asks of it)."""

    def __init__(self, parts: Any) -> None:
        self.building_parts = parts


def simulate_option(func: Any) -> Any:
    return click.option("--simulate", is_flag=True,
                        help="Work on a simulated line/BMS built from the config (no daemon, no hardware).")(func)


@click.group()
def dali() -> None:
    """Commission a DALI line: scan, assign short addresses, groups."""


@dali.command("scan")
@click.option("--master", default=None, help="Only this DALI master (a [[dali]] id).")
@simulate_option
@control_options
def scan(master: str | None, simulate: bool, socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """List the control gear on the line: short address, type, groups, level, status."""
    site = load_site(config_path) if master is None else None
    # one request per line: a full line takes ~20 s of bus time to scan, a control request may take 30 s
    masters: list[str | None] = [m.id for m in site.dali] if site is not None and site.dali else [master]
    result: dict[str, Any] = {"masters": []}
    for one in masters:
        part = building_request(socket_path, config_path, simulate, BuildingArgs(action="dali_scan", master=one))
        result["masters"] += part["masters"]
    if as_json:
        emit_json(result)
        return
    for line in result["masters"]:
        if line.get("error"):
            click.echo(f"{line['master']}: NOT OPEN: {line['error']}")
            continue
        click.echo(f"{line['master']}: {len(line['gear'])} short address(es) answer"
                   + ("; gear WITHOUT a short address are on the line (run: edge-agent dali assign)"
                      if line.get("unaddressed") else ""))
        rows = [(g["short_address"], "COLLISION: two or more gear share it" if g["collision"] else
                 ", ".join(g["device_types"]), ",".join(str(x) for x in g["groups"]) or "-", g["actual_level"],
                 g["light"], ", ".join(g["status"]) or "ok", g["actuator"]) for g in line["gear"]]
        if rows:
            click.echo(table(["addr", "type", "groups", "level", "light", "status", "actuator"], rows))
        for m in line.get("missing", []):
            click.echo(f"  missing: short address {m['short_address']} ({m['actuator']}) does not answer")


@dali.command("assign")
@click.option("--master", default=None, help="The DALI master (needed when there are several).")
@click.option("--all", "readdress", is_flag=True, help="Delete every short address first and number the whole line.")
@simulate_option
@control_options
def assign(master: str | None, readdress: bool, simulate: bool, socket_path: str | None, config_path: str | None,
           as_json: bool) -> None:
    """Give a short address to every gear without one (random-address search)."""
    args = BuildingArgs(action="dali_assign", master=master, readdress=readdress)
    result = building_request(socket_path, config_path, simulate, args,
                              on_progress=None if as_json else (lambda line: click.echo(f"  {line}")))
    if as_json:
        emit_json(result)
        return
    if result.get("error"):
        raise click.ClickException(f"{result['master']}: commissioning failed: {result['error']}")
    assigned = result.get("assigned") or []
    click.echo(f"{result['master']}: {len(assigned)} short address(es) assigned: "
               f"{', '.join(str(a) for a in assigned) or 'none (no unaddressed gear answered)'}")


@dali.command("group")
@click.argument("short_address", type=click.IntRange(0, 63))
@click.argument("group", type=click.IntRange(0, 15))
@click.option("--remove", is_flag=True, help="Take the gear out of the group instead.")
@click.option("--master", default=None, help="The DALI master (needed when there are several).")
@simulate_option
@control_options
def group(short_address: int, group: int, remove: bool, master: str | None, simulate: bool, socket_path: str | None,
          config_path: str | None, as_json: bool) -> None:
    """Add the gear at SHORT_ADDRESS to GROUP (0-15), or remove it; shows its groups afterwards."""
    args = BuildingArgs(action="dali_group", master=master, short_address=short_address, group=group, remove=remove)
    result = building_request(socket_path, config_path, simulate, args)
    if as_json:
        emit_json(result)
        return
    groups = ", ".join(str(g) for g in result["groups"]) or "none"
    click.echo(f"{result['master']}: short address {short_address} is in groups: {groups}")

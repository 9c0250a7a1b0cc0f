"""``edge-agent bacnet``: find the BMS devices and read their objects from the gateway's shell.

Like ``edge-agent dali``, these go through the running daemon (it holds the BACnet/IP port) and
fall back to opening ``[bacnet]`` themselves when no daemon runs.

- ``discover``: Who-Is, broadcast on the BMS network and directed to every configured BMS device
  (which finds devices behind routers without a BBMD); each I-Am with the device's name.
- ``read OBJECT``: one property of one object (``present-value`` by default), with its name and
  units, and for commandable objects the priority array and relinquish default: where the
  gateway's request stands against the BMS's own.
"""

from __future__ import annotations

import click

from edge_agent.building.operations import BuildingArgs
from edge_agent.cli.dali_cmd import building_request, simulate_option
from edge_agent.cli.technician import control_options, emit_json, table


@click.group()
def bacnet() -> None:
    """Find BMS devices (Who-Is) and read their objects."""


@bacnet.command("discover")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 30.0), default=3.0, show_default=True,
              help="Seconds to wait for I-Am answers.")
@simulate_option
@control_options
def discover(timeout_s: float, simulate: bool, socket_path: str | None, config_path: str | None,
             as_json: bool) -> None:
    """Who-Is: every BACnet device that answers, with its instance, address and name."""
    result = building_request(socket_path, config_path, simulate, BuildingArgs(action="bacnet_discover",
                                                                                timeout_s=timeout_s))
    if as_json:
        emit_json(result)
        return
    rows = [(d["instance"], d["address"], d["name"], d["vendor"], d["configured_as"] or "-") for d in result["devices"]]
    click.echo(table(["instance", "address", "name", "vendor", "configured as"], rows) if rows
               else "no device answered")
    if not result.get("broadcast"):
        click.echo("note: no broadcast Who-Is from this port; only the configured devices were asked")
    for device in result.get("silent", []):
        click.echo(f"SILENT: configured BMS device {device} did not answer; check its address and the network")


@bacnet.command("read")
@click.argument("object_id", metavar="OBJECT")
@click.option("--device", default=None, help="BMS device address (default: the one configured).")
@click.option("--property", "prop", default="present-value", show_default=True, help="Property to read.")
@simulate_option
@control_options
def read(object_id: str, device: str | None, prop: str, simulate: bool, socket_path: str | None,
         config_path: str | None, as_json: bool) -> None:
    """Read OBJECT (like analog-value,101) of a BMS device."""
    try:
        args = BuildingArgs(action="bacnet_read", object=object_id, device=device, property=prop)
    except ValueError as exc:
        raise click.BadParameter(str(exc).splitlines()[-1]) from None
    result = building_request(socket_path, config_path, simulate, args)
    if as_json:
        emit_json(result)
        return
    name = f" ({result['object_name']})" if result.get("object_name") else ""
    units = f" {result['units']}" if result.get("units") else ""
    value = result["value"]
    shown = f"{value:.6g}" if isinstance(value, float) else value  # REALs are 32-bit: 21.376039505 is 21.376
    click.echo(f"{result['object']}{name} at {result['device']}: {result['property']} = {shown}{units}")
    if "priority_array" in result:
        slots = result["priority_array"]
        rows = [(p, v) for p, v in sorted(slots.items(), key=lambda kv: int(kv[0]))]
        click.echo(table(["priority", "value"], rows) if rows else "priority array: all NULL")
        click.echo(f"relinquish default: {result.get('relinquish_default')}")

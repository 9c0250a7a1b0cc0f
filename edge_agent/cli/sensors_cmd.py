"""``edge-agent sensors``: look at the floor's sensors from the gateway's shell.

``scan`` lists what answers on each I2C bus and multiplexer channel named in the config (like
``i2cdetect``), and compares it with the sensors the config expects there. ``kinds`` prints the
part-kind table (:mod:`drivers.kinds`): what each kind needs in a config file and what it
measures. On a gateway each ``linux`` bus is opened with smbus2; with ``--simulate`` the simulated
buses of the same config are scanned. Node buses are behind the firmware bridge and are not
scanned here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drivers.errors import ConfigError
from drivers.scan import scan_bus, scan_mux

if TYPE_CHECKING:
    from edge_agent.config import SiteConfig

DEFAULT_CONFIG = Path("/etc/edge-agent/gateway.toml")
#: Simulated parts power up when ``scan --simulate`` builds them; the slowest, the SCD41, answers
#: its address 1 s later (a gateway's parts have long been powered when a technician scans).
SIMULATED_POWER_UP_S = 1.0


@click.group()
def sensors() -> None:
    """List, read, watch and scan sensors."""


def _open_linux_bus(device: str) -> Any:
    """smbus2.SMBus on ``device``, or a ConfigError with one line saying what to do."""
    from smbus2 import SMBus

    try:
        return SMBus(device)
    except PermissionError:
        raise ConfigError(
            f"{device}: permission denied; add the user to group i2c (sudo usermod -aG i2c $USER) and log in again"
        ) from None
    except FileNotFoundError:
        raise ConfigError(
            f"{device}: no such device; enable I2C (sudo raspi-config nonint do_i2c 0) and reboot"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{device}: cannot open it ({exc.strerror})") from None


def scan_config(cfg: SiteConfig, open_bus: Any) -> list[dict[str, Any]]:
    """Scan every linux bus and every mux channel of ``cfg``; ``open_bus(bus_id)`` gives the port."""
    expected: dict[str, dict[int, str]] = {}
    for s in cfg.sensors:
        if s.bus is not None and s.address is not None:
            expected.setdefault(s.bus, {})[s.address] = s.id
    rows: list[dict[str, Any]] = []
    muxes: dict[tuple[str, int], dict[int, str]] = {}
    for b in cfg.buses:
        if b.kind == "mux" and b.parent is not None and b.address is not None and b.channel is not None:
            muxes.setdefault((b.parent, b.address), {})[b.channel] = b.id
    for b in cfg.buses:
        if b.kind != "linux":
            continue
        port = open_bus(b.id)
        found = scan_bus(port)
        rows.append(_row(b.id, b.device or "", found, expected.get(b.id, {})))
        for (parent, address), channels in sorted(muxes.items()):
            if parent != b.id:
                continue
            if address not in found:
                for ch, bus_id in sorted(channels.items()):
                    rows.append(
                        _row(bus_id, f"mux 0x{address:02x} ch{ch} (mux not answering)", [], expected.get(bus_id, {}))
                    )
                continue
            per_channel = scan_mux(port, address, range(8))
            for ch, addresses in per_channel.items():
                bus_id = channels.get(ch, f"{b.id}/mux@0x{address:02x}/ch{ch}")
                if addresses or ch in channels:
                    rows.append(_row(bus_id, f"mux 0x{address:02x} ch{ch}", addresses, expected.get(bus_id, {})))
    return rows


def _row(bus_id: str, where: str, found: list[int], expected: dict[int, str]) -> dict[str, Any]:
    return {
        "bus": bus_id,
        "where": where,
        "found": [f"0x{a:02x}" for a in found],
        "missing": {f"0x{a:02x}": sid for a, sid in sorted(expected.items()) if a not in found},
    }


@sensors.command("scan")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=DEFAULT_CONFIG, show_default=True)
@click.option("--simulate", is_flag=True, help="Scan the simulated buses built from the config.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def scan(config_file: Path, simulate: bool, as_json: bool) -> None:
    """List what answers on each I2C bus and mux channel (like i2cdetect)."""
    from edge_agent.config import load_config  # not at import: ``sensors read`` and ``list`` go without it

    cfg = load_config(config_file)
    opened: list[Any] = []
    if simulate:
        from simulator.hw.floor import build_simulated_hardware

        hw = build_simulated_hardware(cfg, time.monotonic)
        time.sleep(SIMULATED_POWER_UP_S)

        def open_bus(bus_id: str) -> Any:
            return hw.sim_buses[bus_id]
    else:
        devices = {b.id: b.device for b in cfg.buses if b.kind == "linux"}

        def open_bus(bus_id: str) -> Any:
            port = _open_linux_bus(str(devices[bus_id]))
            opened.append(port)
            return port

    try:
        rows = scan_config(cfg, open_bus)
    finally:
        for port in opened:
            port.close()
        if simulate:
            hw.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        found = " ".join(row["found"]) or "(nothing)"
        click.echo(f"{row['bus']:<14} {row['where']:<28} {found}")
        for address, sid in row["missing"].items():
            click.echo(f"{'':<14} {'':<28} missing {address} ({sid})")


def kind_rows() -> list[dict[str, Any]]:
    """The part-kind table as plain data (for ``--json`` and the table)."""
    from drivers.kinds import part_kinds

    return [
        {"kind": k.name, "summary": k.summary, "wiring": [list(alt) for alt in k.wiring],
         "settings": [{"name": st.name, "type": st.type.__name__, "default": st.default, "low": st.low,
                       "high": st.high, "choices": list(st.choices), "help": st.help} for st in k.settings],
         "poll_interval_s": k.poll_interval_s, "feed": k.feed,
         "quantities": {q.name: q.unit for q in k.quantities},
         "calibrations": {c.quantity: c.method for c in k.calibrations}}
        for k in part_kinds().values()
    ]  # fmt: skip


@sensors.command("kinds")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def kinds(as_json: bool) -> None:
    """Every sensor kind a config may name: wiring, its own keys, poll default, what it measures."""
    rows = kind_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        wiring = " or ".join(" + ".join(alt) for alt in row["wiring"])
        click.echo(f"{row['kind']:<10} {row['summary']}")
        click.echo(f"{'':<10} wiring: {wiring}; poll every {row['poll_interval_s']:g} s")
        for st in row["settings"]:
            default = "required" if st["default"] is None else f"default {st['default']}"
            click.echo(f"{'':<10} {st['name']} ({st['type']}, {default}): {st['help']}")
        measures = ", ".join(f"{q} [{u}]" if u else q for q, u in row["quantities"].items())
        click.echo(f"{'':<10} measures: {measures}")
        if row["calibrations"]:
            click.echo(f"{'':<10} calibrates: " + ", ".join(f"{q} ({m})" for q, m in row["calibrations"].items()))


def _attach_live_commands() -> None:
    """``sensors list/read/watch`` talk to the running daemon; they live with the other technician commands."""
    from edge_agent.cli.technician import sensors_list, sensors_read, sensors_watch

    for command in (sensors_list, sensors_read, sensors_watch):
        sensors.add_command(command)


_attach_live_commands()

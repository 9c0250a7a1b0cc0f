"""``edge-agent doctor``'s DALI and BACnet checks: is each DALI master open with its gear answering, and
does each configured BMS device answer a Who-Is?

Asked of the running daemon (the ``building`` request, action ``health``), or, with no daemon, by
opening the masters and the BACnet port here for the duration of the check.
"""

from __future__ import annotations

from typing import Any

from drivers.errors import EdgeError
from edge_agent.building.operations import BuildingArgs


def check_building(site: Any, socket_path: str | None, daemon_answers: bool) -> list[Any]:
    """Findings for the DALI lines and the BMS devices of ``site`` (none when it has neither)."""
    from edge_agent.cli.doctor_cmd import fail, ok, warn

    if not site.dali and site.bacnet is None:
        return []
    args = BuildingArgs(action="health", timeout_s=2.0)
    try:
        if daemon_answers:
            from edge_agent.control.client import ControlClient, resolve_socket

            with ControlClient(resolve_socket(socket_path, site.storage.state_dir), timeout_s=30) as client:
                health = client.request("building", **args.model_dump(exclude_defaults=True))
        else:
            health = _direct_health(site, args)
    except EdgeError as exc:
        return [fail("building", f"DALI/BACnet check failed: {exc}")]
    findings = []
    for line in health["dali"]:
        if not line["open"]:
            findings.append(fail(f"dali {line['master']}", f"master not open: {line['error']}; check the USB/serial "
                                 "cable and [[dali]] device (docs/hardware.md)"))
            continue
        bad = [f"{light['id']} ({light['reason'] or light['note']})" for light in line["lights"]
               if not light["healthy"]]
        bad += line.get("silent", [])
        if bad:
            findings.append(warn(f"dali {line['master']}", f"{len(bad)} light(s) failing or silent: "
                                 f"{', '.join(bad[:4])}; run: edge-agent dali scan"))
        else:
            findings.append(ok(f"dali {line['master']}", "master open, every configured gear answers"))
    bacnet = health.get("bacnet")
    if bacnet is not None:
        if not bacnet["open"]:
            findings.append(fail("bacnet", f"BACnet/IP not open: {bacnet['error']}"))
        else:
            silent = [d["device"] for d in bacnet["devices"] if not d["answered"]]
            if silent:
                findings.append(fail("bacnet", f"BMS device(s) not answering Who-Is: {', '.join(silent)}; check the "
                                     "address and the network (edge-agent bacnet discover)"))
            else:
                findings.append(ok("bacnet", f"{len(bacnet['devices'])} BMS device(s) answer"))
            above = [f"{o['id']} (priority {o['overridden_by']} wins over {o['priority']})"
                     for o in bacnet["outputs"] if o["overridden_by"] is not None]
            if above:
                findings.append(warn("bacnet", f"the BMS overrides: {', '.join(above)}"))
    return findings


def _direct_health(site: Any, args: BuildingArgs) -> dict[str, Any]:
    import asyncio

    from edge_agent.backend import HardwareBackend
    from edge_agent.building.devices import Building
    from edge_agent.building.operations import BuildingOperations
    from edge_agent.clock import SystemClock

    async def probe() -> dict[str, Any]:
        building = Building(site, HardwareBackend(), SystemClock())
        await building.open()
        try:
            return await BuildingOperations(building).run(args)
        finally:
            await building.close()

    return asyncio.run(probe())

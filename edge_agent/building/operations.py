"""The technician's DALI and BACnet operations: scan, commission and group a DALI line; find and read BMS objects.

They run where the master and the BACnet port are: inside the daemon (through the control
socket's ``building`` request, :class:`BuildingArgs`), or, when no daemon runs, in the CLI's own
process on a :class:`~edge_agent.building.devices.Building` it opens for the purpose. The results
are plain JSON-ready dicts; ``edge-agent dali`` and ``edge-agent bacnet`` print them.

Commissioning a line takes minutes of bus time (a random-address search per gear), longer than one
control request may take, so ``dali_assign`` starts it in the background and ``dali_progress``
reports its messages until it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.dali import light_fraction
from drivers.errors import EdgeError
from edge_agent.building.config import parse_device_address, parse_object_id
from edge_agent.building.devices import Building

#: IEC 62386-2xx device types (QUERY DEVICE TYPE) by number.
DEVICE_TYPES = {0: "fluorescent", 1: "emergency", 2: "HID lamp", 3: "low-voltage halogen", 4: "incandescent dimmer",
                5: "0-10V converter", 6: "LED", 7: "relay", 8: "colour"}


class BuildingRefused(EdgeError, ValueError):
    """A technician's request that cannot be done; the message says what to do instead."""


class BuildingArgs(BaseModel):
    """Arguments of the control socket's ``building`` request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["dali_scan", "dali_assign", "dali_progress", "dali_group", "bacnet_discover", "bacnet_read",
                    "health"]
    master: str | None = Field(default=None, max_length=64)
    short_address: int | None = Field(default=None, ge=0, le=63)
    group: int | None = Field(default=None, ge=0, le=15)
    remove: bool = False
    readdress: bool = False
    device: str | None = Field(default=None, max_length=64)
    object: str | None = Field(default=None, max_length=64)
    property: str = Field(default="present-value", pattern=r"^[a-z][a-z-]*$")
    timeout_s: float = Field(default=3.0, gt=0, le=30)


class BuildingOperations:
    """What a technician may ask of the floor's DALI lines and BACnet link."""

    def __init__(self, building: Building) -> None:
        self.building = building

    async def run(self, args: BuildingArgs) -> dict[str, Any]:
        handler = getattr(self, f"_{args.action}")
        result: dict[str, Any] = await handler(args)
        return result

    # -- DALI ----------------------------------------------------------------------------------
    def _masters(self, wanted: str | None) -> list[str]:
        known = list(self.building.masters)
        if not known:
            raise BuildingRefused("no DALI master is configured; add a [[dali]] table (docs/configuration.md)")
        if wanted is None:
            return known
        if wanted not in known:
            raise BuildingRefused(f"unknown DALI master {wanted!r}; known: {', '.join(known)}")
        return [wanted]

    def _line(self, master: str) -> Any:
        line = self.building.lines.get(master)
        if line is None or master in self.building.errors:
            why = self.building.errors.get(master, "not open")
            raise BuildingRefused(f"DALI master {master}: {why}")
        return line

    def _one_master(self, wanted: str | None) -> str:
        masters = self._masters(wanted)
        if len(masters) > 1:
            raise BuildingRefused(f"several DALI masters are configured; say which with --master "
                                  f"({', '.join(masters)})")
        return masters[0]

    async def _dali_scan(self, args: BuildingArgs) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for master in self._masters(args.master):
            if master in self.building.errors or master not in self.building.lines:
                rows.append({"master": master, "error": self.building.errors.get(master, "not open"), "gear": []})
                continue
            scan = await self.building.lines[master].scan()
            actuators = {a.dali.short_address: a.id for a in self.building.cfg.actuators
                         if a.dali is not None and a.dali.master == master and a.dali.short_address is not None}
            gear = [{"short_address": g.short_address, "collision": g.collision,
                     "device_types": [DEVICE_TYPES.get(t, f"type {t}") for t in g.device_types],
                     "groups": list(g.groups), "actual_level": g.actual_level,
                     "light": None if g.actual_level is None else round(light_fraction(g.actual_level), 4),
                     "status": list(g.status), "actuator": actuators.get(g.short_address)} for g in scan.gear]
            found = {g.short_address for g in scan.gear}
            missing = {a: aid for a, aid in actuators.items() if a not in found}
            rows.append({"master": master, "error": "", "unaddressed": scan.unaddressed, "gear": gear,
                         "missing": [{"short_address": a, "actuator": aid} for a, aid in sorted(missing.items())]})
        return {"masters": rows}

    async def _dali_assign(self, args: BuildingArgs) -> dict[str, Any]:
        master = self._one_master(args.master)
        line = self._line(master)
        job = self.building.commissioning.get(master)
        if job is not None and not job["done"]:
            raise BuildingRefused(f"commissioning of {master} is already running; follow it with dali assign --follow")
        job = self.building.commissioning[master] = {"master": master, "done": False, "messages": [],
                                                     "assigned": [], "error": ""}

        async def commission() -> None:
            try:
                job["assigned"] = await line.commission(readdress=args.readdress, progress=job["messages"].append)
            except (EdgeError, OSError) as exc:
                job["error"] = str(exc)
            finally:
                job["done"] = True

        job["task"] = asyncio.get_running_loop().create_task(commission())
        return self._job(job)

    @staticmethod
    def _job(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if k != "task"}

    async def _dali_progress(self, args: BuildingArgs) -> dict[str, Any]:
        master = self._one_master(args.master)
        job = self.building.commissioning.get(master)
        if job is None:
            raise BuildingRefused(f"no commissioning has run on {master}; start one with: edge-agent dali assign")
        return self._job(job)

    async def _dali_group(self, args: BuildingArgs) -> dict[str, Any]:
        if args.short_address is None or args.group is None:
            raise BuildingRefused("say which gear and which group: dali group SHORT_ADDRESS GROUP")
        master = self._one_master(args.master)
        groups = await self._line(master).set_group(args.short_address, args.group, not args.remove)
        return {"master": master, "short_address": args.short_address, "groups": list(groups)}

    # -- BACnet --------------------------------------------------------------------------------
    def _link(self) -> Any:
        link = self.building.link
        if link is None:
            raise BuildingRefused(f"BACnet: {self.building.errors.get('bacnet', 'no [bacnet] table is configured')}")
        return link

    def _configured_devices(self) -> list[str]:
        cfg = self.building.cfg
        points = [a.bacnet for a in cfg.actuators if a.bacnet is not None] + [
            s.bacnet for s in cfg.sensors if s.bacnet is not None]
        return sorted({p.device for p in points})

    async def _bacnet_discover(self, args: BuildingArgs) -> dict[str, Any]:
        link = self._link()
        found = {d.address: d for d in await link.who_is(timeout_s=args.timeout_s)}
        configured = {self.building.device_address(dev): dev for dev in self._configured_devices()}
        for address in configured:  # directed Who-Is: finds devices a broadcast does not reach
            with contextlib.suppress(EdgeError):
                for d in await link.who_is(address=address, timeout_s=args.timeout_s):
                    found[d.address] = d
        devices = []
        for address, d in sorted(found.items()):
            try:
                name = await link.read(address, f"device,{d.instance}", "object-name")
            except EdgeError:
                name = None
            devices.append({"instance": d.instance, "address": address, "name": name, "vendor": d.vendor,
                            "configured_as": configured.get(address)})
        silent = [dev for addr, dev in configured.items() if addr not in found]
        return {"broadcast": link.broadcasts, "devices": devices, "silent": silent}

    async def _bacnet_read(self, args: BuildingArgs) -> dict[str, Any]:
        link = self._link()
        if args.object is None:
            raise BuildingRefused("say which object: bacnet read analog-value,101")
        try:
            kind, instance = parse_object_id(args.object, (*_READ_ANY,))
            device = args.device or self._default_device()
            parse_device_address(device)
        except ValueError as exc:
            raise BuildingRefused(str(exc)) from None
        address = self.building.device_address(device) if device in self._configured_devices() else (
            device if ":" in device else f"{device}:47808")
        oid = f"{kind},{instance}"
        out: dict[str, Any] = {"device": device, "address": address, "object": oid, "property": args.property,
                               "value": await link.read(address, oid, args.property)}
        if args.property == "present-value" and kind != "device":
            for extra in ("object-name", "units"):
                with contextlib.suppress(EdgeError):
                    out[extra.replace("-", "_")] = await link.read(address, oid, extra)
            if kind in ("analog-output", "analog-value", "binary-output", "binary-value"):
                with contextlib.suppress(EdgeError):
                    out["priority_array"] = {str(p): v for p, v in (await link.priority_array(address, oid)).items()}
                    out["relinquish_default"] = await link.read(address, oid, "relinquish-default")
        return out

    def _default_device(self) -> str:
        devices = self._configured_devices()
        if len(devices) != 1:
            raise BuildingRefused("say which BMS device with --device ADDRESS (find them with: edge-agent bacnet "
                                  "discover)")
        return devices[0]

    # -- health ---------------------------------------------------------------------------------
    async def _silent(self, master: str) -> list[str]:
        """Configured short addresses on ``master`` that do not answer QUERY STATUS (with why)."""
        line = self.building.lines[master]
        silent = []
        for a in self.building.cfg.actuators:
            if a.dali is not None and a.dali.master == master and a.dali.short_address is not None:
                try:
                    await line.status(a.dali.short_address)
                except (EdgeError, OSError) as exc:
                    silent.append(f"{a.id} at {a.dali.short_address}: {exc}")
        return silent

    async def _health(self, args: BuildingArgs) -> dict[str, Any]:
        b = self.building
        link = b.link
        dali = [{"master": m, "open": m in b.lines and m not in b.errors, "error": b.errors.get(m, ""),
                 "silent": await self._silent(m) if m in b.lines and m not in b.errors else [],
                 "lights": [{"id": light.name, "healthy": light.health.healthy, "reason": light.health.reason,
                             "note": b.line_status.get(light.name, "")}
                            for light in b.lights.values() if light.bus is b.lines.get(m)]}
                for m in b.masters]
        bacnet: dict[str, Any] | None = None
        if b.cfg.bacnet is not None:
            devices: list[dict[str, Any]] = []
            for dev in self._configured_devices():
                if link is None:
                    break
                try:
                    answers = await link.who_is(address=b.device_address(dev), timeout_s=args.timeout_s)
                    devices.append({"device": dev, "answered": bool(answers), "instance":
                                    answers[0].instance if answers else None})
                except EdgeError as exc:
                    devices.append({"device": dev, "answered": False, "error": str(exc)})
            bacnet = {"open": b.link is not None, "error": b.errors.get("bacnet", ""), "devices": devices,
                      "outputs": [{"id": v.name, "priority": v.priority, "overridden_by": v.overridden_by,
                                   "holding": v.written} for v in b.vents.values()]}
        return {"dali": dali, "bacnet": bacnet}


_READ_ANY = ("analog-input", "analog-output", "analog-value", "binary-input", "binary-output", "binary-value",
             "multi-state-input", "multi-state-output", "multi-state-value", "device", "network-port", "schedule",
             "calendar", "trend-log", "notification-class")

"""DALI lines and the BACnet link of one floor, built from the configuration on a backend.

:class:`Building` is held by :class:`edge_agent.hardware.Hardware` when the configuration has
``[[dali]]`` masters or a ``[bacnet]`` table. It opens each DALI master (python-dali's driver for
the configured interface, or the simulator's line) and the gateway's BACnet/IP device, and makes
the outputs and sensors that point at them. Like every other device, a master that cannot be
opened does not stop the daemon: its lights fail their commands and show up unhealthy with the
reason, and the line is tried again at the next status poll.

The backend decides what the drivers talk to. A simulated backend carries ``building_parts``
(:class:`simulator.building.SimBuilding`): python-dali drivers on simulated lines and the address
of each simulated BMS device on the loopback interface. Without it, the real interfaces are
opened: python-dali's hid drivers (hasseb, Tridonic DALI-USB) or serial drivers (Lunatone LUBA,
SCI RS-232), and a UDP socket on ``[bacnet] interface``.

On a clean stop every BACnet output relinquishes its priority (NULL written), so the BMS is back
in charge; see docs/building-systems.md for what happens when the gateway is lost instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from drivers.bacnet import BacnetLink, BacnetPoint, BacnetVentilation
from drivers.dali import DaliBus, DaliLight, fade_code
from drivers.errors import BusError, EdgeError
from drivers.ports import Clock, Output
from edge_agent.building.config import BACNET_QUANTITIES, DaliMaster

log = logging.getLogger("edge_agent.building")

Job = Callable[[], Coroutine[Any, Any, None]]
EXTRA_HINT = "install the extra on the gateway: pip install 'edge-agent[{extra}]'"


def open_dali_driver(master: DaliMaster) -> Any:
    """python-dali's driver for a configured master (imported only now)."""
    try:
        if master.driver in ("hasseb", "tridonic"):
            from dali.driver import hid

            return (hid.hasseb if master.driver == "hasseb" else hid.tridonic)(master.device)
        from dali.driver.serial import drivers_map

        return drivers_map()[master.driver](f"{master.driver}:{master.device}")
    except ImportError as exc:
        raise BusError(f"dali[{master.id}]: python-dali is not installed; {EXTRA_HINT.format(extra='dali')}",
                       bus=master.id) from exc


def local_bacnet_address(cfg: Any) -> str:
    """``interface:port`` for bacpypes3's network port object."""
    return f"{cfg.bacnet.interface}:{cfg.bacnet.port}"


class Building:
    """The floor's DALI lines and BACnet link (see module docstring)."""

    def __init__(self, cfg: Any, backend: Any, clock: Clock) -> None:
        self.cfg = cfg
        self.clock = clock
        self.parts = getattr(backend, "building_parts", None)  # the simulator's, when simulated
        self.masters: dict[str, DaliMaster] = {m.id: m for m in cfg.dali}
        self.lines: dict[str, DaliBus] = {}
        self.errors: dict[str, str] = {}  # master id or "bacnet" -> why it is not open
        self.link: BacnetLink | None = None
        self.lights: dict[str, DaliLight] = {}
        self.vents: dict[str, BacnetVentilation] = {}
        self.points: dict[str, BacnetPoint] = {}
        self.line_status: dict[str, str] = {}  # actuator id -> last status poll note
        self.commissioning: dict[str, dict[str, Any]] = {}

    # -- opening ---------------------------------------------------------------------------
    async def open(self) -> None:
        for master in self.cfg.dali:
            try:
                driver = self.parts.dali_driver(master.id) if self.parts is not None else open_dali_driver(master)
            except (EdgeError, OSError, KeyError) as exc:
                self.errors[master.id] = str(exc)
                log.error("DALI master %s cannot be set up: %s", master.id, exc)
                continue
            self.lines[master.id] = DaliBus(driver, name=master.id)
            await self._connect(master.id)
        if self.cfg.bacnet is not None:
            await self._open_link()

    async def _connect(self, master_id: str) -> bool:
        try:
            await self.lines[master_id].open()
        except (EdgeError, OSError) as exc:
            self.errors[master_id] = str(exc)
            log.error("DALI master %s: %s", master_id, exc)
            return False
        self.errors.pop(master_id, None)
        return True

    async def _open_link(self) -> None:
        conf = self.cfg.bacnet
        local = self.parts.bacnet_local() if self.parts is not None else local_bacnet_address(self.cfg)
        link = BacnetLink(local, device_instance=conf.device_instance, device_name=conf.device_name,
                          vendor_identifier=conf.vendor_identifier, apdu_timeout_s=conf.apdu_timeout_s)
        try:
            import bacpypes3  # noqa: F401
        except ImportError:
            self.errors["bacnet"] = f"bacpypes3 is not installed; {EXTRA_HINT.format(extra='bacnet')}"
            log.error("BACnet: %s", self.errors["bacnet"])
            return
        try:
            await link.open()
        except (EdgeError, OSError) as exc:
            self.errors["bacnet"] = str(exc)
            log.error("BACnet: %s", exc)
            return
        self.link = link

    def device_address(self, configured: str) -> str:
        """Where a configured BMS device is reached (the simulator maps it to its loopback port)."""
        if self.parts is not None:
            return str(self.parts.bacnet_address(configured))
        return configured if ":" in configured else f"{configured}:47808"

    # -- outputs and sensors ----------------------------------------------------------------
    def output(self, actuator: Any) -> Output:
        """The Output of a DALI light or a BACnet ventilation actuator (BusError when its line is absent)."""
        if actuator.output == "dali":
            target = actuator.dali
            bus = self.lines.get(target.master)
            if bus is None:
                raise BusError(f"DALI master {target.master}: {self.errors.get(target.master, 'not open')}",
                               bus=target.master)
            light = DaliLight(bus, self.clock, short_address=target.short_address, group=target.group,
                              fade=fade_code(actuator.ramp_s), name=actuator.id)
            self.lights[actuator.id] = light
            return light
        if self.link is None:
            raise BusError(f"BACnet: {self.errors.get('bacnet', 'no [bacnet] table')}", bus="bacnet")
        b = actuator.bacnet
        vent = BacnetVentilation(self.link, self.device_address(b.device), b.object.replace(":", ","),
                                 priority=b.priority, full_scale=b.full_scale, minimum=b.minimum, name=actuator.id)
        self.vents[actuator.id] = vent
        return vent

    def sensor(self, sensor: Any) -> BacnetPoint:
        if self.link is None:
            raise BusError(f"BACnet: {self.errors.get('bacnet', 'no [bacnet] table')}", bus="bacnet")
        p = sensor.bacnet
        point = BacnetPoint(self.link, self.device_address(p.device), p.object.replace(":", ","), prop=p.property,
                            quantity=sensor.quantity, unit=BACNET_QUANTITIES[sensor.quantity], clock=self.clock,
                            name=sensor.id)
        self.points[sensor.id] = point
        return point

    # -- background work ---------------------------------------------------------------------
    def jobs(self) -> dict[str, Job]:
        """Supervised tasks: one status poll per DALI master (lamp failures, mains cuts, lost lines)."""
        return {f"dali:{mid}": (lambda mid=mid: self._watch_line(mid)) for mid in self.lines}  # type: ignore[misc]

    async def _watch_line(self, master_id: str) -> None:
        master, first = self.masters[master_id], True
        lights = [light for light in self.lights.values() if light.bus is self.lines[master_id]]
        while True:
            if master_id in self.errors and not await self._connect(master_id):
                await self.clock.sleep(master.watch_interval_s)
                continue
            for light in lights:
                try:
                    if first or (light.group is not None and not light.members):
                        await light.setup()
                    note = await light.watch()
                except (EdgeError, OSError) as exc:
                    note = f"{type(exc).__name__}: {exc}"
                    light.health.record_failure(exc)
                if note and note != self.line_status.get(light.name):
                    log.warning("DALI %s (%s): %s", light.name, master_id, note)
                self.line_status[light.name] = note
            first = False
            await self.clock.sleep(master.watch_interval_s)

    # -- closing -----------------------------------------------------------------------------
    def abandon(self) -> None:
        """The gateway loses power: nothing is relinquished, its requests stay in the BMS."""
        for vent in self.vents.values():
            vent.written = False

    async def close(self) -> None:
        """Relinquish every BMS priority this gateway holds, then close the link and the masters."""
        for actuator_id, vent in self.vents.items():
            if not vent.written:
                continue
            try:
                await vent.relinquish()
                log.info("BACnet %s: priority %d relinquished", actuator_id, vent.priority)
            except (EdgeError, OSError) as exc:
                log.error("BACnet %s: could not relinquish priority %d: %s; the BMS keeps the last value until its "
                          "operator clears it (docs/building-systems.md)", actuator_id, vent.priority, exc)
        if self.link is not None:
            self.link.close()
            self.link = None
        for bus in self.lines.values():
            for name in ("disconnect", "close"):
                closer = getattr(bus.driver, name, None)
                if callable(closer):
                    try:
                        result = closer()
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception as exc:  # closing must go on for the others
                        log.warning("closing DALI master %s: %s", bus.name, exc)
                    break

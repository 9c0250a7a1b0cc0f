"""The building's own systems on the simulated floor: DALI lines and BMS devices built from the site config.

:class:`SimBuilding` is what a :class:`edge_agent.backend.SimulatedBackend` hands the daemon as
``building_parts``: a python-dali driver per configured DALI master (on a :class:`SimDaliLine`
whose gear sit at the configured short addresses; a group actuator gets two gear in its group),
and one :class:`SimBms` per configured BMS device address, served by bacpypes3 on 127.0.0.1 at a
free port. The world reads what the lights and the BMS do (:meth:`light_level`,
:meth:`ventilation`) and, through :meth:`follow`, feeds the BMS's read-only points from its air
model (zone temperature, humidity, CO2, supply air temperature, damper position).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.bms import BmsPoint, SimBms, free_udp_port
from simulator.dali_line import SimDaliDriver, SimDaliLine
from simulator.world.hvac import SUPPLY_C

if TYPE_CHECKING:
    from edge_agent.config import Actuator, SiteConfig


def _oid(text: str) -> str:
    return text.replace(" ", "").replace(":", ",")


class SimBuilding:
    """DALI lines and BMS devices of one simulated floor (see module docstring)."""

    def __init__(self, cfg: SiteConfig, monotonic: Callable[[], float], *, seed: int = 0) -> None:
        self.cfg = cfg
        self.clock = monotonic
        self.lines: dict[str, SimDaliLine] = {}
        for k, master in enumerate(cfg.dali):
            targets = [a.dali for a in cfg.actuators if a.dali is not None and a.dali.master == master.id]
            shorts = [t.short_address for t in targets if t.short_address is not None]
            line = SimDaliLine.addressed(shorts, monotonic, seed=seed + 101 * k)
            free = (a for a in range(64) if a not in shorts)
            for t in targets:
                if t.group is not None:
                    for _ in range(2):
                        gear = SimDaliLine.addressed([next(free)], monotonic, seed=seed + len(line.gear)).gear[0]
                        gear.groups = 1 << t.group
                        line.gear.append(gear)
            self.lines[master.id] = line
        points: dict[str, list[BmsPoint]] = {}
        for a in cfg.actuators:
            if a.bacnet is not None:
                points.setdefault(a.bacnet.device, []).append(BmsPoint(_oid(a.bacnet.object), commanded=True,
                                                                        zone=a.zone))
        for s in cfg.sensors:
            if s.bacnet is not None:
                points.setdefault(s.bacnet.device, []).append(BmsPoint(_oid(s.bacnet.object), quantity=s.quantity or "",
                                                                       zone=s.zone))
        self.bms = {device: SimBms(ps, device_instance=1200 + i, name=f"bms-{i + 1}")
                    for i, (device, ps) in enumerate(sorted(points.items()))}
        self.gateway_port = free_udp_port()

    # -- what the daemon's backend asks ------------------------------------------------------
    def dali_driver(self, master_id: str) -> SimDaliDriver:
        return SimDaliDriver(f"simdali:{master_id}", self.lines[master_id])

    def bacnet_local(self) -> str:
        return f"127.0.0.1/32:{self.gateway_port}"

    def bacnet_address(self, configured: str) -> str:
        return self.bms[configured].address

    async def open(self) -> None:
        for bms in self.bms.values():
            await bms.open()

    def close(self) -> None:
        for bms in self.bms.values():
            bms.close()

    # -- what the world reads ----------------------------------------------------------------
    def light_level(self, actuator: Actuator, t: float) -> float:
        """Light output 0..1 of a DALI luminaire (a group: the mean of its gear)."""
        from drivers.dali import light_fraction

        assert actuator.dali is not None
        line = self.lines[actuator.dali.master]
        target = actuator.dali
        if target.short_address is not None:
            gear = line.at(target.short_address)
        else:
            gear = [g for g in line.gear if g.groups >> (target.group or 0) & 1]
        lit = [light_fraction(g.actual(t)) for g in gear if g.powered]
        return sum(lit) / len(lit) if lit else 0.0

    def ventilation(self, actuator: Actuator) -> float:
        """The BMS's present value of the commanded object, as a 0..1 airflow level."""
        assert actuator.bacnet is not None
        bms = self.bms[actuator.bacnet.device]
        if bms.app is None:
            return 0.0
        value = float(bms.present_value(_oid(actuator.bacnet.object)))
        if actuator.bacnet.object.startswith("binary-"):
            return value
        return max(0.0, min(1.0, value / 100.0))

    async def follow(self, world: Any, period_s: float = 30.0) -> None:
        """Keep the BMS's read-only points at the world's truth until cancelled."""
        vent_of_group = {self.cfg.zone(a.zone).hvac: a for a in self.cfg.actuators
                         if a.bacnet is not None and a.zone is not None}

        def read(point: BmsPoint) -> float | None:
            if point.zone is None:
                return None
            z = world.plan.zone_ids.index(point.zone)
            quantity = point.quantity
            if quantity == "temperature":
                return float(world.air.temp[z])
            if quantity == "humidity":
                return float(world.air.rh[z])
            if quantity == "co2":
                return float(world.air.co2[z])
            if quantity == "supply_air_temperature":
                return SUPPLY_C  # what the world's AHUs deliver
            if quantity == "damper_position":  # outdoor air as a share of the AHU's full flow: open at minimum too
                vent = vent_of_group.get(self.cfg.zone(point.zone).hvac)
                if vent is None:
                    return None
                low, high = float(world.air.min_ach[z]), float(world.air.max_ach[z])
                return 100.0 * (low + self.ventilation(vent) * (high - low)) / high if high > 0 else None
            return None

        await asyncio.gather(*(bms.follow(read, period_s) for bms in self.bms.values()))

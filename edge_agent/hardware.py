"""The floor's devices, built from the configuration on a backend: buses, drivers and outputs.

:class:`Hardware` resolves every configured bus to a port (the backend's root buses, TCA9548A
channels, node buses tunnelled over the firmware bridge), creates one driver per sensor and one
:class:`drivers.ports.Output` per actuator function. A device that cannot even be created (no
GPIO library, a missing tty) is kept as a :class:`DeviceSlot` with the reason, so it shows up as
unhealthy with something a technician can act on, while the rest of the floor runs.

Drivers are built from the part-kind table (:mod:`drivers.kinds`): each sensor's kind builds its
driver from :class:`SensorPorts` (the ports its config entry names, opened on first use), the
clock and a :class:`~drivers.kinds.PartSpec`. Nothing here names a sensor kind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.errors import BusError, EdgeError
from drivers.kinds import PartSpec
from drivers.mux import Tca9548a
from drivers.outputs import HvacAnalogOutput, HvacRelay, HvacSetpointOutput, PwmLight
from drivers.ports import AsyncI2CBus, Clock, Output, Reading
from edge_agent.backend import Backend
from edge_agent.config import Actuator, Sensor, SiteConfig
from firmware_bridge.devices import (
    BridgeI2CBus,
    BridgeSensorBlocks,
    DeskHeight,
    DeskLamp,
    DimmerChannel,
    SeatIndicator,
)
from firmware_bridge.link import BridgeLink
from firmware_bridge.registry import NodeRegistry
from rules.state import IntentKind

log = logging.getLogger("edge_agent.hardware")

OutputKey = tuple[str, IntentKind]


class DaemonOnlyError(BusError):
    """A part reached only through a link the daemon alone drives (the RS-485 line, the BACnet link)."""


@dataclass
class DeviceSlot:
    """One configured sensor: its driver when it could be created, else why not."""

    sensor: Sensor
    driver: Any = None
    error: str = ""


@dataclass
class Hardware:
    """Every port, driver and output of one floor (see module docstring)."""

    cfg: SiteConfig
    backend: Backend
    clock: Clock
    state_dir: Path
    node_poll_interval_s: float = 1.0
    link: BridgeLink | None = None
    building: Any = None  # edge_agent.building.devices.Building: DALI lines and the BACnet link
    sensors: dict[str, DeviceSlot] = field(default_factory=dict)
    outputs: dict[OutputKey, Output] = field(default_factory=dict)
    output_errors: dict[str, str] = field(default_factory=dict)
    _ports: dict[str, Any] = field(default_factory=dict)
    _muxes: dict[tuple[str, int], Tca9548a] = field(default_factory=dict)
    _blocks: dict[int, BridgeSensorBlocks] = field(default_factory=dict)

    async def open(self) -> None:
        """Build everything; never raises for one bad device (it is recorded instead)."""
        if self.cfg.bridge is not None:
            transport = self.backend.bridge_transport(self.cfg.bridge)
            registry = NodeRegistry(self.state_dir)
            self.link = BridgeLink(transport, baud=self.cfg.bridge.baud, clock=self.clock, registry=registry)
            self.link.start()
            for node in sorted(self.node_addresses()):
                self.link.watch(node, self.node_poll_interval_s)
        if self.cfg.dali or self.cfg.bacnet is not None:
            from edge_agent.building.devices import Building  # the optional parts, only when configured

            self.building = Building(self.cfg, self.backend, self.clock)
            await self.building.open()
        for sensor in self.cfg.sensors:
            slot = DeviceSlot(sensor)
            try:
                slot.driver = self._make_sensor(sensor)
            except (EdgeError, OSError, ValueError) as exc:
                slot.error = str(exc)
                log.error("sensor %s cannot be set up: %s", sensor.id, exc)
            self.sensors[sensor.id] = slot
        for actuator in self.cfg.actuators:
            try:
                self._make_outputs(actuator)
            except (EdgeError, OSError, ValueError) as exc:
                self.output_errors[actuator.id] = str(exc)
                log.error("actuator %s cannot be set up: %s", actuator.id, exc)

    async def close(self) -> None:
        for slot in self.sensors.values():
            closer = getattr(slot.driver, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # closing must go on for the others
                    log.warning("closing %s: %s", slot.sensor.id, exc)
        for output in self.outputs.values():
            closer = getattr(output, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:
                    log.warning("closing output: %s", exc)
        if self.link is not None:
            await self.link.aclose()
            self.link = None
        if self.building is not None:
            await self.building.close()
            self.building = None
        await self.backend.aclose()

    def jobs(self) -> dict[str, Any]:
        """Background work of the devices for the daemon's supervisor: the RS-485 line's watch over its
        own workers (a dead reader or sender is reported and started again), DALI line status polls."""
        jobs: dict[str, Any] = {}
        if self.link is not None:
            jobs["bridge-line"] = self.link.supervise
        if self.building is not None:
            jobs.update(self.building.jobs())
        return jobs

    # -- buses -------------------------------------------------------------------------------
    def node_addresses(self) -> set[int]:
        nodes = {b.node for b in self.cfg.buses if b.node is not None}
        nodes |= {s.node for s in self.cfg.sensors if s.node is not None}
        nodes |= {a.node for a in self.cfg.actuators if a.node is not None}
        return nodes

    def port(self, bus_id: str) -> AsyncI2CBus:
        """The bus port for a config bus id (cached, one mux object per physical chip)."""
        if bus_id in self._ports:
            port: AsyncI2CBus = self._ports[bus_id]
            return port
        bus = next(b for b in self.cfg.buses if b.id == bus_id)
        if bus.kind == "linux":
            port = self.backend.i2c_bus(bus)
        elif bus.kind == "mux":
            assert bus.parent is not None and bus.address is not None and bus.channel is not None
            key = (bus.parent, bus.address)
            if key not in self._muxes:
                self._muxes[key] = Tca9548a(self.port(bus.parent), bus.address, name=f"{bus.parent}/mux")
            port = self._muxes[key].channel(bus.channel)
        else:
            if self.link is None or bus.node is None:
                raise BusError(f"{bus_id}: node buses need the [bridge] line", bus=bus_id)
            port = BridgeI2CBus(self.link, bus.node)
        self._ports[bus_id] = port
        return port

    # -- sensors -----------------------------------------------------------------------------
    def _make_sensor(self, s: Sensor) -> Any:
        return s.part.build(SensorPorts(self, s), self.clock, self.spec(s))

    def spec(self, s: Sensor) -> PartSpec:
        """What the sensor's driver is told about it (its wiring and settings, no config file)."""
        remote = any(b.id == s.bus and b.kind == "node" for b in self.cfg.buses)
        return PartSpec(name=s.id, address=s.address, pin=s.pin, node=s.node, ble_address=s.ble_address,
                        serial_port=s.serial_port, poll_interval_s=s.poll_interval_s, remote=remote,
                        settings=dict(s.settings))

    async def read_once(self, sensor: Sensor) -> list[Reading]:
        """Build one sensor's driver as :meth:`open` does, start it, read it once, and close.

        The technician's direct read (no daemon running) goes through here, so it runs the code
        the daemon runs. A part reached only through the RS-485 line is refused: the bridge is the
        daemon's to drive.
        """
        if sensor.bus is not None and any(b.id == sensor.bus and b.kind == "node" for b in self.cfg.buses):
            raise DaemonOnlyError(f"{sensor.id} is on {sensor.bus}, a node's bus behind the RS-485 line",
                                  bus=sensor.bus)
        driver = self._make_sensor(sensor)
        if driver is None:
            raise DaemonOnlyError(f"{sensor.id} is reported by node {sensor.node} over the RS-485 line",
                                  bus="bridge")
        try:
            await sensor.part.start(driver)
            return await sensor.part.readings(driver)
        finally:
            closer = getattr(driver, "close", None)
            if callable(closer):
                closer()
            await self.backend.aclose()

    # -- actuators ---------------------------------------------------------------------------
    def _make_outputs(self, a: Actuator) -> None:
        link = self.link
        if a.output in ("dali", "bacnet"):
            kind = IntentKind.LIGHT_LEVEL if a.kind == "light" else IntentKind.VENTILATION
            self.outputs[a.id, kind] = self.building.output(a)
            return
        if a.kind == "light":
            if a.node is not None:
                assert link is not None
                self.outputs[a.id, IntentKind.LIGHT_LEVEL] = DimmerChannel(link, a.node, a.channel)
            else:
                assert a.pin is not None
                self.outputs[a.id, IntentKind.LIGHT_LEVEL] = PwmLight(
                    a.pin, self.backend.pin_factory(), self.clock, name=a.id)
        elif a.kind == "desk":
            assert link is not None and a.node is not None
            self.outputs[a.id, IntentKind.DESK_HEIGHT] = DeskHeight(link, a.node, a.channel)
            self.outputs[a.id, IntentKind.DESK_LAMP] = DeskLamp(link, a.node, a.channel)
            self.outputs[a.id, IntentKind.INDICATOR] = SeatIndicator(link, a.node, a.channel)
        else:  # hvac
            if a.node is not None:
                assert link is not None
                self.outputs[a.id, IntentKind.VENTILATION] = DimmerChannel(link, a.node, a.channel)
            elif a.output == "relay":
                assert a.pin is not None
                self.outputs[a.id, IntentKind.VENTILATION] = HvacRelay(a.pin, self.backend.pin_factory(), name=a.id)
            else:
                assert a.pin is not None
                self.outputs[a.id, IntentKind.VENTILATION] = HvacAnalogOutput(
                    a.pin, self.backend.pin_factory(), self.clock, name=a.id)
            for kind, pin in ((IntentKind.SETPOINT, a.heating_setpoint_pin),
                              (IntentKind.COOLING_SETPOINT, a.cooling_setpoint_pin)):
                if pin is not None:
                    self.outputs[a.id, kind] = HvacSetpointOutput(pin, self.backend.pin_factory(), self.clock,
                                                                  name=f"{a.id}-{kind.value}")


@dataclass
class SensorPorts:
    """The ports of one configured sensor (drivers.kinds.PartPorts), resolved when asked for."""

    hardware: Hardware
    sensor: Sensor

    def i2c(self) -> AsyncI2CBus:
        if self.sensor.bus is None:
            raise BusError(f"{self.sensor.id}: no bus configured", bus="")
        return self.hardware.port(self.sensor.bus)

    def pin_factory(self) -> Any:
        return self.hardware.backend.pin_factory()

    def sensor_blocks(self) -> BridgeSensorBlocks:
        hw, node = self.hardware, self.sensor.node
        if hw.link is None or node is None:
            raise DaemonOnlyError(f"{self.sensor.id} is reported by node {node} over the RS-485 line "
                                  "(the [bridge] line, which only the daemon drives)", bus="bridge")
        if node not in hw._blocks:
            hw._blocks[node] = BridgeSensorBlocks(hw.link, node)
        return hw._blocks[node]

    def ble_backend(self) -> Any:
        return self.hardware.backend.ble_backend()

    def serial_stream(self) -> Any:
        return self.hardware.backend.serial_stream(self.sensor)

    def bms_point(self) -> Any:
        if self.hardware.building is None:
            raise DaemonOnlyError(f"{self.sensor.id} is a BMS point, read over the BACnet link of the floor's "
                                  "[bacnet] table", bus="bacnet")
        return self.hardware.building.sensor(self.sensor)

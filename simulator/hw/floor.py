"""Build a floor's simulated hardware from its site config: buses, parts, pins, radios.

This is the simulator's hardware *backend*: the daemon, started with ``--simulate``, takes bus
ports, a pin factory and a bleak backend from :class:`SimHardware` instead of opening ``/dev``,
and runs its real drivers on them. The floor world (people, daylight, HVAC) drives the physics
through the devices' test controls (``set_frame``, ``set_lux``, ``set_environment`` ...).

Each sensor's simulated part is built by the factory its kind registers (:mod:`simulator.hw.parts`),
so this module names no part kind. Bus ports per config bus kind:

- ``linux``: a :class:`SimI2CBus` (drop-in for ``smbus2.SMBus``);
- ``mux``: a real :class:`drivers.mux.MuxChannel` on the parent port, with a
  :class:`SimTCA9548A` attached to the parent bus -- the driver's channel selection is exercised;
- ``node``: a plain :class:`SimI2CBus` the firmware-bridge simulator's node adopts as its local
  bus (also in ``node_buses`` by node address).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.mux import Tca9548a
from drivers.ports import AsyncI2CBus
from simulator.hw.ble import SimBleAir
from simulator.hw.bus import SimI2CBus
from simulator.hw.dwm1001 import SimDwm1001Listener, SimDwm1001Tag
from simulator.hw.gpio import make_pin_factory
from simulator.hw.mux import SimTCA9548A
from simulator.hw.parts import sim_parts
from simulator.hw.uart import LoopbackListener, LoopbackSerial, SimDwm1001Uart, SimListenerUart

if TYPE_CHECKING:  # the config schema is the contract; nothing of the daemon is imported
    from edge_agent.config import SiteConfig


def _no_time() -> float:
    return 0.0


@dataclass
class SimHardware:
    """Everything simulated on one floor; ``close()`` releases the ptys."""

    monotonic: Callable[[], float] = _no_time
    buses: dict[str, AsyncI2CBus] = field(default_factory=dict)  # the drivers' port per config bus
    node_buses: dict[int, SimI2CBus] = field(default_factory=dict)
    devices: dict[str, object] = field(default_factory=dict)  # the simulated part of each sensor, by id
    sim_buses: dict[str, SimI2CBus] = field(default_factory=dict)  # where each config bus's parts hang
    muxes: dict[str, SimTCA9548A] = field(default_factory=dict)  # "parent@0x70" -> simulated chip
    pin_factory: Any = None
    ble_air: SimBleAir = field(default_factory=SimBleAir)
    uart_tags: dict[str, SimDwm1001Tag] = field(default_factory=dict)
    uart_listeners: dict[str, SimDwm1001Listener] = field(default_factory=dict)
    building: Any = None  # simulator.building.SimBuilding: DALI lines and BMS devices, when configured
    _uarts: dict[str, SimDwm1001Uart | SimListenerUart] = field(default_factory=dict)

    @property
    def ble_backend(self) -> type[Any]:
        """The bleak client backend class to pass as ``BleakClient(..., backend=...)``."""
        return self.ble_air.client_backend

    @property
    def ble_scanner_backend(self) -> type[Any]:
        return self.ble_air.scanner_backend

    def uwb_uart(self, sensor_id: str) -> SimDwm1001Uart | SimListenerUart:
        """The pty-served UART of a serial DWM1001 sensor, tag or listener (opened on first use)."""
        if sensor_id not in self._uarts:
            if sensor_id in self.uart_listeners:
                self._uarts[sensor_id] = SimListenerUart(self.uart_listeners[sensor_id])
            elif sensor_id in self.uart_tags:
                self._uarts[sensor_id] = SimDwm1001Uart(self.uart_tags[sensor_id])
            else:
                raise KeyError(f"{sensor_id!r} is not a serial DWM1001 in this config")
        return self._uarts[sensor_id]

    def loopback_uart(self, sensor_id: str) -> LoopbackSerial | LoopbackListener:
        """The in-process twin of :meth:`uwb_uart`, for the virtual clock."""
        if sensor_id in self.uart_listeners:
            return LoopbackListener(self.uart_listeners[sensor_id])
        return LoopbackSerial(self.uart_tags[sensor_id])

    def close(self) -> None:
        if self.building is not None:
            self.building.close()
        for uart in self._uarts.values():
            uart.close()
        self._uarts.clear()


def build_simulated_hardware(cfg: SiteConfig, monotonic: Callable[[], float]) -> SimHardware:
    """Simulated buses, parts at their configured addresses, pins and radios for ``cfg``."""
    hw = SimHardware(monotonic=monotonic, pin_factory=make_pin_factory())
    by_id = {b.id: b for b in cfg.buses}
    drivers_mux: dict[str, Tca9548a] = {}

    def resolve(bus_id: str, depth: int = 0) -> None:
        if bus_id in hw.buses:
            return
        if depth > len(by_id):
            raise ValueError(f"buses: {bus_id!r} is its own ancestor; fix the parent chain")
        bus = by_id[bus_id]
        if bus.kind == "linux":
            sim = SimI2CBus(bus.id)
            hw.buses[bus.id] = hw.sim_buses[bus.id] = sim
        elif bus.kind == "node":
            sim = SimI2CBus(bus.id)
            assert bus.node is not None  # guaranteed by the config schema
            hw.buses[bus.id] = hw.sim_buses[bus.id] = hw.node_buses[bus.node] = sim
        else:
            assert bus.parent is not None and bus.address is not None and bus.channel is not None
            resolve(bus.parent, depth + 1)
            key = f"{bus.parent}@0x{bus.address:02x}"
            if key not in hw.muxes:
                chip = SimTCA9548A(monotonic, name=key)
                hw.sim_buses[bus.parent].attach(bus.address, chip)
                hw.muxes[key] = chip
                drivers_mux[key] = Tca9548a(hw.buses[bus.parent], bus.address, name=key)
            hw.sim_buses[bus.id] = hw.muxes[key].channel_bus(bus.channel)
            hw.buses[bus.id] = drivers_mux[key].channel(bus.channel)

    for bus in cfg.buses:
        resolve(bus.id)

    parts = sim_parts()
    for sensor in cfg.sensors:
        if sensor.kind not in parts:
            raise ValueError(f"sensors: no simulated part for kind {sensor.kind!r}; add one in simulator/hw/")
        device = parts[sensor.kind].make(hw, sensor)
        if device is not None:
            hw.devices[sensor.id] = device
    if cfg.dali or cfg.bacnet is not None:
        from simulator.building import SimBuilding  # python-dali and bacpypes3: only for floors that have them

        hw.building = SimBuilding(cfg, monotonic)
    return hw

"""Choosing what the drivers talk to, in one place (as gpiozero chooses a pin factory).

A :class:`Backend` supplies the roots of every bus: the gateway's own I2C buses, the GPIO pin
factory, the BLE backend, the RS-485 transport to the nodes and the serial ports of UART parts.
Everything above it (mux channels, tunnelled node buses, drivers, outputs) is built the same way
whatever the backend, so ``edge-agent run --simulate`` is the real daemon on simulated parts.

- :class:`HardwareBackend`: smbus2, gpiozero's default factory, bleak's BlueZ backend, the tty.
- :class:`SimulatedBackend`: the simulator's buses, MockFactory, tag backend and in-memory line.

Optional or platform-specific pieces are imported lazily and, when missing, fall back *loudly*:
the affected devices are reported unhealthy with the reason, never silently faked.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from drivers.errors import BusError
from edge_agent.config import Bridge, Bus, Sensor
from firmware_bridge.transport import SerialTransport, Transport

log = logging.getLogger("edge_agent.backend")


class Backend(Protocol):
    """The roots of every bus a gateway uses."""

    name: str

    def i2c_bus(self, bus: Bus) -> Any:
        """The root bus for a config bus of kind ``linux`` (an smbus2.SMBus-compatible object)."""
        ...

    def pin_factory(self) -> Any:
        """A gpiozero pin factory, or raise BusError with the reason."""
        ...

    def ble_backend(self) -> Any:
        """A bleak backend class to pass as ``backend=``, or None for bleak's default."""
        ...

    def bridge_transport(self, bridge: Bridge) -> Transport:
        """The byte pipe to the RS-485 line."""
        ...

    def serial_path(self, sensor: Sensor) -> str:
        """The tty of a UART part."""
        ...

    async def aclose(self) -> None: ...


class HardwareBackend:
    """The real buses of a gateway."""

    name = "hardware"

    def __init__(self) -> None:
        self._buses: dict[str, Any] = {}
        self._factory: Any = None

    def i2c_bus(self, bus: Bus) -> Any:
        if bus.id in self._buses:
            return self._buses[bus.id]
        from smbus2 import SMBus

        device = bus.device or ""
        try:
            handle = SMBus(device)
        except FileNotFoundError:
            raise BusError(f"{device}: no such I2C bus; enable I2C (raspi-config nonint do_i2c 0) and reboot",
                           bus=bus.id) from None
        except PermissionError:
            raise BusError(f"{device}: permission denied; add the service user to group i2c", bus=bus.id) from None
        except OSError as exc:
            raise BusError(f"{device}: cannot open ({exc.strerror})", bus=bus.id) from exc
        self._buses[bus.id] = handle
        return handle

    def pin_factory(self) -> Any:
        if self._factory is not None:
            return self._factory
        from gpiozero import Device
        from gpiozero.exc import BadPinFactory

        try:
            self._factory = Device.pin_factory or Device._default_pin_factory()
        except BadPinFactory as exc:
            raise BusError(
                "no GPIO library works here (install the 'pi' extra: lgpio on a Pi 5, RPi.GPIO or lgpio on a Pi 4)",
                bus="gpio",
            ) from exc
        return self._factory

    def ble_backend(self) -> Any:
        return None

    def bridge_transport(self, bridge: Bridge) -> Transport:
        return SerialTransport(bridge.port, bridge.baud)

    def serial_path(self, sensor: Sensor) -> str:
        return sensor.serial_port or ""

    async def aclose(self) -> None:
        for handle in self._buses.values():
            try:
                handle.close()
            except OSError as exc:
                log.warning("closing I2C bus failed: %s", exc)
        self._buses.clear()


class SimulatedBackend:
    """The simulator's parts, handed over by the simulation seam (edge_agent.simulate)."""

    name = "simulated"

    def __init__(self, *, i2c_buses: dict[str, Any], pin_factory: Any, ble_backend: Any,
                 transport: Transport | None, serial_paths: dict[str, str]) -> None:
        self._i2c = i2c_buses
        self._factory = pin_factory
        self._ble = ble_backend
        self._transport = transport
        self._serial = serial_paths

    def i2c_bus(self, bus: Bus) -> Any:
        try:
            return self._i2c[bus.id]
        except KeyError:
            raise BusError(f"{bus.id}: the simulator has no such bus", bus=bus.id) from None

    def pin_factory(self) -> Any:
        return self._factory

    def ble_backend(self) -> Any:
        return self._ble

    def bridge_transport(self, bridge: Bridge) -> Transport:
        if self._transport is None:
            raise BusError("the simulated floor has no RS-485 line", bus="bridge")
        return self._transport

    def serial_path(self, sensor: Sensor) -> str:
        return self._serial.get(sensor.id, "")

    async def aclose(self) -> None:
        return None

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

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from drivers.errors import BridgeError, BusError, PortUnavailableError
from drivers.i2c import SmbusPort
from drivers.ports import AsyncI2CBus
from edge_agent.config import Bridge, Bus, Sensor
from firmware_bridge.transport import MemoryEndpoint, SerialTransport, Transport

log = logging.getLogger("edge_agent.backend")
T = TypeVar("T")


class Backend(Protocol):
    """The roots of every bus a gateway uses."""

    name: str

    def i2c_bus(self, bus: Bus) -> AsyncI2CBus:
        """The root bus port for a config bus of kind ``linux``."""
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

    def serial_stream(self, sensor: Sensor) -> Any:
        """The byte stream of a UART part (drivers.serial.SerialStream's surface)."""
        ...

    async def aclose(self) -> None: ...


class HardwareBackend:
    """The real buses of a gateway."""

    name = "hardware"

    def __init__(self) -> None:
        self._buses: dict[str, SmbusPort] = {}
        self._factory: Any = None
        self._failed: dict[str, BusError] = {}  # opened once, reported once; a reload tries again

    def i2c_bus(self, bus: Bus) -> AsyncI2CBus:
        if bus.id in self._buses:
            return self._buses[bus.id]
        if bus.id in self._failed:
            raise self._failed[bus.id]
        try:
            handle = self._open_i2c(bus)
        except BusError as exc:
            self._failed[bus.id] = exc
            raise
        self._buses[bus.id] = handle
        return handle

    def _open_i2c(self, bus: Bus) -> SmbusPort:
        """``/dev/i2c-N`` through smbus2, as the drivers' port; every failure is one clear BusError."""
        from smbus2 import SMBus

        device = bus.device or ""
        try:
            handle = SMBus(device)
        except FileNotFoundError:
            raise PortUnavailableError(
                f"{device}: no such I2C bus; enable I2C (raspi-config nonint do_i2c 0) and reboot", bus=bus.id
            ) from None
        except PermissionError:
            raise PortUnavailableError(
                f"{device}: permission denied; add the service user to group i2c", bus=bus.id
            ) from None
        except OSError as exc:
            raise PortUnavailableError(f"{device}: cannot open ({exc.strerror})", bus=bus.id) from exc
        return SmbusPort(handle, name=device)

    def pin_factory(self) -> Any:
        if self._factory is not None:
            return self._factory
        if "gpio" in self._failed:
            raise self._failed["gpio"]
        import warnings

        from gpiozero import Device
        from gpiozero.exc import BadPinFactory, PinFactoryFallback

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PinFactoryFallback)  # we say it once, in our own words
                self._factory = Device.pin_factory or Device._default_pin_factory()
        except BadPinFactory as exc:
            self._failed["gpio"] = PortUnavailableError(
                "no GPIO library works here (install the 'pi' extra: lgpio on a Pi 5, RPi.GPIO or lgpio on a Pi 4)",
                bus="gpio",
            )
            raise self._failed["gpio"] from exc
        return self._factory

    def ble_backend(self) -> Any:
        return None

    def bridge_transport(self, bridge: Bridge) -> Transport:
        return ReopeningSerial(bridge.port, bridge.baud)

    def serial_stream(self, sensor: Sensor) -> Any:
        from drivers.serial import SerialStream

        return SerialStream(sensor.serial_port or "")

    async def aclose(self) -> None:
        for handle in self._buses.values():
            try:
                handle.close()
            except OSError as exc:
                log.warning("closing I2C bus failed: %s", exc)
        self._buses.clear()


class ReopeningSerial:
    """The RS-485 adapter as a transport that survives being absent or unplugged.

    A missing ``/dev/ttyUSB0`` at start, or an adapter pulled out later, must not stop the
    daemon: writes fail (the bridge marks the nodes unhealthy) while reads wait and retry the
    port every ``retry_s`` until it is back.
    """

    def __init__(self, path: str, baud: int, retry_s: float = 5.0) -> None:
        self.path = path
        self.baud = baud
        self.retry_s = retry_s
        self._port: SerialTransport | None = None
        self._closed = False
        self._complained = False

    def _open(self) -> SerialTransport | None:
        if self._port is None:
            try:
                self._port = SerialTransport(self.path, self.baud)
                log.info("bridge line %s open", self.path)
                self._complained = False
            except BridgeError as exc:
                if not self._complained:
                    log.error("%s; retrying every %.0f s", exc, self.retry_s)
                    self._complained = True
        return self._port

    def _port_for_writing(self) -> SerialTransport:
        port = self._open()
        if port is None:
            raise BridgeError(f"{self.path}: the RS-485 adapter is not there")
        return port

    async def write(self, data: bytes) -> None:
        await self._port_for_writing().write(data)

    def write_now(self, data: bytes) -> int:
        """What the port takes at once (the link's exchanges from callbacks, SerialTransport.write_now)."""
        return self._port_for_writing().write_now(data)

    async def _reopening(self, use: Callable[[SerialTransport], Awaitable[T]]) -> T:
        """``use(port)`` on the open port; a missing port is retried every ``retry_s`` and a lost one
        closed and opened again, so the link's reader lives on until the transport is closed."""
        while not self._closed:
            port = self._open()
            if port is None:
                await asyncio.sleep(self.retry_s)
                continue
            try:
                return await use(port)
            except BridgeError as exc:
                log.error("bridge line lost: %s", exc)
                await port.aclose()
                self._port = None
        raise BridgeError(f"{self.path}: transport closed")

    async def receive(self, on_bytes: Callable[[bytes], None]) -> None:
        """Bytes to ``on_bytes`` in the port's readable callback (SerialTransport.receive)."""
        await self._reopening(lambda port: port.receive(on_bytes))

    async def read(self) -> bytes:
        return await self._reopening(SerialTransport.read)

    async def aclose(self) -> None:
        self._closed = True
        if self._port is not None:
            await self._port.aclose()
            self._port = None


class SimulatedBackend:
    """The simulator's parts, handed over by the simulation seam (edge_agent.simulate)."""

    name = "simulated"

    def __init__(self, *, i2c_buses: dict[str, AsyncI2CBus], pin_factory: Any, ble_backend: Any,
                 transport: Transport | None, serial_streams: dict[str, Any], building_parts: Any = None) -> None:
        self.building_parts = building_parts  # simulator.building.SimBuilding: DALI lines, BMS devices
        self._i2c = i2c_buses
        self._factory = pin_factory
        self._ble = ble_backend
        self._transport = transport
        self._serial = serial_streams

    def i2c_bus(self, bus: Bus) -> AsyncI2CBus:
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
        line = self._transport
        if callable(getattr(line, "write_now", None)) and callable(getattr(line, "receive", None)):
            return TtyLineLease(line)  # a tty (the benchmark's floor in another process)
        if isinstance(line, MemoryEndpoint):
            return MemoryLineLease(line)  # the simulated day's line, in this process
        return LineLease(self._transport)

    def serial_stream(self, sensor: Sensor) -> Any:
        try:
            return self._serial[sensor.id]
        except KeyError:
            raise BusError(f"{sensor.id}: the simulator has no such UART part", bus="serial") from None

    async def aclose(self) -> None:
        return None


class LineLease:
    """The simulated RS-485 line as one bridge link holds it: closing the lease leaves the line up.

    The simulation owns the line for a daemon's whole life; a config reload closes one bridge link
    and opens another on the same line, as a gateway closes and reopens its serial adapter.
    """

    def __init__(self, line: Transport) -> None:
        self._line = line
        self._closed = False

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise BridgeError("the bridge link's lease on the simulated line is closed")
        await self._line.write(data)

    async def read(self) -> bytes:
        if self._closed:
            raise BridgeError("the bridge link's lease on the simulated line is closed")
        return await self._line.read()

    async def aclose(self) -> None:
        self._closed = True


class TtyLineLease(LineLease):
    """A lease on a line that is a tty: the link's exchanges run from its callbacks
    (``write_now``, ``receive``: :class:`firmware_bridge.transport.SerialTransport`), as on a gateway."""

    def write_now(self, data: bytes) -> int:
        if self._closed:
            raise BridgeError("the bridge link's lease on the simulated line is closed")
        return int(self._line.write_now(data))  # type: ignore[attr-defined]

    async def receive(self, on_bytes: Callable[[bytes], None]) -> None:
        if self._closed:
            raise BridgeError("the bridge link's lease on the simulated line is closed")
        await self._line.receive(on_bytes)  # type: ignore[attr-defined]


class MemoryLineLease(LineLease):
    """A lease on the in-process memory line: the link's exchanges run from callbacks, as on a tty.

    Why: the simulated day makes about 300 000 exchanges, and on the task-driven path each wakes
    the link's sender task several times and its reader once. From callbacks a request is written
    in the turn its caller queued it and its reply decoded in the callback that delivers it, at the
    same virtual times (the line's byte timing is the endpoint's, as before); the link's choices
    are the same code as on a gateway's tty (:class:`firmware_bridge.exchange.LineMaster`).
    """

    def __init__(self, line: MemoryEndpoint) -> None:
        super().__init__(line)
        self._memory = line

    def write_now(self, data: bytes) -> int:
        if self._closed:
            raise BridgeError("the bridge link's lease on the simulated line is closed")
        self._memory.transmit(data)
        return len(data)

    async def receive(self, on_bytes: Callable[[bytes], None]) -> None:
        if self._closed:
            raise BridgeError("the bridge link's lease on the simulated line is closed")
        await self._memory.listen(on_bytes)

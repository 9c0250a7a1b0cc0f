"""BMS objects over BACnet/IP (ASHRAE 135) through bacpypes3: a commanded ventilation output and read-only points.

:class:`BacnetLink` is the gateway's own BACnet device: a bacpypes3 ``Application`` bound to one
UDP address (``"192.168.10.5/24:47808"``; the simulator and the tests bind 127.0.0.1). It is
created inside the running loop (bacpypes3 opens its sockets there) and closed with ``close``.
bacpypes3 raises its Error/Reject/Abort PDUs as ``BaseException`` subclasses; every call here
translates them, and its own timeouts, into the project's errors at the boundary:

- no answer (``AbortPDU`` no-response, or our own deadline): :class:`BusTimeoutError`;
- the device refuses (unknown object or property, write access denied, ...): :class:`BacnetRefused`
  with the BACnet error class and code in the message.

:class:`BacnetVentilation` writes ``present-value`` of an analog or binary object at one priority
of its priority array and never any other: the BMS keeps its own schedule at lower priorities and
its life-safety priorities (1-2) above, and the object's present value is the highest non-NULL
slot or, when all are NULL, the relinquish default. ``relinquish`` writes NULL at that priority:
the gateway's request disappears and the BMS is back in charge. ``read_back`` reads the priority
array and reports what stands in *our* slot; whether a higher priority currently wins is kept in
``overridden_by`` for the technician.

:class:`BacnetPoint` reads one property (supply air temperature, damper position, a zone
temperature) for the sensor pollers.
"""

from __future__ import annotations

import asyncio
import errno
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.errors import BusError, BusTimeoutError, DriverError
from drivers.health import DeviceHealth
from drivers.kinds import PartKind, PartPorts, PartSpec, Quantity
from drivers.ports import Clock, Reading


class BacnetRefused(DriverError):
    """The BMS device answered with an Error, Reject or Abort PDU."""


@dataclass(frozen=True)
class DeviceFound:
    """One I-Am: a device instance at an address, and who made it."""

    instance: int
    address: str
    vendor: int
    max_apdu: int


def _plain(value: Any) -> Any:
    """A bacpypes3 value as plain Python (numbers, strings, lists)."""
    if value is None:
        return None
    from bacpypes3.primitivedata import Enumerated

    if isinstance(value, Enumerated):
        return str(value)  # units, a binary present value: the name, like "percent" or "active"
    if isinstance(value, bool | int | float | str):
        return value
    choice = getattr(value, "_choice", None)
    if choice is not None:  # a PriorityValue and other CHOICEs
        return None if getattr(value, "null", None) is not None else _plain(getattr(value, choice))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    text = str(value)
    for cast in (int, float):
        try:
            return cast(value)
        except (TypeError, ValueError):
            continue
    return text


class BacnetLink:
    """The gateway's BACnet/IP device and what it asks of BMS devices (see module docstring)."""

    def __init__(self, local_address: str, *, device_instance: int, device_name: str = "edge-agent",
                 vendor_identifier: int = 999, apdu_timeout_s: float = 3.0, retries: int = 2,
                 name: str = "bacnet") -> None:
        self.local_address = local_address
        self.device_instance = device_instance
        self.device_name = device_name
        self.vendor_identifier = vendor_identifier
        self.apdu_timeout_s = apdu_timeout_s
        self.retries = retries
        self.name = name
        self.app: Any = None
        self.health = DeviceHealth(name)

    @property
    def broadcasts(self) -> bool:
        """Whether Who-Is can be broadcast (bacpypes3 listens for broadcasts only on a fixed port)."""
        return not self.local_address.endswith(":0") and "/32" not in self.local_address

    async def open(self) -> None:
        from bacpypes3.app import Application
        from bacpypes3.local.device import DeviceObject
        from bacpypes3.local.networkport import NetworkPortObject

        self._probe_port()
        device = DeviceObject(objectIdentifier=("device", self.device_instance), objectName=self.device_name,
                              vendorIdentifier=self.vendor_identifier,
                              apduTimeout=round(self.apdu_timeout_s * 1000), numberOfApduRetries=self.retries)
        port = NetworkPortObject(self.local_address, objectIdentifier=("network-port", 1), objectName="NetworkPort-1")
        try:
            self.app = Application.from_object_list([device, port])
        except (OSError, ValueError) as exc:
            raise BusError(f"{self.name}: cannot open BACnet/IP on {self.local_address} ({exc})",
                           bus=self.name) from exc
        # bacpypes3 binds in a task and retries forever on a busy port: give it a moment, then say so
        for link in self.app.link_layers.values():
            server = getattr(link, "server", None)
            tasks = getattr(server, "_transport_tasks", [])
            done, _ = await asyncio.wait(tasks, timeout=2.0) if tasks else (set(), set())
            if len(done) < len(tasks):
                self.close()
                raise BusError(f"{self.name}: UDP {self.local_address} is in use or not on this host; "
                               "check [bacnet] interface and port", bus=self.name)

    def _probe_port(self) -> None:
        """Refuse a port another process holds: bacpypes3 binds with SO_REUSEPORT, and two sockets on one
        port would each get a share of the BMS's answers."""
        host_cidr, _, port_text = self.local_address.rpartition(":")
        host = host_cidr.split("/")[0]
        if not port_text.isdigit() or int(port_text) == 0:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, int(port_text)))
            except OSError as exc:
                why = ("is in use by another process (a running daemon?)" if exc.errno == errno.EADDRINUSE
                       else f"cannot be bound ({exc.strerror}); is {host} an address of this host?")
                raise BusError(f"{self.name}: UDP {host}:{port_text} {why}; check [bacnet] interface and port",
                               bus=self.name) from None

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None

    def _deadline(self) -> float:
        return self.apdu_timeout_s * (self.retries + 1) + 1.0

    async def _call(self, what: str, address: str, make: Callable[[Any], Any]) -> Any:
        from bacpypes3.apdu import AbortPDU, ErrorRejectAbortNack
        from bacpypes3.pdu import Address

        if self.app is None:
            raise BusError(f"{self.name}: the BACnet link is not open", bus=self.name)
        try:
            async with asyncio.timeout(self._deadline()):
                result = await make(Address(address))
        except TimeoutError:
            raise BusTimeoutError(f"{what}: no answer from {address}", bus=self.name) from None
        except ErrorRejectAbortNack as exc:
            if isinstance(exc, AbortPDU) and "no-response" in str(exc):
                raise BusTimeoutError(f"{what}: no answer from {address}", bus=self.name) from None
            raise BacnetRefused(f"{what}: {address} refused: {exc}", device=address) from None
        except OSError as exc:
            raise BusError(f"{what}: {exc}", bus=self.name) from exc
        if isinstance(result, ErrorRejectAbortNack):
            raise BacnetRefused(f"{what}: {address} refused: {result}", device=address)
        return result

    async def read(self, address: str, object_id: str, prop: str = "present-value", index: int | None = None) -> Any:
        """One property, as plain Python."""
        return _plain(await self._call(f"read {object_id} {prop}", address,
                                       lambda a: self.app.read_property(a, object_id, prop, index)))

    async def write(self, address: str, object_id: str, prop: str, value: Any, priority: int | None = None) -> None:
        """WriteProperty; ``value`` None writes NULL (relinquish) at ``priority``."""
        from bacpypes3.primitivedata import Null

        data = Null(()) if value is None else value
        await self._call(f"write {object_id} {prop}", address,
                         lambda a: self.app.write_property(a, object_id, prop, data, None, priority))

    async def priority_array(self, address: str, object_id: str) -> dict[int, Any]:
        """Priority (1-16) -> value of every non-NULL slot."""
        slots = await self._call(f"read {object_id} priority-array", address,
                                 lambda a: self.app.read_property(a, object_id, "priority-array"))
        return {i + 1: _plain(v) for i, v in enumerate(slots) if getattr(v, "null", None) is None}

    async def who_is(self, *, address: str | None = None, timeout_s: float = 3.0) -> list[DeviceFound]:
        """I-Am answers to a Who-Is, broadcast or directed to ``address``."""
        from bacpypes3.pdu import Address

        if self.app is None:
            raise BusError(f"{self.name}: the BACnet link is not open", bus=self.name)
        if address is None and not self.broadcasts:
            return []
        target = Address(address) if address is not None else None
        answers = await self.app.who_is(address=target, timeout=timeout_s)
        return [DeviceFound(int(a.iAmDeviceIdentifier[1]), str(a.pduSource), int(a.vendorID),
                            int(a.maxAPDULengthAccepted)) for a in answers]


class BacnetVentilation:
    """A ventilation request written into a BMS object's priority array (see module docstring)."""

    def __init__(self, link: BacnetLink, address: str, object_id: str, *, priority: int, full_scale: float = 100.0,
                 minimum: float = 0.0, name: str = "") -> None:
        if not 1 <= priority <= 16:
            raise ValueError(f"priority {priority} is not 1-16")
        self.link = link
        self.address = address
        self.object_id = object_id
        self.priority = priority
        self.full_scale = full_scale
        self.minimum = minimum
        self.binary = object_id.startswith("binary-")
        self.name = name or f"{address}/{object_id}"
        self.health = DeviceHealth(self.name, unhealthy_after=1)
        self.overridden_by: int | None = None  # a higher priority holds the object now
        self.written = False

    def _encode(self, value: float) -> Any:
        if not 0.0 <= value <= 1.0 or math.isnan(value):
            raise ValueError(f"{self.name}: level {value} outside 0..1")
        if self.binary:
            return "active" if value >= 0.5 else "inactive"
        return self.minimum + value * (self.full_scale - self.minimum)

    def _decode(self, raw: Any) -> float:
        if self.binary:
            return 1.0 if str(raw) in ("active", "1") else 0.0
        return (float(raw) - self.minimum) / (self.full_scale - self.minimum)

    async def set(self, value: float, ramp_s: float = 0.0) -> None:
        """Write the level at our priority (ramps are the BMS's own business)."""
        await self.link.write(self.address, self.object_id, "present-value", self._encode(value), self.priority)
        self.written = True

    async def read_back(self) -> float | None:
        slots = await self.link.priority_array(self.address, self.object_id)
        ours = slots.get(self.priority)
        higher = [p for p in slots if p < self.priority]
        self.overridden_by = min(higher) if higher else None
        if ours is None:
            raise BacnetRefused(f"{self.name}: priority {self.priority} is empty after our write", device=self.address)
        return self._decode(ours)

    async def relinquish(self) -> None:
        """NULL at our priority: the BMS's lower priorities or relinquish default take over."""
        await self.link.write(self.address, self.object_id, "present-value", None, self.priority)
        self.written = False

    async def release(self) -> None:
        """The arbiter no longer wants this channel (an override cleared with no rule behind it)."""
        await self.relinquish()


class BacnetPoint:
    """One BMS property read as a sensor: ``read_values`` gives {quantity: (value, unit)}."""

    def __init__(self, link: BacnetLink, address: str, object_id: str, *, prop: str = "present-value",
                 quantity: str, unit: str, clock: Clock, name: str = "") -> None:
        self.link = link
        self.address = address
        self.object_id = object_id
        self.prop = prop
        self.quantity = quantity
        self.unit = unit
        self.clock = clock
        self.name = name or f"{address}/{object_id}"
        self.health = DeviceHealth(self.name)

    async def read_values(self) -> dict[str, tuple[float, str]]:
        try:
            raw = await self.link.read(self.address, self.object_id, self.prop)
            value = 1.0 if raw == "active" else 0.0 if raw == "inactive" else float(raw)
        except (DriverError, BusError) as exc:
            self.health.record_failure(exc)
            raise
        except (TypeError, ValueError) as exc:
            err = BacnetRefused(f"{self.name}: {self.prop} is {raw!r}, not a number", device=self.address)
            self.health.record_failure(err)
            raise err from exc
        self.health.record_good(self.clock.monotonic())
        return {self.quantity: (value, self.unit)}


def _build(ports: PartPorts, clock: Clock, spec: PartSpec) -> BacnetPoint:
    point: BacnetPoint = ports.bms_point()
    return point


async def _readings(point: BacnetPoint) -> list[Reading]:
    values = await point.read_values()
    t = point.clock.monotonic()  # when the answer came
    return [Reading(point.name, q, v, unit, t) for q, (v, unit) in values.items()]


PARTS = (
    PartKind(name="bacnet", summary="a value of the building's BMS (BACnet/IP), read as a sensor", build=_build,
             readings=_readings, wiring=(("bacnet", "quantity"),),
             # What a BMS point may be; never mixed into the zone's own environment (rank None).
             quantities=(Quantity("temperature", "C", None), Quantity("supply_air_temperature", "C", None),
                         Quantity("damper_position", "%", None), Quantity("humidity", "%", None),
                         Quantity("co2", "ppm", None), Quantity("airflow", "m3/h", None)),
             example={"bacnet": {"device": "192.168.10.40", "object": "analog-input,1"}, "quantity": "temperature"},
             example_tables={"bacnet": {"interface": "192.168.10.5/24"}}),
)

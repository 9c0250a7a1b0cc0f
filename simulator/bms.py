"""A simulated building management system: a BACnet/IP device served by bacpypes3, bound to the world's air.

One :class:`SimBms` is one BMS controller at one UDP address (127.0.0.1 and a free port in the
simulator and the tests). It holds the objects a site configuration points at, built with
bacpypes3's own local objects, so priority arrays, relinquish defaults, NULL writes and
Error PDUs (unknown object, write access denied) behave as bacpypes3's BACnet stack makes them:

- a commanded object (analog/binary value or output) per ventilation actuator, whose present
  value is the highest non-NULL priority or the relinquish default (the BMS's own fallback);
- a read-only object per BMS sensor: zone temperature, supply air temperature, damper position,
  humidity or CO2, refreshed from the world every ``period_s`` once :meth:`follow` is running.

Test controls: :meth:`command` (the BMS operator writes at a priority), :meth:`slots` (what stands
in an object's priority array), :meth:`set_value` (a sensor object's value).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: The BMS's own ventilation when nobody commands it (percent): its relinquish default.
RELINQUISH_DEFAULT_PCT = 30.0
SUPPLY_AIR_BELOW_SETPOINT_C = 4.0


def free_udp_port() -> int:
    """A loopback UDP port nothing is bound to (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class BmsPoint:
    """One object the BMS holds: its id, whether the gateway commands it, what it measures."""

    object_id: str  # "analog-value,101"
    commanded: bool = False
    quantity: str = ""  # for read-only points: temperature | supply_air_temperature | damper_position | ...
    zone: str | None = None
    relinquish_default: float = RELINQUISH_DEFAULT_PCT


def _recording(cls: type[Any], writes: list[tuple[str, int | None, Any]], oid: str) -> type[Any]:
    """``cls`` with every WriteProperty it serves appended to ``writes`` (the BMS's own log)."""

    class Recorded(cls):  # type: ignore[misc]
        async def write_property(self, attr: Any, value: Any, index: Any = None, priority: Any = None) -> None:
            plain = None if type(value).__name__ == "Null" else value
            writes.append((oid, priority, plain))
            await super().write_property(attr, value, index, priority)

    Recorded.__name__ = cls.__name__
    return Recorded


def _make_object(point: BmsPoint, name: str, writes: list[tuple[str, int | None, Any]]) -> Any:
    from bacpypes3.local.analog import AnalogInputObject, AnalogOutputObject, AnalogValueObject, AnalogValueObjectCmd
    from bacpypes3.local.binary import BinaryInputObject, BinaryOutputObject, BinaryValueObject, BinaryValueObjectCmd

    kind, instance = point.object_id.replace(" ", "").replace(":", ",").split(",")
    oid = (kind, int(instance))
    binary = kind.startswith("binary-")
    if point.commanded:
        cls = _recording({"analog-value": AnalogValueObjectCmd, "analog-output": AnalogOutputObject,
                          "binary-value": BinaryValueObjectCmd, "binary-output": BinaryOutputObject}[kind],
                         writes, f"{kind},{instance}")
        if binary:
            return cls(objectIdentifier=oid, objectName=name, presentValue="inactive", relinquishDefault="inactive")
        return cls(objectIdentifier=oid, objectName=name, presentValue=point.relinquish_default,
                   relinquishDefault=point.relinquish_default, units="percent")
    cls = _recording({"analog-input": AnalogInputObject, "analog-value": AnalogValueObject,
                      "analog-output": AnalogOutputObject, "binary-input": BinaryInputObject,
                      "binary-value": BinaryValueObject}[kind], writes, f"{kind},{instance}")
    if binary:
        return cls(objectIdentifier=oid, objectName=name, presentValue="inactive")
    units = {"temperature": "degreesCelsius", "supply_air_temperature": "degreesCelsius", "damper_position": "percent",
             "humidity": "percentRelativeHumidity", "co2": "partsPerMillion"}.get(point.quantity, "noUnits")
    return cls(objectIdentifier=oid, objectName=name, presentValue=0.0, units=units)


class SimBms:
    """One BMS controller (see module docstring); ``open`` inside the running loop, ``close`` after."""

    def __init__(self, points: Iterable[BmsPoint], *, device_instance: int = 1200, host: str = "127.0.0.1",
                 port: int | None = None, name: str = "bms") -> None:
        self.points = {p.object_id.replace(" ", "").replace(":", ","): p for p in points}
        self.device_instance = device_instance
        self.address = f"{host}:{port or free_udp_port()}"
        self.name = name
        self.app: Any = None
        self.objects: dict[str, Any] = {}
        self.writes: list[tuple[str, int | None, Any]] = []  # (object, priority, value) as the BMS saw them

    async def open(self) -> None:
        from bacpypes3.app import Application
        from bacpypes3.local.device import DeviceObject
        from bacpypes3.local.networkport import NetworkPortObject

        device = DeviceObject(objectIdentifier=("device", self.device_instance), objectName=self.name,
                              vendorIdentifier=999)
        host, port = self.address.split(":")
        network = NetworkPortObject(f"{host}/32:{port}", objectIdentifier=("network-port", 1),
                                    objectName="NetworkPort-1")
        self.objects = {oid: _make_object(p, f"{self.name}-{oid.replace(',', '-')}", self.writes)
                        for oid, p in self.points.items()}
        self.app = Application.from_object_list([device, network, *self.objects.values()])
        for link in self.app.link_layers.values():
            tasks = getattr(getattr(link, "server", None), "_transport_tasks", [])
            if tasks:
                await asyncio.wait(tasks, timeout=2.0)

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None

    # -- test and world controls -------------------------------------------------------------
    def present_value(self, object_id: str) -> Any:
        value = self.objects[object_id].presentValue
        return float(value) if not object_id.startswith("binary-") else (1.0 if int(value) else 0.0)

    def slots(self, object_id: str) -> dict[int, Any]:
        """Priority (1-16) -> value of every non-NULL slot of a commanded object."""
        array = self.objects[object_id].priorityArray
        return {i + 1: getattr(v, v._choice) for i, v in enumerate(array) if v.null is None}

    def command(self, object_id: str, value: Any, priority: int) -> None:
        """The BMS operator (or a BMS program) writes at ``priority``; None relinquishes it."""
        from bacpypes3.basetypes import PriorityValue

        obj = self.objects[object_id]
        obj.priorityArray[priority - 1] = PriorityValue(null=()) if value is None else PriorityValue(real=float(value))

    def set_value(self, object_id: str, value: float) -> None:
        obj = self.objects[object_id]
        obj.presentValue = ("active" if value else "inactive") if object_id.startswith("binary-") else float(value)

    async def follow(self, read: Callable[[BmsPoint], float | None], period_s: float = 30.0) -> None:
        """Refresh every read-only point from ``read(point)`` (None: leave it) forever."""
        while True:
            for oid, point in self.points.items():
                if not point.commanded and oid in self.objects:
                    value = read(point)
                    if value is not None:
                        self.set_value(oid, value)
            await asyncio.sleep(period_s)

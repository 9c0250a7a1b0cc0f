"""Config tables for DALI masters, the BACnet link, and the DALI and BACnet keys of actuators and sensors.

:mod:`edge_agent.config` includes these models; they import neither python-dali nor bacpypes3, so
``edge-agent config check`` validates a building's addresses and object ids on any machine.

::

    [[dali]]                         # one DALI master (a USB or RS-232 interface) and its line
    id = "dali1"
    driver = "hasseb"                # hasseb | tridonic (USB HID), luba232 | scirs232 (RS-232)
    device = "/dev/hidraw0"

    [bacnet]                         # the gateway on the BMS network
    interface = "192.168.10.5/24"
    device_instance = 390003

    [[actuators]]                    # a luminaire on the DALI line
    kind = "light"
    output = "dali"
    dali = { master = "dali1", short_address = 4 }      # or group = 1

    [[actuators]]                    # ventilation commanded in the BMS
    kind = "hvac"
    output = "bacnet"
    bacnet = { device = "192.168.10.40", object = "analog-value,101", priority = 12 }

    [[sensors]]                      # a BMS value read as a sensor
    kind = "bacnet"
    quantity = "temperature"
    bacnet = { device = "192.168.10.40", object = "analog-input,1" }
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.kinds import part_kinds

#: Object types a gateway may command (present-value through the priority array).
COMMANDABLE_TYPES = ("analog-output", "analog-value", "binary-output", "binary-value")
#: Object types a gateway may read as a sensor.
READABLE_TYPES = (*COMMANDABLE_TYPES, "analog-input", "binary-input", "multi-state-input", "multi-state-value")
#: Largest object instance number (22 bits; 4194303 is the "unset" wildcard).
MAX_INSTANCE = 4194302
#: Priorities a gateway must never write, and why (ASHRAE 135, clause 19.2.1.1, Table 19-1).
FORBIDDEN_PRIORITIES = {
    1: "priority 1 is manual life safety (firefighter override)",
    2: "priority 2 is automatic life safety (smoke control)",
    6: "priority 6 is minimum on/off, reserved for the object's own minimum on/off timer",
}
#: What a BMS sensor may report; the unit goes with the quantity.
BACNET_QUANTITIES = {q.name: q.unit for q in part_kinds()["bacnet"].quantities}  # drivers/bacnet.py declares them


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_object_id(text: str, allowed: tuple[str, ...] = READABLE_TYPES) -> tuple[str, int]:
    """``"analog-value,101"`` -> ("analog-value", 101); ValueError saying what to write instead."""
    m = re.fullmatch(r"\s*([a-z-]+)\s*[,:]\s*(\d+)\s*", text)
    if m is None:
        raise ValueError(f"{text!r} is not an object id; write it like \"analog-value,101\" (type,instance)")
    kind, instance = m.group(1), int(m.group(2))
    if kind not in allowed:
        raise ValueError(f"object type {kind!r} is not usable here; use one of {', '.join(allowed)}")
    if instance > MAX_INSTANCE:
        raise ValueError(f"instance {instance} is out of range (0-{MAX_INSTANCE})")
    return kind, instance


def parse_device_address(text: str) -> tuple[str, int]:
    """``"192.168.10.40"`` or ``"192.168.10.40:47808"`` -> (host, port)."""
    host, _, port_text = text.strip().partition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not a BACnet/IP address; write it like \"192.168.10.40\" or "
                         "\"192.168.10.40:47808\"") from None
    port = 47808
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r}: the port after ':' must be 1-65535 (BACnet/IP uses 47808)")
        port = int(port_text)
    return host, port


class DaliMaster(_Table):
    """A DALI master (bus interface) and the line behind it."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    driver: Literal["hasseb", "tridonic", "luba232", "scirs232"]
    device: str = Field(min_length=1)  # /dev/hidraw0 (USB HID) or /dev/ttyUSB1 (RS-232)
    watch_interval_s: float = Field(default=60.0, ge=5.0, le=3600.0)  # status poll: lamp failure, mains cuts


class DaliTarget(_Table):
    """What an actuator drives on a DALI line: one control gear (short address) or a group."""

    master: str
    short_address: int | None = Field(default=None, ge=0, le=63)
    group: int | None = Field(default=None, ge=0, le=15)

    @model_validator(mode="after")
    def _one(self) -> DaliTarget:
        if (self.short_address is None) == (self.group is None):
            raise ValueError("set exactly one of short_address (0-63) or group (0-15)")
        return self


class BacnetConf(_Table):
    """The gateway's own BACnet/IP device on the BMS network."""

    interface: str = "0.0.0.0/0"  # this gateway's address on the BMS network, CIDR, e.g. 192.168.10.5/24
    port: int = Field(default=47808, ge=0, le=65535)
    device_instance: int = Field(default=390000, ge=0, le=MAX_INSTANCE)
    device_name: str = Field(default="edge-agent", min_length=1, max_length=64)
    vendor_identifier: int = Field(default=999, ge=0, le=65535)  # 999: reserved for test/unregistered
    apdu_timeout_s: float = Field(default=3.0, gt=0, le=60)
    poll_interval_s: float = Field(default=60.0, gt=0, le=3600)  # reachability check of the BMS devices

    @field_validator("interface")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            ipaddress.IPv4Interface(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv4 interface; write this gateway's address with its prefix, "
                             "like \"192.168.10.5/24\"") from None
        return v


class BacnetPoint(_Table):
    """One property of one object of a BMS device (a sensor's source)."""

    device: str
    object: str
    property: str = Field(default="present-value", pattern=r"^[a-z][a-z-]*$")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        parse_device_address(v)
        return v

    @field_validator("object")
    @classmethod
    def _object(cls, v: str) -> str:
        parse_object_id(v, READABLE_TYPES)
        return v


class BacnetOutput(BacnetPoint):
    """A commandable BMS object the gateway writes at its own priority, and relinquishes."""

    priority: int = Field(default=12, ge=1, le=16)
    full_scale: float = Field(default=100.0, gt=0)  # analog: value written for level 1.0 (percent by default)
    minimum: float = Field(default=0.0, ge=0)  # analog: value written for level 0.0

    @field_validator("object")
    @classmethod
    def _commandable(cls, v: str) -> str:
        parse_object_id(v, COMMANDABLE_TYPES)
        return v

    @field_validator("property")
    @classmethod
    def _present_value(cls, v: str) -> str:
        if v != "present-value":
            raise ValueError("only present-value is commanded through the priority array (and can be relinquished); "
                             "point the output at the object whose present-value the BMS uses")
        return v

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: int) -> int:
        if v in FORBIDDEN_PRIORITIES:
            raise ValueError(f"{FORBIDDEN_PRIORITIES[v]}; a gateway never writes there: use 8-16 "
                             "(12 by default), as agreed with the BMS operator (docs/building-systems.md)")
        return v

    @model_validator(mode="after")
    def _range(self) -> BacnetOutput:
        if self.minimum >= self.full_scale:
            raise ValueError(f"minimum {self.minimum:g} must be below full_scale {self.full_scale:g}")
        return self


def check_building_actuator(kind: str, output: str, dali: DaliTarget | None, bacnet: BacnetOutput | None) -> None:
    """The wiring rules of DALI and BACnet actuators (ValueError with what to write)."""
    if output == "dali":
        if kind != "light":
            raise ValueError("output = \"dali\" drives luminaires: use it with kind = \"light\"")
        if dali is None:
            raise ValueError("a DALI light needs dali = { master = \"dali1\", short_address = 0 } (or group = 0)")
    elif output == "bacnet":
        if kind != "hvac":
            raise ValueError("output = \"bacnet\" commands BMS ventilation: use it with kind = \"hvac\"")
        if bacnet is None:
            raise ValueError("a BACnet output needs bacnet = { device = \"192.168.10.40\", "
                             "object = \"analog-value,101\" }")
    if dali is not None and output != "dali":
        raise ValueError("the dali table needs output = \"dali\"")
    if bacnet is not None and output != "bacnet":
        raise ValueError("the bacnet table needs output = \"bacnet\"")


def check_bacnet_sensor(kind: str, bacnet: BacnetPoint | None, quantity: str | None) -> None:
    """A ``kind = "bacnet"`` sensor needs its point and a known quantity."""
    if kind != "bacnet":
        if bacnet is not None or quantity is not None:
            raise ValueError("bacnet and quantity belong to sensors of kind = \"bacnet\"")
        return
    if bacnet is None:
        raise ValueError("a bacnet sensor needs bacnet = { device = \"192.168.10.40\", object = \"analog-input,1\" }")
    if quantity not in BACNET_QUANTITIES:
        raise ValueError(f"a bacnet sensor needs quantity = one of {', '.join(BACNET_QUANTITIES)}")


def building_references(doc: dict[str, Any]) -> list[str]:
    """Problems between sections: unknown masters, one gear or one BMS object driven twice, no [bacnet]."""
    problems: list[str] = []

    def items(name: str) -> list[dict[str, Any]]:
        value = doc.get(name)
        return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []

    masters = [m.get("id") for m in items("dali")]
    seen_masters: set[str] = set()
    for i, m in enumerate(masters):
        if isinstance(m, str) and m in seen_masters:
            problems.append(f"dali[{i}].id: {m!r} is used twice; ids must be unique")
        if isinstance(m, str):
            seen_masters.add(m)
    driven: dict[tuple[str, str, int], str] = {}
    written: dict[tuple[str, str], str] = {}
    uses_bacnet = False
    for i, a in enumerate(items("actuators")):
        dali, bac = a.get("dali"), a.get("bacnet")
        if isinstance(dali, dict):
            master = dali.get("master")
            if isinstance(master, str) and master not in seen_masters:
                hint = ", ".join(sorted(seen_masters)) or "none defined; add a [[dali]] table"
                problems.append(f"actuators[{i}].dali.master: unknown DALI master {master!r}; known: {hint}")
            for what in ("short_address", "group"):
                where = dali.get(what)
                if isinstance(master, str) and isinstance(where, int):
                    key = (master, what, where)
                    if key in driven:
                        problems.append(f"actuators[{i}].dali.{what}: {where} on {master!r} is already driven by "
                                        f"{driven[key]!r}; one actuator per gear or group")
                    driven[key] = str(a.get("id"))
        if isinstance(bac, dict):
            uses_bacnet = True
            key2 = (str(bac.get("device")), str(bac.get("object")).replace(":", ",").replace(" ", ""))
            if key2 in written:
                problems.append(f"actuators[{i}].bacnet.object: {key2[1]} on {key2[0]} is already commanded by "
                                f"{written[key2]!r}; two writers at one priority would fight")
            written[key2] = str(a.get("id"))
    uses_bacnet = uses_bacnet or any(s.get("kind") == "bacnet" for s in items("sensors"))
    if uses_bacnet and not isinstance(doc.get("bacnet"), dict):
        problems.append('bacnet: BMS points are used but there is no [bacnet] table; add interface = "192.168.10.5/24"')
    return problems

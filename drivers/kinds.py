"""Part kinds: each driver module says, in one frozen :class:`PartKind`, what its part is.

A driver module that reads a sensor declares ``PARTS = (PartKind(...),)`` next to its driver
class: the kind name a config file uses, the wiring and settings it needs, how to build the driver
from its ports and a clock, how to start it, how to read it (``readings()``), its poll default,
what it measures and what a technician may calibrate. :func:`part_kinds` finds every declaration
in the ``drivers`` package, so adding a part is one driver module (plus its simulated part in
``simulator.hw`` and its tests): config validation, hardware assembly, pollers, operations, the
CLI's direct read, zone aggregation and the simulated floor all read this one table.

Only what a driver knows lives here. The simulator registers its half (a factory for the
simulated part, keyed by the same kind name) in ``simulator.hw``; the daemon feeds each kind's
output by its :data:`Feed`, one handler per feed, never per kind. A test checks the three halves
complete each other.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol

from drivers.ports import AsyncI2CBus, Clock, Reading, SensorBlockPort

#: What a kind's driver produces for the daemon, and so how the daemon runs it:
#: ``readings`` polled scalar readings (the generic path), ``frames`` polled thermal frames,
#: ``events`` motion events pushed by the part, ``locations`` UWB locations (polled or notified).
Feed = Literal["readings", "frames", "events", "locations"]
FEEDS: tuple[Feed, ...] = ("readings", "frames", "events", "locations")

#: Config keys a kind may require (the wiring every sensor table can carry).
WIRING_KEYS = ("bus", "address", "pin", "node", "ble_address", "serial_port", "mount", "bacnet", "quantity")

#: How a calibration of a quantity is done (edge_agent.calibration does the arithmetic):
#: ``offset`` one reference shifts the value; ``gain`` one reference scales it (a second one at
#: another level makes a two-point fit); ``frc`` the part recalibrates itself against the
#: reference; ``tare-scale`` a reference of 0 zeroes the value (tare), any other sets the scale
#: and keeps the zero.
CalibrationMethod = Literal["offset", "gain", "frc", "tare-scale"]


@dataclass(frozen=True, slots=True)
class Quantity:
    """One thing a kind measures. ``rank`` orders kinds measuring the same quantity in a zone:
    the lowest rank present is used (an SCD41's temperature, warmed by the part itself, ranks
    below an SHT's); None keeps it out of the zone's environment (a BMS point)."""

    name: str
    unit: str
    rank: int | None = 1


class Calibration(NamedTuple):
    """A quantity a technician may calibrate, how, and the plausible reference range (in ``unit``)."""

    quantity: str
    method: CalibrationMethod
    unit: str
    reference: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Setting:
    """A config key of one kind only (beyond the shared wiring keys), with its type and bounds."""

    name: str
    type: type[int] | type[float] | type[str] | type[bool]
    default: Any = None  # None: the key is required
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    help: str = ""
    with_wiring: str | None = None  # required (when default is None) only where this wiring key is set

    def check(self, value: Any) -> Any:
        """The value, converted; ValueError saying what to write instead."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise ValueError(f"{self.name} must be a {self.type.__name__} ({self.help or 'see the kind'})")
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, not {value!r}")
        number = float(value) if isinstance(value, int | float) else None
        too_low = number is not None and self.low is not None and number < self.low
        too_high = number is not None and self.high is not None and number > self.high
        if too_low or too_high:
            raise ValueError(f"{self.name} must be within {self.low}..{self.high}, not {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class PartSpec:
    """One configured part as its driver sees it: a name, its wiring, its settings (no config file)."""

    name: str
    address: int | None = None
    pin: int | None = None
    node: int | None = None
    ble_address: str | None = None
    serial_port: str | None = None
    poll_interval_s: float = 5.0
    remote: bool = False  # its bus is a node's, reached over the RS-485 line (slow round trips)
    settings: Mapping[str, Any] = field(default_factory=dict)


class PartPorts(Protocol):
    """The ports of one configured part, opened only when its driver asks for them."""

    def i2c(self) -> AsyncI2CBus:
        """The I2C port of the part's configured bus."""
        ...

    def pin_factory(self) -> Any:
        """The gpiozero pin factory its GPIO lines are on."""
        ...

    def ble_backend(self) -> Any:
        """The bleak backend (``backend=``), None for bleak's default."""
        ...

    def sensor_blocks(self) -> SensorBlockPort:
        """The sensor blocks of the part's node (``node``), read over the RS-485 line by the daemon."""
        ...

    def serial_stream(self) -> Any:
        """The byte stream of its UART (:class:`drivers.serial.SerialStream`'s surface)."""
        ...

    def bms_point(self) -> Any:
        """Its BMS point, read over the daemon's BACnet link (:class:`drivers.bacnet.BacnetPoint`)."""
        ...


Build = Callable[[PartPorts, Clock, PartSpec], Any]


async def no_start(driver: Any) -> None:
    """For parts that need no initialisation before their first read."""


@dataclass(frozen=True, slots=True)
class PartKind:
    """Everything the project needs to know about one kind of part (see module docstring).

    ``build`` returns the driver, or None when the gateway does not read the part itself (a PIR
    on a node reports through the bridge). ``wiring`` lists alternatives of required config keys
    (any one complete alternative will do). ``fresh_read`` False means a read on demand returns
    the latest polled values (an SCD41 has a new result only every 5 s).
    """

    name: str
    summary: str
    build: Build
    readings: Callable[[Any], Awaitable[list[Reading]]]
    quantities: tuple[Quantity, ...]
    wiring: tuple[tuple[str, ...], ...]
    start: Callable[[Any], Awaitable[None]] = no_start
    settings: tuple[Setting, ...] = ()
    poll_interval_s: float = 5.0
    feed: Feed = "readings"
    fresh_read: bool = True
    calibrations: tuple[Calibration, ...] = ()
    example: Mapping[str, Any] = field(default_factory=dict)  # a config entry's wiring, for docs and tests
    # On a node of this PROTOCOL.md revision or later the node reports the part's changes itself
    # (an event, as a desk node's LOAD_STEP), so its poll is only the fallback for a lost event and
    # may run as seldom as ``event_fallback_s``; None: the poll is how the gateway hears of a change.
    events_from_revision: int | None = None
    event_fallback_s: float = 60.0
    example_tables: Mapping[str, Any] = field(default_factory=dict)  # top-level config tables it also needs

    def __post_init__(self) -> None:
        for keys in self.wiring:
            unknown = set(keys) - set(WIRING_KEYS)
            if unknown:
                raise ValueError(f"part kind {self.name}: wiring keys {sorted(unknown)} are not config keys")
        if self.feed not in FEEDS:
            raise ValueError(f"part kind {self.name}: feed {self.feed!r} is not one of {FEEDS}")

    def unit(self, quantity: str) -> str:
        return next((q.unit for q in self.quantities if q.name == quantity), "")

    def calibration(self, quantity: str) -> Calibration | None:
        return next((c for c in self.calibrations if c.quantity == quantity), None)


@cache
def part_kinds() -> Mapping[str, PartKind]:
    """Every kind declared by a module of the ``drivers`` package, by name (read once)."""
    import drivers

    found: dict[str, PartKind] = {}
    for module in sorted(pkgutil.iter_modules(drivers.__path__), key=lambda m: m.name):
        declared = getattr(importlib.import_module(f"drivers.{module.name}"), "PARTS", ())
        for kind in declared:
            if not isinstance(kind, PartKind):
                raise TypeError(f"drivers.{module.name}.PARTS holds {kind!r}, not a PartKind")
            if kind.name in found:
                raise ValueError(f"part kind {kind.name!r} is declared twice (drivers.{module.name})")
            found[kind.name] = kind
    return MappingProxyType(found)


def part_kind(name: str) -> PartKind:
    """The kind called ``name``; KeyError naming the known kinds."""
    kinds = part_kinds()
    if name not in kinds:
        raise KeyError(f"no part kind {name!r}; known: {', '.join(kinds)}")
    return kinds[name]

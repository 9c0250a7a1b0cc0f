"""The floor state the rules read, and the intents they return.

These types are the contract between sensing (``edge_agent``, which builds a :class:`FloorState`
from readings), the pure rule engine (``rules``), and the arbiter (``edge_agent``, which turns
:class:`Intent` objects into actuator commands). They live in ``rules`` because the engine must
not import the daemon. Everything is frozen: a state is a snapshot at one instant.

Privacy: a seat may carry the pseudonym of a *consenting* tag sitting at it, so personal
preferences can apply; pseudonyms never leave the gateway (the MQTT layer has no field for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum


class SeatStatus(StrEnum):
    FREE = "free"
    OCCUPIED = "occupied"  # a person is there
    AWAY = "away"  # nobody there, but the seat is taken (belongings), within the limit
    GHOST = "ghost"  # away longer than the limit: a seat that looks taken and is not
    UNKNOWN = "unknown"  # its sensor is unhealthy or stale: no confident guess


class Quality(StrEnum):
    GOOD = "good"
    STALE = "stale"  # last good reading older than the stale limit
    UNHEALTHY = "unhealthy"  # every sensor behind the value is failing
    MISSING = "missing"  # no sensor configured


class Priority(IntEnum):
    """Arbitration order, highest wins (DESIGN: safety > staff override > preference > automation > schedule)."""

    SCHEDULE = 10
    AUTOMATION = 20
    PREFERENCE = 30
    OVERRIDE = 40
    SAFETY = 50


class IntentKind(StrEnum):
    LIGHT_LEVEL = "light_level"  # value: 0..1 dimming level
    DESK_HEIGHT = "desk_height"  # value: preset number or height in mm
    DESK_LAMP = "desk_lamp"  # value: 0..1
    INDICATOR = "indicator"  # text: "free" | "occupied" | "ghost" | "off"
    VENTILATION = "ventilation"  # value: 0..1 of the HVAC zone's maximum
    SETPOINT = "setpoint"  # value: degrees C, the heating setpoint (the zone is heated below it)
    COOLING_SETPOINT = "cooling_setpoint"  # value: degrees C (the zone is cooled above it)
    RELEASE_SEAT = "release_seat"  # target: seat id; the floor state marks it free
    ALERT = "alert"  # text: message


@dataclass(frozen=True, slots=True)
class Measure:
    """A zone-level value with its quality; ``value`` is None when nothing usable exists."""

    value: float | None
    quality: Quality = Quality.GOOD


@dataclass(frozen=True, slots=True)
class SeatView:
    id: str
    zone: str
    status: SeatStatus
    since: float  # monotonic seconds when this status began
    desk: str | None = None
    lux: float | None = None
    consented_tag: str | None = None  # pseudonym of a consenting patron sitting here, if known
    tag_since: float | None = None


@dataclass(frozen=True, slots=True)
class ZoneView:
    id: str
    people: Measure
    seats_total: int
    free: int
    occupied: int
    away: int
    ghost: int
    unknown: int
    lux: Measure
    temperature: Measure
    humidity: Measure
    co2: Measure
    occupancy_healthy: bool  # False when the zone's occupancy sensing cannot be trusted
    last_motion: float | None = None  # monotonic seconds of the last PIR motion
    empty_since: float | None = None  # monotonic seconds since nobody has been in the zone
    forecast: Mapping[int, float] = field(default_factory=dict)  # horizon minutes -> expected people
    target_lux: float = 500.0
    # The lux sensor's last reading carried to the luminaire levels now (its daylight held, the
    # electric light from the levels): what the daylight loop steers by between readings.
    lux_now: float | None = None


@dataclass(frozen=True, slots=True)
class Topology:
    """Static wiring the rules need: which outputs serve which zone and seat."""

    zone_lights: Mapping[str, tuple[str, ...]]
    zone_hvac: Mapping[str, str]  # zone -> HVAC actuator id
    seat_desk: Mapping[str, str]  # seat -> desk actuator id
    light_seats: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # luminaire -> seats it lights
    # seat -> luminaire -> lux it adds at the seat at full output (the daemon's light model); lets
    # daylight harvesting predict how a luminaire's step lands on its neighbours' desks too
    light_gain: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Preference:
    """A consenting patron's desk settings."""

    desk_height_mm: int | None = None
    lamp_level: float | None = None


@dataclass(frozen=True, slots=True)
class FloorState:
    """Everything the rules may look at, at one instant.

    ``t`` is monotonic seconds (intervals, ``for:`` durations); ``wall`` is local wall time
    (schedules, opening hours). ``levels`` is what each actuator currently holds.
    """

    t: float
    wall: datetime
    seats: Mapping[str, SeatView]
    zones: Mapping[str, ZoneView]
    topology: Topology
    levels: Mapping[str, float] = field(default_factory=dict)
    preferences: Mapping[str, Preference] = field(default_factory=dict)  # tag pseudonym -> prefs
    open_now: bool = True
    day_type: str = "term"  # term | exam | holiday
    overrides: frozenset[str] = frozenset()  # actuator, zone or seat ids under an active staff override


@dataclass(frozen=True, slots=True)
class Intent:
    """What a rule wants one target to do. The arbiter decides what actually happens."""

    target: str  # actuator id (or seat id for RELEASE_SEAT, zone id for ALERT)
    kind: IntentKind
    value: float | None = None
    text: str | None = None
    priority: Priority = Priority.AUTOMATION
    rule_id: str = ""
    reason: str = ""
    ramp_s: float | None = None

"""The site configuration: one TOML file describing a floor and everything on it.

On a gateway it is ``/etc/edge-agent/gateway.toml``. The daemon, the simulator (which builds its
world from the same file) and the CLI all read it through :func:`load_config`, which returns a
validated :class:`SiteConfig` or raises :class:`ConfigError` listing *every* problem by key path
(``sensors[4].address``) with what to write instead. Unknown keys are errors: a typo must not be
silently ignored on a device that runs for months unattended.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from drivers.errors import ConfigError
from edge_agent.building.config import (
    BacnetConf,
    BacnetOutput,
    DaliMaster,
    DaliTarget,
    building_references,
    check_building_actuator,
)

# The schema's building blocks and the sensor table live in config_base; this module is their home.
from edge_agent.config_base import HHMM as HHMM
from edge_agent.config_base import Id as Id
from edge_agent.config_base import Mount as Mount
from edge_agent.config_base import Point as Point
from edge_agent.config_base import Sensor as Sensor
from edge_agent.config_base import Strict as Strict
from edge_agent.config_base import i2c_address
from edge_agent.forecast_config import ForecastSections
from edge_agent.trust.policy import AuditConf, SecurityConf


class Site(Strict):
    """Who this gateway is: ids that form the MQTT topic root library/v1/{site}/{gateway}/."""

    id: Id
    floor: str
    gateway: Id
    name: str = ""
    timezone: str = "UTC"
    opening_hours: tuple[HHMM, HHMM] = ("08:00", "22:00")


class Bus(Strict):
    """An I2C bus port: the gateway's own bus, a multiplexer channel, or a node's tunnelled bus."""

    id: Id
    kind: Literal["linux", "mux", "node"]
    device: str | None = None  # linux: /dev/i2c-1
    parent: Id | None = None  # mux: the bus the TCA9548A sits on
    address: int | None = None  # mux: the TCA9548A address (0x70-0x77)
    channel: int | None = Field(default=None, ge=0, le=7)  # mux channel
    node: int | None = Field(default=None, ge=1, le=247)  # node: bridge address

    @field_validator("address", mode="before")
    @classmethod
    def _addr(cls, v: Any) -> int | None:
        return None if v is None else i2c_address(v)

    @model_validator(mode="after")
    def _shape(self) -> Bus:
        need = {"linux": ("device",), "mux": ("parent", "address", "channel"), "node": ("node",)}
        missing = [k for k in need[self.kind] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a bus of kind {self.kind!r} needs {', '.join(missing)}")
        return self


class Zone(Strict):
    """A named area of the floor, a polygon in floor metres (x east, y north)."""

    id: Id
    name: str = ""
    kind: Literal["quiet", "silent", "group", "open", "lounge", "circulation"] = "open"
    polygon: list[Point] = Field(min_length=3)
    target_lux: float = Field(default=500.0, gt=0, le=2000)
    hvac: Id | None = None


class Seat(Strict):
    """One seat at a desk: where it is, which zone, and which desk controls it (if any)."""

    id: Id
    zone: Id
    x: float
    y: float
    desk: Id | None = None
    window: bool = False

class Anchor(Strict):
    """A UWB anchor at a surveyed position (metres)."""

    id: Id
    x: float
    y: float
    z: float = 2.5
    uwb_id: int | None = Field(default=None, ge=1, le=0xFFFF)  # the anchor's 16-bit UWB short address


ActuatorKind = Literal["light", "desk", "hvac"]


class Actuator(Strict):
    """An output: a dimmable luminaire, a desk (height, lamp, indicator) or an HVAC request."""

    id: Id
    kind: ActuatorKind
    zone: Id | None = None
    seats: list[Id] = []
    pin: int | None = Field(default=None, ge=0, le=53)
    node: int | None = Field(default=None, ge=1, le=247)
    channel: int = Field(default=0, ge=0, le=15)  # output channel on the node
    output: Literal["pwm", "dimmer", "desk", "relay", "0-10V", "dali", "bacnet"] = "pwm"
    dali: DaliTarget | None = None  # output "dali": short address or group on a DALI master
    bacnet: BacnetOutput | None = None  # output "bacnet": a commandable BMS object
    x: float | None = None
    y: float | None = None
    watts: float = Field(default=36.0, ge=0, le=2000)
    lux_at_full: float = Field(default=450.0, ge=0, le=5000)
    ramp_s: float = Field(default=1.0, ge=0, le=60)
    # hvac only: the BMS's 0-10 V heating and cooling setpoint inputs (0-10 V = 0-40 C), optional
    heating_setpoint_pin: int | None = Field(default=None, ge=0, le=53)
    cooling_setpoint_pin: int | None = Field(default=None, ge=0, le=53)

    @model_validator(mode="after")
    def _wiring(self) -> Actuator:
        check_building_actuator(self.kind, self.output, self.dali, self.bacnet)
        if self.output in ("dali", "bacnet"):
            return self
        if self.pin is None and self.node is None:
            raise ValueError(f"a {self.kind} actuator needs pin (BCM number) or node (bridge address)")
        if self.kind == "desk" and self.node is None:
            raise ValueError("a desk is reached through its node: set node = <bridge address>")
        if self.kind != "hvac" and (self.heating_setpoint_pin is not None or self.cooling_setpoint_pin is not None):
            raise ValueError("heating_setpoint_pin and cooling_setpoint_pin belong to an hvac actuator; remove them")
        return self


class Window(Strict):
    """A window along a wall segment; daylight reaches seats near it (used by the simulator)."""

    id: Id
    start: Point
    end: Point
    facing: Literal["north", "east", "south", "west"] = "south"


class Hvac(Strict):
    """An HVAC zone: one ventilation/setpoint request output serving one or more zones."""

    id: Id
    zones: list[Id]
    volume_m3: float = Field(default=600.0, gt=0)
    min_air_changes_per_h: float = Field(default=1.0, ge=0)
    max_air_changes_per_h: float = Field(default=6.0, gt=0)
    fan_watts_at_full: float = Field(default=1500.0, ge=0)


class TLS(Strict):
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None


class Broker(Strict):
    """Upstream MQTT broker. Credentials live in their own file (user:password on one line)."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: TLS | None = None
    credentials_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    client_id: str | None = None
    protocol: Literal["5", "3.1.1"] = "5"  # 3.1.1 for brokers without MQTT 5 (response topics then unused)


class Bridge(Strict):
    """The RS-485 firmware bridge: one serial line to the floor's nodes."""

    port: str = "/dev/ttyUSB0"
    baud: int = 115200


class Storage(Strict):
    state_dir: Path = Path("/var/lib/edge-agent")
    outbox_max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    outbox_max_age_h: float = Field(default=168.0, gt=0)


class Privacy(Strict):
    """What may leave the gateway. Raw frames, positions and tag ids never do; these tune the rest."""

    publish_seat_states: bool = True
    trace_retention_h: float = Field(default=24.0, ge=0, le=24 * 31)
    tag_salt_file: Path | None = None
    tag_retention_s: float = Field(default=300.0, ge=10, le=24 * 3600)  # a tag unseen this long is forgotten


class Sensing(Strict):
    """Seat-state timing (seconds)."""

    occupied_after_s: float = Field(default=30.0, ge=0)
    away_after_s: float = Field(default=120.0, ge=0)
    ghost_after_s: float = Field(default=20 * 60.0, ge=60)
    stale_after_s: float = Field(default=60.0, gt=0)
    break_limit_s: float = Field(default=30 * 60.0, ge=60)  # a "back soon" hold (the desk's button)
    belongings_min_g: float = Field(default=150.0, gt=0, le=5000)  # on a desk's load cell: belongings
    ready_soon_s: float = Field(default=600.0, ge=0)  # availability: away seats turning ghost this soon


class Mqtt(Strict):
    summary_interval_s: float = Field(default=60.0, ge=1)
    health_interval_s: float = Field(default=60.0, ge=1)
    homeassistant_discovery: bool = False
    replay_rate_per_s: float = Field(default=200.0, gt=0)


class RulesConf(Strict):
    file: Path | None = None  # None: the shipped rules/default.toml
    record_trace: bool = False  # write sampled floor states for `edge-agent rules replay` (SD wear: off)
    trace_interval_s: float = Field(default=60.0, ge=1.0)


class ModelConf(Strict):
    file: Path | None = None  # None: the shipped models/default.onnx
    interval_s: float = Field(default=300.0, ge=10)


class Display(Strict):
    """The floor display page (edge_agent.display; the ``http`` extra): where it listens.

    Read-only, no personal data; bound to the loopback address unless the library's network
    should reach it (an entrance screen, a phone on the staff network): then its address.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    title: str = ""  # shown on the page; default: the site's name


class SiteConfig(ForecastSections, Strict):
    """The whole validated configuration."""

    site: Site
    storage: Storage = Storage()
    broker: Broker = Broker()
    bridge: Bridge | None = None
    privacy: Privacy = Privacy()
    sensing: Sensing = Sensing()
    mqtt: Mqtt = Mqtt()
    rules: RulesConf = RulesConf()
    model: ModelConf = ModelConf()
    buses: list[Bus] = []
    zones: list[Zone] = Field(min_length=1)
    seats: list[Seat] = []
    sensors: list[Sensor] = []
    anchors: list[Anchor] = []
    actuators: list[Actuator] = []
    windows: list[Window] = []
    hvac: list[Hvac] = []
    dali: list[DaliMaster] = []  # DALI masters (edge_agent.building)
    bacnet: BacnetConf | None = None  # the gateway on the BMS network (edge_agent.building)
    security: SecurityConf = SecurityConf()  # trusted keys, roles, signature policy (edge_agent.trust)
    audit: AuditConf = AuditConf()
    display: Display | None = None  # the floor display page, served when this table is present

    @model_validator(mode="after")
    def _references(self) -> SiteConfig:
        problems = cross_references(self.model_dump())
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # Convenience look-ups used across the daemon and the simulator.
    def zone(self, zone_id: str) -> Zone:
        return next(z for z in self.zones if z.id == zone_id)

    def seats_in(self, zone_id: str) -> list[Seat]:
        return [s for s in self.seats if s.zone == zone_id]


def cross_references(doc: dict[str, Any]) -> list[str]:
    """Problems between sections (unknown ids, duplicates, address clashes).

    Works on plain dicts so that it can also run on a document whose fields failed validation:
    the user then sees every problem in one pass, not one layer at a time.
    """
    problems: list[str] = []

    def items(name: str) -> list[dict[str, Any]]:
        value = doc.get(name)
        return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []

    def unique(name: str) -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items(name)):
            ident = item.get("id")
            if not isinstance(ident, str):
                continue
            if ident in seen:
                problems.append(f"{name}[{i}].id: {ident!r} is used twice; ids must be unique")
            seen.add(ident)
        return seen

    zones, seats, buses = unique("zones"), unique("seats"), unique("buses")
    actuators, hvacs = unique("actuators"), unique("hvac")
    unique("sensors")
    unique("anchors")

    def ref(path: str, value: Any, known: set[str], what: str) -> None:
        if isinstance(value, str) and value not in known:
            hint = ", ".join(sorted(known)[:6]) or "none defined"
            problems.append(f"{path}: unknown {what} {value!r}; known: {hint}")

    def refs(path: str, values: Any, known: set[str], what: str) -> None:
        for j, v in enumerate(values if isinstance(values, list) else []):
            ref(f"{path}[{j}]", v, known, what)

    for i, z in enumerate(items("zones")):
        ref(f"zones[{i}].hvac", z.get("hvac"), hvacs, "hvac")
    for i, st in enumerate(items("seats")):
        ref(f"seats[{i}].zone", st.get("zone"), zones, "zone")
        ref(f"seats[{i}].desk", st.get("desk"), actuators, "actuator")
    for i, b in enumerate(items("buses")):
        ref(f"buses[{i}].parent", b.get("parent"), buses, "bus")
    placed: dict[tuple[str, int], str] = {}
    for i, sn in enumerate(items("sensors")):
        ref(f"sensors[{i}].bus", sn.get("bus"), buses, "bus")
        ref(f"sensors[{i}].zone", sn.get("zone"), zones, "zone")
        refs(f"sensors[{i}].seats", sn.get("seats"), seats, "seat")
        bus, address = sn.get("bus"), sn.get("address")
        if isinstance(bus, str) and isinstance(address, int):
            if (bus, address) in placed:
                problems.append(
                    f"sensors[{i}].address: 0x{address:02x} on bus {bus!r} is already used by "
                    f"{placed[bus, address]!r}; put one of them on another mux channel"
                )
            placed[bus, address] = str(sn.get("id"))
    for i, a in enumerate(items("actuators")):
        ref(f"actuators[{i}].zone", a.get("zone"), zones, "zone")
        refs(f"actuators[{i}].seats", a.get("seats"), seats, "seat")
    for i, h in enumerate(items("hvac")):
        refs(f"hvac[{i}].zones", h.get("zones"), zones, "zone")
    uses_nodes = (
        any(b.get("kind") == "node" for b in items("buses"))
        or any(x.get("node") is not None for x in items("sensors") + items("actuators"))
    )
    if doc.get("bridge") is None and uses_nodes:
        problems.append('bridge: nodes are used but there is no [bridge] table; add port = "/dev/ttyUSB0"')
    return problems + building_references(doc)


def anchor_uwb_ids(cfg: SiteConfig) -> dict[int, str]:
    """UWB short address -> anchor id; an anchor without ``uwb_id`` takes its 1-based position."""
    return {(a.uwb_id if a.uwb_id is not None else i + 1): a.id for i, a in enumerate(cfg.anchors)}


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _readable(err: dict[str, Any]) -> list[str]:
    """One pydantic error as lines 'key.path: what is wrong; what to write instead'."""
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or "function-" in p)))
    path = _loc(loc)
    kind = err["type"]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return [f"{path}: unknown key; remove it or check its spelling against docs/configuration.md"]
    if kind == "missing":
        return [f"{path}: required key is missing; add it"]
    if "\n" in msg:  # cross-reference problems already carry their own paths
        return msg.splitlines()
    got = err.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return [f"{path}: {msg}{shown}"]


def parse_config(data: dict[str, Any], source: str = "<config>") -> SiteConfig:
    """Validate an already-parsed TOML document."""
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors():
            problems.extend(_readable(dict(err)))
        for extra in cross_references(data):
            if extra not in problems:
                problems.append(extra)
        raise ConfigError(f"{source}: {len(problems)} problem(s)", problems) from None


def load_config(path: str | Path) -> SiteConfig:
    """Read and validate a config file; every failure is a ConfigError with a one-line reason."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory; give the path of the TOML file (e.g. {p}/gateway.toml)")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file; copy examples/floor-3.toml there and edit it") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read it ({exc.strerror}); check its permissions") from None
    if not raw.strip():
        raise ConfigError(f"{p}: the file is empty; start from examples/floor-3.toml")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; is this really the TOML config?") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, str(p))


def config_hash(path: str | Path) -> str:
    """Short content hash published in the birth message, so central systems see config drift."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def rules_file(cfg: SiteConfig, config_path: Path) -> Path | None:
    """The rule file a config names (relative to the config file), or None for the shipped default."""
    if cfg.rules.file is None:
        return None
    return cfg.rules.file if cfg.rules.file.is_absolute() else config_path.parent / cfg.rules.file

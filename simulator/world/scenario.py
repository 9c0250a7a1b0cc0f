"""Scenario files: one simulated library day, described as data.

A scenario names the floor config it runs on (the daemon's own TOML, so the world and the daemon
see the same floor), the date, day type, weather and random seed, optional poll-interval
overrides for the daemon, and timed events (sensor faults, a broker outage, a power cut). The
world executes the events that happen *in the world* (faults on simulated devices); the runtime
executes the ones that happen *to the daemon* (:data:`RUNTIME_EVENTS`).

Every problem in a file is reported in one :class:`drivers.errors.ConfigError` whose lines name
the file and the key path (``events[2].at``), like the site config.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from datetime import datetime, time, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.errors import ConfigError

HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]

EventKind = Literal[
    "sensor_fault", "clear_fault", "ble_dropout", "broker_down", "broker_up", "power_cut",
]
#: Events the daemon's runtime must carry out itself (the world cannot reach the network or the process).
RUNTIME_EVENTS: frozenset[str] = frozenset({"broker_down", "broker_up", "power_cut"})
#: Events the world carries out on simulated devices through its binding.
WORLD_EVENTS: frozenset[str] = frozenset({"sensor_fault", "clear_fault", "ble_dropout"})


def hhmm_seconds(text: str) -> float:
    """Seconds after midnight of an ``HH:MM`` string (already validated)."""
    hours, minutes = text.split(":")
    return int(hours) * 3600.0 + int(minutes) * 60.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioHeader(_Strict):
    """The ``[scenario]`` table: which floor, which day, which weather, which seed."""

    name: str
    floor: str = "examples/floor-3.toml"
    date: dt.date = dt.date(2025, 3, 11)
    day_type: Literal["normal", "term", "exam", "holiday"] = "normal"
    weather: Literal["clear", "overcast", "variable"] = "variable"
    latitude: float = Field(default=55.68, ge=-66.0, le=66.0)
    longitude: float = Field(default=12.57, ge=-180.0, le=180.0)
    seed: int = 1
    start: HHMM = "07:30"
    end: HHMM = "22:30"
    # The weather besides the sky: the day's mean outdoor temperature, half its daily range (warmest
    # at 15:00) and the relative humidity at the mean temperature (the dew point holds all day).
    outdoor_temp_c: float = Field(default=9.0, ge=-30.0, le=45.0)
    outdoor_swing_c: float = Field(default=4.0, ge=0.0, le=15.0)
    outdoor_rh_pct: float = Field(default=70.0, ge=5.0, le=100.0)
    # The building's own (BMS) setpoints during opening hours: the conventional floor the report
    # compares against, and what the BMS holds while the gateway sends no setpoint.
    heating_setpoint_c: float = Field(default=21.0, ge=15.0, le=26.0)
    cooling_setpoint_c: float = Field(default=24.0, ge=18.0, le=30.0)

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        return value.date() if isinstance(value, datetime) else value

    @model_validator(mode="after")
    def _order(self) -> ScenarioHeader:
        if hhmm_seconds(self.end) <= hhmm_seconds(self.start):
            raise ValueError(f"end {self.end} must be after start {self.start} (one day, no midnight wrap)")
        if self.cooling_setpoint_c < self.heating_setpoint_c + 1.0:
            raise ValueError(f"cooling_setpoint_c {self.cooling_setpoint_c:g} must be at least 1 K above "
                             f"heating_setpoint_c {self.heating_setpoint_c:g}, e.g. 21 and 24")
        return self

    @property
    def demand_day_type(self) -> str:
        """The day type as :mod:`simulator.demand` names it ("normal" is a term day)."""
        return "term" if self.day_type == "normal" else self.day_type


class Patrons(_Strict):
    """The ``[patrons]`` table: behaviour shares and scales (defaults documented in docs/simulator.md)."""

    demand_scale: float = Field(default=1.0, ge=0.0, le=3.0)
    tag_share: float = Field(default=0.3, ge=0.0, le=1.0)
    laptop_share: float = Field(default=0.6, ge=0.0, le=1.0)
    window_lovers: float = Field(default=0.35, ge=0.0, le=1.0)
    loners: float = Field(default=0.5, ge=0.0, le=1.0)
    breaks_per_hour: float = Field(default=0.45, ge=0.0, le=4.0)
    long_break_share: float = Field(default=0.2, ge=0.0, le=1.0)
    abandon_share: float = Field(default=0.04, ge=0.0, le=1.0)
    # Patrons who hang a coat on their chair back and leave it there on a break. 0.5 suits a
    # March day in Copenhagen (5-10 C outside: nearly everyone comes in a coat; about half keep it
    # on, use a locker or the cloakroom); lower it on a warm day (about 0.1-0.2 above 18 C).
    coat_share: float = Field(default=0.5, ge=0.0, le=1.0)
    walk_speed_m_s: float = Field(default=1.2, gt=0.2, le=3.0)
    entrance: tuple[float, float] | None = None
    # The adaptive learning space: exactly ``tags`` of the day's patrons carry a UWB tag (instead of
    # ``tag_share``), and of the tag carriers ``consenting`` (or the share ``consent_share``) have
    # consented to personal desk and lamp preferences in the library's patron system.
    tags: int | None = Field(default=None, ge=0, le=10000)
    consenting: int | None = Field(default=None, ge=0, le=10000)
    consent_share: float = Field(default=0.0, ge=0.0, le=1.0)
    # Belongings (simulator/world/belongings.py): who carries books, a cup, a bag, and where the bag
    # lies during a break (on the desk, else on the chair).
    books_share: float = Field(default=0.7, ge=0.0, le=1.0)
    cup_share: float = Field(default=0.3, ge=0.0, le=1.0)
    bag_share: float = Field(default=0.85, ge=0.0, le=1.0)
    bag_on_desk_share: float = Field(default=0.35, ge=0.0, le=1.0)
    # Patrons who press the desk's "back soon" button when they leave for a break.
    back_soon_share: float = Field(default=0.25, ge=0.0, le=1.0)
    # Patrons who drop a bag on a seat to claim it and go (a lecture, lunch) before they sit there,
    # away claim_min minutes (a range) with nobody at the seat.
    claim_share: float = Field(default=0.02, ge=0.0, le=1.0)
    claim_min: tuple[float, float] = (20.0, 90.0)
    # Finding a seat (simulator/world/seating.py): the share who look at what the gateway shows
    # (an entrance screen, a phone) and go to a seat shown free; everyone else walks the floor,
    # zone by zone, looking for a seat that looks free (each free seat noticed with spot_share,
    # look_s to look round a zone) and gives up after their patience (median, lognormal).
    sees_availability_share: float = Field(default=0.6, ge=0.0, le=1.0)
    search_patience_s: float = Field(default=360.0, gt=0.0, le=3600.0)
    spot_share: float = Field(default=0.75, gt=0.0, le=1.0)
    look_s: float = Field(default=20.0, ge=0.0, le=600.0)

    @field_validator("claim_min")
    @classmethod
    def _claim_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < value[0] <= value[1] <= 600.0:
            raise ValueError(f"claim_min must be [shortest, longest] minutes, 0 < shortest <= longest <= 600, "
                             f"e.g. [20, 90]; got {list(value)}")
        return value


class Staff(_Strict):
    """The ``[staff]`` table: the library's floor staff answering the gateway's ghost-seat dispatches."""

    # From the gateway's ghost_seat event to staff at the seat clearing it (the library case: 27 s).
    response_s: float = Field(default=27.0, ge=0.0, le=3600.0)


class SimPolls(_Strict):
    """The ``[sim]`` table: poll-interval overrides (seconds) the runtime applies to the daemon.

    Each key overrides ``poll_interval_s`` of every sensor of that kind, so a simulated day fits
    its time budget (a 2 s thermopile poll on 30 arrays is most of a day's work).
    """

    amg8833_poll_s: float | None = Field(default=None, gt=0, le=3600)
    bh1750_poll_s: float | None = Field(default=None, gt=0, le=3600)
    sht31_poll_s: float | None = Field(default=None, gt=0, le=3600)
    sht4x_poll_s: float | None = Field(default=None, gt=0, le=3600)
    scd41_poll_s: float | None = Field(default=None, gt=0, le=3600)
    pir_poll_s: float | None = Field(default=None, gt=0, le=3600)
    dwm1001_poll_s: float | None = Field(default=None, gt=0, le=3600)
    tag_interval_s: float = Field(default=30.0, ge=1.0, le=600)  # world: how often tags report


class ScenarioEvent(_Strict):
    """One ``[[events]]`` entry: something that happens at a wall time of the day."""

    at: HHMM
    kind: EventKind
    target: str | None = None
    fault: str | None = None
    duration_min: float | None = Field(default=None, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _needs(self) -> ScenarioEvent:
        if self.kind in {"sensor_fault", "clear_fault", "ble_dropout"} and not self.target:
            raise ValueError(f"a {self.kind} event needs target = \"<sensor id>\"")
        if self.kind == "sensor_fault" and not self.fault:
            raise ValueError('a sensor_fault event needs fault = "nack" (or stuck, slow, absent, corrupt_crc)')
        return self


class Scenario(_Strict):
    """A whole validated scenario file."""

    scenario: ScenarioHeader
    patrons: Patrons = Patrons()
    staff: Staff = Staff()
    sim: SimPolls = SimPolls()
    events: list[ScenarioEvent] = []
    source: Path = Path("<scenario>")
    floor_path: Path = Path("examples/floor-3.toml")

    def wall_start(self, tz: tzinfo | None = None) -> datetime:
        """Local wall time the simulation starts at: give it to the virtual clock."""
        hh, mm = self.scenario.start.split(":")
        return datetime.combine(self.scenario.date, time(int(hh), int(mm)), tzinfo=tz)

    @property
    def duration_s(self) -> float:
        """Simulated seconds from ``start`` to ``end``."""
        return hhmm_seconds(self.scenario.end) - hhmm_seconds(self.scenario.start)

    def poll_overrides(self) -> dict[str, float]:
        """Sensor kind -> poll interval the runtime should use instead of the config's."""
        out: dict[str, float] = {}
        for key, value in self.sim.model_dump().items():
            if key.endswith("_poll_s") and value is not None:
                out[key.removesuffix("_poll_s")] = float(value)
        return out


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


def _resolve_floor(floor: str, source: Path) -> Path | None:
    """Find the floor config: absolute, else the current directory, else upwards from the scenario."""
    candidate = Path(floor)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    if candidate.is_file():
        return candidate.resolve()
    for parent in source.resolve().parents:
        if (parent / candidate).is_file():
            return parent / candidate
    return None


def parse_scenario(data: dict[str, Any], source: Path, *, check_floor: bool = True) -> Scenario:
    """Validate an already-parsed scenario document; every problem names ``source`` and its key path."""
    problems: list[str] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate({**data, "source": source})
    except ValidationError as exc:
        for err in exc.errors():
            path = _loc(tuple(p for p in err["loc"] if not (isinstance(p, str) and "function-" in p)))
            if err["type"] == "extra_forbidden":
                problems.append(f"{path}: unknown key; remove it or check its spelling in docs/simulator.md")
            elif err["type"] == "missing":
                problems.append(f"{path}: required key is missing; add it")
            else:
                got = err.get("input")
                shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
                problems.append(f"{path}: {str(err['msg']).removeprefix('Value error, ')}{shown}")
    if scenario is not None and check_floor:
        floor = _resolve_floor(scenario.scenario.floor, source)
        if floor is None:
            problems.append(f"scenario.floor: no such file {scenario.scenario.floor!r} (relative to the "
                            "current directory or a parent of the scenario file)")
        else:
            scenario = scenario.model_copy(update={"floor_path": floor})
            problems.extend(_check_targets(scenario, floor))
    if problems or scenario is None:
        raise ConfigError(f"{source}: {len(problems)} problem(s)\n  " + "\n  ".join(problems), problems)
    return scenario


def _check_targets(scenario: Scenario, floor: Path) -> list[str]:
    """Event targets must be sensors of the floor; the floor itself must be a valid config."""
    from edge_agent.config import load_config  # the public config schema only

    try:
        cfg = load_config(floor)
    except ConfigError as exc:
        return [f"scenario.floor: {floor} is not a valid floor config: {exc}"]
    known = {s.id for s in cfg.sensors}
    problems = []
    for i, ev in enumerate(scenario.events):
        if ev.kind in WORLD_EVENTS and ev.target not in known:
            hint = ", ".join(sorted(known)[:5])
            problems.append(f"events[{i}].target: unknown sensor {ev.target!r} in {floor.name}; e.g. {hint}")
    return problems


def load_scenario(path: str | Path, *, check_floor: bool = True) -> Scenario:
    """Read and validate a scenario TOML file (see docs/simulator.md for the format)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such scenario file; see simulator/scenarios/ for examples") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read it ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_scenario(data, p, check_floor=check_floor)

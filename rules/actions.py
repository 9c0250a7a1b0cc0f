"""Rule actions: the ``then`` list of a rule, one table per action, chosen by its ``do`` key.

Actions name *what* should happen to the subject of the rule (its zone's luminaires, its seat's
desk, its zone's HVAC request); the engine turns them into :class:`rules.state.Intent` objects
addressed to actuator ids from the floor's :class:`rules.state.Topology`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from rules.conditions import Problems, readable

Level = Annotated[float, Field(ge=0.0, le=1.0)]
RampS = Annotated[float, Field(ge=0.0, le=600.0)]


class Action(BaseModel):
    """Base of every action: unknown keys are errors; ``ramp_s`` overrides the actuator's ramp."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    do: str
    ramp_s: RampS | None = None


class LightAction(Action):
    """A fixed level or a named scene for the subject's luminaires (or the listed ones)."""

    do: Literal["light"]
    level: Level | None = None
    scene: str | None = None
    luminaires: list[str] = []

    @model_validator(mode="after")
    def _one(self) -> LightAction:
        if (self.level is None) == (self.scene is None):
            raise ValueError("give exactly one of level = 0..1 or scene = \"<name from [scenes]>\"")
        return self


class DaylightAction(Action):
    """Closed-loop daylight harvesting: hold the zone's target lux on occupied seats.

    ``lux_at_full`` estimates how many lux the zone's luminaires add at full output; a rough
    estimate is enough (the loop converges for any estimate above half the true value).
    ``margin_lux`` aims that far above the target, so a seat held at the low edge of the deadband
    still has its target (a target illuminance is a minimum, not an average).
    ``ready_fraction`` holds the seats nobody sits at (free, away, ghost) at that share of the
    target: a patron walking to one finds it lit at once instead of after the thermopile has
    confirmed them (about a minute), as in a task-and-surround lighting design.
    ``max_step_down`` limits how far one evaluation dims (see rules.daylight).
    """

    do: Literal["daylight"]
    min_level: Level = 0.0
    max_level: Level = 1.0
    deadband_lux: float = Field(default=25.0, ge=0.0, le=500.0)
    lux_at_full: float = Field(default=500.0, gt=0.0, le=5000.0)
    margin_lux: float = Field(default=0.0, ge=0.0, le=500.0)
    ready_fraction: Level = 0.0
    max_step_down: float = Field(default=1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _range(self) -> DaylightAction:
        if self.min_level > self.max_level:
            raise ValueError("min_level must not exceed max_level")
        return self


class DeskLampAction(Action):
    """A desk lamp level, or the sitting patron's preferred level (``preference = true``)."""

    do: Literal["desk_lamp"]
    level: Level | None = None
    preference: StrictBool = False

    @model_validator(mode="after")
    def _one(self) -> DeskLampAction:
        if (self.level is None) == (not self.preference):
            raise ValueError("give exactly one of level = 0..1 or preference = true")
        return self


class DeskHeightAction(Action):
    """A desk height: a height in mm, a controller preset, or the patron's preferred height."""

    do: Literal["desk_height"]
    mm: int | None = Field(default=None, ge=550, le=1350)
    preset: int | None = Field(default=None, ge=1, le=9)
    preference: StrictBool = False

    @model_validator(mode="after")
    def _one(self) -> DeskHeightAction:
        if sum([self.mm is not None, self.preset is not None, self.preference]) != 1:
            raise ValueError("give exactly one of mm = 720, preset = 1 or preference = true")
        return self


class IndicatorAction(Action):
    """The seat indicator: by default it mirrors the seat status (free, occupied, ghost)."""

    do: Literal["indicator"]
    show: Literal["status", "free", "occupied", "ghost", "off"] = "status"


class VentilationAction(Action):
    """A ventilation level (0..1 of the AHU's range); with ``co2_ppm = [low, high]``, demand control.

    Demand control raises the level with the zone's CO2: 0 at ``low``, 1 at ``high``, never below
    ``level``. While CO2 is unknown (its sensing failed) the level is at least ``unknown_level``.
    Above ``level``, a demand within ``deadband`` of what the AHU holds leaves it there: the CO2
    sensors' noise does not move the fans every minute.
    """

    do: Literal["ventilation"]
    level: Level
    co2_ppm: tuple[float, float] | None = None
    unknown_level: Level = 0.3
    deadband: float = Field(default=0.1, ge=0.0, le=0.5)

    @model_validator(mode="after")
    def _band(self) -> VentilationAction:
        if self.co2_ppm is not None:
            low, high = self.co2_ppm
            if not 400.0 <= low < high <= 5000.0:
                raise ValueError("co2_ppm must be [low, high] with 400 <= low < high <= 5000, e.g. [800, 1000]")
        return self

    def level_for(self, co2_ppm: float | None, holding: float | None = None) -> float:
        """The level to ask for at this CO2 reading (None: unknown), rounded to 0.01; ``holding`` is
        what the AHU holds now (None: not known)."""
        if self.co2_ppm is None:
            return self.level
        if co2_ppm is None:
            return max(self.level, self.unknown_level)
        low, high = self.co2_ppm
        wanted = round(max(self.level, min(1.0, max(0.0, (co2_ppm - low) / (high - low)))), 2)
        steady = holding is not None and wanted > self.level and holding >= self.level
        if steady and holding is not None and abs(wanted - holding) < self.deadband:
            return holding
        return wanted


class SetpointAction(Action):
    """Temperature setpoints for the zone's HVAC: ``heating_c`` (heated below it) and ``cooling_c``
    (cooled above it), or ``celsius`` alone for a BMS with a single setpoint input."""

    do: Literal["setpoint"]
    celsius: float | None = Field(default=None, ge=12.0, le=30.0)
    heating_c: float | None = Field(default=None, ge=12.0, le=30.0)
    cooling_c: float | None = Field(default=None, ge=12.0, le=32.0)

    @model_validator(mode="after")
    def _which(self) -> SetpointAction:
        pair = self.heating_c is not None or self.cooling_c is not None
        if (self.celsius is None) == (not pair):
            raise ValueError("give celsius = 21.5, or heating_c = 21 and/or cooling_c = 24 (not both forms)")
        if self.heating_c is not None and self.cooling_c is not None and self.cooling_c < self.heating_c + 1.0:
            raise ValueError(f"cooling_c must be at least 1 K above heating_c ({self.heating_c:g}), e.g. "
                             f"{self.heating_c + 3.0:g}: heating and cooling would fight")
        return self


class ReleaseSeatAction(Action):
    do: Literal["release_seat"]


class AlertAction(Action):
    """An alert for the zone; ``message`` may use {zone}, {seat} and {rule}."""

    do: Literal["alert"]
    message: str = Field(min_length=1, max_length=200)


ACTIONS: dict[str, type[Action]] = {
    "light": LightAction, "daylight": DaylightAction, "desk_lamp": DeskLampAction,
    "desk_height": DeskHeightAction, "indicator": IndicatorAction, "ventilation": VentilationAction,
    "setpoint": SetpointAction, "release_seat": ReleaseSeatAction, "alert": AlertAction,
}
SEAT_ACTIONS = (DeskLampAction, DeskHeightAction, IndicatorAction, ReleaseSeatAction)
ACTION_EXAMPLES = {"level": "0.8", "celsius": "21.5", "heating_c": "21", "cooling_c": "24", "mm": "720", "preset": "1",
                   "message": '"CO2 high in {zone}"', "co2_ppm": "[800, 1000]", "unknown_level": "0.3",
                   "deadband": "0.1"}


def parse_action(raw: Any, path: str, problems: Problems) -> Action | None:
    """Parse one action table, recording problems with their key paths."""
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table, e.g. {{ do = \"light\", level = 0.8 }}")
        return None
    kind = raw.get("do")
    if kind not in ACTIONS:
        problems.append(f"{path}.do: {kind!r} is not an action; use one of: {', '.join(ACTIONS)}")
        return None
    try:
        return ACTIONS[kind].model_validate(raw)
    except ValidationError as exc:
        lines = readable(exc, path)
        for field, example in ACTION_EXAMPLES.items():
            lines = [
                f"{line}, e.g. {example}" if line.startswith(f"{path}.{field}:") and "e.g." not in line else line
                for line in lines
            ]
        problems.extend(lines)
        return None

"""Rule conditions: the ``when`` tree of a rule, parsed from TOML and evaluated against floor state.

A condition is a small tree. Leaves test one thing (a metric against a threshold, a seat status,
opening hours, a time window, recent PIR motion, sensing health, a consenting tag sitting for a
while); ``all`` / ``any`` / ``not`` combine them. Each leaf knows its key path in the rule file
(``when.all[1]``), which both names it in error messages and keys its hysteresis latch.

Leaves are parsed by looking at which keys a table has, then validated with a pydantic model, so
a wrong value is reported at its exact path with an example of what to write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time as dtime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from rules.state import FloorState, Quality, SeatStatus, SeatView, ZoneView

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

ZONE_METRICS = (
    "people", "occupied", "free", "away", "ghost", "unknown", "seats_total", "occupancy",
    "lux", "temperature", "humidity", "co2", "empty_s", "motion_age_s", "forecast", "level",
)
SEAT_METRICS = ("seat_lux", "seat_lux_ratio", "status_s", "tag_s")
Metric = Literal[
    "people", "occupied", "free", "away", "ghost", "unknown", "seats_total", "occupancy",
    "lux", "temperature", "humidity", "co2", "empty_s", "motion_age_s", "forecast", "level",
    "seat_lux", "seat_lux_ratio", "status_s", "tag_s",
]
Sensing = Literal["occupancy", "lux", "co2", "temperature", "humidity"]

# Field name -> an example value, used to tell the user what to write instead.
EXAMPLES: dict[str, str] = {
    "above": "1000", "below": "800", "release_below": "800", "release_above": "1000",
    "within_min": "30", "metric": '"co2"', "status": '["ghost"]', "open": "true",
    "day_type": '["term", "exam"]', "time": '["08:00", "10:00"]', "weekdays": '["mon", "tue"]',
    "motion_within_s": "10", "overridden": "true", "consented_for_s": "60", "unhealthy": '"occupancy"',
}


class Leaf(BaseModel):
    """Base of every leaf test: unknown keys are errors, parsed leaves are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricTest(Leaf):
    """``{ metric = "co2", above = 1000, release_below = 800 }``: a threshold, optionally latched.

    ``release_below`` turns ``above`` into hysteresis (on above X, stays on until below Y);
    ``release_above`` does the same for ``below``. ``within_min`` bounds the forecast horizon.
    """

    metric: Metric
    above: float | None = None
    below: float | None = None
    release_below: float | None = None
    release_above: float | None = None
    within_min: int | None = Field(default=None, ge=1, le=24 * 60)

    @model_validator(mode="after")
    def _shape(self) -> MetricTest:
        if self.above is None and self.below is None:
            raise ValueError("give a threshold: above = <number> and/or below = <number>")
        if self.release_below is not None:
            if self.above is None:
                raise ValueError("release_below needs above (on above X, off below release_below)")
            if self.release_below >= self.above:
                raise ValueError(f"release_below must be lower than above ({self.above:g}), e.g. 800 for above 1000")
        if self.release_above is not None:
            if self.below is None:
                raise ValueError("release_above needs below (on below X, off above release_above)")
            if self.release_above <= self.below:
                raise ValueError(f"release_above must be higher than below ({self.below:g})")
        if (self.metric == "forecast") != (self.within_min is not None):
            raise ValueError("within_min = <minutes> goes with metric = \"forecast\" (and only with it)")
        if self.above is not None and self.below is not None and self.release_below is not None:
            raise ValueError("hysteresis (release_below) works with above alone, not with a range")
        return self


class StatusTest(Leaf):
    status: list[SeatStatus] = Field(min_length=1)

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class OpenTest(Leaf):
    open: StrictBool


class DayTypeTest(Leaf):
    day_type: list[str] = Field(min_length=1)

    @field_validator("day_type", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class TimeTest(Leaf):
    """``{ time = ["22:00", "06:00"] }``: local wall time in [start, end); may cross midnight."""

    time: tuple[dtime, dtime]

    @field_validator("time", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> Any:
        if not (isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, str) for x in v)):
            raise ValueError('write a window as two "HH:MM" strings, e.g. ["08:00", "10:00"]')
        try:
            return tuple(dtime.fromisoformat(x) for x in v)
        except ValueError:
            raise ValueError('times must be "HH:MM" (24 h), e.g. ["08:00", "10:00"]') from None


class WeekdaysTest(Leaf):
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)


class MotionTest(Leaf):
    motion_within_s: float = Field(gt=0, le=24 * 3600)


class OverriddenTest(Leaf):
    overridden: StrictBool


class ConsentTest(Leaf):
    """A consenting tag has sat at the seat for at least this long, and has preferences."""

    consented_for_s: float = Field(ge=0, le=24 * 3600)


class UnhealthyTest(Leaf):
    unhealthy: Sensing


LEAF_KEYS: list[tuple[str, type[Leaf]]] = [
    ("metric", MetricTest), ("status", StatusTest), ("open", OpenTest), ("day_type", DayTypeTest),
    ("time", TimeTest), ("weekdays", WeekdaysTest), ("motion_within_s", MotionTest),
    ("overridden", OverriddenTest), ("consented_for_s", ConsentTest), ("unhealthy", UnhealthyTest),
]
SEAT_ONLY: tuple[type[Leaf], ...] = (StatusTest, ConsentTest)


@dataclass(frozen=True, slots=True)
class Subject:
    """What a condition is evaluated about: a zone, and for seat-scoped rules one seat in it."""

    state: FloorState
    zone: ZoneView
    seat: SeatView | None = None


@dataclass(frozen=True, slots=True)
class Node:
    """A parsed condition: ``op`` is all/any/not/leaf; ``path`` is its key path in the rule."""

    op: Literal["all", "any", "not", "leaf"]
    path: str
    children: tuple[Node, ...] = ()
    leaf: Leaf | None = None

    def leaves(self) -> list[Leaf]:
        if self.leaf is not None:
            return [self.leaf]
        return [x for c in self.children for x in c.leaves()]


class Problems(list[str]):
    """Problems found while parsing one rule, each already prefixed with its key path."""


def parse_condition(raw: Any, path: str, problems: Problems) -> Node | None:
    """Parse one condition table; record problems (with key paths) rather than stop at the first."""
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table, e.g. {{ metric = \"co2\", above = 1000 }}")
        return None
    combinators = [k for k in ("all", "any", "not") if k in raw]
    if combinators:
        key = combinators[0]
        if len(raw) != 1:
            problems.append(f"{path}: '{key}' must be the only key of its table; nest the other tests inside it")
            return None
        if key == "not":
            child = parse_condition(raw["not"], f"{path}.not", problems)
            return None if child is None else Node("not", path, (child,))
        items = raw[key]
        if not isinstance(items, list) or not items:
            problems.append(f"{path}.{key}: must be a non-empty list of tests, e.g. [{{ open = true }}]")
            return None
        kids = [parse_condition(x, f"{path}.{key}[{i}]", problems) for i, x in enumerate(items)]
        if any(k is None for k in kids):
            return None
        return Node("all" if key == "all" else "any", path, tuple(k for k in kids if k is not None))
    matches = [model for key, model in LEAF_KEYS if key in raw]
    if not matches:
        known = ", ".join(k for k, _ in LEAF_KEYS)
        problems.append(f"{path}: no test recognised in keys {sorted(raw)}; use one of: all, any, not, {known}")
        return None
    try:
        return Node("leaf", path, leaf=matches[0].model_validate(raw))
    except ValidationError as exc:
        problems.extend(readable(exc, path))
        return None


def readable(exc: ValidationError, path: str) -> list[str]:
    """Pydantic errors as ``key.path: what is wrong, e.g. <example>`` lines."""
    out: list[str] = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or "function-" in p))]
        field = next((p for p in reversed(loc) if isinstance(p, str)), "")
        where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        example = EXAMPLES.get(field)
        kind = err["type"]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling against docs/rules.md"
        elif kind == "missing":
            msg = "required key is missing; add it" + (f", e.g. {field} = {example}" if example else "")
        elif kind in ("float_type", "float_parsing", "int_type", "int_parsing"):
            msg = "must be a number" + (f", e.g. {example}" if example else "")
        elif kind in ("bool_type", "bool_parsing"):
            msg = "must be true or false"
        elif example and kind not in ("value_error",):
            msg = f"{msg}, e.g. {example}"
        out.append(f"{where}: {msg}")
    return out


def measure_value(m: Any) -> float | None:
    """A zone measure's usable value: None when its sensing is unhealthy or missing."""
    if m.value is None or m.quality in (Quality.UNHEALTHY, Quality.MISSING):
        return None
    return float(m.value)


def metric_value(name: str, s: Subject, within_min: int | None) -> float | None:
    """The current value of one metric for a subject; None when unknown (a test on it is false)."""
    z, t = s.zone, s.state.t
    if name in _ZONE_COUNTS:
        return float(_ZONE_COUNTS[name](z))
    if name == "people":
        return measure_value(z.people)
    if name in ("lux", "temperature", "humidity", "co2"):
        return measure_value(getattr(z, name))
    if name == "occupancy":
        return (z.occupied + z.away) / z.seats_total if z.seats_total else 0.0
    if name == "empty_s":
        return 0.0 if z.empty_since is None else max(0.0, t - z.empty_since)
    if name == "motion_age_s":
        return None if z.last_motion is None else max(0.0, t - z.last_motion)
    if name == "forecast":
        horizon = within_min or 0
        values = [v for h, v in z.forecast.items() if h <= horizon]
        return max(values) if values else None
    if name == "level":
        lights = s.state.topology.zone_lights.get(z.id, ())
        levels = [s.state.levels.get(x, 0.0) for x in lights]
        return sum(levels) / len(levels) if levels else None
    seat = s.seat
    if seat is None:
        return None
    if name in ("seat_lux", "seat_lux_ratio"):
        return seat_light(name, z, seat)
    if name == "status_s":
        return max(0.0, t - seat.since)
    if name == "tag_s":
        return None if seat.tag_since is None or seat.consented_tag is None else max(0.0, t - seat.tag_since)
    return None


def seat_light(name: str, z: ZoneView, seat: SeatView) -> float | None:
    """``seat_lux`` or ``seat_lux_ratio`` of a seat in zone ``z`` (what :func:`metric_value` gives).

    Its own function because the incremental evaluator works it out for every seat whose view
    changed on each pass (:func:`rules.unit_reads.seat_signature`), without a Subject each time.
    """
    if name == "seat_lux":
        return seat.lux
    # seat_lux_ratio: the seat's lux as a share of its zone's target: one rule fits every zone
    return None if seat.lux is None or z.target_lux <= 0 else seat.lux / z.target_lux


_ZONE_COUNTS: Mapping[str, Callable[[ZoneView], int]] = {
    "occupied": lambda z: z.occupied, "free": lambda z: z.free, "away": lambda z: z.away,
    "ghost": lambda z: z.ghost, "unknown": lambda z: z.unknown, "seats_total": lambda z: z.seats_total,
}

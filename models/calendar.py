"""The site calendar: day types (term, exam, holiday), closures and opening hours by date.

Demand in an academic library follows the calendar more than anything else: the forecast's
features include the day type and whether the library is open at the target time, the rules test
``day_type`` and ``open``, and the daemon's opening-hours logic asks :meth:`LibraryCalendar.is_open`.
One document describes it, the same in the site config's ``[calendar]`` table, in a standalone
TOML file (``edge-agent model train --calendar``) and in the ``set_calendar`` command (as JSON)::

    default = "term"                 # day type of days no period covers (optional)

    [hours]                          # weekday opening hours; a weekday left out uses the site's
    sat = ["10:00", "18:00"]         # [site] opening_hours; "closed" closes it every week
    sun = "closed"

    [[periods]]                      # inclusive date ranges; a later period overrides an earlier one
    start = 2024-12-02
    end = 2024-12-20
    type = "exam"                    # "term", "exam" or "holiday"
    hours = ["08:00", "23:00"]       # optional: opening hours on every day of the period

    [[holidays]]                     # single days (public holidays): day type "holiday"
    date = 2024-12-26
    name = "Boxing Day"              # optional

    [[closures]]                     # closed all day (day type "holiday"): one date or start/end
    start = 2024-12-24
    end = 2024-12-27
    name = "Christmas"

    [[special_hours]]                # opening hours of particular days (one date or start/end)
    date = 2024-12-23
    hours = ["10:00", "16:00"]

Opening hours of a day, first match wins: a closure, special hours, the hours of the last period
covering it, the weekday's ``[hours]``, the site's default. Hours may cross midnight
(``["08:00", "02:00"]``: open until 02:00 the next morning). Dates are TOML dates or
``"YYYY-MM-DD"`` strings. Everything here is pure: no clock, no I/O except :meth:`load`.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import CalendarError

DayType = Literal["term", "exam", "holiday"]
DAY_TYPES: tuple[DayType, ...] = ("term", "exam", "holiday")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Hours = tuple[time, time]
DEFAULT_HOURS: Hours = (time(8, 0), time(22, 0))
Day = date  # fields named ``date`` would shadow the type inside a model's namespace


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hours(value: tuple[str, str] | None) -> Hours | None:
    return None if value is None else (time.fromisoformat(value[0]), time.fromisoformat(value[1]))


class _Span(_Doc):
    """One date or an inclusive start/end range (``date`` is shorthand for start = end)."""

    date: Day | None = None
    start: Day | None = None
    end: Day | None = None
    name: str = ""

    @model_validator(mode="after")
    def _one_span(self) -> _Span:
        if self.date is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either date or start/end, not both")
        if self.date is None and (self.start is None or self.end is None):
            raise ValueError("give date = 2024-12-24, or start and end")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}; swap them")
        return self

    def first(self) -> Day:
        return self.date or self.start or date.min

    def last(self) -> Day:
        return self.date or self.end or date.max


class Period(_Doc):
    """A term, exam or holiday period (inclusive), optionally with its own opening hours."""

    start: date
    end: date
    type: DayType
    name: str = ""
    hours: tuple[HHMM, HHMM] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}; swap them")
        return self


class Holiday(_Doc):
    """A public holiday: day type ``holiday``; opening hours as any other day unless closed."""

    date: Day
    name: str = ""


class Closure(_Span):
    """The library is closed all day (and the day counts as a holiday)."""


class SpecialHours(_Span):
    """Opening hours of particular days, e.g. shorter hours before Christmas."""

    hours: tuple[HHMM, HHMM]


WeekdayHours = tuple[HHMM, HHMM] | Literal["closed"]


class CalendarDoc(_Doc):
    """The calendar document (``[calendar]`` in the site config, a TOML file, or ``set_calendar``)."""

    default: DayType = Field(default="term", description="Day type of days no period covers.")
    hours: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], WeekdayHours] = Field(
        default_factory=dict, description='Weekday opening hours ["HH:MM", "HH:MM"] or "closed".'
    )
    periods: list[Period] = Field(default_factory=list, description="Later periods override earlier ones.")
    holidays: list[Holiday] = Field(default_factory=list)
    closures: list[Closure] = Field(default_factory=list)
    special_hours: list[SpecialHours] = Field(default_factory=list)

    @field_validator("periods")
    @classmethod
    def _bounded(cls, v: list[Period]) -> list[Period]:
        if len(v) > 2000:
            raise ValueError("more than 2000 periods; keep a few years")
        return v


def describe_error(exc: ValidationError, prefix: str = "") -> str:
    """The first pydantic error as 'key.path: what is wrong' (what config and commands print)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{prefix}{where or '(top level)'}: {msg}"


@dataclass(frozen=True)
class LibraryCalendar:
    """Day types and opening hours by date. Immutable; cheap to query for every forecast row."""

    periods: tuple[tuple[date, date, DayType], ...] = ()
    holidays: frozenset[date] = frozenset()
    default: DayType = "term"
    weekday_hours: tuple[Hours | Literal["default"] | None, ...] = ("default",) * 7
    period_hours: tuple[tuple[date, date, Hours], ...] = ()
    closures: tuple[tuple[date, date], ...] = ()
    special_hours: tuple[tuple[date, date, Hours], ...] = ()
    default_hours: Hours = DEFAULT_HOURS
    doc: CalendarDoc = field(default_factory=CalendarDoc, compare=False, repr=False)

    # -- day types ---------------------------------------------------------------------------
    def closed_all_day(self, day: date) -> bool:
        return any(a <= day <= b for a, b in self.closures)

    def day_type(self, day: date) -> DayType:
        """A holiday or closure, else the last period covering ``day``, else the default."""
        if day in self.holidays or self.closed_all_day(day):
            return "holiday"
        found: DayType = self.default
        for start, end, kind in self.periods:
            if start <= day <= end:
                found = kind
        return found

    # -- opening hours -----------------------------------------------------------------------
    def hours(self, day: date) -> Hours | None:
        """Opening hours of ``day`` (None: closed): closure, special hours, period, weekday, default."""
        if self.closed_all_day(day):
            return None
        for start, end, hours in reversed(self.special_hours):
            if start <= day <= end:
                return hours
        for start, end, hours in reversed(self.period_hours):
            if start <= day <= end:
                return hours
        weekly = self.weekday_hours[day.weekday()]
        return self.default_hours if weekly == "default" else weekly

    def is_open(self, wall: datetime) -> bool:
        """Whether the library is open at local wall time ``wall`` (hours may cross midnight)."""
        day, now = wall.date(), wall.time().replace(tzinfo=None)
        today = self.hours(day)
        if today is not None:
            opens, closes = today
            if opens < closes and opens <= now < closes:
                return True
            if opens >= closes and now >= opens:
                return True
        yesterday = self.hours(day - timedelta(days=1))
        return yesterday is not None and yesterday[0] >= yesterday[1] and now < yesterday[1]

    def with_default_hours(self, hours: Hours) -> LibraryCalendar:
        """The same calendar with the site's opening hours for weekdays it does not set."""
        return LibraryCalendar(self.periods, self.holidays, self.default, self.weekday_hours, self.period_hours,
                               self.closures, self.special_hours, hours, self.doc)

    def digest(self) -> str:
        """Short content hash of the document, so central systems can tell versions apart."""
        text = json.dumps(self.doc.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    # -- reading -----------------------------------------------------------------------------
    @classmethod
    def from_doc(cls, doc: CalendarDoc, default_hours: Hours = DEFAULT_HOURS) -> LibraryCalendar:
        weekly: list[Hours | Literal["default"] | None] = []
        for name in WEEKDAYS:
            value = doc.hours.get(name)  # type: ignore[call-overload]
            weekly.append("default" if value is None else None if value == "closed" else _hours(value))
        return cls(
            periods=tuple((p.start, p.end, p.type) for p in doc.periods),
            holidays=frozenset(h.date for h in doc.holidays),
            default=doc.default,
            weekday_hours=tuple(weekly),
            period_hours=tuple((p.start, p.end, h) for p in doc.periods if (h := _hours(p.hours)) is not None),
            closures=tuple((c.first(), c.last()) for c in doc.closures),
            special_hours=tuple((s.first(), s.last(), _hours(s.hours) or DEFAULT_HOURS) for s in doc.special_hours),
            default_hours=default_hours,
            doc=doc,
        )

    @classmethod
    def from_data(cls, data: Any, source: str = "<calendar>") -> LibraryCalendar:
        """Validate a parsed document (dict); every problem is a :class:`CalendarError` naming the key."""
        try:
            doc = CalendarDoc.model_validate(data)
        except ValidationError as exc:
            raise CalendarError(
                f"{source}: {describe_error(exc)} (dates like 2024-12-02, types term/exam/holiday, "
                'hours like ["08:00", "22:00"])'
            ) from None
        return cls.from_doc(doc)

    @classmethod
    def from_toml(cls, text: str, source: str = "<calendar>") -> LibraryCalendar:
        """Parse calendar TOML; every problem is a :class:`CalendarError` naming the key."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CalendarError(f"{source}: not valid TOML: {exc}") from None
        return cls.from_data(data, source)

    @classmethod
    def load(cls, path: str | Path) -> LibraryCalendar:
        """Read a calendar file; a missing or unreadable file is a one-line :class:`CalendarError`."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CalendarError(f"{p}: cannot read the calendar ({exc})") from None
        return cls.from_toml(text, str(p))

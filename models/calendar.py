"""The library calendar: which days are term, exam or holiday (vacation) days.

Demand in an academic library follows the calendar more than anything else, so the forecast's
features include the day type. The calendar is a small TOML file::

    default = "term"                 # day type of days no period covers (optional)

    [[periods]]                      # inclusive date ranges; a later period overrides an earlier one
    start = 2024-12-02
    end = 2024-12-20
    type = "exam"                    # "term", "exam" or "holiday"

    [[holidays]]                     # single days (public holidays, closures): always "holiday"
    date = 2024-12-26
    name = "Boxing Day"              # optional

Dates are TOML dates (or "YYYY-MM-DD" strings). With no calendar, every day is ``default``
("term"); weekends are told apart by the weekday features, not by the calendar.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.errors import CalendarError

DayType = Literal["term", "exam", "holiday"]
DAY_TYPES: tuple[DayType, ...] = ("term", "exam", "holiday")


class _Period(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: date
    end: date
    type: DayType

    @model_validator(mode="after")
    def _ordered(self) -> _Period:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}; swap them")
        return self


class _Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    date: date
    name: str = ""


class _CalendarFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: DayType = "term"
    periods: list[_Period] = Field(default_factory=list)
    holidays: list[_Holiday] = Field(default_factory=list)


@dataclass(frozen=True)
class LibraryCalendar:
    """Day types by date. Immutable; cheap to query for every forecast row."""

    periods: tuple[tuple[date, date, DayType], ...] = ()
    holidays: frozenset[date] = frozenset()
    default: DayType = "term"

    def day_type(self, day: date) -> DayType:
        """The type of ``day``: a holiday entry, else the last period covering it, else the default."""
        if day in self.holidays:
            return "holiday"
        found: DayType = self.default
        for start, end, kind in self.periods:
            if start <= day <= end:
                found = kind
        return found

    @classmethod
    def from_toml(cls, text: str, source: str = "<calendar>") -> LibraryCalendar:
        """Parse calendar TOML; every problem is a :class:`CalendarError` naming the key."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CalendarError(f"{source}: not valid TOML: {exc}") from None
        try:
            doc = _CalendarFile.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise CalendarError(
                f"{source}: {where}: {msg} (dates like 2024-12-02, types term/exam/holiday)"
            ) from None
        return cls(
            periods=tuple((p.start, p.end, p.type) for p in doc.periods),
            holidays=frozenset(h.date for h in doc.holidays),
            default=doc.default,
        )

    @classmethod
    def load(cls, path: str | Path) -> LibraryCalendar:
        """Read a calendar file; a missing or unreadable file is a one-line :class:`CalendarError`."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CalendarError(f"{p}: cannot read the calendar ({exc})") from None
        return cls.from_toml(text, str(p))

"""The running gateway's site calendar: from the config, or as a central system last set it.

The config's ``[calendar]`` is where a site starts; a central system that owns the library's
calendar sends ``set_calendar`` instead of editing every gateway's file. The pushed calendar is
kept in ``<state_dir>/calendar.json`` (written atomically) and wins over the config's until a
``set_calendar`` with ``"calendar": null`` hands control back to the file. The rules' ``day_type``,
the controller's opening hours and the forecast's features all ask the same
:class:`CalendarBook`, so a new calendar applies everywhere at the next decision, and it is
published retained on ``calendar`` (docs/mqtt.md) so central systems see what each floor uses.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from drivers.errors import ConfigError
from edge_agent.config import SiteConfig
from edge_agent.forecast_config import site_calendar
from firmware_bridge.registry import atomic_write
from models.calendar import CalendarDoc, LibraryCalendar, describe_error

FILE_NAME = "calendar.json"
Source = Literal["config", "command"]


class CalendarBook:
    """The calendar in force and where it came from; swapped atomically by :meth:`set`."""

    def __init__(self, cfg: SiteConfig, state_dir: Path) -> None:
        self.cfg = cfg
        self.path = state_dir / FILE_NAME
        self._lock = threading.Lock()
        self.problem = ""
        pushed = self._read_pushed()
        self.source: Source = "command" if pushed is not None else "config"
        self.calendar: LibraryCalendar = site_calendar(cfg, pushed)

    def _read_pushed(self) -> CalendarDoc | None:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.problem = f"{self.path}: unreadable, using the config's calendar ({exc})"
            return None
        try:
            return CalendarDoc.model_validate_json(raw)
        except ValidationError as exc:
            self.problem = f"{self.path}: {describe_error(exc)}; using the config's calendar"
            return None

    # -- what the floor asks -----------------------------------------------------------------
    def day_type_at(self, wall: datetime) -> str:
        return self.calendar.day_type(wall.date())

    def is_open(self, wall: datetime) -> bool:
        return self.calendar.is_open(wall.replace(tzinfo=None))

    # -- changes -----------------------------------------------------------------------------
    def set(self, doc: CalendarDoc | None) -> LibraryCalendar:
        """Use ``doc`` from now on and keep it across restarts; None returns to the config's calendar."""
        with self._lock:
            if doc is None:
                self.path.unlink(missing_ok=True)
                self.source = "config"
            else:
                atomic_write(self.path, doc.model_dump_json().encode())
                self.source = "command"
            self.calendar = site_calendar(self.cfg, doc)
            return self.calendar

    def describe(self, today: date) -> dict[str, Any]:
        """What the retained ``calendar`` topic carries (besides the envelope)."""
        cal = self.calendar
        hours = cal.hours(today)
        return {
            "source": self.source,
            "digest": cal.digest(),
            "today": today.isoformat(),
            "day_type": cal.day_type(today),
            "hours": None if hours is None else [hours[0].strftime("%H:%M"), hours[1].strftime("%H:%M")],
            "calendar": cal.doc.model_dump(mode="json"),
        }


def parse_calendar_args(data: Any) -> CalendarDoc:
    """Validate a calendar document from a command; ConfigError names the key."""
    try:
        return CalendarDoc.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, "args.calendar.")) from None


def payload_json(book: CalendarBook, today: date) -> str:
    return json.dumps(book.describe(today), sort_keys=True)

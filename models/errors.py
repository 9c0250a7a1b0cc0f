"""Errors of the seat-demand model, all under :class:`drivers.errors.ModelError`.

::

    ModelError                      a model that cannot be loaded, checked or run
    ├── HistoryError(ValueError)    an occupancy history CSV that cannot be read (file:line: why)
    └── CalendarError(ValueError)   a calendar TOML that cannot be read
"""

from __future__ import annotations

from drivers.errors import ModelError


class HistoryError(ModelError, ValueError):
    """A history file is malformed; the message names the file and line and says what to write."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class CalendarError(ModelError, ValueError):
    """A calendar file is malformed; the message names the key and what to write instead."""


__all__ = ["CalendarError", "HistoryError", "ModelError"]

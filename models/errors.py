"""Errors of the seat-demand model, all under :class:`drivers.errors.ModelError`.

::

    ModelError                      a model that cannot be loaded, checked or run
    ├── HistoryError(ValueError)    an occupancy history CSV that cannot be read (file:line: why)
    ├── CalendarError(ValueError)   a calendar TOML that cannot be read
    ├── HistoryStoreError(OSError)  the gateway's durable zone history cannot be opened, read or written
    └── FederationError             federated training refused or failed (budget, privacy, server)
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


class HistoryStoreError(ModelError, OSError):
    """The durable zone history (``history.sqlite``) cannot be used; the message names the file."""


class FederationError(ModelError):
    """A federated round cannot run: the privacy budget is spent, the extra is missing, the server refused."""


__all__ = ["CalendarError", "FederationError", "HistoryError", "HistoryStoreError", "ModelError"]

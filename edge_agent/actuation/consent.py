"""The consent store: which tag pseudonyms consented to what, until when, and their preferences.

Privacy by default: a patron's desk height and lamp level exist on the gateway only while their
tag pseudonym has consent on record, each under its own scope, and never leave it (no MQTT field
carries them). Withdrawal deletes the whole record at once, not a flag; an expired consent is
deleted the first time the store looks at it.

**Schema** (file ``<state_dir>/consent.json``, TinyDB table ``consents``, one document per
pseudonym; times are wall seconds since the UNIX epoch)::

    {"pseudonym":      "9f2c41aa0b1c2d3e",  # keyed hash of the tag id (edge_agent.sensing.tags); never the raw id
     "scopes":         ["desk_preferences", "lamp_preferences"],  # a non-empty subset of SCOPES
     "granted_at":     1741680000.0,        # the latest grant or renewal
     "expires_at":     1773216000.0,        # granted_at + valid_months calendar months
     "receipt":        "c-5f3a9e21b7d04c6a",  # the receipt of the latest grant (random, not derived from the tag)
     "desk_height_mm": 740,                 # null; only ever set under "desk_preferences"
     "lamp_level":     0.4,                 # null; only ever set under "lamp_preferences"
     "updated_at":     1741680000.0}        # last change of any field

A renewal (a new grant) sets the scopes it names, moves ``expires_at`` and issues a new receipt;
values of a scope no longer granted are deleted with it. Nothing else is kept: no history, no
tombstone of a withdrawal (its receipt is returned to the caller, not stored).

The file is written through :class:`AtomicJSONStorage` (write a temporary file, fsync, rename,
fsync the directory), so a power cut mid-write leaves either the old or the new document. The
methods do blocking file I/O; from the event loop call them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from drivers.errors import EdgeError
from edge_agent.storage import AtomicJSONStorage
from rules.state import Preference

log = logging.getLogger(__name__)

SCOPES = ("desk_preferences", "lamp_preferences")
DEFAULT_VALID_MONTHS = 12
PSEUDONYM = re.compile(r"^[A-Za-z0-9_.:-]{4,64}$")
HEIGHT_MM = (550, 1350)


class ConsentRequiredError(EdgeError, PermissionError):
    """Preferences were offered for a tag, or a scope, without consent on record."""


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One pseudonym's consent and the preferences it covers."""

    pseudonym: str
    scopes: tuple[str, ...]
    granted_at: float
    expires_at: float
    receipt: str
    desk_height_mm: int | None
    lamp_level: float | None
    updated_at: float

    def preference(self) -> Preference:
        """What the rules may use: each value only under its own scope."""
        return Preference(self.desk_height_mm if "desk_preferences" in self.scopes else None,
                          self.lamp_level if "lamp_preferences" in self.scopes else None)

    def receipt_doc(self) -> dict[str, Any]:
        """What the patron system gets back: the receipt, never the pseudonym."""
        return {"receipt": self.receipt, "scopes": list(self.scopes), "granted_at": _iso(self.granted_at),
                "expires_at": _iso(self.expires_at)}


def add_months(t: float, months: int) -> float:
    """``t`` moved by calendar months in UTC (31 March + 1 month is 30 April, 29 Feb + 12 is 28 Feb)."""
    d = datetime.fromtimestamp(t, UTC)
    month0 = d.month - 1 + months
    year, month = d.year + month0 // 12, month0 % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return d.replace(year=year, month=month, day=day).timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ConsentStore:
    """Consent records by tag pseudonym, on disk (see the module docstring for the schema)."""

    def __init__(self, path: str | Path, *, wall: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._db = TinyDB(self.path, storage=AtomicJSONStorage)
        self._table = self._db.table("consents")
        self._wall = wall

    def close(self) -> None:
        self._db.close()

    # -- consent ---------------------------------------------------------------------------------
    def grant(self, pseudonym: str, scopes: Iterable[str], valid_months: int = DEFAULT_VALID_MONTHS) -> ConsentRecord:
        """Record (or renew) consent for ``scopes``; values of scopes no longer granted are deleted."""
        _check(pseudonym)
        chosen = tuple(s for s in SCOPES if s in set(scopes))
        unknown = set(scopes) - set(SCOPES)
        if not chosen or unknown:
            raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}"
                             + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""))
        if not 1 <= valid_months <= 36:
            raise ValueError(f"valid_months {valid_months} is outside 1..36; the default is {DEFAULT_VALID_MONTHS}")
        now = self._wall()
        before = self._doc(pseudonym)
        doc = {
            "pseudonym": pseudonym, "scopes": list(chosen), "granted_at": now,
            "expires_at": add_months(now, valid_months), "receipt": f"c-{secrets.token_hex(8)}",
            "desk_height_mm": before.get("desk_height_mm") if before and "desk_preferences" in chosen else None,
            "lamp_level": before.get("lamp_level") if before and "lamp_preferences" in chosen else None,
            "updated_at": now,
        }
        self._table.upsert(doc, Query().pseudonym == pseudonym)
        return _record(doc)

    def withdraw(self, pseudonym: str) -> bool:
        """Delete everything stored for the pseudonym; True if there was consent on record."""
        _check(pseudonym)
        return bool(self._table.remove(Query().pseudonym == pseudonym))

    def get(self, pseudonym: str) -> ConsentRecord | None:
        """The live record (an expired one is deleted now and is None)."""
        doc = self._doc(pseudonym)
        return None if doc is None else _record(doc)

    # -- preferences -----------------------------------------------------------------------------
    def set_preferences(self, pseudonym: str, height_mm: int | None = None, lamp: float | None = None) -> ConsentRecord:
        """Store a consenting tag's preferences (None leaves a value as it is), each under its scope."""
        _check(pseudonym)
        if height_mm is not None and not HEIGHT_MM[0] <= height_mm <= HEIGHT_MM[1]:
            raise ValueError(f"desk height {height_mm} mm is outside {HEIGHT_MM[0]}..{HEIGHT_MM[1]}; e.g. 740")
        if lamp is not None and not 0.0 <= lamp <= 1.0:
            raise ValueError(f"lamp level {lamp} is outside 0..1; e.g. 0.6")
        record = self.get(pseudonym)
        if record is None:
            raise ConsentRequiredError("no consent on record for this subject; preferences are not stored")
        missing = [scope for scope, value in (("desk_preferences", height_mm), ("lamp_preferences", lamp))
                   if value is not None and scope not in record.scopes]
        if missing:
            raise ConsentRequiredError(f"consent does not cover {', '.join(missing)}; nothing was stored "
                                       "(send consent_set with that scope first)")
        changes: dict[str, Any] = {"updated_at": self._wall()}
        if height_mm is not None:
            changes["desk_height_mm"] = int(height_mm)
        if lamp is not None:
            changes["lamp_level"] = float(lamp)
        self._table.update(changes, Query().pseudonym == pseudonym)
        return _record({**(self._doc(pseudonym) or {}), **changes})

    # -- what the floor uses ---------------------------------------------------------------------
    def live(self) -> list[ConsentRecord]:
        """Every unexpired record (expired ones are deleted on the way)."""
        self.purge_expired()
        return [_record(d) for d in self._table.all()]

    def consented(self) -> set[str]:
        return {r.pseudonym for r in self.live()}

    def preferences(self) -> dict[str, Preference]:
        """Consenting pseudonyms with at least one value under its scope: ``FloorState.preferences``."""
        out: dict[str, Preference] = {}
        for r in self.live():
            pref = r.preference()
            if pref.desk_height_mm is not None or pref.lamp_level is not None:
                out[r.pseudonym] = pref
        return out

    def next_expiry(self) -> float | None:
        """When the earliest live consent lapses (wall seconds), if any."""
        return min((r.expires_at for r in self.live()), default=None)

    def purge_expired(self) -> int:
        """Delete every lapsed consent with its preferences; returns how many went."""
        now = self._wall()
        gone = self._table.remove(Query().expires_at <= now)
        return len(gone)

    def _doc(self, pseudonym: str) -> dict[str, Any] | None:
        doc = self._table.get(Query().pseudonym == pseudonym)
        if doc is None or isinstance(doc, list):
            return None
        if float(doc.get("expires_at", 0.0)) <= self._wall():
            self._table.remove(Query().pseudonym == pseudonym)
            return None
        return dict(doc)


def drop_legacy_registry(state_dir: Path) -> int:
    """Delete the pre-scope preference file: its consents had no scopes to honour, so none carry over.

    Returns how many records went; the patron system must send ``consent_set`` again for them.
    """
    old = state_dir / "preferences.json"
    if not old.exists():
        return 0
    try:
        count = len(json.loads(old.read_text() or "{}").get("preferences", {}))
    except (OSError, ValueError):
        count = 0
    old.unlink(missing_ok=True)
    if count:
        log.warning("%d consent record(s) without scopes were deleted; they need consent_set again", count)
    return count


def _check(pseudonym: str) -> None:
    if not PSEUDONYM.match(pseudonym):
        raise ValueError(f"tag pseudonym {pseudonym!r} is not valid; use 4-64 letters, digits, '_', '.', ':' or '-'")


def _record(doc: dict[str, Any]) -> ConsentRecord:
    return ConsentRecord(
        pseudonym=str(doc["pseudonym"]), scopes=tuple(doc.get("scopes", ())),
        granted_at=float(doc.get("granted_at", 0.0)), expires_at=float(doc.get("expires_at", 0.0)),
        receipt=str(doc.get("receipt", "")), desk_height_mm=doc.get("desk_height_mm"),
        lamp_level=doc.get("lamp_level"), updated_at=float(doc.get("updated_at", 0.0)),
    )

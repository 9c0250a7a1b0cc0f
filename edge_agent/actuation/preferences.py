"""Consent and personal desk preferences, kept in a small TinyDB file on the gateway.

Privacy by default: a patron's preferred desk height and lamp level exist only while their tag
pseudonym has consent on record. Withdrawing consent deletes the whole record at once, not just
a flag. Preferences never leave the gateway (no MQTT field carries them).

The file is written through :class:`AtomicJSONStorage` (write a temporary file, fsync, rename,
fsync the directory), so a power cut mid-write leaves either the old or the new document, never
a truncated one: an SD card on a Pi loses power more often than a server does.

The methods do blocking file I/O; from the event loop call them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from drivers.errors import EdgeError
from edge_agent.storage import AtomicJSONStorage
from rules.state import Preference

TAG = re.compile(r"^[A-Za-z0-9_.:-]{4,64}$")
HEIGHT_MM = (550, 1350)


class ConsentRequiredError(EdgeError, PermissionError):
    """Preferences were offered for a tag whose holder has not consented."""


@dataclass(frozen=True, slots=True)
class PreferenceRecord:
    tag: str
    consented: bool
    desk_height_mm: int | None
    lamp_level: float | None
    updated_at: float  # wall seconds


class PreferenceRegistry:
    """Consent flags and preferences by tag pseudonym, on disk."""

    def __init__(self, path: str | Path, *, wall: Callable[[], float] = time.time) -> None:
        self._db = TinyDB(Path(path), storage=AtomicJSONStorage)
        self._table = self._db.table("preferences")
        self._wall = wall

    def close(self) -> None:
        self._db.close()

    def set_consent(self, tag: str, consented: bool) -> None:
        """Record consent; withdrawing it deletes everything stored for the tag."""
        _check_tag(tag)
        q = Query()
        if not consented:
            self._table.remove(q.tag == tag)
            return
        if self._table.get(q.tag == tag) is None:
            self._table.insert({"tag": tag, "consented": True, "desk_height_mm": None, "lamp_level": None,
                                "updated_at": self._wall()})
        else:
            self._table.update({"consented": True, "updated_at": self._wall()}, q.tag == tag)

    def set_preferences(self, tag: str, height_mm: int | None = None, lamp: float | None = None) -> None:
        """Store a consenting tag's preferences (None leaves a value as it is)."""
        _check_tag(tag)
        if height_mm is not None and not HEIGHT_MM[0] <= height_mm <= HEIGHT_MM[1]:
            raise ValueError(f"desk height {height_mm} mm is outside {HEIGHT_MM[0]}..{HEIGHT_MM[1]}; e.g. 740")
        if lamp is not None and not 0.0 <= lamp <= 1.0:
            raise ValueError(f"lamp level {lamp} is outside 0..1; e.g. 0.6")
        record = self.get(tag)
        if record is None or not record.consented:
            raise ConsentRequiredError(f"tag {tag!r} has no consent on record; preferences are not stored")
        changes: dict[str, Any] = {"updated_at": self._wall()}
        if height_mm is not None:
            changes["desk_height_mm"] = int(height_mm)
        if lamp is not None:
            changes["lamp_level"] = float(lamp)
        self._table.update(changes, Query().tag == tag)

    def get(self, tag: str) -> PreferenceRecord | None:
        doc = self._table.get(Query().tag == tag)
        return None if doc is None else _record(doc)

    def consented_tags(self) -> set[str]:
        return {str(d["tag"]) for d in self._table.all() if d.get("consented")}

    def preferences(self) -> dict[str, Preference]:
        """Consenting tags with at least one preference: what goes into ``FloorState.preferences``."""
        out: dict[str, Preference] = {}
        for doc in self._table.all():
            r = _record(doc)
            if r.consented and (r.desk_height_mm is not None or r.lamp_level is not None):
                out[r.tag] = Preference(r.desk_height_mm, r.lamp_level)
        return out


def _check_tag(tag: str) -> None:
    if not TAG.match(tag):
        raise ValueError(f"tag pseudonym {tag!r} is not valid; use 4-64 letters, digits, '_', '.', ':' or '-'")


def _record(doc: Any) -> PreferenceRecord:
    return PreferenceRecord(
        tag=str(doc["tag"]), consented=bool(doc.get("consented")), desk_height_mm=doc.get("desk_height_mm"),
        lamp_level=doc.get("lamp_level"), updated_at=float(doc.get("updated_at", 0.0)),
    )

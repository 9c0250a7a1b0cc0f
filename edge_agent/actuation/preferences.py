"""Preferences that follow a patron: consent commands applied on this gateway, preferences to the rules.

The library's patron system names a patron by the id of their tag (``subject``; docs/mqtt.md):
the gateway turns it into its own pseudonym at once (:class:`edge_agent.sensing.tags.TagDirectory`,
keyed with this gateway's salt), so the same command sent to every floor's gateway yields a
different, unlinkable pseudonym on each. What is stored lives in the consent store
(:mod:`edge_agent.actuation.consent`); withdrawal deletes the record, the tag's pseudonym
mapping and its track on the floor at once. Results carry receipts and field names, never the
values of preferences nor the pseudonym: they travel upstream.

:meth:`PatronPreferences.__call__` is what the controller asks before every decision: the
consenting tags' preferences, scope by scope, read from disk only after a change and again
when the earliest consent lapses.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

from edge_agent.actuation.consent import DEFAULT_VALID_MONTHS, ConsentStore
from edge_agent.sensing.floor import FloorModel
from edge_agent.sensing.tags import TagDirectory
from rules.state import Preference


class PatronPreferences:
    """Consent and preferences by tag id, on this gateway; the rules' view of them."""

    def __init__(self, store: ConsentStore, tags: TagDirectory, floor: FloorModel,
                 wall: Callable[[], float]) -> None:
        self.store = store
        self.tags = tags
        self.floor = floor
        self.wall = wall
        self._prefs: dict[str, Preference] | None = None
        self._valid_until = float("inf")
        self._writing = asyncio.Lock()  # one command at a time; the store is not safe across threads

    def invalidate(self) -> None:
        self._prefs = None

    def __call__(self) -> dict[str, Preference]:
        if self._writing.locked():
            return self._prefs or {}  # a command is writing in a worker thread: read after it, not during
        if self._prefs is None or self.wall() >= self._valid_until:
            self._prefs = self.store.preferences()
            self.floor.set_consented_tags(self.store.consented())
            nxt = self.store.next_expiry()
            self._valid_until = nxt if nxt is not None else float("inf")
        return self._prefs

    async def grant(self, subject: str, scopes: list[str], valid_months: int = DEFAULT_VALID_MONTHS) -> dict[str, Any]:
        """consent_set: record or renew; the result is the receipt."""
        async with self._writing:
            record = await asyncio.to_thread(self.store.grant, self.tags.name_of(subject), scopes, valid_months)
        self.invalidate()
        return {"consented": True, **record.receipt_doc()}

    async def withdraw(self, subject: str) -> dict[str, Any]:
        """consent_withdraw: the record, the pseudonym mapping and the tag's track, all at once."""
        _, had = await self.erase(subject)
        return {"consented": False, "had_consent": had, "preferences_deleted": True, "tag_forgotten": True,
                "receipt": f"w-{secrets.token_hex(8)}"}

    async def erase(self, subject: str) -> tuple[str, bool]:
        """Everything held about the subject here, at once: the consent record with its preferences, the
        pseudonym mapping and the tag's track. Returns the pseudonym and whether consent was on record."""
        pseudonym = self.tags.forget(subject)
        self.floor.forget_tag(pseudonym)
        async with self._writing:
            had = await asyncio.to_thread(self.store.withdraw, pseudonym)
        self.invalidate()
        return pseudonym, had

    async def purge_expired(self) -> int:
        """Lapsed consents and their preferences (the retention sweep); returns how many went."""
        async with self._writing:
            gone = await asyncio.to_thread(self.store.purge_expired)
        if gone:
            self.invalidate()
        return gone

    async def set_preferences(self, subject: str, desk_height_mm: int | None,
                              lamp_level: float | None) -> dict[str, Any]:
        """preferences_set: stored under their scopes (refused for a scope without consent)."""
        async with self._writing:
            record = await asyncio.to_thread(self.store.set_preferences, self.tags.name_of(subject),
                                             desk_height_mm, lamp_level)
        self.invalidate()
        stored = [name for name, value in (("desk_height_mm", desk_height_mm), ("lamp_level", lamp_level))
                  if value is not None]
        return {"stored": stored, "receipt": record.receipt}

"""Seat availability per zone: what an arriving patron may know, and nothing about anyone.

The gateway knows every seat's status; a patron at the entrance needs far less: how many seats
are free in each zone, which ones, and how many will be free soon. :class:`FloorAvailability`
derives that from each floor state the decide loop makes, keeps the newest per zone, and says
which zones changed, so the retained ``zone/{zone}/availability`` message (docs/mqtt.md), the
floor display page and the simulated patrons all read the same thing.

*Ready soon*: a ghost seat (its patron has been gone past the limit; staff have been sent to
clear it) or an away seat whose hold ends within ``ready_soon_s`` (its ghost limit, or the end of
a "back soon" break): seats that are likely free within minutes. Occupied seats are never ready
soon: nobody can tell when a reader will leave.

No personal data: seat ids and counts only; never who sits where, since when, or a tag.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.state import FloorState, SeatStatus

#: Away seats whose hold ends within this many seconds count as ready soon (the default).
READY_SOON_S = 600.0


@dataclass(frozen=True, slots=True)
class ZoneAvailability:
    """One zone's availability; :meth:`as_message` is the payload of ``zone/{zone}/availability``."""

    zone: str
    name: str
    seats_total: int
    free: int
    ready_soon: int
    occupied: int
    away: int
    ghost: int
    unknown: int
    free_seat_ids: tuple[str, ...]
    ready_soon_ids: tuple[str, ...]
    changed_at: float = field(default=0.0, compare=False)  # wall seconds when the content last changed

    def as_message(self) -> dict[str, Any]:
        """The message fields (without the envelope): counts and seat ids, nothing personal."""
        return {"zone": self.zone, "name": self.name, "seats_total": self.seats_total, "free": self.free,
                "ready_soon": self.ready_soon, "occupied": self.occupied, "away": self.away, "ghost": self.ghost,
                "unknown": self.unknown, "free_seat_ids": list(self.free_seat_ids),
                "ready_soon_ids": list(self.ready_soon_ids)}

    def same_as(self, other: ZoneAvailability | None) -> bool:
        return other is not None and self.as_message() == other.as_message()


class FloorAvailability:
    """The floor's availability, kept current from the decide loop's floor states.

    ``snapshot()`` is the accessor for everything that shows availability (the MQTT message, the
    display page, the simulator's patrons): ``{zone id: ZoneAvailability}`` as of the latest floor
    state, the same content the retained message carries.
    """

    def __init__(self, zone_names: Mapping[str, str] | None = None, *, ready_soon_s: float = READY_SOON_S) -> None:
        self.zone_names = dict(zone_names or {})
        self.ready_soon_s = ready_soon_s
        self._zones: dict[str, ZoneAvailability] = {}
        # Each zone's seat views at its last count: a zone whose views are the same objects (the
        # floor snapshot keeps an unchanged seat's view) and holds no away seat (whose readiness
        # moves with the clock) cannot have changed, and is not counted again on every pass.
        self._counted: dict[str, list[Any]] = {}
        self.updated_at: float | None = None  # wall seconds of the floor state it was taken from

    def snapshot(self) -> dict[str, ZoneAvailability]:
        """Every zone's availability as of the latest floor state (empty before the first)."""
        return dict(self._zones)

    def update(self, state: FloorState, hold_ends: Mapping[str, float], wall: float) -> list[ZoneAvailability]:
        """Take a new floor state; returns the zones whose availability changed (to publish).

        ``hold_ends``: for away seats, the monotonic time their hold ends (the ghost limit, or the
        end of a "back soon" break); ``wall``: the wall time of ``state``.
        """
        by_zone: dict[str, list[Any]] = {z: [] for z in state.zones}
        for seat in state.seats.values():
            by_zone.setdefault(seat.zone, []).append(seat)
        changed: list[ZoneAvailability] = []
        for zone_id, seats in by_zone.items():
            before = self._counted.get(zone_id)
            if (before is not None and len(before) == len(seats) and all(map(operator.is_, before, seats))
                    and not any(s.status is SeatStatus.AWAY for s in seats)):
                continue
            self._counted[zone_id] = list(seats)
            seats.sort(key=lambda s: s.id)
            count = {st: sum(1 for s in seats if s.status is st) for st in SeatStatus}
            horizon = state.t + self.ready_soon_s
            soon = [s.id for s in seats if s.status is SeatStatus.GHOST
                    or (s.status is SeatStatus.AWAY and hold_ends.get(s.id, float("inf")) <= horizon)]
            zone = ZoneAvailability(
                zone=zone_id, name=self.zone_names.get(zone_id, "") or zone_id, seats_total=len(seats),
                free=count[SeatStatus.FREE], ready_soon=len(soon), occupied=count[SeatStatus.OCCUPIED],
                away=count[SeatStatus.AWAY], ghost=count[SeatStatus.GHOST], unknown=count[SeatStatus.UNKNOWN],
                free_seat_ids=tuple(s.id for s in seats if s.status is SeatStatus.FREE), ready_soon_ids=tuple(soon),
                changed_at=wall)
            old = self._zones.get(zone_id)
            if zone.same_as(old):
                continue
            self._zones[zone_id] = zone
            changed.append(zone)
        self.updated_at = wall
        return changed

"""Ghost seats sent to staff, and how long each took to clear.

A seat turns ghost when its patron has been away past the limit with belongings left behind (or
a bag was dropped to claim it). The gateway cannot clear a ghost seat: someone must take the
belongings to lost property. So each new ghost seat is an event naming the seat and its zone
(``ghost_seat``; the seat's indicator blinks through the ``seat-indicator`` rule), and the seat
is *cleared* when staff release it (the CLI, the MQTT ``release_seat`` command or the desk
button held 3 s), when its patron comes back, or when the desk is found empty.

:class:`GhostDispatch` keeps the open ghosts and the time from ghost to cleared of the recent
ones (``ghost_to_release_s``, the library case's "dispatch response"), for the status, the health
message and the events.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from rules.state import FloorState, SeatStatus

KEEP = 500  # recent clearances kept for the figures


@dataclass(frozen=True, slots=True)
class Ghost:
    seat: str
    zone: str
    since: float  # monotonic: when the seat turned ghost


class GhostDispatch:
    """Open ghost seats and the recent times from ghost to cleared (see module docstring)."""

    def __init__(self, keep: int = KEEP) -> None:
        self.open: dict[str, Ghost] = {}
        self.durations: deque[float] = deque(maxlen=keep)
        self.cleared = 0
        self.by: dict[str, int] = {}

    def update(self, state: FloorState) -> tuple[list[Ghost], list[tuple[Ghost, str, float]]]:
        """New ghosts in ``state`` and ghosts that ended otherwise than by a release (patron back:
        ``returned``; belongings gone from the desk: ``desk_cleared``), with their durations."""
        new: list[Ghost] = []
        ended: list[tuple[Ghost, str, float]] = []
        for seat in state.seats.values():
            if seat.status is SeatStatus.GHOST and seat.id not in self.open:
                ghost = self.open[seat.id] = Ghost(seat.id, seat.zone, seat.since)
                new.append(ghost)
        for seat_id in [s for s in self.open if state.seats.get(s) is None
                        or state.seats[s].status is not SeatStatus.GHOST]:
            view = state.seats.get(seat_id)
            how = "returned" if view is not None and view.status is SeatStatus.OCCUPIED else "desk_cleared"
            at = view.since if view is not None else state.t
            ghost, duration = self._close(seat_id, at, how)
            ended.append((ghost, how, duration))
        return new, ended

    def release(self, seat_id: str, t: float, how: str) -> float | None:
        """A release by staff (``how``: cli, mqtt, desk_button, rule); the ghost's duration, or None
        when the seat was not ghost."""
        if seat_id not in self.open:
            return None
        return self._close(seat_id, t, how)[1]

    def _close(self, seat_id: str, t: float, how: str) -> tuple[Ghost, float]:
        ghost = self.open.pop(seat_id)
        duration = max(0.0, t - ghost.since)
        self.durations.append(duration)
        self.cleared += 1
        self.by[how] = self.by.get(how, 0) + 1
        return ghost, duration

    def stats(self) -> dict[str, Any]:
        """For status and health: ghosts open now, cleared so far (by how), and the recent times
        from ghost to cleared (last, median, 90th percentile; seconds)."""
        recent = list(self.durations)
        p50 = p90 = None
        if recent:
            p50 = round(statistics.median(recent), 1)
            p90 = round(statistics.quantiles(recent, n=10, method="inclusive")[-1], 1) if len(recent) > 1 else p50
        return {"open": len(self.open), "cleared": self.cleared, "cleared_by": dict(self.by),
                "ghost_to_release_s": {"last": round(recent[-1], 1) if recent else None, "p50": p50, "p90": p90}}

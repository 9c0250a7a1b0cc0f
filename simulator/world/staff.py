"""The library's floor staff on the gateway's floor: they answer the gateway's ghost-seat dispatches.

When the gateway reports a seat ghost (its ``ghost_seat`` event, which the runtime hands to
:meth:`Staff.dispatch`), a member of staff is at the seat ``[staff] response_s`` later (the
library case reports 27 s from dispatch to response) and acts on what they find:

- belongings and nobody there: the library's rule applies, the things go to lost-and-found and
  the seat is free;
- someone sitting there: nothing to do (the gateway sees them and corrects itself).

Then, if the desk's indicator still shows ghost, they hold its button for 3 s, which releases the
seat on the gateway (a seat the gateway no longer shows ghost is left alone: on such a seat a
hold is a press of "back soon").

A seat cleared while its truth was still away (the gateway's ghost came before the limit, by
up to a frame when it saw the patron leave a little early, or by more when it was wrong) counts in
``staff_cleared_before_ghost``: its holder may come back to find it gone.

A seat the gateway released on its own (its indicator went from ghost to free) with belongings
still on it is cleared by the staff who see the indicator (:meth:`release_seen`). The
conventional floor has no dispatch: nobody clears a seat before closing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.world.seating import SeatFloor
    from simulator.world.world import World

RELEASE_HOLD_S = 3.0  # the desk button held this long releases the seat (docs/sensing.md)
INDICATOR_GHOST = 4  # drivers.ports.IndicatorColour.GHOST: the indicator staff look at


@dataclass
class Staff:
    """Dispatches received, and what staff found at the seats."""

    w: World
    seats: SeatFloor
    response_s: float
    pending: set[int] = field(default_factory=set)
    dispatches: int = 0
    cleared: int = 0
    nothing_there: int = 0
    someone_there: int = 0
    early: list[float] = field(default_factory=list)  # seconds before its limit a cleared seat would have been ghost

    def dispatch(self, seat_id: str, t: float | None = None) -> None:
        """The gateway reports ``seat_id`` ghost: someone goes (a second report on the way is one trip)."""
        seat = self.w.plan.seat_ids.index(seat_id)
        now = self.w.clock.monotonic() if t is None else t
        self.dispatches += 1
        if seat in self.pending:
            return
        self.pending.add(seat)
        self.w.schedule(now + self.response_s, partial(self._at_seat), seat)

    def _at_seat(self, t: float, seat: int) -> None:
        self.pending.discard(seat)
        pid = int(self.seats.holder[seat])
        p = self.seats.patrons[pid] if pid >= 0 else None
        if p is not None and p.seated:
            self.someone_there += 1
            return
        if p is not None and p.away_since is not None:
            if self.seats.status(seat, t) == "away":  # the gateway's ghost came before the truth's
                self.early.append(p.away_since + self.seats.limit(p) - t)
            self.seats.clear(t, seat, "staff")
            self.cleared += 1
        else:
            self.nothing_there += 1
        desk = self.w.lamp_ids[seat]
        if desk is not None and self.w.binding.seat_indicator(desk) == INDICATOR_GHOST:
            self.w.binding.hold_button(desk, RELEASE_HOLD_S)

    def release_seen(self, t: float, seat: int) -> None:
        """The gateway released a ghost seat itself: staff who see it clear what was left."""
        self.seats.clear(t, seat, "staff")
        self.cleared += 1

    def report(self) -> dict[str, object]:
        early = sorted(self.early)
        return {"staff_dispatches": self.dispatches, "staff_cleared": self.cleared,
                "staff_found_nothing": self.nothing_there, "staff_found_someone": self.someone_there,
                "staff_cleared_before_ghost": len(early),
                "staff_cleared_before_ghost_s": {"p50": round(early[len(early) // 2], 1) if early else None,
                                                 "max": round(early[-1], 1) if early else None}}

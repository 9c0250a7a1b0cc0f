"""Who holds which seat: arriving, finding a seat, claiming one, breaks, departures.

One :class:`SeatFloor` runs the seats of the gateway's floor and another those of the
conventional floor beside it (:mod:`simulator.world.baseline`): the same patrons (each floor has
its own copy of the day's plans), the same rules, the same random draws for as long as the two
floors agree (common random numbers: both choice streams start from the same seed). They differ
only where the gateway acts:

- **what patrons see**: on the gateway's floor a patron who looks at the availability display
  (``sees_availability``) goes straight to a seat it shows free; everyone else, and everyone on
  the conventional floor, walks the floor zone by zone (their own zone first, then zones of the
  same kind, then the nearest), looks round each for ``look_s``, notices each seat that looks
  free (nobody and nothing on it) with ``spot_share``, and gives up after their patience;
- **ghost seats**: on the gateway's floor staff answer its dispatch and clear the seat
  (:mod:`simulator.world.staff`); on the conventional floor belongings hold a seat until their
  owner comes back or the closing sweep.

A patron's own behaviour (stay, breaks, claim, belongings) is their plan and the same on both
floors. What the gateway's sensors notice of all this is the :class:`FloorSenses` hook
(:mod:`simulator.world.flow`); the conventional floor has none.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol

import numpy as np

from simulator.world.metrics import spread
from simulator.world.patrons import Break, Patron, choose_seat, pick_seat

if TYPE_CHECKING:
    from simulator.world.world import World

CLOSING_SPREAD_S = 900.0  # people pack up over the last quarter hour
MIN_VISIT_S = 600.0  # nobody comes to sit for less than this
WATCH_S = 30.0  # a patron waiting by the availability display looks at it again this often


class FloorSenses(Protocol):
    """What a floor's sensors notice of its patrons (on the gateway's floor: frames, PIR, tags, load cells)."""

    def walked(self, t: float, pid: int, start: tuple[float, float], end: tuple[float, float], duration: float,
               spans: list[tuple[int, float, float]], to_seat: bool) -> None: ...

    def sat(self, t: float, pid: int) -> None:
        """The patron sat down at their seat (their things are on the desk)."""

    def stood(self, t: float, pid: int) -> None:
        """The patron stood up: for a break (``away_since`` set: things stay) or to go (they take them)."""

    def left(self, t: float, pid: int) -> None:
        """The patron left the floor for good from their seat."""

    def things_changed(self, t: float, seat: int) -> None:
        """What lies on the seat changed with nobody sitting or standing up (a claim, a clearing)."""

    def back_soon(self, t: float, seat: int) -> None:
        """The patron pressed the desk's "back soon" button."""


class Unobserved:
    """The conventional floor: nothing is sensed."""

    def walked(self, t: float, pid: int, start: tuple[float, float], end: tuple[float, float], duration: float,
               spans: list[tuple[int, float, float]], to_seat: bool) -> None:
        pass

    def sat(self, t: float, pid: int) -> None:
        pass

    def stood(self, t: float, pid: int) -> None:
        pass

    def left(self, t: float, pid: int) -> None:
        pass

    def things_changed(self, t: float, seat: int) -> None:
        pass

    def back_soon(self, t: float, seat: int) -> None:
        pass


class AvailabilitySource(Protocol):
    """What the gateway shows patrons (the availability message, the floor page)."""

    def free_seat_ids(self) -> Collection[str] | None:
        """Seats shown free now; None while nothing is shown (no gateway running: the display is dark)."""


@dataclass
class SeatBook:
    """One floor's seat figures (the report's ``seat_*``, ``turned_away``, ghost keys; docs/simulator.md)."""

    arrivals: int = 0
    seated: int = 0  # arrivals who took a seat (sat down, or claimed one and came back)
    turned_away: int = 0
    search_s: list[float] = field(default_factory=list)
    occupied_seat_minutes: int = 0
    open_seat_minutes: int = 0
    ghost_seat_minutes: int = 0
    away_seat_minutes: int = 0
    ghost_ends: list[tuple[float, str]] = field(default_factory=list)  # (s from ghost to the end, how)
    abandoned: int = 0
    claims: int = 0
    cleared: int = 0  # belongings staff took to lost-and-found before closing
    displaced: int = 0  # came back to a cleared seat and found no other

    def as_report(self, prefix: str = "") -> dict[str, object]:
        ghost = [s for s, _ in self.ghost_ends]
        ends = {how: sum(1 for _, h in self.ghost_ends if h == how) for how in ("staff", "holder", "closing")}
        return {
            f"{prefix}seat_utilisation": (round(self.occupied_seat_minutes / self.open_seat_minutes, 4)
                                          if self.open_seat_minutes else 0.0),
            f"{prefix}seat_demand_met": round(self.seated / self.arrivals, 4) if self.arrivals else None,
            f"{prefix}turned_away": self.turned_away,
            f"{prefix}seat_search_s": spread(self.search_s),
            f"{prefix}ghost_seat_minutes": self.ghost_seat_minutes,
            f"{prefix}away_seat_minutes": self.away_seat_minutes,
            f"{prefix}ghost_to_release_s": {**spread(ghost), "ended_by": ends},
            f"{prefix}seat_claims": self.claims,
            f"{prefix}cleared_belongings": self.cleared,
            f"{prefix}displaced_patrons": self.displaced,
        }


@dataclass
class Search:
    """A patron looking for a seat: the zones in the order they will look, and how far they got."""

    started: float
    order: list[int]
    step: int = 0
    counted: bool = True  # an arrival's search (its time and its failure are in the report)
    watching: bool = False  # at the entrance, watching the availability display


def seats_wanted(w: World, patrons: list[Patron]) -> dict[str, object]:
    """How many seats the day's arrivals want at once, had everyone got one: the crunch, measured.

    Every visit counts from arrival to planned departure (a claim's lecture included: its bag holds
    the seat), capped at closing; visits under ``MIN_VISIT_S`` (too late in the day) do not.
    Returns the peak, the open minutes it passes the floor's seats, and the first and last of them.
    """
    minutes = np.zeros(max(1, int((w.t_close - w.t0) // 60)), dtype=np.int64)
    for p in patrons:
        end = min(p.arrival + (p.claim_s or 0.0) + p.stay_s, w.t_close)
        if end - p.arrival >= MIN_VISIT_S:
            minutes[int((p.arrival - w.t0) // 60):int((end - w.t0) // 60)] += 1
    over = np.flatnonzero(minutes > len(w.plan.seat_ids))

    def hhmm(i: int) -> str:
        return w.wall(w.t0 + 60.0 * i).strftime("%H:%M")

    return {"peak": int(minutes.max()), "seats": len(w.plan.seat_ids), "over_capacity_minutes": len(over),
            "over_capacity_from": hhmm(int(over[0])) if len(over) else None,
            "over_capacity_to": hhmm(int(over[-1])) if len(over) else None}


class SeatFloor:
    """The seats of one floor and the patrons holding them; see the module docstring."""

    def __init__(self, w: World, patrons: list[Patron], rng: np.random.Generator, senses: FloorSenses,
                 *, gateway: bool) -> None:
        self.w, self.patrons, self.rng, self.senses = w, patrons, rng, senses
        self.gateway = gateway  # the gateway's floor: availability shown, staff dispatched
        n_seats, n_zones = len(w.plan.seat_ids), len(w.plan.zone_ids)
        self.holder = np.full(n_seats, -1, dtype=np.int64)
        self.zone_people = np.zeros(n_zones)
        self.pending_break: dict[int, Break] = {}
        self.searches: dict[int, Search] = {}
        self.availability: AvailabilitySource | None = None
        self.book = SeatBook()
        s = w.scenario.patrons
        self.speed, self.look_s, self.spot = s.walk_speed_m_s, s.look_s, s.spot_share
        self.unobserved = isinstance(senses, Unobserved)
        self._walks: dict[tuple[tuple[float, float], tuple[float, float]],
                          tuple[float, list[tuple[int, float, float]]]] = {}
        self.centroid = [(float(np.mean([x for x, _ in poly])), float(np.mean([y for _, y in poly])))
                         for poly in w.plan.zone_polygons]

    # ----- where things are -------------------------------------------------------------------
    def seat_xy(self, seat: int) -> tuple[float, float]:
        return float(self.w.plan.seat_xy[seat, 0]), float(self.w.plan.seat_xy[seat, 1])

    def status(self, seat: int, t: float) -> str:
        """free | occupied | away | ghost (a seat chosen by someone still walking to it is free).

        Away turns ghost ``sensing.ghost_after_s`` after the holder left (or dropped a bag to claim
        it), or ``sensing.break_limit_s`` after they left with a "back soon" press.
        """
        pid = int(self.holder[seat])
        if pid < 0:
            return "free"
        p = self.patrons[pid]
        if p.seated:
            return "occupied"
        if p.away_since is None:
            return "free"
        return "away" if t - p.away_since <= self.limit(p) else "ghost"

    def limit(self, p: Patron) -> float:
        """How long things may hold the seat before it is ghost: the break limit after a "back soon" press."""
        sensing = self.w.cfg.sensing
        return sensing.break_limit_s if p.pressed else sensing.ghost_after_s

    def _walk(self, t: float, pid: int, start: tuple[float, float], end: tuple[float, float], *,
              to_seat: bool) -> float:
        if self.unobserved:  # nobody watches the walk: only its length matters
            return float(np.hypot(end[0] - start[0], end[1] - start[1])) / self.speed
        key = (start, end)
        found = self._walks.get(key)
        if found is None:  # walks join a few hundred points (entrance, zone centres, seats): cache them
            found = self._walks[key] = self.w.plan.zone_crossings(start, end, self.speed)
        duration, spans = found
        self.senses.walked(t, pid, start, end, duration, spans, to_seat)
        return duration

    # ----- arriving and finding a seat ----------------------------------------------------------
    def arrive(self, t: float, pid: int) -> None:
        p, w = self.patrons[pid], self.w
        claim = p.claim_s or 0.0
        p.leave_by = min(t + claim + p.stay_s, w.t_close - float(self.rng.uniform(0.0, CLOSING_SPREAD_S)))
        if p.leave_by < t + claim + MIN_VISIT_S:
            if p.leave_by < t + MIN_VISIT_S:
                p.gone = True  # too late in the day to come and sit: not demand for a seat
                return
            p.claim_s = None  # no time for a lecture first: they sit now
            p.leave_by = min(t + p.stay_s, p.leave_by)
        self.book.arrivals += 1
        p.arrived_at = t
        self._find(t, pid, w.plan.entrance, first_zone=p.zone, counted=True)

    def _find(self, t: float, pid: int, where: tuple[float, float], *, first_zone: int, counted: bool) -> None:
        """Go to a seat the gateway shows free, or start looking round the floor."""
        p = self.patrons[pid]
        if self.gateway and self.availability is not None and p.sees_availability \
                and self.availability.free_seat_ids() is not None:
            started = p.arrived_at if counted and p.arrived_at is not None else t
            self.searches[pid] = Search(started, [first_zone], counted=counted, watching=True)
            self._watch(t, pid)
            return
        self._start_search(t, pid, where, first_zone, counted)

    def _watch(self, t: float, pid: int) -> None:
        """At the entrance with the display: go to a seat it shows free, else watch it until patience runs out."""
        p, search = self.patrons[pid], self.searches.get(pid)
        if p.gone or search is None or self.availability is None:
            return
        ids = self.availability.free_seat_ids()
        if ids is None:  # the display went dark (the daemon is down): look round instead
            del self.searches[pid]
            self._start_search(t, pid, self.w.plan.entrance, search.order[0], search.counted)
            return
        shown = set(ids)
        seat = -1
        if shown:
            seat = self._choose(p, np.array([sid in shown for sid in self.w.plan.seat_ids], dtype=bool))
        if seat >= 0:
            del self.searches[pid]
            self._go_to_shown(t, pid, self.w.plan.entrance, seat, search.counted)
        elif t + WATCH_S - search.started > p.patience_s or t + WATCH_S > p.leave_by - MIN_VISIT_S:
            del self.searches[pid]
            self._give_up(t, pid, self.w.plan.entrance, search.counted)
        else:
            self.w.schedule(t + WATCH_S, partial(self._watch), pid)

    def _choose(self, p: Patron, allowed: np.ndarray) -> int:
        w = self.w
        return choose_seat(p, self.holder, w.plan.seat_zone, w.seat_window, w.neighbours, w.zone_kind, self.rng,
                           allowed=allowed)

    def _go_to_shown(self, t: float, pid: int, where: tuple[float, float], seat: int, counted: bool) -> None:
        p = self.patrons[pid]
        if self.holder[seat] < 0:
            self._take(t, pid, seat, where, counted)
            return
        # Shown free, but someone's things are there (or someone is on the way): they find out there.
        duration = self._walk(t, pid, where, self.seat_xy(seat), to_seat=False)
        self.searches[pid] = Search(p.arrived_at if counted and p.arrived_at is not None else t,
                                    self._zone_order(int(self.w.plan.seat_zone[seat]), p), counted=counted)
        self.w.schedule(t + duration + self.look_s, partial(self._look), pid)

    def _zone_order(self, first: int, p: Patron) -> list[int]:
        kinds = self.w.zone_kind
        x0, y0 = self.centroid[first]
        rest = sorted((z for z in range(len(kinds)) if z != first),
                      key=lambda z: (kinds[z] != kinds[p.zone], np.hypot(self.centroid[z][0] - x0,
                                                                         self.centroid[z][1] - y0)))
        return [first, *rest]

    def _start_search(self, t: float, pid: int, where: tuple[float, float], first_zone: int, counted: bool) -> None:
        p = self.patrons[pid]
        started = p.arrived_at if counted and p.arrived_at is not None else t
        self.searches[pid] = Search(started, self._zone_order(first_zone, p), counted=counted)
        duration = self._walk(t, pid, where, self.centroid[first_zone], to_seat=False)
        self.w.schedule(t + duration + self.look_s, partial(self._look), pid)

    def _look(self, t: float, pid: int) -> None:
        """Looking round the zone of the search's current step: take a seat that looks free, or move on."""
        p, search = self.patrons[pid], self.searches.get(pid)
        if p.gone or search is None:
            return
        zone = search.order[search.step % len(search.order)]
        if t > p.leave_by - MIN_VISIT_S:  # no time left to sit: home
            del self.searches[pid]
            self._give_up(t, pid, self.centroid[zone], search.counted)
            return
        free = np.flatnonzero((self.holder < 0) & (self.w.plan.seat_zone == zone))
        spotted = free[self.rng.random(len(free)) < self.spot] if len(free) else free
        here = self.centroid[zone]
        if len(spotted):
            w = self.w
            seat = pick_seat(p, spotted, self.holder, w.seat_window, w.neighbours, self.rng)
            del self.searches[pid]
            self._take(t, pid, seat, here, search.counted, started=search.started)
            return
        search.step += 1
        nxt = self.centroid[search.order[search.step % len(search.order)]]
        walk = float(np.hypot(nxt[0] - here[0], nxt[1] - here[1])) / self.speed
        if t + walk + self.look_s - search.started > p.patience_s:
            del self.searches[pid]
            self._give_up(t, pid, here, search.counted)
            return
        duration = self._walk(t, pid, here, nxt, to_seat=False)
        self.w.schedule(t + duration + self.look_s, partial(self._look), pid)

    def _give_up(self, t: float, pid: int, here: tuple[float, float], counted: bool) -> None:
        p = self.patrons[pid]
        self._walk(t, pid, here, self.w.plan.entrance, to_seat=False)
        p.gone = True
        if counted:
            self.book.turned_away += 1
        else:
            self.book.displaced += 1

    def _take(self, t: float, pid: int, seat: int, where: tuple[float, float], counted: bool,
              started: float | None = None) -> None:
        """The patron has chosen ``seat`` at ``where``: it is theirs from now; they walk to it."""
        p = self.patrons[pid]
        p.seat, p.away_since = seat, None
        self.holder[seat] = pid
        duration = self._walk(t, pid, where, self.seat_xy(seat), to_seat=True)
        if counted:
            begun = started if started is not None else (p.arrived_at if p.arrived_at is not None else t)
            self.book.search_s.append(t + duration - begun)
        self.w.schedule(t + duration, partial(self._reach), pid)

    def _reach(self, t: float, pid: int) -> None:
        p = self.patrons[pid]
        if p.gone:
            return
        if p.claim_s is not None and not p.has_held:
            self._claim(t, pid)
        else:
            self.sit(t, pid)

    # ----- claims, sitting, breaks, leaving ---------------------------------------------------
    def _claim(self, t: float, pid: int) -> None:
        """A bag dropped on the seat; its owner goes (a lecture, lunch) and comes back to sit."""
        p = self.patrons[pid]
        p.has_held, p.claiming, p.away_since = True, True, t
        self.book.claims += 1
        self.senses.things_changed(t, p.seat)
        self._walk(t, pid, self.seat_xy(p.seat), self.w.plan.entrance, to_seat=False)
        assert p.claim_s is not None
        self.w.schedule(t + p.claim_s, partial(self.come_back), pid)

    def sit(self, t: float, pid: int) -> None:
        p = self.patrons[pid]
        if p.gone:
            return
        if p.away_since is not None:
            self._hold_ended(t, pid, "holder")
        if not p.has_sat:
            self.book.seated += 1
        p.has_held, p.has_sat, p.claiming, p.pressed = True, True, False, False
        p.set_seated(True, t)
        p.away_since = None
        self.zone_people[self.w.plan.seat_zone[p.seat]] += 1
        self.senses.sat(t, pid)
        while p.breaks:
            b = p.breaks.pop(0)
            tb = t + b.after_s
            if tb >= p.leave_by:
                break
            if not b.returns or tb + b.length_s + 60.0 < p.leave_by:
                self.pending_break[pid] = b
                self.w.schedule(tb, partial(self.take_break), pid)
                return
            p.leave_by = tb  # the break would run past their leaving time: they go home instead
            break
        self.w.schedule(p.leave_by, partial(self.depart), pid)

    def _stand_up(self, t: float, pid: int) -> None:
        p = self.patrons[pid]
        p.set_seated(False, t)
        self.zone_people[self.w.plan.seat_zone[p.seat]] -= 1
        self.senses.stood(t, pid)

    def take_break(self, t: float, pid: int) -> None:
        p = self.patrons[pid]
        if p.gone or not p.seated:
            return
        b = self.pending_break.pop(pid)
        p.away_since, p.returning = t, b.returns
        if b.returns and p.back_soon:
            p.pressed = True
            self.senses.back_soon(t, p.seat)
        self._stand_up(t, pid)
        self._walk(t, pid, self.seat_xy(p.seat), self.w.plan.entrance, to_seat=False)
        if b.returns:
            self.w.schedule(t + b.length_s, partial(self.come_back), pid)
        else:
            self.book.abandoned += 1  # belongings stay on the seat until staff or the closing sweep

    def come_back(self, t: float, pid: int) -> None:
        """Back from a break or a claim; if staff cleared the seat meanwhile, take it again if free, else look again."""
        p = self.patrons[pid]
        if p.gone:
            return
        entrance = self.w.plan.entrance
        if self.holder[p.seat] == pid:
            self.w.schedule(t + self._walk(t, pid, entrance, self.seat_xy(p.seat), to_seat=True),
                            partial(self._back_at_seat), pid)
        elif self.holder[p.seat] < 0:
            self._take(t, pid, p.seat, entrance, counted=False)
        else:
            self._find(t, pid, entrance, first_zone=int(self.w.plan.seat_zone[p.seat]), counted=False)

    def _back_at_seat(self, t: float, pid: int) -> None:
        """At the seat after the walk back. Staff may have cleared it during the walk (the gateway's
        ghost, or its release, came meanwhile): then the patron takes it again if it is still free,
        else looks for another, as if they had found it cleared from the entrance."""
        p = self.patrons[pid]
        if p.gone:
            return
        if self.holder[p.seat] == pid:
            self.sit(t, pid)
            return
        here = self.seat_xy(p.seat)
        if self.holder[p.seat] < 0:
            self._take(t, pid, p.seat, here, counted=False)
        else:
            self._find(t, pid, here, first_zone=int(self.w.plan.seat_zone[p.seat]), counted=False)

    def clear(self, t: float, seat: int, how: str = "staff") -> None:
        """Belongings taken from the seat (staff to lost-and-found, or the closing sweep): the seat is free."""
        pid = int(self.holder[seat])
        p = self.patrons[pid]
        self._hold_ended(t, pid, how)
        self.holder[seat] = -1
        p.away_since, p.claiming, p.pressed = None, False, False
        if how == "staff":
            self.book.cleared += 1
        if not p.returning:
            p.gone = True
        self.senses.things_changed(t, seat)

    def _hold_ended(self, t: float, pid: int, how: str) -> None:
        """A seat held by things alone stops being held so: a ghost episode ends if it was one."""
        p = self.patrons[pid]
        if p.away_since is None:
            return
        onset = p.away_since + self.limit(p)
        if t > onset:
            self.book.ghost_ends.append((t - onset, how))

    def depart(self, t: float, pid: int) -> None:
        p = self.patrons[pid]
        if p.gone or not p.seated:
            return
        if p.abandons:  # the belongings stay: the seat looks taken until staff clear it
            self.pending_break[pid] = Break(after_s=0.0, length_s=0.0, returns=False)
            self.take_break(t, pid)
            return
        self._stand_up(t, pid)
        self._walk(t, pid, self.seat_xy(p.seat), self.w.plan.entrance, to_seat=False)
        self.holder[p.seat] = -1
        p.gone = True
        self.senses.left(t, pid)

    def closing(self, t: float) -> None:
        """Closing time: whoever is still seated leaves; staff sweep belongings left on seats."""
        for seat in np.flatnonzero(self.holder >= 0):
            pid = int(self.holder[seat])
            p = self.patrons[pid]
            if p.seated:
                self.depart(t, pid)
            else:
                p.returning = False
                self.clear(t, int(seat), "closing")
        for pid in list(self.searches):
            self.patrons[pid].gone = True
        self.searches.clear()

    # ----- measuring ----------------------------------------------------------------------------
    def sample(self, t: float) -> list[str]:
        """Once a simulated minute in opening hours: the floor's seat-minutes; returns every seat's status."""
        truth = [self.status(i, t) for i in range(len(self.holder))]
        b = self.book
        b.open_seat_minutes += len(truth)
        b.occupied_seat_minutes += truth.count("occupied")
        b.ghost_seat_minutes += truth.count("ghost")
        b.away_seat_minutes += truth.count("away")
        return truth

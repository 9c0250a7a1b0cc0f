"""Incremental evaluation: what :func:`rules.engine.evaluate` returns, redoing only what changed.

Why: the daemon's decide loop passes several times a second on a 240-seat floor (its period, and
at once on news: a seat taken, a first motion, a seat's own timer), and most passes find one seat
changed or none. Evaluating every rule over every seat and resolving a thousand candidates on
every pass was a third of the daemon's CPU.

A *unit* is one rule over one subject (a zone, or a seat). What a unit reads is worked out once
per rule set from its condition tree and its actions (:mod:`rules.unit_reads`): state-wide inputs
(opening, day type, wall time, overrides), fields of its zone and of its seat, the preferences of
the patron its seat holds, the levels of its zone's outputs (and, for daylight harvesting, the
status and lux of every seat its luminaires light), and the clock. A unit's outcome (whether its
condition holds, the hysteresis latches it leaves on, its intents) is kept and used again while
none of those inputs changed and its latches are as it left them. The clock is read only through
thresholds (``empty_s below 300``, a consenting tag seated for 30 s), so a unit that reads it is
redone when the first threshold it could cross comes (:func:`rules.unit_reads.expiry`). ``for_s`` timers are
checked on every pass for the units that hold. A rule with a test or action this module does not
know is redone on every pass. Conflicts are resolved again only for the (target, kind) pairs
whose candidates changed, in the order :func:`rules.engine._resolve` uses (priority, rule order,
value, then the earlier candidate), and the safety nets (:func:`rules.engine.guard_lights`) run
over the result as before.

The result is the same as :func:`rules.engine.evaluate` for the same rule set, state and memory
(``tests/rules/test_incremental.py`` compares them over random sequences of states). The
evaluator trusts only its own previous result: a different rule set, a memory it did not return,
new wiring, a different set of seats or zones, or a clock that went back start it afresh.

This module is what the evaluator keeps between passes and how it redoes a unit; the analysis
of a rule (what its units read, when a clock test next changes) is :mod:`rules.unit_reads`.
"""

from __future__ import annotations

import heapq
import math
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from rules.conditions import Leaf, Subject
from rules.engine import (
    SHARED_KINDS,
    Evaluation,
    RuleMemory,
    _holds,
    _intents,
    _latching,
    failsafe_rule,
    guard_lights,
)
from rules.model import Rule, RuleSet
from rules.state import FloorState, Intent, IntentKind, SeatView, ZoneView
from rules.unit_reads import Reads, expiry, fixed_intents, getter, latch_paths, reads_of, seat_signature, timed_leaves


@dataclass(slots=True)
class _Unit:
    """One rule over one subject: what it read, what it found, what it asks for."""

    sid: str
    zid: str
    key: str  # rule|subject: names its for_s timer and latches
    latch_keys: tuple[str, ...]
    zsig: Any = None
    ssig: Any = None
    holds: bool = False
    on: frozenset[str] = frozenset()  # latches it left on
    intents: tuple[Intent, ...] = ()
    fixed: tuple[Intent, ...] | None = None  # its intents when it holds, for a rule whose never change
    fired: bool = False
    entries: tuple[tuple[tuple[str, IntentKind], tuple[int, int, float], int, Intent], ...] = ()
    expires: float = math.inf
    stamp: int = 0  # matches the live entry of the expiry heap


# A seat's view without its lux, every other field (one that SeatView gains is included): a view
# equal to the last in these changed in its lux alone, which a rule reading no lux cannot see.
_ALL_BUT_LUX = attrgetter(*[f.name for f in fields(SeatView) if f.name != "lux"])


@dataclass
class _Plan:
    """One rule of the rule set with its units, in the order ``evaluate`` visits them."""

    index: int  # the rule's place in (failsafe, *rules): candidates' order
    pos: int  # the plan's place in the evaluator's list
    rule: Rule
    reads: Reads
    gsig: Callable[[Any], Any]
    zget: Callable[[Any], Any]
    sget: Callable[[FloorState, ZoneView, SeatView], Any]  # unit_reads.seat_signature
    keyed: bool
    fixed: bool  # its intents depend on the wiring, the rule set and the subject only (unit_reads.fixed_intents)
    latch_paths: tuple[str, ...]
    timed: list[Leaf]
    rank: tuple[int, int]
    units: dict[str, _Unit] = field(default_factory=dict)
    by_zone: dict[str, list[str]] = field(default_factory=dict)  # seat rules: zone -> its seats here
    zone_sig: dict[str, Any] = field(default_factory=dict)  # seat rules: zone -> its fields last read
    around_sig: dict[str, Any] = field(default_factory=dict)  # zone -> what it read around the zone
    last_g: Any = None
    fired: int = 0
    reads_lux: bool = True  # its seat signature reads the seat's lux (a field, or a banded test)


class Evaluator:
    """Evaluates a rule set pass after pass, redoing only the units whose inputs changed."""

    def __init__(self, *, compact_over: int = 4096) -> None:
        self.compact_over = compact_over  # stale expiry entries kept before the heap is rebuilt
        self._rule_set: RuleSet | None = None
        self._memory: RuleMemory | None = None
        self.units_run = 0  # units evaluated (not reused) since start: for benchmarks and tests

    def evaluate(self, rule_set: RuleSet, state: FloorState, memory: RuleMemory | None = None) -> Evaluation:
        """What :func:`rules.engine.evaluate` returns for these arguments."""
        memory = memory or RuleMemory()
        fresh = (rule_set is not self._rule_set or memory is not self._memory
                 or state.topology is not self._topology or state.t < self._t
                 or len(state.seats) != len(self._seats) or state.zones.keys() != self._zones.keys())
        changed_seats: list[str] = []
        lit_only: set[str] = set()  # of those, the seats whose view changed in its lux only
        if not fresh:
            old = self._seats
            for sid, view in state.seats.items():
                before = old.get(sid)
                if before is view:
                    continue
                if before is None or before.zone != view.zone:
                    fresh = True
                    break
                changed_seats.append(sid)
                if _ALL_BUT_LUX(before) == _ALL_BUT_LUX(view):
                    lit_only.add(sid)
        if fresh:
            self._start(rule_set, state)
            changed_seats, lit_only = [], set()
        result = self._pass(rule_set, state, memory, changed_seats, lit_only)
        self._memory = result.memory
        return result

    # -- a fresh start ---------------------------------------------------------------------------
    def _start(self, rule_set: RuleSet, state: FloorState) -> None:
        self._rule_set = rule_set
        self._topology = state.topology
        self._plans: list[_Plan] = []
        self._heap: list[tuple[float, int, int, str]] = []  # (expires, stamp, plan, subject): clock thresholds
        self._stamp = 0
        self._pending: set[tuple[int, str]] = set()  # for_s units that hold and have not fired yet
        self._dirty_next: set[tuple[int, str]] = set()  # units whose latches moved: redo next pass
        self._cands: dict[tuple[str, IntentKind], dict[tuple[int, str], list[Any]]] = {}
        self._winners: dict[tuple[str, IntentKind], Intent] = {}
        self._order: list[tuple[str, IntentKind]] | None = None  # the winners' keys, sorted; None: to sort again
        self._index: dict[tuple[str, IntentKind], int] = {}  # key -> its place in _order and _list
        self._list: list[Intent] = []  # the winners in that order
        self._since: dict[str, float] = {}
        self._latched: set[str] = set()
        self._since_out: Mapping[str, float] | None = None
        self._latched_out: frozenset[str] | None = None
        self._first = True
        zones = sorted(state.zones)
        topo = state.topology
        self._lights = {z: tuple(topo.zone_lights.get(z, ())) for z in zones}
        self._lit_seats = {z: tuple(sorted({sid for lum in self._lights[z] for sid in topo.light_seats.get(lum, ())}))
                           for z in zones}
        seats = [(sid, state.seats[sid].zone) for sid in sorted(state.seats) if state.seats[sid].zone in state.zones]
        for index, rule in enumerate((failsafe_rule(rule_set.settings.safe_level), *rule_set.rules)):
            if not rule.then:
                continue
            reads = reads_of(rule)
            keyed = rule.for_s > 0 or _latching(rule.when)
            plan = _Plan(index=index, pos=len(self._plans), rule=rule, reads=reads, gsig=getter(reads.state),
                         zget=getter(reads.zone), sget=seat_signature(reads), keyed=keyed, fixed=fixed_intents(rule),
                         latch_paths=latch_paths(rule.when),
                         timed=timed_leaves(rule.when), rank=(-int(rule.priority), rule.order),
                         reads_lux=bool(reads.bands) or "lux" in reads.seat)
            subjects = ([(z, z) for z in zones] if rule.scope == "zone" else seats)
            for sid, zid in subjects:
                if rule.zones and zid not in rule.zones:
                    continue
                key = f"{rule.id}|{sid}" if keyed else ""
                plan.units[sid] = _Unit(sid, zid, key, tuple(f"{key}|{p}" for p in plan.latch_paths))
                if rule.scope == "seat":
                    plan.by_zone.setdefault(zid, []).append(sid)
            self._plans.append(plan)
        self._timed_units = sum(len(plan.units) for plan in self._plans if plan.timed)
        self._seats: Mapping[str, SeatView] = {}
        self._zones: Mapping[str, ZoneView] = {}
        self._prefs: Mapping[str, Any] = {}
        self._t = -math.inf

    # -- one pass ----------------------------------------------------------------------------------
    def _pass(self, rule_set: RuleSet, state: FloorState, memory: RuleMemory, changed_seats: list[str],
              lit_only: set[str]) -> Evaluation:
        t = state.t
        first = self._first
        old_zones = self._zones
        changed_zones = [z for z, view in state.zones.items() if old_zones.get(z) is not view]
        todo: list[set[str]] = [set() for _ in self._plans]
        for (p, sid) in self._dirty_next:
            todo[p].add(sid)
        self._dirty_next = set()
        while self._heap and self._heap[0][0] <= t:  # clock thresholds reached
            _, stamp, p, sid = heapq.heappop(self._heap)
            unit = self._plans[p].units.get(sid)
            if unit is not None and unit.stamp == stamp:
                todo[p].add(sid)
        around: dict[tuple[str, str], Any] = {}  # (what, zone) -> its value, worked out once a pass
        prefs_moved: list[str] = []  # seats whose patron's preferences were added, changed or removed
        if not first and state.preferences != self._prefs:
            old, new = self._prefs, state.preferences
            tags = {tag for tag in old.keys() | new.keys() if old.get(tag) != new.get(tag)}
            prefs_moved = [sid for sid, view in state.seats.items() if view.consented_tag in tags]
        self._prefs = state.preferences
        for p, plan in enumerate(self._plans):
            g = plan.gsig(state)
            if plan.reads.around:
                for z in plan.by_zone if plan.rule.scope == "seat" else plan.units:
                    now = tuple(self._around(state, what, z, around) for what in sorted(plan.reads.around))
                    if now != plan.around_sig.get(z):
                        plan.around_sig[z] = now
                        todo[p].update(plan.by_zone.get(z, ()) if plan.rule.scope == "seat" else (z,))
            if first or plan.reads.always or g != plan.last_g:
                plan.last_g = g
                todo[p] = set(plan.units)
                if plan.rule.scope == "seat" and plan.reads.zone:
                    plan.zone_sig = {z: plan.zget(view) for z, view in state.zones.items()}
                continue
            mine = todo[p]
            units = plan.units
            if plan.reads.prefs:
                mine.update(sid for sid in prefs_moved if sid in units)
            if plan.rule.scope == "zone":
                for z in changed_zones:
                    unit = units.get(z)
                    if unit is not None and plan.zget(state.zones[z]) != unit.zsig:
                        mine.add(z)
                continue
            if plan.reads.zone:
                for z in changed_zones:
                    zs = plan.zget(state.zones[z])
                    if zs != plan.zone_sig.get(z):
                        plan.zone_sig[z] = zs
                        mine.update(plan.by_zone.get(z, ()))
            get = plan.sget
            seats, zones = state.seats, state.zones
            # A unit's signature is its seat's last view's (kept so by every pass); a rule that
            # reads neither lux nor a band of it finds the same signature in a view whose lux
            # alone changed, which is most changed views (any change of light moves every lux).
            for sid in changed_seats if plan.reads_lux else [x for x in changed_seats if x not in lit_only]:
                unit = units.get(sid)
                if unit is not None and get(state, zones[unit.zid], seats[sid]) != unit.ssig:
                    mine.add(sid)
        touched: set[tuple[str, IntentKind]] = set()
        since_moved = latched_moved = first
        for p, plan in enumerate(self._plans):
            if todo[p]:
                moved = self._run(plan, todo[p], rule_set, state, memory, touched)
                since_moved = since_moved or moved[0]
                latched_moved = latched_moved or moved[1]
        for p, sid in list(self._pending):  # for_s timers of units that hold
            plan = self._plans[p]
            unit = plan.units[sid]
            if t - self._since[unit.key] >= plan.rule.for_s:
                self._pending.discard((p, sid))
                self._set_fired(plan, unit, True, touched)
        self._first = False
        self._seats, self._zones, self._t = state.seats, state.zones, t
        for tk in touched:
            self._resolve_one(tk)
        winners = self._winners
        if self._order is None:
            self._order = sorted(winners)
            self._index = {k: i for i, k in enumerate(self._order)}
            self._list = [winners[k] for k in self._order]
        guarded: dict[tuple[str, IntentKind], Intent] = {}  # what the safety nets change, over the winners
        guard_lights(ChainMap(guarded, winners), state, rule_set.settings)
        if guarded.keys() <= winners.keys():
            intents = self._list.copy()
            for k, intent in guarded.items():
                intents[self._index[k]] = intent
        else:
            both = {**winners, **guarded}
            intents = [both[k] for k in sorted(both)]
        if since_moved or self._since_out is None:
            self._since_out = dict(self._since)
        if latched_moved or self._latched_out is None:
            self._latched_out = frozenset(self._latched)
        fired = [plan.rule.id for plan in self._plans if plan.fired]
        return Evaluation(intents, RuleMemory(self._since_out, self._latched_out), fired)

    def _around(self, state: FloorState, what: str, zid: str, known: dict[tuple[str, str], Any]) -> Any:
        """What a rule reads around a zone (see :attr:`Reads.around`), once per pass and zone."""
        found = known.get((what, zid), known)
        if found is not known:
            return found
        levels = state.levels
        if what == "hvac":
            hvac = state.topology.zone_hvac.get(zid)
            value: Any = levels.get(hvac) if hvac is not None else None
        else:
            value = tuple(levels.get(lum, 0.0) for lum in self._lights[zid])
            if what == "lit":
                seats = state.seats
                value = (value, tuple((v.status, v.lux) if (v := seats.get(sid)) is not None else None
                                      for sid in self._lit_seats[zid]))
        known[(what, zid)] = value
        return value

    def _run(self, plan: _Plan, sids: set[str], rule_set: RuleSet, state: FloorState, memory: RuleMemory,
             touched: set[tuple[str, IntentKind]]) -> tuple[bool, bool]:
        """Evaluate the named units of one rule as ``evaluate`` does; True where since/latches moved."""
        rule = plan.rule
        when, for_s, t = rule.when, rule.for_s, state.t
        zones, seats = state.zones, state.seats
        before = memory.latched
        since_moved = latched_moved = False
        seat_scope = rule.scope == "seat"
        for sid in sids:
            unit = plan.units[sid]
            self.units_run += 1
            zone = zones[unit.zid]
            seat = seats[sid] if seat_scope else None
            subject = Subject(state, zone, seat)
            after: set[str] = set()
            holds = when is None or _holds(when, subject, unit.key, before, after)
            unit.zsig = plan.zget(zone)
            unit.ssig = plan.sget(state, zone, seat) if seat is not None else None
            on = frozenset(after)
            if on != unit.on:
                self._latched.difference_update(unit.on)
                self._latched.update(on)
                latched_moved = True
            if unit.latch_keys and on != frozenset(k for k in unit.latch_keys if k in before):
                self._dirty_next.add((plan.pos, sid))  # a latch moved: check it settles (it does, one pass on)
            unit.on = on
            if plan.timed:
                unit.expires = expiry(plan.timed, subject, t)
                self._stamp += 1
                unit.stamp = self._stamp
                if unit.expires < math.inf:
                    heapq.heappush(self._heap, (unit.expires, self._stamp, plan.pos, sid))
                    if len(self._heap) > self.compact_over + 4 * self._timed_units:
                        self._compact()
            intents: tuple[Intent, ...] = ()
            if holds:
                if unit.fixed is not None:  # the same intents as when it last held (see _Plan.fixed)
                    intents = unit.fixed
                else:
                    intents = tuple(i for action in rule.then for i in _intents(action, rule, subject, rule_set))
                    if plan.fixed:
                        unit.fixed = intents
            was_holding = unit.holds
            unit.holds = holds
            fired = holds
            if for_s > 0:
                if holds and not was_holding:
                    self._since[unit.key] = memory.since.get(unit.key, t)
                    since_moved = True
                elif not holds and was_holding:
                    self._since.pop(unit.key, None)
                    since_moved = True
                elif holds and unit.key not in self._since:  # a fresh start: the memory handed in
                    self._since[unit.key] = memory.since.get(unit.key, t)
                    since_moved = True
                fired = holds and t - self._since[unit.key] >= for_s
                pos = (plan.pos, sid)
                if holds and not fired:
                    self._pending.add(pos)
                else:
                    self._pending.discard(pos)
            unit.intents = intents
            self._set_fired(plan, unit, fired, touched)
        return since_moved, latched_moved

    def _compact(self) -> None:
        """Drop the expiry entries of units redone since (each redo pushes a new one)."""
        live = [(unit.expires, unit.stamp, plan.pos, sid) for plan in self._plans if plan.timed
                for sid, unit in plan.units.items() if unit.expires < math.inf]
        heapq.heapify(live)
        self._heap = live

    def _set_fired(self, plan: _Plan, unit: _Unit, fired: bool, touched: set[tuple[str, IntentKind]]) -> None:
        """Put a unit's candidates in (fired) or take them out, noting the (target, kind) pairs touched."""
        entries: tuple[Any, ...] = ()
        if fired:
            rank0, order = plan.rank
            entries = tuple(((i.target, i.kind), (rank0, order, -(i.value or 0.0)), j, i)
                            for j, i in enumerate(unit.intents))
        if fired != unit.fired:
            plan.fired += 1 if fired else -1
            unit.fired = fired
        if entries == unit.entries:
            return
        pos = (plan.index, unit.sid)
        for tk, *_ in unit.entries:
            group = self._cands[tk]
            group.pop(pos, None)
            touched.add(tk)
        for tk, rank, j, intent in entries:
            self._cands.setdefault(tk, {}).setdefault(pos, []).append((rank, j, intent))
            touched.add(tk)
        unit.entries = entries

    def _resolve_one(self, tk: tuple[str, IntentKind]) -> None:
        """The winner for one (target, kind), as :func:`rules.engine._resolve` picks it."""
        group = self._cands.get(tk)
        if not group:
            self._cands.pop(tk, None)
            if self._winners.pop(tk, None) is not None:
                self._order = None
            return
        sign = SHARED_KINDS.get(tk[1])
        per: dict[str, list[Any]] = {}  # subject (or "") -> [rank, position, intent, first position]
        for (index, sid), items in group.items():
            for rank, j, intent in items:
                where = (index, sid, j)
                k = sid if sign is not None else ""
                best = per.get(k)
                if best is None:
                    per[k] = [rank, where, intent, where]
                else:
                    if (rank, where) < (best[0], best[1]):
                        best[0], best[1], best[2] = rank, where, intent
                    if where < best[3]:
                        best[3] = where
        chosen: tuple[Any, ...] | None = None
        for rank, _, intent, first in per.values():
            combined = rank if sign is None else (rank[0], -sign * (intent.value or 0.0), rank[1])
            if chosen is None or (combined, first) < chosen[:2]:
                chosen = (combined, first, intent)
        assert chosen is not None
        if tk not in self._winners:
            self._order = None
        elif self._order is not None:
            self._list[self._index[tk]] = chosen[2]
        self._winners[tk] = chosen[2]

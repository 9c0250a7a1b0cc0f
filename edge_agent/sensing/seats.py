"""Seat state machine: presence evidence over time -> free / occupied / away / ghost / unknown.

::

    FREE --presence for occupied_after_s (or one frame, if frames are further apart)--> OCCUPIED
    OCCUPIED --absent for away_after_s, after a stay >= min_stay_s, belongings seen--> AWAY
    OCCUPIED --absent for away_after_s, no belongings seen or a short visit--------> FREE
    AWAY (provisional) --the warmth left did not outlast the chair's--> FREE
    AWAY --absent for ghost_after_s since the patron left--> GHOST
    AWAY / GHOST --presence for occupied_after_s--> OCCUPIED   (the patron came back)
    OCCUPIED --absent for away_after_s, belongings on the desk (weight)--> AWAY  (any stay)
    FREE --belongings on the desk, nobody there for claim_after_s--> AWAY  (a bag claims the seat)
    AWAY (on the desk's weight) --the desk is empty again--> FREE  (they came back and packed up)
    OCCUPIED / AWAY (on warmth) --the desk that held their work is empty after they left--> FREE
    any --"back soon" pressed--> AWAY, held until break_limit_s --> GHOST
    AWAY (held) --pressed again, or they sit down again--> OCCUPIED
    any --release(t)--> FREE      (a rule or a staff command; presence re-occupies it later)
    any --no usable evidence--> UNKNOWN --fresh evidence--> re-derived from scratch

Why: a patron who stands up for a minute must stay *occupied* (absences shorter than
``away_after_s`` are ignored); a passer-by must not leave a taken seat behind (``min_stay_s``,
unless something warm is left where they sat: no passer-by leaves a laptop);
one-frame dropouts of the detector are bridged (``gap_s``), but not on an away or ghost seat
whose desk stepped after a frame without anyone: hands on the desk, then a person at it, is the
patron back (a new presence run), not the old run resumed. Presence must last
``occupied_after_s`` to reject someone pausing by a desk, but when the thermopile's frames are
further apart than that (the simulated floor polls every 60 s) a second frame could only come
later than the rule asks, so one frame with a person (the detector has already made a lone warm
pixel wait three minutes) occupies the seat. ``since`` of each status is the
instant the condition was met (e.g. left-at + away_after_s), not the instant it was noticed,
so the result does not depend on how often evidence arrives. The ghost clock runs from the moment
the patron left, and a passer-by at an away seat does not restart it.

Away or gone for good? A thermopile cannot see a bag, but it sees what holds body or battery heat:
a laptop left open on the desk, a coat left on the chair back (warm, cooling over 10-15 minutes:
``residue``). A patron who leaves such things behind is on a break (AWAY); one who leaves nothing
warm has most likely left (FREE): departures outnumber breaks taken with nothing warm left behind,
so FREE is the better guess when nothing is seen. But the chair seat itself is warm after *every*
stand-up, departures included, and cools with a time constant of about a minute; so residue
counts as belongings only if it is still seen ``belongings_after_s`` after the first frame
without the patron (the chair is out of sight by then), or if two readings at least
``cooling_span_s`` apart show it cooling slower than ``belongings_tau_s`` (a coat or a laptop:
ten minutes and more; the chair: one). Warmth that vanishes before then was the chair's.
When frames are too far apart to know this by the time the seat is judged (``away_after_s``
after the patron was last seen), warmth still seen in the latest frame makes the seat AWAY
*provisionally* (warmth already gone makes it FREE at once), and the next frames settle it:
lasting, AWAY stays; gone, the seat is FREE (since the same instant the AWAY had, as the patron
left with nothing that lasts). Evidence without that information
(``residue=None``, e.g. a UWB tag standing in for a failed thermopile) keeps the stay-history
rule: a long stay ends AWAY. Residue without its heat (``residue_heat=None``) is judged by the
``belongings_after_s`` rule alone.

The desk's weight (edge_agent.sensing.weight, fed by :meth:`SeatStateMachine.observe_weight`)
sees what the thermopile cannot: cold belongings on the desk. A step that is still there when
the patron is judged gone means AWAY, whatever the stay and whatever the thermopile saw; a step
with nobody seen since it began (a bag dropped to claim the seat) makes a free seat AWAY after
``claim_after_s`` and GHOST at the limit like any other; a desk found empty again ends an AWAY
that rested on it. A desk that held ``packed_min_g`` or more while the patron sat (a laptop,
books: more than the cup and phone that go along on a break) and is empty after they left says
they packed up: FREE, whatever warmth the thermopile still sees (the chair seat, sun frozen under
them), which it otherwise reads as a break. Belongings on the chair are left to the thermopile as before. The button's
"back soon" (:meth:`SeatStateMachine.press`) holds the seat AWAY for ``break_limit_s`` whatever
the sensors see; a second press or the patron sitting down again ends the hold.

After UNKNOWN (sensor unhealthy or stale) nothing from before the outage is trusted: the seat
becomes OCCUPIED after ``occupied_after_s`` of fresh presence, or FREE after ``away_after_s`` of
fresh absence, and stays UNKNOWN until then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rules.state import SeatStatus


@dataclass(frozen=True, slots=True)
class SeatTiming:
    """Thresholds in seconds; the first three come from the config's ``[sensing]`` table."""

    occupied_after_s: float = 30.0
    away_after_s: float = 120.0
    ghost_after_s: float = 1200.0
    min_stay_s: float = 300.0
    gap_s: float = 6.0
    belongings_after_s: float = 170.0  # the chair seat is under hold_c on any pixel by then
    belongings_tau_s: float = 300.0  # warmth cooling slower than this is a coat's or a laptop's
    cooling_span_s: float = 55.0  # two residue readings this far apart tell how fast it cools
    claim_after_s: float = 120.0  # belongings with nobody at the seat this long: a claimed seat
    break_limit_s: float = 1800.0  # a "back soon" hold lasts this long, then the seat is ghost
    blip_s: float = 300.0  # an occupied seat found occupied again this soon after UNKNOWN: the same stay
    packed_min_g: float = 700.0  # a desk that held this much while they sat and is empty after: packed up


class SeatStateMachine:
    """One seat's status from a stream of ``observe(presence, t)`` calls (``None``: no evidence)."""

    def __init__(self, timing: SeatTiming, t: float = 0.0) -> None:
        self.timing = timing
        self.status = SeatStatus.UNKNOWN
        self.since = t
        # When the current occupant sat down, as far as the seat knows. Unlike ``since`` it survives
        # a short UNKNOWN (a sensor blip: an unusable frame, a failed read) between two OCCUPIED
        # spells, so a tag coming to rest nearby does not take the blip's end for an arrival.
        self.arrived_at: float | None = None
        self._blip_from: float | None = None  # an OCCUPIED seat went UNKNOWN then
        self._last_present: float | None = None
        self._run_start: float | None = None  # start of the current presence run
        self._session_start: float | None = None  # when the current patron's stay began
        self._left_at: float | None = None  # when the patron of an AWAY/GHOST seat was last seen
        self._fresh_since: float | None = t  # UNKNOWN: start of fresh evidence
        self._was_unknown = True
        self._last_observed: float | None = None
        self._residue_t: float | None = None  # last time belongings (warm residue) were seen here
        self._looked_t: float | None = None  # last evidence that could have shown belongings
        self._absent_from: float | None = None  # first evidence of absence after the last presence
        self._provisional = False  # AWAY on warmth not yet known to outlast the chair's
        self._cooling: list[tuple[float, float]] = []  # (t, residue heat) of frames since the patron left
        self._gap_s = timing.gap_s  # grows to span the sensor's own frame interval
        self._frame_s = 0.0  # interval between the latest two thermopile frames
        self._weight_t: float | None = None  # latest usable weight evidence
        self._weight_on = False  # belongings on the desk then
        self._weight_since: float | None = None  # when the step began
        self._weight_witnessed = True  # someone was about when it began (a bag does not drop by itself)
        self._by_weight = False  # AWAY because of what stands on the desk
        self._hold_from: float | None = None  # "back soon" pressed then
        self._hold_until: float | None = None  # ... and the hold ends (GHOST) then
        self._hold_absent = False  # absence seen since the press
        self._stay_load_g = 0.0  # the most the desk held while the current patron was there
        self._unghosted_at: float | None = None  # a ghost seat's desk emptied and freed it then
        self._step_t: float | None = None  # the desk's load stepped then, the seat occupied (LOAD_STEP)
        self._stood_up: float | None = None  # ... and a frame after it did not see the patron: they stood up then
        self._touched_t: float | None = None  # the desk's load last stepped then (any status)

    def _set(self, status: SeatStatus, since: float) -> None:
        if status is not self.status:
            if self.status is SeatStatus.GHOST and status is SeatStatus.FREE:
                self._unghosted_at = since
            if status is SeatStatus.FREE or self.status in (SeatStatus.FREE, SeatStatus.UNKNOWN):
                self._stay_load_g = 0.0  # a stay ended, or a new one begins
            if status is SeatStatus.OCCUPIED:
                resumed = (self.status is SeatStatus.UNKNOWN and self._blip_from is not None
                           and since - self._blip_from <= self.timing.blip_s)
                self.arrived_at = self.arrived_at if resumed else since
            self._blip_from = since if self.status is SeatStatus.OCCUPIED and status is SeatStatus.UNKNOWN else None
            self.status, self.since = status, since

    def observe(self, presence: bool | None, t: float, *, residue: bool | None = None,
                residue_heat: float | None = None, prompt: bool = False) -> SeatStatus:
        """Feed one piece of evidence (True present, False absent, None unusable) taken at ``t``.

        ``residue``: True if something warm was left where the patron sat (a laptop: belongings
        stayed), False if the sensor could have seen it and did not, None if it cannot tell.
        ``residue_heat``: how warm it is (summed contrast, C x pixels), to tell by how fast it cools
        whether it is the chair seat or belongings; None if the evidence does not say.
        ``prompt``: a frame read between the sensor's polls (its desk reported a change): its
        spacing from the frame before says nothing of the sensor's frame interval, which sets the
        dropout bridge and whether one frame may occupy the seat.
        """
        if presence is None:
            self._set(SeatStatus.UNKNOWN, t)
            self._last_present = self._run_start = self._session_start = self._left_at = None
            self._fresh_since = None
            self._residue_t = self._looked_t = self._absent_from = None
            self._provisional = self._by_weight = False
            self._hold_from = self._hold_until = None
            self._step_t = self._stood_up = None
            self._cooling.clear()
            return self.status
        if self._fresh_since is None:
            self._fresh_since = t
        if prompt:
            pass  # between two polls: the interval below is the polls' own
        elif self._last_observed is not None and t > self._last_observed:
            # Evidence arrives once per frame: a frame interval longer than the dropout bridge
            # would otherwise read as a new presence run every frame (never "occupied").
            self._gap_s = max(self.timing.gap_s, min(180.0, 2.5 * (t - self._last_observed)))
            if residue is not None:
                self._frame_s = t - self._last_observed
        if not prompt:
            self._last_observed = t  # the latest scheduled evidence
        if residue is not None:
            self._looked_t = t
            if residue:
                self._residue_t = t
        if presence:
            touched = self._touched_t
            # Back at the desk after frames without them, and the desk's load stepped in between
            # (their things moved): a patron come back to an away seat, not a dropout to bridge.
            returned = (self._absent_from is not None and touched is not None
                        and self._absent_from <= touched <= t
                        and self.status in (SeatStatus.AWAY, SeatStatus.GHOST)
                        and (self._hold_from is None or self._absent_from > self._hold_from))
            if returned or self._last_present is None or t - self._last_present > self._gap_s:
                self._run_start = t
            self._last_present = t
            self._absent_from = None
            self._cooling.clear()
            if self._step_t is not None and t >= self._step_t:
                self._step_t = self._stood_up = None  # still there after the step: they moved a cup
        else:
            if self._absent_from is None:
                self._absent_from = t
            if self._step_t is not None and t >= self._step_t:
                self._stood_up = self._step_t
            if self._hold_from is not None and t > self._hold_from:
                self._hold_absent = True
            if residue is not None and residue_heat is not None:
                self._cooling.append((t, residue_heat if residue else 0.0))
                del self._cooling[:-64]  # a few minutes of 2 s frames is plenty
        return self.advance(t)

    def observe_weight(self, on: bool | None, t: float, *, since: float | None = None,
                       witnessed: bool = True, load_g: float | None = None) -> SeatStatus:
        """The desk's load at ``t``: belongings on it (True), nothing (False), or no usable reading
        (None). ``since``: when the current step began; ``witnessed``: someone was about then;
        ``load_g``: grams above the empty desk (None: not known)."""
        if on is None:
            self._weight_t = None
            self._weight_on = False
            return self.status
        self._weight_t, self._weight_on = t, on
        self._weight_since = since if on else None
        self._weight_witnessed = witnessed
        status = self.advance(t)
        if on and status is SeatStatus.OCCUPIED and load_g is not None:
            self._stay_load_g = max(self._stay_load_g, load_g)  # what they work with stands on the desk
        return status

    def desk_step(self, t: float) -> None:
        """The desk's load made a settled step at ``t`` (the node's LOAD_STEP): someone's hands were
        on the desk then. On an occupied seat, the first frame after it that does not see the patron
        says they stood up at ``t`` (a laptop packed, a cup taken along, a bag put on the desk for a
        break): their absence is counted from the step, not from the frame before it, which may be
        a minute older, and a frame that does not see them is not bridged as a dropout."""
        self._touched_t = t
        if self.status is SeatStatus.OCCUPIED and (self._last_present is None or t >= self._last_present):
            self._step_t = t

    def due(self) -> float | None:
        """When the status changes next if no evidence comes (a patron's absence reaching
        ``away_after_s``, an away seat's ghost limit or break limit, a bag on a free desk becoming a
        claim); None if nothing is pending. The decide loop runs then, so such a change is shown
        when it happens, not at its next period. A millisecond late, so the time compared with
        the limit is past it, whatever the rounding of the clock."""
        tm = self.timing
        due: float | None = None
        if self.status is SeatStatus.OCCUPIED:
            if self._stood_up is not None:
                due = self._stood_up + tm.away_after_s
            elif self._last_present is not None:
                due = self._last_present + max(self._gap_s, tm.away_after_s)
        elif self.status is SeatStatus.AWAY:
            due = self.hold_ends_at()
        elif (self.status is SeatStatus.FREE and self._weight_on and self._weight_since is not None
              and self._weight_witnessed):  # a claim: belongings with nobody at the seat for claim_after_s
            lp = self._last_present
            due = (self._weight_since if lp is None or lp < self._weight_since else lp) + tm.claim_after_s
        return None if due is None else due + 1e-3

    def press(self, t: float) -> str:
        """The desk's "back soon" button: ``"away"`` (a break begins: AWAY, held for the break
        limit) or ``"back"`` (the hold ends, or the patron of an away or ghost seat is back)."""
        if self._hold_until is not None or self.status in (SeatStatus.AWAY, SeatStatus.GHOST):
            self._hold_from = self._hold_until = self._left_at = None
            self._provisional = self._by_weight = False
            self._last_present = self._run_start = self._session_start = t
            self._absent_from = None
            self._set(SeatStatus.OCCUPIED, t)
            return "back"
        self._hold_from, self._hold_until, self._hold_absent = t, t + self.timing.break_limit_s, False
        self._left_at = t
        self._provisional = False
        if self._session_start is None:
            self._session_start = t
        self._set(SeatStatus.AWAY, t)
        return "away"

    def present(self, t: float) -> bool:
        """Someone is at the seat by the latest evidence (dropouts up to the gap bridged)."""
        return self._present_now(t)

    @property
    def step_witnessed(self) -> bool:
        """Whether the weight step now on the desk began with someone about."""
        return self._weight_witnessed

    def staff_release(self, t: float, within_s: float) -> bool:
        """Whether a 3 s hold of the desk's button at ``t`` is staff releasing a ghost seat: the seat
        is ghost, or was until its desk emptied less than ``within_s`` ago (staff take what was
        left, then hold the button; the load cell may report the empty desk first)."""
        if self.status is SeatStatus.GHOST:
            return True
        # Either order: the node stamps the hold when it began, the gateway stamps the reading
        # that showed the empty desk when it came, so the reading may carry the later time.
        return (self.status is SeatStatus.FREE and self._unghosted_at is not None
                and abs(t - self._unghosted_at) <= within_s)

    @property
    def held(self) -> bool:
        """A "back soon" hold is running."""
        return self._hold_until is not None

    def hold_ends_at(self) -> float | None:
        """For an AWAY seat, when it turns GHOST (the break limit, or the ghost limit); else None."""
        if self.status is not SeatStatus.AWAY:
            return None
        if self._hold_until is not None:
            return self._hold_until
        left = self._left_at if self._left_at is not None else self.since
        return left + self.timing.ghost_after_s

    def _weighed_after(self, t0: float) -> bool | None:
        """Belongings on the desk by a reading taken after ``t0`` (None: no such reading)."""
        if self._weight_t is None or self._weight_t <= t0:
            return None
        return self._weight_on

    def _present_now(self, t: float) -> bool:
        return self._last_present is not None and t - self._last_present <= self._gap_s

    def _run_length(self, t: float) -> float:
        """How long the latest presence run lasted (to ``t`` if it is still going)."""
        if self._run_start is None or self._last_present is None:
            return 0.0
        end = t if self._present_now(t) else self._last_present
        return end - self._run_start

    def advance(self, t: float) -> SeatStatus:
        """Apply the time-based transitions up to ``t`` (evidence is assumed to hold until then)."""
        tm = self.timing
        for _ in range(4):  # at most FREE -> OCCUPIED -> AWAY -> GHOST in one call
            before = self.status
            # Frames further apart than occupied_after_s: one frame with a person is all the
            # evidence the rule could ever have in that time; waiting for the next only delays.
            need = 0.0 if self._frame_s >= tm.occupied_after_s else tm.occupied_after_s
            confirmed = (self._run_start is not None and self._run_length(t) >= need
                         and (need > 0.0 or self._present_now(t)))
            gone_for = None if self._present_now(t) or self._last_present is None else t - self._last_present
            stood = self._stood_up
            if stood is not None and self.status is SeatStatus.OCCUPIED:
                gone_for = t - stood  # the desk said when; the frame after it, that they went
            if self.status is SeatStatus.UNKNOWN:
                if confirmed and self._run_start is not None:
                    self._session_start = self._run_start
                    self._set(SeatStatus.OCCUPIED, self._run_start + need)
                elif self._fresh_since is not None and not self._present_now(t):
                    quiet_from = max(self._fresh_since, self._last_present or self._fresh_since)
                    if t - quiet_from >= tm.away_after_s:
                        self._set(SeatStatus.FREE, quiet_from + tm.away_after_s)
            elif self.status is SeatStatus.FREE:
                if confirmed and self._run_start is not None:
                    self._session_start = self._run_start
                    self._set(SeatStatus.OCCUPIED, self._run_start + need)
                elif (claimed := self._claimed(t)) is not None:
                    self._left_at, self._by_weight, self._provisional = claimed, True, False
                    self._session_start = self._run_start = None
                    self._set(SeatStatus.AWAY, claimed + tm.claim_after_s)
            elif self.status is SeatStatus.OCCUPIED:
                if gone_for is not None and gone_for >= tm.away_after_s and self._last_present is not None:
                    left = max(self._last_present, stood if stood is not None else self._last_present)
                    self._step_t = self._stood_up = None
                    stay = left - (self._session_start if self._session_start is not None else left)
                    looked = self._looked_t is not None and self._looked_t > left
                    # Warmth that was there after they left and is still there in the latest frame.
                    warm = (self._residue_t is not None and self._residue_t > left
                            and self._residue_t >= (self._looked_t or 0.0))
                    kept = not looked or warm
                    on_desk = self._weighed_after(left)
                    # Their desk held their things and is empty now: they packed up and went,
                    # whatever warmth the thermopile still sees (their chair, or sun on it).
                    packed = on_desk is False and self._packed_up()
                    # A short visit is a passer-by, unless they left something warm behind,
                    # or anything at all on the desk.
                    if on_desk or (not packed and ((stay >= tm.min_stay_s and kept) or (looked and warm))):
                        self._left_at = left
                        self._by_weight = bool(on_desk)
                        self._provisional = not on_desk and looked and not self._lasting()
                        self._set(SeatStatus.AWAY, left + tm.away_after_s)
                    else:
                        self._session_start = self._run_start = None  # the visit is over, not a new one
                        self._set(SeatStatus.FREE, left + tm.away_after_s)
            elif self._hold_from is not None and self._hold_until is not None:  # "back soon": held
                came_back = confirmed and self._run_start is not None and self._run_start > self._hold_from
                stayed = (not self._hold_absent and self._last_present is not None  # pressed, and never left
                          and self._last_present >= self._hold_from + tm.away_after_s)
                if (came_back and self._hold_absent) or stayed:
                    since = self._run_start + need if came_back and self._run_start is not None else t
                    self._hold_from = self._hold_until = self._left_at = None
                    self._set(SeatStatus.OCCUPIED, max(since, self.since))
                elif self.status is SeatStatus.AWAY and t >= self._hold_until:
                    self._set(SeatStatus.GHOST, self._hold_until)
            else:  # AWAY or GHOST
                left = self._left_at if self._left_at is not None else self.since
                back = confirmed and self._run_start is not None and self._run_start > left
                cleared = self._by_weight and self._weighed_after(self.since) is False and not self._warm_now()
                packed = not self._by_weight and self._weighed_after(left) is False and self._packed_up()
                if back and self._run_start is not None:
                    self._left_at = None
                    self._provisional = self._by_weight = False
                    self._set(SeatStatus.OCCUPIED, self._run_start + need)
                elif (cleared or packed) and self._weight_t is not None:
                    # The desk is empty again (held on its weight), or held on warmth while the desk
                    # that held their things is empty: they packed up. Either way the seat is free.
                    self._left_at = self._session_start = self._run_start = None
                    self._by_weight = self._provisional = False
                    self._set(SeatStatus.FREE, max(self._weight_t, self.since))
                elif self._provisional and self._weighed_after(left):
                    self._provisional = False  # whatever the warmth was, something stands on the desk
                elif self._provisional and self._lasting():
                    self._provisional = False
                elif self._provisional and self._settled():
                    self._provisional = False  # only the chair was warm: nothing was left behind
                    self._session_start = self._run_start = self._left_at = None
                    self._set(SeatStatus.FREE, left + tm.away_after_s)
                elif self.status is SeatStatus.AWAY and t - left >= tm.ghost_after_s:
                    self._set(SeatStatus.GHOST, left + tm.ghost_after_s)
            if self.status is before:
                break
        return self.status

    def _claimed(self, t: float) -> float | None:
        """When belongings on the desk of a free seat were left (the later of the step and the
        last presence), if nobody has been at the seat for ``claim_after_s`` since; else None."""
        if not self._weight_on or self._weight_since is None or self._weight_t is None or self._present_now(t):
            return None
        if self._last_present is None or self._last_present < self._weight_since:
            if not self._weight_witnessed:
                return None  # a step nobody made: the cell, not a bag
            left = self._weight_since
        else:
            left = self._last_present  # on the desk since before its patron left: judged late
        return left if t - left >= self.timing.claim_after_s else None

    def _packed_up(self) -> bool:
        """The desk held the patron's work while they sat (``packed_min_g``: more than a cup and a
        phone, which go along on a break) and nothing is on it now: they packed up and went."""
        return self._stay_load_g >= self.timing.packed_min_g and self._weight_t is not None and not self._weight_on

    def _warm_now(self) -> bool:
        """Warm residue (a coat on the chair) in the latest frame since the patron left."""
        return (self._residue_t is not None and self._looked_t is not None and self._residue_t >= self._looked_t
                and (self._last_present is None or self._residue_t > self._last_present))

    def _cools_slowly(self) -> bool:
        """The residue cools with a time constant over ``belongings_tau_s`` between the latest
        reading and the newest one at least ``cooling_span_s`` older (both warm).

        The chair seat loses its warmth with a time constant of about a minute, a coat or a
        laptop with ten or more: two frames a minute apart tell them apart long before the
        chair has cooled out of sight.
        """
        if not self._cooling:
            return False
        t2, h2 = self._cooling[-1]
        older = next((r for r in reversed(self._cooling[:-1]) if t2 - r[0] >= self.timing.cooling_span_s), None)
        if older is None or h2 <= 0.0 or older[1] <= 0.0:
            return False
        t1, h1 = older
        return h2 >= h1 * math.exp(-(t2 - t1) / self.timing.belongings_tau_s)

    def _lasting(self) -> bool:
        """Belongings: residue seen ``belongings_after_s`` or more after the first frame without
        the patron, or residue cooling as slowly as a coat or a laptop does."""
        if self._residue_t is None or self._absent_from is None:
            return False
        if self._residue_t >= self._absent_from + self.timing.belongings_after_s:
            return True
        return self._cools_slowly()

    def _settled(self) -> bool:
        """It is known that no belongings are there: a frame late enough to show lasting residue
        did not, or the warmth seen after the patron left is already gone (a coat or a laptop
        stays visible for ten minutes and more; only the chair seat cools out of sight this fast)."""
        if self._looked_t is None or self._absent_from is None:
            return False
        if self._looked_t >= self._absent_from + self.timing.belongings_after_s:
            return True
        left = self._last_present if self._last_present is not None else -math.inf
        gone = bool(self._cooling) and self._cooling[-1][1] <= 0.0
        return gone and self._residue_t is not None and self._residue_t > left

    def release(self, t: float) -> None:
        """Mark the seat free now (rule or staff command). A person still there re-occupies it;
        what stands on the desk is no claim (the caller re-zeroes the desk's weight)."""
        self._set(SeatStatus.FREE, t)
        self._unghosted_at = None  # released, not emptied: a hold from now on is a press
        self._session_start = self._left_at = None
        self._provisional = self._by_weight = False
        self._hold_from = self._hold_until = None
        self._weight_on, self._weight_since = False, None
        self._step_t = self._stood_up = None
        self._run_start = t if self._present_now(t) else None
        if self._fresh_since is None:
            self._fresh_since = t

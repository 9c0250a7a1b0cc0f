"""Seat state machine: presence evidence over time -> free / occupied / away / ghost / unknown.

::

    FREE --presence for occupied_after_s--> OCCUPIED
    OCCUPIED --absent for away_after_s, after a stay >= min_stay_s, belongings seen--> AWAY
    OCCUPIED --absent for away_after_s, no belongings seen or a short visit--------> FREE
    AWAY --absent for ghost_after_s since the patron left--> GHOST
    AWAY / GHOST --presence for occupied_after_s--> OCCUPIED   (the patron came back)
    any --release(t)--> FREE      (a rule or a staff command; presence re-occupies it later)
    any --no usable evidence--> UNKNOWN --fresh evidence--> re-derived from scratch

Why: a patron who stands up for a minute must stay *occupied* (absences shorter than
``away_after_s`` are ignored); a passer-by must not leave a taken seat behind (``min_stay_s``);
one-frame dropouts of the detector are bridged (``gap_s``). ``since`` of each status is the
instant the condition was met (e.g. left-at + away_after_s), not the instant it was noticed,
so the result does not depend on how often evidence arrives. The ghost clock runs from the moment
the patron left, and a passer-by at an away seat does not restart it.

Away or gone for good? A thermopile cannot see a bag, but it sees a laptop left open on the desk
(warm, cooling: ``residue``). A patron who leaves warm belongings behind is on a break (AWAY); one
who leaves nothing warm has most likely left (FREE): departures outnumber breaks taken without a
laptop left behind, so FREE is the better guess when nothing is seen. Evidence without that
information (``residue=None``, e.g. a UWB tag standing in for a failed thermopile) keeps the
stay-history rule: a long stay ends AWAY.

After UNKNOWN (sensor unhealthy or stale) nothing from before the outage is trusted: the seat
becomes OCCUPIED after ``occupied_after_s`` of fresh presence, or FREE after ``away_after_s`` of
fresh absence, and stays UNKNOWN until then.
"""

from __future__ import annotations

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


class SeatStateMachine:
    """One seat's status from a stream of ``observe(presence, t)`` calls (``None``: no evidence)."""

    def __init__(self, timing: SeatTiming, t: float = 0.0) -> None:
        self.timing = timing
        self.status = SeatStatus.UNKNOWN
        self.since = t
        self._last_present: float | None = None
        self._run_start: float | None = None  # start of the current presence run
        self._session_start: float | None = None  # when the current patron's stay began
        self._left_at: float | None = None  # when the patron of an AWAY/GHOST seat was last seen
        self._fresh_since: float | None = t  # UNKNOWN: start of fresh evidence
        self._was_unknown = True
        self._last_observed: float | None = None
        self._residue_t: float | None = None  # last time belongings (warm residue) were seen here
        self._looked_t: float | None = None  # last evidence that could have shown belongings
        self._gap_s = timing.gap_s  # grows to span the sensor's own frame interval

    def _set(self, status: SeatStatus, since: float) -> None:
        if status is not self.status:
            self.status, self.since = status, since

    def observe(self, presence: bool | None, t: float, *, residue: bool | None = None) -> SeatStatus:
        """Feed one piece of evidence (True present, False absent, None unusable) taken at ``t``.

        ``residue``: True if something warm was left where the patron sat (a laptop: belongings
        stayed), False if the sensor could have seen it and did not, None if it cannot tell.
        """
        if presence is None:
            self._set(SeatStatus.UNKNOWN, t)
            self._last_present = self._run_start = self._session_start = self._left_at = None
            self._fresh_since = None
            self._residue_t = self._looked_t = None
            return self.status
        if self._fresh_since is None:
            self._fresh_since = t
        if self._last_observed is not None and t > self._last_observed:
            # Evidence arrives once per frame: a frame interval longer than the dropout bridge
            # would otherwise read as a new presence run every frame (never "occupied").
            self._gap_s = max(self.timing.gap_s, min(180.0, 2.5 * (t - self._last_observed)))
        self._last_observed = t
        if residue is not None:
            self._looked_t = t
            if residue:
                self._residue_t = t
        if presence:
            if self._last_present is None or t - self._last_present > self._gap_s:
                self._run_start = t
            self._last_present = t
        return self.advance(t)

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
            confirmed = self._run_start is not None and self._run_length(t) >= tm.occupied_after_s
            gone_for = None if self._present_now(t) or self._last_present is None else t - self._last_present
            if self.status is SeatStatus.UNKNOWN:
                if confirmed and self._run_start is not None:
                    self._session_start = self._run_start
                    self._set(SeatStatus.OCCUPIED, self._run_start + tm.occupied_after_s)
                elif self._fresh_since is not None and not self._present_now(t):
                    quiet_from = max(self._fresh_since, self._last_present or self._fresh_since)
                    if t - quiet_from >= tm.away_after_s:
                        self._set(SeatStatus.FREE, quiet_from + tm.away_after_s)
            elif self.status is SeatStatus.FREE:
                if confirmed and self._run_start is not None:
                    self._session_start = self._run_start
                    self._set(SeatStatus.OCCUPIED, self._run_start + tm.occupied_after_s)
            elif self.status is SeatStatus.OCCUPIED:
                if gone_for is not None and gone_for >= tm.away_after_s and self._last_present is not None:
                    left = self._last_present
                    stay = left - (self._session_start if self._session_start is not None else left)
                    looked = self._looked_t is not None and self._looked_t > left
                    kept = not looked or (self._residue_t is not None and self._residue_t > left)
                    if stay >= tm.min_stay_s and kept:
                        self._left_at = left
                        self._set(SeatStatus.AWAY, left + tm.away_after_s)
                    else:
                        self._session_start = self._run_start = None  # the visit is over, not a new one
                        self._set(SeatStatus.FREE, left + tm.away_after_s)
            else:  # AWAY or GHOST
                left = self._left_at if self._left_at is not None else self.since
                back = confirmed and self._run_start is not None and self._run_start > left
                if back and self._run_start is not None:
                    self._left_at = None
                    self._set(SeatStatus.OCCUPIED, self._run_start + tm.occupied_after_s)
                elif self.status is SeatStatus.AWAY and t - left >= tm.ghost_after_s:
                    self._set(SeatStatus.GHOST, left + tm.ghost_after_s)
            if self.status is before:
                break
        return self.status

    def release(self, t: float) -> None:
        """Mark the seat free now (rule or staff command). A person still there re-occupies it."""
        self._set(SeatStatus.FREE, t)
        self._session_start = self._left_at = None
        self._run_start = t if self._present_now(t) else None
        if self._fresh_since is None:
            self._fresh_since = t

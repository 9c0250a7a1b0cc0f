"""UWB tags inside the gateway: pseudonyms, and smoothing each tag's fixes over time.

Raw tag ids identify a person's badge, so they are replaced at the edge of the gateway by a keyed
hash (:func:`pseudonymise`); only pseudonyms reach the floor state, and only consenting ones are
attached to seats. A salt kept on the gateway (``privacy.tag_salt_file``) makes the pseudonyms
useless outside it, and different on every gateway.

Tags are discovered, not configured: :class:`TagDirectory` pseudonymises a tag the first time it
is heard and keeps the raw id -> pseudonym mapping only while the tag is around (to spare a hash
per report): unheard for ``privacy.tag_retention_s`` it is forgotten, and a withdrawal of consent
forgets it at once. Only counts leave the directory.

:class:`TagTrack` is a constant-velocity Kalman filter in the floor plane with an innovation gate:
a fix that lands implausibly far from where the tag should be (a multipath jump) is dropped; after
``max_misses`` dropped fixes in a row the track restarts at the new fix, since the tag has
evidently moved (or the track itself went wrong).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.sensing.geometry import SeatPoint, nearest_seat

FloatArray = npt.NDArray[np.float64]


def pseudonymise(tag_id: str, salt: bytes | str, length: int = 16) -> str:
    """Keyed hash of a raw tag id, truncated to ``length`` hex digits (64 bits by default)."""
    key = salt.encode() if isinstance(salt, str) else salt
    return hmac.new(key, tag_id.strip().lower().encode(), hashlib.sha256).hexdigest()[:length]


#: Domain of the audit's subject hashes: another key than the pseudonyms', so the audit log cannot be
#: joined with the consent store, and neither names a tag without this gateway's salt.
SUBJECT_HASH_DOMAIN = b"edge-agent audit subject v1"


def subject_hash(tag_id: str, salt: bytes | str) -> str:
    """The audit log's keyed hash of a patron's subject (their tag id): ``sh-`` and 16 hex digits."""
    key = salt.encode() if isinstance(salt, str) else salt
    audit_key = hmac.new(key, SUBJECT_HASH_DOMAIN, hashlib.sha256).digest()
    return "sh-" + hmac.new(audit_key, tag_id.strip().lower().encode(), hashlib.sha256).hexdigest()[:16]


class TagDirectory:
    """Raw tag ids heard on this floor -> their pseudonyms, while the tags are around."""

    def __init__(self, salt: bytes | str, retention_s: float = 300.0) -> None:
        self._salt = salt
        self.retention_s = retention_s
        self._known: dict[str, tuple[str, float]] = {}  # normalised raw id -> (pseudonym, last heard)
        self.discovered = 0  # tags that became known (again), since the daemon started

    @staticmethod
    def _key(raw_id: str) -> str:
        return raw_id.strip().lower()

    def pseudonym(self, raw_id: str, t: float) -> str:
        """The tag's pseudonym; a tag not known yet is discovered now."""
        key = self._key(raw_id)
        known = self._known.get(key)
        if known is None:
            self.discovered += 1
            name = pseudonymise(key, self._salt)
        else:
            name = known[0]
        self._known[key] = (name, t)
        return name

    def name_of(self, raw_id: str) -> str:
        """The pseudonym a tag has (or would have) on this gateway, without marking it heard."""
        known = self._known.get(self._key(raw_id))
        return known[0] if known is not None else pseudonymise(self._key(raw_id), self._salt)

    def subject_hash(self, raw_id: str) -> str:
        """What the audit log keeps of a patron (:func:`subject_hash`), never the id or the pseudonym."""
        return subject_hash(raw_id, self._salt)

    def knows(self, raw_id: str) -> float | None:
        """When the tag was last heard (its clock), if its mapping is held now."""
        known = self._known.get(self._key(raw_id))
        return None if known is None else known[1]

    def forget(self, raw_id: str) -> str:
        """Drop the tag's mapping now (consent withdrawn); returns its pseudonym all the same."""
        name = self.name_of(raw_id)
        self._known.pop(self._key(raw_id), None)
        return name

    def expire(self, t: float) -> list[str]:
        """Forget the tags unheard for ``retention_s``; returns their pseudonyms."""
        gone = [k for k, (_, last) in self._known.items() if t - last > self.retention_s]
        return [self._known.pop(k)[0] for k in gone]

    def __len__(self) -> int:
        return len(self._known)


def _constant(array: FloatArray) -> FloatArray:
    array.flags.writeable = False  # shared by every track: never written
    return array


_EYE2, _EYE4 = _constant(np.eye(2)), _constant(np.eye(4))
_OBSERVE = np.zeros((2, 4))  # a fix observes x and y
_OBSERVE[0, 0] = _OBSERVE[1, 1] = 1.0
_constant(_OBSERVE)


@functools.lru_cache(maxsize=256)
def _motion(dt: float, accel_sigma: float) -> tuple[FloatArray, FloatArray]:
    """The constant-velocity model over ``dt``: transition and process noise.

    Kept per interval: a listener's tags report at a fixed period, so most fixes of a day come
    ``dt`` apart for a handful of values of ``dt``, and building these (with their fancy-indexed
    assignments) cost more than the filter's arithmetic. The same arrays, built the same way.
    """
    f = np.eye(4)
    f[0, 2] = f[1, 3] = dt
    q1 = accel_sigma**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
    q = np.zeros((4, 4))
    q[np.ix_([0, 2], [0, 2])] = q1
    q[np.ix_([1, 3], [1, 3])] = q1
    return _constant(f), _constant(q)


@dataclass
class TagTrack:
    """Constant-velocity Kalman filter for one tag's 2D position (metres, monotonic seconds)."""

    accel_sigma: float = 0.5  # m/s^2: people walk, stop and turn
    gate_chi2: float = 13.8  # 2 degrees of freedom, p = 0.001
    max_misses: int = 3
    state: FloatArray | None = None  # x, y, vx, vy
    cov: FloatArray = field(default_factory=lambda: np.eye(4))
    t: float | None = None
    misses: int = 0
    rejected: int = 0

    def _start(self, x: float, y: float, t: float, sigma: float) -> None:
        self.state = np.array([x, y, 0.0, 0.0])
        self.cov = np.diag([sigma**2, sigma**2, 1.0, 1.0])
        self.t = t
        self.misses = 0

    def update(self, x: float, y: float, t: float, sigma_m: float = 0.1) -> bool:
        """Take one fix; returns False when the gate rejected it (the estimate is unchanged)."""
        sigma = max(sigma_m, 0.02)
        if self.state is None or self.t is None or t < self.t:
            self._start(x, y, t, sigma)
            return True
        f, q = _motion(t - self.t, self.accel_sigma)
        h = _OBSERVE
        state = f @ self.state
        cov = f @ self.cov @ f.T + q
        innovation = np.array([x, y]) - h @ state
        s = h @ cov @ h.T + _EYE2 * sigma**2
        d2 = float(innovation @ np.linalg.solve(s, innovation))
        if d2 > self.gate_chi2:
            self.misses += 1
            self.rejected += 1
            if self.misses > self.max_misses:
                self._start(x, y, t, sigma)
                return True
            return False
        gain = cov @ h.T @ np.linalg.inv(s)
        self.state = state + gain @ innovation
        self.cov = (_EYE4 - gain @ h) @ cov
        self.t = t
        self.misses = 0
        return True

    @property
    def position(self) -> tuple[float, float] | None:
        if self.state is None:
            return None
        return float(self.state[0]), float(self.state[1])

    @property
    def sigma_m(self) -> float:
        """The position's standard deviation along its worse axis (0 before the first fix)."""
        if self.state is None:
            return 0.0
        return math.sqrt(max(float(self.cov[0, 0]), float(self.cov[1, 1]), 0.0))


@dataclass(frozen=True, slots=True)
class SeatReach:
    """Which occupied seat a tag can be its occupant's, and how far off its fix may be.

    A UWB fix near furniture is biased, not just noisy: a shelf or a partition in one anchor's
    path makes that range read long by decimetres to over a metre (docs/positioning.md), for as
    long as the patron sits there, and a four-anchor fix moves by a good part of that excess. Such
    a fix scatters as little as a clean one, and a tag engine's quality figure need not show it
    (PANS's compares its four ranges with each other), so neither says how far off it is. What
    does say something is the floor: the seats' thermopiles say where people sit, and when they
    sat down. So an occupied seat is a tag's only if

    - its occupant sat down when the tag arrived, give or take ``coincide_s`` (the thermopiles
      are read once a minute; arrived: has stayed within ``reach_m`` of where it was since), or
      it is the seat this tag just left and it has stayed occupied since (back from a short
      walk). Somebody who has sat there for an hour is not the carrier of a tag that came
      by a minute ago, however near it passes;
    - no other tag holds it;
    - no other seat that passes these tests is within ``margin_m`` of as near (a tag between two
      such seats belongs to neither: preferences at the wrong desk are worse than none).

    Only a tag at rest (``rest_fixes`` fixes within ``still_m`` of where it stopped) claims an
    occupied seat: the nearest such seat within ``reach_m``, plus twice the track's own standard
    deviation (a track fed poor fixes reaches further).
    """

    reach_m: float = 2.0
    margin_m: float = 0.5
    rest_fixes: int = 3
    still_m: float = 0.5
    coincide_s: float = 120.0


@dataclass(slots=True)
class FloorTag:
    """One tag on the floor: its track, when it was last fixed, and the seat it is at.

    A tag takes the nearest seat within ``enter_m`` of it while that seat is free (its patron is
    sitting down), or, once at rest, the occupied seat it can be the occupant's
    (:class:`SeatReach`: a fix a shelf pulls off by a metre and more still finds its seat); it
    keeps the seat while it stays within ``leave_m`` (within the reach, for one taken from
    further off, while at rest): fixes scatter by decimetres, and a seated patron whose tag
    flickered between "at the seat" and "not" would restart the time their preferences wait.
    That time counts from when the tag came near the seat (or to rest, for a seat further off).
    """

    track: TagTrack
    last_t: float
    seat: str | None = None
    seat_since: float | None = None
    near: str | None = None  # the nearest seat within leave_m, and since when
    near_since: float | None = None
    rest_xy: tuple[float, float] | None = None  # where the tag stopped, since when, fixes there since
    rest_since: float | None = None
    rest_count: int = 0
    stay_xy: tuple[float, float] | None = None  # where it came within reach of, and when (walkers: every fix)
    stay_since: float | None = None
    reached: bool = False  # the seat was taken from beyond leave_m (kept within the reach while at rest)
    last_seat: str | None = None  # the seat held before, and when it was let go
    left_at: float | None = None

    def settle(self, t: float, seats: Sequence[SeatPoint], enter_m: float, leave_m: float,
               occupied_since: Callable[[str], float | None], held_by_other: Callable[[str], bool] = lambda _: False,
               reach: SeatReach | None = None) -> None:
        """Re-judge the seat after an accepted fix at ``t``.

        ``occupied_since(seat)``: when the seat became occupied, None unless it is occupied now;
        ``held_by_other(seat)``: another tag is at that seat.
        """
        pos = self.track.position
        if pos is None:
            return
        r = reach or SeatReach()
        self._rest(pos, t, r)
        reach_m = r.reach_m + 2.0 * self.track.sigma_m
        if self.seat is not None:
            here = next((s for s in seats if s.id == self.seat), None)
            keep = reach_m if self.reached and self.resting(r) else leave_m
            if here is not None and math.hypot(pos[0] - here.x, pos[1] - here.y) <= keep:
                return
        hit = nearest_seat(pos[0], pos[1], seats, leave_m)
        if (hit[0] if hit else None) != self.near:
            self.near, self.near_since = (hit[0], t) if hit else (None, None)
        around = [s for s in seats if math.hypot(pos[0] - s.x, pos[1] - s.y) <= reach_m + r.margin_m]
        theirs = [s for s in around if self._could_be_theirs(s.id, occupied_since, held_by_other, r)]
        claim: tuple[str, float] | None = None
        if hit is not None and hit[1] <= enter_m and occupied_since(hit[0]) is None:
            claim = hit  # a free seat: its patron is sitting down
        elif self.resting(r):  # an occupied seat: only a tag that stopped (a passer-by claims nothing)
            claim = nearest_seat(pos[0], pos[1], theirs, reach_m)
        if claim is not None and _contested(pos, claim, theirs, r.margin_m):
            claim = None
        seat = claim[0] if claim is not None else None
        if seat != self.seat:
            if self.seat is not None:
                self.last_seat, self.left_at = self.seat, t
            self.seat, self.seat_since = seat, (self._arrived(seat) if seat else None)
            self.reached = claim is not None and claim[1] > leave_m

    def resting(self, reach: SeatReach) -> bool:
        """Whether the tag has stayed put for the last ``rest_fixes`` fixes."""
        return self.rest_count >= reach.rest_fixes

    def _rest(self, pos: tuple[float, float], t: float, reach: SeatReach) -> None:
        if self.rest_xy is not None and math.hypot(pos[0] - self.rest_xy[0], pos[1] - self.rest_xy[1]) <= reach.still_m:
            self.rest_count += 1
        else:
            self.rest_xy, self.rest_since, self.rest_count = pos, t, 1
        if self.stay_xy is None or math.hypot(pos[0] - self.stay_xy[0], pos[1] - self.stay_xy[1]) > reach.reach_m:
            self.stay_xy, self.stay_since = pos, t

    def _arrived(self, seat: str) -> float | None:
        """When the tag came to this seat: came near it, or (a seat further off) came to rest."""
        return self.near_since if self.near == seat else self.rest_since

    def _could_be_theirs(self, seat: str, occupied_since: Callable[[str], float | None],
                         held_by_other: Callable[[str], bool], r: SeatReach) -> bool:
        """An occupied seat whose occupant sat down when this tag arrived (or that it just left)."""
        since = occupied_since(seat)
        if since is None or held_by_other(seat):
            return False
        came_together = self.stay_since is not None and since >= self.stay_since - r.coincide_s
        back_to_it = seat == self.last_seat and self.left_at is not None and since <= self.left_at
        return came_together or back_to_it


def _contested(pos: tuple[float, float], hit: tuple[str, float], seats: Sequence[SeatPoint], margin_m: float) -> bool:
    """Another of ``seats`` within ``margin_m`` of as close to ``pos`` as the seat ``hit``."""
    return any(s.id != hit[0] and math.hypot(pos[0] - s.x, pos[1] - s.y) < hit[1] + margin_m for s in seats)

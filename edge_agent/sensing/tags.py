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

import hashlib
import hmac
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
        dt = t - self.t
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q1 = self.accel_sigma**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
        q = np.zeros((4, 4))
        q[np.ix_([0, 2], [0, 2])] = q1
        q[np.ix_([1, 3], [1, 3])] = q1
        state = f @ self.state
        cov = f @ self.cov @ f.T + q
        h = np.zeros((2, 4))
        h[0, 0] = h[1, 1] = 1.0
        innovation = np.array([x, y]) - h @ state
        s = h @ cov @ h.T + np.eye(2) * sigma**2
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
        self.cov = (np.eye(4) - gain @ h) @ cov
        self.t = t
        self.misses = 0
        return True

    @property
    def position(self) -> tuple[float, float] | None:
        if self.state is None:
            return None
        return float(self.state[0]), float(self.state[1])


@dataclass(slots=True)
class FloorTag:
    """One tag on the floor: its track, when it was last fixed, and the seat it is at.

    A tag takes the nearest seat within ``enter_m`` of it, or within ``leave_m`` if that seat is
    occupied (a person sits there: the tag is most likely theirs, pulled off by a link a shelf
    blocks), and keeps it while it stays within ``leave_m``: fixes scatter by decimetres, and a
    seated patron whose tag flickered between "at the seat" and "not" would restart the time
    their preferences wait. That time counts from when the tag came near the seat.
    """

    track: TagTrack
    last_t: float
    seat: str | None = None
    seat_since: float | None = None
    near: str | None = None  # the nearest seat within leave_m, and since when
    near_since: float | None = None

    def settle(self, t: float, seats: Sequence[SeatPoint], enter_m: float, leave_m: float,
               occupied: Callable[[str], bool]) -> None:
        """Re-judge the seat after an accepted fix at ``t``."""
        pos = self.track.position
        if pos is None:
            return
        if self.seat is not None:
            here = next((s for s in seats if s.id == self.seat), None)
            if here is not None and (pos[0] - here.x) ** 2 + (pos[1] - here.y) ** 2 <= leave_m**2:
                return
        hit = nearest_seat(pos[0], pos[1], seats, leave_m)
        if (hit[0] if hit else None) != self.near:
            self.near, self.near_since = (hit[0], t) if hit else (None, None)
        seat = hit[0] if hit is not None and (hit[1] <= enter_m or occupied(hit[0])) else None
        if seat != self.seat:
            self.seat, self.seat_since = seat, (self.near_since if seat else None)

"""UWB tags inside the gateway: pseudonyms, and smoothing each tag's fixes over time.

Raw tag ids identify a person's badge, so they are replaced at the edge of the gateway by a keyed
hash (:func:`pseudonymise`); only pseudonyms reach the floor state, and only consenting ones are
attached to seats. A salt kept on the gateway (``privacy.tag_salt_file``) makes the pseudonyms
useless outside it.

:class:`TagTrack` is a constant-velocity Kalman filter in the floor plane with an innovation gate:
a fix that lands implausibly far from where the tag should be (a multipath jump) is dropped; after
``max_misses`` dropped fixes in a row the track restarts at the new fix, since the tag has
evidently moved (or the track itself went wrong).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def pseudonymise(tag_id: str, salt: bytes | str, length: int = 16) -> str:
    """Keyed hash of a raw tag id, truncated to ``length`` hex digits (64 bits by default)."""
    key = salt.encode() if isinstance(salt, str) else salt
    return hmac.new(key, tag_id.strip().lower().encode(), hashlib.sha256).hexdigest()[:length]


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

"""A tag's Kalman filter with its motion model kept per interval gives the estimates, bit for bit,
of the filter that builds the model on every fix (kept here as the reference)."""

from __future__ import annotations

import random

import numpy as np

from edge_agent.sensing.tags import TagTrack


def _reference_update(track: TagTrack, x: float, y: float, t: float, sigma_m: float = 0.1) -> bool:
    """TagTrack.update as it was: the transition, noise and observation matrices made afresh."""
    sigma = max(sigma_m, 0.02)
    if track.state is None or track.t is None or t < track.t:
        track._start(x, y, t, sigma)
        return True
    dt = t - track.t
    f = np.eye(4)
    f[0, 2] = f[1, 3] = dt
    q1 = track.accel_sigma**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
    q = np.zeros((4, 4))
    q[np.ix_([0, 2], [0, 2])] = q1
    q[np.ix_([1, 3], [1, 3])] = q1
    state = f @ track.state
    cov = f @ track.cov @ f.T + q
    h = np.zeros((2, 4))
    h[0, 0] = h[1, 1] = 1.0
    innovation = np.array([x, y]) - h @ state
    s = h @ cov @ h.T + np.eye(2) * sigma**2
    d2 = float(innovation @ np.linalg.solve(s, innovation))
    if d2 > track.gate_chi2:
        track.misses += 1
        track.rejected += 1
        if track.misses > track.max_misses:
            track._start(x, y, t, sigma)
            return True
        return False
    gain = cov @ h.T @ np.linalg.inv(s)
    track.state = state + gain @ innovation
    track.cov = (np.eye(4) - gain @ h) @ cov
    track.t = t
    track.misses = 0
    return True


def test_the_same_estimates_bit_for_bit_as_the_filter_built_afresh() -> None:
    rng = random.Random(7)
    taken = rejected = 0
    for _ in range(60):
        accel = rng.choice([0.5, 0.5, 1.5])
        fast, reference = TagTrack(accel_sigma=accel), TagTrack(accel_sigma=accel)
        t, x, y = 0.0, rng.uniform(0, 30), rng.uniform(0, 20)
        for _ in range(80):
            t += rng.choice([30.0, 30.0, 2.0, 0.5, rng.uniform(0.1, 60.0), 0.0])
            if rng.random() < 0.05:
                t -= 5.0  # a fix from the past starts the track again
            jump = 8.0 if rng.random() < 0.1 else 0.3  # now and then a fix far off: the gate rejects it
            x, y = x + rng.gauss(0, jump), y + rng.gauss(0, jump)
            sigma = rng.choice([0.1, 0.01, 0.3])
            got, want = fast.update(x, y, t, sigma), _reference_update(reference, x, y, t, sigma)
            assert got == want
            taken, rejected = taken + got, rejected + (not got)
            assert fast.state is not None and reference.state is not None
            assert np.array_equal(fast.state, reference.state) and np.array_equal(fast.cov, reference.cov)
            assert (fast.t, fast.misses, fast.rejected) == (reference.t, reference.misses, reference.rejected)
    assert taken > 1000 and rejected > 50  # both branches of the gate were taken, many times


def test_tracks_share_no_array_they_write() -> None:
    one, two = TagTrack(), TagTrack()
    for t in (0.0, 30.0, 60.0):
        one.update(1.0 + t / 100, 2.0, t)
        two.update(5.0, 1.0 - t / 100, t)
    assert one.state is not None and two.state is not None
    assert one.cov is not two.cov and one.state[0] != two.state[0]
    one.cov[0, 0] = 99.0  # a caller writing a track's own arrays leaves the shared model alone
    assert two.update(5.0, 0.0, 90.0) and two.cov[0, 0] != 99.0

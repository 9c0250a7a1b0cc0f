"""A tag's Kalman filter with its motion model kept per interval gives the estimates, bit for bit,
of the filter that builds the model on every fix: the same track fed the same fixes with the
model's cache emptied before each one is the reference."""

from __future__ import annotations

import random

import numpy as np
import pytest

from edge_agent.sensing.tags import TagTrack, _motion


def _reference_update(track: TagTrack, x: float, y: float, t: float, sigma_m: float = 0.1) -> bool:
    """TagTrack.update with the transition and noise matrices made afresh for this fix."""
    _motion.cache_clear()
    return track.update(x, y, t, sigma_m)


@pytest.mark.parametrize("dt", [0.0, 0.5, 2.0, 30.0, 47.3])
def test_the_motion_model_is_the_constant_velocity_model(dt: float) -> None:
    """Position moves by velocity times dt; white acceleration noise of variance a^2 per axis."""
    f, q = _motion(dt, 1.5)
    assert np.array_equal(f, [[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]])
    per_axis = 1.5**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
    for position, velocity in ((0, 2), (1, 3)):
        assert np.array_equal(q[np.ix_([position, velocity], [position, velocity])], per_axis)
    assert q[0, 1] == q[0, 3] == q[1, 2] == q[2, 3] == 0.0
    assert not f.flags.writeable and not q.flags.writeable  # shared by every track


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

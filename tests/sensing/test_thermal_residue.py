"""What a person leaves behind, and the background under it: the rules that keep a break visible.

A patron stepping out leaves their laptop, coat and chair seat warm; the detector must let go of
the person at once, keep the background from learning that warmth, and keep a person whose own
coat makes their blob too large.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.config import SiteConfig
from edge_agent.sensing.thermal import ThermalSeatDetector
from tests.sensing.frames import add_warm, block_at, empty_room
from tests.sensing.test_thermal import SENSOR, _seat, _warm_up


@pytest.fixture
def detector(floor_config: SiteConfig) -> ThermalSeatDetector:
    sensor = next(s for s in floor_config.sensors if s.id == SENSOR)
    return ThermalSeatDetector.for_sensor(sensor, floor_config.seats)


def _block(cfg: SiteConfig, seat_id: str, size: int = 2) -> tuple[int, int]:
    mount = next(s for s in cfg.sensors if s.id == SENSOR).mount
    assert mount is not None
    rows, cols = block_at(mount, *_seat(cfg, seat_id), size=size)
    return rows.start, cols.start


def _with(frame: np.ndarray, r0: int, c0: int, deltas: list[list[float]]) -> np.ndarray:
    out = frame.copy()
    out[r0:r0 + len(deltas), c0:c0 + len(deltas[0])] += np.asarray(deltas)
    return out


def test_head_gone_with_half_the_heat_left_is_residue(detector: ThermalSeatDetector, floor_config: SiteConfig) -> None:
    """Laptop, coat and chair keep 60 % of the blob's heat but not the head: the person has gone."""
    rng = np.random.default_rng(21)
    r0, c0 = _block(floor_config, "S001")
    t = _warm_up(detector, rng)
    seated = [[8.0, 4.0], [4.0, 4.0]]  # the head on one pixel, shoulders and laptop on the others
    for _ in range(10):
        assert detector.update(_with(empty_room(rng), r0, c0, seated), t).presence["S001"]
        t += 60.0
    left = [[1.5, 4.5], [3.5, 3.0]]  # heat 12.5 of 20, peak 4.5 of 8
    ev = detector.update(_with(empty_room(rng), r0, c0, left), t)
    assert not ev.presence["S001"]
    assert ev.residue.get("S001", 0.0) > 5.0  # reported as what was left, with its heat


def test_person_stays_a_person_when_warmth_beside_them_makes_the_blob_too_large(
    detector: ThermalSeatDetector, floor_config: SiteConfig
) -> None:
    rng = np.random.default_rng(22)
    r0, c0 = _block(floor_config, "S001")
    t = _warm_up(detector, rng)
    person = (slice(r0, r0 + 2), slice(c0, c0 + 2))
    for _ in range(5):
        assert detector.update(add_warm(empty_room(rng), person, 6.0), t).presence["S001"]
        t += 60.0
    assert detector.background is not None
    under = float(detector.background[person].mean())
    ring = (slice(max(r0 - 1, 0), r0 + 3), slice(max(c0 - 1, 0), c0 + 3))  # 16 pixels, over 1 m^2
    for _ in range(5):
        frame = add_warm(add_warm(empty_room(rng), ring, 1.5), person, 4.5)
        ev = detector.update(frame, t)
        assert ev.presence["S001"], [b.reason for b in ev.blobs]
        t += 60.0
    assert abs(float(detector.background[person].mean()) - under) < 0.2  # not learnt


def test_two_neighbours_joined_by_warmth_between_them_stay_two_people(
    detector: ThermalSeatDetector, floor_config: SiteConfig
) -> None:
    """Warmth between two seated neighbours (coats, laptops) joins them into a patch larger than
    one person can be: still two people, each on their seat, neither learnt by the background."""
    rng = np.random.default_rng(23)
    (r1, c1), (r2, c2) = _block(floor_config, "S001"), _block(floor_config, "S002")
    assert r1 == r2 and c2 >= c1 + 3  # side by side in the same rows, pixels apart
    t = _warm_up(detector, rng)
    people = [(slice(r1, r1 + 2), slice(c1, c1 + 2)), (slice(r2, r2 + 2), slice(c2, c2 + 2))]

    def seated(frame: np.ndarray, delta_c: float) -> np.ndarray:
        for where in people:
            frame = add_warm(frame, where, delta_c)
        return frame

    for _ in range(5):
        ev = detector.update(seated(empty_room(rng), 6.0), t)
        assert ev.presence["S001"] and ev.presence["S002"]
        t += 60.0
    bridge = (slice(r1, r1 + 2), slice(c1 + 2, c2))
    for _ in range(5):
        ev = detector.update(seated(add_warm(empty_room(rng), bridge, 1.5), 4.5), t)
        assert ev.presence["S001"] and ev.presence["S002"], [(b.reason, len(b.pixels)) for b in ev.blobs]
        assert ev.people == 2
        t += 60.0


def test_background_does_not_learn_warmth_cooling_where_someone_sat(
    detector: ThermalSeatDetector, floor_config: SiteConfig
) -> None:
    """After the patron and their residue are gone, +0.8 C (under hold_c) lingers for 10 minutes:
    the background there stays at the empty room's, while elsewhere such warmth is learnt."""
    rng = np.random.default_rng(23)
    r0, c0 = _block(floor_config, "S001")
    far_r, far_c = _block(floor_config, "S004")
    t = _warm_up(detector, rng)
    person = (slice(r0, r0 + 2), slice(c0, c0 + 2))
    elsewhere = (slice(far_r, far_r + 2), slice(far_c, far_c + 2))
    for _ in range(10):
        detector.update(add_warm(empty_room(rng), person, 6.0), t)
        t += 60.0
    assert detector.background is not None
    empty_level = float(detector.background[person].mean())
    for _ in range(10):
        detector.update(add_warm(add_warm(empty_room(rng), person, 0.8), elsewhere, 0.8), t)
        t += 60.0
    assert float(detector.background[person].mean()) - empty_level < 0.15
    assert float(detector.background[elsewhere].mean()) - 22.0 > 0.6  # an empty spot learns it
    for _ in range(15):  # once settled, the spot where the patron sat learns again too
        detector.update(add_warm(empty_room(rng), person, 0.8), t)
        t += 60.0
    assert float(detector.background[person].mean()) - empty_level > 0.5

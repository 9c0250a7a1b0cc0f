"""Thermopile processing on seeded synthetic frames."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.errors import SensingError, SensorImplausibleError
from edge_agent.config import SiteConfig
from edge_agent.sensing.geometry import SeatPoint, floor_to_pixel, pixel_map
from edge_agent.sensing.thermal import ThermalSeatDetector, assign_to_seats
from tests.sensing.frames import add_warm, block_at, empty_room

SENSOR = "thermal-z1-quiet-1"  # mount (2.5, 2.5), seats S001..S004 at 1.7/3.3


@pytest.fixture
def detector(floor_config: SiteConfig) -> ThermalSeatDetector:
    sensor = next(s for s in floor_config.sensors if s.id == SENSOR)
    return ThermalSeatDetector.for_sensor(sensor, floor_config.seats)


def _seat(cfg: SiteConfig, seat_id: str) -> tuple[float, float]:
    seat = next(s for s in cfg.seats if s.id == seat_id)
    return seat.x, seat.y


def _warm_up(det: ThermalSeatDetector, rng: np.random.Generator, seconds: float = 60.0) -> float:
    t = 0.0
    while t < seconds:
        det.update(empty_room(rng), t)
        t += 2.0
    return t


def test_pixel_map_is_symmetric_and_matches_inverse(floor_config: SiteConfig) -> None:
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    pm = pixel_map(mount)
    assert pm.x[0, 0] < mount.x < pm.x[0, 7]
    assert math.isclose(pm.x[3, 3] + pm.x[3, 4], 2 * mount.x)
    # centre pixels ~0.34 m wide at 2.6 m and 60 deg; the edge ones are wider
    assert 0.10 < pm.area_m2[3, 3] < 0.13 < pm.area_m2[0, 0]
    row, col = floor_to_pixel(mount, float(pm.x[2, 5]), float(pm.y[2, 5]))
    assert (round(row, 6), round(col, 6)) == (2.0, 5.0)


@pytest.mark.parametrize("seat_id", ["S001", "S002", "S003", "S004"])
def test_person_under_sensor_is_assigned_to_the_right_seat(
    detector: ThermalSeatDetector, floor_config: SiteConfig, seat_id: str
) -> None:
    rng = np.random.default_rng(1)
    t = _warm_up(detector, rng)
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    where = block_at(mount, *_seat(floor_config, seat_id))
    ev = detector.update(add_warm(empty_room(rng), where, 4.0), t)
    assert ev.people == 1
    assert ev.presence == {s: s == seat_id for s in ("S001", "S002", "S003", "S004")}


def test_person_straddling_two_seats_counts_once(detector: ThermalSeatDetector, floor_config: SiteConfig) -> None:
    rng = np.random.default_rng(2)
    t = _warm_up(detector, rng)
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    x = (_seat(floor_config, "S001")[0] + _seat(floor_config, "S002")[0]) / 2
    where = block_at(mount, x, _seat(floor_config, "S001")[1])
    ev = detector.update(add_warm(empty_room(rng), where, 4.0), t)
    assert ev.people == 1
    assert sum(ev.presence.values()) == 1


def test_assignment_is_one_to_one() -> None:
    seats = [SeatPoint("a", 0.0, 0.0), SeatPoint("b", 1.6, 0.0)]
    got = assign_to_seats([(0.1, 0.0), (0.3, 0.0)], seats, radius_m=1.5)
    assert got == {0: "a", 1: "b"}
    assert assign_to_seats([(5.0, 5.0)], seats, radius_m=1.0) == {}


def test_laptop_is_not_a_person(detector: ThermalSeatDetector, floor_config: SiteConfig) -> None:
    rng = np.random.default_rng(3)
    t = _warm_up(detector, rng)
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    where = block_at(mount, *_seat(floor_config, "S003"), size=1)
    for _ in range(300):  # ten minutes of a laptop on the desk
        ev = detector.update(add_warm(empty_room(rng), where, 1.5), t)
        assert ev.people == 0 and not any(ev.presence.values())
        t += 2.0


def test_cooling_cup_is_not_a_person(detector: ThermalSeatDetector, floor_config: SiteConfig) -> None:
    rng = np.random.default_rng(4)
    t0 = _warm_up(detector, rng)
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    where = block_at(mount, *_seat(floor_config, "S002"), size=1)
    verdicts = set()
    for k in range(900):  # 30 minutes; a cup starting +5 C cooling with a 10 minute time constant
        t = t0 + 2.0 * k
        ev = detector.update(add_warm(empty_room(rng), where, 5.0 * math.exp(-(t - t0) / 600.0)), t)
        assert ev.people == 0 and not any(ev.presence.values()), f"cup taken for a person at {t - t0:.0f} s"
        verdicts |= {b.reason for b in ev.blobs}
    assert "cooling object" in verdicts


def test_steady_single_pixel_person_is_confirmed_after_the_wait(
    detector: ThermalSeatDetector, floor_config: SiteConfig
) -> None:
    rng = np.random.default_rng(5)
    t0 = _warm_up(detector, rng)
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    where = block_at(mount, *_seat(floor_config, "S004"), size=1)
    seen_at = None
    for k in range(120):
        ev = detector.update(add_warm(empty_room(rng), where, 3.5), t0 + 2.0 * k)
        if ev.presence["S004"] and seen_at is None:
            seen_at = 2.0 * k
    assert seen_at is not None and detector.params.point_confirm_s <= seen_at <= detector.params.point_confirm_s + 4


def test_still_person_is_not_absorbed_while_drift_is_followed(
    detector: ThermalSeatDetector, floor_config: SiteConfig
) -> None:
    rng = np.random.default_rng(6)
    t0 = _warm_up(detector, rng)
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    person = block_at(mount, *_seat(floor_config, "S001"))
    sun = (slice(0, 3), slice(5, 8))  # empty pixels over S002's far side: sun creeping over the desk
    hour = 3600.0
    k = 0
    while 2.0 * k <= hour:
        t = t0 + 2.0 * k
        frame = empty_room(rng)
        frame[sun] += 2.0 * (t - t0) / hour
        ev = detector.update(add_warm(frame, person, 4.0), t)
        assert ev.presence["S001"], f"person lost after {t - t0:.0f} s"
        assert ev.people == 1
        k += 1
    assert detector.background is not None
    bg = detector.background
    assert np.all(bg[person] < 22.6), "the person was absorbed into the background"
    assert abs(float(bg[sun].mean()) - 24.0) < 0.3, "slow drift on empty pixels was not followed"


def test_person_learnt_at_start_up_heals_when_they_leave(
    detector: ThermalSeatDetector, floor_config: SiteConfig
) -> None:
    rng = np.random.default_rng(7)
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    where = block_at(mount, *_seat(floor_config, "S003"))
    detector.update(add_warm(empty_room(rng), where, 4.0), 0.0)  # learnt as background
    for k in range(1, 90):
        detector.update(empty_room(rng), 2.0 * k)
    assert detector.background is not None
    assert abs(float(detector.background[where].mean()) - 22.0) < 0.5
    ev = detector.update(add_warm(empty_room(rng), where, 4.0), 200.0)
    assert ev.presence["S003"]


def test_capture_background_refused_with_people_in_view(
    detector: ThermalSeatDetector, floor_config: SiteConfig
) -> None:
    rng = np.random.default_rng(8)
    t = _warm_up(detector, rng)
    detector.capture_background()  # empty: allowed
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    detector.update(add_warm(empty_room(rng), block_at(mount, *_seat(floor_config, "S002")), 4.0), t)
    with pytest.raises(SensingError, match="person"):
        detector.capture_background()
    with pytest.raises(SensingError, match="empty"):
        detector.set_background(empty_room(rng))


@pytest.mark.parametrize("bad", [np.zeros((8, 7)), np.full((8, 8), np.nan), np.full((8, 8), 300.0)])
def test_implausible_frames_are_refused(detector: ThermalSeatDetector, bad: np.ndarray) -> None:
    with pytest.raises(SensorImplausibleError):
        detector.update(bad, 0.0)


def _leave(
    det: ThermalSeatDetector, cfg: SiteConfig, rng: np.random.Generator, laptop: bool
) -> list[tuple[bool, bool]]:
    """A person (with or without a laptop) sits 10 min, then leaves; the laptop cools (tau 600 s)."""
    mount = next(s for s in cfg.sensors if s.id == SENSOR).mount
    assert mount is not None
    x, y = _seat(cfg, "S001")
    person, lap = block_at(mount, x, y), block_at(mount, x + 0.4, y + 0.4, size=1)
    t = _warm_up(det, rng)
    for _ in range(20):
        frame = add_warm(empty_room(rng), person, 6.0)
        det.update(add_warm(frame, lap, 4.0) if laptop else frame, t)
        t += 30.0
    assert det.update(add_warm(empty_room(rng), person, 6.0), t).presence["S001"]
    left, seen = t, list[tuple[bool, bool]]()
    for _ in range(8):
        t += 30.0
        frame = empty_room(rng)
        ev = det.update(add_warm(frame, lap, 4.0 * math.exp(-(t - left) / 600.0)) if laptop else frame, t)
        seen.append((ev.presence["S001"], "S001" in ev.residue))
    return seen


def test_laptop_left_behind_is_residue_not_the_person(detector: ThermalSeatDetector, floor_config: SiteConfig) -> None:
    seen = _leave(detector, floor_config, np.random.default_rng(5), laptop=True)
    assert not any(present for present, _ in seen), seen  # the warm laptop is not its owner
    assert seen[0][1] and any(residue for _, residue in seen[:4]), seen


def test_nothing_left_behind_means_no_residue(detector: ThermalSeatDetector, floor_config: SiteConfig) -> None:
    seen = _leave(detector, floor_config, np.random.default_rng(6), laptop=False)
    assert seen == [(False, False)] * 8


def test_weak_slowly_cooling_residue_is_followed_below_on_c(
    detector: ThermalSeatDetector, floor_config: SiteConfig
) -> None:
    """A coat left on the chair back: +1.6 C on two pixels (under on_c), cooling over 12 minutes.

    It must still be reported five minutes on (followed down to hold_c, background frozen under
    it), and never be taken for the person."""
    rng = np.random.default_rng(7)
    mount = next(s for s in floor_config.sensors if s.id == SENSOR).mount
    assert mount is not None
    x, y = _seat(floor_config, "S001")
    person = block_at(mount, x, y)
    coat = block_at(mount, x, y, size=1)
    coat = (coat[0], slice(coat[1].start, coat[1].start + 2))
    t = _warm_up(detector, rng)
    for _ in range(30):
        detector.update(add_warm(add_warm(empty_room(rng), person, 6.0), coat, 1.6), t)
        t += 60.0
    left = t
    seen = []
    for _ in range(6):
        frame = add_warm(empty_room(rng), coat, 1.6 * math.exp(-(t - left) / 720.0))
        ev = detector.update(frame, t)
        seen.append((ev.presence["S001"], "S001" in ev.residue))
        t += 60.0
    assert not any(present for present, _ in seen), seen
    assert all(residue for _, residue in seen), seen

"""FloorModel end to end on the example floor with synthetic frames, readings and tags."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from drivers.errors import SensingError
from drivers.ports import Reading
from edge_agent.config import SiteConfig
from edge_agent.sensing.floor import FloorModel
from edge_agent.sensing.scoring import score_seats, seat_confusion, zone_count_mae
from rules.state import Quality, SeatStatus
from tests.sensing.frames import add_warm, block_at, empty_room

WALL = datetime(2025, 3, 4, 10, 0)
Z1 = "z1-quiet"
Z1_THERMAL = [f"thermal-z1-quiet-{i}" for i in (1, 2, 3)]


def feed(
    model: FloorModel,
    cfg: SiteConfig,
    t0: float,
    t1: float,
    rng: np.random.Generator,
    people: dict[str, str] | None = None,
    skip: set[str] | None = None,
) -> None:
    """Frames every 2 s for all thermopiles; ``people`` maps seat -> sensor that sees a person there."""
    seats = {s.id: s for s in cfg.seats}
    t = t0
    while t < t1:
        for sensor in cfg.sensors:
            if sensor.kind != "amg8833" or sensor.id in (skip or set()):
                continue
            frame = empty_room(rng)
            for seat_id, sid in (people or {}).items():
                if sid == sensor.id and sensor.mount is not None:
                    frame = add_warm(frame, block_at(sensor.mount, seats[seat_id].x, seats[seat_id].y), 4.0)
            model.on_thermal(sensor.id, frame, t)
        t += 2.0


@pytest.fixture
def model(floor_config: SiteConfig) -> FloorModel:
    return FloorModel(floor_config)


def test_person_makes_seat_occupied_and_counts_in_zone(model: FloorModel, floor_config: SiteConfig) -> None:
    rng = np.random.default_rng(41)
    feed(model, floor_config, 0, 130, rng)
    state = model.snapshot(130, WALL)
    assert state.seats["S002"].status is SeatStatus.FREE
    assert state.zones[Z1].people == state.zones[Z1].people.__class__(0.0, Quality.GOOD)
    feed(model, floor_config, 130, 170, rng, {"S002": Z1_THERMAL[0], "S007": Z1_THERMAL[1]})
    state = model.snapshot(170, WALL)
    assert state.seats["S002"].status is SeatStatus.OCCUPIED and state.seats["S007"].status is SeatStatus.OCCUPIED
    assert state.seats["S001"].status is SeatStatus.FREE
    zone = state.zones[Z1]
    assert zone.people.value == 2.0 and zone.occupied == 2 and zone.free == zone.seats_total - 2
    assert zone.occupancy_healthy and zone.empty_since is None
    truth = {s: ("occupied" if s in ("S002", "S007") else "free") for s in state.seats}
    assert score_seats({k: v.status for k, v in state.seats.items()}, truth) == 1.0
    assert zone_count_mae({z: v.people.value for z, v in state.zones.items()}, {Z1: 2.0, "z2-group": 1.0}) == 0.5


def test_unhealthy_or_stale_sensor_gives_unknown(model: FloorModel, floor_config: SiteConfig) -> None:
    rng = np.random.default_rng(42)
    feed(model, floor_config, 0, 20, rng)  # the empty room is learnt first
    feed(model, floor_config, 20, 200, rng, {"S002": Z1_THERMAL[0]})
    model.on_sensor_health(Z1_THERMAL[0], False, 200)
    state = model.snapshot(201, WALL)
    assert all(state.seats[s].status is SeatStatus.UNKNOWN for s in ("S001", "S002", "S003", "S004"))
    assert state.seats["S005"].status is SeatStatus.FREE
    zone = state.zones[Z1]
    assert not zone.occupancy_healthy and zone.people.quality is Quality.STALE and zone.unknown == 4
    # thermal-z1-quiet-2 goes silent: stale after stale_after_s
    feed(model, floor_config, 202, 300, rng, skip={Z1_THERMAL[0], Z1_THERMAL[1]})
    state = model.snapshot(300, WALL)
    assert state.seats["S005"].status is SeatStatus.UNKNOWN
    # recovery: fresh frames re-derive the state from scratch
    feed(model, floor_config, 300, 340, rng, {"S002": Z1_THERMAL[0]})
    state = model.snapshot(340, WALL)
    assert state.seats["S002"].status is SeatStatus.OCCUPIED
    assert state.seats["S001"].status is SeatStatus.UNKNOWN  # not yet enough fresh absence
    assert seat_confusion({"S001": state.seats["S001"].status}, {"S001": "free"}) == {("free", "unknown"): 1}


def test_a_frame_a_little_late_is_not_silence_but_a_missed_one_is(
        model: FloorModel, floor_config: SiteConfig) -> None:
    """Thermopiles read once a minute: between two frames the evidence is up to a minute old by
    design, so a frame that comes 20 ms late (its bus busy with another read) must not make the
    seats unknown (which would wipe what they knew: an away seat would forget the break). Silence
    counts from when the next frame was due, plus ``stale_after_s``."""
    rng = np.random.default_rng(43)
    thermopiles = [s.id for s in floor_config.sensors if s.kind == "amg8833"]
    for k in range(6):
        for sensor in thermopiles:
            model.on_thermal(sensor, empty_room(rng), 60.0 * k)
    assert model.snapshot(300.0 + 60.02, WALL).seats["S005"].status is SeatStatus.FREE
    stale = floor_config.sensing.stale_after_s
    assert model.snapshot(300.0 + 60.0 + stale - 0.1, WALL).seats["S005"].status is SeatStatus.FREE
    assert model.snapshot(300.0 + 60.0 + stale + 0.1, WALL).seats["S005"].status is SeatStatus.UNKNOWN


def test_environment_measures_and_quality(model: FloorModel, floor_config: SiteConfig) -> None:
    model.on_reading(Reading("lux-z1-quiet", "lux", 420.0, "lx", 10.0))
    model.on_reading(Reading("rh-z1-quiet", "temperature", 21.5, "C", 10.0))
    model.on_reading(Reading("co2-z1-quiet", "temperature", 24.0, "C", 10.0))  # SCD41 self-heats: not used
    model.on_reading(Reading("co2-z1-quiet", "co2", 650.0, "ppm", 10.0))
    model.on_reading(Reading("co2-z1-quiet", "co2", 9999.0, "ppm", 11.0, quality="suspect"))
    zone = model.snapshot(20.0, WALL).zones[Z1]
    assert (zone.lux.value, zone.lux.quality) == (420.0, Quality.GOOD)
    assert zone.temperature.value == 21.5 and zone.co2.value == 650.0
    assert zone.humidity.value is None and zone.humidity.quality is Quality.STALE
    zone = model.snapshot(100.0, WALL).zones[Z1]
    assert (zone.lux.value, zone.lux.quality) == (420.0, Quality.STALE)
    model.on_sensor_health("lux-z1-quiet", False, 100.0)
    assert model.snapshot(101.0, WALL).zones[Z1].lux.quality is Quality.UNHEALTHY
    assert model.snapshot(101.0, WALL).seats["S001"].lux is None


def test_topology_from_config(model: FloorModel) -> None:
    topo = model.topology
    assert topo.zone_hvac["z2-group"] == "ahu1-vent" and topo.zone_hvac["z4-open"] == "ahu2-vent"
    assert topo.zone_lights[Z1] == tuple(f"light-z1-quiet-{i}" for i in (1, 2, 3, 4))
    assert topo.seat_desk["S001"] == "desk-S001"
    assert "S001" in topo.light_seats["light-z1-quiet-1"] and "S012" not in topo.light_seats["light-z1-quiet-1"]


def test_tags_consent_and_uncovered_counting(model: FloorModel, floor_config: SiteConfig) -> None:
    rng = np.random.default_rng(43)
    feed(model, floor_config, 0, 130, rng)
    s001 = next(s for s in floor_config.seats if s.id == "S001")
    for k in range(5):
        model.on_tag_position("p-alice", s001.x + 0.05, s001.y, 126 + k)
        model.on_tag_position("p-bob", 12.5, 11.5, 126 + k)  # zone 1, outside every thermopile's view
    state = model.snapshot(130, WALL)
    assert state.seats["S001"].consented_tag is None
    assert state.zones[Z1].people.value == 1.0  # bob; alice stands under a thermopile that counts her
    model.set_consented_tags({"p-alice"})
    state = model.snapshot(130, WALL)
    assert state.seats["S001"].consented_tag == "p-alice" and state.seats["S001"].tag_since == 126
    assert "p-alice" in model.tag_positions(130) and not model.tag_positions(1000)


def test_ranges_become_positions(model: FloorModel, floor_config: SiteConfig) -> None:
    p = np.array([20.0, 10.0, model.tag_height_m])
    ranges = [(a.id, float(np.linalg.norm(p - np.array([a.x, a.y, a.z]))), 100.0) for a in floor_config.anchors]
    fix = model.on_tag_ranges("p-carol", ranges, 5.0)
    assert fix is not None and abs(fix.x - 20.0) < 1e-3
    assert model.on_tag_ranges("p-carol", ranges[:2], 6.0) is None
    low_quality = [(a, r, 10.0) for a, r, _ in ranges]
    assert model.on_tag_ranges("p-carol", low_quality, 7.0) is None


def test_commands_and_bad_input(model: FloorModel, floor_config: SiteConfig) -> None:
    rng = np.random.default_rng(44)
    feed(model, floor_config, 0, 20, rng)
    feed(model, floor_config, 20, 200, rng, {"S003": Z1_THERMAL[0]})
    with pytest.raises(SensingError, match="empty"):
        model.capture_background(Z1_THERMAL[0])
    model.capture_background(Z1_THERMAL[1])
    status = model.thermal_status(Z1_THERMAL[0], 200)
    assert status.people == 1 and status.usable and status.background is not None
    assert model.on_thermal(Z1_THERMAL[2], np.zeros((4, 4)), 202) is None  # bad frame: sensor unhealthy
    assert not model.thermal_status(Z1_THERMAL[2], 202).usable
    with pytest.raises(SensingError):
        model.on_thermal("lux-z1-quiet", empty_room(rng), 1.0)
    with pytest.raises(SensingError):
        model.release_seat("S999", 1.0)
    model.release_seat("S003", 200.0)
    assert model.snapshot(201, WALL).seats["S003"].status is SeatStatus.FREE
    model.set_forecast(Z1, {30: 5.0})
    assert model.snapshot(201, WALL).zones[Z1].forecast == {30: 5.0}


def test_the_next_due_seat_change_is_the_earliest_pending(model: FloorModel, floor_config: SiteConfig) -> None:
    """FloorModel.next_due: when the decide loop must run for a seat to change by itself. Nothing is
    pending on a floor of free seats; a seated patron last seen at 170 s with 2 s frames is due to
    be judged gone once their absence passes away_after_s; a desk step followed by a frame
    without them dates it from the step instead."""
    rng = np.random.default_rng(43)
    feed(model, floor_config, 0, 130, rng)
    assert model.next_due(130.0) is None
    feed(model, floor_config, 130, 172, rng, {"S002": Z1_THERMAL[0]})
    assert model.snapshot(172, WALL).seats["S002"].status is SeatStatus.OCCUPIED
    away_after = model.timing.away_after_s
    assert model.next_due(172.0) == pytest.approx(170.0 + away_after + 1e-3)
    model.on_desk_step("S002", 180.0)  # the patron packed up at 180 s
    feed(model, floor_config, 182, 184, rng)  # the next frame does not see them
    assert model.next_due(184.0) == pytest.approx(180.0 + away_after + 1e-3)
    feed(model, floor_config, 184, 180.0 + away_after - 1.0, rng)  # frames go on: the thermopile is fresh
    assert model.snapshot(180.0 + away_after - 1.0, WALL).seats["S002"].status is SeatStatus.OCCUPIED
    feed(model, floor_config, 180.0 + away_after - 1.0, 180.0 + away_after + 1.0, rng)
    assert model.snapshot(180.0 + away_after + 1.0, WALL).seats["S002"].status is SeatStatus.FREE


def test_a_lux_reading_is_carried_to_the_levels_until_the_next_reading(model: FloorModel) -> None:
    lights = [f"light-z1-quiet-{i}" for i in (1, 2, 3, 4)]
    full, dimmed = dict.fromkeys(lights, 1.0), dict.fromkeys(lights, 0.4)
    model.on_reading(Reading("lux-z1-quiet", "lux", 650.0, "lx", 10.0))
    first = model.snapshot(11.0, WALL, levels=full)
    assert first.zones[Z1].lux_now == 650.0
    later = model.snapshot(13.0, WALL, levels=dimmed)  # dimmed since the reading: no reading yet
    now = later.zones[Z1].lux_now
    assert now is not None and now < 650.0 - 100.0  # the light dimmed away is not taken for daylight
    assert later.zones[Z1].lux.value == 650.0  # the measure itself is the reading
    seat_before, seat_after = first.seats["S005"].lux, later.seats["S005"].lux
    assert seat_before is not None and seat_after is not None and seat_after < seat_before
    model.on_reading(Reading("lux-z1-quiet", "lux", 650.0, "lx", 15.0))  # the same value, read at the new levels
    assert model.snapshot(16.0, WALL, levels=dimmed).zones[Z1].lux_now == 650.0

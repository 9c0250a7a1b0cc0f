"""What a thermopile sees of the things a patron leaves: a coat on the chair back, the warm chair seat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import SiteConfig, load_config
from edge_agent.sensing.seats import SeatStateMachine, SeatTiming
from edge_agent.sensing.thermal import ThermalSeatDetector
from simulator.world import MemoryBinding, World, flow, physics
from simulator.world.geometry import FloorPlan, ThermopileView
from simulator.world.patrons import Break
from simulator.world.scenario import Scenario, parse_scenario
from simulator.world.thermal import ThermopileScene, chair_warmth, coat_warmth
from tests.simulator.worlds import FLOOR, in_world


@pytest.fixture(scope="module")
def cfg() -> SiteConfig:
    return load_config(FLOOR)


def quiet_scenario(tmp: Path) -> Scenario:
    doc = {"scenario": {"name": "t", "floor": str(FLOOR), "start": "09:00", "end": "11:00"},
           "patrons": {"demand_scale": 0.0}}
    return parse_scenario(doc, tmp / "t.toml")


def test_coat_warms_behind_its_owner_and_cools_over_minutes() -> None:
    assert coat_warmth(0.0, 0.0, True, 0.0) == 0.0  # hung up at room temperature
    warm = coat_warmth(0.0, 0.0, True, 3600.0)
    assert warm > 0.99  # an hour behind a back: fully warm
    assert 0.8 < coat_warmth(warm, 0.0, False, 120.0) < 0.9  # two minutes into a break: still warm
    assert coat_warmth(warm, 0.0, False, 3600.0) < 0.01  # an hour later: room temperature
    # A coat hung five minutes before a break has not warmed much.
    assert coat_warmth(0.0, 0.0, True, 300.0) < 0.35


def test_chair_warmth_is_gone_within_minutes() -> None:
    assert chair_warmth(100.0, 100.0) == 1.0
    assert chair_warmth(100.0, 160.0) < 0.4
    assert chair_warmth(100.0, 220.0) < 0.14
    assert chair_warmth(100.0, 100.0 + 600.0) == 0.0
    assert chair_warmth(100.0, 50.0) == 0.0  # before anyone stood up


def _step_to(w: World, b: MemoryBinding, sensor: str, t: float) -> np.ndarray:
    """The frame at ``t`` without temporal noise (so differences are the physics only)."""
    w.scenes[[s.view.sensor_id for s in w.scenes].index(sensor)].noise[:] = 0.0
    physics.push_frames(w, range(len(w.scenes)), t)
    return b.frames[sensor].copy()


@pytest.mark.parametrize("coat", [True, False])
def test_break_with_a_coat_leaves_lasting_warmth_departure_only_the_chair(
    cfg: SiteConfig, tmp_path: Path, coat: bool
) -> None:
    sensor = next(s for s in cfg.sensors if s.kind == "amg8833")
    seat = sensor.seats[0]

    async def body(w: World, b: MemoryBinding) -> dict[str, np.ndarray]:
        t0 = w.t0 + 5.0
        await w.run(t0)
        frames = {"empty": _step_to(w, b, sensor.id, t0)}
        pid = w.place_patron(seat, t0, coat=coat)
        sat = t0 + 3600.0
        frames["seated"] = _step_to(w, b, sensor.id, sat)
        w.pending_break[pid] = Break(after_s=0.0, length_s=3600.0)
        flow.take_break(w, sat, pid)  # a break: the coat (if any) stays on the chair
        for after in (30.0, 150.0, 600.0, 3000.0):
            frames[f"+{after:.0f}"] = _step_to(w, b, sensor.id, sat + after)
        return frames

    f = in_world(cfg, quiet_scenario(tmp_path), body)
    seated = f["seated"] - f["empty"]
    peak = np.unravel_index(int(np.argmax(seated)), seated.shape)
    assert seated[peak] > 5.0  # the person
    early, late, later, gone = (f[k] - f["empty"] for k in ("+30", "+150", "+600", "+3000"))
    assert early.max() > 2.0  # half a minute after standing up the chair (and coat) are warm
    if coat:
        assert late.max() > 1.2  # two and a half minutes later the coat still shows over hold_c
        assert 0.4 < later.max() < late.max()  # and it cools
        assert 2 <= int((late > 0.5).sum()) <= 6  # a coat, not a person-sized patch of sun
    else:
        assert late.max() < 0.6  # the chair alone is within noise of the room by then
    assert gone.max() < 0.1  # after 50 minutes nothing is left to see


def test_departing_patron_takes_the_coat(cfg: SiteConfig, tmp_path: Path) -> None:
    sensor = next(s for s in cfg.sensors if s.kind == "amg8833")
    seat = sensor.seats[0]

    async def body(w: World, b: MemoryBinding) -> tuple[np.ndarray, np.ndarray]:
        t0 = w.t0 + 5.0
        await w.run(t0)
        empty = _step_to(w, b, sensor.id, t0)
        pid = w.place_patron(seat, t0, coat=True)
        flow.depart(w, t0 + 3600.0, pid)
        return empty, _step_to(w, b, sensor.id, t0 + 3600.0 + 150.0)

    empty, after = in_world(cfg, quiet_scenario(tmp_path), body)
    assert (after - empty).max() < 0.6


def _daemon_after_stand_up(cfg: SiteConfig, coat: bool, returns: bool, phase_s: float, seed: int,
                           k: int = 0) -> list[str]:
    """The daemon's detector and seat machine on the world's frames (one a minute, as the scenarios
    poll): a patron sits an hour at the sensor's ``k``-th seat, then stands up ``phase_s`` after a
    frame; statuses 3-6 min later."""
    rng = np.random.default_rng(seed)
    sensor = next(s for s in cfg.sensors if s.kind == "amg8833")
    assert sensor.mount is not None
    plan = FloorPlan.from_config(cfg)
    view = ThermopileView.build(sensor.id, 0, sensor.mount, plan)
    scene = ThermopileScene(view, rng)
    seat = plan.seat_ids.index(sensor.seats[k])
    det = ThermalSeatDetector.for_sensor(sensor, cfg.seats)
    machine = SeatStateMachine(SeatTiming())
    sit, stand = 120.0, 120.0 + 3600.0 + phase_s
    seen: list[str] = []
    for t in np.arange(0.0, stand + 400.0, 60.0):
        scene.refresh_noise(rng)
        seated = sit <= t < stand
        coats: list[tuple[int, float, bool]] = []
        if coat and t >= sit and (seated or returns):
            warm_at_stand = coat_warmth(0.0, sit, True, stand)
            coats = [(seat, coat_warmth(0.0, sit, True, t) if seated else coat_warmth(warm_at_stand, stand, False, t),
                      seated)]
        chairs = [(seat, chair_warmth(stand, t))] if t >= stand else []
        frame = scene.frame(21.0, [(seat, 30.0)] if seated else [], [], coats, chairs)
        frame = np.round((frame + rng.normal(0.0, 0.15, (8, 8))) * 4.0) / 4.0  # device noise, 0.25 C steps
        ev = det.update(frame, float(t))
        seat_id = plan.seat_ids[seat]
        machine.observe(ev.presence[seat_id], float(t), residue=seat_id in ev.residue,
                        residue_heat=ev.residue.get(seat_id, 0.0))  # as the floor model feeds it
        machine.advance(float(t) + 45.0)
        if stand + 180.0 <= t + 45.0 <= stand + 360.0:
            seen.append(machine.status.value)
    return seen


@pytest.mark.parametrize("k", [0, 1, 2, 3])  # every seat of a cluster: the corner one's coat is off-centre
@pytest.mark.parametrize("phase_s", [1.0, 20.0, 40.0, 59.0])
def test_daemon_tells_a_coat_left_for_a_break_from_a_warm_chair(cfg: SiteConfig, phase_s: float, k: int) -> None:
    for seed in range(3):
        assert set(_daemon_after_stand_up(cfg, True, True, phase_s, seed, k)) == {"away"}, seed
        assert set(_daemon_after_stand_up(cfg, True, False, phase_s, seed, k)) == {"free"}, seed  # took the coat
        assert set(_daemon_after_stand_up(cfg, False, True, phase_s, seed, k)) == {"free"}, seed  # nothing warm left


def test_belongings_with_nothing_warm_are_counted_as_cold(cfg: SiteConfig, tmp_path: Path) -> None:
    """The report's ceiling counts seat-minutes held by what no thermopile can see."""
    sensor = next(s for s in cfg.sensors if s.kind == "amg8833")
    bag, laptop, fresh_coat, worn_coat = sensor.seats[:4]

    async def body(w: World, b: MemoryBinding) -> dict[str, bool]:
        t0 = w.t0 + 5.0
        await w.run(t0)
        pids = {bag: w.place_patron(bag, t0), laptop: w.place_patron(laptop, t0, laptop=True),
                fresh_coat: w.place_patron(fresh_coat, t0 + 3540.0, coat=True),
                worn_coat: w.place_patron(worn_coat, t0, coat=True)}
        seated = {sid: physics.cold_belongings(w, w.plan.seat_ids.index(sid)) for sid in pids}
        assert not any(seated.values())  # nobody is away yet
        for pid in pids.values():
            w.pending_break[pid] = Break(after_s=0.0, length_s=600.0)
            flow.take_break(w, t0 + 3600.0, pid)
        return {sid: physics.cold_belongings(w, w.plan.seat_ids.index(sid)) for sid in pids}

    cold = in_world(cfg, quiet_scenario(tmp_path), body)
    # A bag, and a coat hung a minute before the break, are cold; a laptop or a worn coat is not.
    assert cold == {bag: True, laptop: False, fresh_coat: True, worn_coat: False}

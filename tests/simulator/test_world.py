"""The simulated floor on its own: physics, patrons, determinism and the report, on virtual time."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest

from edge_agent.config import SiteConfig, load_config
from simulator.world import MemoryBinding, World
from simulator.world.scenario import Scenario, parse_scenario
from simulator.world.uwb import OFFSET_M, TAG_HEIGHT_M, furniture_links, measure, nlos_links
from tests.simulator.worlds import FLOOR, in_world


def make_scenario(tmp: Path, **header: Any) -> Scenario:
    patrons = header.pop("patrons", {})
    events = header.pop("events", [])
    doc = {"scenario": {"name": "t", "floor": str(FLOOR), **header}, "patrons": patrons, "events": events}
    return parse_scenario(doc, tmp / "t.toml")


@pytest.fixture(scope="module")
def cfg() -> SiteConfig:
    return load_config(FLOOR)


def test_no_patrons_co2_decays_to_outdoor(cfg: SiteConfig, tmp_path: Path) -> None:
    sc = make_scenario(tmp_path, start="09:00", end="13:00", patrons={"demand_scale": 0.0})

    async def body(w: World, b: MemoryBinding) -> tuple[list[float], list[float]]:
        w.air.co2[:] = 1500.0
        await w.run(w.t0 + 600)
        early = [e[2] for k, e in b.environment.items() if k.startswith("co2-") and e[2] is not None]
        await w.run()
        late = [e[2] for k, e in b.environment.items() if k.startswith("co2-") and e[2] is not None]
        return early, late

    early, late = in_world(cfg, sc, body)
    assert len(late) == len(cfg.zones)
    assert all(1300 < c < 1500 for c in early)  # one air change per hour: slow at first
    assert all(420 <= c < 470 for c in late)  # four hours later: near the outdoor 420 ppm


def test_night_lux_is_what_the_lights_give(cfg: SiteConfig, tmp_path: Path) -> None:
    sc = make_scenario(tmp_path, start="01:00", end="02:00", patrons={"demand_scale": 0.0})
    zone = cfg.zones[0].id
    lights = [a.id for a in cfg.actuators if a.kind == "light" and a.zone == zone]

    async def body(w: World, b: MemoryBinding) -> list[dict[str, float]]:
        seen = []
        for level in (0.0, 1.0, 0.5):
            for a in lights:
                b.lights[a] = level
            await w.run(w.clock.monotonic() + 10)
            seen.append(dict(b.lux))
        return seen

    off, full, half = in_world(cfg, sc, body)
    sensor = f"lux-{zone}"
    assert all(v == 0.0 for v in off.values())  # night, everything off: dark
    assert full[sensor] > 300.0
    assert half[sensor] == pytest.approx(full[sensor] / 2, rel=1e-6)  # lux is linear in the level
    far = f"lux-{cfg.zones[-1].id}"
    assert full[far] < 0.05 * full[sensor]  # the far zone gets almost nothing from these lights


def test_a_person_warms_the_pixels_above_their_seat(cfg: SiteConfig, tmp_path: Path) -> None:
    sc = make_scenario(tmp_path, start="09:00", end="10:00", patrons={"demand_scale": 0.0})
    sensor = next(s for s in cfg.sensors if s.kind == "amg8833")
    assert sensor.mount is not None
    seat = next(s for s in cfg.seats if s.id == sensor.seats[0])

    async def body(w: World, b: MemoryBinding) -> tuple[np.ndarray, np.ndarray]:
        await w.run(w.t0 + 5)
        before = b.frames[sensor.id].copy()
        w.place_patron(seat.id)
        return before, b.frames[sensor.id].copy()

    before, after = in_world(cfg, sc, body)
    mount = sensor.mount
    step = math.radians(mount.fov_deg) / 8
    row = int(math.atan2(seat.y - mount.y, mount.height_m) / step + 4)
    col = int(math.atan2(seat.x - mount.x, mount.height_m) / step + 4)
    delta = after - before
    assert delta[row, col] > 2.0  # head and shoulders: several degrees over the background
    assert 1 <= int((delta > 0.5).sum()) <= 6  # a blob of a few pixels, not the whole frame
    assert abs(float(np.median(delta))) < 0.05  # elsewhere nothing changed
    assert 18.0 < float(np.median(before)) < 25.0


def test_same_seed_same_truth(cfg: SiteConfig, tmp_path: Path) -> None:
    def day(seed: int) -> tuple[list[float], list[tuple[float, int]]]:
        sc = make_scenario(tmp_path, start="09:00", end="11:00", seed=seed)

        async def body(w: World, b: MemoryBinding) -> tuple[list[float], list[tuple[float, int]]]:
            await w.run()
            return [r["occupied"] for r in w.timeline], [(p.arrival, p.seat) for p in w.patrons]

        result: tuple[list[float], list[tuple[float, int]]] = in_world(cfg, sc, body)
        return result

    first, second, other = day(5), day(5), day(6)
    assert first == second
    assert first != other
    assert max(first[0]) > 10  # people did come


def test_uwb_noise_los_offset_and_nlos() -> None:
    rng = np.random.default_rng(1)
    anchors = np.array([[0.0, 0.0, 2.8], [20.0, 0.0, 2.8], [20.0, 20.0, 2.8], [0.0, 20.0, 2.8], [10.0, 30.0, 2.8]])
    true = np.array([[5.0, 7.0], [12.0, 3.0]])
    ranges, est, quality = measure(true, np.zeros((2, 5)), anchors, rng, offset_m=0.0)
    assert np.all(np.hypot(*(est - true).T) < 0.1)
    assert np.all(quality == 100)
    geometric = np.hypot(np.hypot(anchors[None, :, 0] - true[:, 0:1], anchors[None, :, 1] - true[:, 1:2]),
                         anchors[None, :, 2] - TAG_HEIGHT_M)
    offset, _, _ = measure(true, np.zeros((2, 5)), anchors, rng)
    assert abs(float(np.mean(offset - geometric)) - OFFSET_M) < 0.02  # every range reads long alike
    bias = np.array([[0.6, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    biased, est2, q2 = measure(true, bias, anchors, rng, offset_m=0.0)
    assert biased[0, 0] - ranges[0, 0] > 0.4  # NLOS reads long
    assert q2[0] < q2[1]
    assert float(np.hypot(*(est2[0] - true[0]))) > 0.05  # and pulls the solved position


def test_a_tag_engine_uses_its_four_nearest_anchors() -> None:
    """The far anchor's range (NLOS or not) never enters the position: a PANS tag ranges with four."""
    rng = np.random.default_rng(2)
    anchors = np.array([[0.0, 0.0, 2.8], [20.0, 0.0, 2.8], [20.0, 20.0, 2.8], [0.0, 20.0, 2.8], [10.0, 80.0, 2.8]])
    true = np.array([[8.0, 9.0]])
    _, clean, _ = measure(true, np.zeros((1, 5)), anchors, np.random.default_rng(3), offset_m=0.0)
    _, far_nlos, q = measure(true, np.array([[0.0, 0.0, 0.0, 0.0, 1.5]]), anchors, np.random.default_rng(3),
                             offset_m=0.0)
    assert np.allclose(clean, far_nlos) and q[0] == 100
    seated = furniture_links(200, 5, rng)
    assert 0.05 < float((seated > 0).mean()) < 0.2 and float(seated[seated > 0].min()) >= 0.2
    assert 0.05 < float(np.mean([(nlos_links(5, rng) > 0).mean() for _ in range(400)])) < 0.2


class StubController:
    """Plays the daemon: lights full where anyone holds a seat, air up over 900 ppm, truthful probe."""

    def __init__(self, w: World, b: MemoryBinding, cfg: SiteConfig) -> None:
        self.w, self.b, self.cfg = w, b, cfg

    async def run(self) -> None:
        w, b = self.w, self.b
        for _ in range(200_000):  # bounded: a day at 1 s steps is 54 000
            held = {w.plan.zone_ids[int(w.plan.seat_zone[i])] for i in np.flatnonzero(w.holder >= 0)}
            for a in self.cfg.actuators:
                if a.kind == "light":
                    b.lights[a.id] = 1.0 if a.zone in held else 0.0
                elif a.kind == "hvac":
                    b.vents[a.id] = 1.0 if float(w.air.co2.max()) > 900 else 0.0
            await asyncio.sleep(1.0)

    def probe(self) -> dict[str, dict[str, Any]]:
        seats: dict[str, Any] = {s: self.w.truth_seat(s) for s in self.w.plan.seat_ids}
        seats[self.w.plan.seat_ids[0]] = "unknown"
        return {"seats": seats, "zones": {z: self.w.people_in_zone(z) for z in self.w.plan.zone_ids}}


@pytest.fixture(scope="module")
def full_day(cfg: SiteConfig, tmp_path_factory: pytest.TempPathFactory) -> tuple[World, dict[str, object], Path]:
    tmp = tmp_path_factory.mktemp("day")
    sc = make_scenario(tmp, seed=3, day_type="exam", weather="variable", patrons={"tag_share": 0.3})

    async def body(w: World, b: MemoryBinding) -> tuple[World, dict[str, object], Path]:
        stub = StubController(w, b, cfg)
        w.set_daemon_probe(stub.probe)
        task = asyncio.create_task(stub.run())
        await w.run(w.end_time)
        task.cancel()
        files = w.render(tmp / "svg", ["10:00", "15:00"])
        assert len(files) == 3
        return w, w.report({"wall_seconds": 1.0, "messages_produced": 0}), tmp / "svg"

    result: tuple[World, dict[str, object], Path] = in_world(cfg, sc, body)
    return result


def test_full_day_report(full_day: tuple[World, dict[str, object], Path]) -> None:
    w, report, _ = full_day
    assert report["sim_hours"] == pytest.approx(15.0)
    assert report["wall_seconds"] == 1.0
    assert 0.3 < float(report["seat_utilisation"]) < 0.95  # type: ignore[arg-type]
    assert float(report["lighting_kwh"]) < float(report["baseline_lighting_kwh"])  # type: ignore[arg-type]
    assert report["lights_off_in_occupied_zone_minutes"] == 0
    assert report["seat_state_accuracy"] == 1.0  # the probe tells the truth ...
    assert int(report["unknown_seat_minutes"]) > 0  # type: ignore[call-overload]  # ... except for one seat
    assert report["zone_count_mae"] == 0.0
    latency = report["actuation_latency_s"]
    assert isinstance(latency, dict) and latency["count"] > 0 and latency["max"] <= 2.0
    assert report["actuations_over_120s"] == 0
    assert int(report["ghost_seat_minutes"]) > 0  # type: ignore[call-overload]
    assert int(report["abandoned_belongings"]) > 0  # type: ignore[call-overload]
    # Air only when CO2 passes 900 ppm: less fan power than the conventional floor's design airflow, CO2 no worse.
    assert int(report["co2_over_1000ppm_minutes"]) <= int(report["baseline_co2_over_1000ppm_minutes"])  # type: ignore[call-overload]
    mine, base = report["energy_by_load_kwh"], report["baseline_energy_by_load_kwh"]
    assert isinstance(mine, dict) and isinstance(base, dict)
    assert mine["fans"] < base["fans"] and base["desk_lamps"] == 0.0
    assert report["total_energy_kwh"] == pytest.approx(sum(mine.values()), abs=0.002)
    assert 0.0 < float(report["total_saving"]) < 1.0  # type: ignore[arg-type]
    assert all(not p.seated for p in w.patrons)  # closing time emptied the floor
    assert (w.holder < 0).all()


def test_full_day_pictures(full_day: tuple[World, dict[str, object], Path]) -> None:
    _, _, svg = full_day
    names = sorted(p.name for p in svg.iterdir())
    assert names == ["floor-1000.svg", "floor-1500.svg", "timeline.svg"]
    root = ElementTree.parse(svg / "floor-1500.svg").getroot()
    rects = [e for e in root.iter() if e.tag.endswith("rect")]
    assert len(rects) >= 120  # every seat drawn


def test_released_ghost_seat_is_cleared_by_staff_and_its_patron_sits_again(cfg: SiteConfig, tmp_path: Path) -> None:
    from simulator.world import flow
    from simulator.world.patrons import Break

    sc = make_scenario(tmp_path, start="09:00", end="11:00", patrons={"demand_scale": 0.0})

    async def body(w: World, b: MemoryBinding) -> list[str]:
        await w.run(w.t0 + 1.0)  # started: a patron placed before would also be scheduled to arrive
        pid = w.place_patron("S001", laptop=True)
        await w.run(w.t0 + 600)
        w.pending_break[pid] = Break(after_s=0.0, length_s=2400.0)
        flow.take_break(w, w.clock.monotonic(), pid)
        seen = [w.truth_seat("S001")]
        await w.run(w.t0 + 600 + 60)
        seen.append(w.truth_seat("S001"))
        await w.run(w.t0 + 600 + 1500)
        seen.append(w.truth_seat("S001"))
        b.indicators["desk-S001"] = 1  # free without having shown ghost: nobody touches the things
        await w.run(w.t0 + 600 + 1560)
        seen.append(w.truth_seat("S001"))
        b.indicators["desk-S001"] = 4
        await w.run(w.t0 + 600 + 1620)
        b.indicators["desk-S001"] = 1  # the gateway released the ghost seat
        await w.run(w.t0 + 600 + 1680)
        seen.append(w.truth_seat("S001"))
        seen.append(str(w.seats.book.cleared))
        await w.run(w.t0 + 600 + 2400 + 120)
        seen.append(w.truth_seat("S001"))
        return seen

    assert in_world(cfg, sc, body) == ["occupied", "occupied", "ghost", "ghost", "free", "1", "occupied"]

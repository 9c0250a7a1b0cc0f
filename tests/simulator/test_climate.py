"""Heat, air and energy: the envelope, the plant, the zone balance against hand calculations, the baseline.

Hand calculations use the documented values (docs/simulator.md, "Heat, air and energy"), written
out here rather than imported, so a changed constant shows up as a failing test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.config import SiteConfig, load_config
from simulator.world import MemoryBinding, World, hvac
from simulator.world.air import ZoneClimate, outdoor_temperature, zone_volumes
from simulator.world.envelope import Envelope
from simulator.world.geometry import FloorPlan
from simulator.world.scenario import parse_scenario
from tests.simulator.worlds import FLOOR, in_world

AIR = 1.2 * 1005.0  # J/m3K


@pytest.fixture(scope="module")
def cfg() -> SiteConfig:
    return load_config(FLOOR)


@pytest.fixture(scope="module")
def plan(cfg: SiteConfig) -> FloorPlan:
    return FloorPlan.from_config(cfg)


@pytest.fixture(scope="module")
def envelope(cfg: SiteConfig, plan: FloorPlan) -> Envelope:
    return Envelope.from_plan(plan, cfg.windows, zone_volumes(cfg, plan.zone_area_m2))


def test_envelope_walls_glass_and_leaks_by_hand(plan: FloorPlan, envelope: Envelope) -> None:
    # Floor 3: six 13 x 12 m zones, 3 m storey, glazed north and south facades (a 1.5 m window band).
    leaks = 0.1 * 468.0 / 3600.0 * AIR  # 0.1 air change of a 468 m3 zone
    middle = 0.30 * 13 * 1.5 + 1.4 * 13 * 1.5 + leaks  # z2: only its south facade is outside
    corner = 0.30 * (13 * 1.5 + 12 * 3.0) + 1.4 * 13 * 1.5 + leaks  # z1: south facade and west gable
    ua = dict(zip(plan.zone_ids, envelope.ua_w_k, strict=True))
    assert ua["z2-group"] == pytest.approx(middle, rel=1e-3)
    assert ua["z1-quiet"] == pytest.approx(corner, rel=1e-3)
    assert ua["z6-lounge"] == pytest.approx(corner, rel=1e-3)
    assert envelope.glazing_m2["south"].tolist() == pytest.approx([19.5, 19.5, 19.5, 0.0, 0.0, 0.0])
    assert envelope.glazing_m2["north"].tolist() == pytest.approx([0.0, 0.0, 0.0, 19.5, 19.5, 19.5])


def test_sun_through_south_glass_by_hand(envelope: Envelope) -> None:
    assert not envelope.solar_w(-3.0, 180.0, 0.0).any()  # night
    noon = envelope.solar_w(30.0, 180.0, 0.0)  # a clear sky, the sun due south 30 degrees up
    sky = 0.5 * (800.0 + 15_500.0 * np.sqrt(0.5)) / 120.0  # half the sky on a vertical pane, W/m2
    beam = 95_000.0 / 100.0 * np.cos(np.radians(30.0))  # direct-normal irradiance on the facade, W/m2
    south = 0.5 * 19.5 * (sky + 0.25 * beam)  # g 0.5, blinds pass a quarter of the direct sun's heat
    north = 0.5 * 19.5 * sky
    assert noon[1] == pytest.approx(south, rel=1e-6)
    assert noon[4] == pytest.approx(north, rel=1e-6)


def test_fan_part_load_curve_and_design_airflow() -> None:
    assert hvac.fan_watts(1800.0, 1.0) == pytest.approx(1800.0, rel=1e-3)
    # ASHRAE 90.1 appendix G method 2 reaches 20 % of full power at about 39 % of full flow.
    assert hvac.fan_watts(1000.0, 0.393) == pytest.approx(200.0, abs=1.0)
    assert hvac.fan_watts(1800.0, 1.0 / 6.0) == pytest.approx(1800.0 * 0.051744, rel=1e-3)
    # 40 seats and 312 m2 (two zones) under one 936 m3 AHU: EN 16798-1 category II, low-polluting.
    assert hvac.design_air_changes(40, 312.0, 936.0, 1.0, 6.0) == pytest.approx((40 * 7 + 312 * 0.7) * 3.6 / 936)
    assert hvac.design_air_changes(400, 312.0, 936.0, 1.0, 6.0) == 6.0  # within what the AHU can move


def test_heat_recovery_then_the_coil_by_hand() -> None:
    cold = hvac.ahu_coil(0.26, 0.0, 3.0, 21.0, 15.4)
    assert cold.heating_w == pytest.approx(AIR * 0.26 * (18.0 - 0.75 * 21.0)) and cold.cooling_w == 0.0
    mild = hvac.ahu_coil(0.26, 10.0, 6.0, 22.0, 15.4)
    assert (mild.heating_w, mild.cooling_w) == (0.0, 0.0)  # the exchanger alone reaches 18 C (bypassed in part)
    warm = hvac.ahu_coil(0.26, 28.0, 17.0, 24.0, 15.4)  # humid: it condenses down to saturation at 18 C
    sensible = AIR * 0.26 * (28.0 - 0.75 * 4.0 - 18.0)
    assert warm.cooling_w == pytest.approx(sensible + 2450.0 * 0.26 * (17.0 - 15.4))


def one_zone_climate(cfg: SiteConfig, plan: FloorPlan, envelope: Envelope, start_c: float) -> ZoneClimate:
    return ZoneClimate(cfg, plan.zone_area_m2, envelope, start_c, 3.0)


def test_zone_held_at_its_heating_setpoint_needs_exactly_its_losses(
        cfg: SiteConfig, plan: FloorPlan, envelope: Envelope) -> None:
    """Energy balance: at the setpoint, the terminal replaces what walls, glass, leaks and air take."""
    climate = one_zone_climate(cfg, plan, envelope, 21.0)
    n = len(plan.zone_ids)
    people = np.zeros(n)
    people[1] = 10  # z2: ten readers
    gains = np.zeros(n)
    gains[1] = 200.0  # and 200 W of light
    climate.step(30.0, people, np.zeros(3), gains, 0.0, 3.0, np.full(n, 21.0), np.full(n, 24.0))
    q = 1.0 * 468.0 / 3600.0  # the AHU's minimum: one air change of the zone
    ua = 0.30 * 13 * 1.5 + 1.4 * 13 * 1.5 + 0.1 * 468.0 / 3600.0 * AIR
    need = ua * (21.0 - 0.0) + AIR * q * (21.0 - 18.0) - 10 * 70.0 - 200.0
    assert climate.terminal_now[1] == pytest.approx(need, rel=1e-6)
    assert climate.temp[1] == pytest.approx(21.0)
    heat_j = climate.thermal_j["zone_heating"]
    assert heat_j == pytest.approx(30.0 * float(climate.terminal_now.sum()), rel=1e-6)
    assert climate.joules["zone_conditioning"] == pytest.approx(heat_j / 3.0)
    # Each AHU: the exchanger brings 0 C air to 0.75 x 21 C; the coil the rest to 18 C; its fans at 1/6 flow.
    coil = 3 * AIR * (936.0 / 3600.0) * (18.0 - 0.75 * 21.0)
    assert climate.thermal_j["ahu_heating"] == pytest.approx(30.0 * coil, rel=1e-6)
    assert climate.joules["fans"] == pytest.approx(30.0 * 3 * 1800.0 * 0.051744, rel=1e-3)


def test_a_warm_zone_floats_inside_its_band_and_capacity_bounds_the_terminal(
        cfg: SiteConfig, plan: FloorPlan, envelope: Envelope) -> None:
    n = len(plan.zone_ids)
    climate = one_zone_climate(cfg, plan, envelope, 22.0)
    climate.step(30.0, np.zeros(n), np.zeros(3), np.full(n, 300.0), 20.0, 8.0, np.full(n, 21.0), np.full(n, 24.0))
    assert not climate.terminal_now.any()  # between 21 and 24 C nothing runs
    hot = one_zone_climate(cfg, plan, envelope, 24.0)
    sun = np.full(n, 20_000.0)  # far beyond what the terminals can take out
    hot.step(600.0, np.zeros(n), np.zeros(3), sun, 20.0, 8.0, np.full(n, 21.0), np.full(n, 24.0))
    assert hot.terminal_now == pytest.approx(-50.0 * plan.zone_area_m2)  # 50 W/m2 of cooling, no more
    assert (hot.temp > 24.0).all()
    assert hot.thermal_j["zone_cooling"] == pytest.approx(600.0 * 50.0 * float(plan.zone_area_m2.sum()))
    assert hot.joules["zone_conditioning"] == pytest.approx(hot.thermal_j["zone_cooling"] / 3.5)


def test_co2_and_humidity_settle_where_people_and_outdoor_air_balance(
        cfg: SiteConfig, plan: FloorPlan, envelope: Envelope) -> None:
    n = len(plan.zone_ids)
    climate = one_zone_climate(cfg, plan, envelope, 21.0)
    people = np.full(n, 20.0)
    for _ in range(200):  # 100 hours: long past every time constant
        climate.step(1800.0, people, np.zeros(3), np.zeros(n), 5.0, 5.0, np.full(n, 21.0), np.full(n, 24.0))
    q_lps = 1.1 * 468.0 / 3.6  # the AHU's minimum and the leaks, L/s
    assert climate.co2[0] == pytest.approx(420.0 + 20 * 0.005 / q_lps * 1e6, rel=1e-6)
    assert climate.ah[0] == pytest.approx(5.0 + 20 * 45.0 / 2450.0 / (q_lps / 1000.0), rel=1e-6)
    assert outdoor_temperature(6.0, 3.5, 15.0) == 9.5 and outdoor_temperature(6.0, 3.5, 3.0) == 2.5


def scenario(tmp: Path, **header: Any) -> Any:
    patrons = header.pop("patrons", {})
    doc = {"scenario": {"name": "t", "floor": str(FLOOR), "outdoor_temp_c": 6.0, "outdoor_swing_c": 3.5, **header},
           "patrons": patrons}
    return parse_scenario(doc, tmp / "t.toml")


def test_a_floor_run_like_the_conventional_one_uses_the_baselines_energy(cfg: SiteConfig, tmp_path: Path) -> None:
    """Driven the way the baseline runs (full light in opening hours, the design airflow, no setpoints
    sent), the gateway's floor uses what the conventional floor does, load by load."""
    sc = scenario(tmp_path, start="07:30", end="10:30")
    lights = [a.id for a in cfg.actuators if a.kind == "light"]

    async def body(w: World, b: MemoryBinding) -> dict[str, object]:
        async def bms() -> None:
            for _ in range(10_000):
                on = w.is_open(w.clock.monotonic())
                for a in lights:
                    b.lights[a] = 1.0 if on else 0.0
                for g, group in enumerate(w.air.groups):
                    assert group.actuator is not None
                    b.vents[group.actuator] = float(w.conventional.design_level[g]) if on else 0.0
                await asyncio.sleep(10.0)

        task = asyncio.create_task(bms())
        await w.run()
        task.cancel()
        return w.report({})

    report = in_world(cfg, sc, body)
    mine, base = report["energy_by_load_kwh"], report["baseline_energy_by_load_kwh"]
    assert isinstance(mine, dict) and isinstance(base, dict)
    for load in ("luminaires", "fans", "ventilation_air", "zone_conditioning"):
        assert mine[load] == pytest.approx(base[load], rel=0.01), load
    assert base["zone_conditioning"] > 0 and base["fans"] > 0
    assert report["baseline_total_energy_kwh"] == pytest.approx(sum(base.values()), abs=0.002)


def test_setpoints_sent_by_the_gateway_are_held_and_none_means_the_bms_schedule(
        cfg: SiteConfig, tmp_path: Path) -> None:
    sc = scenario(tmp_path, start="09:00", end="11:00", patrons={"demand_scale": 0.0})

    async def body(w: World, b: MemoryBinding) -> tuple[list[float], list[float]]:
        b.heating["ahu1-vent"], b.cooling["ahu1-vent"] = 23.0, 26.0  # ahu1: z1 and z2
        await w.run()
        return w.air.temp.tolist(), w.conventional.climate.temp.tolist()

    mine, conventional = in_world(cfg, sc, body)
    assert mine[0] == pytest.approx(23.0, abs=0.01) and mine[1] == pytest.approx(23.0, abs=0.01)
    assert 21.0 - 1e-6 <= mine[2] < 22.0  # ahu2 sends nothing: the BMS heats below its 21 C (the sun warms it)
    assert 21.0 - 1e-6 <= conventional[0] < 22.0


def test_outside_walls_found_for_all_pieces_of_an_edge_at_once_as_one_by_one(plan: FloorPlan) -> None:
    """The envelope's batched probe (both sides of every piece of an edge together) against the probe of
    one piece at a time, on every edge of floor 3: the same outside walls."""
    from simulator.world.envelope import _edge_samples, _exterior
    from simulator.world.geometry import polygon_contains

    found = 0
    for poly in plan.zone_polygons:
        for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
            samples = _edge_samples(x1, y1, x2, y2)
            one_by_one = []
            for x, y, nx, ny, _ in samples:
                px, py = np.array([x + nx * 0.05, x - nx * 0.05]), np.array([y + ny * 0.05, y - ny * 0.05])
                out = 1 if polygon_contains(px, py, poly)[0] else 0
                one_by_one.append(bool(plan.zone_of(px[out:out + 1], py[out:out + 1])[0] < 0))
            assert _exterior(plan, poly, samples) == one_by_one
            found += sum(one_by_one)
    assert found > 0

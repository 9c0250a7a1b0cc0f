"""Seat illuminance estimated from the zone's lux sensor, the luminaire levels and the floor plan."""

from __future__ import annotations

from datetime import datetime

from edge_agent.config import SiteConfig
from edge_agent.sensing.light import LOWER_BOUND, SeatLightModel
from edge_agent.sensing.topology import build_topology
from rules import evaluate, load_rules
from rules.state import FloorState, IntentKind, Measure, SeatStatus, SeatView, ZoneView

Z1 = "z1-quiet"


def test_dark_room_seats_far_from_luminaires_get_less_than_the_sensor(floor_config: SiteConfig) -> None:
    model = SeatLightModel(floor_config)
    lights = {a.id: 1.0 for a in floor_config.actuators if a.kind == "light" and a.zone == Z1}
    lux = model.seat_lux({Z1: 700.0}, lights)
    corner, under = lux["S001"], min(v for v in lux.values() if v is not None)
    assert corner is not None and corner < 0.75 * 700.0  # a corner desk is darker than the centre
    assert under == min(v for s, v in lux.items() if v is not None and s.startswith("S0"))
    assert model.seat_lux({Z1: None}, lights)["S001"] is None


def test_daylight_is_stronger_near_the_window_and_electric_light_is_not_daylight(floor_config: SiteConfig) -> None:
    model = SeatLightModel(floor_config)
    off = model.seat_lux({Z1: 300.0}, {})  # lights off: all of the 300 lux is daylight
    seats = {s.id: s for s in floor_config.seats if s.zone == Z1}
    near = min(seats, key=lambda s: seats[s].y)  # south glazing at y = 0
    far = max(seats, key=lambda s: seats[s].y)
    lux_near, lux_far = off[near], off[far]
    assert lux_near is not None and lux_far is not None and lux_near > 300.0 * LOWER_BOUND > lux_far
    assert lux_near > 2.0 * lux_far


def test_a_reading_is_split_once_and_later_levels_move_the_estimate_until_the_next(floor_config: SiteConfig) -> None:
    model = SeatLightModel(floor_config)
    lums = [a.id for a in floor_config.actuators if a.kind == "light" and a.zone == Z1]
    full, half = dict.fromkeys(lums, 1.0), dict.fromkeys(lums, 0.5)
    at_full = model.seat_lux({Z1: 700.0}, full, {Z1: 10.0})
    assert model.sensor_lux_now(Z1) == 700.0  # at the reading's own levels: the reading
    at_half = model.seat_lux({Z1: 700.0}, half, {Z1: 10.0})  # dimmed since; the same reading
    dimmed = model.sensor_electric(full)[Z1] - model.sensor_electric(half)[Z1]
    assert dimmed > 50.0
    assert model.sensor_lux_now(Z1) == 700.0 - dimmed  # the light dimmed away is not taken for daylight
    for sid, lux in at_half.items():
        if lux is not None and sid.startswith("S0"):
            before = at_full[sid]
            assert before is not None and lux < before
    model.seat_lux({Z1: 640.0}, half, {Z1: 15.0})  # a new reading: split again at the levels now
    assert model.sensor_lux_now(Z1) == 640.0
    model.seat_lux({Z1: 640.0}, full, {Z1: 20.0})  # the same value read again later is a new reading too
    assert model.sensor_lux_now(Z1) == 640.0


def _daylight_loop(floor_config: SiteConfig, *, split_every_pass: bool) -> list[dict[str, float]]:
    """Zone z1, every seat taken, 100 lux of daylight at its sensor, at a gateway's rates: the rules
    every 2 s, the lux sensor read every 5 s, a reading showing the levels of the pass before (a
    ramp, the sensor's integration), each commanded level in effect by the next pass. Returns the
    levels after each pass."""
    model = SeatLightModel(floor_config)
    topology = build_topology(floor_config)
    lums = topology.zone_lights[Z1]
    seats = [s for s in floor_config.seats if s.zone == Z1]
    levels = dict.fromkeys(lums, 1.0)
    reading, read_t, out = 0.0, -10.0, [dict(levels)]
    for n in range(90):
        t = 2.0 * n
        if t - read_t >= 5.0:
            reading, read_t = 100.0 + model.sensor_electric(out[-2] if len(out) > 1 else levels)[Z1], t
        lux = model.seat_lux({Z1: reading}, levels, {Z1: t if split_every_pass else read_t})
        views = {s.id: SeatView(id=s.id, zone=Z1, status=SeatStatus.OCCUPIED, since=0.0, lux=lux[s.id])
                 for s in seats}
        zone = ZoneView(id=Z1, people=Measure(len(seats)), seats_total=len(seats), free=0, occupied=len(seats),
                        away=0, ghost=0, unknown=0, lux=Measure(reading), temperature=Measure(21.0),
                        humidity=Measure(40.0), co2=Measure(600.0), occupancy_healthy=True,
                        target_lux=500.0, lux_now=model.sensor_lux_now(Z1))
        st = FloorState(t=t, wall=datetime(2025, 3, 11, 10, 0), seats=views, zones={Z1: zone}, topology=topology,
                        levels=dict(levels))
        for intent in evaluate(load_rules(None), st).intents:
            if intent.kind == IntentKind.LIGHT_LEVEL and intent.target in levels and intent.value is not None:
                levels[intent.target] = intent.value
        out.append(dict(levels))
    return out


def test_the_daylight_loop_settles_at_a_gateways_rates_instead_of_ringing(floor_config: SiteConfig) -> None:
    held = _daylight_loop(floor_config, split_every_pass=False)
    last_minute = held[-30:]
    assert all(levels == last_minute[0] for levels in last_minute), "the levels still move after two minutes"
    assert 0.0 < min(last_minute[0].values()) < 1.0  # dimmed, not off: daylight alone is not enough
    # Split again on every pass (a stale reading taken for a new one), the same loop rings: the
    # light it dims away is credited to daylight until the next reading, so it dims again.
    rings = _daylight_loop(floor_config, split_every_pass=True)
    changes = sum(1 for a, b in zip(rings[-30:], rings[-29:], strict=False) if a != b)
    assert changes >= 10

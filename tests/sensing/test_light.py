"""Seat illuminance estimated from the zone's lux sensor, the luminaire levels and the floor plan."""

from __future__ import annotations

from edge_agent.config import SiteConfig
from edge_agent.sensing.light import LOWER_BOUND, SeatLightModel

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

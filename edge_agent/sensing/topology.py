"""Static wiring the rules need, derived once from the site config (rules.state.Topology)."""

from __future__ import annotations

import math

from edge_agent.config import SiteConfig
from edge_agent.sensing.light import SeatLightModel
from rules.state import Topology


def build_topology(cfg: SiteConfig) -> Topology:
    """Zone -> lights, zone -> HVAC output, seat -> desk, luminaire -> seats it lights."""
    lights = [a for a in cfg.actuators if a.kind == "light"]
    hvac_outputs = [a for a in cfg.actuators if a.kind == "hvac"]
    zone_lights = {z.id: tuple(a.id for a in lights if a.zone == z.id) for z in cfg.zones}
    zone_hvac: dict[str, str] = {}
    for zone in cfg.zones:
        groups = [h for h in cfg.hvac if h.id == zone.hvac or zone.id in h.zones]
        served = {zone.id}.union(*(h.zones for h in groups)) if groups else {zone.id}
        output = next((a for a in hvac_outputs if a.zone == zone.id), None) or next(
            (a for a in hvac_outputs if a.zone in served), None
        )
        if output is not None:
            zone_hvac[zone.id] = output.id
    seat_desk: dict[str, str] = {}
    for seat in cfg.seats:
        desk = seat.desk or next((a.id for a in cfg.actuators if a.kind == "desk" and seat.id in a.seats), None)
        if desk is not None:
            seat_desk[seat.id] = desk
    # Each seat is the responsibility of one luminaire: the one named for it, else the nearest
    # placed luminaire of its zone, else every luminaire of the zone shares it.
    light_seats: dict[str, list[str]] = {light.id: list(light.seats) for light in lights}
    claimed = {seat for seats in light_seats.values() for seat in seats}
    for seat in cfg.seats:
        if seat.id in claimed:
            continue
        zone_lights_here = [a for a in lights if a.zone == seat.zone]
        placed = [a for a in zone_lights_here if a.x is not None and a.y is not None]
        if placed:
            nearest = min(placed, key=lambda a: (math.hypot((a.x or 0.0) - seat.x, (a.y or 0.0) - seat.y), a.id))
            light_seats[nearest.id].append(seat.id)
        else:
            for light in zone_lights_here:
                light_seats[light.id].append(seat.id)
    return Topology(zone_lights=zone_lights, zone_hvac=zone_hvac, seat_desk=seat_desk,
                    light_seats={k: tuple(v) for k, v in light_seats.items() if v},
                    light_gain=SeatLightModel(cfg).seat_gains())

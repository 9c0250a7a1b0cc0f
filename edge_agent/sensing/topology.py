"""Static wiring the rules need, derived once from the site config (rules.state.Topology)."""

from __future__ import annotations

import math

from edge_agent.config import SiteConfig
from rules.state import Topology

LIGHT_REACH_M = 4.0  # a ceiling luminaire noticeably lights desks within about this distance


def build_topology(cfg: SiteConfig, light_reach_m: float = LIGHT_REACH_M) -> Topology:
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
    light_seats: dict[str, tuple[str, ...]] = {}
    for light in lights:
        if light.seats:
            light_seats[light.id] = tuple(light.seats)
        elif light.x is not None and light.y is not None:
            lx, ly = light.x, light.y
            light_seats[light.id] = tuple(s.id for s in cfg.seats if math.hypot(s.x - lx, s.y - ly) <= light_reach_m)
        else:
            light_seats[light.id] = tuple(s.id for s in cfg.seats if s.zone == light.zone)
    return Topology(zone_lights=zone_lights, zone_hvac=zone_hvac, seat_desk=seat_desk, light_seats=light_seats)

"""The rules' view of the wiring, derived from the site configuration.

Rules address actuators through :class:`rules.state.Topology`: a zone's luminaires, a zone's HVAC
request output, a seat's desk, and which seats each luminaire lights (used to hold the target
lux on *occupied* seats rather than on the zone average).
"""

from __future__ import annotations

import math

from edge_agent.actuation.arbiter import Limits
from edge_agent.config import SiteConfig
from rules.state import Topology


def topology_from_config(cfg: SiteConfig) -> Topology:
    """Build the topology: each seat is lit by the nearest luminaire of its zone (when positions are known)."""
    lights = [a for a in cfg.actuators if a.kind == "light"]
    zone_lights = {z.id: tuple(a.id for a in lights if a.zone == z.id) for z in cfg.zones}
    zone_hvac: dict[str, str] = {}
    for act in (a for a in cfg.actuators if a.kind == "hvac"):
        served = next((h.zones for h in cfg.hvac if act.zone in h.zones), [act.zone] if act.zone else [])
        for zid in served:
            zone_hvac.setdefault(zid, act.id)
    seat_desk: dict[str, str] = {}
    for desk in (a for a in cfg.actuators if a.kind == "desk"):
        for sid in desk.seats:
            seat_desk.setdefault(sid, desk.id)
    for seat in cfg.seats:
        if seat.desk is not None:
            seat_desk[seat.id] = seat.desk
    light_seats: dict[str, list[str]] = {}
    for seat in cfg.seats:
        placed = [a for a in lights if a.zone == seat.zone and a.x is not None and a.y is not None]
        if placed:
            nearest = min(placed, key=lambda a: (math.hypot((a.x or 0.0) - seat.x, (a.y or 0.0) - seat.y), a.id))
            light_seats.setdefault(nearest.id, []).append(seat.id)
    return Topology(
        zone_lights=zone_lights, zone_hvac=zone_hvac, seat_desk=seat_desk,
        light_seats={k: tuple(v) for k, v in light_seats.items()},
    )


def actuator_groups(topology: Topology) -> dict[str, tuple[str, ...]]:
    """Zone and seat ids -> the actuators they cover: how an override 'by zone' or 'by seat' is resolved."""
    groups: dict[str, list[str]] = {}
    for zid, lums in topology.zone_lights.items():
        groups.setdefault(zid, []).extend(lums)
    for zid, hvac in topology.zone_hvac.items():
        groups.setdefault(zid, []).append(hvac)
    for sid, desk in topology.seat_desk.items():
        groups.setdefault(sid, []).append(desk)
    for lum, seats in topology.light_seats.items():
        for sid in seats:
            groups.setdefault(sid, []).append(lum)
    return {k: tuple(dict.fromkeys(v)) for k, v in groups.items()}


def limits_from_config(cfg: SiteConfig) -> dict[str, Limits]:
    """Per-actuator arbiter limits: dimmer ramps from the config, gentler pacing for desks and HVAC.

    HVAC requests are paced to one a minute with 2-minute minimum on/off (fans and dampers do not
    like short cycles); desks get one command per 2 s so a motor is never asked to reverse mid-move.
    """
    out: dict[str, Limits] = {}
    for a in cfg.actuators:
        if a.kind == "hvac":
            out[a.id] = Limits(min_interval_s=60.0, min_on_s=120.0, min_off_s=120.0, ramp_s=0.0, tolerance=0.02)
        elif a.kind == "desk":
            out[a.id] = Limits(min_interval_s=2.0, ramp_s=0.0, tolerance=0.5)
        else:
            out[a.id] = Limits(min_interval_s=1.0, ramp_s=a.ramp_s)
    return out

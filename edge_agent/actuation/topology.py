"""The rules' view of the wiring, derived from the site configuration.

Rules address actuators through :class:`rules.state.Topology`: a zone's luminaires, a zone's HVAC
request output, a seat's desk, and which seats each luminaire lights (used to hold the target
lux on *occupied* seats rather than on the zone average).
"""

from __future__ import annotations

from edge_agent.actuation.arbiter import Limits
from edge_agent.config import SiteConfig
from edge_agent.sensing.topology import build_topology
from rules.state import IntentKind, Topology


def topology_from_config(cfg: SiteConfig) -> Topology:
    """The floor's wiring as the rules see it: one definition, shared with sensing."""
    return build_topology(cfg)


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

    HVAC requests are paced to one a minute; an on/off request (a relay, a binary BMS object) also
    has 2-minute minimum on and off times (fans and dampers do not like short cycles). An analog
    request (0-10 V, an analog BMS value) at 0 is the AHU's minimum airflow, not a stop, so demand
    control may go down to it and back without waiting. Desks get one command per 2 s so a motor is
    never asked to reverse mid-move. A desk's height (mm) and indicator (a colour code) match within
    0.5; its lamp has channel limits of its own (:func:`channel_limits_from_config`).
    """
    out: dict[str, Limits] = {}
    for a in cfg.actuators:
        if a.kind == "hvac":
            switched = a.output == "relay" or (a.bacnet is not None and a.bacnet.object.startswith("binary-"))
            hold = 120.0 if switched else 0.0
            out[a.id] = Limits(min_interval_s=60.0, min_on_s=hold, min_off_s=hold, ramp_s=0.0, tolerance=0.02)
        elif a.kind == "desk":
            out[a.id] = Limits(min_interval_s=2.0, ramp_s=0.0, tolerance=0.5)
        else:
            out[a.id] = Limits(min_interval_s=1.0, ramp_s=a.ramp_s)
    return out


def channel_limits_from_config(cfg: SiteConfig) -> dict[tuple[str, IntentKind], Limits]:
    """Limits for one channel of an actuator where its kinds differ: a desk lamp is a 0..1 level
    like a dimmer's, so it matches within 0.01, not within the 0.5 that suits the desk's height
    in mm (a lamp asked for 0.4 would otherwise count as already there at 0)."""
    return {(a.id, IntentKind.DESK_LAMP): Limits(min_interval_s=2.0, ramp_s=0.0, tolerance=0.01)
            for a in cfg.actuators if a.kind == "desk"}

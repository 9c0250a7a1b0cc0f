"""The trace format: one :class:`FloorState` per line as JSON (JSON lines).

A trace lets ``edge-agent rules replay`` show what a rule set *would* have done over a recorded
day, without touching hardware. This module only converts between states and plain dicts (pure);
writing and bounding the file is :class:`edge_agent.actuation.recorder.TraceRecorder`.

One line looks like (abridged)::

    {"v": 1, "t": 3600.0, "wall": "2025-03-04T09:00:00+01:00", "open_now": true, "day_type": "term",
     "zones": {"z1": {"people": [4, "good"], "lux": [480.0, "good"], ..., "forecast": {"30": 9.0}}},
     "seats": {"S001": {"zone": "z1", "status": "occupied", "since": 3500.0, ...}},
     "topology": {"zone_lights": {"z1": ["light-z1-1"]}, ...}, "levels": {"light-z1-1": 0.4}}

Tag pseudonyms are dropped unless ``keep_tags`` is set: a trace is a file on the gateway's card,
and privacy by default means it holds no per-person data unless asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rules.state import (
    FloorState,
    Measure,
    Preference,
    Quality,
    SeatStatus,
    SeatView,
    Topology,
    ZoneView,
)

VERSION = 1
MEASURES = ("people", "lux", "temperature", "humidity", "co2")


def dump_state(state: FloorState, *, keep_tags: bool = False) -> dict[str, Any]:
    """A JSON-ready dict of one floor state."""
    zones: dict[str, Any] = {}
    for zid, z in state.zones.items():
        doc: dict[str, Any] = {m: [getattr(z, m).value, str(getattr(z, m).quality)] for m in MEASURES}
        doc.update(
            seats_total=z.seats_total, free=z.free, occupied=z.occupied, away=z.away, ghost=z.ghost,
            unknown=z.unknown, occupancy_healthy=z.occupancy_healthy, last_motion=z.last_motion,
            empty_since=z.empty_since, forecast={str(h): v for h, v in z.forecast.items()}, target_lux=z.target_lux,
            lux_now=z.lux_now,
        )
        zones[zid] = doc
    seats = {
        sid: {
            "zone": s.zone, "status": str(s.status), "since": s.since, "desk": s.desk, "lux": s.lux,
            "consented_tag": s.consented_tag if keep_tags else None, "tag_since": s.tag_since if keep_tags else None,
        }
        for sid, s in state.seats.items()
    }
    topo = state.topology
    return {
        "v": VERSION, "t": state.t, "wall": state.wall.isoformat(), "open_now": state.open_now,
        "day_type": state.day_type, "zones": zones, "seats": seats, "levels": dict(state.levels),
        "overrides": sorted(state.overrides),
        "preferences": {
            tag: {"desk_height_mm": p.desk_height_mm, "lamp_level": p.lamp_level}
            for tag, p in state.preferences.items()
        } if keep_tags else {},
        "topology": {
            "zone_lights": {k: list(v) for k, v in topo.zone_lights.items()}, "zone_hvac": dict(topo.zone_hvac),
            "seat_desk": dict(topo.seat_desk), "light_seats": {k: list(v) for k, v in topo.light_seats.items()},
            "light_gain": {k: dict(v) for k, v in topo.light_gain.items()},
        },
    }


def load_state(doc: dict[str, Any]) -> FloorState:
    """The floor state of one trace line; raises KeyError/ValueError/TypeError on a malformed line."""
    if doc.get("v") != VERSION:
        raise ValueError(f"trace format version {doc.get('v')!r}; this build reads version {VERSION}")
    zones = {zid: _zone(zid, z) for zid, z in doc["zones"].items()}
    seats = {
        sid: SeatView(
            id=sid, zone=s["zone"], status=SeatStatus(s["status"]), since=float(s["since"]), desk=s.get("desk"),
            lux=s.get("lux"), consented_tag=s.get("consented_tag"), tag_since=s.get("tag_since"),
        )
        for sid, s in doc["seats"].items()
    }
    topo = doc.get("topology", {})
    return FloorState(
        t=float(doc["t"]), wall=datetime.fromisoformat(doc["wall"]), seats=seats, zones=zones,
        topology=topology_from_dict(topo), levels={k: float(v) for k, v in doc.get("levels", {}).items()},
        preferences={tag: Preference(p.get("desk_height_mm"), p.get("lamp_level"))
                     for tag, p in doc.get("preferences", {}).items()},
        open_now=bool(doc.get("open_now", True)), day_type=str(doc.get("day_type", "term")),
        overrides=frozenset(doc.get("overrides", ())),
    )


def topology_from_dict(topo: dict[str, Any]) -> Topology:
    return Topology(
        zone_lights={k: tuple(v) for k, v in topo.get("zone_lights", {}).items()},
        zone_hvac=dict(topo.get("zone_hvac", {})), seat_desk=dict(topo.get("seat_desk", {})),
        light_seats={k: tuple(v) for k, v in topo.get("light_seats", {}).items()},
        light_gain={k: {lum: float(g) for lum, g in v.items()} for k, v in topo.get("light_gain", {}).items()},
    )


def _zone(zid: str, z: dict[str, Any]) -> ZoneView:
    def measure(name: str) -> Measure:
        value, quality = z.get(name, [None, "missing"])
        return Measure(None if value is None else float(value), Quality(quality))

    return ZoneView(
        id=zid, people=measure("people"), seats_total=int(z["seats_total"]), free=int(z["free"]),
        occupied=int(z["occupied"]), away=int(z["away"]), ghost=int(z["ghost"]), unknown=int(z["unknown"]),
        lux=measure("lux"), temperature=measure("temperature"), humidity=measure("humidity"), co2=measure("co2"),
        occupancy_healthy=bool(z["occupancy_healthy"]), last_motion=z.get("last_motion"),
        empty_since=z.get("empty_since"), forecast={int(h): float(v) for h, v in z.get("forecast", {}).items()},
        target_lux=float(z.get("target_lux", 500.0)),
        lux_now=None if z.get("lux_now") is None else float(z["lux_now"]),
    )

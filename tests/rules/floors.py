"""Small floor states for rule tests: two zones, four seats, explicit wiring."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from rules.state import FloorState, Measure, Quality, SeatStatus, SeatView, Topology, ZoneView

WALL = datetime(2025, 3, 4, 10, 30)  # a Tuesday, mid-morning

TOPOLOGY = Topology(
    zone_lights={"z1": ("L1", "L2"), "z2": ("L3",)},
    zone_hvac={"z1": "ahu1", "z2": "ahu1"},
    seat_desk={"S1": "D1", "S2": "D2", "S3": "D3", "S4": "D4"},
    light_seats={"L1": ("S1",), "L2": ("S2",), "L3": ("S3", "S4")},
)


def zone(zid: str = "z1", **kw: Any) -> ZoneView:
    base = ZoneView(
        id=zid, people=Measure(0.0), seats_total=2, free=2, occupied=0, away=0, ghost=0, unknown=0,
        lux=Measure(300.0), temperature=Measure(21.0), humidity=Measure(40.0), co2=Measure(600.0),
        occupancy_healthy=True, last_motion=None, empty_since=0.0, forecast={}, target_lux=500.0,
    )
    return replace(base, **kw)


def seat(sid: str, zid: str, status: SeatStatus = SeatStatus.FREE, **kw: Any) -> SeatView:
    return SeatView(id=sid, zone=zid, status=status, since=kw.pop("since", 0.0), desk=TOPOLOGY.seat_desk[sid], **kw)


def state(t: float = 1000.0, *, zones: dict[str, ZoneView] | None = None, seats: dict[str, SeatView] | None = None,
          **kw: Any) -> FloorState:
    zs = zones if zones is not None else {"z1": zone("z1"), "z2": zone("z2")}
    ss = seats if seats is not None else {
        "S1": seat("S1", "z1"), "S2": seat("S2", "z1"), "S3": seat("S3", "z2"), "S4": seat("S4", "z2"),
    }
    return FloorState(t=t, wall=kw.pop("wall", WALL), seats=ss, zones=zs, topology=kw.pop("topology", TOPOLOGY), **kw)


def occupied_zone(zid: str = "z1", people: float = 2.0, lux: float = 300.0, **kw: Any) -> ZoneView:
    return zone(zid, people=Measure(people), occupied=int(people), free=0, lux=Measure(lux), empty_since=None, **kw)


UNHEALTHY = Measure(None, Quality.UNHEALTHY)

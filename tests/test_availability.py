"""Zone availability kept pass after pass: the same as counting each floor state afresh, although
a zone whose seat views did not change is not counted again (unless an away seat's hold, which
moves with the clock, can make it ready soon)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from typing import Any

from edge_agent.availability import FloorAvailability
from rules.state import FloorState, Measure, SeatStatus, SeatView, Topology, ZoneView

SEATS = {f"S{i:02d}": f"z{i % 3}" for i in range(15)}
TOPOLOGY = Topology(zone_lights={}, zone_hvac={}, seat_desk={})


def _zone(zid: str) -> ZoneView:
    m = Measure(None)
    return ZoneView(zid, m, 5, 5, 0, 0, 0, 0, m, m, m, m, occupancy_healthy=True)


def test_kept_availability_matches_a_fresh_count_every_pass() -> None:
    rng = random.Random(5)
    seats = {sid: SeatView(sid, z, SeatStatus.FREE, 0.0) for sid, z in SEATS.items()}
    zones = {z: _zone(z) for z in sorted(set(SEATS.values()))}
    kept = FloorAvailability(ready_soon_s=60.0)
    holds: dict[str, float] = {}
    before: dict[str, Any] = dict.fromkeys(zones)
    t = 0.0
    ready_soon_seen = 0
    for _ in range(400):
        t += rng.choice([0.5, 2.0, 7.0])
        for sid in rng.sample(sorted(seats), rng.choice([0, 0, 0, 1, 2])):
            status = rng.choice(list(SeatStatus))
            seats[sid] = replace(seats[sid], status=status, since=t)
            if status is SeatStatus.AWAY:
                holds[sid] = t + rng.uniform(30, 200)  # ready soon only once the clock comes near
            else:
                holds.pop(sid, None)
        state = FloorState(t, datetime(2025, 3, 4, 10), dict(seats), zones, TOPOLOGY)
        changed = kept.update(state, dict(holds), 1000.0 + t)
        fresh = FloorAvailability(ready_soon_s=60.0)
        fresh.update(state, dict(holds), 1000.0 + t)
        now = {z: a.as_message() for z, a in kept.snapshot().items()}
        assert now == {z: a.as_message() for z, a in fresh.snapshot().items()}
        assert sorted(a.zone for a in changed) == sorted(z for z in zones if now[z] != before[z])
        before = now
        ready_soon_seen += sum(m["ready_soon"] for m in now.values())
    assert ready_soon_seen > 0  # the walk reached seats turning ready soon by the clock alone

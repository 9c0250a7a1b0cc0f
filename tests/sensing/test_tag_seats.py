"""Which seat a tag belongs to where its fix is off: biased near furniture, or between two occupied seats.

A preference at the wrong desk is worse than one that comes late, so every claim a tag makes on
a seat must be unambiguous: these tests put tags where the geometry cannot tell and check that
they go to the right seat or to none, at the level of :class:`FloorTag` and of the whole floor
with the default rules deciding.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from edge_agent.config import SiteConfig
from edge_agent.sensing.floor import FloorModel
from edge_agent.sensing.geometry import SeatPoint
from edge_agent.sensing.tags import FloorTag, SeatReach, TagTrack
from rules.engine import evaluate
from rules.model import load_rules
from rules.state import Preference, SeatStatus
from tests.sensing.test_floor import Z1_THERMAL, feed

SEATS = [SeatPoint("S1", 0.0, 0.0), SeatPoint("S2", 1.6, 0.0), SeatPoint("S3", 0.0, 1.6), SeatPoint("S4", 1.6, 1.6)]
WALL = datetime(2025, 3, 4, 10, 0)


class Floor:
    """Seats, when each became occupied, and one tag fed fix by fix (every fix its own track)."""

    def __init__(self, occupied: dict[str, float], held: set[str] | None = None) -> None:
        self.occupied, self.held = occupied, held or set()
        self.tag = FloorTag(TagTrack(), 0.0)

    def fix(self, x: float, y: float, t: float) -> str | None:
        self.tag.track = TagTrack()  # the seat logic is under test here, not the filter
        self.tag.track.update(x, y, t)
        self.tag.settle(t, SEATS, 0.6, 1.2, self.occupied.get, self.held.__contains__)
        return self.tag.seat

    def rest(self, x: float, y: float, t0: float, fixes: int = 5) -> str | None:
        """``fixes`` fixes 10 s apart at the same spot (a seated patron); the seat after the last."""
        for k in range(fixes):
            self.fix(x, y, t0 + 10.0 * k)
        return self.tag.seat


@pytest.mark.parametrize("x", np.linspace(0.0, 1.6, 33).tolist())
@pytest.mark.parametrize("y", [-0.5, -0.2, 0.0, 0.3])
def test_a_tag_between_two_occupied_seats_goes_to_the_nearer_one_only_if_clearly_nearer(x: float, y: float) -> None:
    floor = Floor({"S1": 0.0, "S2": 0.0})
    seat = floor.rest(x, y, 100.0)
    d1, d2 = math.hypot(x, y), math.hypot(x - 1.6, y)
    if abs(d1 - d2) < SeatReach().margin_m:
        assert seat is None, (x, y, d1, d2)
    else:
        assert seat in (None, "S1" if d1 < d2 else "S2"), (x, y, seat)
    assert seat != ("S2" if d1 <= d2 else "S1")  # never the farther of the two
    if min(d1, d2) <= 0.6 and abs(d1 - d2) >= SeatReach().margin_m:
        assert seat == ("S1" if d1 < d2 else "S2")  # and a clear case is not refused


def test_a_resting_tag_takes_the_one_occupied_seat_its_biased_fix_points_to() -> None:
    """A link blocked by a shelf puts the fix 1.36 m west of S3; the next occupied seat is 2.4 m off."""
    floor = Floor({"S3": 95.0, "S1": 20.0, "S4": 0.0})  # S3's patron sat down at 95 s
    x, y = -1.3, 2.0
    assert floor.fix(x, y, 100.0) is None  # one fix: not at rest yet, and beyond 1.2 m
    assert floor.fix(x, y, 110.0) is None
    assert floor.fix(x, y, 120.0) == "S3"  # third fix at rest: S3 is the only seat it can be
    assert floor.tag.seat_since == 100.0  # the preferences' wait counts from when it came to rest
    assert floor.rest(x + 0.2, y - 0.1, 130.0) == "S3"  # scatter at rest keeps it
    assert floor.fix(-1.5, -1.5, 200.0) is None  # it walks away: the seat goes at once


def test_a_resting_tag_far_off_is_nobodys_if_two_occupied_seats_are_about_as_near() -> None:
    floor = Floor({"S1": 95.0, "S3": 95.0})
    assert floor.rest(-1.3, 0.8, 100.0) is None  # 1.53 m from S1, 1.53 m from S3
    floor = Floor({"S1": 95.0, "S3": 95.0})
    assert floor.rest(-1.3, 0.5, 100.0) is None  # 1.39 and 1.70 m: still within the margin
    floor = Floor({"S1": 95.0})
    assert floor.rest(-1.3, 0.8, 100.0) == "S1"  # S3 free: no one else's it could be


def test_a_resting_tag_does_not_take_a_seat_its_occupant_sat_down_at_long_before() -> None:
    """Somebody without a tag has sat at S1 for an hour; a tag carrier stops 1.4 m away: not theirs."""
    floor = Floor({"S1": 0.0})
    assert floor.rest(-1.0, -1.0, 3600.0, fixes=20) is None
    floor = Floor({"S1": 3590.0})  # sat down as the tag came: the same person
    assert floor.rest(-1.0, -1.0, 3600.0) == "S1"


def test_a_resting_tag_does_not_take_a_seat_another_tag_holds() -> None:
    floor = Floor({"S1": 95.0}, held={"S1"})
    assert floor.rest(-1.0, -1.0, 100.0) is None


def test_a_patron_back_from_a_short_walk_gets_their_far_off_seat_back() -> None:
    floor = Floor({"S1": 95.0})
    assert floor.rest(-1.0, -1.0, 100.0) == "S1"
    assert floor.fix(5.0, 5.0, 200.0) is None  # off to the shelves; S1 stays occupied (a short absence)
    assert floor.rest(-1.0, -1.0, 400.0) == "S1"  # back: the seat it left, occupied all along
    assert floor.fix(5.0, 5.0, 500.0) is None
    floor.occupied["S1"] = 700.0  # ... but had somebody else sat down there meanwhile:
    assert floor.rest(-1.0, -1.0, 1000.0) is None


@pytest.fixture
def model(floor_config: SiteConfig) -> FloorModel:
    return FloorModel(floor_config)


def _desk_preferences(model: FloorModel, t: float, prefs: dict[str, Preference]) -> dict[str, set[float]]:
    """Desk -> the values the default rules' preference rule sets there now."""
    state = model.snapshot(t, WALL, preferences=prefs)
    out: dict[str, set[float]] = {}
    for intent in evaluate(load_rules(), state).intents:
        if intent.rule_id == "desk-preferences" and intent.value is not None:
            out.setdefault(intent.target, set()).add(intent.value)
    return out


def test_preferences_are_never_applied_at_a_neighbours_desk_when_the_geometry_is_ambiguous(
        model: FloorModel, floor_config: SiteConfig) -> None:
    """Alice sits at S001 and Bob (no tag) at S002, 1.6 m apart, as she comes; her fix lands between them."""
    rng = np.random.default_rng(44)
    feed(model, floor_config, 0, 150, rng)
    feed(model, floor_config, 150, 200, rng, {"S001": Z1_THERMAL[0], "S002": Z1_THERMAL[0]})
    assert model.seat_status("S001") is SeatStatus.OCCUPIED and model.seat_status("S002") is SeatStatus.OCCUPIED
    model.set_consented_tags({"p-alice"})
    prefs = {"p-alice": Preference(desk_height_mm=1050, lamp_level=0.8)}
    for k in range(20):  # midway, and a little nearer Bob: neither desk may take Alice's settings
        t = 200.0 + 10 * k
        feed(model, floor_config, t - 10, t, rng, {"S001": Z1_THERMAL[0], "S002": Z1_THERMAL[0]})
        model.on_tag_position("p-alice", 2.5 + (0.15 if k % 2 else 0.0), 1.7, t)
        assert _desk_preferences(model, t, prefs) == {}
    state = model.snapshot(390.0, WALL, preferences=prefs)
    assert state.seats["S001"].consented_tag is None and state.seats["S002"].consented_tag is None
    for k in range(6):  # her fix clears up: S001 is clearly hers, and after 30 s her settings follow
        t = 400.0 + 10 * k
        feed(model, floor_config, t - 10, t, rng, {"S001": Z1_THERMAL[0], "S002": Z1_THERMAL[0]})
        model.on_tag_position("p-alice", 1.8, 1.6, t)
    assert _desk_preferences(model, 450.0, prefs) == {"desk-S001": {1050.0, 0.8}}


def test_two_tags_at_one_seat_it_is_the_first_ones(model: FloorModel, floor_config: SiteConfig) -> None:
    rng = np.random.default_rng(45)
    feed(model, floor_config, 0, 20, rng)
    feed(model, floor_config, 20, 200, rng, {"S001": Z1_THERMAL[0]})
    model.set_consented_tags({"p-alice", "p-carol"})
    for k in range(6):
        model.on_tag_position("p-alice", 1.75, 1.7, 150.0 + 10 * k)
    for k in range(3):  # Carol walks by close to the desk
        model.on_tag_position("p-carol", 1.5 + 0.1 * k, 1.9, 195.0 + 2 * k)
    state = model.snapshot(200.0, WALL)
    assert state.seats["S001"].consented_tag == "p-alice" and state.seats["S001"].tag_since == 150.0

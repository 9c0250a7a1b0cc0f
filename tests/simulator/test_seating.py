"""Seats in the simulated world: belongings on the load cells, "back soon", claims, staff, finding a seat.

Each test drives one or two patrons on an empty floor, except the last, which runs a busy
morning twice: without a gateway the two floors of the world (the gateway's and the
conventional one) must be the same floor, seat for seat.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import ConfigError
from edge_agent.config import SiteConfig, load_config
from simulator.world import MemoryBinding, World, physics
from simulator.world.belongings import Belongings
from simulator.world.patrons import Break, Patron
from simulator.world.scenario import Scenario, parse_scenario
from tests.simulator.worlds import FLOOR, in_world

THINGS = Belongings(laptop_g=1500.0, books_g=800.0, cup_g=300.0, bag_g=4000.0, bag_on_desk=True, cup_stays=False)


@pytest.fixture(scope="module")
def cfg() -> SiteConfig:
    return load_config(FLOOR)


def scenario(tmp: Path, **patrons: Any) -> Scenario:
    doc = {"scenario": {"name": "t", "floor": str(FLOOR), "start": "09:00", "end": "12:00", "day_type": "exam"},
           "patrons": {"demand_scale": 0.0, **patrons}}
    return parse_scenario(doc, tmp / "t.toml")


def newcomer(w: World, t: float, **plan: Any) -> int:
    """A patron arriving at ``t`` on both floors (their own copy on each) of a running world; returns their id."""
    assert w.clock.monotonic() > w.t0, "run the world first: a world starting schedules every patron it has"
    p = Patron(**{"id": len(w.patrons), "arrival": t, "zone": 0, "likes_window": False, "loner": False,
                  "laptop": False, "tag": None, "skin_c": 30.0, "stay_s": 3600.0, **plan})
    w.patrons.append(p)
    w.conventional.seats.patrons.append(copy.deepcopy(p))
    w.schedule(t, lambda t2, pid: w.seats.arrive(t2, pid), p.id)
    w.schedule(t, lambda t2, pid: w.conventional.seats.arrive(t2, pid), p.id)
    return p.id


class Display:
    """An availability display showing exactly ``seats`` free (None: dark)."""

    def __init__(self, seats: Collection[str] | None) -> None:
        self.seats = seats

    def free_seat_ids(self) -> Collection[str] | None:
        return self.seats


def test_what_lies_on_the_desk_reaches_its_load_cell(cfg: SiteConfig, tmp_path: Path) -> None:
    async def body(w: World, b: MemoryBinding) -> list[float]:
        await w.run(w.t0 + 5.0)
        pid = w.place_patron("S001", things=THINGS)
        loads = [b.desk_loads["desk-S001"]]
        w.pending_break[pid] = Break(after_s=0.0, length_s=600.0)
        w.seats.take_break(w.t0 + 600.0, pid)  # the cup goes along, the bag is put on the desk
        loads.append(b.desk_loads["desk-S001"])
        await w.run(w.t0 + 1300.0)
        loads.append(b.desk_loads["desk-S001"])  # back at the desk
        w.seats.depart(w.t0 + 1400.0, pid)
        loads.append(b.desk_loads["desk-S001"])
        return loads

    assert in_world(cfg, scenario(tmp_path), body) == [2600.0, 6300.0, 2600.0, 0.0]
    assert THINGS.on_chair("away") is False and Belongings(bag_g=2000.0).on_chair("away") is True


def test_back_soon_is_a_button_press_and_holds_the_seat_for_the_break_limit(cfg: SiteConfig, tmp_path: Path) -> None:
    limit, ghost = cfg.sensing.break_limit_s, cfg.sensing.ghost_after_s
    assert limit > ghost

    async def body(w: World, b: MemoryBinding) -> list[Any]:
        await w.run(w.t0 + 5.0)
        pid = w.place_patron("S002", back_soon=True, things=Belongings(bag_g=3000.0))
        w.pending_break[pid] = Break(after_s=0.0, length_s=limit + 600.0)
        t = w.t0 + 600.0
        w.seats.take_break(t, pid)
        seat = w.plan.seat_ids.index("S002")
        # Only a bag on the chair: no sensor sees it, but the press does.
        # Said so: away at once, without the two minutes an unannounced absence is given.
        return [b.presses, physics.graded_status(w, seat, t + 30.0), w.seats.status(seat, t + ghost + 60.0),
                w.seats.status(seat, t + limit + 60.0), physics.unseen_belongings(w, seat)]

    assert in_world(cfg, scenario(tmp_path), body) == [["desk-S002"], "away", "away", "ghost", False]


def test_a_bag_claims_a_seat_that_turns_ghost_and_its_owner_sits_later(cfg: SiteConfig, tmp_path: Path) -> None:
    async def body(w: World, b: MemoryBinding) -> list[Any]:
        await w.run(w.t0 + 5.0)
        t = w.t0 + 60.0
        pid = newcomer(w, t, claim_s=1800.0, laptop=True, things=Belongings(laptop_g=1500.0, bag_g=2500.0,
                                                                                bag_on_desk=True))
        await w.run(t + 120.0)
        p = w.patrons[pid]
        seat, desk = p.seat, w.lamp_ids[p.seat]
        assert desk is not None
        assert physics.cold_belongings(w, seat)  # only the bag: the laptop went to the lecture
        seen = [b.desk_loads[desk], physics.graded_status(w, seat, p.away_since + 60.0)]  # type: ignore[operator]
        seen.append(physics.graded_status(w, seat, p.away_since + 180.0))  # type: ignore[operator]
        await w.run(t + 1500.0)
        seen.append(w.truth_seat(w.plan.seat_ids[seat]))
        await w.run(t + 2000.0)
        seen += [w.truth_seat(w.plan.seat_ids[seat]), w.seats.book.claims, w.seats.book.seated]
        return seen

    assert in_world(cfg, scenario(tmp_path), body) == [2500.0, "free", "away", "ghost", "occupied", 1, 1]


def test_staff_answer_a_dispatch_and_release_the_seat(cfg: SiteConfig, tmp_path: Path) -> None:
    ghost = cfg.sensing.ghost_after_s

    async def body(w: World, b: MemoryBinding) -> dict[str, Any]:
        await w.run(w.t0 + 5.0)
        away = w.place_patron("S003", things=Belongings(books_g=900.0))
        w.place_patron("S004")
        w.pending_break[away] = Break(after_s=0.0, length_s=ghost + 1200.0)
        t = w.t0 + 600.0
        w.seats.take_break(t, away)
        await w.run(t + ghost + 90.0)
        b.indicators["desk-S003"] = 4  # the gateway shows it ghost (and S004, wrongly, occupied)
        w.dispatch_ghost("S003")  # 90 s into the ghost
        w.dispatch_ghost("S003")  # the same ghost again: one trip
        w.dispatch_ghost("S004")  # a wrong report: someone sits there
        await w.run(t + ghost + 90.0 + cfg.sensing.away_after_s)
        freed, loads = w.truth_seat("S003"), b.desk_loads["desk-S003"]
        await w.run(t + ghost + 1300.0)  # the patron is back: the seat is free, so they take it again
        return {"freed": freed, "holds": b.holds, "back": w.truth_seat("S003"), "loads": loads,
                "book": w.seats.book.as_report(), "staff": w.staff.report(), "here": w.truth_seat("S004"),
                "conventional": w.conventional.seats.book.ghost_ends}

    out = in_world(cfg, scenario(tmp_path), body)
    response = 27.0
    assert out["freed"] == "free" and out["back"] == "occupied" and out["here"] == "occupied"
    assert out["holds"] == [("desk-S003", 3.0)]  # only where the indicator showed ghost
    assert out["loads"] == 0.0  # the books went to lost-and-found
    assert out["staff"] == {"staff_dispatches": 3, "staff_cleared": 1, "staff_found_nothing": 0,
                            "staff_found_someone": 1, "staff_cleared_before_ghost": 0,
                            "staff_cleared_before_ghost_s": {"p50": None, "max": None}}
    release = out["book"]["ghost_to_release_s"]
    assert release["count"] == 1 and release["p50"] == pytest.approx(90.0 + response, abs=0.5)
    assert release["ended_by"] == {"staff": 1, "holder": 0, "closing": 0}
    assert out["book"]["cleared_belongings"] == 1
    assert out["conventional"] == []  # placed patrons sit on the gateway's floor only


def test_a_seat_cleared_while_its_holder_walks_back_is_taken_again_or_left_to_its_new_holder(
        cfg: SiteConfig, tmp_path: Path) -> None:
    """Staff may clear a ghost seat while its holder is on the way back from the entrance: at the
    seat they take it again if it is still free, or look for another, never sit on a seat that is
    not theirs (which nobody would see held, while the zone counts them)."""
    ghost = cfg.sensing.ghost_after_s

    async def body(w: World, b: MemoryBinding) -> dict[str, Any]:
        await w.run(w.t0 + 5.0)
        back, late = w.place_patron("S003", things=THINGS), w.place_patron("S010", things=THINGS)
        t = w.t0 + 600.0
        for pid in (back, late):
            w.pending_break[pid] = Break(after_s=0.0, length_s=ghost + 600.0)
            w.seats.take_break(t, pid)
        await w.run(t + ghost + 601.0)  # both walk back from the entrance
        walking = [w.patrons[pid].seated for pid in (back, late)]
        now = w.clock.monotonic()
        for seat_id in ("S003", "S010"):
            w.seats.clear(now, w.plan.seat_ids.index(seat_id), "staff")
        other = w.place_patron("S010")  # someone else sits down at the cleared S010 first
        await w.run(now + 900.0)
        seated = [p for p in w.patrons if p.seated]
        return {"walking": walking, "S003": int(w.holder[w.plan.seat_ids.index("S003")]),
                "S010": int(w.holder[w.plan.seat_ids.index("S010")]),
                "late": w.plan.seat_ids[w.patrons[late].seat], "late_seated": w.patrons[late].seated,
                "other": other, "back": back, "theirs": all(int(w.holder[p.seat]) == p.id for p in seated),
                "people": float(w.zone_people.sum()), "seated": len(seated)}

    out = in_world(cfg, scenario(tmp_path), body)
    assert out["walking"] == [False, False]
    assert out["S003"] == out["back"]  # still free when they came: theirs again
    assert out["S010"] == out["other"] and out["late"] != "S010" and out["late_seated"]  # found another
    assert out["theirs"] and out["people"] == out["seated"] == 3


def test_patrons_go_to_a_seat_shown_free_or_search_the_floor(cfg: SiteConfig, tmp_path: Path) -> None:
    async def body(w: World, b: MemoryBinding) -> dict[str, Any]:
        w.set_availability(Display(["S118"]))
        await w.run(w.t0 + 5.0)
        t = w.t0 + 60.0
        app = newcomer(w, t, sees_availability=True)
        walker = newcomer(w, t, sees_availability=False)
        await w.run(t + 900.0)
        return {"app": w.plan.seat_ids[w.patrons[app].seat], "walker": w.plan.zone_ids[
            int(w.plan.seat_zone[w.patrons[walker].seat])], "gateway": w.seats.book.search_s,
            "conventional": [w.plan.seat_ids[w.conventional.seats.patrons[app].seat]],
            "walk": w.plan.seat_walk(w.plan.seat_ids.index("S118"), 1.2)[0]}

    out = in_world(cfg, scenario(tmp_path), body)
    assert out["app"] == "S118"  # straight there, wherever it is
    assert out["walker"] == "z1-quiet"  # their own zone first, and it has free seats
    assert out["gateway"][0] == pytest.approx(out["walk"])  # no search: the walk to the seat
    assert out["gateway"][1] > 20.0  # looked round a zone (20 s) before walking to a seat
    assert out["conventional"] != ["S118"]  # no display on the conventional floor


def test_with_nothing_shown_free_a_patron_watches_the_display_then_leaves(cfg: SiteConfig, tmp_path: Path) -> None:
    async def body(w: World, b: MemoryBinding) -> dict[str, Any]:
        w.set_availability(Display([]))
        await w.run(w.t0 + 5.0)
        t = w.t0 + 60.0
        pid = newcomer(w, t, sees_availability=True, patience_s=200.0)
        await w.run(t + 600.0)
        dark = newcomer(w, t + 600.0, sees_availability=True)
        w.set_availability(Display(None))  # the daemon is down: they look for themselves
        await w.run(t + 1500.0)
        return {"gone": w.patrons[pid].gone, "book": w.seats.book.as_report(), "dark": w.patrons[dark].seated}

    out = in_world(cfg, scenario(tmp_path), body)
    assert out["gone"] and out["dark"]
    assert out["book"]["turned_away"] == 1 and out["book"]["seat_demand_met"] == 0.5


def test_without_a_gateway_both_floors_are_one_floor(cfg: SiteConfig, tmp_path: Path) -> None:
    """The conventional floor is the gateway's floor without what the gateway does, to the last seat-minute.

    (With a gateway they differ: tests/e2e/test_other_days.py, exam week.)
    """
    doc = {"scenario": {"name": "t", "floor": str(FLOOR), "start": "08:30", "end": "11:00", "day_type": "exam",
                        "seed": 5}, "patrons": {"demand_scale": 1.25, "claim_share": 0.1}}
    sc = parse_scenario(doc, tmp_path / "t.toml")

    async def body(w: World, b: MemoryBinding) -> dict[str, object]:
        await w.run(w.end_time)
        return w.report()

    report = in_world(cfg, sc, body)
    keys = ("seat_utilisation", "seat_demand_met", "turned_away", "seat_search_s", "ghost_seat_minutes",
            "ghost_to_release_s", "seat_claims", "away_seat_minutes")
    assert report["arrivals"] > 100 and report["seat_claims"] > 0  # type: ignore[operator]
    assert report["turned_away"] > 0  # type: ignore[operator]  # a busy morning
    assert {k: report[k] for k in keys} == {k: report[f"baseline_{k}"] for k in keys}


def test_claim_range_is_checked(tmp_path: Path) -> None:
    doc = {"scenario": {"name": "t", "floor": str(FLOOR)}, "patrons": {"claim_min": [90, 20]}}
    with pytest.raises(ConfigError, match=r"patrons\.claim_min: claim_min must be \[shortest, longest\]"):
        parse_scenario(doc, tmp_path / "t.toml")

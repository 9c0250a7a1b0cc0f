"""The seat state machine with the desk's weight and the "back soon" button (pure units).

Frames a minute apart, as the simulated floor polls its thermopiles; the desk weighed with them.
"""

from __future__ import annotations

from edge_agent.sensing.seats import SeatStateMachine, SeatTiming
from edge_agent.sensing.weight import DeskWeight
from rules.state import SeatStatus

FREE, OCCUPIED, AWAY, GHOST = SeatStatus.FREE, SeatStatus.OCCUPIED, SeatStatus.AWAY, SeatStatus.GHOST
TIMING = SeatTiming(ghost_after_s=1200.0, break_limit_s=1800.0)


class Desk:
    """A seat seen by a thermopile every 60 s and weighed on the same beat."""

    def __init__(self) -> None:
        self.seat = SeatStateMachine(TIMING)
        self.scale = DeskWeight()
        self.t = 0.0
        self.grams = 18_000.0  # the desktop's dead load: the empty level is learnt, not assumed

    def minute(self, present: bool, load_g: float = 0.0, *, warm: bool = False, witnessed: bool = True) -> SeatStatus:
        self.t += 60.0
        self.seat.observe(present, self.t, residue=warm, residue_heat=3.0 if warm else 0.0)
        self.scale.observe(self.grams + load_g, self.t,
                           empty_expected=self.seat.status is FREE and not self.seat.present(self.t))
        return self.seat.observe_weight(self.scale.on, self.t, since=self.scale.on_since, witnessed=witnessed,
                                        load_g=self.scale.load_g)

    def run(self, minutes: int, present: bool, load_g: float = 0.0, **kw: bool) -> SeatStatus:
        for _ in range(minutes):
            status = self.minute(present, load_g, **kw)
        return status


def settled_free() -> Desk:
    desk = Desk()
    assert desk.run(4, False) is FREE
    return desk


def test_cold_belongings_left_on_the_desk_mean_away_then_ghost() -> None:
    desk = settled_free()
    assert desk.run(30, True, 2300.0) is OCCUPIED  # a bag and books, no laptop: nothing warm
    assert desk.run(3, False, 2300.0) is AWAY  # the thermopile alone would have said free
    assert desk.run(20, False, 2300.0) is GHOST


def test_a_patron_who_takes_everything_leaves_a_free_seat() -> None:
    desk = settled_free()
    desk.run(30, True, 1800.0)
    assert desk.run(3, False, 0.0) is FREE


def test_a_short_visit_that_leaves_a_bag_is_a_claim_not_a_passer_by() -> None:
    desk = settled_free()
    desk.run(2, True, 900.0)  # two minutes: a passer-by by the stay rule
    assert desk.run(3, False, 900.0) is AWAY


def test_a_bag_dropped_on_a_free_desk_claims_it_and_turns_ghost_at_the_limit() -> None:
    desk = settled_free()
    assert desk.minute(False, 4000.0) is FREE  # nobody seen: a claim, judged after claim_after_s
    assert desk.run(2, False, 4000.0) is AWAY
    assert desk.run(18, False, 4000.0) is GHOST


def test_a_step_nobody_made_is_not_a_claim() -> None:
    desk = settled_free()
    assert desk.run(5, False, 4000.0, witnessed=False) is FREE


def test_belongings_taken_while_away_free_the_seat() -> None:
    desk = settled_free()
    desk.run(30, True, 2000.0)
    assert desk.run(5, False, 2000.0) is AWAY
    assert desk.minute(False, 0.0) is FREE  # the patron came back and packed up between two frames


def test_drift_and_creep_follow_the_empty_level_but_a_bag_does_not() -> None:
    desk = settled_free()
    for _ in range(120):  # two hours of a slow 40 g drift
        desk.grams += 0.33
        assert desk.minute(False) is FREE
    assert abs(desk.scale.load_g or 0.0) < 20.0


def test_back_soon_holds_the_seat_then_sitting_down_ends_the_hold() -> None:
    desk = settled_free()
    desk.run(10, True, 1500.0)
    assert desk.seat.press(desk.t + 1) == "away"
    assert desk.seat.status is AWAY and desk.seat.held
    assert desk.run(25, False, 0.0) is AWAY  # desk empty, nothing warm: still held, not free
    assert desk.run(2, True) is OCCUPIED and not desk.seat.held


def test_back_soon_pressed_again_ends_the_hold_and_the_limit_makes_it_ghost() -> None:
    desk = settled_free()
    desk.run(10, True)
    desk.seat.press(desk.t)
    assert desk.seat.press(desk.t + 30) == "back"
    assert desk.seat.status is OCCUPIED
    desk.seat.press(desk.t + 60)
    assert desk.run(29, False) is AWAY
    assert desk.run(2, False) is GHOST  # the break limit (30 min) passed


def test_a_release_rezeroes_the_desk_so_what_is_left_is_no_claim() -> None:
    desk = settled_free()
    desk.run(30, True, 2000.0)
    desk.run(25, False, 2000.0)
    assert desk.seat.status is GHOST
    desk.seat.release(desk.t)
    desk.scale.rezero()
    assert desk.run(5, False, 2000.0) is FREE
    assert desk.run(3, False, 0.0) is FREE  # staff took the bag after releasing: the empty level drops to it
    assert desk.run(3, False, 2000.0) is AWAY  # a new bag is a new claim


def test_a_tare_carries_the_empty_level_so_a_mass_put_down_before_the_next_reading_is_seen() -> None:
    scale = DeskWeight()
    scale.observe(18_000.0, 0.0, empty_expected=True)  # uncalibrated: the desktop's dead load
    scale.convert(lambda g: g - 18_000.0)  # edge-agent calibrate weight --tare
    scale.observe(2070.0, 60.0, empty_expected=True)  # the calibration mass, already on at the next reading
    assert scale.on and scale.load_g == 2070.0  # not taken for a lighter empty desk
    scale.convert(lambda g: g * 2000.0 / 2070.0)  # --known-mass 2000
    assert scale.load_g == 2000.0
    scale.observe(0.0, 120.0, empty_expected=True)
    assert not scale.on and scale.baseline == 0.0


def test_a_patron_who_packs_up_leaves_a_free_seat_whatever_warmth_is_still_seen() -> None:
    desk = settled_free()
    desk.run(30, True, 1800.0)
    # The desk that held their laptop is empty; the chair (or sun on it) still looks warm.
    assert desk.run(3, False, 0.0, warm=True) is FREE


def test_warmth_left_at_a_desk_that_held_nothing_is_still_a_break() -> None:
    desk = settled_free()
    desk.run(30, True)  # nothing on the desk all along: the weight cannot tell
    assert desk.run(3, False, warm=True) is AWAY  # a coat on the chair back


def test_a_cup_taken_along_is_a_break_not_packing_up() -> None:
    desk = settled_free()
    desk.run(30, True, 350.0)  # only a cup on the desk
    assert desk.run(3, False, 0.0, warm=True) is AWAY  # the coat on the chair still holds the seat


def test_a_hold_just_after_the_ghost_desk_emptied_is_still_staff_releasing_it() -> None:
    desk = settled_free()
    desk.run(30, True, 2000.0)
    assert desk.run(25, False, 2000.0) is GHOST
    assert desk.minute(False, 0.0) is FREE  # staff took the things; the load cell said so first
    assert desk.seat.staff_release(desk.t + 5.0, 180.0)  # the hold that follows releases, holds nothing
    assert not desk.seat.staff_release(desk.t + 600.0, 180.0)  # later, a hold on a free seat is a press
    desk.seat.release(desk.t + 10.0)
    assert not desk.seat.staff_release(desk.t + 20.0, 180.0)  # after the release itself, a press too
    desk.run(30, True, 1500.0)
    assert not desk.seat.staff_release(desk.t, 180.0)  # nor on an occupied one

"""Seat state machine: transitions at the configured times, hysteresis, unknown."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge_agent.sensing.seats import SeatStateMachine, SeatTiming
from rules.state import SeatStatus

TIMING = SeatTiming(occupied_after_s=30, away_after_s=120, ghost_after_s=1200, min_stay_s=300, gap_s=6)
STEP = 2.0  # a thermopile frame every 2 s


def run(
    m: SeatStateMachine, t0: float, t1: float, presence: Callable[[float], bool | None]
) -> list[tuple[float, SeatStatus]]:
    """Feed evidence every STEP seconds in [t0, t1); return the (since, status) changes seen."""
    changes: list[tuple[float, SeatStatus]] = []
    n = round((t1 - t0) / STEP)
    for k in range(n):
        t = t0 + k * STEP
        before = m.status
        m.observe(presence(t), t)
        if m.status is not before:
            changes.append((m.since, m.status))
    return changes


def settled_free(t: float = 0.0) -> SeatStateMachine:
    m = SeatStateMachine(TIMING, t)
    run(m, t, t + 130, lambda _: False)
    assert m.status is SeatStatus.FREE
    return m


def test_full_walk_free_occupied_away_ghost_free() -> None:
    m = settled_free()
    arrive, leave = 200.0, 200.0 + 1800.0
    changes = run(m, 130, 4000, lambda t: arrive <= t < leave)
    last_seen = leave - STEP
    assert changes == [
        (arrive + 30, SeatStatus.OCCUPIED),
        (last_seen + 120, SeatStatus.AWAY),
        (last_seen + 1200, SeatStatus.GHOST),
    ]
    m.release(4000.0)
    assert (m.status, m.since) == (SeatStatus.FREE, 4000.0)
    assert run(m, 4000, 5000, lambda _: False) == []


def test_sixty_second_absence_stays_occupied() -> None:
    m = settled_free()
    changes = run(m, 130, 1500, lambda t: 200 <= t < 800 or t >= 860)
    assert changes == [(230.0, SeatStatus.OCCUPIED)]


def test_short_visit_does_not_leave_a_taken_seat() -> None:
    m = settled_free()
    changes = run(m, 130, 3000, lambda t: 200 <= t < 290)  # 90 s: occupied, then simply free
    assert [s for _, s in changes] == [SeatStatus.OCCUPIED, SeatStatus.FREE]


def test_passer_by_at_an_away_seat_does_not_reset_the_ghost_clock() -> None:
    m = settled_free()
    run(m, 130, 1000, lambda t: 200 <= t < 800)
    assert m.status is SeatStatus.AWAY
    changes = run(m, 1000, 2200, lambda t: 1100 <= t < 1110)
    assert changes == [(798.0 + 1200, SeatStatus.GHOST)]


def test_patron_returning_from_away_reoccupies() -> None:
    m = settled_free()
    run(m, 130, 1200, lambda t: 200 <= t < 800)
    assert m.status is SeatStatus.AWAY
    changes = run(m, 1200, 1300, lambda _: True)
    assert changes == [(1230.0, SeatStatus.OCCUPIED)]


def test_flicker_in_the_detector_is_bridged() -> None:
    rng = np.random.default_rng(11)
    drops = rng.random(2000) < 0.2  # one frame in five lost
    m = settled_free()
    changes = run(m, 130, 2000, lambda t: t >= 200 and not drops[int(t / STEP)])
    first = next(200.0 + STEP * k for k in range(100) if not drops[100 + k])
    assert changes == [(first + 30, SeatStatus.OCCUPIED)]


def test_unhealthy_sensor_gives_unknown_then_rederives() -> None:
    m = settled_free()
    run(m, 130, 1000, lambda t: t >= 200)
    assert m.status is SeatStatus.OCCUPIED
    changes = run(m, 1000, 1100, lambda _: None)
    assert changes == [(1000.0, SeatStatus.UNKNOWN)]
    # fresh evidence: nobody there; the pre-outage occupancy is not trusted
    changes = run(m, 1100, 1300, lambda _: False)
    assert changes == [(1220.0, SeatStatus.FREE)]
    m2 = settled_free()
    run(m2, 130, 300, lambda _: None)
    changes = run(m2, 300, 400, lambda _: True)
    assert changes == [(330.0, SeatStatus.OCCUPIED)]


def test_release_of_an_occupied_seat_is_reoccupied_by_presence() -> None:
    m = settled_free()
    run(m, 130, 400, lambda t: t >= 200)
    m.release(400.0)
    assert m.status is SeatStatus.FREE
    changes = run(m, 400, 500, lambda _: True)
    assert changes == [(430.0, SeatStatus.OCCUPIED)]


def test_long_stay_ends_free_when_nothing_was_left_behind_and_away_when_it_was() -> None:
    for residue, expected in ((False, SeatStatus.FREE), (True, SeatStatus.AWAY)):
        m = settled_free()
        for k in range(int((1000 - 130) / STEP)):
            t = 130 + k * STEP
            present = 200 <= t < 800
            m.observe(present, t, residue=None if present else residue)
        assert (m.status, m.since) == (expected, 798.0 + 120), residue


def test_residue_seen_before_the_patron_left_does_not_count() -> None:
    m = settled_free()
    for k in range(int((1000 - 130) / STEP)):
        t = 130 + k * STEP
        m.observe(200 <= t < 800, t, residue=t < 300)
    assert m.status is SeatStatus.FREE


def _stay_then_leave(frame_s: float, residue_until: float, t_end: float) -> list[tuple[float, SeatStatus]]:
    """Frames every ``frame_s``: a patron sits 200..800 s; warmth is seen where they sat until ``residue_until``."""
    m = SeatStateMachine(TIMING, 0.0)
    changes: list[tuple[float, SeatStatus]] = []
    t = 0.0
    while t < t_end:
        before = m.status
        present = 200 <= t < 800
        m.observe(present, t, residue=False if present else t < residue_until)
        m.advance(t + 0.75 * frame_s)  # the rules look in between frames too
        if m.status is not before:
            changes.append((m.since, m.status))
        t += frame_s
    return changes


def test_chair_warmth_that_fades_in_a_minute_is_not_belongings() -> None:
    # 2 s frames: the chair is warm for 60 s after the stand-up, then the seat is cold.
    changes = _stay_then_leave(2.0, 860.0, 1200.0)
    assert changes[-1] == (798.0 + 120, SeatStatus.FREE)
    assert SeatStatus.AWAY not in [s for _, s in changes]


def test_warmth_that_outlasts_the_chair_is_belongings() -> None:
    # A coat still warm 10 minutes after the stand-up: a break.
    changes = _stay_then_leave(2.0, 1400.0, 1200.0)
    assert changes[-1] == (798.0 + 120, SeatStatus.AWAY)


def test_sparse_frames_make_away_provisional_until_a_late_enough_frame() -> None:
    # Frames a minute apart: seen at 780, gone at 840; decided at 780 + 120 with only the frames of
    # 840 and 900 seen; without the residue's heat, the first frame 170 s after 840 settles it.
    chair = _stay_then_leave(60.0, 910.0, 1500.0)  # warm at 840 and 900, cold at 960
    assert [s for _, s in chair] == [SeatStatus.FREE, SeatStatus.OCCUPIED, SeatStatus.AWAY, SeatStatus.FREE]
    assert chair[-1][0] == 780.0 + 120  # free since the patron's departure was judged
    coat = _stay_then_leave(60.0, 2000.0, 1500.0)
    assert [s for _, s in coat] == [SeatStatus.FREE, SeatStatus.OCCUPIED, SeatStatus.AWAY]
    # Warm at 840 only: already cold in the latest frame when judged, so FREE at once.
    gone = _stay_then_leave(60.0, 850.0, 1500.0)
    assert [s for _, s in gone] == [SeatStatus.FREE, SeatStatus.OCCUPIED, SeatStatus.FREE]


def test_short_visit_that_leaves_a_warm_laptop_is_a_break() -> None:
    changes = _stay_then_leave(2.0, 2000.0, 600.0 + 400.0)  # seated 200..800 s: long enough anyway
    assert changes[-1][1] is SeatStatus.AWAY
    m = SeatStateMachine(TIMING, 0.0)
    for k in range(500):
        t = k * 2.0
        present = 200 <= t < 320  # two minutes: a passer-by by the stay rule
        m.observe(present, t, residue=False if present else t < 900)
    assert m.status is SeatStatus.AWAY  # but a laptop was left warm on the desk


def test_sparse_frames_one_frame_with_a_person_occupies() -> None:
    m = SeatStateMachine(TIMING, 0.0)
    for t in (0.0, 60.0, 120.0, 180.0):
        m.observe(False, t, residue=False)
    assert m.status is SeatStatus.FREE
    m.observe(True, 240.0, residue=False)
    assert (m.status, m.since) == (SeatStatus.OCCUPIED, 240.0)
    # With 2 s frames a single frame is not enough: the 30 s rule holds.
    fast = settled_free()
    fast.observe(True, 200.0)
    assert fast.status is SeatStatus.FREE


def _leave_warmth(heat: Callable[[float], float], t_end: float = 1500.0) -> list[tuple[float, float, SeatStatus]]:
    """Frames a minute apart: a patron sits 200..800 s; ``heat(age)`` is the warmth (C x pixels)
    seen where they sat ``age`` s after they stood up at 800 (under 0.5: not seen at all).
    Returns (frame time, since, status) 45 s after each frame from the departure on."""
    m = SeatStateMachine(TIMING, 0.0)
    out: list[tuple[float, float, SeatStatus]] = []
    for t in np.arange(0.0, t_end, 60.0):
        present = 200 <= t < 800
        h = 0.0 if present else heat(t - 800.0)
        m.observe(present, float(t), residue=h >= 0.5, residue_heat=h if h >= 0.5 else 0.0)
        m.advance(float(t) + 45.0)  # the decide loop looks between frames too
        if t >= 840:
            out.append((float(t), m.since, m.status))
    return out


def test_chair_warmth_gone_by_the_next_frame_frees_the_seat_at_once() -> None:
    # The chair seat: +4 C-pixels cooling with a 60 s time constant, seen at 840 and 900 only.
    seen = _leave_warmth(lambda age: 4.0 * np.exp(-age / 60.0))
    by_t = {t: (since, status) for t, since, status in seen}
    assert by_t[900.0] == (900.0, SeatStatus.AWAY)  # judged at 780 + 120 on warmth still seen
    assert by_t[960.0] == (900.0, SeatStatus.FREE)  # gone a frame later: it was the chair
    assert all(status is SeatStatus.FREE for t, _, status in seen if t >= 960.0)


def test_warmth_cooling_like_a_coat_is_belongings_before_the_chair_could_have_cooled() -> None:
    # A coat on the chair back: cooling with a 12-minute time constant; its heat over two frames a
    # minute apart says so as soon as the seat is judged, without waiting for belongings_after_s.
    seen = _leave_warmth(lambda age: 3.0 * np.exp(-age / 720.0), t_end=2400.0)
    by_t = {t: (since, status) for t, since, status in seen}
    assert by_t[900.0] == (900.0, SeatStatus.AWAY)
    assert by_t[2040.0][1] is SeatStatus.GHOST  # 20 minutes after they were last seen
    assert SeatStatus.FREE not in {status for _, _, status in seen}


def test_chair_and_coat_together_end_away() -> None:
    # The first frame after the stand-up sees both; the chair's share fades, the coat's stays.
    seen = _leave_warmth(lambda age: 4.0 * np.exp(-age / 60.0) + 2.0 * np.exp(-age / 720.0))
    assert [status for t, _, status in seen if t >= 960.0] == [SeatStatus.AWAY] * 9


def test_weak_coat_that_cools_out_of_sight_still_holds_the_seat() -> None:
    # Seen only at 840 and 900, just over the detection limit, then lost in the noise: but it
    # cooled like fabric between the two frames, not like a chair seat, so the patron is away.
    seen = _leave_warmth(lambda age: 0.6 * np.exp(-age / 720.0))
    assert {status for t, _, status in seen if t >= 900.0} == {SeatStatus.AWAY}


def _seated_with_sparse_frames() -> SeatStateMachine:
    """Frames a minute apart; the patron sits from 240 s and is seen in every frame to 600 s."""
    m = SeatStateMachine(TIMING, 0.0)
    for t in np.arange(0.0, 660.0, 60.0):
        m.observe(bool(t >= 240.0), float(t), residue=False)
    assert m.status is SeatStatus.OCCUPIED
    return m


def test_a_desk_step_then_no_patron_counts_their_absence_from_the_step() -> None:
    """Seen at 600 s; the desk packed at 645 s (LOAD_STEP) and a prompt frame at 650 s without them:
    they left at 645, not at 600, and no dropout bridge holds them there."""
    m = _seated_with_sparse_frames()
    m.observe_weight(True, 600.0, since=240.0, load_g=1800.0)
    m.desk_step(645.0)
    m.observe_weight(False, 650.0)
    m.observe(False, 650.0, residue=False, prompt=True)
    assert m.due() == 645.0 + TIMING.away_after_s + 1e-3
    assert m.advance(764.0) is SeatStatus.OCCUPIED
    assert (m.advance(765.0), m.since) == (SeatStatus.FREE, 765.0)
    # Without the step the frame at 600 is all there is, bridged for 2.5 frame intervals.
    plain = _seated_with_sparse_frames()
    plain.observe(False, 660.0, residue=False)
    assert plain.due() == 600.0 + 150.0 + 1e-3
    assert plain.advance(749.0) is SeatStatus.OCCUPIED


def test_a_desk_step_with_the_patron_still_seen_changes_nothing() -> None:
    m = _seated_with_sparse_frames()
    m.desk_step(630.0)  # a cup moved
    m.observe(True, 632.0, residue=False, prompt=True)
    m.observe(True, 660.0, residue=False)
    assert m.advance(800.0) is SeatStatus.OCCUPIED
    assert m.due() == 660.0 + 150.0 + 1e-3  # a prompt frame does not shorten the frame interval


def test_a_prompt_frame_does_not_make_one_frame_too_little_to_occupy() -> None:
    m = SeatStateMachine(TIMING, 0.0)
    for t in (0.0, 60.0, 120.0, 180.0):
        m.observe(False, t, residue=False)
    m.observe(False, 190.0, residue=False, prompt=True)  # 10 s after the last frame
    m.observe(True, 240.0, residue=False)
    assert (m.status, m.since) == (SeatStatus.OCCUPIED, 240.0)


def test_a_patron_back_at_an_away_seat_with_a_desk_step_is_back_not_a_dropout() -> None:
    """Seen at 600 s; a bag put on the desk at 610 s and a prompt frame without them: away from 730 s.
    At 740 s the desk steps again and a prompt frame sees them, 141 s after the frame that last did:
    within the dropout bridge of minute frames, but the desk says someone's hands were on it after
    the seat was seen empty. They are back (occupied), not a dropout that would hold the seat
    away, then ghost, with its patron sitting at it."""
    m = _seated_with_sparse_frames()
    m.observe_weight(True, 600.0, since=240.0, load_g=1800.0)
    m.desk_step(610.0)
    m.observe_weight(True, 611.0, since=610.0, load_g=4500.0)
    m.observe(False, 611.0, residue=False, prompt=True)
    assert (m.advance(731.0), m.since) == (SeatStatus.AWAY, 730.0)
    m.desk_step(740.0)
    m.observe(True, 741.0, residue=False, prompt=True)
    assert (m.status, m.since) == (SeatStatus.OCCUPIED, 741.0)
    for t in np.arange(780.0, 2400.0, 60.0):
        m.observe(True, float(t), residue=False)
    assert m.status is SeatStatus.OCCUPIED


def test_a_passer_by_seen_without_a_desk_step_at_an_away_seat_is_not_the_patron_back() -> None:
    """The same break, but the frame at 741 s that sees someone comes with no desk step: one frame
    within the dropout bridge, so the seat stays away (and ghost at the limit from when they left)."""
    m = _seated_with_sparse_frames()
    m.observe_weight(True, 600.0, since=240.0, load_g=1800.0)
    m.desk_step(610.0)
    m.observe_weight(True, 611.0, since=610.0, load_g=4500.0)
    m.observe(False, 611.0, residue=False, prompt=True)
    assert m.advance(731.0) is SeatStatus.AWAY
    m.observe(True, 741.0, residue=False, prompt=True)
    for t in np.arange(780.0, 1900.0, 60.0):
        m.observe(False, float(t), residue=False)
    assert (m.status, m.since) == (SeatStatus.GHOST, 610.0 + TIMING.ghost_after_s)

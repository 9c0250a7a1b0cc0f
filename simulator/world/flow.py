"""Patron events of the world: arriving, walking, sitting, breaks, leaving, and what sensors notice.

Functions of the :class:`~simulator.world.world.World` (``w``) and the event time ``t``, scheduled
on the world's event heap. A walk is a straight line at the scenario's walking speed; every zone
it crosses sees motion in its PIR's view for the crossing (the simulated PIR module adds its hold
and blocking times, :mod:`simulator.hw.pir`). Each event first checks
that the patron is still on the floor (closing time may have ended their day).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.world import physics
from simulator.world.metrics import Need
from simulator.world.patrons import Break, choose_seat
from simulator.world.scenario import ScenarioEvent
from simulator.world.uwb import measure, nlos_links

if TYPE_CHECKING:
    from simulator.world.world import World

CLOSING_SPREAD_S = 900.0  # people pack up over the last quarter hour


def arrive(w: World, t: float, pid: int) -> None:
    p = w.patrons[pid]
    w.score.arrivals += 1
    leave_by = min(t + p.stay_s, w.t_close - float(w.rng_choice.uniform(0.0, CLOSING_SPREAD_S)))
    seat = -1 if leave_by < t + 600.0 else choose_seat(
        p, w.holder, w.plan.seat_zone, w.seat_window, w.neighbours, w.zone_kind, w.rng_choice)
    if seat < 0:
        w.score.turned_away += 1
        p.gone = True
        return
    p.seat, p.leave_by = seat, leave_by
    w.holder[seat] = pid
    walk_in(w, t, pid)


def walk(w: World, t: float, pid: int, inbound: bool) -> float:
    """Start a walk between the entrance and the patron's seat; returns its duration."""
    p = w.patrons[pid]
    seat_xy = (float(w.plan.seat_xy[p.seat, 0]), float(w.plan.seat_xy[p.seat, 1]))
    start, end = (w.plan.entrance, seat_xy) if inbound else (seat_xy, w.plan.entrance)
    duration, spans = w.plan.seat_walk(p.seat, w.scenario.patrons.walk_speed_m_s)
    if not inbound:  # the same line walked backwards
        spans = [(zone, duration - b, duration - a) for zone, a, b in reversed(spans)]
    for zone, a, b in spans:
        for pir in w.pirs[zone]:
            motion(w, pir, t + a, t + b)
    if p.tag is not None:
        w.walking[pid] = (t, duration, start, end)
    if inbound and spans:
        w.schedule(t + spans[-1][1], partial(light_check, w), pid)
    return duration


def walk_in(w: World, t: float, pid: int) -> None:
    w.schedule(t + walk(w, t, pid, inbound=True), partial(sit, w), pid)


def sit(w: World, t: float, pid: int) -> None:
    p = w.patrons[pid]
    if p.gone:
        return
    p.set_seated(True, t)
    p.away_since = None
    w.zone_people[w.plan.seat_zone[p.seat]] += 1
    physics.push_frames(w, w.seat_scenes[p.seat], t)
    if p.tag is not None:
        w.tag_bias[pid] = nlos_links(len(w.anchor_ids), w.rng_tag, _seated_near(w, p.seat))
    w.adaptive.sit(t, pid)
    while p.breaks:
        b = p.breaks.pop(0)
        tb = t + b.after_s
        if tb >= p.leave_by:
            break
        if not b.returns or tb + b.length_s + 60.0 < p.leave_by:
            w.pending_break[pid] = b
            w.schedule(tb, partial(take_break, w), pid)
            return
        p.leave_by = tb  # the break would run past their leaving time: they go home instead
        break
    w.schedule(p.leave_by, partial(depart, w), pid)


def _seated_near(w: World, seat: int) -> int:
    """People seated within 2.5 m of the seat (their bodies block UWB links too)."""
    seated = np.array([h >= 0 and w.patrons[int(h)].seated for h in w.holder], dtype=float)
    return int(w.neighbours[seat] @ seated)


def _stand_up(w: World, t: float, pid: int) -> None:
    p = w.patrons[pid]
    w.adaptive.stand(t, pid)
    p.set_seated(False, t)
    w.stood_at[p.seat] = t
    w.zone_people[w.plan.seat_zone[p.seat]] -= 1
    physics.push_frames(w, w.seat_scenes[p.seat], t)


def take_break(w: World, t: float, pid: int) -> None:
    p = w.patrons[pid]
    if p.gone or not p.seated:
        return
    b: Break = w.pending_break.pop(pid)
    p.away_since, p.returning = t, b.returns
    _stand_up(w, t, pid)
    walk(w, t, pid, inbound=False)
    if b.returns:
        w.schedule(t + b.length_s, partial(come_back, w), pid)
    else:
        w.score.abandoned += 1  # belongings stay on the seat until closing


def come_back(w: World, t: float, pid: int) -> None:
    """Back from a break; if staff cleared the seat meanwhile, take it again if free, else another."""
    p = w.patrons[pid]
    if p.gone:
        return
    if w.holder[p.seat] != pid:
        seat = p.seat if w.holder[p.seat] < 0 else choose_seat(
            p, w.holder, w.plan.seat_zone, w.seat_window, w.neighbours, w.zone_kind, w.rng_choice)
        if seat < 0:
            p.gone = True  # the floor is full: they collect their things and go
            return
        p.seat = seat
        w.holder[seat] = pid
    walk_in(w, t, pid)


def clear_belongings(w: World, t: float, seat: int) -> None:
    """Staff clear a released ghost seat: the belongings go to lost-and-found, the seat is free."""
    pid = int(w.holder[seat])
    w.holder[seat] = -1
    w.score.cleared_belongings += 1
    if not w.patrons[pid].returning:
        w.patrons[pid].gone = True
    physics.push_frames(w, w.seat_scenes[seat], t)


def depart(w: World, t: float, pid: int) -> None:
    p = w.patrons[pid]
    if p.gone or not p.seated:
        return
    if p.abandons:  # the belongings stay: the seat looks taken until staff clear it at closing
        w.pending_break[pid] = Break(after_s=0.0, length_s=0.0, returns=False)
        take_break(w, t, pid)
        return
    _stand_up(w, t, pid)
    walk(w, t, pid, inbound=False)
    w.holder[p.seat] = -1
    p.gone = True
    w.adaptive.leave(t, pid)


def closing(w: World, t: float, _: Any = None) -> None:
    """Closing time: whoever is still seated leaves; staff clear belongings left on seats."""
    for seat in np.flatnonzero(w.holder >= 0):
        pid = int(w.holder[seat])
        p = w.patrons[pid]
        if p.seated:
            depart(w, t, pid)
        else:
            w.holder[seat] = -1
            p.gone = True
            physics.push_frames(w, w.seat_scenes[seat], t)


def motion(w: World, pir: str, start: float, end: float) -> None:
    """Something moves in the PIR's view from ``start`` to ``end`` (the module adds its hold time)."""
    w.schedule(start, partial(pir_on, w), (pir, end))


def pir_on(w: World, t: float, arg: tuple[str, float]) -> None:
    pir, until = arg
    if not w.pir_high.get(pir, False):
        w.pir_high[pir] = True
        w.binding.set_motion(pir, True)
    if until > w.pir_until.get(pir, 0.0):
        w.pir_until[pir] = until
        w.schedule(until, partial(pir_off, w), pir)


def pir_off(w: World, t: float, pir: str) -> None:
    if w.pir_high.get(pir, False) and t >= w.pir_until.get(pir, 0.0) - 1e-9:
        w.pir_high[pir] = False
        w.binding.set_motion(pir, False)


def fidget(w: World, t: float, dt: float, rate_s: float) -> None:
    """Seated people move now and then: Poisson motions per zone over the next ``dt`` seconds."""
    for zone, n in enumerate(w.zone_people):
        if n <= 0 or not w.pirs[zone]:
            continue
        for _ in range(int(w.rng_motion.poisson(n * dt / rate_s))):
            at = t + float(w.rng_motion.uniform(0.0, dt))
            for pir in w.pirs[zone]:
                motion(w, pir, at, at + 1.0)


def light_check(w: World, t: float, pid: int) -> None:
    """A patron enters their seat's zone: does the seat have the light it needs?"""
    p = w.patrons[pid]
    if p.gone or not w.is_open(t):
        return
    zone = int(w.plan.seat_zone[p.seat])
    if ("light", zone) in w.needs:
        return
    physics.read_lights(w, t)
    if w.point_lux[p.seat] < physics.LIGHT_NEED_FRACTION * w.zone_target[zone]:
        w.needs["light", zone] = Need("light", zone, t, p.seat)
        physics.start_polling(w, t)


def report_tags(w: World, t: float) -> None:
    """Every tag on the floor reports its own position and ranges (simulator.world.uwb); a seated
    tag's links carry its seat's furniture as well as the people around it."""
    present: list[tuple[int, float, float]] = []
    for pid, (t0, dur, a, b) in list(w.walking.items()):
        if t > t0 + dur:
            del w.walking[pid]
            continue
        f = (t - t0) / dur if dur > 0 else 1.0
        present.append((pid, a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])))
        w.tag_bias[pid] = nlos_links(len(w.anchor_ids), w.rng_tag)  # moving: links change
    walking = {pid for pid, _, _ in present}
    for pid in list(w.tag_bias):
        p = w.patrons[pid]
        if p.seated and pid not in walking:
            present.append((pid, float(w.plan.seat_xy[p.seat, 0]), float(w.plan.seat_xy[p.seat, 1])))
    for pid in w.tags_shown - {pid for pid, _, _ in present}:
        tag = w.patrons[pid].tag
        if tag is not None:
            w.binding.remove_tag(tag)
    w.tags_shown = {pid for pid, _, _ in present}
    if not present or len(w.anchor_ids) < 3:
        return
    xy = np.array([[x, y] for _, x, y in present])
    bias = np.vstack([w.tag_bias.setdefault(pid, np.zeros(len(w.anchor_ids)))
                      + (w.furniture[w.patrons[pid].seat] if pid not in walking else 0.0) for pid, _, _ in present])
    ranges, est, quality = measure(xy, bias, w.anchors, w.rng_tag)
    w.adaptive.tags_truth(t, {w.patrons[pid].tag: (x, y) for pid, x, y in present})
    for k, (pid, _, _) in enumerate(present):
        tag = w.patrons[pid].tag
        if tag is not None:
            w.binding.set_tag(tag, float(est[k, 0]), float(est[k, 1]), 1.1, int(quality[k]),
                              dict(zip(w.anchor_ids, (float(r) for r in ranges[k]), strict=True)))


def scenario_event(w: World, t: float, ev: ScenarioEvent) -> None:
    """Faults on simulated devices; a duration schedules their clearing."""
    target = ev.target or ""
    if ev.kind == "clear_fault":
        w.binding.clear_faults(target)
    else:
        fault = ev.fault or ("disconnect" if ev.kind == "ble_dropout" else "nack")
        w.binding.inject_fault(target, fault)
        minutes = ev.duration_min if ev.duration_min is not None else (30.0 if ev.kind == "ble_dropout" else None)
        if minutes is not None:
            w.schedule(t + minutes * 60.0, lambda t2, _: w.binding.clear_faults(target))
    w.events_done.append(f"{ev.at} {ev.kind} {target} {ev.fault or ''}".strip())

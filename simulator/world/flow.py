"""What the gateway floor's sensors notice of its patrons: walks, sitting, belongings, the button.

Who holds which seat is :mod:`simulator.world.seating`'s; :class:`GatewaySenses` is its hook on
the gateway's floor. Functions of the :class:`~simulator.world.world.World` (``w``) and the event
time ``t``, scheduled on the world's event heap. A walk is a straight line at the scenario's
walking speed; every zone it crosses sees motion in its PIR's view for the crossing (the simulated
PIR module adds its hold and blocking times, :mod:`simulator.hw.pir`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.world import physics
from simulator.world.metrics import Need
from simulator.world.scenario import ScenarioEvent
from simulator.world.uwb import measure, nlos_links

if TYPE_CHECKING:
    from simulator.world.world import World

class GatewaySenses:
    """:class:`~simulator.world.seating.FloorSenses` of the gateway's floor: what its sensors notice.

    A walk moves through the PIRs of the zones it crosses (and a tag along its line); sitting and
    standing change the thermopile frames above the seat; whatever lies on the desk is pushed to
    its load cell; "back soon" is a press of the desk's button.
    """

    def __init__(self, w: World) -> None:
        self.w = w
        self.desk_g: dict[int, float] = {}

    def walked(self, t: float, pid: int, start: tuple[float, float], end: tuple[float, float], duration: float,
               spans: list[tuple[int, float, float]], to_seat: bool) -> None:
        w = self.w
        for zone, a, b in spans:
            for pir in w.pirs[zone]:
                motion(w, pir, t + a, t + b)
        if w.patrons[pid].tag is not None:
            w.walking[pid] = (t, duration, start, end)
        if to_seat and spans:
            w.schedule(t + spans[-1][1], partial(light_check, w), pid)

    def sat(self, t: float, pid: int) -> None:
        w = self.w
        p = w.patrons[pid]
        self.things_changed(t, p.seat)
        if p.tag is not None:
            w.tag_bias[pid] = nlos_links(len(w.anchor_ids), w.rng_tag, _seated_near(w, p.seat))
        w.adaptive.sit(t, pid)

    def stood(self, t: float, pid: int) -> None:
        w = self.w
        p = w.patrons[pid]
        w.adaptive.stand(t, pid)
        w.stood_at[p.seat] = t
        self.things_changed(t, p.seat)

    def left(self, t: float, pid: int) -> None:
        self.w.adaptive.leave(t, pid)

    def things_changed(self, t: float, seat: int) -> None:
        w = self.w
        physics.push_frames(w, w.seat_scenes[seat], t)
        desk = w.lamp_ids[seat]
        if desk is None:
            return
        grams = physics.desk_grams(w, seat)
        if self.desk_g.get(seat, 0.0) != grams:
            self.desk_g[seat] = grams
            w.binding.set_desk_load(desk, grams)

    def back_soon(self, t: float, seat: int) -> None:
        desk = self.w.lamp_ids[seat]
        if desk is not None:
            self.w.binding.press_button(desk)


def _seated_near(w: World, seat: int) -> int:
    """People seated within 2.5 m of the seat (their bodies block UWB links too)."""
    seated = np.array([h >= 0 and w.patrons[int(h)].seated for h in w.holder], dtype=float)
    return int(w.neighbours[seat] @ seated)


# The gateway floor's patron events, by their old names (tests and demos drive them directly).
def sit(w: World, t: float, pid: int) -> None:
    w.seats.sit(t, pid)


def take_break(w: World, t: float, pid: int) -> None:
    w.seats.take_break(t, pid)


def depart(w: World, t: float, pid: int) -> None:
    w.seats.depart(t, pid)


def clear_belongings(w: World, t: float, seat: int) -> None:
    """Staff clear a released ghost seat: the belongings go to lost-and-found, the seat is free."""
    w.seats.clear(t, seat, "staff")


def closing(w: World, t: float, _: Any = None) -> None:
    """Closing time on both floors: whoever is still seated leaves; staff sweep what was left."""
    w.seats.closing(t)
    w.conventional.seats.closing(t)


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

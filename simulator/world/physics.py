"""Periodic physics and measurement of the world: light, thermopile frames, needs, metric sampling.

Air, heat and energy are :mod:`simulator.world.climate`'s.

Functions of the :class:`~simulator.world.world.World` (``w``) and the event time ``t``. Each
pushes into simulated sensors only what changed: lux when a luminaire or lamp level changed or
daylight was re-evaluated, frames when someone under an array moved or its noise was refreshed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.world.belongings import unseen
from simulator.world.daylight import sun_position
from simulator.world.metrics import LATENCY_BAR_S
from simulator.world.thermal import TEMPORAL_SIGMA_C, chair_warmth, laptop_warmth

if TYPE_CHECKING:
    from simulator.world.world import World

LIGHT_NEED_FRACTION = 0.8  # a seat "needs light" below 80 % of its zone's target
VENT_ABOVE_MIN = 0.02  # an HVAC level above this is "above minimum ventilation"
STANDBY_FRACTION = 0.01  # a dimmed-off LED driver still draws about 1 % of its rated power
CO2_LIMIT_PPM = 1000.0
CO2_CLEAR_PPM = 950.0
FIDGET_INTERVAL_S = 240.0  # a seated reader moves enough for a PIR about every 4 minutes
NEED_POLL_S = 0.1
INDICATOR_FREE, INDICATOR_GHOST = 1, 4  # drivers.ports.IndicatorColour codes
SLOW_POLL_S = 5.0
COLD_COAT_WARMTH = 0.25  # of the full +6 C: under +1.5 C on the coat, well under a pixel's hold_c


def luminaire_power(w: World) -> float:
    """Luminaire watts: linear in the dimming level, with the driver's standby draw when off."""
    on = w.lum_level > 0.0
    return float((w.lum_watts * np.where(on, w.lum_level, STANDBY_FRACTION)).sum())


def read_lights(w: World, t: float) -> None:
    """Read every luminaire's level; integrate energy; recompute lux if anything changed."""
    dt = t - w.last["lights"]
    if dt > 0:
        w.score.luminaire_j += w.lum_power * dt
        w.score.lighting_j += w.lum_power * dt
        w.last["lights"] = t
    levels = [w.binding.light_level(a) for a in w.lum_ids]
    if levels != w.lum_level_list:
        w.lum_level_list = levels
        w.lum_level = np.array(levels, dtype=float)
        w.lum_power = luminaire_power(w)
        push_lux(w)


def read_lamps(w: World, t: float) -> None:
    """Read every desk lamp (less often: a lamp lights one desk, it never hides a person)."""
    dt = t - w.last["lamps"]
    if dt > 0:
        p = float((w.lamp_watts * w.lamp_level).sum())
        w.score.desk_lamp_j += p * dt
        w.score.lighting_j += p * dt
        w.last["lamps"] = t
    levels = [w.binding.desk_lamp(a) if a is not None else 0.0 for a in w.lamp_ids]
    if levels != w.lamp_level_list:
        w.lamp_level_list = levels
        w.lamp_level = np.array(levels, dtype=float)
        push_lux(w)
    read_indicators(w, t)


def read_indicators(w: World, t: float) -> None:
    """Staff act on the seat indicators: a seat shown ghost that the gateway then shows free is cleared.

    Releasing a ghost seat is the library's decision that its holder is not coming back; staff take
    what was left to lost-and-found, and the seat is free for the next patron.
    """
    for seat, desk in enumerate(w.lamp_ids):
        if desk is None:
            continue
        code = w.binding.seat_indicator(desk)
        before = w.indicator[seat]
        w.indicator[seat] = code
        pid = int(w.holder[seat])
        if before == INDICATOR_GHOST and code == INDICATOR_FREE and pid >= 0 and not w.patrons[pid].seated \
                and w.patrons[pid].away_since is not None:
            w.staff.release_seen(t, seat)


def push_lux(w: World) -> None:
    n = len(w.plan.seat_ids)
    lux = w.day_lux + w.lum_matrix @ w.lum_level
    lux[:n] += w.lamp_lux * w.lamp_level
    w.point_lux = lux
    for i, sensor in enumerate(w.plan.lux_sensor_ids):
        w.binding.set_lux(sensor, float(lux[n + i]))


def daylight_step(w: World, t: float) -> None:
    """Re-evaluate the sun and the sky; sun patches on thermopiles near windows move with it."""
    from simulator.world.world import utc

    head = w.scenario.scenario
    alt, az = sun_position(utc(w, t), head.latitude, head.longitude)
    cloud = w.weather.cloudiness(t - w.t0)
    w.sun = (alt, az, cloud)
    w.day_lux = w.daylight.lux(alt, az, cloud)
    direct = w.pixel_daylight.direct_sun(alt, az, cloud)
    for k in w.sunny_scenes:
        w.scenes[k].set_sun(direct[k * 64:(k + 1) * 64].reshape(8, 8), float(np.radians(az)) * 4.0)
    push_lux(w)


def seat_status(w: World, seat: int, t: float) -> str:
    """The gateway floor's truth: free | occupied | away | ghost (:meth:`SeatFloor.status`)."""
    return w.seats.status(seat, t)


def desk_grams(w: World, seat: int) -> float:
    """What lies on the seat's desk now (the load cell's truth, grams).

    The holder's things while they sit or are away (a break, abandoned things, a claim's bag);
    nothing while they walk in to a seat they just chose or once they have gone with their things.
    """
    pid = int(w.holder[seat])
    if pid < 0:
        return 0.0
    p = w.patrons[pid]
    if p.seated:
        return p.things.on_desk("seated")
    if p.away_since is None:
        return 0.0
    return p.things.on_desk("claimed" if p.claiming else "away")


def cold_belongings(w: World, seat: int) -> bool:
    """The seat's holder is away and left nothing warm on it: no laptop, and no coat on the chair
    back or one its owner had not warmed (``COLD_COAT_WARMTH``: sat against it under 3.5 minutes);
    a bag dropped to claim the seat is all a claim leaves.

    Such belongings (a bag, books, a cold coat) are at room temperature, invisible to any
    thermopile; the minutes they hold a seat bound the seat-state accuracy of a gateway that sees
    people and warmth, however well (the report's ``seat_state_accuracy_thermal_ceiling``).
    """
    pid = int(w.holder[seat])
    if pid < 0:
        return False
    p = w.patrons[pid]
    if p.seated or p.away_since is None:
        return False
    if p.claiming:
        return True  # a claim is a bag alone
    if p.laptop:
        return False
    return not p.coat or p.coat_w < COLD_COAT_WARMTH  # coat_w: its warmth when its owner stood up


def unseen_belongings(w: World, seat: int) -> bool:
    """The seat's holder is away and no sensor of the gateway can tell: nothing warm
    (:func:`cold_belongings`), less than ``DESK_EVIDENCE_G`` on the desk, and no "back soon" press.

    What is left holds the seat from the chair (a bag, a coat nobody warmed) or from nowhere; the
    minutes it does bound the seat-state accuracy of the gateway with every sensor it has (the
    report's ``seat_state_accuracy_ceiling``).
    """
    if not cold_belongings(w, seat):
        return False
    p = w.patrons[int(w.holder[seat])]
    return unseen(p.things, "claimed" if p.claiming else "away", warm=False, back_soon=p.pressed)


def graded_status(w: World, seat: int, t: float) -> str:
    """The truth the daemon is graded against: :func:`seat_status`, except that a seat whose holder
    stood up less than ``away_after_s`` ago still counts as occupied.

    That is the product's definition (docs/sensing.md: absences shorter than ``away_after_s`` are
    ignored, a patron fetching a book keeps the seat); no sensor can tell a two-minute errand from
    the start of a break or a departure before then, unless the patron said so: a "back soon"
    press makes the seat away at once. Likewise a bag dropped on a free seat claims it only once
    it has lain there ``away_after_s`` with nobody at the seat: until then the seat counts as free.
    """
    status = seat_status(w, seat, t)
    pid = int(w.holder[seat])
    pressed = status == "away" and w.patrons[pid].pressed
    if status in ("free", "away") and t - w.stood_at[seat] < w.cfg.sensing.away_after_s and not pressed:
        return "occupied"
    if status == "away":
        p = w.patrons[pid]
        if p.claiming and p.away_since is not None and t - p.away_since < w.cfg.sensing.away_after_s:
            return "free"  # a bag put down a moment ago is no claim yet (docs/sensing.md)
    return status


def push_frames(w: World, scenes: Iterable[int], t: float) -> None:
    """Recompute and push the frames of the given thermopile arrays.

    Belongings (laptop, coat) show while their owner sits or is on a break, not while they walk in
    to a seat they just chose; the chair seat shows for a few minutes after anyone stood up from it
    unless someone sits on it again.
    """
    for k in scenes:
        scene = w.scenes[k]
        people: list[tuple[int, float]] = []
        laptops: list[tuple[int, float]] = []
        coats: list[tuple[int, float, bool]] = []
        chairs: list[tuple[int, float]] = []
        for seat in scene.view.person:
            pid = int(w.holder[seat])
            p = w.patrons[pid] if pid >= 0 else None
            if p is None or not p.seated:
                warm = chair_warmth(float(w.stood_at[seat]), t)
                if warm > 0.0:
                    chairs.append((seat, warm))
            if p is None:
                continue
            if p.seated:
                people.append((seat, p.skin_c))
            if p.seated or (p.away_since is not None and not p.claiming):  # a claim leaves only a bag
                if p.laptop:
                    laptops.append((seat, laptop_warmth(None if p.seated else p.away_since, t)))
                if p.coat:
                    coats.append((seat, p.coat_warmth(t), p.seated))
        frame = scene.frame(float(w.air.temp[scene.view.zone]) if scene.view.zone >= 0 else 21.0, people, laptops,
                            coats, chairs)
        w.binding.set_thermal_frame(scene.view.sensor_id, frame)


def refresh_thermal(w: World, t: float) -> None:
    noise = w.rng_noise.normal(0.0, TEMPORAL_SIGMA_C, (len(w.scenes), 8, 8))
    for k, scene in enumerate(w.scenes):
        scene.noise = noise[k]
    push_frames(w, range(len(w.scenes)), t)


def start_polling(w: World, t: float) -> None:
    if not w.polling:
        w.polling = True
        w.schedule(t + NEED_POLL_S, partial(need_poll, w))


def need_poll(w: World, t: float, _: Any = None) -> None:
    """While a need is open, read its actuators every 0.1 s and close it when they respond."""
    if any(kind == "light" for kind, _ in w.needs):
        read_lights(w, t)
    for (kind, key), need in list(w.needs.items()):
        if kind == "light":
            pid = int(w.holder[need.seat])
            zone_levels = [w.lum_level_list[i] for i in w.zone_lums[key]]
            if pid < 0 or w.patrons[pid].gone:
                w.score.cancelled_needs += 1
                del w.needs[kind, key]
            elif (w.point_lux[need.seat] >= LIGHT_NEED_FRACTION * w.zone_target[key]
                  or (zone_levels and min(zone_levels) >= 0.99)):
                w.score.close_need(need, t)
                del w.needs[kind, key]
        else:
            group = w.air.groups[key]
            level = w.binding.ventilation(group.actuator) if group.actuator else 0.0
            if level > VENT_ABOVE_MIN:
                w.score.close_need(need, t)
                del w.needs[kind, key]
            elif float(w.air.co2[group.zones].max()) < CO2_CLEAR_PPM:
                w.score.cancelled_needs += 1
                del w.needs[kind, key]
    if w.needs and t + NEED_POLL_S <= w.end_time:
        # Past the 2-minute bar the exact latency no longer changes any verdict: poll slower, so an
        # unresponsive daemon cannot make the world poll ten times a second all day.
        young = any(t - n.opened < LATENCY_BAR_S for n in w.needs.values())
        w.schedule(t + (NEED_POLL_S if young else SLOW_POLL_S), partial(need_poll, w))
    else:
        w.polling = False


def close_open_needs(w: World, t: float) -> None:
    """At the end of the run, needs still open count with the time they have waited so far."""
    for need in w.needs.values():
        w.score.close_need(need, t)
    w.needs.clear()


def sample(w: World, t: float) -> None:
    """Once per simulated minute: truth vs the daemon, light at occupied seats (on both floors)."""
    s = w.score
    read_lights(w, t)  # judge the minute on the levels as they are now, not as of the last poll
    n = len(w.plan.seat_ids)
    if w.is_open(t):
        truth = w.seats.sample(t)
        w.conventional.seats.sample(t)
    else:
        truth = [seat_status(w, i, t) for i in range(n)]
    occupied = np.array([st == "occupied" for st in truth])
    if w.is_open(t):
        graded = [graded_status(w, i, t) for i in range(len(truth))]
        target = w.zone_target[w.plan.seat_zone]
        s.underlit_seat_minutes += int((occupied & (w.point_lux[: len(truth)] < target)).sum())
        s.occupied_seat_minutes += int(occupied.sum())
        base = np.array([w.conventional.seats.status(i, t) == "occupied" for i in range(n)])
        conventional = w.day_lux[: len(truth)] + w.lum_matrix[: len(truth)].sum(axis=1)  # every luminaire full
        s.baseline_underlit_seat_minutes += int((base & (conventional < target)).sum())
        s.baseline_occupied_seat_minutes += int(base.sum())
        for zone, people in enumerate(w.zone_people):
            levels = [w.lum_level_list[i] for i in w.zone_lums[zone]]
            if people > 0 and levels and max(levels) <= 1e-3:
                s.lights_off_occupied_minutes += 1
        _compare_with_daemon(w, graded)
    w.timeline.append({
        "t": t - w.t0, "occupied": float(occupied.sum()), "people": float(w.zone_people.sum()),
        "lux": float(w.point_lux[: len(truth)][occupied].mean()) if occupied.any() else 0.0,
        "sensor_lux": float(w.point_lux[len(truth):].mean()) if len(w.point_lux) > len(truth) else 0.0,
        "lighting_w": luminaire_power(w) + float((w.lamp_watts * w.lamp_level).sum()),
        "co2_max": float(w.air.co2.max()),
    })


def situation(w: World, seat: int, t: float) -> str:
    """What is going on at a seat, for the report's ``seat_state_errors_by_situation``."""
    pid = int(w.holder[seat])
    if pid < 0:
        return "left_lately" if t - w.stood_at[seat] < 600.0 else "empty"
    p = w.patrons[pid]
    if p.seated:
        return "seated"
    if p.away_since is None:
        return "walking_in"
    if p.claiming:
        return "claim"
    if not p.returning:
        return "abandoned"
    return "break_back_soon" if p.pressed else "break"


def _compare_with_daemon(w: World, truth: list[str]) -> None:
    if w.probe is None:
        return
    s = w.score
    t = w.clock.monotonic()
    try:
        seen = w.probe()
    except Exception:  # the daemon may be restarting (power cut): count it, never stop the world
        s.probe_failures += 1
        return
    seats = seen.get("seats", {})
    for seat, (seat_id, true_status) in enumerate(zip(w.plan.seat_ids, truth, strict=True)):
        status = str(seats.get(seat_id, "unknown"))
        if status == "unknown":
            s.unknown_seat_minutes += 1
            continue
        s.seat_checks += 1
        if true_status in ("away", "ghost"):
            s.cold_belongings_checks += cold_belongings(w, seat)
            s.unseen_belongings_checks += unseen_belongings(w, seat)
        s.seat_correct += int(status == true_status)
        s.confusion[true_status, status] += 1
        if status != true_status:
            s.wrong_by_situation[f"{true_status}->{status}", situation(w, seat, t)] += 1
    zones = seen.get("zones", {})
    for zone_id, n in zip(w.plan.zone_ids, w.zone_people, strict=True):
        value = zones.get(zone_id)
        if isinstance(value, int | float):
            s.zone_errors.append(abs(float(value) - float(n)))


def snapshot(w: World, t: float) -> None:
    """A picture of the floor for the SVG maps (every 15 simulated minutes)."""
    w.snapshots.append({
        "t": t, "wall": w.wall(t).strftime("%H:%M"),
        "seats": [seat_status(w, i, t) for i in range(len(w.plan.seat_ids))],
        "seat_lux": w.point_lux[: len(w.plan.seat_ids)].copy(),
        "zone_people": w.zone_people.copy(), "co2": w.air.co2.copy(),
    })

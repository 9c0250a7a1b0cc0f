"""FloorModel: every sensing event of a floor in, a rules.state.FloorState out.

The daemon calls the ``on_*`` methods as readings arrive and :meth:`FloorModel.snapshot` whenever
the rules run. Everything is synchronous and pure (no I/O, no clock: times are passed in), so a
recorded day can be replayed through it and tests drive it with synthetic frames.

Fusion, per seat (see docs/sensing.md):

- A seat covered by a healthy, fresh thermopile follows the thermopile only. A UWB tag at a desk
  may be a badge left beside a laptop, so it never overrides a thermopile that sees nobody.
- A seat whose thermopile is unhealthy or stale (or that has none) counts a fresh UWB tag within
  ``seat_radius_m`` as presence; with no tag there either, its status is UNKNOWN.
- PIR motion is zone-level: it sets ``last_motion`` and keeps ``empty_since`` honest (a zone where
  something moved is not empty), but cannot say which seat. It also vouches for a weight step on a
  free desk: a bag does not drop by itself, so a step with no motion in its zone around it (in a
  zone that has a PIR) is the load cell, not a claim.
- A desk's load cell (kind ``hx711`` with ``seats``; :mod:`edge_agent.sensing.weight`) says
  whether belongings stand on the desk; the desk's button is "back soon" (:meth:`FloorModel.on_button`)
  and, held 3 s, staff releasing a ghost seat (:meth:`FloorModel.on_button_hold`).

Zone people count: the accepted thermal blobs of the zone's usable thermopiles, plus fresh UWB
tags in the zone that stand outside every usable thermopile's view (no double counting).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from drivers.errors import SensingError, SensorImplausibleError
from drivers.ports import Reading
from edge_agent.config import Sensor, SiteConfig
from edge_agent.sensing.geometry import GRID, SeatPoint, floor_to_pixel, point_in_polygon
from edge_agent.sensing.light import SeatLightModel
from edge_agent.sensing.seats import SeatStateMachine, SeatTiming
from edge_agent.sensing.tags import FloorTag, TagTrack
from edge_agent.sensing.thermal import Blob, ThermalEvidence, ThermalParams, ThermalSeatDetector
from edge_agent.sensing.topology import build_topology
from edge_agent.sensing.uwb import Fix, OffsetLearner, solve
from edge_agent.sensing.weight import DeskWeight
from edge_agent.sensing.zones import ENVIRONMENT, LastValue, measure_from, sources_for
from rules.state import FloorState, Measure, Preference, Quality, SeatStatus, SeatView, ZoneView

MOTION_NEWS_AFTER_S = 30.0  # motion after this long a still zone is news (see FloorModel.on_motion)
STEP_WITNESS_S = 600.0  # a weight step counts as someone's doing with zone motion this recent
STAFF_HOLD_S = 180.0  # a button hold this soon after a ghost seat's desk emptied is still staff's release
_PLACES_KEPT = 4096  # tag positions whose zones and views are kept (FloorModel._place)


@dataclass(frozen=True, slots=True)
class ThermalStatus:
    """What a technician sees for one thermopile."""

    sensor: str
    background: npt.NDArray[np.float64] | None
    blobs: tuple[Blob, ...]
    people: int
    last_t: float | None
    usable: bool


class FloorModel:
    """Seat states, zone counts, tag positions and environment for one floor."""

    def __init__(
        self,
        cfg: SiteConfig,
        *,
        timing: SeatTiming | None = None,
        thermal: ThermalParams | None = None,
        tag_height_m: float = 1.0,
        seat_radius_m: float = 0.6,
        seat_leave_radius_m: float = 1.2,
        tag_fresh_s: float = 30.0,
        tag_forget_s: float | None = None,
        min_range_quality: float = 50.0,
        anchor_bias_m: Mapping[str, float] | None = None,
    ) -> None:
        s = cfg.sensing
        self.cfg = cfg
        self.timing = timing or SeatTiming(s.occupied_after_s, s.away_after_s, s.ghost_after_s,
                                           claim_after_s=s.claim_after_s, break_limit_s=s.break_limit_s)
        self.stale_after_s = s.stale_after_s
        self.tag_height_m, self.seat_radius_m = tag_height_m, seat_radius_m
        self.seat_leave_radius_m = max(seat_leave_radius_m, seat_radius_m)
        self.tag_fresh_s = tag_fresh_s
        self.tag_forget_s = tag_forget_s if tag_forget_s is not None else cfg.privacy.tag_retention_s
        self.min_range_quality = min_range_quality
        self.anchor_bias_m = dict(anchor_bias_m or {})
        self.topology = build_topology(cfg)
        self.light_model = SeatLightModel(cfg)
        self._sensors: dict[str, Sensor] = {x.id: x for x in cfg.sensors}
        self._detectors = {
            x.id: ThermalSeatDetector.for_sensor(x, cfg.seats, thermal) for x in cfg.sensors if x.kind == "amg8833"
        }
        self._seat_sensor: dict[str, str] = {}
        for sid, det in self._detectors.items():
            for seat in det.seats:
                self._seat_sensor.setdefault(seat.id, sid)
        self._seat_points = [SeatPoint(x.id, x.x, x.y) for x in cfg.seats]
        self._machines = {x.id: SeatStateMachine(self.timing) for x in cfg.seats}
        self._seat_zone = {x.id: x.zone for x in cfg.seats}
        self._weights: dict[str, DeskWeight] = {}  # per seat with a load cell under its desk
        self._weight_seats: dict[str, list[str]] = {}  # load-cell sensor -> its seats
        for x in cfg.sensors:
            if x.part.calibration("mass") is not None and x.seats:
                self._weight_seats[x.id] = list(x.seats)
                for seat_id in x.seats:
                    self._weights[seat_id] = DeskWeight(step_g=s.belongings_min_g)
        self._pir_zones = {x.zone for x in cfg.sensors if x.kind == "pir" and x.zone is not None}
        # What a snapshot reads for each zone, worked out once (a snapshot runs on every decide pass).
        self._zone_sources = {z.id: {q: sources_for(q, [x for x in cfg.sensors if x.zone == z.id]) for q in ENVIRONMENT}
                              for z in cfg.zones}
        self._zone_thermal = {z.id: [x for x in self._detectors if self._sensors[x].zone == z.id] for z in cfg.zones}
        self._zone_polygon = {z.id: z.polygon for z in cfg.zones}
        self._anchors = {a.id: (a.x, a.y, a.z) for a in cfg.anchors}
        self.offset = OffsetLearner()  # the UWB system's common range offset, learned from the fixes
        self._evidence: dict[str, ThermalEvidence] = {}
        self._frame_at: dict[str, float] = {}  # a thermopile's latest scheduled frame (not a prompt read)
        self._frame_every: dict[str, list[float]] = {}  # ... and the intervals between its latest few
        self._seat_news = False
        self._unhealthy: set[str] = set()
        self._last: dict[tuple[str, str], LastValue] = {}
        self._motion: dict[str, float] = {}
        self._last_people: dict[str, float] = {}
        self._zone_busy: dict[str, bool] = {}  # people seen in the zone at the last snapshot
        self._tags: dict[str, FloorTag] = {}
        self._consented: frozenset[str] = frozenset()
        self._forecast: dict[str, dict[int, float]] = {}
        self._first_t: float | None = None
        # The last snapshot's views: a seat or zone whose view did not change keeps the same object,
        # so the decide pass (rules.incremental) finds what changed by identity.
        self._views: dict[str, SeatView] = {}
        self._zone_views: dict[str, ZoneView] = {}
        # Where a tag's position lies: the zones whose polygon holds it, and (asked per sensor)
        # whether a thermopile sees it. Worked out once per position (a tag at rest, or between
        # fixes, is at the same position pass after pass), up to _PLACES_KEPT positions.
        self._places: dict[tuple[float, float], tuple[frozenset[str], dict[str, bool]]] = {}

    # ----------------------------------------------------------------------------- events
    def _seen(self, t: float) -> None:
        if self._first_t is None:
            self._first_t = t

    def _sensor(self, sensor_id: str) -> Sensor:
        try:
            return self._sensors[sensor_id]
        except KeyError:
            raise SensingError(f"{sensor_id}: not a sensor of this floor's config", sensor=sensor_id) from None

    def _detector(self, sensor_id: str) -> ThermalSeatDetector:
        det = self._detectors.get(sensor_id)
        if det is None:
            raise SensingError(f"{sensor_id}: not a thermopile (amg8833) of this floor", sensor=sensor_id)
        return det

    def on_thermal(self, sensor_id: str, pixels: npt.ArrayLike, t: float, *,
                   prompt: bool = False) -> ThermalEvidence | None:
        """One AMG8833 frame; an implausible frame marks the sensor unhealthy and is dropped.

        ``prompt``: read out of schedule because a desk under it reported a change (a LOAD_STEP):
        evidence like any frame, but its spacing from the others is not the sensor's frame interval.
        """
        self._seen(t)
        det = self._detector(sensor_id)
        try:
            evidence = det.update(pixels, t)
        except SensorImplausibleError:
            self.on_sensor_health(sensor_id, False, t)
            return None
        self._unhealthy.discard(sensor_id)
        self._evidence[sensor_id] = evidence
        if not prompt:
            last = self._frame_at.get(sensor_id)
            if last is not None and t > last:
                every = self._frame_every.setdefault(sensor_id, [])
                every.append(t - last)
                del every[:-4]
            self._frame_at[sensor_id] = t
        for seat_id, present in evidence.presence.items():
            if self._seat_sensor.get(seat_id) == sensor_id:
                machine = self._machines[seat_id]
                before = machine.status
                machine.observe(present, t, residue=seat_id in evidence.residue,
                                residue_heat=evidence.residue.get(seat_id, 0.0), prompt=prompt)
                self._seat_news |= _is_news(before, machine.status)
        return evidence

    def take_seat_news(self) -> bool:
        """Whether a seat turned occupied, or a held seat free, since the last call.

        A patron sitting down is what event rules answer (their desk and lamp preferences, the
        light over their seat), so it wakes the decide loop rather than waiting for its period.
        A held seat found free (the warmth was the chair's, the desk was packed up) is a seat a
        patron looking for one can take: the availability should show it at once, and its
        ``since`` lies in the past already. Other seat changes (away, ghost, an occupied seat
        turning free) are judged on time scales of minutes, at the decide loop's own pace.
        """
        news, self._seat_news = self._seat_news, False
        return news

    def on_motion(self, sensor_id: str, t: float) -> bool:
        """PIR motion: zone-level evidence only. True when it is news: a still zone nobody was seen in.

        Rules read motion as "within the last N seconds" where nobody is seen (someone walking into
        an empty zone). Motion where people are known to sit, or a moment after other motion,
        changes no decision: readers shift in their seats every few minutes each, and waking the
        decide loop for each of them would cost a whole-floor evaluation for nothing.
        """
        self._seen(t)
        zone = self._sensor(sensor_id).zone
        if zone is None:
            return False
        before = self._motion.get(zone)
        self._motion[zone] = max(t, before if before is not None else t)
        if self._zone_busy.get(zone, False):
            return False
        return before is None or t - before >= MOTION_NEWS_AFTER_S

    def on_reading(self, reading: Reading) -> None:
        """lux / temperature / humidity / co2 (and motion); readings not marked good are ignored."""
        self._seen(reading.t)
        self._sensor(reading.sensor)
        if reading.quantity == "motion":
            if reading.value:
                self.on_motion(reading.sensor, reading.t)
            return
        if reading.quality != "good" or not math.isfinite(reading.value):  # np.isfinite, for one number
            return
        self._unhealthy.discard(reading.sensor)
        if reading.quantity == "mass" and reading.sensor in self._weight_seats:
            self._on_weight(reading.sensor, reading.value, reading.t)
        self._last[(reading.sensor, reading.quantity)] = LastValue(reading.value, reading.t)

    def on_sensor_health(self, sensor_id: str, healthy: bool, t: float) -> None:
        """A driver's verdict. Seats of an unhealthy thermopile go UNKNOWN at once."""
        self._seen(t)
        self._sensor(sensor_id)
        if healthy:
            self._unhealthy.discard(sensor_id)
            return
        self._unhealthy.add(sensor_id)
        self._evidence.pop(sensor_id, None)
        self._frame_at.pop(sensor_id, None)  # the interval is learnt afresh: a gap is no interval
        for seat_id in self._weight_seats.get(sensor_id, ()):
            self._machines[seat_id].observe_weight(None, t)  # a failed load cell says nothing of the desk

    # ----------------------------------------------------------------------------- desks
    def _on_weight(self, sensor_id: str, grams: float, t: float) -> None:
        for seat_id in self._weight_seats[sensor_id]:
            machine, desk = self._machines[seat_id], self._weights[seat_id]
            before = desk.on
            empty = machine.status is SeatStatus.FREE and not machine.present(t)
            desk.observe(grams, t, empty_expected=empty)
            witnessed = True
            if desk.on and not before:
                zone = self._seat_zone[seat_id]
                motion = self._motion.get(zone)
                witnessed = zone not in self._pir_zones or (motion is not None and t - motion <= STEP_WITNESS_S)
            elif desk.on:
                witnessed = machine.step_witnessed
            status = machine.status
            machine.observe_weight(desk.on, t, since=desk.on_since, witnessed=witnessed, load_g=desk.load_g)
            self._seat_news |= _is_news(status, machine.status)

    def on_desk_step(self, seat_id: str, t: float) -> None:
        """The desk node reported a settled step of the desk's load at ``t`` (LOAD_STEP): hands were
        on the desk then (:meth:`SeatStateMachine.desk_step`). The readings that follow say what."""
        self._machine(seat_id).desk_step(t)

    def next_due(self, t: float) -> float | None:
        """The earliest time after ``t`` a seat changes status by itself (:meth:`SeatStateMachine.due`)."""
        dues = [d for m in self._machines.values() if (d := m.due()) is not None and d > t]
        return min(dues, default=None)

    def on_load_calibration(self, sensor_id: str, convert: Callable[[float], float]) -> None:
        """A load cell's tare or scale changed (``edge-agent calibrate weight``): ``convert`` takes grams
        under the old coefficients to grams under the new. What the desk learnt (its empty level, its
        latest reading) is carried over, so a tare does not read as 20 kg taken off the desk, nor a
        new scale as belongings put down or taken away, whenever the next poll comes."""
        for seat_id in self._weight_seats.get(sensor_id, ()):
            self._weights[seat_id].convert(convert)

    def desk_load(self, seat_id: str) -> float | None:
        """Grams above the empty desk at its latest reading (None: no load cell, or no reading yet)."""
        desk = self._weights.get(seat_id)
        return None if desk is None else desk.load_g

    def on_button(self, seat_id: str, t: float) -> str:
        """The desk's button pressed: ``"away"`` ("back soon": held for the break limit) or ``"back"``."""
        return self._machine(seat_id).press(t)

    def on_button_hold(self, seat_id: str, t: float) -> str:
        """The desk's button held 3 s: staff releasing a ghost seat (``"released"``, see
        :meth:`is_staff_release`); on any other seat it is a press (:meth:`on_button`)."""
        machine = self._machine(seat_id)
        if self.is_staff_release(seat_id, t):
            self.release_seat(seat_id, t)
            return "released"
        return machine.press(t)

    def is_staff_release(self, seat_id: str, t: float) -> bool:
        """Whether the desk's button held 3 s at ``t`` is staff releasing a ghost seat.

        Staff at a ghost seat take what was left, then hold the button. The load cell may report
        the empty desk first, which frees the seat; the hold that follows is still the release,
        not a patron starting a 30-minute "back soon" hold on an empty desk. So a seat that went
        from ghost to free less than ``STAFF_HOLD_S`` ago (a load-cell poll and the staff's own
        pace) counts as ghost here.
        """
        return self._machine(seat_id).staff_release(t, STAFF_HOLD_S)

    def hold_ends(self) -> dict[str, float]:
        """For each away seat, when it turns ghost: its break limit, or the ghost limit."""
        out: dict[str, float] = {}
        for seat_id, machine in self._machines.items():
            end = machine.hold_ends_at()
            if end is not None:
                out[seat_id] = end
        return out

    def seat_status(self, seat_id: str) -> SeatStatus:
        return self._machine(seat_id).status

    def _machine(self, seat_id: str) -> SeatStateMachine:
        machine = self._machines.get(seat_id)
        if machine is None:
            raise SensingError(f"{seat_id}: not a seat of this floor")
        return machine

    def on_tag_position(self, tag_pseudonym: str, x: float, y: float, t: float, sigma_m: float = 0.1) -> bool:
        """A position fix (from the DWM1001's own engine or :meth:`on_tag_ranges`); False if gated out.

        Its seat: :meth:`edge_agent.sensing.tags.FloorTag.settle` (a free seat within 0.6 m; at
        rest, the occupied seat within 2 m whose occupant sat down as it came, where no other such
        seat is about as near; kept within 1.2 m).
        """
        self._seen(t)
        tag = self._tags.get(tag_pseudonym)
        if tag is None:
            tag = self._tags[tag_pseudonym] = FloorTag(TagTrack(), t)
        accepted = tag.track.update(x, y, t, sigma_m)
        if accepted:
            tag.last_t = t
            tag.settle(t, self._seat_points, self.seat_radius_m, self.seat_leave_radius_m, self._occupied_since,
                       lambda seat: any(g.seat == seat and g is not tag and t - g.last_t <= self.tag_fresh_s
                                        for g in self._tags.values()))
        return accepted

    def _occupied_since(self, seat_id: str) -> float | None:
        """When the seat's occupant sat down (across a sensor blip); None if it is not occupied."""
        machine = self._machines[seat_id]
        return machine.arrived_at if machine.status is SeatStatus.OCCUPIED else None

    def on_tag_ranges(self, tag_pseudonym: str, ranges: Sequence[tuple[str, float, float]], t: float) -> Fix | None:
        """Ranges (anchor id, metres, quality 0-100) of one tag: robust fix (with the learned offset), tracking."""
        usable = {a: r for a, r, q in ranges if q >= self.min_range_quality}
        fix = solve(usable, self._anchors, self.tag_height_m, bias_m=self.anchor_bias_m, offset=self.offset.prior())
        self.offset.observe(fix)
        if fix is not None:
            self.on_tag_position(tag_pseudonym, fix.x, fix.y, t, sigma_m=max(fix.residual_m, 0.05))
        return fix

    def holds_tag(self, tag_pseudonym: str) -> bool:
        """Whether a track of this tag is held now (a patron's export says so, never where)."""
        return tag_pseudonym in self._tags

    def tag_fix(self, tag_pseudonym: str, t: float) -> tuple[float, float, float] | None:
        """A held tag's smoothed x, y and the fix's age in seconds (a technician's explicit ask only)."""
        self._fresh_tags(t)  # drops the tags past their retention first
        tag = self._tags.get(tag_pseudonym)
        pos = None if tag is None else tag.track.position
        if tag is None or pos is None:
            return None
        return pos[0], pos[1], max(0.0, t - tag.last_t)

    def forget_tag(self, tag_pseudonym: str) -> bool:
        """Drop a tag's track and seat at once (its holder withdrew consent); True if it was tracked."""
        return self._tags.pop(tag_pseudonym, None) is not None

    def tag_counts(self, t: float) -> dict[str, int]:
        """What a technician may see of the tags: counts only, never an id or a position."""
        fresh = self._fresh_tags(t)
        seated = [n for n, g in fresh.items() if g.seat is not None]
        return {"tracked": len(fresh), "known": len(self._tags), "at_seats": len(seated),
                "consenting_at_seats": sum(1 for n in seated if n in self._consented)}

    def release_seat(self, seat_id: str, t: float) -> None:
        """Mark a seat free (rule intent or staff command); what stands on its desk is no claim."""
        self._machine(seat_id).release(t)
        desk = self._weights.get(seat_id)
        if desk is not None:
            desk.rezero()

    def set_anchor(self, anchor_id: str, x: float, y: float, z: float) -> None:
        """A surveyed anchor position, applied to the next fixes (the technician CLI's calibrate uwb-anchor)."""
        if anchor_id not in self._anchors:
            raise KeyError(anchor_id)
        self._anchors[anchor_id] = (x, y, z)

    def set_consented_tags(self, pseudonyms: set[str]) -> None:
        self._consented = frozenset(pseudonyms)

    def set_forecast(self, zone_id: str, forecast: Mapping[int, float]) -> None:
        self._forecast[zone_id] = dict(forecast)

    def capture_background(self, sensor_id: str) -> None:
        """Technician command: the current view is the empty room (refused with people in view)."""
        self._detector(sensor_id).capture_background()

    def thermal_status(self, sensor_id: str, t: float | None = None) -> ThermalStatus:
        det = self._detector(sensor_id)
        bg = None if det.background is None else det.background.copy()
        usable = self._thermal_usable(sensor_id, t if t is not None else (det.last_t or 0.0))
        return ThermalStatus(sensor_id, bg, det.blobs, det.people, det.last_t, usable)

    # ----------------------------------------------------------------------------- state
    def _thermal_usable(self, sensor_id: str, t: float) -> bool:
        """Healthy, and not silent for ``stale_after_s`` past the frame it was due to send next.

        Silence counts from when the next frame was due: a thermopile polled once a minute has
        frames a minute old by design, and one whose frame comes a few milliseconds late (a bus
        busy with another read) is not silent. Taking it for silent made its seats UNKNOWN for an
        instant, and a seat that comes back from UNKNOWN trusts nothing from before: an away seat
        forgot its patron's break and showed free.
        """
        ev = self._evidence.get(sensor_id)
        every = min(self._frame_every.get(sensor_id) or [0.0])  # a missed poll does not widen it
        return sensor_id not in self._unhealthy and ev is not None and t - ev.t <= every + self.stale_after_s

    def _fresh_tags(self, t: float) -> dict[str, FloorTag]:
        for name in [n for n, g in self._tags.items() if t - g.last_t > self.tag_forget_s]:
            del self._tags[name]  # retention: a tag out of sight is forgotten
        return {n: g for n, g in self._tags.items() if t - g.last_t <= self.tag_fresh_s}

    def _in_view(self, sensor_id: str, x: float, y: float) -> bool:
        mount = self._sensors[sensor_id].mount
        if mount is None:
            return False
        row, col = floor_to_pixel(mount, x, y)
        return -0.5 <= row <= GRID - 0.5 and -0.5 <= col <= GRID - 0.5

    def _lux_read_at(self) -> dict[str, float]:
        """Per zone, when its newest lux reading was taken (the light model splits each reading once)."""
        last, out = self._last, {}
        for zid, sources in self._zone_sources.items():
            times = [v.t for i in sources["lux"] if (v := last.get((i, "lux"))) is not None]
            if times:
                out[zid] = max(times)
        return out

    def _seat_views(
        self, t: float, tags: Mapping[str, FloorTag], zone_lux: Mapping[str, Measure], levels: Mapping[str, float],
        usable: Mapping[str, bool],
    ) -> dict[str, SeatView]:
        seat_lux = self.light_model.seat_lux({z: m.value for z, m in zone_lux.items()}, levels, self._lux_read_at())
        tag_seat: dict[str, tuple[str, FloorTag]] = {}
        for n, g in sorted(tags.items(), key=lambda item: item[1].seat_since or 0.0, reverse=True):
            if g.seat is not None:
                tag_seat[g.seat] = (n, g)  # two tags at one seat: the one there first is its occupant's
        views: dict[str, SeatView] = {}
        last = self._views
        for seat in self.cfg.seats:
            machine = self._machines[seat.id]
            sensor = self._seat_sensor.get(seat.id)
            if sensor is not None and usable[sensor]:
                machine.advance(t)
            else:
                machine.observe(True if seat.id in tag_seat else None, t)
            consented = tag_seat.get(seat.id)
            name, since = (consented[0], consented[1].seat_since) if consented else (None, None)
            if name not in self._consented:
                name, since = None, None
            status, began, desk, lux = machine.status, machine.since, self.topology.seat_desk.get(seat.id), \
                seat_lux.get(seat.id)
            view = last.get(seat.id)
            if (view is None or view.status is not status or view.since != began or view.lux != lux
                    or view.consented_tag != name or view.tag_since != since or view.desk != desk):
                view = SeatView(id=seat.id, zone=seat.zone, status=status, since=began, desk=desk, lux=lux,
                                consented_tag=name, tag_since=since)
            views[seat.id] = view
        self._views = views
        return views

    def _place(self, pos: tuple[float, float]) -> tuple[frozenset[str], dict[str, bool]]:
        """The zones a position lies in, and what is known of which thermopiles see it (see
        :meth:`_sees`), kept for the position."""
        place = self._places.get(pos)
        if place is None:
            if len(self._places) >= _PLACES_KEPT:
                self._places.clear()
            x, y = pos
            zones = frozenset(z for z, polygon in self._zone_polygon.items() if point_in_polygon(x, y, polygon))
            place = self._places[pos] = (zones, {})
        return place

    def _sees(self, sensor_id: str, pos: tuple[float, float], seen: dict[str, bool]) -> bool:
        """Whether the thermopile sees the position (:meth:`_in_view`), kept in the position's ``seen``."""
        found = seen.get(sensor_id)
        if found is None:
            found = seen[sensor_id] = self._in_view(sensor_id, *pos)
        return found

    def _people(
        self, zone_id: str, t: float, places: Sequence[tuple[tuple[float, float], frozenset[str], dict[str, bool]]],
        sensor_usable: Mapping[str, bool],
    ) -> tuple[Measure, bool]:
        """The zone's people count: its usable thermopiles' people, and the fresh tags (their
        positions' ``places``) in the zone that none of them sees."""
        thermal = self._zone_thermal[zone_id]
        usable = [s for s in thermal if sensor_usable[s]]
        extra = 0
        for pos, zones, seen in places:
            if zone_id in zones and not any(self._sees(s, pos, seen) for s in usable):
                extra += 1
        count = sum(self._evidence[s].people for s in usable) + extra
        if not thermal:
            return (Measure(float(extra), Quality.GOOD) if self._anchors else Measure(None, Quality.MISSING)), True
        if len(usable) == len(thermal):
            return Measure(float(count), Quality.GOOD), True
        if not usable:
            bad = all(s in self._unhealthy for s in thermal)
            return Measure(None, Quality.UNHEALTHY if bad else Quality.STALE), False
        return Measure(float(count), Quality.STALE), False

    def snapshot(
        self,
        t: float,
        wall: datetime,
        levels: Mapping[str, float] | None = None,
        preferences: Mapping[str, Preference] | None = None,
        open_now: bool = True,
        day_type: str = "term",
    ) -> FloorState:
        """The floor at monotonic time ``t`` (also advances the time-based seat transitions)."""
        self._seen(t)
        tags = self._fresh_tags(t)
        last, unhealthy, stale = self._last, self._unhealthy, self.stale_after_s
        env = {
            zid: {q: measure_from(q, ids, last, unhealthy, t, stale) for q, ids in sources.items()}
            for zid, sources in self._zone_sources.items()
        }
        usable = {sensor: self._thermal_usable(sensor, t) for sensor in self._detectors}
        seats = self._seat_views(t, tags, {z: m["lux"] for z, m in env.items()}, levels or {}, usable)
        places = [(pos, *self._place(pos)) for g in tags.values() if (pos := g.track.position)]
        counts: dict[str, dict[SeatStatus, int]] = {}  # zone -> seats in each status
        for v in seats.values():
            zone_count = counts.get(v.zone)
            if zone_count is None:
                zone_count = counts[v.zone] = dict.fromkeys(SeatStatus, 0)
            zone_count[v.status] += 1
        zones: dict[str, ZoneView] = {}
        for zone in self.cfg.zones:
            people, healthy = self._people(zone.id, t, places, usable)
            self._zone_busy[zone.id] = bool(people.value)
            if people.value:
                self._last_people[zone.id] = t
            motion = self._motion.get(zone.id)
            empty_since = None
            if people.value == 0:
                start = self._last_people.get(zone.id, self._first_t if self._first_t is not None else t)
                empty_since = max(start, motion) if motion is not None else start
            count = counts.get(zone.id) or dict.fromkeys(SeatStatus, 0)
            view = ZoneView(
                id=zone.id,
                people=people,
                seats_total=sum(count.values()),
                free=count[SeatStatus.FREE],
                occupied=count[SeatStatus.OCCUPIED],
                away=count[SeatStatus.AWAY],
                ghost=count[SeatStatus.GHOST],
                unknown=count[SeatStatus.UNKNOWN],
                lux=env[zone.id]["lux"],
                lux_now=self.light_model.sensor_lux_now(zone.id) if env[zone.id]["lux"].value is not None else None,
                temperature=env[zone.id]["temperature"],
                humidity=env[zone.id]["humidity"],
                co2=env[zone.id]["co2"],
                occupancy_healthy=healthy,
                last_motion=motion,
                empty_since=empty_since,
                forecast=dict(self._forecast.get(zone.id, {})),
                target_lux=zone.target_lux,
            )
            before = self._zone_views.get(zone.id)
            zones[zone.id] = before if before == view else view
        self._zone_views = zones
        return FloorState(
            t=t,
            wall=wall,
            seats=seats,
            zones=zones,
            topology=self.topology,
            levels=dict(levels or {}),
            preferences=dict(preferences or {}),
            open_now=open_now,
            day_type=day_type,
        )

    def tag_positions(self, t: float) -> dict[str, tuple[float, float]]:
        """Smoothed positions of fresh tags by pseudonym (for the technician view; never published)."""
        out: dict[str, tuple[float, float]] = {}
        for name, g in self._fresh_tags(t).items():
            pos = g.track.position
            if pos is not None:
                out[name] = pos
        return out


def _is_news(before: SeatStatus, after: SeatStatus) -> bool:
    """A seat change that should wake the decide loop (FloorModel.take_seat_news)."""
    if after is before:
        return False
    return after is SeatStatus.OCCUPIED or (after is SeatStatus.FREE and before in (SeatStatus.AWAY, SeatStatus.GHOST))

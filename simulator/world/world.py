"""The simulated library floor: patrons, light, air and energy in a closed loop with the daemon.

The world is event-driven. Patrons are planned on arrival and become timed events (arrive, sit,
break, return, depart); physics runs on coarse periodic steps (air every 30 s, daylight every 60 s,
actuator reads every 2 s, thermopile noise every 30 s) and pushes truth into simulated sensors
through a :class:`~simulator.world.binding.WorldBinding` only when it changes. Metrics are sampled
every simulated minute against the truth. It runs as one task on the same virtual-time loop as
the daemon: ``await world.run(world.end_time)``.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.config import SiteConfig
from simulator.world import climate, flow, physics
from simulator.world.adaptive import LAMP_S, AdaptiveSpace
from simulator.world.air import ZoneClimate, outdoor_humidity, zone_volumes
from simulator.world.baseline import ConventionalFloor
from simulator.world.belongings import Belongings
from simulator.world.binding import WorldBinding
from simulator.world.daylight import DaylightField, Weather
from simulator.world.envelope import Envelope
from simulator.world.flow import GatewaySenses
from simulator.world.geometry import FloorPlan, ThermopileView, luminaire_matrix
from simulator.world.metrics import EnergyBook, Need, Scorecard
from simulator.world.patrons import Patron, draw_arrivals
from simulator.world.scenario import RUNTIME_EVENTS, Scenario, hhmm_seconds
from simulator.world.seating import AvailabilitySource, SeatFloor, Unobserved, seats_wanted
from simulator.world.staff import Staff
from simulator.world.thermal import ThermopileScene
from simulator.world.uwb import furniture_links

DaemonProbe = Callable[[], Mapping[str, Mapping[str, Any]]]
Action = Callable[[float, Any], None]


class WorldClock(Protocol):
    """What the world needs from the clock: loop time and local wall time (VirtualClock has both)."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True)
class ScheduledEvent:
    """A scenario event the runtime must execute itself (broker outage, power cut)."""

    at: float  # monotonic seconds on the world's clock
    wall: str  # HH:MM
    kind: str
    target: str | None
    duration_s: float | None


class World:
    """The floor's truth, stepped on virtual time; see the module docstring and docs/simulator.md."""

    def __init__(self, cfg: SiteConfig, scenario: Scenario, binding: WorldBinding, clock: WorldClock) -> None:
        self.cfg, self.scenario, self.binding, self.clock = cfg, scenario, binding, clock
        head = scenario.scenario
        self.t0 = clock.monotonic()
        self.wall0 = clock.now()
        self.sod0 = self.wall0.hour * 3600.0 + self.wall0.minute * 60.0 + self.wall0.second
        self.utc_offset = self.wall0.utcoffset() or timedelta(0)
        self.t_open = self._at(hhmm_seconds(cfg.site.opening_hours[0]))
        self.t_close = self._at(hhmm_seconds(cfg.site.opening_hours[1]))
        self.end_time = self._at(hhmm_seconds(head.end))
        streams = np.random.SeedSequence(head.seed).spawn(6)
        rng_plan, self.rng_choice, self.rng_noise, self.rng_tag, rng_weather, self.rng_motion = (
            np.random.default_rng(s) for s in streams)
        self.plan = plan = FloorPlan.from_config(cfg, scenario.patrons.entrance)
        n_seats, n_zones = len(plan.seat_ids), len(plan.zone_ids)
        self.zone_kind: list[str] = [z.kind for z in cfg.zones]
        self.zone_target = np.array([z.target_lux for z in cfg.zones])
        self.seat_window = np.array([s.window for s in cfg.seats], dtype=bool)
        d = np.hypot(plan.seat_xy[:, None, 0] - plan.seat_xy[None, :, 0],
                     plan.seat_xy[:, None, 1] - plan.seat_xy[None, :, 1])
        self.neighbours = ((d < 2.5) & (d > 0)).astype(float)
        # Light: seats first, then light sensors, in one point set.
        self.lums = [a for a in cfg.actuators if a.kind == "light"]
        lum_xy = np.array([[a.x if a.x is not None else 0.0, a.y if a.y is not None else 0.0] for a in self.lums])
        points = np.vstack([plan.seat_xy, plan.lux_sensor_xy])
        self.lum_matrix = luminaire_matrix(points, lum_xy.reshape(-1, 2), np.array([a.lux_at_full for a in self.lums]))
        self.lum_zone = np.array([plan.zone_ids.index(a.zone) if a.zone else -1 for a in self.lums], dtype=np.int64)
        self.lum_watts = np.array([a.watts for a in self.lums])
        self.zone_lums = [[i for i, z in enumerate(self.lum_zone) if z == zone] for zone in range(n_zones)]
        self.lum_ids = [a.id for a in self.lums]
        self.lum_level = np.zeros(len(self.lums))
        self.lum_level_list = [0.0] * len(self.lums)
        self.lum_power = float(self.lum_watts.sum()) * physics.STANDBY_FRACTION
        desks = {a.id: a for a in cfg.actuators if a.kind == "desk"}
        self.lamp_of_seat = [desks.get(s.desk) if s.desk else None for s in cfg.seats]
        self.lamp_ids = [a.id if a else None for a in self.lamp_of_seat]
        self.lamp_level = np.zeros(n_seats)
        self.lamp_level_list = [0.0] * n_seats
        self.indicator = [0] * n_seats
        self.stood_at = np.full(n_seats, -np.inf)  # when the seat's last holder stood up
        self.lamp_lux = np.array([a.lux_at_full if a else 0.0 for a in self.lamp_of_seat])
        self.lamp_watts = np.array([a.watts if a else 0.0 for a in self.lamp_of_seat])
        self.daylight = DaylightField(points, cfg.windows)
        self.weather = Weather(head.weather, rng_weather)
        self.day_lux = np.zeros(len(points))
        self.point_lux = np.zeros(len(points))
        # Thermopiles and their sun field.
        self.scenes: list[ThermopileScene] = []
        self.seat_scenes: list[list[int]] = [[] for _ in range(n_seats)]
        for s in cfg.sensors:
            if s.kind == "amg8833" and s.mount is not None:
                zone = plan.zone_ids.index(s.zone) if s.zone else int(plan.zone_of(
                    np.array([s.mount.x]), np.array([s.mount.y]))[0])
                scene = ThermopileScene(ThermopileView.build(s.id, zone, s.mount, plan), self.rng_noise)
                for seat in scene.view.person:
                    self.seat_scenes[seat].append(len(self.scenes))
                self.scenes.append(scene)
        pix = [np.column_stack([sc.view.pixel_x.ravel(), sc.view.pixel_y.ravel()]) for sc in self.scenes]
        self.pixel_daylight = DaylightField(np.vstack(pix) if pix else np.zeros((0, 2)), cfg.windows)
        near = self.pixel_daylight.window_distance.reshape(-1, 64).min(axis=1) if pix else np.zeros(0)
        self.sunny_scenes = [k for k in range(len(self.scenes)) if near[k] < 4.0]  # sun patches reach ~4 m in
        self.pirs: list[list[str]] = [[] for _ in range(n_zones)]
        for s in cfg.sensors:
            if s.kind == "pir" and s.zone:
                self.pirs[plan.zone_ids.index(s.zone)].append(s.id)
        self.env_sensors = [(s.id, plan.zone_ids.index(s.zone), s.kind) for s in cfg.sensors
                            if s.kind in ("sht31", "sht4x", "scd41") and s.zone]
        self.anchors = np.array([[a.x, a.y, a.z] for a in cfg.anchors]).reshape(-1, 3)
        self.anchor_ids = [a.id for a in cfg.anchors]
        rng_furniture = np.random.default_rng(np.random.SeedSequence(head.seed).spawn(7)[6])  # its own stream
        self.furniture = furniture_links(n_seats, len(self.anchor_ids), rng_furniture)
        # Air, heat and the plant: the gateway's floor, and the conventional one beside it.
        vapour = outdoor_humidity(head.outdoor_temp_c, head.outdoor_rh_pct)
        self.envelope = Envelope.from_plan(plan, cfg.windows, zone_volumes(cfg, plan.zone_area_m2))
        self.air = ZoneClimate(cfg, plan.zone_area_m2, self.envelope, head.heating_setpoint_c, vapour)
        self.conventional = ConventionalFloor(cfg, plan.zone_area_m2, self.envelope, self.lum_zone, self.lum_watts,
                                              physics.STANDBY_FRACTION, head.heating_setpoint_c, vapour)
        self.vent_level = np.zeros(len(self.air.groups))
        # Patrons: the same people on both floors, each floor with its own copy of their plans, and
        # choice streams from the same seed (they draw alike while the floors agree).
        patrons = draw_arrivals(cfg, scenario.patrons, head.demand_day_type, self.wall0, self.t0, self.end_time,
                                rng_plan)
        conventional_patrons = copy.deepcopy(patrons)
        self._planned = copy.deepcopy(patrons)  # the plans as drawn, for seats_wanted
        self.seats = SeatFloor(self, patrons, self.rng_choice, GatewaySenses(self), gateway=True)
        self.conventional.seats = SeatFloor(self, conventional_patrons, np.random.default_rng(streams[1]),
                                            Unobserved(), gateway=False)
        self.patrons: list[Patron] = self.seats.patrons
        self.holder = self.seats.holder
        self.zone_people = self.seats.zone_people
        self.pending_break = self.seats.pending_break
        self.staff = Staff(self, self.seats, scenario.staff.response_s)
        self.walking: dict[int, tuple[float, float, tuple[float, float], tuple[float, float]]] = {}
        self.tag_bias: dict[int, np.ndarray] = {}
        self.tags_shown: set[int] = set()
        # Bookkeeping.
        self.score = Scorecard(comfort_out_minutes=np.zeros(n_zones, dtype=np.int64),
                               baseline_comfort_out_minutes=np.zeros(n_zones, dtype=np.int64))
        self.adaptive = AdaptiveSpace(self)
        self.needs: dict[tuple[str, int], Need] = {}
        self.pir_high: dict[str, bool] = {}
        self.pir_until: dict[str, float] = {}
        self.timeline: list[dict[str, float]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.events_done: list[str] = []
        self.probe: DaemonProbe | None = None
        self._heap: list[tuple[float, int, Action, Any]] = []
        self._seq = 0
        self._started = False
        self.polling = False
        self.sun = (0.0, 0.0, 1.0)
        self.last = {"lights": self.t0, "lamps": self.t0, "physics": self.t0}
        self.co2_prev_max = np.full(len(self.air.groups), 420.0)
        self.cpu_seconds = 0.0

    # ----- time -----
    def _at(self, seconds_of_day: float) -> float:
        return self.t0 + seconds_of_day - self.sod0

    def wall(self, t: float) -> datetime:
        """Local wall time at monotonic ``t``."""
        return self.wall0 + timedelta(seconds=t - self.t0)

    def is_open(self, t: float) -> bool:
        return self.t_open <= t < self.t_close

    def schedule(self, t: float, action: Action, arg: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, action, arg))

    def _every(self, period: float, action: Callable[[float], None], first: float | None = None) -> None:
        def tick(t: float, _: Any) -> None:
            action(t)
            if t + period <= self.end_time:
                self.schedule(t + period, tick)
        self.schedule(self.t0 if first is None else first, tick)

    # ----- public API -----
    def set_daemon_probe(self, probe: DaemonProbe) -> None:
        """``probe()`` returns {"seats": {seat: status}, "zones": {zone: people or None}}; sampled each minute."""
        self.probe = probe

    def scheduled_events(self) -> list[ScheduledEvent]:
        """Scenario events the runtime executes itself (broker down/up, power cut), in time order."""
        out = []
        for ev in self.scenario.events:
            if ev.kind in RUNTIME_EVENTS:
                dur = ev.duration_min * 60.0 if ev.duration_min is not None else None
                out.append(ScheduledEvent(self._at(hhmm_seconds(ev.at)), ev.at, ev.kind, ev.target, dur))
        return sorted(out, key=lambda e: e.at)

    def truth_seat(self, seat_id: str, t: float | None = None) -> str:
        """free | occupied | away | ghost: what the daemon should report (``physics.graded_status``)."""
        now = self.clock.monotonic() if t is None else t
        return physics.graded_status(self, self.plan.seat_ids.index(seat_id), now)

    def people_in_zone(self, zone_id: str) -> int:
        """Seated people in the zone right now (truth)."""
        return int(self.zone_people[self.plan.zone_ids.index(zone_id)])

    def place_patron(self, seat_id: str, t: float | None = None, *, laptop: bool = False, coat: bool = False,
                     tag: str | None = None, things: Belongings | None = None, back_soon: bool = False) -> int:
        """Seat a patron at ``seat_id`` now, staying until closing (tests and demos); returns their id.

        ``things``: what they carry (default: a 1.8 kg laptop if ``laptop``, else nothing).
        """
        now = self.clock.monotonic() if t is None else t
        seat = self.plan.seat_ids.index(seat_id)
        if self.holder[seat] >= 0:
            raise ValueError(f"seat {seat_id} is already taken")
        p = Patron(id=len(self.patrons), arrival=now, zone=int(self.plan.seat_zone[seat]), likes_window=False,
                   loner=False, laptop=laptop, tag=tag, skin_c=30.0, stay_s=self.t_close - now,
                   seat=seat, leave_by=max(now + 60.0, self.t_close), coat=coat, back_soon=back_soon,
                   things=things if things is not None else Belongings(laptop_g=1800.0 if laptop else 0.0))
        self.patrons.append(p)
        self.conventional.seats.patrons.append(copy.deepcopy(p))  # ids stay aligned; they never arrive there
        self.holder[seat] = p.id
        self.seats.sit(now, p.id)
        return p.id

    def set_availability(self, source: AvailabilitySource | None) -> None:
        """What the gateway shows patrons (free seat ids); None: nothing (patrons search the floor)."""
        self.seats.availability = source

    def dispatch_ghost(self, seat_id: str, t: float | None = None) -> None:
        """The gateway dispatched staff to a ghost seat (its ``ghost_seat`` event): :mod:`simulator.world.staff`."""
        self.staff.dispatch(seat_id, t)

    @property
    def lights_off_in_occupied_zone_minutes(self) -> int:
        return self.score.lights_off_occupied_minutes

    async def run(self, until: float | None = None) -> None:
        """Advance the world to ``until`` (monotonic; default the scenario's end) on the running loop."""
        stop = self.end_time if until is None else until
        if not self._started:
            self._start()
        while self._heap and self._heap[0][0] <= stop:
            t = self._heap[0][0]
            now = self.clock.monotonic()
            if t > now + 1e-6:
                await asyncio.sleep(t - now)
            t, _, action, arg = heapq.heappop(self._heap)
            started = time.perf_counter()
            action(t, arg)
            self.cpu_seconds += time.perf_counter() - started
        now = self.clock.monotonic()
        if stop > now and math.isfinite(stop):
            await asyncio.sleep(stop - now)
        self.score.sim_seconds = max(self.score.sim_seconds, min(stop, self.end_time) - self.t0)
        if stop >= self.end_time:
            physics.close_open_needs(self, self.end_time)

    def report(self, extra: Mapping[str, object] | None = None) -> dict[str, object]:
        """The report's metrics (see docs/simulator.md); ``extra`` (runtime figures) is merged last."""
        out = self.score.as_report(self._energy())
        out["arrivals"] = self.seats.book.arrivals
        out["seats_wanted"] = seats_wanted(self, self._planned)
        out.update(self.seats.book.as_report())
        out.update(self.conventional.seats.book.as_report("baseline_"))
        out["abandoned_belongings"] = self.seats.book.abandoned
        out.update(self.staff.report())
        out.update(self.adaptive.report(float(out["lighting_kwh"])))  # type: ignore[arg-type]
        out.setdefault("wall_seconds", None)
        for key in ("messages_produced", "messages_delivered", "messages_dropped"):
            out.setdefault(key, None)
        out["events"] = list(self.events_done)
        out.update(dict(extra or {}))
        return out

    def render(self, directory: str | Path, times: list[str] | None = None) -> list[Path]:
        """Write SVG floor maps at ``times`` (HH:MM, nearest snapshot) and a day timeline; returns the files."""
        from simulator.world.render import write_svgs

        return write_svgs(self, Path(directory), times or ["10:00", "14:00", "19:00"])

    # ----- start -----
    def _start(self) -> None:
        self._started = True
        for floor in (self.seats, self.conventional.seats):
            for p in floor.patrons:
                if p.arrival < self.t_close:
                    self.schedule(p.arrival, partial(floor.arrive), p.id)
        for zone in self.pirs:
            for pir in zone:
                self.binding.set_motion(pir, False)
        physics.daylight_step(self, self.t0)
        self._every(2.0, partial(physics.read_lights, self))
        self._every(30.0, partial(physics.read_lamps, self))
        self._every(60.0, partial(physics.daylight_step, self), self.t0 + 60.0)
        self._every(30.0, partial(climate.air_step, self))
        self._every(60.0, partial(physics.refresh_thermal, self))
        self._every(60.0, partial(physics.sample, self), self.t0 + 60.0)
        self._every(60.0, partial(climate.sample_comfort, self), self.t0 + 60.0)
        self._every(900.0, partial(physics.snapshot, self))
        self._every(self.scenario.sim.tag_interval_s, partial(flow.report_tags, self))
        self._every(60.0, self.adaptive.sample_tags, self.t0 + 60.0)
        self._every(LAMP_S, self.adaptive.lamps)
        self.schedule(self.t_close, partial(flow.closing, self))
        for ev in self.scenario.events:
            if ev.kind not in RUNTIME_EVENTS:
                self.schedule(self._at(hhmm_seconds(ev.at)), partial(flow.scenario_event, self), ev)

    def _energy(self) -> EnergyBook:
        """Both floors' energy by load: lighting metered here, air and heat by their climates."""
        span_end = self.t0 + self.score.sim_seconds
        lit = max(0.0, min(span_end, self.t_close) - max(self.t0, self.t_open))
        gateway = {"luminaires": self.score.luminaire_j, "desk_lamps": self.score.desk_lamp_j, **self.air.joules}
        baseline = {"luminaires": self.conventional.lighting_j(lit, self.score.sim_seconds - lit), "desk_lamps": 0.0,
                    **self.conventional.climate.joules}
        return EnergyBook(gateway, baseline, dict(self.air.thermal_j), dict(self.conventional.climate.thermal_j),
                          climate.COMFORT_BAND_C, list(self.plan.zone_ids))


def utc(world: World, t: float) -> datetime:
    """UTC time at monotonic ``t`` (for the sun)."""
    return (world.wall(t) - world.utc_offset).replace(tzinfo=UTC)

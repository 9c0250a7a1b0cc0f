"""The decide loop: floor state -> rules -> arbiter, on a period and at once on events.

Most rules (daylight harvesting, ventilation, indicators) are fine on a period of a few seconds;
event rules must act in well under a second, so news wakes the loop immediately (:meth:`wake`): the
first motion in a still, empty zone, a sensor turning unhealthy, an override, a command, a desk's
button (edge_agent.pollers decides what is news; several events in the same instant are coalesced
into one evaluation).

Seat news (:meth:`seat_news`: a seat turned occupied, or a held seat free, from a thermopile frame
or a desk's load) is not urgent to the tenth of a second: thermal detection itself takes tens of
seconds of presence to call a seat taken. It can come in bursts, though (60 thermopiles read
every 2 s are 30 frames a second, spread out; a floor filling at once, or a node's sensors back
after a fault, turn many seats within a second or two), and each piece woke the loop for a pass
over every seat (5-7 ms of CPU at 240 seats). So seat news passes no sooner than ``news_gap_s``
after the previous pass: the first piece after a quiet spell still passes at once, and a burst
costs one pass per gap however many seats it turns, at most ``news_gap_s`` late. Urgent news in
between passes at once and takes the seat news with it. With the gateway's 1 s
(``Tuning.seat_news_gap_s``) seat news adds at most one pass a second to the period's one every
2 s. ``news_gap_s`` 0 wakes at once as :meth:`wake` does (the simulated day keeps its cadence
that way: edge_agent.simulate). Each pass:

1. snapshot the floor (FloorModel.snapshot) with what the actuators hold, consenting patrons'
   preferences, opening hours and the day type;
2. evaluate the rule set and hand the intents to the arbiter (:class:`rules.incremental.Evaluator`:
   the result of the pure ``evaluate``, redoing only the rules and seats whose inputs changed since
   the last pass, since most passes follow one seat's news);
3. act on intents that are not for an output (release a ghost seat, raise an alert);
4. publish what changed upstream: seat states, availability per zone (retained, as soon as it
   changes), new ghost seats for staff (``ghost_seat``) and ghosts cleared otherwise than by a
   release, and zone summaries (the uplink sends them on its period and on significant change).

Besides its period, the loop also runs when a seat is due to change status by itself
(:meth:`FloorModel.next_due`: a patron's absence reaching ``away_after_s``, an away seat's ghost
limit), so that change is shown when it happens rather than up to a period later.

Releases by staff (CLI, MQTT, the desk button held 3 s) and by rules all go through
:meth:`FloorController.release_seat`, which measures the time from ghost to cleared.

A new rule set (SIGHUP or the MQTT command) is swapped in atomically by :meth:`use_rules`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from drivers.ports import Clock
from edge_agent.actuation.arbiter import Arbiter, Channel
from edge_agent.availability import FloorAvailability
from edge_agent.config import SiteConfig
from edge_agent.ghosts import GhostDispatch
from edge_agent.sensing.floor import FloorModel
from edge_agent.upstream import Upstream
from rules import RuleMemory, RuleSet
from rules.incremental import Evaluator
from rules.state import FloorState, IntentKind, Preference, SeatView

log = logging.getLogger("edge_agent.controller")


class FloorController:
    """Runs the decide loop for one floor (see module docstring)."""

    def __init__(
        self,
        cfg: SiteConfig,
        floor: FloorModel,
        rules: RuleSet,
        arbiter: Arbiter,
        clock: Clock,
        *,
        upstream: Upstream | None = None,
        preferences: Callable[[], dict[str, Preference]] | None = None,
        day_type: Callable[[datetime], str] | None = None,
        opening: Callable[[datetime], bool] | None = None,
        interval_s: float = 2.0,
        on_state: Callable[[FloorState], None] | None = None,
        availability: FloorAvailability | None = None,
        news_gap_s: float = 0.0,
    ) -> None:
        self.cfg = cfg
        self.floor = floor
        self.rules = rules
        self.arbiter = arbiter
        self.clock = clock
        self.upstream = upstream
        self.preferences = preferences or (lambda: {})
        self.day_type = day_type or (lambda _wall: "term")
        self.opening = opening  # the site calendar's opening hours; None: [site] opening_hours every day
        self.interval_s = interval_s
        self.news_gap_s = news_gap_s  # seat news passes no sooner than this after the last pass
        self.on_state = on_state
        self.availability = availability or FloorAvailability({z.id: z.name for z in cfg.zones},
                                                              ready_soon_s=cfg.sensing.ready_soon_s)
        self.memory = RuleMemory()
        self.evaluator = Evaluator()
        self.ghosts = GhostDispatch()
        self.listeners: list[Callable[[FloorState], None]] = []  # told after every pass (the display page)
        self._seat_zone = {seat.id: seat.zone for seat in cfg.seats}
        self.state: FloorState | None = None
        self.evaluations = 0
        self._wake = asyncio.Event()
        self._passed_at: float | None = None  # when the last pass ended (clock.monotonic)
        self._seat_news_due: asyncio.TimerHandle | None = None  # a pass asked for by seat news
        self._tz = ZoneInfo(cfg.site.timezone)
        self._open, self._close = (time.fromisoformat(h) for h in cfg.site.opening_hours)
        self._seat_published: dict[str, tuple[str, str | None]] = {}
        self._seat_views_seen: dict[str, SeatView] = {}  # the view each seat's state was last checked from
        self._level_channels: list[tuple[str, Channel]] | None = None
        self._force_summaries = False
        self._force_availability = False

    # -- inputs --------------------------------------------------------------------------------
    def wake(self, *_: object) -> None:
        """An event happened (motion, an override): evaluate now."""
        self._wake.set()

    def seat_news(self, *_: object) -> None:
        """A seat changed in a way rules answer (someone sat down, a held seat is free): evaluate
        within ``news_gap_s`` of the last pass, at once if that is past (module docstring)."""
        if self._wake.is_set() or self._seat_news_due is not None:
            return  # a pass is coming already: it will see this seat too
        gap = self.news_gap_s
        wait_s = 0.0 if gap <= 0.0 or self._passed_at is None else self._passed_at + gap - self.clock.monotonic()
        if wait_s <= 0.0:
            self._wake.set()
            return
        self._seat_news_due = asyncio.get_running_loop().call_later(wait_s, self._seat_news_now)

    def _seat_news_now(self) -> None:
        self._seat_news_due = None
        self._wake.set()

    def use_rules(self, rules: RuleSet) -> None:
        """Swap the rule set atomically (between two evaluations); timers restart."""
        self.rules = rules
        self.memory = RuleMemory()
        self._wake.set()

    def wall(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), tz=self._tz)

    def is_open(self, wall: datetime) -> bool:
        if self.opening is not None:
            return self.opening(wall)
        now = wall.time()
        if self._open <= self._close:
            return self._open <= now < self._close
        return now >= self._open or now < self._close  # opening hours across midnight

    def levels(self) -> dict[str, float]:
        """What each actuator holds (lights, lamps, ventilation), from the arbiter's book."""
        if self._level_channels is None:  # the arbiter's channels are fixed when it is built
            self._level_channels = [(actuator, ch) for (actuator, kind), ch in self.arbiter.channels.items()
                                    if kind in (IntentKind.LIGHT_LEVEL, IntentKind.VENTILATION)]
        return {actuator: ch.applied for actuator, ch in self._level_channels if ch.applied is not None}

    # -- the loop ------------------------------------------------------------------------------
    async def step(self) -> FloorState:
        """One pass of the decide loop (also used by tests and replay)."""
        t = self.clock.monotonic()
        wall = self.wall()
        state = self.floor.snapshot(t, wall, levels=self.levels(), preferences=self.preferences(),
                                    open_now=self.is_open(wall), day_type=self.day_type(wall))
        result = self.evaluator.evaluate(self.rules, state, self.memory)
        self.memory = result.memory
        self.evaluations += 1
        unrouted = await self.arbiter.submit(result.intents, t)
        for intent in unrouted:
            if intent.kind == IntentKind.RELEASE_SEAT:
                self.release_seat(intent.target, "rule", rule=intent.rule_id)
            elif intent.kind == IntentKind.ALERT:
                self._emit("alert", {"zone": intent.target, "rule": intent.rule_id, "text": intent.text or ""})
        self.state = state
        self._dispatch(state)
        changed = self.availability.update(state, self.floor.hold_ends(), self.clock.time())
        self._publish(state, t)
        if self.upstream is not None:
            for zone in changed if not self._force_availability else self.availability.snapshot().values():
                self.upstream.publish_availability(zone)
            self._force_availability = False
        if self.on_state is not None:
            self.on_state(state)
        for listener in self.listeners:
            listener(state)
        return state

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("decide loop pass failed")  # next pass tries again; supervisor sees repeats
                raise
            self._wake.clear()
            if self._seat_news_due is not None:  # this pass saw the seat news too
                self._seat_news_due.cancel()
                self._seat_news_due = None
            self._passed_at = self.clock.monotonic()
            # A seat due to change by itself (absence reaching away_after_s, a ghost limit) before
            # the next period: pass then, so the change is shown when it happens.
            now = self.clock.monotonic()
            due = self.floor.next_due(now)
            wait_s = self.interval_s if due is None else min(self.interval_s, max(0.01, due - now))
            try:
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # -- ghost seats -----------------------------------------------------------------------------
    def release_seat(self, seat: str, source: str, *, rule: str | None = None) -> dict[str, Any]:
        """Mark ``seat`` free (staff: ``cli``, ``mqtt``, ``desk_button``; or a ``rule``) and say so
        upstream (``seat_released``, with ``ghost_to_release_s`` when it was a ghost seat)."""
        t = self.clock.monotonic()
        was = self.floor.seat_status(seat)
        self.floor.release_seat(seat, t)
        ghost_s = self.ghosts.release(seat, t, source)
        data: dict[str, Any] = {"seat": seat, "zone": self._seat_zone.get(seat), "source": source, "was": was.value,
                                "ghost_to_release_s": None if ghost_s is None else round(ghost_s, 1)}
        if rule is not None:
            data["rule"] = rule
        self._emit("seat_released", data)
        self._wake.set()
        return data

    def _wall(self, t: float) -> str:
        from edge_agent.sync.messages import iso_utc

        return iso_utc(self.clock.time() - max(0.0, self.clock.monotonic() - t))

    def _dispatch(self, state: FloorState) -> None:
        new, ended = self.ghosts.update(state)
        for ghost in new:  # staff are sent: the event names the seat and its zone
            self._emit("ghost_seat", {"seat": ghost.seat, "zone": ghost.zone, "since": self._wall(ghost.since)},
                       severity="warning")
        for ghost, how, duration in ended:
            self._emit("ghost_cleared", {"seat": ghost.seat, "zone": ghost.zone, "how": how,
                                         "ghost_to_release_s": round(duration, 1)})

    # -- upstream --------------------------------------------------------------------------------
    def _emit(self, kind: str, data: dict[str, Any], *, severity: str = "info") -> None:
        if self.upstream is not None:
            self.upstream.publish_event(kind, data, severity=severity)

    def _publish(self, state: FloorState, t: float) -> None:
        if self.upstream is None:
            return
        if self.cfg.privacy.seat_states != "off":  # the publisher keeps to each zone's policy
            seen = self._seat_views_seen
            for seat in state.seats.values():
                if seen.get(seat.id) is seat:  # the same view as last pass: nothing new to say
                    continue
                seen[seat.id] = seat
                key = (seat.status.value, seat.zone)
                if self._seat_published.get(seat.id) != key:
                    self._seat_published[seat.id] = key
                    self.upstream.publish_seat_state(seat)
        force, self._force_summaries = self._force_summaries, False
        for zone in state.zones.values():
            self.upstream.publish_zone_summary(zone, force=force)  # the uplink sends on period or change

    def republish(self) -> None:
        """Forget what was sent, so the next pass publishes the full state (after a reconnect)."""
        self._seat_published.clear()
        self._seat_views_seen.clear()
        self._force_summaries = self._force_availability = True
        self._wake.set()

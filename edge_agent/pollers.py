"""One poller per physical device: read, check, calibrate, feed the floor model, track health.

Each poller is a supervised task (edge_agent.supervisor): a bug in one restarts that poller, not
the daemon. A failed read never stops a poller: the driver's :class:`drivers.health.DeviceHealth`
records it, the floor model hears that the sensor is unhealthy (its seats become ``unknown``,
its zone values lose quality), and the next poll tries again, re-initialising the part, so a
sensor that comes back is trusted again by itself.

How a sensor is run follows its kind's declared feed (:mod:`drivers.kinds`), one handler per
feed: ``readings`` polls ``readings()`` (the generic path every new kind takes), ``frames`` feeds
thermal frames to seat detection, ``events`` waits for motion edges, ``locations`` feeds UWB tags.
No sensor kind is named here.

Polls are staggered (each sensor starts at a different offset in its interval) so the thermal
frames of thirty nodes do not all queue on the RS-485 line at once. The sensors a desk node reads
itself into one sensor block (the four desks' load cells, block 1) share one phase, taken from the
node and the kind, so one block read answers all four (``SensorBlockPort``'s ``max_age_s``).

:meth:`SensorPollers.read_now` reads a sensor at once, outside its schedule: the desk node said
something changed (a LOAD_STEP event, edge_agent.desks). The periodic poll goes on and stays the
fallback when an event is lost; where the kind says its node reports such changes from a protocol
revision on (``events_from_revision``: the load cells of a desk node of revision 4), and that node
is identified at that revision and ``ok``, the fallback runs only every ``event_fallback_s`` (once
a minute instead of every 5 s: 12.7 -> 1.1 block reads a second on a 240-seat floor's line). A
node not ``ok`` (just rebooted, restoring, failing) or of an earlier revision is polled at the
sensor's own period, looked at again before each poll; the first poll after a start comes within
that period.

News wakes the decide loop at once (``on_news``), so rules act in well under a second without
evaluating the whole floor every second: the first motion in a still, empty zone, and a sensor
turning healthy or unhealthy. Seat news goes to ``on_seat_news`` (the decide loop coalesces it to
at most one pass per ``news_gap_s``, edge_agent.controller; without ``on_seat_news`` it goes to
``on_news``): a seat turning occupied (someone sat down: their preferences and the light over
them) or a held seat turning free (a patron looking for a seat can take it), from a thermopile
frame or a desk's load, which thermal detection takes tens of seconds to call anyway.
Everything else waits for the loop's period: a light reading is
not news (the lights' own response would wake the loop again before the dimmers settle, and the
harvesting loop would ring), nor is a warm blob that has not yet made a seat occupied, nor a
seat turning away or ghost, or an occupied seat free (judged over minutes).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from drivers.dwm1001 import Dwm1001Ble, Dwm1001Listener
from drivers.errors import EdgeError
from drivers.kinds import Feed
from drivers.ports import Clock, Reading
from edge_agent.config import Sensor, anchor_uwb_ids
from edge_agent.hardware import DeviceSlot, Hardware
from edge_agent.sensing.floor import FloorModel
from edge_agent.sensing.tags import TagDirectory
from edge_agent.supervisor import Supervisor

log = logging.getLogger("edge_agent.pollers")

NewsCallback = Callable[[str, float], None]
#: ``(sensor_id, healthy, reason)`` when a sensor turns unhealthy, or healthy again after a fault.
HealthCallback = Callable[[str, bool, str], None]


class Corrections(Protocol):
    """Live calibration (edge_agent.calibration): raw value in, corrected value out."""

    def apply(self, sensor_id: str, quantity: str, raw: float) -> float: ...


@dataclass
class LastSample:
    """What the technician CLI shows for a sensor: latest raw and corrected values."""

    t: float
    values: dict[str, float]
    raw: dict[str, float] = field(default_factory=dict)


class SensorPollers:
    """Starts and tracks the pollers of every configured sensor."""

    def __init__(
        self,
        hardware: Hardware,
        floor: FloorModel,
        clock: Clock,
        supervisor: Supervisor,
        *,
        tag_salt: bytes,
        on_news: NewsCallback | None = None,
        corrections: Corrections | None = None,
        interval_scale: Callable[[Sensor], float] | None = None,
        on_health: HealthCallback | None = None,
        tags: TagDirectory | None = None,
        on_seat_news: NewsCallback | None = None,
    ) -> None:
        self.hw = hardware
        self.floor = floor
        self.clock = clock
        self.supervisor = supervisor
        self.tag_salt = tag_salt
        self.tags = tags or TagDirectory(tag_salt, hardware.cfg.privacy.tag_retention_s)
        self.on_news = on_news
        self.on_seat_news = on_seat_news
        self.on_health = on_health
        self.corrections = corrections
        self.interval_of = interval_scale or (lambda s: s.poll_interval_s)
        self.last: dict[str, LastSample] = {}
        self.anchors = anchor_uwb_ids(hardware.cfg)
        self._healthy: dict[str, bool] = {}
        self._started: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def task_names(self) -> list[str]:
        return [f"poll:{sid}" for sid in self.hw.sensors]

    def start(self) -> None:
        for slot in self.hw.sensors.values():
            sid = slot.sensor.id
            self.supervisor.start(f"poll:{sid}", lambda slot=slot: self._run(slot))  # type: ignore[misc]

    async def stop(self) -> None:
        for name in self.task_names():
            await self.supervisor.stop_task(name)

    def exclusive(self, sensor_id: str) -> asyncio.Lock:
        """Held by a poll while it talks to the part; hold it to talk to the part yourself.

        A part is a command state machine: an SHT3x or SCD41 command written between another
        command and its read replaces the pending answer, and an SCD41 forced recalibration needs
        periodic measurement stopped. So a fresh read or a calibration from the control socket
        waits for the poll in progress and keeps the next one out until it is done.
        """
        lock = self._locks.get(sensor_id)
        if lock is None:  # not setdefault: that would build a Lock on every poll only to drop it
            lock = self._locks[sensor_id] = asyncio.Lock()
        return lock

    # -- health --------------------------------------------------------------------------------
    def healthy(self, sensor_id: str) -> bool:
        return self._healthy.get(sensor_id, False)

    def _report(self, sensor_id: str, healthy: bool, why: str = "") -> None:
        was = self._healthy.get(sensor_id)
        if was != healthy:
            self._healthy[sensor_id] = healthy
            self.floor.on_sensor_health(sensor_id, healthy, self.clock.monotonic())
            self._news(sensor_id, self.clock.monotonic())  # fail-safes act on health at once
            reason = ""
            if not healthy:
                slot = self.hw.sensors.get(sensor_id)
                health = getattr(getattr(slot, "driver", None), "health", None)
                reason = why or (slot.error if slot and slot.error else getattr(health, "reason", "")) or "failing"
                log.warning("sensor %s unhealthy: %s", sensor_id, reason)
            else:
                log.info("sensor %s healthy", sensor_id)
            if self.on_health is not None and (was is not None or not healthy):  # a first good poll is no news
                self.on_health(sensor_id, healthy, reason)

    def _correct(self, sensor_id: str, quantity: str, raw: float) -> float:
        if self.corrections is None:
            return raw
        return self.corrections.apply(sensor_id, quantity, raw)

    # -- the loops -----------------------------------------------------------------------------
    async def _run(self, slot: DeviceSlot) -> None:
        sensor = slot.sensor
        if slot.driver is None:
            if not slot.error:
                return  # not read by the gateway itself: its node reports it over the bridge
            self._report(sensor.id, False)
            return  # cannot be created: stays unhealthy with its reason until a reload
        feed: Feed = sensor.part.feed
        if feed == "events":
            await self._run_events(slot)
        elif feed == "locations" and isinstance(slot.driver, Dwm1001Listener):
            await self._run_listener(slot)
        elif feed == "locations" and isinstance(slot.driver, Dwm1001Ble):
            await self._run_ble_tag(slot)
        else:
            await self._run_polled(slot)

    async def read_now(self, sensor_id: str) -> bool:
        """Read a polled sensor now, between its polls (an event said its part has news): the
        reading or frame goes to the floor model as a poll's would, marked as out of schedule so
        seat detection does not take its spacing for the sensor's frame interval. False when the
        sensor is not polled here or not started yet, or the read failed (the next poll retries).
        """
        slot = self.hw.sensors.get(sensor_id)
        if slot is None or slot.driver is None or sensor_id not in self._started:
            return False
        if slot.sensor.part.feed not in ("frames", "readings"):
            return False
        try:
            async with self.exclusive(sensor_id):
                await self._sample(slot.sensor, slot.driver, prompt=True)
            self._report(sensor_id, self._driver_healthy(slot.driver))
        except (EdgeError, OSError) as exc:
            self._started.discard(sensor_id)
            self._report(sensor_id, self._driver_healthy(slot.driver))
            log.debug("prompt read of %s failed: %s", sensor_id, exc)
            return False
        return True

    @staticmethod
    def phase_key(sensor: Sensor) -> str:
        """What a poll's phase is drawn from: the sensor, or its node's block for a sensor the node
        reads itself (every load cell of a desk node: one block read a round, not four)."""
        if sensor.node is not None and sensor.bus is None:
            return f"node{sensor.node}:{sensor.kind}"
        return sensor.id

    def interval(self, sensor: Sensor) -> float:
        """The time to the sensor's next poll: its period, or the fallback period of a part whose
        node reports its changes as events (see the module docstring)."""
        interval = self.interval_of(sensor)
        revision = sensor.part.events_from_revision
        if revision is None or sensor.node is None or sensor.bus is not None or self.hw.link is None:
            return interval
        rec = self.hw.link.registry.nodes.get(sensor.node)
        if rec is None or rec.health != "ok" or rec.revision < revision:
            return interval
        return max(interval, sensor.part.event_fallback_s)

    async def _run_polled(self, slot: DeviceSlot) -> None:
        sensor, driver = slot.sensor, slot.driver
        # The first poll within the sensor's own period, whatever its node's record (saved by the
        # previous run) says: the seat model gets its first reading as soon as before.
        interval = self.interval_of(sensor)
        offset = (zlib.crc32(self.phase_key(sensor).encode()) % 1000) / 1000 * interval
        await self.clock.sleep(offset)
        due = self.clock.monotonic()
        while True:
            try:
                async with self.exclusive(sensor.id):
                    await self._sample(sensor, driver)
                self._report(sensor.id, self._driver_healthy(driver))
            except (EdgeError, OSError) as exc:
                self._started.discard(sensor.id)  # re-initialise the part on the next poll
                self._report(sensor.id, self._driver_healthy(driver))
                log.debug("poll %s failed: %s", sensor.id, exc)
            due += self.interval(sensor)
            now = self.clock.monotonic()
            if due < now:
                due = now  # fell behind: skip, never burst
            await self.clock.sleep(due - now)

    def _news(self, sensor_id: str, t: float) -> None:
        if self.on_news is not None:
            self.on_news(sensor_id, t)

    def _seat_news(self, sensor_id: str, t: float) -> None:
        if self.on_seat_news is not None:
            self.on_seat_news(sensor_id, t)
        else:
            self._news(sensor_id, t)

    @staticmethod
    def _driver_healthy(driver: Any) -> bool:
        health = getattr(driver, "health", None)
        return bool(health.healthy) if health is not None else True

    async def _sample(self, sensor: Sensor, driver: Any, *, prompt: bool = False) -> None:
        sid, kind = sensor.id, sensor.part
        if sid not in self._started:
            await kind.start(driver)  # (re-)initialise the part: after a start and after a failed poll
            self._started.add(sid)
        if kind.feed == "frames":
            frame = await driver.read_frame()
            self.floor.on_thermal(sid, frame.pixels, frame.t, prompt=prompt)
            if self.floor.take_seat_news():
                self._seat_news(sid, frame.t)
            self.last[sid] = LastSample(frame.t, {"max_pixel": frame.hottest_c, "thermistor": frame.thermistor_c})
        elif kind.feed == "locations":
            self._feed_location(sid, await driver.loc_get())
        else:
            self._feed(sid, await kind.readings(driver))

    def _feed(self, sid: str, readings: list[Reading]) -> None:
        corrected: dict[str, float] = {}
        t = readings[0].t if readings else self.clock.monotonic()
        for r in readings:
            value = self._correct(sid, r.quantity, r.value)
            corrected[r.quantity] = value
            self.floor.on_reading(Reading(sid, r.quantity, value, r.unit, r.t))
        if self.floor.take_seat_news():  # a desk's load freed a held seat
            self._seat_news(sid, t)
        self.last[sid] = LastSample(t, corrected, {r.quantity: r.value for r in readings})

    def _feed_location(self, sid: str, location: Any, tag_id: str | None = None) -> None:
        t = self.clock.monotonic()
        tag = self.tags.pseudonym(tag_id or sid, t)
        if location.distances:
            ranges = [(self.anchors[d.anchor_id], d.distance_m, float(d.quality))
                      for d in location.distances if d.anchor_id in self.anchors]
            if self.floor.on_tag_ranges(tag, ranges, t) is not None:
                return
        if location.position is not None and location.position.quality > 0:  # quality 0: the tag has no fix
            p = location.position
            self.floor.on_tag_position(tag, p.x_m, p.y_m, t)

    async def _run_listener(self, slot: DeviceSlot) -> None:
        """Every tag the listener hears: discovered, pseudonymised at once, tracked; no per-tag config.

        Tags report up to 10 times a second; the floor needs far less, so each tag's position is
        fed at most once per ``poll_interval_s`` (the newest report wins the next slot). A quiet
        listener is healthy: an empty floor is silent. One that stops answering is reset.
        """
        sensor, listener = slot.sensor, slot.driver
        interval = self.interval_of(sensor)
        fed_at: dict[str, float] = {}
        backoff = 1.0
        while not listener.started:
            try:
                await listener.start()
            except (EdgeError, OSError) as exc:
                self._report(sensor.id, False, f"listener does not answer: {exc}")
                await self.clock.sleep(backoff)
                backoff = min(60.0, backoff * 2)
        self._report(sensor.id, True)
        while True:
            try:
                report = await listener.next_report(timeout_s=60.0)
            except TimeoutError:
                report = None
            now = self.clock.monotonic()
            for name in self.tags.expire(now):
                fed_at.pop(name, None)
            self._report(sensor.id, self._driver_healthy(listener))
            if report is not None and report.position is not None:
                tag = self.tags.pseudonym(report.tag_id, now)
                if now - fed_at.get(tag, -1e18) >= interval:
                    fed_at[tag] = now
                    p = report.position
                    self.floor.on_tag_position(tag, p.x_m, p.y_m, now, sigma_m=0.1 if p.quality >= 50 else 0.3)
            counts = self.floor.tag_counts(now)
            self.last[sensor.id] = LastSample(now, {
                "tags_tracked": float(counts["tracked"]), "tags_at_seats": float(counts["at_seats"]),
                "tags_discovered": float(self.tags.discovered), "reports": float(listener.reports),
                "rejected_lines": float(listener.rejected)})

    async def _run_events(self, slot: DeviceSlot) -> None:
        sensor, pir = slot.sensor, slot.driver
        await sensor.part.start(pir)
        self._report(sensor.id, True)
        while True:
            event = await pir.next_event()
            if event.motion:
                news = self.floor.on_motion(sensor.id, event.t)
                self.last[sensor.id] = LastSample(event.t, {"motion": 1.0})
                if news:
                    self._news(sensor.id, event.t)
            else:
                self.last[sensor.id] = LastSample(event.t, {"motion": 0.0})

    async def _run_ble_tag(self, slot: DeviceSlot) -> None:
        sensor, tag = slot.sensor, slot.driver
        interval = self.interval_of(sensor)
        fed_at = -1e18
        async with tag:
            while True:
                silence = max(30.0, 10 * interval)
                try:
                    location = await tag.next_location(timeout_s=silence)
                except TimeoutError:
                    self._report(sensor.id, False, f"no location from the tag in {silence:g} s")
                    continue
                self._report(sensor.id, True)
                now = self.clock.monotonic()
                if now - fed_at >= interval:  # tags notify at 10 Hz; seats need far less
                    fed_at = now
                    self._feed_location(sensor.id, location, tag_id=sensor.ble_address)


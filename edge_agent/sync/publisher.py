"""What the gateway sends upstream, as messages in the outbox: the uplink's publishing side.

:class:`Publisher` turns floor facts into the payloads of docs/mqtt.md (each with its envelope:
sequence number, message id, timestamp, clock flag), checks each for privacy and puts it in the
outbox. It never waits on the network: the connection (:mod:`edge_agent.sync.session`) and the
outbound stream (:mod:`edge_agent.sync.stream`) deliver what it enqueues. Zone summaries are
throttled here: one per ``[mqtt] summary_interval_s``, or sooner on a significant change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel

from edge_agent.availability import ZoneAvailability
from edge_agent.config import SiteConfig
from edge_agent.sync.messages import (
    Actuation,
    AuditHead,
    CalendarState,
    CommandResult,
    Event,
    ForecastPoint,
    GatewaySignature,
    Health,
    Measure,
    SeatState,
    Status,
    Topics,
    ZoneAvailabilityMessage,
    ZoneForecast,
    ZoneSummary,
    assert_minimum_necessary,
    check_segment,
    iso_utc,
)
from edge_agent.sync.outbox import MessageClass, Outbox, describe
from rules.state import Measure as ViewMeasure
from rules.state import SeatView, ZoneView


class Clock(Protocol):
    """The daemon's clock as the uplink uses it (edge_agent.clock.SystemClock, the simulator's VirtualClock)."""

    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...
    @property
    def synced(self) -> bool: ...


def _measure(m: ViewMeasure) -> Measure:
    return Measure(value=m.value, quality=m.quality.value)


class Publisher:
    """The ``publish_*`` API (see module docstring); every method returns the message's sequence number."""

    def __init__(self, cfg: SiteConfig, outbox: Outbox, clock: Clock, *, version: str, config_hash: str) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.clock = clock
        self.version = version
        self.config_hash = config_hash
        self.topics = Topics(cfg.site.id, cfg.site.gateway)
        self.connected_since: float | None = None  # wall time of the current session's connect
        self._started_wall = clock.time()
        self._started_mono = clock.monotonic()
        self._last_summary: dict[str, tuple[float, ZoneView]] = {}
        #: Signs a result when its request asks (the gateway key: edge_agent.trust.gateway.GatewayTrust.sign_document).
        self.signer: Callable[[Mapping[str, Any]], Mapping[str, str]] | None = None

    def _envelope(self, seq: int | None = None) -> dict[str, Any]:
        seq = self.outbox.next_seq() if seq is None else seq
        return {
            "seq": seq,
            "msg_id": self.outbox.msg_id(self.cfg.site.gateway, seq),
            "ts": iso_utc(self.clock.time()),
            "clock_synced": bool(self.clock.synced),
        }

    def _enqueue(self, topic: str, message: BaseModel, klass: MessageClass, *, urgent: bool = False,
                 correlation: bytes | None = None) -> int:
        assert_minimum_necessary(message.model_dump())
        seq = int(message.seq)  # type: ignore[attr-defined]
        self.outbox.put(seq, topic, message.model_dump_json().encode(), klass, urgent=urgent, correlation=correlation)
        return seq

    def publish_zone_summary(self, zone: ZoneView, *, force: bool = False) -> int | None:
        """Enqueue a zone summary when due (interval), on significant change, or when forced."""
        now = self.clock.monotonic()
        last = self._last_summary.get(zone.id)
        if not force and last is not None:
            due = now - last[0] >= self.cfg.mqtt.summary_interval_s
            if not due and not significant_change(last[1], zone):
                return None
        self._last_summary[zone.id] = (now, zone)
        msg = ZoneSummary(
            **self._envelope(), zone=zone.id, people=_measure(zone.people), seats_total=zone.seats_total,
            free=zone.free, occupied=zone.occupied, away=zone.away, ghost=zone.ghost, unknown=zone.unknown,
            lux=_measure(zone.lux), temperature=_measure(zone.temperature), humidity=_measure(zone.humidity),
            co2=_measure(zone.co2), occupancy_healthy=zone.occupancy_healthy,
        )
        return self._enqueue(self.topics.zone_summary(zone.id), msg, MessageClass.PERIODIC)

    def publish_availability(self, zone: ZoneAvailability) -> int:
        """Retained ``zone/{zone}/availability`` (sent as soon as it changes: the decide loop calls this
        only for zones whose availability changed)."""
        msg = ZoneAvailabilityMessage(**self._envelope(), **zone.as_message())
        assert_minimum_necessary(msg.model_dump())
        self.outbox.put_retained(self.topics.zone_availability(zone.zone), msg.model_dump_json().encode())
        return msg.seq

    def publish_forecast(self, zone_id: str, forecast: Mapping[int, tuple[float, float, float]]) -> int:
        """``forecast``: horizon minutes -> (expected, p10, p90) people."""
        points = [
            ForecastPoint(horizon_min=h, expected=e, p10=lo, p90=hi) for h, (e, lo, hi) in sorted(forecast.items())
        ]
        msg = ZoneForecast(**self._envelope(), zone=zone_id, points=points)
        return self._enqueue(self.topics.zone_forecast(zone_id), msg, MessageClass.PERIODIC)

    def publish_seat_state(self, seat: SeatView) -> int | None:
        """Retained seat state (skipped when ``[privacy] publish_seat_states = false``)."""
        if not self.cfg.privacy.publish_seat_states:
            return None
        since_wall = self.clock.time() - max(0.0, self.clock.monotonic() - seat.since)
        msg = SeatState(
            **self._envelope(), seat=seat.id, zone=seat.zone, status=seat.status.value, since=iso_utc(since_wall)
        )
        assert_minimum_necessary(msg.model_dump())
        self.outbox.put_retained(self.topics.seat_state(seat.id), msg.model_dump_json().encode())
        return msg.seq

    def publish_calendar(self, state: Mapping[str, Any]) -> int:
        """Retained site calendar (:meth:`edge_agent.site_calendar.CalendarBook.describe`)."""
        msg = CalendarState(**self._envelope(), **state)
        self.outbox.put_retained(self.topics.calendar, msg.model_dump_json().encode())
        return msg.seq

    def publish_event(self, kind: str, data: Mapping[str, Any], *, severity: str = "info") -> int:
        """An event (fault, calibration, override, missed deadline...); ``data`` is checked for privacy."""
        check_segment(kind, "event kind")
        msg = Event.model_validate({**self._envelope(), "kind": kind, "severity": severity, "data": dict(data)})
        return self._enqueue(self.topics.event(kind), msg, MessageClass.RECORD)

    def publish_actuation(self, record: Mapping[str, Any]) -> int:
        """One applied actuation: actuator, kind, old, new, rule_id, priority, latency_ms, reason."""
        msg = Actuation.model_validate({**self._envelope(), **record})
        return self._enqueue(self.topics.actuation, msg, MessageClass.RECORD)

    def publish_health(self, *, sensors_healthy: int, sensors_unhealthy: int, cpu_percent: float | None = None,
                       rss_bytes: int | None = None, ghosts: Mapping[str, Any] | None = None) -> int:
        """Gateway health; outbox depth, age and drops are filled in here. ``ghosts``:
        :meth:`edge_agent.ghosts.GhostDispatch.stats`."""
        times = (ghosts or {}).get("ghost_to_release_s") or {}
        msg = Health(
            ghost_seats=None if ghosts is None else ghosts.get("open"),
            ghost_to_release_s_p50=times.get("p50"), ghost_to_release_s_p90=times.get("p90"),
            **self._envelope(),
            uptime_s=round(self.clock.monotonic() - self._started_mono, 1),
            sensors_healthy=sensors_healthy, sensors_unhealthy=sensors_unhealthy,
            cpu_percent=cpu_percent, rss_bytes=rss_bytes,
            connected_since=None if self.connected_since is None else iso_utc(self.connected_since),
            **describe(self.outbox.stats()),
        )
        return self._enqueue(self.topics.health, msg, MessageClass.PERIODIC)

    def publish_result(self, topic: str, fields: Mapping[str, Any], correlation: bytes | None, *,
                       sign: bool = False) -> int:
        """A command's result (committed within 50 ms); one that does not fit its schema becomes a failure.

        ``sign``: the gateway key signs the payload (without ``signature`` and ``backfill``).
        """
        try:
            msg = CommandResult.model_validate({**self._envelope(), **fields})
        except ValueError as exc:
            msg = CommandResult.model_validate({**self._envelope(), **fields, "ok": False, "result": None, "error": {
                "code": "failed", "message": f"gateway error: the result could not be encoded ({type(exc).__name__})"}})
        if sign and self.signer is not None:
            signed = msg.model_dump(mode="json", exclude={"signature", "backfill"})
            msg = msg.model_copy(update={"signature": GatewaySignature.model_validate(dict(self.signer(signed)))})
        return self._enqueue(topic, msg, MessageClass.RECORD, urgent=True, correlation=correlation)

    def publish_audit_head(self, head: Mapping[str, Any]) -> None:
        """The retained ``audit/head`` (edge_agent.trust.gateway.GatewayTrust.head_document)."""
        msg = AuditHead.model_validate({**self._envelope(), **head})
        self.outbox.put_retained(self.topics.audit_head, msg.model_dump_json().encode())

    async def status(self, state: str) -> bytes:
        """The retained ``status`` payload (birth, last will, clean shutdown), numbered without an outbox row."""
        msg = Status(**self._envelope(await self.outbox.durable_seq()), state=state,  # type: ignore[arg-type]
                     version=self.version, config_hash=self.config_hash, started_at=iso_utc(self._started_wall))
        return msg.model_dump_json().encode()


def significant_change(old: ZoneView, new: ZoneView) -> bool:
    """Worth a summary before the interval: people or free seats moved by 2 and 10 %, or quality changed."""
    step = max(2.0, 0.1 * max(new.seats_total, 1))
    if old.people.value is not None and new.people.value is not None:
        if abs(new.people.value - old.people.value) >= step:
            return True
    elif old.people.value != new.people.value:
        return True
    if abs(new.free - old.free) >= step or new.occupancy_healthy != old.occupancy_healthy:
        return True
    pairs = ((old.people, new.people), (old.lux, new.lux), (old.co2, new.co2), (old.temperature, new.temperature))
    return any(a.quality != b.quality for a, b in pairs)

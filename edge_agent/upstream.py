"""What the daemon tells central systems, and the one interface it tells it through.

:class:`Upstream` is everything the floor's parts publish: the controller (seat states, zone
summaries, rule events), the arbiter's reports (actuations, missed deadlines, expired overrides),
the operations (overrides, calibrations, reloads), the forecast loop and the health loop. The
MQTT uplink (:class:`edge_agent.sync.uplink.Uplink`) implements it; each call only enqueues.

:class:`FloorReports` turns what the arbiter and the sensor pollers notice into those messages,
and remembers the last actuation for ``edge-agent status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from drivers.ports import Clock
from edge_agent.actuation.arbiter import ArbiterEvent
from edge_agent.availability import ZoneAvailability
from edge_agent.config import SiteConfig
from edge_agent.sync.messages import iso_utc
from rules.state import SeatView, ZoneView

#: How bad each of the arbiter's events is (docs/mqtt.md, ``event/{kind}``).
EVENT_SEVERITY = {"deadline_missed": "warning", "output_failed": "error", "output_recovered": "info",
                  "override_expired": "info"}


class Upstream(Protocol):
    """Everything the gateway publishes; every method enqueues and returns at once."""

    def publish_seat_state(self, seat: SeatView) -> int | None: ...

    def publish_zone_summary(self, zone: ZoneView, *, force: bool = False) -> int | None: ...

    def publish_availability(self, zone: ZoneAvailability) -> int: ...

    def publish_event(self, kind: str, data: Mapping[str, Any], *, severity: str = "info") -> int: ...

    def publish_actuation(self, record: Mapping[str, Any]) -> int: ...

    def publish_forecast(self, zone_id: str, forecast: Mapping[int, tuple[float, float, float]]) -> int: ...

    def publish_health(self, *, sensors_healthy: int, sensors_unhealthy: int, cpu_percent: float | None = None,
                       rss_bytes: int | None = None, ghosts: Mapping[str, Any] | None = None) -> int: ...


class FloorReports:
    """The arbiter's and the pollers' news, upstream (see module docstring)."""

    def __init__(self, cfg: SiteConfig, upstream: Upstream | None, clock: Clock) -> None:
        self.upstream = upstream
        self.clock = clock
        self.last_actuation: dict[str, Any] = {}
        self._sensors = {s.id: s for s in cfg.sensors}

    def arbiter_event(self, event: ArbiterEvent) -> None:
        doc = event.as_dict()
        if event.kind == "actuation":
            self.last_actuation = {**doc, "wall": self.clock.time()}
        if self.upstream is None:
            return
        if event.kind == "actuation":
            self.upstream.publish_actuation({
                "actuator": event.actuator, "kind": event.intent_kind.value, "old": event.old, "new": event.new,
                "rule_id": event.rule_id, "priority": doc["priority"] or "automation",
                "latency_ms": None if event.latency_s is None else round(event.latency_s * 1000.0, 1),
                "reason": event.detail,
            })
        else:
            self.upstream.publish_event(event.kind, {k: v for k, v in doc.items() if k != "t"},
                                        severity=EVENT_SEVERITY.get(event.kind, "info"))

    def sensor_health(self, sensor_id: str, healthy: bool, reason: str) -> None:
        """A sensor turned unhealthy (``sensor_fault``) or healthy again after a fault (``sensor_recovered``)."""
        if self.upstream is None:
            return
        sensor = self._sensors.get(sensor_id)
        data: dict[str, Any] = {"sensor": sensor_id, "since": iso_utc(self.clock.time())}
        if sensor is not None:
            data.update(kind=sensor.kind, zone=sensor.zone)
        if healthy:
            self.upstream.publish_event("sensor_recovered", data)
        else:
            self.upstream.publish_event("sensor_fault", {**data, "reason": reason}, severity="warning")

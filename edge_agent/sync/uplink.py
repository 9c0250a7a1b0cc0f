"""The uplink: one supervised MQTT 5 connection that drains the outbox and takes commands.

``async with Uplink(cfg, outbox, clock, target, version=..., config_hash=...) as uplink:`` starts
the connection task; the ``publish_*`` methods only enqueue into the outbox and return the
message's sequence number, so sensing and actuation never wait on the network.

Every (re)connect runs the same script, in this order:

1. connect with a retained last will ``status = offline``, clean start, TLS and credentials;
2. subscribe to ``cmd/+`` (and Home Assistant's topics when discovery is on);
3. publish the birth ``status = online``, then every retained seat state from the outbox's
   current-state table, then HA discovery configs;
4. live data: everything committed from now on, in sequence order;
5. backfill: the backlog committed before this connect, once live data has caught up, in sequence
   order, paced at ``[mqtt] replay_rate_per_s``, each payload flagged ``backfill: true``.

A failed session is retried with exponential backoff and jitter; a refused login (bad user name or
password, not authorised) waits ``auth_backoff_s`` (minutes) so a misconfigured gateway does not
hammer the broker. Library errors from aiomqtt/paho stay inside this module.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel

from drivers.errors import EdgeError, SyncError
from edge_agent.config import SiteConfig
from edge_agent.sync.commands import CommandProcessor, CommandTarget, ResultCache, SetOverride
from edge_agent.sync.connection import Backoff, read_credentials, tls_context
from edge_agent.sync.discovery import HA_STATUS, discovery_messages, light_level
from edge_agent.sync.messages import (
    Actuation,
    CommandResult,
    Event,
    ForecastPoint,
    Health,
    Measure,
    SeatState,
    Status,
    Topics,
    ZoneForecast,
    ZoneSummary,
    assert_minimum_necessary,
    check_segment,
    iso_utc,
)
from edge_agent.sync.outbox import MessageClass, Outbox, Row, describe
from rules.state import Measure as ViewMeasure
from rules.state import SeatView, ZoneView

log = logging.getLogger(__name__)

AUTH_REFUSED = frozenset({4, 5, 134, 135})  # MQTT 3.1.1 and MQTT 5 CONNACK codes for bad login
_BACKFILL_FALSE = b'"backfill":false'


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    @property
    def synced(self) -> bool: ...


def mark_backfill(payload: bytes) -> bytes:
    """Flip the envelope's backfill flag without re-encoding.

    The envelope fields are serialised first and none of the earlier ones can contain this byte
    string, so the first occurrence is always the envelope's own flag.
    """
    return payload.replace(_BACKFILL_FALSE, b'"backfill":true', 1)


def _measure(m: ViewMeasure) -> Measure:
    return Measure(value=m.value, quality=m.quality.value)


class Uplink:
    """MQTT 5 connection + outbox drain + command intake for one gateway."""

    def __init__(
        self,
        cfg: SiteConfig,
        outbox: Outbox,
        clock: Clock,
        command_target: CommandTarget,
        *,
        version: str,
        config_hash: str,
        max_request_bytes: int = 512 * 1024,
        backoff: Backoff | None = None,
        auth_backoff_s: float = 300.0,
        window: int = 100,
        inflight: int = 20,
        timeout_s: float = 15.0,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.clock = clock
        self.target = command_target
        self.version = version
        self.config_hash = config_hash
        self.topics = Topics(cfg.site.id, cfg.site.gateway)
        self.backoff = backoff or Backoff()
        self.auth_backoff_s = auth_backoff_s
        self.window = window
        self.inflight = inflight
        self.timeout_s = timeout_s
        self.replay_rate_per_s = cfg.mqtt.replay_rate_per_s
        self.commands = CommandProcessor(command_target, ResultCache(outbox.call), max_request_bytes=max_request_bytes)
        self.connected = asyncio.Event()
        self.sessions = 0  # successful connects, for tests and `edge-agent status`
        self.attempts = 0  # connection attempts, successful or not
        self.last_error: str | None = None
        self._started_wall = clock.time()
        self._started_mono = clock.monotonic()
        self._connected_wall: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._retained_changes: asyncio.Queue[dict[str, bytes]] = asyncio.Queue()
        self._collect_retained = False
        self._live_idle = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_summary: dict[str, tuple[float, ZoneView]] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Uplink:
        await self.commands.cache.open()
        self.outbox.add_listener(self._on_commit)
        self._task = asyncio.get_running_loop().create_task(self.run(), name="uplink")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def abandon(self) -> None:
        """Drop the connection as a power cut would (the broker then publishes the last will)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._client is not None:
            sock = self._client._client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()  # no DISCONNECT packet: the broker must fire the will
        self.outbox.abandon()

    async def run(self) -> None:
        """Connect, serve, and reconnect forever (until cancelled)."""
        while True:
            began = self.clock.monotonic()
            try:
                await self._session()
                delay = self.backoff.next_delay()
            except MqttConnectError as exc:
                code = getattr(exc.rc, "value", exc.rc)
                if code in AUTH_REFUSED:
                    self.last_error = f"broker refused the login ({exc}); check {self.cfg.broker.credentials_file}"
                    log.error("%s; next attempt in %.0f s", self.last_error, self.auth_backoff_s)
                    delay = self.auth_backoff_s
                else:
                    delay = self._retry_delay(began, f"broker refused the connection: {exc}")
            except (aiomqtt.MqttError, OSError) as exc:
                delay = self._retry_delay(began, f"MQTT connection lost or failed: {exc}")
            except SyncError as exc:
                self.last_error = str(exc)
                log.error("%s; next attempt in %.0f s", exc, self.auth_backoff_s)
                delay = self.auth_backoff_s
            except Exception as exc:  # a bug must not end the uplink for good: say it, back off, retry
                log.exception("uplink session failed unexpectedly")
                delay = self._retry_delay(began, f"uplink error: {type(exc).__name__}: {exc}")
            finally:
                self._end_session()
            await asyncio.sleep(delay)

    def _retry_delay(self, began: float, why: str) -> float:
        if self.clock.monotonic() - began > 30.0:
            self.backoff.reset()  # it was a good session: start the backoff afresh
        delay = self.backoff.next_delay()
        self.last_error = why
        log.warning("%s; reconnecting in %.1f s", why, delay)
        return delay

    def _end_session(self) -> None:
        self.connected.clear()
        self._live_idle.clear()
        self._collect_retained = False
        self._client = None
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    @property
    def connected_since(self) -> float | None:
        """Wall time of the current session's connect (None before the first)."""
        return self._connected_wall

    # -- publishing API (enqueue only) -----------------------------------------------------------

    def _envelope(self, seq: int | None = None) -> dict[str, Any]:
        seq = self.outbox.next_seq() if seq is None else seq
        return {
            "seq": seq,
            "msg_id": self.outbox.msg_id(self.cfg.site.gateway, seq),
            "ts": iso_utc(self.clock.time()),
            "clock_synced": bool(self.clock.synced),
        }

    def _enqueue(
        self,
        topic: str,
        message: BaseModel,
        klass: MessageClass,
        *,
        urgent: bool = False,
        correlation: bytes | None = None,
    ) -> int:
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
            **self._envelope(),
            zone=zone.id,
            people=_measure(zone.people),
            seats_total=zone.seats_total,
            free=zone.free,
            occupied=zone.occupied,
            away=zone.away,
            ghost=zone.ghost,
            unknown=zone.unknown,
            lux=_measure(zone.lux),
            temperature=_measure(zone.temperature),
            humidity=_measure(zone.humidity),
            co2=_measure(zone.co2),
            occupancy_healthy=zone.occupancy_healthy,
        )
        return self._enqueue(self.topics.zone_summary(zone.id), msg, MessageClass.PERIODIC)

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

    def publish_event(self, kind: str, data: Mapping[str, Any], *, severity: str = "info") -> int:
        """An event (fault, calibration, override, missed deadline...); ``data`` is checked for privacy."""
        check_segment(kind, "event kind")
        msg = Event.model_validate({**self._envelope(), "kind": kind, "severity": severity, "data": dict(data)})
        return self._enqueue(self.topics.event(kind), msg, MessageClass.RECORD)

    def publish_actuation(self, record: Mapping[str, Any]) -> int:
        """One applied actuation: actuator, kind, old, new, rule_id, priority, latency_ms, reason."""
        msg = Actuation.model_validate({**self._envelope(), **record})
        return self._enqueue(self.topics.actuation, msg, MessageClass.RECORD)

    def publish_health(
        self,
        *,
        sensors_healthy: int,
        sensors_unhealthy: int,
        cpu_percent: float | None = None,
        rss_bytes: int | None = None,
    ) -> int:
        """Gateway health; outbox depth, age and drops are filled in here."""
        msg = Health(
            **self._envelope(),
            uptime_s=round(self.clock.monotonic() - self._started_mono, 1),
            sensors_healthy=sensors_healthy,
            sensors_unhealthy=sensors_unhealthy,
            cpu_percent=cpu_percent,
            rss_bytes=rss_bytes,
            connected_since=None if self._connected_wall is None else iso_utc(self._connected_wall),
            **describe(self.outbox.stats()),
        )
        return self._enqueue(self.topics.health, msg, MessageClass.PERIODIC)

    # -- the session ----------------------------------------------------------------------------

    def _status(self, state: str, seq: int) -> bytes:
        msg = Status(
            **self._envelope(seq),
            state=state,  # type: ignore[arg-type]
            version=self.version,
            config_hash=self.config_hash,
            started_at=iso_utc(self._started_wall),
        )
        return msg.model_dump_json().encode()

    async def _session(self) -> None:
        self.attempts += 1
        b = self.cfg.broker
        creds = read_credentials(b.credentials_file) if b.credentials_file is not None else None
        tls = tls_context(b.tls) if b.tls is not None else None
        will = aiomqtt.Will(self.topics.status, self._status("offline", await self.outbox.durable_seq()), 1, True)
        v5 = b.protocol == "5"
        # Commands sent while offline are not queued (see docs/mqtt.md): a clean session either way.
        session: dict[str, Any] = {"clean_start": True} if v5 else {"clean_session": True}
        client = aiomqtt.Client(
            b.host,
            b.port,
            username=None if creds is None else creds.username,
            password=None if creds is None else creds.password,
            identifier=b.client_id or f"edge-agent-{self.cfg.site.id}-{self.cfg.site.gateway}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will,
            keepalive=b.keepalive_s,
            tls_context=tls,
            max_inflight_messages=self.inflight,
            timeout=self.timeout_s,
            **session,
        )
        client.pending_calls_threshold = 4 * self.window  # our windows bound them; no warning spam
        async with client:
            self._client = client
            try:
                await self._serve(client)
            except asyncio.CancelledError:
                await self._say_offline(client)
                raise

    async def _serve(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self.topics.commands, qos=1)
        if self.cfg.mqtt.homeassistant_discovery:
            await client.subscribe(HA_STATUS, qos=1)
            await client.subscribe(f"{self.topics.root}/ha/zone/+/light/set", qos=1)
        boundary = self.outbox.committed_high + 1
        self._collect_retained = True
        while not self._retained_changes.empty():
            self._retained_changes.get_nowait()
        await client.publish(self.topics.status, self._status("online", await self.outbox.durable_seq()), 1, True)
        await asyncio.gather(*(client.publish(t, p, 1, True) for t, p in (await self.outbox.retained()).items()))
        if self.cfg.mqtt.homeassistant_discovery:
            await self._publish_discovery(client)
        self._connected_wall = self.clock.time()
        self.sessions += 1
        self.connected.set()
        log.info("connected to %s:%d; backlog below seq %d", self.cfg.broker.host, self.cfg.broker.port, boundary)
        await _first_failure(
            self._live(client, boundary),
            self._backfill(client, boundary),
            self._receive(client),
            self._retained_live(client),
        )

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """A clean disconnect does not fire the will, so say offline ourselves."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError, SyncError):
            async with asyncio.timeout(2.0):
                await client.publish(
                    self.topics.status, self._status("offline", await self.outbox.durable_seq()), 1, True
                )

    async def _spawn(self, client: aiomqtt.Client, row: Row, backfill: bool, inflight: collections.deque[Any]) -> None:
        while inflight and inflight[0].done():
            inflight.popleft().result()
        if len(inflight) >= self.window:
            await inflight.popleft()
        payload = mark_backfill(row.payload) if backfill else row.payload
        props = None
        if row.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = row.correlation
        task = asyncio.get_running_loop().create_task(self._send(client, row.seq, row.topic, payload, props))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        inflight.append(task)

    async def _send(
        self, client: aiomqtt.Client, seq: int, topic: str, payload: bytes, props: Properties | None
    ) -> None:
        await client.publish(topic, payload, 1, False, props, timeout=self.timeout_s)
        self.outbox.ack(seq)

    async def _live(self, client: aiomqtt.Client, boundary: int) -> None:
        cursor = boundary - 1
        inflight: collections.deque[asyncio.Task[None]] = collections.deque()
        while True:
            high = self.outbox.committed_high
            rows = await self.outbox.read(after=cursor, limit=self.window)
            for row in rows:
                await self._spawn(client, row, False, inflight)
                cursor = row.seq
            if rows:
                continue
            cursor = max(cursor, high)
            self._live_idle.set()
            while inflight and inflight[0].done():
                inflight.popleft().result()
            await self.outbox.wait_committed(cursor, 5.0)

    async def _backfill(self, client: aiomqtt.Client, boundary: int) -> None:
        await self._live_idle.wait()  # live data first
        cursor, sent = 0, 0
        started = self.clock.monotonic()
        inflight: collections.deque[asyncio.Task[None]] = collections.deque()
        while rows := await self.outbox.read(after=cursor, before=boundary, limit=200):
            for row in rows:
                ahead = started + sent / self.replay_rate_per_s - self.clock.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                await self._spawn(client, row, True, inflight)
                cursor, sent = row.seq, sent + 1
        while inflight:
            await inflight.popleft()
        if sent:
            log.info("backfill done: %d message(s) replayed", sent)
        await asyncio.Event().wait()  # stay in the session's task set

    async def _retained_live(self, client: aiomqtt.Client) -> None:
        while True:
            changes = await self._retained_changes.get()
            await asyncio.gather(*(client.publish(t, p, 1, True, timeout=self.timeout_s) for t, p in changes.items()))

    def _on_commit(self, high: int, retained: dict[str, bytes]) -> None:
        if retained and self._collect_retained:
            self._retained_changes.put_nowait(retained)

    # -- incoming -------------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        cmd_prefix = f"{self.topics.root}/cmd/"
        ha_prefix = f"{self.topics.root}/ha/zone/"
        async for message in client.messages:
            topic = message.topic.value
            raw = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
            if topic.startswith(cmd_prefix):
                await self._command(topic.removeprefix(cmd_prefix), raw, message.properties)
            elif topic == HA_STATUS and raw.strip() == b"online":
                await self._publish_discovery(client)
            elif topic.startswith(ha_prefix) and topic.endswith("/light/set"):
                await self._ha_light(topic.removeprefix(ha_prefix).split("/")[0], raw)

    async def _command(self, name: str, raw: bytes, props: Properties | None) -> None:
        try:
            outcome = await self.commands.handle(name, raw)
            fields = outcome.to_fields()
        except Exception as exc:  # the result cache failed, or a bug: answer, say so, keep the session
            log.exception("command %s could not be processed", name)
            fields = {"command": name, "request_id": None, "ok": False, "result": None,
                      "error": {"code": "failed", "message": f"gateway error: {type(exc).__name__}: {exc}"}}
        response = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        topic = response if isinstance(response, str) and usable_response_topic(response) else \
            self.topics.command_result(name)
        if not isinstance(correlation, bytes) or len(correlation) > 65535:
            correlation = None
        try:
            msg = CommandResult.model_validate({**self._envelope(), **fields})
        except Exception as exc:  # a result that does not fit its schema: still exactly one answer
            log.exception("command %s: its result does not fit the result schema", name)
            msg = CommandResult.model_validate({**self._envelope(), **fields, "ok": False, "result": None, "error": {
                "code": "failed", "message": f"gateway error: the result could not be encoded ({type(exc).__name__})"}})
        self._enqueue(topic, msg, MessageClass.RECORD, urgent=True, correlation=correlation)

    async def _ha_light(self, zone: str, raw: bytes) -> None:
        level = light_level(raw)
        if level is None:
            log.warning("ignored an unreadable Home Assistant light command for zone %s: %r", zone, raw[:100])
            return
        try:
            await self.target.set_override(SetOverride(target_kind="zone", target=zone, level=level, duration_s=None))
        except (EdgeError, ValueError) as exc:  # ValueError: an id that is not a valid zone id
            log.warning("Home Assistant light command for zone %s refused: %s", zone, exc)
        except Exception:  # a bug must not end the session
            log.exception("Home Assistant light command for zone %s failed", zone)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        msgs = discovery_messages(self.cfg, self.topics, self.version)
        await asyncio.gather(*(client.publish(t, p, 1, True, timeout=self.timeout_s) for t, p in msgs))


def usable_response_topic(topic: object) -> bool:
    """An MQTT 5 response topic the result can go to: a topic name (no wildcards, no NUL, not a
    ``$`` broker topic, within MQTT's 65535 bytes). Anything else falls back to ``cmd/{name}/result``,
    so a bad property can never make a result unsendable (it would block the outbox's stream)."""
    if not isinstance(topic, str) or not topic or topic.startswith("$"):
        return False
    if any(c in topic for c in "+#\x00"):
        return False
    try:
        return len(topic.encode("utf-8")) <= 65535
    except UnicodeEncodeError:  # a lone surrogate
        return False


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


async def _first_failure(*coros: Coroutine[Any, Any, None]) -> None:
    """Run the session's tasks until one fails; cancel the rest and re-raise its error."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""The connection to the broker: one MQTT 5 session at a time, kept up for as long as the gateway runs.

:class:`BrokerSession` connects with a clean start, TLS and credentials, and a retained last
will ``status = offline`` registered at connect time; hands the connected client to the uplink's
session script (which publishes the birth ``status = online``); and when the session ends,
reconnects with exponential backoff and jitter. A refused login (bad user name or password, not
authorised) waits ``auth_backoff_s`` so a misconfigured gateway does not hammer the broker. A
clean stop says ``offline`` itself (a clean disconnect does not fire the will); :meth:`abandon`
drops the connection as a power cut would, so the broker fires it. aiomqtt's and paho's errors
stay inside this module and the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from drivers.errors import SyncError
from edge_agent.config import SiteConfig
from edge_agent.sync.connection import Backoff, read_credentials, tls_context
from edge_agent.sync.messages import Topics

log = logging.getLogger(__name__)

AUTH_REFUSED = frozenset({4, 5, 134, 135})  # MQTT 3.1.1 and MQTT 5 CONNACK codes for bad login


class Clock(Protocol):
    def monotonic(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


#: The retained ``status`` payload for a state ("online", "offline").
StatusPayload = Callable[[str], Awaitable[bytes]]
#: The session script: runs on a connected client until the session fails.
Serve = Callable[[aiomqtt.Client], Awaitable[None]]


class BrokerSession:
    """Connect, serve, reconnect (see module docstring)."""

    def __init__(self, cfg: SiteConfig, clock: Clock, *, status: StatusPayload, serve: Serve,
                 backoff: Backoff | None = None, auth_backoff_s: float = 300.0, inflight: int = 20,
                 pending_calls: int = 400, timeout_s: float = 15.0) -> None:
        self.cfg = cfg
        self.clock = clock
        self.status = status
        self.serve = serve
        self.backoff = backoff or Backoff()
        self.auth_backoff_s = auth_backoff_s
        self.inflight = inflight
        self.pending_calls = pending_calls
        self.timeout_s = timeout_s
        self.topics = Topics(cfg.site.id, cfg.site.gateway)
        self.connected = asyncio.Event()
        self.sessions = 0  # successful connects, for tests and `edge-agent status`
        self.attempts = 0  # connection attempts, successful or not
        self.last_error: str | None = None
        self.on_end: Callable[[], None] = lambda: None
        self._client: aiomqtt.Client | None = None

    def up(self) -> None:
        """The session script is through its birth: the gateway is connected."""
        self.sessions += 1
        self.connected.set()

    async def run(self) -> None:
        """Connect, serve, and reconnect forever (until cancelled)."""
        while True:
            began = self.clock.monotonic()
            try:
                await self._once()
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
                self.connected.clear()
                self._client = None
                self.on_end()
            await self.clock.sleep(delay)

    def _retry_delay(self, began: float, why: str) -> float:
        if self.clock.monotonic() - began > 30.0:
            self.backoff.reset()  # it was a good session: start the backoff afresh
        delay = self.backoff.next_delay()
        self.last_error = why
        log.warning("%s; reconnecting in %.1f s", why, delay)
        return delay

    async def _once(self) -> None:
        self.attempts += 1
        b = self.cfg.broker
        creds = read_credentials(b.credentials_file) if b.credentials_file is not None else None
        tls = tls_context(b.tls) if b.tls is not None else None
        will = aiomqtt.Will(self.topics.status, await self.status("offline"), 1, True)
        v5 = b.protocol == "5"
        # Commands sent while offline are not queued (see docs/mqtt.md): a clean session either way.
        session: dict[str, Any] = {"clean_start": True} if v5 else {"clean_session": True}
        client = aiomqtt.Client(
            b.host, b.port, username=None if creds is None else creds.username,
            password=None if creds is None else creds.password,
            identifier=b.client_id or f"edge-agent-{self.cfg.site.id}-{self.cfg.site.gateway}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311, will=will,
            keepalive=b.keepalive_s, tls_context=tls, max_inflight_messages=self.inflight, timeout=self.timeout_s,
            **session,
        )
        client.pending_calls_threshold = self.pending_calls  # the stream's windows bound them; no warning spam
        async with client:
            self._client = client
            try:
                await self.serve(client)
            except asyncio.CancelledError:
                await self._say_offline(client)
                raise

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """A clean disconnect does not fire the will, so say offline ourselves."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError, SyncError):
            async with asyncio.timeout(2.0):
                await client.publish(self.topics.status, await self.status("offline"), 1, True)

    def abandon(self) -> None:
        """Close the socket without a DISCONNECT packet: the broker must fire the last will."""
        if self._client is not None:
            sock = self._client._client.socket()  # aiomqtt keeps paho's client private; a power cut needs it
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


async def first_failure(*coros: Coroutine[Any, Any, None]) -> None:
    """Run a session's tasks until one fails; cancel the rest and re-raise its error."""
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

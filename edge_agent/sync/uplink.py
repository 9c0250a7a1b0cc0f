"""The uplink: the gateway's MQTT 5 link, assembled from its four parts.

``async with Uplink(cfg, outbox, clock, target, version=..., config_hash=...) as uplink:`` starts
the connection; the ``publish_*`` methods (:class:`~edge_agent.sync.publisher.Publisher`) only
enqueue into the outbox and return the message's sequence number, so sensing and actuation never
wait on the network. The parts:

* :mod:`edge_agent.sync.session`: the connection (backoff, last will, reconnects);
* :mod:`edge_agent.sync.stream`: the outbound stream (retained state, live data, backfill);
* :mod:`edge_agent.sync.intake`: commands in, exactly one result each;
* :mod:`edge_agent.sync.discovery`: Home Assistant (discovery configs, light commands).

Every (re)connect runs the same script, in this order: subscribe to ``cmd/+`` (and Home
Assistant's topics when discovery is on); publish the birth ``status = online``; republish every
retained seat state; publish the discovery configs; then live data, the backlog once live data
has caught up, and incoming requests, until the session fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt

from edge_agent.config import SiteConfig
from edge_agent.sync.commands import CommandGuard, CommandProcessor, CommandTarget, ResultCache
from edge_agent.sync.connection import Backoff
from edge_agent.sync.discovery import HomeAssistantAdapter
from edge_agent.sync.intake import CommandIntake
from edge_agent.sync.outbox import Outbox
from edge_agent.sync.publisher import Clock, Publisher
from edge_agent.sync.session import BrokerSession, first_failure
from edge_agent.sync.stream import OutboxStream

log = logging.getLogger(__name__)


class Uplink(Publisher):
    """MQTT 5 connection + outbox stream + command intake + Home Assistant for one gateway."""

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
        guard: CommandGuard | None = None,
    ) -> None:
        super().__init__(cfg, outbox, clock, version=version, config_hash=config_hash)
        cache = ResultCache(outbox.call, wall=clock.time)
        self.commands = CommandProcessor(command_target, cache, max_request_bytes=max_request_bytes,
                                         guard=guard)
        self.intake = CommandIntake(self.commands, self.topics, self.publish_result)
        self.stream = OutboxStream(outbox, clock, replay_rate_per_s=cfg.mqtt.replay_rate_per_s, window=window,
                                   timeout_s=timeout_s)
        self.homeassistant = HomeAssistantAdapter(cfg, self.topics, version, command_target, timeout_s=timeout_s,
                                                  guard=guard)
        self.session = BrokerSession(cfg, clock, status=self.status, serve=self._serve, backoff=backoff,
                                     auth_backoff_s=auth_backoff_s, inflight=inflight, pending_calls=4 * window,
                                     timeout_s=timeout_s)
        self.session.on_end = self.stream.end
        self._task: asyncio.Task[None] | None = None

    # -- what the daemon, `edge-agent status` and tests read ------------------------------------
    @property
    def connected(self) -> asyncio.Event:
        return self.session.connected

    @property
    def sessions(self) -> int:
        return self.session.sessions

    @property
    def attempts(self) -> int:
        return self.session.attempts

    @property
    def last_error(self) -> str | None:
        return self.session.last_error

    # -- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> Uplink:
        await self.commands.cache.open()
        self.stream.attach()
        self._task = asyncio.get_running_loop().create_task(self.session.run(), name="uplink")
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
        self.session.abandon()
        self.outbox.abandon()

    # -- one session ----------------------------------------------------------------------------
    async def _serve(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self.topics.commands, qos=1)
        for topic in self.homeassistant.subscriptions():
            await client.subscribe(topic, qos=1)
        boundary = self.stream.begin()
        await client.publish(self.topics.status, await self.status("online"), 1, True)
        await self.stream.republish_retained(client)
        await self.homeassistant.publish_configs(client)
        self.connected_since = self.clock.time()
        self.session.up()
        log.info("connected to %s:%d; backlog below seq %d", self.cfg.broker.host, self.cfg.broker.port, boundary)
        await first_failure(*self.stream.tasks(client, boundary), self._receive(client))

    async def _receive(self, client: aiomqtt.Client) -> None:
        cmd_prefix = f"{self.topics.root}/cmd/"
        async for message in client.messages:
            topic = message.topic.value
            raw = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
            if topic.startswith(cmd_prefix):
                await self.intake.handle(topic.removeprefix(cmd_prefix), raw, message.properties)
            else:
                await self.homeassistant.handle(client, topic, raw)

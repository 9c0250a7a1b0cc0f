"""The outbound stream of one MQTT session: retained state, live data, then the backlog.

Each session of the uplink runs one :class:`OutboxStream` over the connected client:

1. :meth:`begin` notes the session's boundary (the outbox's committed high-water mark) and
   republishes every retained seat state from the outbox's current-state table;
2. live data: everything committed from now on, in sequence order, with at most ``window``
   publishes in flight (a row is deleted once the broker's PUBACK arrives);
3. backfill: the backlog committed before the boundary, once live data has caught up, in
   sequence order, paced at ``replay_rate_per_s``, each payload flagged ``backfill: true``;
4. retained changes (seat states) as their commits land.

A publish that fails ends the session (the connection reconnects and the stream starts over from
what the outbox still holds), so nothing is lost and nothing is sent twice on purpose.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.sync.outbox import Outbox, Row

log = logging.getLogger(__name__)

_BACKFILL_FALSE = b'"backfill":false'


class Clock(Protocol):
    def monotonic(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


def mark_backfill(payload: bytes) -> bytes:
    """Flip the envelope's backfill flag without re-encoding.

    The envelope fields are serialised first and none of the earlier ones can contain this byte
    string, so the first occurrence is always the envelope's own flag.
    """
    return payload.replace(_BACKFILL_FALSE, b'"backfill":true', 1)


class OutboxStream:
    """Delivers the outbox over one session at a time (see module docstring)."""

    def __init__(self, outbox: Outbox, clock: Clock, *, replay_rate_per_s: float, window: int = 100,
                 timeout_s: float = 15.0) -> None:
        self.outbox = outbox
        self.clock = clock
        self.replay_rate_per_s = replay_rate_per_s
        self.window = window
        self.timeout_s = timeout_s
        self.replayed = 0  # backlog messages sent in the last session
        self._retained_changes: asyncio.Queue[dict[str, bytes]] = asyncio.Queue()
        self._collect_retained = False
        self._live_idle = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        """Hear about the outbox's commits (retained changes are sent as they land)."""
        self.outbox.add_listener(self._on_commit)

    def begin(self) -> int:
        """A session starts: from here on retained changes are collected; returns the backlog's boundary
        (what is committed now is backlog, what comes later is live)."""
        self._collect_retained = True
        while not self._retained_changes.empty():
            self._retained_changes.get_nowait()
        return self.outbox.committed_high + 1

    async def republish_retained(self, client: aiomqtt.Client) -> None:
        """Every retained state's current value (seat states), after the birth message."""
        await asyncio.gather(*(client.publish(t, p, 1, True) for t, p in (await self.outbox.retained()).items()))

    def tasks(self, client: aiomqtt.Client, boundary: int) -> list[Coroutine[Any, Any, None]]:
        """The session's stream coroutines: live, backfill, retained changes (run until one fails)."""
        return [self._live(client, boundary), self._backfill(client, boundary), self._retained_live(client)]

    def end(self) -> None:
        """The session is over: drop in-flight publishes (their rows stay in the outbox)."""
        self._live_idle.clear()
        self._collect_retained = False
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

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

    async def _send(self, client: aiomqtt.Client, seq: int, topic: str, payload: bytes,
                    props: Properties | None) -> None:
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
                    await self.clock.sleep(ahead)
                await self._spawn(client, row, True, inflight)
                cursor, sent = row.seq, sent + 1
        while inflight:
            await inflight.popleft()
        self.replayed = sent
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

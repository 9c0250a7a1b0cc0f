"""The outbound stream of one MQTT session: retained state, live data, then the backlog.

Each session of the uplink runs one :class:`OutboxStream` over the connected client:

1. :meth:`begin` notes the session's boundary (the outbox's committed high-water mark) and
   republishes every retained seat state from the outbox's current-state table;
2. live data: everything committed from now on, in sequence order, with at most ``window``
   publishes in flight (a row is acknowledged in the outbox, and deleted with its next commit,
   once the broker's PUBACK arrives; a PUBACK missing for ``timeout_s`` ends the session);
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
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as mqtt
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


def pending_publishes(client: aiomqtt.Client) -> dict[int, Any] | None:
    """aiomqtt's table of publishes awaiting their PUBACK (message id -> object with ``set()``), if
    this aiomqtt has it (2.x does); None makes the stream use ``Client.publish`` instead."""
    table = getattr(client, "_pending_publishes", None)
    return table if isinstance(table, dict) else None


class _Delivery:
    """A row's QoS 1 publish awaiting its PUBACK.

    Sits in aiomqtt's table of pending publishes, whose on_publish callback calls :meth:`set`: the
    row is acknowledged in the outbox right there, with no task, event or timer per message (the
    per-publish cost of ``aiomqtt.Client.publish``, which is most of what a publish costs beyond
    paho itself). A future exists only when the stream has to wait for this one.
    """

    __slots__ = ("_ack", "_waiter", "done", "sent", "seq")

    def __init__(self, seq: int, ack: Callable[[int], None], sent: float) -> None:
        self.seq = seq
        self.sent = sent
        self.done = False
        self._ack = ack
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        if self.done:
            return
        self.done = True
        self._ack(self.seq)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def waiter(self) -> asyncio.Future[None]:
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
            if self.done:
                self._waiter.set_result(None)
        return self._waiter


class _TaskDelivery:
    """The same, over aiomqtt's own publish call (when its pending table is not there)."""

    __slots__ = ("sent", "seq", "task")

    def __init__(self, task: asyncio.Task[None], seq: int) -> None:
        self.task = task
        self.sent = task.get_loop().time()
        self.seq = seq

    @property
    def done(self) -> bool:
        if self.task.done():
            self.task.result()  # a failed publish ends the session
            return True
        return False

    def waiter(self) -> asyncio.Future[None]:
        return self.task


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
        """Publish one row at QoS 1 once the window has room; its PUBACK acknowledges it in the outbox."""
        while inflight and inflight[0].done:
            inflight.popleft()
        while len(inflight) >= self.window:
            await self._oldest_acked(inflight)
        payload = mark_backfill(row.payload) if backfill else row.payload
        props = None
        if row.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = row.correlation
        pending = pending_publishes(client)
        if pending is None:  # an aiomqtt without the table this relies on: its own publish call
            task = asyncio.get_running_loop().create_task(self._send(client, row.seq, row.topic, payload, props))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            inflight.append(_TaskDelivery(task, row.seq))
            return
        info = client._client.publish(row.topic, payload, 1, False, props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        delivery = _Delivery(row.seq, self.outbox.ack, asyncio.get_running_loop().time())
        pending[info.mid] = delivery  # aiomqtt's on_publish pops it and calls set() on the PUBACK
        inflight.append(delivery)

    async def _oldest_acked(self, inflight: collections.deque[Any]) -> None:
        """Wait for the oldest publish in flight to be acknowledged (the session fails past ``timeout_s``)."""
        oldest = inflight[0]
        left = oldest.sent + self.timeout_s - asyncio.get_running_loop().time()  # loop time, as aiomqtt's timeouts
        try:
            await asyncio.wait_for(oldest.waiter(), max(left, 0.0))
        except TimeoutError:
            raise aiomqtt.MqttError(f"no PUBACK for seq {oldest.seq} within {self.timeout_s:g} s") from None
        while inflight and inflight[0].done:
            inflight.popleft()

    def _check_overdue(self, inflight: collections.deque[Any]) -> None:
        """While live data is idle: a publish unacknowledged past ``timeout_s`` ends the session."""
        while inflight and inflight[0].done:
            inflight.popleft()
        if inflight and asyncio.get_running_loop().time() - inflight[0].sent > self.timeout_s:
            raise aiomqtt.MqttError(f"no PUBACK for seq {inflight[0].seq} within {self.timeout_s:g} s")

    async def _send(self, client: aiomqtt.Client, seq: int, topic: str, payload: bytes,
                    props: Properties | None) -> None:
        await client.publish(topic, payload, 1, False, props, timeout=self.timeout_s)
        self.outbox.ack(seq)

    async def _live(self, client: aiomqtt.Client, boundary: int) -> None:
        cursor = boundary - 1
        inflight: collections.deque[Any] = collections.deque()
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
            self._check_overdue(inflight)
            await self.outbox.wait_committed(cursor, 5.0)

    async def _backfill(self, client: aiomqtt.Client, boundary: int) -> None:
        await self._live_idle.wait()  # live data first
        cursor, sent = 0, 0
        started = self.clock.monotonic()
        inflight: collections.deque[Any] = collections.deque()
        while rows := await self.outbox.read(after=cursor, before=boundary, limit=200):
            for row in rows:
                ahead = started + sent / self.replay_rate_per_s - self.clock.monotonic()
                if ahead > 0:
                    await self.clock.sleep(ahead)
                await self._spawn(client, row, True, inflight)
                cursor, sent = row.seq, sent + 1
        while inflight:
            await self._oldest_acked(inflight)
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

"""BridgeLink: the gateway's side of one RS-485 line (one per serial port).

The gateway is the only master, so the line carries one exchange at a time: a request, then the
addressed node's reply or a timeout. The link owns that turn-taking. Callers enqueue requests
with a priority; one worker sends them in priority order (actuation first, OTA last), waits for
the matching reply (same node, sequence number and type), and on silence or a damaged reply
re-queues the *same* frame (same sequence number, so the node re-sends its cached reply instead
of acting twice) after a short backoff, letting more urgent requests go first in the meantime.

Pollers (:meth:`BridgeLink.watch`) ask each node for its status at its configured rate, keep
the :class:`~firmware_bridge.registry.NodeRegistry` current, notice reboots, and drain queued
node events when a reply says some are pending. Events come out of :meth:`BridgeLink.events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from drivers.errors import BridgeError, FrameError, NodeTimeoutError
from drivers.ports import Clock

from .codec import BROADCAST, FLAG_EVENTS_PENDING, GATEWAY, MAX_NODE, MIN_NODE, Frame, FrameReader, encode_frame
from .messages import (
    DEFAULT_PROCESSING_S,
    MAX_REPLY,
    PROCESSING_S,
    EventKind,
    EventsRequest,
    GetOutput,
    HardwareKind,
    HelloInfo,
    I2CRequest,
    MsgType,
    Nack,
    NackCode,
    NodeNackError,
    NodeStatus,
    OutputState,
    SetOutput,
    parse_events,
    parse_i2c_reply,
)
from .registry import NodeRegistry
from .transport import Transport, byte_time

COBS_AND_FRAMING = 13  # header 8 + CRC 2 + COBS overhead 2 + delimiter 1
TURNAROUND_S = 0.0001  # node waits this long after our delimiter before driving the line
INTERFRAME_CHARS = 3  # idle characters between one exchange and the next

T = TypeVar("T")


class Priority(IntEnum):
    ACTUATION = 0
    SENSING = 1  # tunnelled I2C, sensor blocks
    EVENTS = 2
    POLL = 3
    OTA = 4


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """A button press, motion start/end, or ``reboot`` noticed by the link. ``t``: monotonic seconds."""

    node: int
    kind: str
    channel: int
    t: float
    seq: int = 0


class LoopClock:
    """Default clock: the event loop's time for intervals (virtual on a VirtualTimeLoop), time.time() for stamps."""

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(slots=True)
class _Job:
    node: int
    frame: Frame
    priority: int
    order: int
    future: asyncio.Future[Frame]
    attempts_left: int
    deadline: float
    not_before: float = 0.0
    attempts: int = field(default=0)


@dataclass(slots=True)
class LinkStats:
    frames_sent: int = 0
    replies: int = 0
    timeouts: int = 0
    rx_errors: int = 0  # damaged frames seen on the line
    stray: int = 0  # valid frames that matched no outstanding request (late answers, echoes)
    events_dropped: int = 0


class BridgeLink:
    """Request/response, retries, priorities and polling over one :class:`Transport`."""

    def __init__(
        self,
        transport: Transport,
        *,
        baud: int = 115200,
        clock: Clock | None = None,
        registry: NodeRegistry | None = None,
        retries: int = 8,
        actuation_retries: int = 30,
        backoff_s: float = 0.002,
        backoff_max_s: float = 0.05,
        reply_margin_s: float = 0.003,
        event_queue_size: int = 1024,
    ) -> None:
        self.transport = transport
        self.baud = baud
        self.byte_s = byte_time(baud)
        self.clock: Clock = clock or LoopClock()
        self.registry = registry or NodeRegistry()
        self.retries = retries
        self.actuation_retries = actuation_retries  # bounded by the deadline in practice
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.reply_margin_s = reply_margin_s
        self.stats = LinkStats()
        self._jobs: list[_Job] = []
        self._order = itertools.count()
        self._seq: dict[int, int] = {}
        self._wake = asyncio.Event()
        self._turn = asyncio.Lock()
        self._expect: tuple[int, int, int] | None = None
        self._reply: asyncio.Future[Frame] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pollers: dict[int, asyncio.Task[None]] = {}
        self._draining: set[int] = set()
        self._event_ack: dict[int, int] = {}
        self._events: asyncio.Queue[NodeEvent] = asyncio.Queue(event_queue_size)
        self._listeners: list[Callable[[NodeEvent], None]] = []
        self._closed = False

    # ---- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> BridgeLink:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        self._spawn(self._read_loop(), "bridge-reader")
        self._spawn(self._send_loop(), "bridge-sender")
        self._spawn(self._persist_loop(), "bridge-registry")

    async def aclose(self) -> None:
        """Stop pollers and workers, fail what is still queued, save the registry, close the transport."""
        self._closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(BridgeError("bridge link closed"))
        self._jobs.clear()
        if self.registry.state_dir is not None:
            await asyncio.to_thread(self.registry.save, self.clock.monotonic())
        await self.transport.aclose()

    def _spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- requests --------------------------------------------------------------------------
    async def request(
        self,
        node: int,
        mtype: int,
        payload: bytes = b"",
        *,
        priority: int = Priority.POLL,
        deadline_s: float = 1.0,
        retries: int | None = None,
    ) -> Frame:
        """Send one request and return the node's reply frame.

        Raises NodeTimeoutError after ``retries`` re-sends or ``deadline_s`` seconds, and
        NodeNackError when the node refuses (a NACK is an answer: it is not retried).
        """
        if self._closed:
            raise BridgeError("bridge link closed")
        if not MIN_NODE <= node <= MAX_NODE:
            raise BridgeError(f"node address {node} outside {MIN_NODE}..{MAX_NODE}")
        loop = asyncio.get_running_loop()
        seq = self._seq.get(node, 0)
        self._seq[node] = (seq + 1) & 0xFF
        job = _Job(
            node=node,
            frame=Frame(dst=node, src=GATEWAY, seq=seq, type=mtype, payload=payload),
            priority=priority,
            order=next(self._order),
            future=loop.create_future(),
            attempts_left=1 + (self.retries if retries is None else retries),
            deadline=loop.time() + deadline_s,
        )
        self._jobs.append(job)
        self._wake.set()
        return await job.future

    async def broadcast(self, mtype: int, payload: bytes = b"") -> None:
        """Send to address 255: every node acts, none answers, so nothing is confirmed."""
        frame = encode_frame(Frame(dst=BROADCAST, src=GATEWAY, seq=0, type=mtype, payload=payload))
        # Broadcasts bypass the queue but take their turn: the sender lock is held per exchange.
        async with self._turn:
            await self.transport.write(frame)
            await asyncio.sleep(self.byte_s * INTERFRAME_CHARS)

    def reply_timeout(self, mtype: int) -> float:
        """How long to wait for the whole reply: turnaround, node processing, the longest reply, margin."""
        reply_bytes = MAX_REPLY.get(mtype, 16) + COBS_AND_FRAMING
        return (
            TURNAROUND_S
            + PROCESSING_S.get(mtype, DEFAULT_PROCESSING_S)
            + reply_bytes * self.byte_s
            + self.reply_margin_s
        )

    def _next_ready(self, now: float) -> _Job | float | None:
        """The job to run now, else the earliest time one becomes ready, else None."""
        best: _Job | None = None
        soonest: float | None = None
        for job in self._jobs:
            if job.not_before <= now:
                if best is None or (job.priority, job.order) < (best.priority, best.order):
                    best = job
            elif soonest is None or job.not_before < soonest:
                soonest = job.not_before
        return best if best is not None else soonest

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pick = self._next_ready(loop.time())
            if not isinstance(pick, _Job):
                self._wake.clear()
                timeout = None if pick is None else max(0.0, pick - loop.time())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):  # unlike wait_for, no task per wait
                        await self._wake.wait()
                continue
            self._jobs.remove(pick)
            async with self._turn:
                try:
                    await self._attempt(pick)
                except (BridgeError, ValueError) as exc:  # e.g. the transport failed: fail this request only
                    if not pick.future.done():
                        pick.future.set_exception(exc if isinstance(exc, BridgeError) else BridgeError(str(exc)))
                await asyncio.sleep(self.byte_s * INTERFRAME_CHARS)

    async def _attempt(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        if job.future.done():
            return
        rec = self.registry.get(job.node)
        if loop.time() > job.deadline:
            self._fail(job, NodeTimeoutError(f"node {job.node}: no answer before the deadline"))
            return
        job.attempts += 1
        rec.requests += 1
        if job.attempts > 1:
            rec.retries += 1
        self._expect = (job.node, job.frame.seq, job.frame.type)
        self._reply = reply = loop.create_future()
        try:
            await self.transport.write(encode_frame(job.frame))
            self.stats.frames_sent += 1
            async with asyncio.timeout(self.reply_timeout(job.frame.type)):
                frame = await reply
        except TimeoutError:
            self.stats.timeouts += 1
            rec.timeouts += 1
            job.attempts_left -= 1
            if job.attempts_left > 0 and loop.time() < job.deadline:
                job.not_before = loop.time() + min(self.backoff_max_s, self.backoff_s * 2 ** (job.attempts - 1))
                self._jobs.append(job)
            else:
                self._fail(job, NodeTimeoutError(f"node {job.node}: no answer after {job.attempts} attempt(s)"))
            return
        finally:
            self._expect = None
            self._reply = None
        self.stats.replies += 1
        self._seen(job.node)
        if frame.is_nack:
            try:
                nack = Nack.parse(frame.payload)
            except FrameError:
                nack = Nack(0)
            rec.nacks += 1
            mtype = _name(MsgType, job.frame.type)
            msg = f"node {job.node} refused {mtype}: {_name(NackCode, nack.code)}"
            if not job.future.done():
                job.future.set_exception(NodeNackError(msg, node=job.node, code=nack.code, detail=nack.detail))
        elif not job.future.done():
            job.future.set_result(frame)

    def _fail(self, job: _Job, exc: BridgeError) -> None:
        rec = self.registry.get(job.node)
        rec.consecutive_failures += 1
        health = "offline" if rec.consecutive_failures >= 3 else "degraded"
        if rec.health != health:
            rec.health = health
            self.registry.changed(urgent=True)
        if not job.future.done():
            job.future.set_exception(exc)

    def _seen(self, node: int) -> None:
        rec = self.registry.get(node)
        rec.consecutive_failures = 0
        rec.last_seen = self.clock.time()
        if rec.health != "ok":
            rec.health = "ok"
            self.registry.changed(urgent=True)
        else:
            self.registry.changed()

    async def _read_loop(self) -> None:
        reader = FrameReader()
        while True:
            data = await self.transport.read()
            for item in reader.feed(data):
                if isinstance(item, FrameError):
                    self.stats.rx_errors += 1
                    continue
                self._dispatch(item)

    def _dispatch(self, frame: Frame) -> None:
        if not frame.is_reply or frame.dst != GATEWAY:
            self.stats.stray += 1  # our own echo on a 2-wire adapter, or node chatter
            return
        if frame.flags & FLAG_EVENTS_PENDING and frame.src in self.registry.nodes:
            self._start_drain(frame.src)
        if self._expect == (frame.src, frame.seq, frame.type) and self._reply is not None and not self._reply.done():
            self._reply.set_result(frame)
        else:
            self.stats.stray += 1

    # ---- typed requests --------------------------------------------------------------------
    async def hello(
        self, node: int, *, priority: int = Priority.POLL, deadline_s: float = 1.0, retries: int | None = None
    ) -> HelloInfo:
        """Identify a node; also clears its duplicate cache and confirms a trial firmware slot."""
        reply = await self.request(node, MsgType.HELLO, priority=priority, deadline_s=deadline_s, retries=retries)
        info = _parsed(HelloInfo.parse, reply, node)
        rec = self.registry.get(node)
        firmware = info.firmware
        if (rec.firmware, rec.boot_id, rec.active_slot) != (firmware, info.boot_id, info.active_slot):
            self.registry.changed(urgent=True)
        rec.kind = HardwareKind(info.kind).name.lower().replace("_", "-")
        rec.firmware, rec.capabilities, rec.active_slot = firmware, info.capabilities, info.active_slot
        if rec.boot_id is not None and rec.boot_id != info.boot_id:
            self._rebooted(node)
        rec.boot_id = info.boot_id
        return info

    async def status(
        self, node: int, *, priority: int = Priority.POLL, deadline_s: float = 1.0, retries: int | None = None
    ) -> NodeStatus:
        """Heartbeat; a changed boot id means the node rebooted, so it is identified again."""
        reply = await self.request(node, MsgType.STATUS, priority=priority, deadline_s=deadline_s, retries=retries)
        st = _parsed(NodeStatus.parse, reply, node)
        rec = self.registry.get(node)
        rec.uptime_s = st.uptime_s
        rec.node_rx_errors = st.rx_crc_errors + st.rx_frame_errors
        rec.events_lost = st.events_lost
        if rec.boot_id != st.boot_id:
            await self.hello(node, priority=priority, deadline_s=deadline_s)
        return st

    async def set_output(
        self, node: int, channel: int, function: int, value: int, ramp_ms: int = 0, *, deadline_s: float = 1.0
    ) -> OutputState:
        """Actuate; returns the node's state after applying it (the confirmation)."""
        cmd = SetOutput(channel, function, value, ramp_ms)
        reply = await self.request(
            node,
            MsgType.SET_OUTPUT,
            cmd.pack(),
            priority=Priority.ACTUATION,
            deadline_s=deadline_s,
            retries=self.actuation_retries,
        )
        return _parsed(OutputState.parse, reply, node)

    async def get_output(self, node: int, channel: int, function: int, *, deadline_s: float = 1.0) -> OutputState:
        payload = GetOutput(channel, function).pack()
        reply = await self.request(node, MsgType.GET_OUTPUT, payload, priority=Priority.SENSING, deadline_s=deadline_s)
        return _parsed(OutputState.parse, reply, node)

    async def i2c(
        self, node: int, address: int, write: bytes, read_len: int, *, deadline_s: float = 1.0
    ) -> tuple[int, bytes]:
        """Tunnelled I2C transaction; returns (I2CStatus, bytes read)."""
        payload = I2CRequest(address, read_len, bytes(write)).pack()
        reply = await self.request(node, MsgType.I2C, payload, priority=Priority.SENSING, deadline_s=deadline_s)
        return _parsed(lambda p: parse_i2c_reply(p, read_len), reply, node)

    # ---- polling and events ----------------------------------------------------------------
    def watch(self, node: int, interval_s: float = 1.0) -> None:
        """Poll ``node`` every ``interval_s`` seconds until the link closes (idempotent per node)."""
        if node not in self._pollers:
            self._pollers[node] = self._spawn(self._poll_loop(node, interval_s), f"bridge-poll-{node}")

    async def _poll_loop(self, node: int, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            rec = self.registry.get(node)
            # An offline node gets one attempt per poll, and fewer polls, so it cannot eat the line.
            offline = rec.health == "offline"
            retries, period = (0, min(10.0, 5 * interval_s)) if offline else (None, interval_s)
            with contextlib.suppress(BridgeError):
                if rec.boot_id is None:
                    await self.hello(node, deadline_s=interval_s, retries=retries)
                await self.status(node, deadline_s=interval_s, retries=retries)
            due += period
            now = loop.time()
            if due < now:  # fell behind (a long OTA chunk, a dead node): skip, do not burst
                due = now + period
            await asyncio.sleep(due - now)

    def _rebooted(self, node: int) -> None:
        rec = self.registry.get(node)
        rec.reboots += 1
        self.registry.changed(urgent=True)
        self._event_ack[node] = 0
        self._emit(NodeEvent(node, "reboot", 0, self.clock.monotonic()))

    def _start_drain(self, node: int) -> None:
        if node not in self._draining and not self._closed:
            self._draining.add(node)
            self._spawn(self._drain(node), f"bridge-events-{node}")

    async def _drain(self, node: int) -> None:
        """Fetch queued events, then acknowledge them (the node drops what we acknowledge)."""
        try:
            for _ in range(8):  # bounded: a node producing events faster than this is throttled
                ack = self._event_ack.get(node, 0)
                reply = await self.request(
                    node, MsgType.EVENTS, EventsRequest(ack).pack(), priority=Priority.EVENTS, deadline_s=1.0
                )
                records = _parsed(parse_events, reply, node)
                now = self.clock.monotonic()
                for r in records:
                    if 0 < (r.seq - ack) % 0x10000 < 0x8000:
                        ack = r.seq
                        self._event_ack[node] = ack
                        self._emit(
                            NodeEvent(node, EventKind(r.kind).name.lower(), r.channel, now - r.age_ms / 1000, r.seq)
                        )
                if not records and not reply.flags & FLAG_EVENTS_PENDING:
                    break
        except BridgeError:
            pass  # the next reply with EVENTS_PENDING starts another drain
        finally:
            self._draining.discard(node)

    def _emit(self, event: NodeEvent) -> None:
        for listener in list(self._listeners):
            listener(event)
        if self._events.full():
            self._events.get_nowait()
            self.stats.events_dropped += 1
        self._events.put_nowait(event)

    def add_listener(self, callback: Callable[[NodeEvent], None]) -> None:
        """Call ``callback`` for every node event, synchronously, as it is decoded."""
        self._listeners.append(callback)

    async def events(self) -> AsyncIterator[NodeEvent]:
        """Node events in arrival order (one consumer); buffered up to ``event_queue_size``, oldest dropped."""
        while True:
            yield await self._events.get()

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)  # urgent saves wait at most this; routine ones far longer
            now = self.clock.monotonic()
            if self.registry.due(now):
                try:
                    await asyncio.to_thread(self.registry.save, now)
                except OSError:
                    self.registry.changed()  # try again at the next interval; the disk may be full


def _parsed(parse: Callable[[bytes], T], reply: Frame, node: int) -> T:
    try:
        return parse(reply.payload)
    except FrameError as exc:
        raise FrameError(f"node {node}: {exc}") from exc


def _name(kind: type[IntEnum], value: int) -> str:
    return kind(value).name if value in kind._value2member_map_ else f"0x{value:02x}"

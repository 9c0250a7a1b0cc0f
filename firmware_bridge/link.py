"""BridgeLink: the gateway's side of one RS-485 line (one per serial port).

On top of the turn-taking, retries and ordering rules of :class:`~firmware_bridge.exchange.LineMaster`:

- typed requests (HELLO with the protocol-revision handshake, STATUS, outputs, tunnelled I2C);
- the **output book**: for every output the gateway has commanded, the newest command (what it
  *owns*, restored after a reboot) and the node's newest report of it (what a technician is
  shown as read-back: the node's word, not the last command);
- **polling** (:meth:`BridgeLink.watch`): each node's status at its rate, the registry kept
  current, events drained when a reply says some are pending. A node that answered other
  requests since the last poll (its thermopile, its load cells) has shown it is alive and
  carried its events-pending flag already: its STATUS, whose own news is the boot id and the
  counters, is then asked only every ``status_every_s`` (5 s), so a reboot is noticed within
  that instead of one poll interval, and the line carries a third fewer requests on a desk floor;
- **reboots**: a new boot id makes the link identify the node again and put back every output
  it owns, at once (no ramp from dark), before it reports the node healthy. A desk is not moved
  by a reboot: a move cut short stays where it stopped, and its height is read back.

Events (button presses, motion, ``reboot``, ``restored``) come out of :meth:`BridgeLink.events`.

The line lives in tasks of its own: the reader, the sender, the registry's saver and one poller
per watched node. None of them ends while the link is open, so one that does has hit a bug, and
the line would be silently dead (a dead sender leaves every caller waiting, a dead reader every
request timing out). Such a death is logged with its traceback at once, the requests queued
behind a dead sender fail, and :meth:`BridgeLink.supervise` (a task of the daemon's supervisor)
raises the error, so the supervisor logs and counts it, and starts the dead workers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from drivers.errors import BridgeError, FrameError

from .codec import FLAG_EVENTS_PENDING, Frame
from .exchange import (
    COBS_AND_FRAMING,
    INTERFRAME_CHARS,
    TURNAROUND_S,
    LineMaster,
    LinkStats,
    LoopClock,
    OutputKey,
    Priority,
)
from .messages import (
    ALL_CHANNELS,
    PROTOCOL_REVISION,
    CommandSuperseded,
    EventKind,
    EventsRequest,
    GetOutput,
    HardwareKind,
    HelloInfo,
    MsgType,
    NackCode,
    NodeNackError,
    NodeStatus,
    OutputFunction,
    OutputState,
    SensorBlock,
    SetOutput,
    output_group,
    pack_i2c_request,
    parse_events,
    parse_hello,
    parse_i2c_reply,
)
from .transport import Transport

__all__ = [
    "COBS_AND_FRAMING",
    "INTERFRAME_CHARS",
    "TURNAROUND_S",
    "BridgeLink",
    "LinkStats",
    "LoopClock",
    "NodeEvent",
    "Priority",
]

log = logging.getLogger("firmware_bridge.link")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """A button press, motion start/end, ``reboot`` or ``restored`` noticed by the link. ``t``: monotonic s."""

    node: int
    kind: str
    channel: int
    t: float
    seq: int = 0


class BridgeLink(LineMaster):
    """Typed requests, the output book, polling, events and reboots over one :class:`Transport`."""

    def __init__(
        self, transport: Transport, *, event_queue_size: int = 1024, status_every_s: float = 5.0, **options: Any
    ) -> None:
        """``status_every_s``: the longest a watched node that keeps answering other requests goes
        without a STATUS (never less often than its poll interval). ``options``: those of
        :class:`~firmware_bridge.exchange.LineMaster` (baud, clock, registry, retries,
        actuation_retries, backoff_s, backoff_max_s, reply_margin_s)."""
        super().__init__(transport, **options)
        self.status_every_s = status_every_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._pollers: dict[int, asyncio.Task[None]] = {}
        self._draining: set[int] = set()
        self._event_ack: dict[int, int] = {}
        self._events: asyncio.Queue[NodeEvent] = asyncio.Queue(event_queue_size)
        self._listeners: list[Callable[[NodeEvent], None]] = []
        self._intended: dict[OutputKey, SetOutput] = {}  # the newest command per output: what we own
        self._reported: dict[OutputKey, OutputState] = {}  # the node's newest report per output
        self._restoring: dict[int, asyncio.Task[None]] = {}
        # name -> the task of a worker that lives as long as the link, and its loop (to start it again)
        self._workers: dict[str, tuple[asyncio.Task[None], Callable[[], Coroutine[Any, Any, None]]]] = {}
        self._intervals: dict[int, float] = {}  # node -> its poll interval (a poller started again keeps it)
        self._died: list[tuple[str, BaseException]] = []  # workers that ended, not yet reported by supervise()
        self._death = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> BridgeLink:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        self._worker("bridge-reader", self._read_loop)
        self._worker("bridge-sender", self._send_loop)
        self._worker("bridge-registry", self._persist_loop)

    async def supervise(self) -> None:
        """Start again every worker of the line that has died, then wait for the next death and raise it.

        The daemon runs this under its supervisor (:mod:`edge_agent.supervisor`), which logs the
        error, counts it towards a crash loop, and runs this again after its backoff.
        """
        self._revive()
        while not self._died:
            self._death.clear()
            await self._death.wait()
        deaths, self._died = self._died, []
        name, exc = deaths[0]
        others = f" (and {', '.join(n for n, _ in deaths[1:])})" if len(deaths) > 1 else ""
        raise BridgeError(f"bridge line: {name}{others} stopped: {type(exc).__name__}: {exc}") from exc

    def _revive(self) -> None:
        if self._closed:
            return
        for name, (task, loop) in list(self._workers.items()):
            if task.done():
                log.warning("bridge line: starting %s again", name)
                self._worker(name, loop)
        for node, task in list(self._pollers.items()):
            if task.done():
                log.warning("bridge line: polling node %d again", node)
                del self._pollers[node]
                self.watch(node, self._intervals[node])

    def _worker(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._workers[name] = (self._spawn(loop(), name, lives=True), loop)

    async def aclose(self) -> None:
        """Stop pollers and workers, fail what is still queued, save the registry, close the transport."""
        self._closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_queued(BridgeError("bridge link closed"))
        if self.registry.state_dir is not None:
            await asyncio.to_thread(self.registry.save, self.clock.monotonic())
        await self.transport.aclose()

    def _spawn(self, coro: object, name: str, *, lives: bool = False) -> asyncio.Task[None]:
        """A task of the link; ``lives``: it runs as long as the link is open (its end is a death)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._ended_living if lives else self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A short task (an event drain, a restore) ended: a bug in it is logged, never left unread."""
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("bridge line: %s failed: %s: %s", task.get_name(), type(exc).__name__, exc, exc_info=exc)

    def _ended_living(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._closed or task.cancelled():
            return
        exc = task.exception() or BridgeError("it returned")
        log.error("bridge line: %s died: %s: %s", task.get_name(), type(exc).__name__, exc, exc_info=exc)
        if task.get_name() == "bridge-sender":  # nothing would send what is queued: its callers hear it now
            self._fail_queued(BridgeError(f"the line's sender stopped: {type(exc).__name__}: {exc}"))
        self._died.append((task.get_name(), exc))
        self._death.set()

    # ---- typed requests --------------------------------------------------------------------
    async def hello(
        self, node: int, *, priority: int = Priority.POLL, deadline_s: float = 1.0, retries: int | None = None
    ) -> HelloInfo:
        """Identify a node; also clears its duplicate cache and confirms a trial firmware slot.

        Asks in the revision-2 form first; a node of the first revision refuses that with
        BAD_LENGTH and is asked again in the plain form.
        """
        try:
            reply = await self.request(node, MsgType.HELLO, bytes([PROTOCOL_REVISION]), priority=priority,
                                       deadline_s=deadline_s, retries=retries)  # fmt: skip
        except NodeNackError as exc:
            if exc.code != NackCode.BAD_LENGTH:
                raise
            self.registry.get(node).nacks -= 1  # the first revision's way to say so: not a refusal
            reply = await self.request(node, MsgType.HELLO, priority=priority, deadline_s=deadline_s, retries=retries)
        info = _parsed(parse_hello, reply, node)
        rec = self.registry.get(node)
        firmware = info.firmware
        if (rec.firmware, rec.boot_id, rec.active_slot) != (firmware, info.boot_id, info.active_slot):
            self.registry.changed(urgent=True)
        rec.kind = HardwareKind(info.kind).name.lower().replace("_", "-")
        rec.firmware, rec.capabilities, rec.active_slot = firmware, info.capabilities, info.active_slot
        rec.revision, rec.hw_revision, rec.channels = info.revision, info.hw_revision, info.channels
        rebooted = rec.boot_id is not None and rec.boot_id != info.boot_id
        rec.boot_id = info.boot_id
        if rebooted:
            self._rebooted(node)
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
        """Actuate; returns the node's state after applying it (the confirmation).

        The command becomes what the gateway owns on that output (restored after a reboot). A
        newer command to the same output, issued before this one is confirmed, makes this one
        raise CommandSuperseded instead of being retried after it.
        """
        cmd = SetOutput(channel, function, value, ramp_ms)
        self._intended[(node, channel, output_group(function))] = cmd
        return await self._command(node, cmd, deadline_s)

    async def _command(self, node: int, cmd: SetOutput, deadline_s: float) -> OutputState:
        key = (node, cmd.channel, output_group(cmd.function))
        reply = await self.request(node, MsgType.SET_OUTPUT, cmd.pack(), priority=Priority.ACTUATION,
                                   deadline_s=deadline_s, retries=self.actuation_retries, output=key)  # fmt: skip
        state = _parsed(OutputState.parse, reply, node)
        self._reported[key] = state
        return state

    async def get_output(
        self, node: int, channel: int, function: int, *, deadline_s: float = 1.0, priority: int = Priority.SENSING
    ) -> OutputState:
        """What the output holds now, in the node's words (also kept as its reported read-back)."""
        payload = GetOutput(channel, function).pack()
        reply = await self.request(node, MsgType.GET_OUTPUT, payload, priority=priority, deadline_s=deadline_s)
        state = _parsed(OutputState.parse, reply, node)
        self._reported[(node, channel, output_group(function))] = state
        return state

    def reported(self, node: int, channel: int, function: int) -> OutputState | None:
        """The node's newest report of this output (None: not known since the node last rebooted)."""
        return self._reported.get((node, channel, output_group(function)))

    async def broadcast_output(self, function: int, value: int, ramp_ms: int = 0) -> None:
        """Set ``function`` to ``value`` on every channel of every node, unconfirmed (no node replies).

        Channel 255 does it in one frame when every node known on the line follows revision 2;
        otherwise one broadcast per channel number. Nothing queued before it may undo it, and it
        becomes what the gateway owns on the outputs it already owned.
        """
        recs = list(self.registry.nodes.values())
        if recs and all(r.revision >= 2 for r in recs):
            channels: list[int] = [ALL_CHANNELS]
        else:
            channels = list(range(max((r.channels for r in recs), default=0) or 16))
        group = output_group(function)

        def hit(key: OutputKey) -> bool:
            return key[2] == group

        self._supersede_outputs(hit)
        for key in [k for k in self._intended if hit(k)]:
            self._intended[key] = SetOutput(key[1], function, value, ramp_ms)
            self._reported.pop(key, None)
        for ch in channels:
            await self.broadcast(MsgType.SET_OUTPUT, SetOutput(ch, function, value, ramp_ms).pack())

    async def read_sensor(self, node: int, block: int, *, deadline_s: float = 1.0) -> bytes:
        """A sensor block's data (after its block byte); a pure read (PROTOCOL.md, 5.3)."""
        reply = await self.request(node, MsgType.READ_SENSOR, bytes([block]), priority=Priority.SENSING,
                                   deadline_s=deadline_s)
        sensor_block = _parsed(SensorBlock.parse, reply, node)
        if sensor_block.block != block:
            raise FrameError(f"node {node}: asked for sensor block {block}, got block {sensor_block.block}")
        return sensor_block.data

    async def i2c(
        self, node: int, address: int, write: bytes, read_len: int, *, deadline_s: float = 1.0
    ) -> tuple[int, bytes]:
        """Tunnelled I2C transaction; returns (I2CStatus, bytes read). Never executed twice."""
        payload = pack_i2c_request(address, read_len, bytes(write))
        reply = await self.request(node, MsgType.I2C, payload, priority=Priority.SENSING, deadline_s=deadline_s)
        try:  # _parsed's work without its closure: one of these per thermopile frame
            return parse_i2c_reply(reply.payload, read_len)
        except FrameError as exc:
            raise FrameError(f"node {node}: {exc}") from exc

    # ---- reboots ---------------------------------------------------------------------------
    def _rebooted(self, node: int) -> None:
        rec = self.registry.get(node)
        rec.reboots += 1
        self.registry.changed(urgent=True)
        self._event_ack[node] = 0
        for key in [k for k in self._reported if k[0] == node]:
            del self._reported[key]  # the node's outputs are at their power-on state now
        if any(k[0] == node for k in self._intended):
            self._unrestored.add(node)
            rec.health = "restoring"
            self._restore_soon(node)
        self._emit(NodeEvent(node, "reboot", 0, self.clock.monotonic()))

    def _restore_soon(self, node: int) -> None:
        running = self._restoring.get(node)
        if running is not None and not running.done():
            running.cancel()  # rebooted again meanwhile: start over
        if not self._closed:
            self._restoring[node] = self._spawn(self._restore(node), f"bridge-restore-{node}")

    async def _restore(self, node: int) -> None:
        """Put back every output the gateway owns on ``node``, then call the node healthy."""
        owned = [key for key in self._intended if key[0] == node]
        try:
            await asyncio.gather(*(self._restore_one(node, key) for key in owned))
        except BridgeError as exc:
            log.warning("node %d: outputs not restored yet (%s); trying again at the next poll", node, exc)
            return
        self._unrestored.discard(node)
        self._seen(node)
        log.info("node %d: %d output(s) restored after a reboot", node, len(owned))
        self._emit(NodeEvent(node, "restored", 0, self.clock.monotonic()))

    async def _restore_one(self, node: int, key: OutputKey) -> None:
        if key[2] == OutputFunction.DESK_MOVE:  # a desk is not moved by a reboot: learn where it stopped
            await self.get_output(node, key[1], OutputFunction.DESK_MOVE, priority=Priority.ACTUATION)
            return
        while (pending := self._pending_command(key)) is not None:  # the newest command is on its way:
            await asyncio.wait([pending])  # if it is confirmed after the reboot, it has restored the output
        if key in self._reported:
            return
        with contextlib.suppress(CommandSuperseded):  # a newer command went out meanwhile: it stands
            await self._command(node, replace(self._intended[key], ramp_ms=0), 1.0)

    # ---- polling and events ----------------------------------------------------------------
    def watch(self, node: int, interval_s: float = 1.0) -> None:
        """Poll ``node`` every ``interval_s`` seconds until the link closes (idempotent per node)."""
        if node not in self._pollers:
            self._intervals[node] = interval_s
            self._pollers[node] = self._spawn(self._poll_loop(node, interval_s), f"bridge-poll-{node}", lives=True)

    async def _poll_loop(self, node: int, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        # A poll may skip STATUS at most this many times in a row, and only while other replies come.
        may_skip = max(0, round(self.status_every_s / interval_s) - 1)
        skipped = 0
        answers = self.answers.get(node, 0)
        while True:
            rec = self.registry.get(node)
            # An offline node gets one attempt per poll, and fewer polls, so it cannot eat the line.
            offline = rec.health == "offline"
            retries, period = (0, min(10.0, 5 * interval_s)) if offline else (None, interval_s)
            alive = self.answers.get(node, 0) != answers and rec.health == "ok" and rec.boot_id is not None
            if alive and skipped < may_skip:
                skipped += 1
            else:
                skipped = 0
                try:  # not contextlib.suppress: three calls fewer on each of a simulated day's 200 000 polls
                    if rec.boot_id is None:
                        await self.hello(node, deadline_s=interval_s, retries=retries)
                    await self.status(node, deadline_s=interval_s, retries=retries)
                    task = self._restoring.get(node)
                    if node in self._unrestored and (task is None or task.done()):
                        self._restore_soon(node)
                except BridgeError:
                    pass
            answers = self.answers.get(node, 0)
            due += period
            now = loop.time()
            if due < now:  # fell behind (a long OTA chunk, a dead node): skip, do not burst
                due = now + period
            await asyncio.sleep(due - now)

    def _events_pending(self, node: int) -> None:
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
                    # ack 0: nothing seen since the node (or the gateway) started, so every event is new
                    if ack == 0 or 0 < (r.seq - ack) % 0x10000 < 0x8000:
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


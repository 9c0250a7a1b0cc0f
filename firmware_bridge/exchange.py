"""One exchange at a time on an RS-485 line: the gateway's request queue, its retries and its ordering.

The gateway is the only master, so the line carries one exchange at a time: a request, then the
addressed node's reply or a timeout. :class:`LineMaster` owns that turn-taking. Callers enqueue
requests with a priority; one worker sends them in priority order (actuation first, OTA last),
waits for the matching reply (same node, sequence number and type), and on silence or a damaged
reply re-queues the *same* frame (same sequence number, so the node re-sends its cached reply
instead of acting twice) after a short backoff, letting more urgent requests go first meanwhile.

Three rules keep that safe under loss (PROTOCOL.md, sections 4.2 and 4.4):

- **supersede, never overtake**: once a newer SET_OUTPUT to the same output (node, channel,
  function group) is queued, an older one is dropped instead of retried; its caller gets
  :class:`~firmware_bridge.messages.CommandSuperseded`. Since only one exchange is on the line
  at a time, a node then sees each output's commands in the order they were issued.
- **a request that is not idempotent holds its node**: while a tunnelled I2C transaction is
  unanswered, nothing else goes to that node, so the node's one-entry duplicate cache still
  holds it when the retry comes, and it is never executed twice.
- **BUSY is asked again**: the node did nothing, so the request goes again (as a new request,
  with a new sequence number) after the backoff, until its deadline.

A damaged reply ends the wait as soon as the line has been quiet for the inter-frame gap and the
reply margin, instead of the whole reply timeout; the reply timeout itself counts from the end of
the request on the wire (an adapter whose ``write`` returns before the bytes are sent has the
request's own transmission time added).

Two senders share the queue and the exchange's steps: a task (``_send_loop``, a bare memory
endpoint) and, on a tty that can be written without waiting (and the simulated day's lease on its
memory line, which offers the same calls), loop callbacks (:mod:`firmware_bridge.tty_sender`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import IntEnum

from drivers.errors import BridgeError, FrameError, NodeTimeoutError
from drivers.ports import Clock

from .codec import BROADCAST, FLAG_EVENTS_PENDING, GATEWAY, MAX_NODE, MIN_NODE, Frame, FrameReader, encode_frame
from .line_queue import RequestQueue
from .messages import (
    DEFAULT_PROCESSING_S,
    MAX_REPLY,
    NOT_IDEMPOTENT,
    PROCESSING_S,
    CommandSuperseded,
    MsgType,
    Nack,
    NackCode,
    NodeNackError,
)
from .registry import NodeRegistry
from .transport import Transport, byte_time
from .tty_sender import CallbackSender

COBS_AND_FRAMING = 13  # header 8 + CRC 2 + COBS overhead 2 + delimiter 1
TURNAROUND_S = 0.0001  # node waits this long after our delimiter before driving the line
INTERFRAME_CHARS = 3  # idle characters between one exchange and the next

OutputKey = tuple[int, int, int]  # node, channel, function group (messages.output_group)


class Priority(IntEnum):
    ACTUATION = 0
    SENSING = 1  # tunnelled I2C, sensor blocks
    EVENTS = 2
    POLL = 3
    OTA = 4


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
    output: OutputKey | None = None  # a SET_OUTPUT: newer commands to this output supersede it
    exclusive: bool = False  # not idempotent: the node gets nothing else until this is answered
    not_before: float = 0.0
    attempts: int = field(default=0)
    busy: int = 0  # BUSY answers so far
    entry: int = -1  # its entry in the line's queue while queued (RequestQueue)


@dataclass(slots=True)
class LinkStats:
    frames_sent: int = 0
    replies: int = 0
    timeouts: int = 0
    rx_errors: int = 0  # damaged frames seen on the line
    stray: int = 0  # valid frames that matched no outstanding request (late answers, echoes)
    events_dropped: int = 0
    damaged_replies: int = 0  # exchanges cut short by a damaged reply
    busy: int = 0  # BUSY answers, asked again
    superseded: int = 0  # commands dropped for a newer one to the same output


class LineMaster(CallbackSender):
    """Request/response, retries, priorities and the ordering rules over one :class:`Transport`."""

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
        self.answers: dict[int, int] = {}  # node -> replies received from it (NACKs included)
        self._jobs: RequestQueue[_Job] = RequestQueue()
        self._order = itertools.count()
        self._seq: dict[int, int] = {}
        self._newest: dict[OutputKey, int] = {}  # output -> order of the newest command to it
        self._pinned: dict[int, _Job] = {}  # node -> its unanswered request that is not idempotent
        self._unrestored: set[int] = set()  # rebooted nodes whose outputs are not back yet: not "ok"
        self._wake = asyncio.Event()
        self._turn = asyncio.Lock()
        self._current: _Job | None = None  # the job whose exchange is on the line
        self._expect: tuple[int, int, int] | None = None
        self._reply: asyncio.Future[Frame] | None = None
        # The wait for the reply on the line: one timer that fails ``_reply`` with TimeoutError at
        # ``_scope_end`` (a plain timer, not a timeout scope: no task cancellation on silence).
        self._timer: asyncio.Handle | None = None
        self._scope_end = 0.0
        self._line_free = 0.0  # the loop time the inter-frame gap after the last exchange ends
        self._damaged = False
        self._reader = FrameReader()
        self._closed = False
        self._gap_s = self.byte_s * INTERFRAME_CHARS  # the idle characters between two exchanges
        self._init_callbacks(transport)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- requests --------------------------------------------------------------------------
    def _next_seq(self, node: int) -> int:
        seq = self._seq.get(node, 0)
        self._seq[node] = (seq + 1) & 0xFF
        return seq

    async def request(
        self,
        node: int,
        mtype: int,
        payload: bytes = b"",
        *,
        priority: int = Priority.POLL,
        deadline_s: float = 1.0,
        retries: int | None = None,
        output: OutputKey | None = None,
    ) -> Frame:
        """Send one request and return the node's reply frame.

        Raises NodeTimeoutError after ``retries`` re-sends or ``deadline_s`` seconds,
        NodeNackError when the node refuses (a NACK is an answer: it is not retried, except BUSY
        until the deadline), and CommandSuperseded when ``output`` is given and a newer command
        to that output is queued before this one is confirmed.
        """
        if self._closed:
            raise BridgeError("bridge link closed")
        if not MIN_NODE <= node <= MAX_NODE:
            raise BridgeError(f"node address {node} outside {MIN_NODE}..{MAX_NODE}")
        loop = asyncio.get_running_loop()
        job = _Job(
            node=node,
            frame=Frame(dst=node, src=GATEWAY, seq=self._next_seq(node), type=mtype, payload=payload),
            priority=priority,
            order=next(self._order),
            future=loop.create_future(),
            attempts_left=1 + (self.retries if retries is None else retries),
            deadline=loop.time() + deadline_s,
            output=output,
            exclusive=mtype in NOT_IDEMPOTENT,
        )
        if output is not None:
            self._newest[output] = job.order
            self._drop_superseded(lambda key: key == output)
        self._jobs.push(job)
        if self._callbacks:
            self._schedule_kick()
        else:
            self._wake.set()
        return await job.future

    def _drop_superseded(self, hit: Callable[[OutputKey], bool]) -> None:
        """Fail every queued command to an output ``hit`` names that is not the newest to it."""
        for old in [j for j in self._jobs if j.output is not None and hit(j.output)]:
            if self._superseded(old):
                self._jobs.remove(old)

    def _supersede_outputs(self, hit: Callable[[OutputKey], bool]) -> None:
        """A broadcast set these outputs: nothing older to them may still run."""
        for key in [k for k in self._newest if hit(k)]:
            self._newest[key] = next(self._order)
        self._drop_superseded(hit)

    def _pending_command(self, key: OutputKey) -> asyncio.Future[Frame] | None:
        """The unsettled command to this output, queued or on the line (there is at most one)."""
        current = self._current
        if current is not None and current.output == key and not current.future.done():
            return current.future
        for job in self._jobs:
            if job.output == key and not job.future.done():
                return job.future
        return None

    def _superseded(self, job: _Job) -> bool:
        if job.output is None or self._newest.get(job.output) == job.order:
            return False
        self.stats.superseded += 1
        node, channel, function = job.output
        why = f"node {node} channel {channel} function {function}: a newer command was issued; this one was dropped"
        self._finish(job, CommandSuperseded(why))
        return True

    async def broadcast(self, mtype: int, payload: bytes = b"") -> None:
        """Send to address 255: every node acts, none answers, so nothing is confirmed."""
        frame = encode_frame(Frame(dst=BROADCAST, src=GATEWAY, seq=0, type=mtype, payload=payload))
        # Broadcasts bypass the queue but take their turn: the sender lock is held per exchange.
        async with self._turn:
            loop = asyncio.get_running_loop()
            while self._current is not None:  # an exchange started from a callback is on the line
                self._idle.clear()
                await self._idle.wait()
            if loop.time() < self._line_free:  # the gap after the last exchange holds for it too
                await asyncio.sleep(self._line_free - loop.time())
            try:
                await self.transport.write(frame)
                self.stats.frames_sent += 1
                await asyncio.sleep(self.byte_s * INTERFRAME_CHARS + self._unsent_s(frame))
            finally:
                if self._callbacks:
                    self._schedule_kick()  # requests that came meanwhile

    def reply_timeout(self, mtype: int) -> float:
        """How long to wait for the whole reply after the request's last byte left: turnaround, node
        processing, the longest reply, margin."""
        reply_bytes = MAX_REPLY.get(mtype, 16) + COBS_AND_FRAMING
        return (
            TURNAROUND_S
            + PROCESSING_S.get(mtype, DEFAULT_PROCESSING_S)
            + reply_bytes * self.byte_s
            + self.reply_margin_s
        )

    def _unsent_s(self, wire: bytes) -> float:
        """Time the request still needs on the wire when ``write`` returns (0 for a line that waits)."""
        return 0.0 if getattr(self.transport, "write_waits_for_line", False) else len(wire) * self.byte_s

    def _next_ready(self, now: float) -> _Job | float | None:
        """The job to run now, else the earliest time one becomes ready, else None: the most urgent
        ready job (the first queued among equals) whose node owes no answer to another job."""
        return self._jobs.choose(now, self._pinned)

    async def _send_loop(self) -> None:
        if self._callbacks:
            await self._callback_sender()
            return
        loop = asyncio.get_running_loop()
        gap_s = self.byte_s * INTERFRAME_CHARS
        while True:
            now = loop.time()
            pick = self._next_ready(now)
            if not isinstance(pick, _Job):
                self._wake.clear()
                if pick is None:
                    await self._wake.wait()
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, pick - loop.time())):  # unlike wait_for, no task per wait
                        await self._wake.wait()
                continue
            if now < self._line_free:
                # The inter-frame gap after the last exchange: wait it out, then choose again (a more
                # urgent request may come meanwhile). An idle line pays no timer for it.
                await asyncio.sleep(self._line_free - now)
                continue
            self._jobs.remove(pick)
            async with self._turn:
                self._current = pick
                try:
                    await self._attempt(pick)
                except (BridgeError, ValueError) as exc:  # e.g. the transport failed: fail this request only
                    self._finish(pick, exc if isinstance(exc, BridgeError) else BridgeError(str(exc)))
                except BaseException:  # the sender itself stops (a bug, the link closing): no caller waits forever
                    self._finish(pick, BridgeError("bridge link closed" if self._closed else "the sender stopped"))
                    raise
                finally:
                    self._current = None
                    self._line_free = loop.time() + gap_s

    async def _attempt(self, job: _Job) -> None:
        wire = self._prepare(job)
        if wire is None:
            return
        reply = self._reply
        assert reply is not None
        try:
            await self.transport.write(wire)
            self._arm(wire)
            with contextlib.suppress(TimeoutError):
                await reply
        except BaseException:
            self._clear_wait()
            raise
        self._conclude(job, reply)

    def _prepare(self, job: _Job) -> bytes | None:
        """Ready ``job``'s exchange and return its frame on the wire; None when the job was settled
        without one (its caller gave up, its deadline passed, a newer command superseded it)."""
        loop = asyncio.get_running_loop()
        if job.future.done():
            self._finish(job)
            return None
        if loop.time() > job.deadline:
            if job.busy:  # it answered, every time: BUSY
                self._finish(job, self._refusal(job, Nack(NackCode.BUSY)))
            else:
                self._fail(job, NodeTimeoutError(f"node {job.node}: no answer before the deadline"))
            return None
        if self._superseded(job):
            return None
        rec = self.registry.get(job.node)
        job.attempts += 1
        rec.requests += 1
        if job.attempts > 1:
            rec.retries += 1
        if job.exclusive:
            self._pinned[job.node] = job
        wire = encode_frame(job.frame)
        self._expect = (job.node, job.frame.seq, job.frame.type)
        self._reply = loop.create_future()
        self._damaged = False
        # Half duplex: whatever was not ended by a delimiter before our request (a reply whose
        # closing 0x00 a bit error turned into data) is garbage, and must not swallow the answer.
        self._reader.buffer.clear()
        self._reader.overflow = False
        return wire

    def _arm(self, wire: bytes) -> None:
        """The request has left: start the wait for its reply (one loop timer that fails ``_reply``)."""
        loop = asyncio.get_running_loop()
        self.stats.frames_sent += 1
        self._scope_end = loop.time() + self._unsent_s(wire) + self.reply_timeout(self._expect_type())
        assert self._reply is not None
        self._timer = loop.call_at(self._scope_end, self._expire_reply, self._reply)

    def _expect_type(self) -> int:
        assert self._expect is not None
        return self._expect[2]

    def _clear_wait(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._expect = self._reply = self._timer = None

    def _conclude(self, job: _Job, reply: asyncio.Future[Frame]) -> None:
        """The exchange is over (``reply`` settled): the answer, a refusal, BUSY, or none at all."""
        self._clear_wait()
        loop = asyncio.get_running_loop()
        rec = self.registry.get(job.node)
        if reply.exception() is not None:  # the wait ran out (TimeoutError), or a damaged reply ended it
            if self._damaged:
                self.stats.damaged_replies += 1
            else:
                self.stats.timeouts += 1
                rec.timeouts += 1
            self._again(job)
            return
        frame = reply.result()
        self.stats.replies += 1
        self.answers[job.node] = self.answers.get(job.node, 0) + 1
        self._seen(job.node)
        if not frame.is_nack:
            self._finish(job, frame)
            return
        try:
            nack = Nack.parse(frame.payload)
        except FrameError:
            nack = Nack(0)
        if nack.code == NackCode.BUSY and loop.time() < job.deadline and not self._superseded(job):
            # The node did nothing: ask again, as a new request (a node of the first protocol
            # revision may have cached its BUSY answer under the old sequence number).
            self.stats.busy += 1
            job.busy += 1
            job.frame = replace(job.frame, seq=self._next_seq(job.node))
            job.not_before = loop.time() + self._backoff(job.busy)
            self._jobs.push(job)
            return
        self._finish(job, self._refusal(job, nack))

    def _refusal(self, job: _Job, nack: Nack) -> NodeNackError:
        self.registry.get(job.node).nacks += 1
        msg = f"node {job.node} refused {_name(MsgType, job.frame.type)}: {_name(NackCode, nack.code)}"
        return NodeNackError(msg, node=job.node, code=nack.code, detail=nack.detail)

    def _backoff(self, n: int) -> float:
        return min(self.backoff_max_s, self.backoff_s * 2.0 ** (n - 1))

    def _again(self, job: _Job) -> None:
        """No (intact) answer: re-send the identical frame after the backoff, or give up."""
        loop = asyncio.get_running_loop()
        job.attempts_left -= 1
        if self._superseded(job):
            return
        if job.attempts_left > 0 and loop.time() < job.deadline:
            job.not_before = loop.time() + self._backoff(job.attempts)
            self._jobs.push(job)
        else:
            self._fail(job, NodeTimeoutError(f"node {job.node}: no answer after {job.attempts} attempt(s)"))

    def _finish(self, job: _Job, outcome: Frame | BaseException | None = None) -> None:
        """Settle the caller's future (unless it gave up) and release the node if the job held it."""
        if self._pinned.get(job.node) is job:
            del self._pinned[job.node]
        if outcome is None or job.future.done():
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    def _fail(self, job: _Job, exc: BridgeError) -> None:
        rec = self.registry.get(job.node)
        rec.consecutive_failures += 1
        health = "offline" if rec.consecutive_failures >= 3 else "degraded"
        if rec.health != health:
            rec.health = health
            self.registry.changed(urgent=True)
        self._finish(job, exc)

    def _seen(self, node: int) -> None:
        rec = self.registry.get(node)
        rec.consecutive_failures = 0
        rec.last_seen = self.clock.time()
        health = "restoring" if node in self._unrestored else "ok"
        if rec.health != health:
            rec.health = health
            self.registry.changed(urgent=True)
        else:
            self.registry.changed()

    def _fail_queued(self, exc: BridgeError) -> None:
        for job in self._jobs:
            self._finish(job, exc)
        self._jobs.clear()

    # ---- the receiving side ----------------------------------------------------------------
    async def _read_loop(self) -> None:
        if self._callbacks:
            # Bytes are decoded in the tty's readable callback; this task only waits to report a
            # failed read, the line closing, or a bug in the decoding (the reader's death).
            await self.transport.receive(self._received)  # type: ignore[attr-defined]
            return
        while True:
            self._received(await self.transport.read())

    def _received(self, data: bytes) -> None:
        whole = self._reader.whole_frame(data)  # a node's reply in one chunk: once per exchange
        items: Iterable[Frame | FrameError] = (whole,) if whole is not None else self._reader.feed(data)
        for item in items:
            if isinstance(item, FrameError):
                self.stats.rx_errors += 1
                self._damaged = self._reply is not None
                continue
            self._dispatch(item)
        if self._damaged:
            # A damaged reply: the node will not send a better one. Give up once the line
            # has been quiet for a moment (the rest of a split frame may still be arriving).
            quiet_s = self.byte_s * INTERFRAME_CHARS + self.reply_margin_s
            self._give_up_after(min(self._scope_end, asyncio.get_running_loop().time() + quiet_s))

    def _give_up_after(self, when: float) -> None:
        """Bring the wait for the current reply forward to ``when``.

        The wait may already have run out: its timeout is expiring while the exchange task has
        not yet run to clear it. Rescheduling it then would raise and kill this reader, and with
        it the whole line, so an expired or finished wait is left alone.
        """
        timer, reply = self._timer, self._reply
        if timer is None or reply is None or reply.done():
            return
        timer.cancel()
        loop = asyncio.get_running_loop()
        if when <= loop.time():
            self._timer = loop.call_soon(self._expire_reply, reply)
        else:
            self._timer = loop.call_at(when, self._expire_reply, reply)

    def _expire_reply(self, reply: asyncio.Future[Frame]) -> None:
        """The reply's time is up (or a damaged reply ended the wait early)."""
        if not reply.done():
            _expire(reply)
            self._settled(reply)

    def _dispatch(self, frame: Frame) -> None:
        if not frame.is_reply or frame.dst != GATEWAY:
            self.stats.stray += 1  # our own echo on a 2-wire adapter, or node chatter
            return
        if frame.flags & FLAG_EVENTS_PENDING and frame.src in self.registry.nodes:
            self._events_pending(frame.src)
        reply = self._reply
        if self._expect == (frame.src, frame.seq, frame.type) and reply is not None and not reply.done():
            reply.set_result(frame)
            self._settled(reply)
        else:
            self.stats.stray += 1

    def _events_pending(self, node: int) -> None:
        """A reply said the node has events queued (BridgeLink drains them)."""


def _expire(reply: asyncio.Future[Frame]) -> None:
    """The reply's time is up (or a damaged reply ended the wait early)."""
    if not reply.done():
        reply.set_exception(TimeoutError())


def _name(kind: type[IntEnum], value: int) -> str:
    return kind(value).name if value in kind._value2member_map_ else f"0x{value:02x}"

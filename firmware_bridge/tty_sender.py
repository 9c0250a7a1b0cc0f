"""The line's sender and reader on a tty: exchanges run from event-loop callbacks, not tasks.

Why a second sender: on a tty that can be written without waiting and read in its readable
callback (:class:`~firmware_bridge.transport.SerialTransport`, and the daemon's reopening port and
the simulated backend's lease over one), a task-driven exchange costs the sender, the reader and
the caller a task wake-up each per request. Here the same choices as
:meth:`LineMaster._send_loop <firmware_bridge.exchange.LineMaster._send_loop>` are made in loop
callbacks: a request on an idle line is written in the loop turn its caller queued it (as soon as
the sender task would have woken), in priority order with whatever else came in that turn; the
exchange is concluded where its reply's future settles (the reader's callback that matched the
reply, or the timer of its wait), not a loop turn later; the next request waits for the
inter-frame gap or its retry time on one line timer. A caller's request is then one wake-up of
the caller itself. The sender and reader tasks stay only to report a bug or a lost line (then
they die as before, and their supervision starts them again).

Why a module of its own: :class:`CallbackSender` is a mixin of
:class:`~firmware_bridge.exchange.LineMaster`; the queue, the ordering rules and the exchange's
steps (choose, prepare, arm the reply wait, conclude) stay there and are shared by both senders,
while the machinery that drives them from callbacks (the kick, the line timer, a partial write,
a bug's report) is here. The simulated day's in-process memory line offers the same two calls
through its lease (:class:`edge_agent.backend.MemoryLineLease`) and runs here too; a link on a bare
memory endpoint (the bridge's tests, the workload tools) keeps the task-driven path.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from drivers.errors import BridgeError

if TYPE_CHECKING:
    from .codec import Frame
    from .exchange import _Job
    from .line_queue import RequestQueue
    from .transport import Transport


class CallbackSender:
    """The callback-driven sender of :class:`~firmware_bridge.exchange.LineMaster` (a mixin)."""

    if TYPE_CHECKING:  # LineMaster's state and steps that the callbacks drive
        transport: Transport
        _closed: bool
        _jobs: RequestQueue[_Job]
        _current: _Job | None
        _turn: asyncio.Lock
        _line_free: float
        _gap_s: float
        _reply: asyncio.Future[Frame] | None

        def _next_ready(self, now: float) -> _Job | float | None: ...
        def _prepare(self, job: _Job) -> bytes | None: ...
        def _arm(self, wire: bytes) -> None: ...
        def _clear_wait(self) -> None: ...
        def _conclude(self, job: _Job, reply: asyncio.Future[Frame]) -> None: ...
        def _finish(self, job: _Job, outcome: Frame | BaseException | None = None) -> None: ...

    def _init_callbacks(self, transport: object) -> None:
        # A tty the link can write to without waiting and read from in its readable callback
        # (SerialTransport) runs exchanges from callbacks: no task wakes per request (see _kick).
        self._callbacks = callable(getattr(transport, "write_now", None)) and callable(
            getattr(transport, "receive", None)
        )
        self._sender_fault: asyncio.Future[None] | None = None  # set: the callback sender hit a bug
        self._kick_soon = False  # a _kick is scheduled for this loop turn
        self._kick_timer: asyncio.TimerHandle | None = None  # the line's one timer: gap end or a retry's time
        self._writing: asyncio.Future[None] | None = None  # the rest of a frame the tty took only in part
        self._idle = asyncio.Event()  # set when a callback exchange ends (a broadcast waits for it)
        self._direct = False  # the exchange on the line concludes as its reply settles (not a done-callback)

    async def _callback_sender(self) -> None:
        loop = asyncio.get_running_loop()
        fault = self._sender_fault = loop.create_future()
        self._schedule_kick()  # requests queued while no sender ran
        try:
            await fault
        finally:
            self._sender_fault = None
            if self._kick_timer is not None:
                self._kick_timer.cancel()
                self._kick_timer = None
            if self._writing is not None:
                self._writing.cancel()
                self._writing = None
            job = self._current
            if job is not None and not fault.done():  # cancelled (the link closing) mid-exchange
                self._clear_wait()
                self._current = None
                self._idle.set()
                self._finish(job, BridgeError("bridge link closed" if self._closed else "the sender stopped"))

    def _schedule_kick(self) -> None:
        if not self._kick_soon:
            self._kick_soon = True
            asyncio.get_running_loop().call_soon(self._kick)

    def _kick(self) -> None:
        self._kick_soon = False
        self._run_ready()

    def _kick_timer_fired(self) -> None:
        self._kick_timer = None
        self._run_ready()

    def _kick_at(self, when: float) -> None:
        timer = self._kick_timer
        if timer is not None:
            if timer.when() == when:
                return
            timer.cancel()
        self._kick_timer = asyncio.get_running_loop().call_at(when, self._kick_timer_fired)

    def _run_ready(self) -> None:
        """Start the next exchange if the line is free and a request is ready, else time the next look."""
        fault = self._sender_fault
        if fault is None or fault.done() or self._current is not None or self._turn.locked():
            return  # no sender (dead or not started), or the line is taken: its end looks again
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            pick = self._next_ready(now)
            if pick is None:
                return
            if isinstance(pick, float):
                self._kick_at(pick)
                return
            if now < self._line_free:
                self._kick_at(self._line_free)
                return
            self._jobs.remove(pick)
            self._current = pick
            try:
                wire = self._prepare(pick)
                if wire is not None:
                    sent = self.transport.write_now(wire)  # type: ignore[attr-defined]
                    if sent == len(wire):
                        self._direct = True  # the reply's settling concludes the exchange (_settled)
                        self._arm(wire)
                        return
                    self._writing = asyncio.ensure_future(self._write_rest(pick, wire, sent))
                    return
            except (BridgeError, ValueError) as exc:  # e.g. the transport failed: fail this request only
                self._clear_wait()
                self._finish(pick, exc if isinstance(exc, BridgeError) else BridgeError(str(exc)))
            except BaseException as exc:  # a bug: the sender dies, as its task would
                self._clear_wait()
                self._sender_broke(pick, exc)
                return
            self._current = None
            self._line_free = loop.time() + self._gap_s

    async def _write_rest(self, job: _Job, wire: bytes, sent: int) -> None:
        """The tty took part of the frame (its buffer was full): wait to write the rest, then the reply."""
        self._direct = False  # the reply may settle before the rest is written: its done-callback concludes
        try:
            await self.transport.write(wire[sent:])
            self._arm(wire)
        except (BridgeError, ValueError) as exc:
            self._clear_wait()
            self._finish(job, exc if isinstance(exc, BridgeError) else BridgeError(str(exc)))
            self._exchange_over()
            return
        except BaseException as exc:
            self._clear_wait()
            self._sender_broke(job, exc)
            if not isinstance(exc, Exception):
                raise
            return
        assert self._reply is not None
        self._reply.add_done_callback(self._replied)

    def _settled(self, reply: asyncio.Future[Frame]) -> None:
        """The current reply's future has just been settled (the reader matched the reply, or its
        wait ran out): conclude the exchange in the same callback, not in a done-callback one loop
        turn later. A frame the tty took only in part concludes by its done-callback instead."""
        if self._direct:
            self._replied(reply)

    def _replied(self, reply: asyncio.Future[Frame]) -> None:
        """The reply's future settled: finish the exchange, then start the next."""
        job = self._current
        if job is None or reply is not self._reply:
            return  # the sender stopped meanwhile and failed the job
        try:
            self._conclude(job, reply)
        except BaseException as exc:
            self._sender_broke(job, exc)
            return
        self._exchange_over()

    def _exchange_over(self) -> None:
        self._current = None
        self._idle.set()
        self._line_free = asyncio.get_running_loop().time() + self._gap_s
        if self._jobs:
            self._run_ready()

    def _sender_broke(self, job: _Job, exc: BaseException) -> None:
        """A bug in the sender's callbacks: fail the request it hit and let the sender task die of it."""
        self._current = None
        self._idle.set()
        self._finish(job, BridgeError("bridge link closed" if self._closed else "the sender stopped"))
        fault = self._sender_fault
        if fault is not None and not fault.done():
            fault.set_exception(exc)

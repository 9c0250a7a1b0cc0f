"""Byte transports under the bridge: a serial tty and an in-memory line for simulation.

A :class:`Transport` is the whole contract the link needs: ``write`` returns once the bytes are
handed to the line, ``read`` waits for at least one byte. Framing and timing live above it.

- :class:`SerialTransport` opens a tty (a USB RS-485 adapter, or one side of a pty in tests) with
  ``os.open`` + ``termios`` in raw, non-blocking mode and waits on the event loop's reader/writer
  callbacks: no threads, so it also runs on the simulator's virtual-time loop. It takes an
  exclusive ``flock`` on the device, because a line has one master: a second program opening
  the same port (``nodes ota`` while the daemon runs) is refused instead of stealing replies.
- :class:`MemoryLine` joins two :class:`MemoryEndpoint` objects with a perfect wire that charges
  10 bit times per byte on the loop's clock, so line utilisation and latency are realistic under
  virtual time without any real I/O. Faults are the simulator's business (``simulator.nodes``).
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
import termios
import tty
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from drivers.errors import BridgeError

BITS_PER_BYTE = 10  # start + 8 data + stop (8N1)

_BAUD = {
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    57600: termios.B57600,
    115200: termios.B115200,
    230400: termios.B230400,
    460800: termios.B460800,
    921600: termios.B921600,
}


def byte_time(baud: int) -> float:
    """Seconds one byte occupies the line at ``baud`` (8N1)."""
    return BITS_PER_BYTE / baud


@runtime_checkable
class Transport(Protocol):
    """A byte pipe to the RS-485 line."""

    async def write(self, data: bytes) -> None: ...

    async def read(self) -> bytes: ...

    async def aclose(self) -> None: ...


class LineInUse(BridgeError):
    """Another program holds the serial port (the daemon, or a ``nodes ota`` run): one master per line."""


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # a write to a line closed meanwhile: nobody waits for it


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SerialTransport:
    """A tty opened raw and non-blocking, driven by loop.add_reader / add_writer, locked against
    a second master (``flock(LOCK_EX | LOCK_NB)``, released when it is closed or the process ends)."""

    write_waits_for_line = False  # write returns once the kernel (or the adapter) has the bytes

    def __init__(self, path: str, baud: int = 115200) -> None:
        if baud not in _BAUD:
            raise BridgeError(f"{path}: baud {baud} not supported; use one of {sorted(_BAUD)}")
        self.path = path
        self.baud = baud
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise BridgeError(f"{path}: cannot open serial port ({exc.strerror})") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            raise LineInUse(
                f"{path} is in use by another program (the edge-agent daemon, or another nodes command); "
                "a line has one master: go through the daemon, or stop it first"
            ) from exc
        try:
            tty.setraw(self._fd)
            attrs = termios.tcgetattr(self._fd)
            attrs[2] &= ~(termios.CSTOPB | termios.PARENB | termios.CRTSCTS)
            attrs[2] |= termios.CLOCAL | termios.CREAD
            attrs[4] = attrs[5] = _BAUD[baud]
            termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
        except termios.error as exc:
            os.close(self._fd)
            raise BridgeError(f"{path}: not a serial port ({exc})") from exc

    @classmethod
    def from_fd(cls, fd: int, name: str, baud: int = 115200) -> SerialTransport:
        """Wrap an already-open descriptor (the master side of a pty, which has no path to open)."""
        self = cls.__new__(cls)
        self.path, self.baud, self._fd = name, baud, fd
        os.set_blocking(fd, False)
        return self

    def _require(self) -> int:
        if self._fd is None:
            raise BridgeError(f"{self.path}: transport closed")
        return self._fd

    async def write(self, data: bytes) -> None:
        fd = self._require()
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            try:
                n = os.write(fd, view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise BridgeError(f"{self.path}: write failed ({exc.strerror})") from exc
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_writer(fd, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_writer(fd)

    async def read(self) -> bytes:
        fd = self._require()
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                data = None
            except OSError as exc:
                raise BridgeError(f"{self.path}: read failed ({exc.strerror})") from exc
            if data:
                return data
            if data == b"":
                # A pty whose other side is closed reads as EOF (or EIO); a real adapter was unplugged.
                raise BridgeError(f"{self.path}: line closed")
            # The reader stays registered between reads (the link reads without pause): two
            # epoll_ctl calls per frame saved. It leaves only when the line has bytes nobody waits for.
            ready: asyncio.Future[None] = loop.create_future()
            self._waiting = ready
            if self._reader_loop is not loop:
                loop.add_reader(fd, self._readable)
                self._reader_loop = loop
            try:
                await ready
            finally:
                self._waiting = None

    _waiting: asyncio.Future[None] | None = None
    _reader_loop: asyncio.AbstractEventLoop | None = None
    _listener: Callable[[bytes], None] | None = None
    _fault: asyncio.Future[None] | None = None

    def write_now(self, data: bytes) -> int:
        """Write what the tty takes at once, without waiting; returns how many bytes it took.

        A frame is far smaller than the kernel's buffer, so on an idle line it is all of them:
        the link then starts an exchange from a callback, without a task of its own.
        """
        fd = self._require()
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise BridgeError(f"{self.path}: write failed ({exc.strerror})") from exc

    async def receive(self, on_bytes: Callable[[bytes], None]) -> None:
        """Hand every chunk read to ``on_bytes`` in the tty's readable callback (no reader task
        wakes per chunk), until a read fails or the line closes (raised as BridgeError) or
        ``on_bytes`` raises (raised as it is): the link's reader waits here, so its death is
        still reported."""
        fd = self._require()
        loop = asyncio.get_running_loop()
        fault: asyncio.Future[None] = loop.create_future()
        self._unwatch()
        self._listener, self._fault = on_bytes, fault
        loop.add_reader(fd, self._deliver)
        self._reader_loop = loop
        try:
            await fault
        finally:
            if self._fault is fault:
                self._unlisten()

    def _unlisten(self) -> None:
        if self._listener is not None:
            self._listener = self._fault = None
            self._unwatch()

    def _deliver(self, _size: int = 4096) -> None:
        listener, fault = self._listener, self._fault
        if listener is None or fault is None or self._fd is None:
            return
        try:
            data = os.read(self._fd, _size)
        except BlockingIOError:
            return
        except OSError as exc:
            self._stop_listening(BridgeError(f"{self.path}: read failed ({exc.strerror})"))
            return
        if not data:  # a pty whose other side is closed reads as EOF; a real adapter was unplugged
            self._stop_listening(BridgeError(f"{self.path}: line closed"))
            return
        try:
            listener(data)
        except BaseException as exc:  # a bug in the link's decoding: its reader dies and is reported
            self._stop_listening(exc)
            if not isinstance(exc, Exception):
                raise

    def _stop_listening(self, exc: BaseException) -> None:
        fault = self._fault
        self._unlisten()
        if fault is not None and not fault.done():
            fault.set_exception(exc)

    def _readable(self) -> None:
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            waiting.set_result(None)
        elif self._fd is not None and self._reader_loop is not None:  # bytes, and nobody reading: stop watching
            self._reader_loop.remove_reader(self._fd)
            self._reader_loop = None

    def _unwatch(self) -> None:
        if self._reader_loop is not None and self._fd is not None and not self._reader_loop.is_closed():
            self._reader_loop.remove_reader(self._fd)
        self._reader_loop = None

    async def aclose(self) -> None:
        if self._fault is not None:  # a receive() waiting: it ends with the line
            self._stop_listening(BridgeError(f"{self.path}: transport closed"))
        if self._fd is not None:
            self._unwatch()
            fd, self._fd = self._fd, None
            os.close(fd)


class MemoryEndpoint:
    """One end of a :class:`MemoryLine`."""

    write_waits_for_line = True  # write returns once the last byte has crossed the line

    def __init__(self, line: MemoryLine, name: str) -> None:
        self._line = line
        self.name = name
        self.peer: MemoryEndpoint | None = None
        self._inbox: deque[bytes] = deque()
        self._arrived = asyncio.Event()
        self._sending = asyncio.Lock()
        self._writers = 0  # write() calls holding or waiting for the line
        self._busy_until = 0.0  # end of a send_later transmission in progress
        # send_later's timers by number, so close() can cancel them; a timer's callback is a bound
        # method and its number, not a closure holding its own handle (a reference cycle that only
        # the garbage collector would free, two a request on a simulated line)
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_ids = itertools.count()
        # send_later's transmission booked ahead on one timer (see send_later): its timer's number,
        # its start, the line's end of use before it, and its bytes; None once it has started
        self._booked: tuple[int, float, float, bytes] | None = None
        self._closed = False
        # listen(): deliveries go to this callback (and a failure of it to this future), not the inbox
        self._listener: tuple[Callable[[bytes], None], asyncio.Future[None]] | None = None

    async def write(self, data: bytes) -> None:
        """Occupy the line for len(data) byte times, then deliver the bytes to the other end."""
        if self._closed:
            raise BridgeError(f"memory line {self.name}: closed")
        if self._booked is not None:
            self._unbook(asyncio.get_running_loop())
        self._writers += 1
        try:
            async with self._sending:
                loop = asyncio.get_running_loop()
                if self._busy_until > loop.time():  # a send_later transmission holds the line
                    await asyncio.sleep(self._busy_until - loop.time())
                await asyncio.sleep(len(data) * self._line.byte_s)
                self._deliver(data)
        finally:
            self._writers -= 1

    def send_later(self, delay: float, data: bytes) -> None:
        """Write ``data`` after ``delay`` seconds without awaiting it: what ``sleep(delay)`` then
        ``write(data)`` in a task would do, on one timer per transmission instead of a task and
        two sleeps. If the line is taken when the time comes, it queues behind like ``write``.

        A simulated node's reply comes here, once per exchange of the simulated day. When nothing
        else is on or bound for this end of the line, the transmission is booked at once: its
        delivery is timed for its start plus its bytes, and no timer marks the start (a timer and
        a loop turn fewer per reply). Whatever else wants this end before that start (``write``,
        ``transmit``, or another ``send_later`` that starts sooner) first undoes the booking and
        sets the start's timer, so the line is taken in the same order as without it."""
        loop = asyncio.get_running_loop()
        start = loop.time() + delay
        if self._timers or self._writers or self._busy_until > start or self._closed:
            self._later(loop, start, self._start, data)
            return
        end = start + len(data) * self._line.byte_s
        key = next(self._timer_ids)
        self._timers[key] = loop.call_at(end, self._fire, key, self._deliver, data)
        self._booked = (key, start, self._busy_until, data)
        self._busy_until = end

    def _unbook(self, loop: asyncio.AbstractEventLoop) -> None:
        """Something else wants the line: a booked transmission that has not started yet goes back
        to a timer at its start (then it finds the line taken, or not, as ``_start`` decides)."""
        booked = self._booked
        assert booked is not None
        key, start, busy_before, data = booked
        if loop.time() >= start:  # it is on the wire already: it holds the line, as _start left it
            return
        self._booked = None
        self._timers.pop(key).cancel()
        self._busy_until = busy_before
        self._later(loop, start, self._start, data)

    def _later(self, loop: asyncio.AbstractEventLoop, when: float, fn: Callable[[bytes], None], data: bytes) -> None:
        key = next(self._timer_ids)
        self._timers[key] = loop.call_at(when, self._fire, key, fn, data)

    def _fire(self, key: int, fn: Callable[[bytes], None], data: bytes) -> None:
        del self._timers[key]
        booked = self._booked
        if booked is not None and booked[0] == key:
            self._booked = None
        fn(data)

    def _start(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        if self._closed:
            return
        if self._booked is not None:
            self._unbook(loop)
        now = loop.time()
        if self._writers or self._busy_until > now:  # someone is on the line: wait for it in turn
            task = loop.create_task(self.write(data))
            task.add_done_callback(_consume)
            return
        self._busy_until = now + len(data) * self._line.byte_s
        self._later(loop, self._busy_until, self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        self._line.record(len(data))
        peer = self.peer
        if peer is not None and not peer._closed:
            if peer._listener is not None:
                peer._hand(bytes(data))
                return
            peer._inbox.append(bytes(data))
            peer._arrived.set()

    async def read(self) -> bytes:
        while not self._inbox:
            if self._closed:
                raise BridgeError(f"memory line {self.name}: closed")
            self._arrived.clear()
            await self._arrived.wait()
        return self._inbox.popleft()

    # ---- from callbacks: what a tty's write_now and receive do (edge_agent.backend.MemoryLineLease) ----
    # Not write_now/receive themselves, so that a link on a bare endpoint (the bridge's tests, the
    # workload tools) keeps its reader and sender tasks; the simulated day's lease opts in.
    def transmit(self, data: bytes) -> None:
        """Start sending ``data`` now without awaiting it; it arrives after its byte times, queued
        behind a transmission in progress as ``write`` would be."""
        if self._closed:
            raise BridgeError(f"memory line {self.name}: closed")
        self._start(bytes(data))

    async def listen(self, on_bytes: Callable[[bytes], None]) -> None:
        """Hand every delivery to ``on_bytes`` in the callback that delivers it (no reader task
        wakes per chunk), until the endpoint closes (raised as BridgeError) or ``on_bytes``
        raises (raised as it is)."""
        if self._closed:
            raise BridgeError(f"memory line {self.name}: closed")
        fault: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._listener = (on_bytes, fault)
        try:
            while self._inbox and self._listener is not None:  # what came before it listened
                self._hand(self._inbox.popleft())
            await fault
        finally:
            if self._listener is not None and self._listener[1] is fault:
                self._listener = None

    def _hand(self, data: bytes) -> None:
        assert self._listener is not None
        on_bytes, fault = self._listener
        try:
            on_bytes(data)
        except BaseException as exc:
            self._listener = None
            if not fault.done():
                fault.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def aclose(self) -> None:
        self._closed = True
        if self._listener is not None:
            _, fault = self._listener
            self._listener = None
            if not fault.done():
                fault.set_exception(BridgeError(f"memory line {self.name}: closed"))
        for handle in self._timers.values():  # transmissions not yet on the wire, or cut short, never arrive
            handle.cancel()
        self._timers.clear()
        self._booked = None
        self._arrived.set()


class MemoryLine:
    """A simulated serial line: two endpoints, 10 bit times per byte, utilisation accounting.

    Both endpoints must be created and used on the same event loop (the loop's clock is the
    line's clock, so a :class:`simulator.clock.VirtualTimeLoop` gives virtual-time byte timing).
    """

    def __init__(self, baud: int = 115200) -> None:
        self.baud = baud
        self.byte_s = byte_time(baud)
        self.master = MemoryEndpoint(self, "master")
        self.slave = MemoryEndpoint(self, "slave")
        self.master.peer, self.slave.peer = self.slave, self.master
        self.bytes_carried = 0

    def record(self, n: int) -> None:
        self.bytes_carried += n

    @property
    def busy_s(self) -> float:
        """Seconds the line has carried bits (both directions; half duplex)."""
        return self.bytes_carried * self.byte_s

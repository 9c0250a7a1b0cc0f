"""DWM1001 nodes on a UART, served on a pty: the driver opens ``port`` like /dev/ttyACM0.

A tag answers the TLV API (below); a listener runs its shell (:class:`SimListenerUart`). For the
virtual clock both have an in-process twin (:class:`LoopbackSerial`, :class:`LoopbackListener`).

The simulator keeps the pty master (and holds the slave open too, so the master never sees a
hang-up between driver sessions) and answers the TLV API requests it understands: ``0C 00``
dwm_loc_get and ``02 00`` dwm_pos_get; any other well-formed TLV gets ``40 01 01`` (bad TLV).
Faults: SLOW = no answer at all, NACK = ``40 01 04`` (busy), CORRUPT_CRC = a truncated answer.
"""

from __future__ import annotations

import asyncio
import os
import tty

from drivers.serial import SerialStream
from simulator.hw.bus import Fault, FaultSet
from simulator.hw.dwm1001 import SimDwm1001Listener, SimDwm1001Tag


class _Pty:
    """A fresh pty whose slave side (``port``) a driver opens; the part reads the master side."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        os.set_blocking(self._master, False)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 1024)
        except (BlockingIOError, OSError):
            return
        self._on_bytes(data)

    def _on_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._master)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1


class SimDwm1001Uart(_Pty):
    """Serve ``tag`` on a fresh pty; call ``start()`` inside the loop and ``close()`` after."""

    def __init__(self, tag: SimDwm1001Tag) -> None:
        super().__init__()
        self.tag = tag
        self.faults = FaultSet()
        self.requests = 0
        self._inbox = bytearray()

    def inject(self, fault: Fault | str, count: int | None = None) -> None:
        self.faults.inject(fault, count)

    def clear_faults(self) -> None:
        self.faults.clear()

    def _on_bytes(self, data: bytes) -> None:
        self._inbox += data
        while len(self._inbox) >= 2:
            kind, length = self._inbox[0], self._inbox[1]
            if len(self._inbox) < 2 + length:
                return
            del self._inbox[: 2 + length]
            self.requests += 1
            self._answer(kind)

    def _answer(self, kind: int) -> None:
        reply = answer(self.tag, self.faults, kind)
        if reply:
            os.write(self._master, reply)


def answer(tag: SimDwm1001Tag, faults: FaultSet, kind: int) -> bytes:
    """The tag's reply to one TLV request of type ``kind`` (empty: no answer at all)."""
    if faults.consume(Fault.SLOW):
        return b""
    if faults.consume(Fault.NACK):
            reply = b"\x40\x01\x04"
    elif kind == 0x0C:
        reply = tag.loc_get_response()
    elif kind == 0x02:
        reply = tag.loc_get_response()[:18]
    else:
        reply = b"\x40\x01\x01"
    if faults.consume(Fault.CORRUPT_CRC):
        reply = reply[: len(reply) // 2]
    return reply


class LoopbackSerial:
    """The tag's UART as an in-process stream with :class:`drivers.serial.SerialStream`'s surface.

    On the simulated floor's virtual clock a pty cannot work: its answer arrives in wall time,
    after the driver's (virtual) timeout. This stream answers at once, byte for byte the same.
    """

    def __init__(self, tag: SimDwm1001Tag, faults: FaultSet | None = None) -> None:
        self.tag = tag
        self.faults = faults or FaultSet()
        self.requests = 0
        self._inbox = bytearray()
        self._outbox = bytearray()

    async def open(self) -> None:
        return None

    async def write(self, data: bytes) -> None:
        self._inbox += data
        while len(self._inbox) >= 2 and len(self._inbox) >= 2 + self._inbox[1]:
            kind, length = self._inbox[0], self._inbox[1]
            del self._inbox[: 2 + length]
            self.requests += 1
            self._outbox += answer(self.tag, self.faults, kind)

    async def read_exactly(self, n: int, timeout_s: float) -> bytes:
        if len(self._outbox) < n:
            from drivers.errors import BusTimeoutError

            await asyncio.sleep(timeout_s)
            got = len(self._outbox)
            self._outbox.clear()
            raise BusTimeoutError(f"sim-uart:{self.tag.address}: expected {n} bytes, got {got} in {timeout_s:g} s")
        out = bytes(self._outbox[:n])
        del self._outbox[:n]
        return out

    async def reset_input(self) -> None:
        self._outbox.clear()

    def close(self) -> None:
        self._outbox.clear()


class SimListenerUart(_Pty):
    """Serve a :class:`SimDwm1001Listener` on a fresh pty (``port``), like a DWM1001-DEV on USB."""

    def __init__(self, listener: SimDwm1001Listener) -> None:
        super().__init__()
        self.listener = listener
        listener.emit = self._write

    def _write(self, data: bytes) -> None:
        if self._master >= 0:
            os.write(self._master, data)

    def _on_bytes(self, data: bytes) -> None:
        self.listener.receive(data)


class LoopbackListener(SerialStream):
    """A listener's UART in process: :class:`drivers.serial.SerialStream` with the node for a tty.

    For the simulated floor's virtual clock, like :class:`LoopbackSerial`: what the node writes
    is in the stream's buffer at once, and a read that waits for a line waits in simulated time.
    """

    def __init__(self, listener: SimDwm1001Listener) -> None:
        super().__init__(f"sim-uart:{listener.name}")
        self.listener = listener
        listener.emit = self._on_output

    def _on_output(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self.max_buffer:  # nobody reads: keep the newest, as the tty's buffer does
            del self._buffer[: len(self._buffer) - self.max_buffer]
        self._data.set()

    async def open(self) -> None:
        return None

    async def write(self, data: bytes) -> None:
        self.listener.receive(data)

    def close(self) -> None:
        self._buffer.clear()

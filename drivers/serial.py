"""An asyncio byte stream over a serial tty, without threads.

pyserial opens and configures the port (baud rate, 8N1, raw mode); from then on the file
descriptor is non-blocking and the event loop watches it with ``add_reader``, so a read costs
no thread and works on the simulator's virtual-time loop. A pty slave behaves like any tty,
which is how the tests and the simulator attach a fake DWM1001 or bridge.
"""

from __future__ import annotations

import asyncio
import os
from types import TracebackType
from typing import Any

from drivers.errors import BusError, BusTimeoutError, PortUnavailableError


class SerialStream:
    """``async with SerialStream("/dev/ttyACM0", 115200) as s: await s.write(...)``."""

    def __init__(self, path: str, baudrate: int = 115200, *, max_buffer: int = 65536) -> None:
        self.path = path
        self.baudrate = baudrate
        self.max_buffer = max_buffer
        self._serial: Any = None
        self._fd = -1
        self._buffer = bytearray()
        self._data = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        import serial

        try:
            self._serial = serial.Serial(self.path, self.baudrate, timeout=0, write_timeout=0)
        except (serial.SerialException, OSError) as exc:
            raise PortUnavailableError(
                f"{self.path}: cannot open ({exc}); check the path and that the user is in group dialout", bus=self.path
            ) from exc
        self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # hang-up: stop watching, readers will time out
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            return
        self._buffer += chunk
        if len(self._buffer) > self.max_buffer:  # nobody reads: keep the newest bytes
            del self._buffer[: len(self._buffer) - self.max_buffer]
        self._data.set()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        for _ in range(1000):  # bounded: a tty that never drains is an error, not a hang
            if not view:
                return
            try:
                sent = os.write(self._fd, view)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise BusError(f"{self.path}: write failed ({exc.strerror})", bus=self.path) from exc
            view = view[sent:]
            if view:
                await asyncio.sleep(0.001)
        raise BusTimeoutError(f"{self.path}: output never drained", bus=self.path)

    async def read_exactly(self, n: int, timeout_s: float) -> bytes:
        """``n`` bytes, or BusTimeoutError after ``timeout_s`` seconds."""
        try:
            async with asyncio.timeout(timeout_s):
                while len(self._buffer) < n:
                    self._data.clear()
                    await self._data.wait()
        except TimeoutError:
            raise BusTimeoutError(
                f"{self.path}: expected {n} bytes, got {len(self._buffer)} in {timeout_s} s", bus=self.path
            ) from None
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def read_until(self, separator: bytes, timeout_s: float, *, max_bytes: int = 4096) -> bytes:
        """Bytes up to and including ``separator`` (a text protocol's line), or BusTimeoutError.

        A run of ``max_bytes`` without the separator is handed over as it is (a line too long to
        be one the part sends), so a stream of garbage cannot grow the buffer without bound.
        """
        try:
            async with asyncio.timeout(timeout_s):
                while (end := self._buffer.find(separator)) < 0 and len(self._buffer) < max_bytes:
                    self._data.clear()
                    await self._data.wait()
        except TimeoutError:
            raise BusTimeoutError(
                f"{self.path}: no {separator!r} within {timeout_s} s ({len(self._buffer)} bytes waiting)",
                bus=self.path,
            ) from None
        cut = end + len(separator) if end >= 0 else max_bytes
        out = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return out

    async def reset_input(self) -> None:
        """Drop stale bytes (a late answer to a previous, timed-out request)."""
        self._buffer.clear()

    def close(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        if self._serial is not None:
            self._serial.close()
        self._serial, self._fd = None, -1

    async def __aenter__(self) -> SerialStream:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

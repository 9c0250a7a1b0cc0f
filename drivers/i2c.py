"""One I2C device on a bus port, reached the same way whatever the port is.

:class:`I2CDevice` is the only thing drivers use to talk to an I2C part. It accepts either kind
of port from :mod:`drivers.ports`:

- a synchronous :class:`~drivers.ports.I2CBus` (a real ``smbus2.SMBus``, a mux channel on it, the
  simulator's ``SimI2CBus``). Its calls block in the kernel, so they run in a worker thread via
  ``asyncio.to_thread`` -- *unless* the bus has a truthy ``inline_io`` attribute. The simulator
  sets it: its calls are cheap, and on virtual time work done in a thread is invisible, so they
  must stay on the event loop;
- an :class:`~drivers.ports.AsyncI2CBus` (a node's bus over the firmware bridge), whose
  ``transfer`` is awaited.

Raw writes and reads use ``i2c_rdwr`` rather than SMBus calls because Sensirion parts and the
BH1750 have no registers: an SMBus "read block" would send a register byte they take as a command.
Kernel errors are translated at this boundary (``raise ... from``), so drivers only ever see
:mod:`drivers.errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar, cast

from smbus2 import i2c_msg

from drivers.errors import BusError, translate_oserror
from drivers.ports import AsyncI2CBus, Clock, I2CBus

T = TypeVar("T")

SMBUS_BLOCK_MAX = 32


def is_async_bus(bus: object) -> bool:
    """An AsyncI2CBus has ``transfer``; everything else is treated as a blocking SMBus-like port."""
    return callable(getattr(bus, "transfer", None))


def bus_label(bus: object) -> str:
    """A short name for error messages: the bus's ``name`` if it has one, else its class."""
    name = getattr(bus, "name", None)
    return name if isinstance(name, str) and name else type(bus).__name__


async def run_bus(bus: object, call: Callable[..., T], *args: Any, address: int | None = None) -> T:
    """Run one blocking bus call, off the loop unless the port says its calls are inline.

    OSError from the kernel (or from a simulated bus imitating it) becomes a
    :class:`~drivers.errors.BusError` subclass; errors already translated pass through.
    """
    try:
        if getattr(bus, "inline_io", False):
            return call(*args)
        return await asyncio.to_thread(call, *args)
    except BusError:
        raise
    except OSError as exc:
        raise translate_oserror(exc, bus=bus_label(bus), address=address) from exc


class I2CDevice:
    """A device at ``address`` on ``bus``: raw write/read, Sensirion write-wait-read, register blocks."""

    def __init__(self, bus: I2CBus | AsyncI2CBus, address: int, *, name: str = "") -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"0x{address:02x} is not a 7-bit I2C address (0x03-0x77)")
        self.bus = bus
        self.address = address
        self.name = name or f"{bus_label(bus)}@0x{address:02x}"
        self._async = is_async_bus(bus)
        # Exactly one of these is used; the casts record which protocol the bus was found to speak.
        self._sync = cast(I2CBus, bus)
        self._abus = cast(AsyncI2CBus, bus)

    async def _transfer(self, write: bytes, read_len: int) -> bytes:
        """The one async primitive both port kinds are reduced to."""
        bus = self._abus
        try:
            data = await bus.transfer(self.address, write, read_len)
        except BusError:
            raise
        except OSError as exc:
            raise translate_oserror(exc, bus=bus_label(bus), address=self.address) from exc
        return bytes(data)

    async def write(self, data: bytes) -> None:
        """One raw write transaction (START, address+W, data, STOP)."""
        if self._async:
            await self._transfer(bytes(data), 0)
            return
        sync = self._sync
        await run_bus(sync, sync.i2c_rdwr, i2c_msg.write(self.address, bytes(data)), address=self.address)

    async def read(self, n: int) -> bytes:
        """One raw read transaction of ``n`` bytes (no register byte is sent)."""
        if self._async:
            return await self._transfer(b"", n)
        sync = self._sync
        msg = i2c_msg.read(self.address, n)
        await run_bus(sync, sync.i2c_rdwr, msg, address=self.address)
        return bytes(msg)

    async def write_read(self, data: bytes, n: int, delay_s: float = 0.0, clock: Clock | None = None) -> bytes:
        """Sensirion style: write a command, wait its execution time, then read ``n`` bytes.

        These are two separate transactions with a STOP between them, as the parts require; a
        repeated-start read straight after the command would be NACKed while the part is busy.
        """
        await self.write(data)
        if delay_s > 0:
            if clock is not None:
                await clock.sleep(delay_s)
            else:
                await asyncio.sleep(delay_s)
        return await self.read(n)

    async def read_register_block(self, reg: int, n: int) -> bytes:
        """SMBus I2C-block read of ``n`` (<= 32) bytes starting at register ``reg``."""
        if not 0 < n <= SMBUS_BLOCK_MAX:
            raise ValueError(f"{self.name}: an SMBus block read is 1..32 bytes, not {n}")
        if self._async:
            return await self._transfer(bytes([reg]), n)
        sync = self._sync
        values = await run_bus(sync, sync.read_i2c_block_data, self.address, reg, n, address=self.address)
        return bytes(values)

    async def write_register(self, reg: int, value: int) -> None:
        """SMBus write-byte-data: one register, one value."""
        if self._async:
            await self._transfer(bytes([reg, value]), 0)
            return
        sync = self._sync
        await run_bus(sync, sync.write_byte_data, self.address, reg, value, address=self.address)

    async def read_register(self, reg: int) -> int:
        """SMBus read-byte-data."""
        return (await self.read_register_block(reg, 1))[0]

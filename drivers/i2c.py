"""One I2C device on a bus port, reached the same way whatever the port is.

Every I2C port a driver sees is an :class:`~drivers.ports.AsyncI2CBus`: one awaited
``transfer`` (write, repeated start, read). What stands behind it is the port's business, never
the driver's:

- :class:`SmbusPort`, the gateway's own bus: a blocking ``smbus2.SMBus`` whose ``i2c_rdwr`` and
  ``write_quick`` calls run in a worker thread, because they block in the kernel;
- a TCA9548A channel (:mod:`drivers.mux`), a node's bus tunnelled over the firmware bridge, or the
  simulator's bus, which implement ``transfer`` themselves.

So a driver runs the same code on a gateway, on a node and in the simulator: no driver asks which
kind of bus it has. Raw writes and reads are used rather than SMBus register calls because
Sensirion parts and the BH1750 have no registers: an SMBus "read block" would send a register byte
they take as a command. Kernel errors are translated at this boundary (``raise ... from``), so
drivers only ever see :mod:`drivers.errors`.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from smbus2 import i2c_msg

from drivers.errors import BusError, translate_oserror
from drivers.ports import AsyncI2CBus, Clock


class BlockingI2C(Protocol):
    """What :class:`SmbusPort` needs of a blocking bus: ``smbus2.SMBus`` has all of it."""

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None: ...

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None: ...

    def close(self) -> None: ...


def bus_label(bus: object) -> str:
    """A short name for error messages: the bus's ``name`` if it has one, else its class."""
    name = getattr(bus, "name", None)
    return name if isinstance(name, str) and name else type(bus).__name__


class SmbusPort:
    """A blocking Linux I2C adapter (``smbus2.SMBus`` on ``/dev/i2c-N``) as an async port.

    Each transfer is one ``i2c_rdwr`` (combined transaction, repeated start, no 32-byte SMBus
    limit) run in a worker thread; an address-only transfer is SMBus quick write, the probe
    ``i2cdetect`` uses.
    """

    def __init__(self, bus: BlockingI2C, name: str = "") -> None:
        self.bus = bus
        self.name = name or bus_label(bus)

    def _run(self, address: int, write: bytes, read_len: int) -> bytes:
        if not write and not read_len:
            self.bus.write_quick(address)
            return b""
        msgs = []
        if write:
            msgs.append(i2c_msg.write(address, write))
        reader = i2c_msg.read(address, read_len) if read_len else None
        if reader is not None:
            msgs.append(reader)
        self.bus.i2c_rdwr(*msgs)
        return bytes(reader) if reader is not None else b""

    async def transfer(self, address: int, write: bytes, read_len: int) -> bytes:
        return await asyncio.to_thread(self._run, address, bytes(write), read_len)

    def close(self) -> None:
        self.bus.close()


class I2CDevice:
    """A device at ``address`` on ``bus``: raw write/read, Sensirion write-wait-read, registers."""

    def __init__(self, bus: AsyncI2CBus, address: int, *, name: str = "") -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"0x{address:02x} is not a 7-bit I2C address (0x03-0x77)")
        self.bus = bus
        self.address = address
        self.name = name or f"{bus_label(bus)}@0x{address:02x}"

    async def transfer(self, write: bytes, read_len: int) -> bytes:
        """The one primitive: write (may be empty), repeated start, read ``read_len`` bytes."""
        try:
            data = await self.bus.transfer(self.address, bytes(write), read_len)
        except BusError:
            raise
        except OSError as exc:
            raise translate_oserror(exc, bus=bus_label(self.bus), address=self.address) from exc
        return bytes(data)

    async def probe(self) -> None:
        """Address-only write (START, address+W, STOP): raises NackError when nothing answers."""
        await self.transfer(b"", 0)

    async def write(self, data: bytes) -> None:
        """One raw write transaction (START, address+W, data, STOP)."""
        await self.transfer(bytes(data), 0)

    async def read(self, n: int) -> bytes:
        """One raw read transaction of ``n`` bytes (no register byte is sent)."""
        return await self.transfer(b"", n)

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
        """Register pointer ``reg``, repeated start, ``n`` bytes (parts that auto-increment)."""
        if n < 1:
            raise ValueError(f"{self.name}: a register read is at least 1 byte, not {n}")
        return await self.transfer(bytes([reg]), n)

    async def write_register(self, reg: int, value: int) -> None:
        """One register, one value."""
        await self.transfer(bytes([reg, value & 0xFF]), 0)

    async def read_register(self, reg: int) -> int:
        return (await self.read_register_block(reg, 1))[0]

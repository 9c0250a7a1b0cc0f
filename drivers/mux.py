"""TCA9548A I2C multiplexer: each downstream channel as a bus port of its own.

Datasheet (TI SCPS207): the TCA9548A has one control register and no register address. A
single-byte write to the mux address sets the register; bit *n* connects downstream channel *n*.
Several bits may be set at once, but we only ever set one, because the same sensor address
(two SCD41s at 0x62) sits on several channels -- which is why the mux is there at all.

Design: one :class:`Tca9548a` object per physical mux holds the lock and the cached selection;
its channels are thin ports that re-select before a transaction only when another channel was
selected last. The port kind follows the parent:

- on a synchronous parent (``smbus2.SMBus`` or the simulator) a channel is a synchronous
  :class:`~drivers.ports.I2CBus` (:class:`MuxChannel`), guarded by a ``threading.Lock`` because
  drivers call it from worker threads; it copies the parent's ``inline_io`` flag;
- on an async parent (a node's tunnelled bus) a channel is an :class:`~drivers.ports.AsyncI2CBus`
  (:class:`AsyncMuxChannel`), guarded by an ``asyncio.Lock``.

Create exactly one :class:`Tca9548a` per (parent bus, address) and share it; two objects for the
same chip would each believe their cached selection and interleave channels.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from drivers.i2c import bus_label, is_async_bus
from drivers.ports import AsyncI2CBus, I2CBus

if TYPE_CHECKING:
    from smbus2 import i2c_msg

T = TypeVar("T")


class Tca9548a:
    """One physical multiplexer at ``address`` (0x70-0x77) on ``parent``."""

    def __init__(self, parent: I2CBus | AsyncI2CBus, address: int = 0x70, *, name: str = "") -> None:
        if not 0x70 <= address <= 0x77:
            raise ValueError(f"0x{address:02x}: a TCA9548A answers at 0x70-0x77 (A2..A0 pins)")
        self.parent = parent
        self.address = address
        self.name = name or f"{bus_label(parent)}/mux@0x{address:02x}"
        self.selected: int | None = None  # channel the chip is believed to have connected
        self._thread_lock = threading.Lock()
        self._async_lock = asyncio.Lock()
        self._channels: dict[int, MuxChannel | AsyncMuxChannel] = {}

    @property
    def is_async(self) -> bool:
        return is_async_bus(self.parent)

    def channel(self, n: int) -> MuxChannel | AsyncMuxChannel:
        """The port for downstream channel ``n`` (0-7), of the same kind as the parent bus."""
        if not 0 <= n <= 7:
            raise ValueError(f"{self.name}: channel {n} does not exist; use 0..7")
        if n not in self._channels:
            self._channels[n] = AsyncMuxChannel(self, n) if self.is_async else MuxChannel(self, n)
        return self._channels[n]

    def sync_channel(self, n: int) -> MuxChannel:
        """Channel ``n`` typed as a synchronous port; the parent must be synchronous."""
        ch = self.channel(n)
        if not isinstance(ch, MuxChannel):
            raise TypeError(f"{self.name}: parent bus is asynchronous; use async_channel({n})")
        return ch

    def async_channel(self, n: int) -> AsyncMuxChannel:
        """Channel ``n`` typed as an async port; the parent must be asynchronous."""
        ch = self.channel(n)
        if not isinstance(ch, AsyncMuxChannel):
            raise TypeError(f"{self.name}: parent bus is synchronous; use sync_channel({n})")
        return ch

    # -- synchronous path ------------------------------------------------------------------
    def run_on(self, n: int, call: Callable[[], T]) -> T:
        """Select channel ``n`` if needed and run one parent-bus call, holding the mux lock."""
        parent = cast(I2CBus, self.parent)
        with self._thread_lock:
            if self.selected != n:
                self.selected = None  # unknown until the write is acknowledged
                parent.write_byte(self.address, 1 << n)
                self.selected = n
            try:
                return call()
            except OSError:
                # A NACK may mean the mux itself was reset (brown-out): re-select next time.
                self.selected = None
                raise

    # -- asynchronous path -----------------------------------------------------------------
    async def transfer_on(self, n: int, address: int, write: bytes, read_len: int) -> bytes:
        """Select channel ``n`` if needed and run one transfer on the async parent."""
        parent = cast(AsyncI2CBus, self.parent)
        async with self._async_lock:
            if self.selected != n:
                self.selected = None
                await parent.transfer(self.address, bytes([1 << n]), 0)
                self.selected = n
            try:
                return await parent.transfer(address, write, read_len)
            except OSError:
                self.selected = None
                raise


class MuxChannel:
    """A synchronous I2CBus port for one TCA9548A channel (parent is an SMBus-like bus)."""

    def __init__(self, mux: Tca9548a, channel: int) -> None:
        self.mux = mux
        self.channel = channel
        self.name = f"{mux.name}/ch{channel}"
        self.inline_io = bool(getattr(mux.parent, "inline_io", False))
        self._parent = cast(I2CBus, mux.parent)

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self.mux.run_on(self.channel, lambda: self._parent.read_byte_data(i2c_addr, register, force))

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self.mux.run_on(self.channel, lambda: self._parent.write_byte_data(i2c_addr, register, value, force))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        return self.mux.run_on(
            self.channel, lambda: self._parent.read_i2c_block_data(i2c_addr, register, length, force)
        )

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        self.mux.run_on(self.channel, lambda: self._parent.write_i2c_block_data(i2c_addr, register, data, force))

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        self.mux.run_on(self.channel, lambda: self._parent.write_byte(i2c_addr, value, force))

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self.mux.run_on(self.channel, lambda: self._parent.read_byte(i2c_addr, force))

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        self.mux.run_on(self.channel, lambda: self._parent.i2c_rdwr(*i2c_msgs))


class AsyncMuxChannel:
    """An AsyncI2CBus port for one TCA9548A channel on an async (bridged) parent."""

    def __init__(self, mux: Tca9548a, channel: int) -> None:
        self.mux = mux
        self.channel = channel
        self.name = f"{mux.name}/ch{channel}"

    async def transfer(self, address: int, write: bytes, read_len: int) -> bytes:
        return await self.mux.transfer_on(self.channel, address, write, read_len)

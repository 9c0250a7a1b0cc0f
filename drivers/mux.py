"""TCA9548A I2C multiplexer: each downstream channel as a bus port of its own.

Datasheet (TI SCPS207): the TCA9548A has one control register and no register address. A
single-byte write to the mux address sets the register; bit *n* connects downstream channel *n*.
Several bits may be set at once, but we only ever set one, because the same sensor address
(two SCD41s at 0x62) sits on several channels -- which is why the mux is there at all.

Design: one :class:`Tca9548a` object per physical mux holds an ``asyncio.Lock`` and the cached
selection; its channels are thin :class:`~drivers.ports.AsyncI2CBus` ports that re-select
before a transfer only when another channel was selected last. The parent is any I2C port: the
gateway's own bus, a node's tunnelled bus, or the simulator's.

Create exactly one :class:`Tca9548a` per (parent bus, address) and share it; two objects for the
same chip would each believe their cached selection and interleave channels.
"""

from __future__ import annotations

import asyncio

from drivers.i2c import bus_label
from drivers.ports import AsyncI2CBus


class Tca9548a:
    """One physical multiplexer at ``address`` (0x70-0x77) on ``parent``."""

    def __init__(self, parent: AsyncI2CBus, address: int = 0x70, *, name: str = "") -> None:
        if not 0x70 <= address <= 0x77:
            raise ValueError(f"0x{address:02x}: a TCA9548A answers at 0x70-0x77 (A2..A0 pins)")
        self.parent = parent
        self.address = address
        self.name = name or f"{bus_label(parent)}/mux@0x{address:02x}"
        self.selected: int | None = None  # channel the chip is believed to have connected
        self._lock = asyncio.Lock()
        self._channels: dict[int, MuxChannel] = {}

    def channel(self, n: int) -> MuxChannel:
        """The port for downstream channel ``n`` (0-7)."""
        if not 0 <= n <= 7:
            raise ValueError(f"{self.name}: channel {n} does not exist; use 0..7")
        if n not in self._channels:
            self._channels[n] = MuxChannel(self, n)
        return self._channels[n]

    async def transfer_on(self, n: int, address: int, write: bytes, read_len: int) -> bytes:
        """Select channel ``n`` if needed and run one transfer on the parent, holding the mux lock."""
        async with self._lock:
            if self.selected != n:
                self.selected = None  # unknown until the write is acknowledged
                await self.parent.transfer(self.address, bytes([1 << n]), 0)
                self.selected = n
            try:
                return await self.parent.transfer(address, write, read_len)
            except OSError:
                # A NACK may mean the mux itself was reset (brown-out): re-select next time.
                self.selected = None
                raise


class MuxChannel:
    """The :class:`~drivers.ports.AsyncI2CBus` port of one TCA9548A channel."""

    def __init__(self, mux: Tca9548a, channel: int) -> None:
        self.mux = mux
        self.channel = channel
        self.name = f"{mux.name}/ch{channel}"

    async def transfer(self, address: int, write: bytes, read_len: int) -> bytes:
        return await self.mux.transfer_on(self.channel, address, write, read_len)

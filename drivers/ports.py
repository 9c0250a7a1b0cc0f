"""Bus ports: the small interfaces every driver is written against.

A driver never opens ``/dev`` itself. It is handed a port, and the port may be the gateway's own
bus (smbus2), a channel of a TCA9548A multiplexer, a node's bus tunnelled over the RS-485
firmware bridge, or the simulator. Keeping the ports small keeps all of these honest.

``I2CBus`` is the subset of ``smbus2.SMBus`` the drivers use, so a real ``smbus2.SMBus``
satisfies it as it is. Implementations must:

- raise ``OSError`` with errno 121 (EREMOTEIO) or 5 (EIO) when the device does not acknowledge;
- refuse SMBus block transfers longer than 32 bytes with ``ValueError`` (smbus2 does);
- execute ``i2c_rdwr`` messages as one combined transaction (repeated start), filling the
  buffers of read messages in place.

They may block: drivers call them through ``asyncio.to_thread`` or, for in-process ports whose
calls are cheap (the simulator), directly; see ``drivers.i2c.run_bus``.

``Clock`` is how drivers wait for conversion times: the daemon passes the real clock, the
simulator a virtual one, so a library day can run in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # drivers build smbus2 messages; only the type is needed here
    from smbus2 import i2c_msg


@runtime_checkable
class I2CMessage(Protocol):
    """One segment of a combined I2C transaction (smbus2's ``i2c_msg``)."""

    addr: int
    flags: int
    len: int

    def __iter__(self) -> Iterable[int]: ...
    def __bytes__(self) -> bytes: ...


@runtime_checkable
class I2CBus(Protocol):
    """The SMBus subset that drivers may use. ``smbus2.SMBus`` is one implementation."""

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None: ...

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None: ...

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int: ...

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """Monotonic seconds for intervals, wall seconds (UNIX epoch) for timestamps, and sleep."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@runtime_checkable
class AsyncI2CBus(Protocol):
    """An I2C bus reached asynchronously: a node's bus tunnelled over the firmware bridge.

    One method: write ``write`` (may be empty), then, after a repeated start, read ``read_len``
    bytes (may be 0). Raise :class:`drivers.errors.NackError` when the device does not
    acknowledge. Drivers reach both kinds of bus through :class:`drivers.i2c.I2CDevice`, so a
    driver runs unchanged on a local bus, a mux channel, a bridge node or the simulator.
    """

    async def transfer(self, address: int, write: bytes, read_len: int) -> bytes: ...


@runtime_checkable
class Output(Protocol):
    """One controllable output: a luminaire channel, a desk function or an HVAC request.

    ``value`` is the output's own unit: a 0..1 level for lights, lamps and ventilation, mm for
    desk height, an :class:`IndicatorColour` number for seat indicators, degrees C for setpoints.
    ``read_back`` returns what the part reports it holds, or None when it cannot report (the
    arbiter then trusts the command once acknowledged).
    """

    async def set(self, value: float, ramp_s: float = 0.0) -> None: ...

    async def read_back(self) -> float | None: ...


class IndicatorColour:
    """Seat-indicator codes carried as Output values (colours chosen for colour-blind contrast)."""

    OFF = 0
    FREE = 1  # green
    OCCUPIED = 2  # red
    AWAY = 3  # amber
    GHOST = 4  # blue, slow blink


@dataclass(frozen=True, slots=True)
class Reading:
    """One scalar measurement as it leaves a driver: ``t`` is monotonic seconds."""

    sensor: str
    quantity: str  # lux | temperature | humidity | co2 | motion | ...
    value: float
    unit: str
    t: float
    quality: str = "good"

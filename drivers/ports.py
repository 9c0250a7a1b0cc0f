"""Bus ports: the small interfaces every driver is written against.

A driver never opens ``/dev`` itself. It is handed a port, and the port may be the gateway's own
bus (:class:`drivers.i2c.SmbusPort` over smbus2), a channel of a TCA9548A multiplexer, a node's
bus tunnelled over the RS-485 firmware bridge, or the simulator. Every I2C port has one shape,
:class:`AsyncI2CBus`, so a driver cannot tell (and never asks) which one it has. Implementations
must:

- raise ``OSError`` with errno 121 (EREMOTEIO) or 5 (EIO), or :class:`drivers.errors.NackError`,
  when the device does not acknowledge;
- run the write and the read of one ``transfer`` as one combined transaction (repeated start);
- treat a transfer with nothing to write and nothing to read as an address-only write (the probe
  ``i2cdetect`` uses).

``Clock`` is how drivers wait for conversion times: the daemon passes the real clock, the
simulator a virtual one, so a library day can run in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from drivers.records import quick_init


@runtime_checkable
class Clock(Protocol):
    """Monotonic seconds for intervals, wall seconds (UNIX epoch) for timestamps, and sleep."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@runtime_checkable
class AsyncI2CBus(Protocol):
    """An I2C bus port: write ``write`` (may be empty), then, after a repeated start, read
    ``read_len`` bytes (may be 0). Drivers reach it through :class:`drivers.i2c.I2CDevice`.
    """

    async def transfer(self, address: int, write: bytes, read_len: int) -> bytes: ...


@runtime_checkable
class SensorBlockPort(Protocol):
    """A node's sensor blocks (firmware_bridge/PROTOCOL.md, 5.3): ``read_block(block)`` returns the
    block's data after its block byte. A block is a pure read, so an implementation may answer
    from a read of the same block at most ``max_age_s`` old (the four desks of one node share one
    request). Failures raise :class:`drivers.errors.BusError` (the node did not answer, or refused)."""

    async def read_block(self, block: int, *, max_age_s: float = 0.0) -> bytes: ...


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


@quick_init  # one per value read, a few hundred thousand a simulated day
@dataclass(frozen=True, slots=True)
class Reading:
    """One scalar measurement as it leaves a driver: ``t`` is monotonic seconds."""

    sensor: str
    quantity: str  # lux | temperature | humidity | co2 | motion | ...
    value: float
    unit: str
    t: float
    quality: str = "good"

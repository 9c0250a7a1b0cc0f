"""Simulated TI TCA9548A: an 8-bit control register whose set bits connect downstream channels.

Attach it to a parent :class:`SimI2CBus` at 0x70-0x77, put parts on ``channel_bus(n)``, and the
parent bus reaches them whenever channel *n* is connected -- exactly the electrical behaviour the
real mux has, so the driver's selection logic (:mod:`drivers.mux`) is tested for real. If two
connected channels both hold a part at the same address the reads would collide on the wire;
the model reports it as a NACK-like failure (EIO).
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.hw.bus import Fault, SimI2CBus, SimI2CDevice, SimNack


class SimTCA9548A(SimI2CDevice):
    """The multiplexer; ``control`` is the register, ``channel_bus(n)`` the buses behind it."""

    kind = "tca9548a"

    def __init__(self, monotonic: Callable[[], float], *, name: str = "mux") -> None:
        super().__init__(monotonic)
        self.control = 0x00  # power-on default: no channel connected
        self.channels = [SimI2CBus(f"{name}/ch{n}") for n in range(8)]
        self.selects = 0  # how many times the control register was written (tests assert on it)

    def channel_bus(self, n: int) -> SimI2CBus:
        if not 0 <= n <= 7:
            raise ValueError(f"TCA9548A channel {n} does not exist; use 0..7")
        return self.channels[n]

    def routes(self, address: int) -> SimI2CDevice | None:
        """The downstream part that answers ``address`` through the connected channels."""
        found = []
        for n, bus in enumerate(self.channels):
            if not self.control & (1 << n) or address not in bus.devices:
                continue
            if Fault.ABSENT in bus.faults or bus.faults.consume(Fault.NACK):
                raise SimNack  # a fault on the downstream cable
            found.append(bus.devices[address])
        if len(found) > 1:
            raise SimNack  # two parts drive SDA at once: garbage, reported as a failed transfer
        return found[0] if found else None

    def on_write(self, data: bytes) -> None:
        if len(data) != 1:
            raise SimNack  # the part has one register and no address pointer
        self.control = data[0]
        self.selects += 1

    def on_read(self, n: int) -> bytes:
        return bytes([self.control]) * n

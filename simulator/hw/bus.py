"""A simulated I2C bus: the drivers' port, a drop-in for ``smbus2.SMBus``, and the base of parts.

:class:`SimI2CBus` implements :class:`drivers.ports.AsyncI2CBus` (``transfer``), the one port
shape every driver uses, so the drivers run on it exactly the code they run on a gateway. It
also offers the SMBus surface (with ``i2c_rdwr`` filling real ``smbus2.i2c_msg`` objects in
place, and ``write_quick`` for scanning), so tools written against smbus2 (``sensors scan``,
:class:`drivers.i2c.SmbusPort`, a node's firmware) run on it too, with the two failure modes a
Linux adapter shows: ``OSError(EREMOTEIO)`` for a NACK and ``ValueError`` for an SMBus block
longer than 32 bytes.

A transaction is reduced to the two things a part can see: a write segment (bytes after the
address) and a read segment (bytes clocked out). Each :class:`SimI2CDevice` implements
``on_write`` / ``on_read`` with the part's own state machine and raises :class:`SimNack` where
the real part would not acknowledge. An address-only write (no data bytes: the probe
``i2cdetect`` and most driver libraries use) is acknowledged by every part that is awake, without
reaching ``on_write``: a part sees no command in it. Every transaction is recorded (bounded) for
tests.
"""

from __future__ import annotations

import ctypes
import errno
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from smbus2 import i2c_msg

T = TypeVar("T")

I2C_M_RD = 0x0001
SMBUS_BLOCK_MAX = 32


class Fault(StrEnum):
    """Failures that can be injected on a simulated device or bus."""

    NACK = "nack"  # transactions are not acknowledged
    CORRUPT_CRC = "corrupt_crc"  # read data has a flipped bit (devices: in the CRC byte)
    STUCK = "stuck"  # the measured value freezes
    SLOW = "slow"  # conversions never finish (device) / clock stretched past timeout (bus)
    ABSENT = "absent"  # nothing answers at the address


class SimNack(Exception):
    """Raised inside a simulated part where the real one would not acknowledge."""


class Transaction(NamedTuple):
    """One recorded bus operation: ``op`` is the SMBus/I2C call name.

    A named tuple rather than a frozen dataclass: the bus records every transaction (hundreds of
    thousands a simulated day), and a tuple is made in one call instead of five guarded sets.
    """

    op: str
    address: int
    write: bytes
    read: bytes
    ok: bool


@dataclass
class MeasurementError:
    """A part's calibration error on one quantity: measured = true * gain + offset."""

    gain: float = 1.0
    offset: float = 0.0

    def apply(self, value: float) -> float:
        return value * self.gain + self.offset


class FaultSet:
    """Active faults, each either permanent (None) or for a number of further occurrences."""

    def __init__(self) -> None:
        self._active: dict[Fault, int | None] = {}

    def inject(self, fault: Fault | str, count: int | None = None) -> None:
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for until cleared)")
        self._active[Fault(fault)] = count

    def clear(self) -> None:
        self._active.clear()

    def __contains__(self, fault: Fault) -> bool:
        return fault in self._active

    def __bool__(self) -> bool:
        """Any fault active (nearly always none: the bus and its parts skip their checks then).

        The bus and the parts in this module look at ``_active`` itself on every transaction:
        the same test without a Python call each time (a few hundred thousand a simulated day)."""
        return bool(self._active)

    def consume(self, fault: Fault) -> bool:
        """True if ``fault`` is active now; a counted fault uses up one occurrence."""
        if fault not in self._active:
            return False
        left = self._active[fault]
        if left is not None:
            if left <= 1:
                del self._active[fault]
            else:
                self._active[fault] = left - 1
        return True


class SimI2CDevice:
    """Base of simulated I2C parts: fault handling, measurement error, noise, stuck values."""

    kind = "i2c"

    def __init__(self, monotonic: Callable[[], float], *, noise: float = 0.0, seed: int = 0) -> None:
        self.monotonic = monotonic
        self.noise = noise
        self.rng = random.Random(seed)
        self.faults = FaultSet()
        self.errors: dict[str, MeasurementError] = {}
        self._frozen: dict[str, object] = {}
        self.stretch_s = 0.0  # how long the part held SCL low in its last read (clock stretching)

    # -- test controls -----------------------------------------------------------------------
    def inject(self, fault: Fault | str, count: int | None = None) -> None:
        """Make the part misbehave: permanently, or for the next ``count`` occurrences."""
        self.faults.inject(fault, count)

    def clear_faults(self) -> None:
        self.faults.clear()
        self._frozen.clear()

    def set_error(self, quantity: str, *, gain: float = 1.0, offset: float = 0.0) -> None:
        """Give the part a calibration error on ``quantity`` (for calibration tests)."""
        self.errors[quantity] = MeasurementError(gain, offset)

    # -- helpers for subclasses ------------------------------------------------------------
    def measured(self, quantity: str, true_value: float, noise: float | None = None) -> float:
        """What the part would measure: calibration error, then Gaussian noise."""
        err = self.errors.get(quantity)
        value = err.apply(true_value) if err else true_value
        sigma = self.noise if noise is None else noise
        return value + self.rng.gauss(0.0, sigma) if sigma > 0 else value

    def sample(self, key: str, fresh: Callable[[], T]) -> T:
        """A new value from ``fresh``, or under a STUCK fault the value frozen at its onset."""
        if self.faults._active and Fault.STUCK in self.faults:
            if key not in self._frozen:
                self._frozen[key] = fresh()
            return self._frozen[key]  # type: ignore[return-value]
        if self._frozen:
            self._frozen.pop(key, None)
        return fresh()

    @property
    def slow(self) -> bool:
        return bool(self.faults._active) and Fault.SLOW in self.faults

    def corrupt(self, data: bytes) -> bytes:
        """Flip a bit where a checksum would catch it; Sensirion parts override for CRC bytes."""
        if not data:
            return data
        return data[:-1] + bytes([data[-1] ^ 0x01])

    # -- called by the bus ---------------------------------------------------------------------
    def awake(self) -> bool:
        """False while the part ignores its address (booting, powered down); parts override."""
        return True

    def acknowledges(self) -> bool:
        """Address phase: does the part ACK its address right now?"""
        if not self.faults._active:
            return self.awake()
        if Fault.ABSENT in self.faults or not self.awake():
            return False
        return not self.faults.consume(Fault.NACK)

    def handle_write(self, data: bytes) -> None:
        if not self.acknowledges():
            raise SimNack
        if data:  # address-only: acknowledged, no command reaches the part
            self.on_write(data)

    def handle_read(self, n: int) -> bytes:
        if not self.acknowledges():
            raise SimNack
        data = self.on_read(n)
        if len(data) < n:  # the master keeps clocking: an idle SDA reads as 0xFF
            data = data + b"\xff" * (n - len(data))
        data = data[:n]
        if self.faults._active and self.faults.consume(Fault.CORRUPT_CRC):
            data = self.corrupt(data)
        return data

    def on_write(self, data: bytes) -> None:
        raise NotImplementedError

    def on_read(self, n: int) -> bytes:
        raise NotImplementedError


class Downstream(Protocol):
    """A part that forwards transactions to buses behind it (a multiplexer)."""

    def routes(self, address: int) -> SimI2CDevice | None: ...


class SimI2CBus:
    """An in-process I2C bus: the drivers' async port and the ``smbus2.SMBus`` surface."""

    def __init__(self, name: str = "sim-i2c", *, record: int = 4096, stretch_timeout_s: float | None = None) -> None:
        self.name = name
        # An adapter gives up on a part that holds SCL low longer than this (None: waits as long
        # as it takes); the transfer then fails with ETIMEDOUT, as the kernel reports it.
        self.stretch_timeout_s = stretch_timeout_s
        self.devices: dict[int, SimI2CDevice] = {}
        self.transactions: deque[Transaction] = deque(maxlen=record)
        self.faults = FaultSet()

    # -- wiring ------------------------------------------------------------------------------
    def attach(self, address: int, device: SimI2CDevice) -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"0x{address:02x} is not a 7-bit I2C address")
        if address in self.devices:
            raise ValueError(f"{self.name}: 0x{address:02x} is already taken by {self.devices[address].kind}")
        self.devices[address] = device

    def detach(self, address: int) -> None:
        self.devices.pop(address, None)

    def inject(self, fault: Fault | str, count: int | None = None) -> None:
        """Bus-wide faults: NACK/ABSENT (SDA held, cable off), SLOW (timeout), CORRUPT_CRC (noise)."""
        if Fault(fault) == Fault.STUCK:
            raise ValueError("STUCK is a device fault; inject it on the device")
        self.faults.inject(fault, count)

    def clear_faults(self) -> None:
        self.faults.clear()

    def _resolve(self, address: int) -> SimI2CDevice | None:
        device = self.devices.get(address)
        if device is not None:
            return device
        for dev in self.devices.values():
            routes = getattr(dev, "routes", None)
            if routes is not None:
                found: SimI2CDevice | None = routes(address)
                if found is not None:
                    return found
        return None

    def _nack(self) -> OSError:
        return OSError(errno.EREMOTEIO, "Remote I/O error")

    def _segment(self, address: int, write: bytes | None, read_len: int | None) -> bytes:
        """One segment after a (repeated) start; raises OSError like the kernel would."""
        faults = self.faults
        if faults._active:  # none, nearly always: a bus with no fault injected skips the checks
            if Fault.ABSENT in faults or faults.consume(Fault.NACK):
                raise self._nack()
            if faults.consume(Fault.SLOW):
                raise OSError(errno.ETIMEDOUT, "Connection timed out")
        try:
            device = self._resolve(address)
            if device is None:
                raise self._nack()
            if write is not None:
                device.handle_write(write)
                return b""
            device.stretch_s = 0.0
            data = device.handle_read(read_len or 0)
        except SimNack:
            raise self._nack() from None
        if self.stretch_timeout_s is not None and device.stretch_s > self.stretch_timeout_s:
            raise OSError(errno.ETIMEDOUT, "Connection timed out")
        if faults._active and faults.consume(Fault.CORRUPT_CRC) and data:
            data = bytes([data[0] ^ 0x80]) + data[1:]
        return data

    def _run(self, op: str, address: int, write: bytes | None, read_len: int | None) -> bytes:
        data = b""
        try:
            if write is not None:
                self._segment(address, write, None)
            if read_len is not None:
                data = self._segment(address, None, read_len)
        except OSError:
            self.transactions.append(Transaction(op, address, write or b"", b"", False))
            raise
        self.transactions.append(Transaction(op, address, write or b"", data, True))
        return data

    # -- the drivers' port (drivers.ports.AsyncI2CBus) ----------------------------------------
    async def transfer(self, address: int, write: bytes, read_len: int) -> bytes:
        """Write, repeated start, read: one combined transaction; address-only when both are empty."""
        if not write and not read_len:
            self.write_quick(address)
            return b""
        return self._run("transfer", address, bytes(write) if write else None, read_len or None)

    # -- smbus2.SMBus surface ------------------------------------------------------------------
    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        """Address + W and STOP: how i2cdetect probes without side effects."""
        try:
            device = self._resolve(i2c_addr)
        except SimNack:
            device = None
        ok = device is not None and Fault.ABSENT not in self.faults and device.acknowledges()
        self.transactions.append(Transaction("write_quick", i2c_addr, b"", b"", ok))
        if not ok:
            raise self._nack()

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self._run("read_byte", i2c_addr, None, 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        self._run("write_byte", i2c_addr, bytes([value & 0xFF]), None)

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._run("read_byte_data", i2c_addr, bytes([register]), 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._run("write_byte_data", i2c_addr, bytes([register, value & 0xFF]), None)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        if length > SMBUS_BLOCK_MAX:
            raise ValueError(f"Desired block length over {SMBUS_BLOCK_MAX} bytes")
        return list(self._run("read_i2c_block_data", i2c_addr, bytes([register]), length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if len(data) > SMBUS_BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {SMBUS_BLOCK_MAX} bytes")
        self._run("write_i2c_block_data", i2c_addr, bytes([register, *data]), None)

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Combined transaction: segments in order, read buffers filled in place."""
        for msg in i2c_msgs:
            if msg.flags & I2C_M_RD:
                data = self.rdwr_segment(msg.addr, None, msg.len)
                ctypes.memmove(msg.buf, data, len(data))
            else:
                self.rdwr_segment(msg.addr, bytes(msg), None)

    def rdwr_segment(self, address: int, write: bytes | None, read_len: int | None) -> bytes:
        """One message of :meth:`i2c_rdwr` (a write, or a read of ``read_len`` bytes), for a caller
        that has the bytes at hand rather than ``smbus2.i2c_msg`` objects (a simulated node's
        firmware): the same segment and the same recorded transaction."""
        return self._run("i2c_rdwr", address, write, read_len)

    def close(self) -> None:
        """SMBus has close(); nothing to release here."""

    # -- test conveniences -------------------------------------------------------------------
    def scan(self) -> list[int]:
        """Addresses that acknowledge, as i2cdetect would list them."""
        found = []
        for address in range(0x03, 0x78):
            try:
                self.write_quick(address)
            except OSError:
                continue
            found.append(address)
        return found

    def clear_record(self) -> None:
        self.transactions.clear()

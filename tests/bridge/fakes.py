"""A tiny register-file I2C device for bridge tests: an i2c_rdwr bus with one part on it."""

from __future__ import annotations

import ctypes
import errno

from smbus2 import i2c_msg

I2C_M_RD = 0x0001


class RegisterFile:
    """A bus holding one device at ``address`` with 256 byte registers and an auto-incrementing pointer."""

    def __init__(self, address: int = 0x48) -> None:
        self.address = address
        self.regs = bytearray(range(256))
        self.pointer = 0
        self.transfers = 0

    def i2c_rdwr(self, *msgs: i2c_msg) -> None:
        self.transfers += 1
        for m in msgs:
            if m.addr != self.address:
                raise OSError(errno.EREMOTEIO, "Remote I/O error")
            if m.flags & I2C_M_RD:
                data = bytes(self.regs[(self.pointer + i) & 0xFF] for i in range(m.len))
                ctypes.memmove(m.buf, data, m.len)
                self.pointer = (self.pointer + m.len) & 0xFF
            else:
                raw = bytes(m)
                if raw:
                    self.pointer = raw[0]
                    for i, b in enumerate(raw[1:]):
                        self.regs[(self.pointer + i) & 0xFF] = b

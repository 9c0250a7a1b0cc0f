"""Find what answers on an I2C bus, the way ``i2cdetect`` does, and behind a TCA9548A.

Probing follows i2cdetect's default: an SMBus *quick write* (address + W, STOP: no data, so no
side effects on Sensirion parts or the BH1750), except at 0x30-0x37 and 0x50-0x5F where EEPROMs
live and a quick write can corrupt some of them, so a one-byte read is used there. Busy parts
that NACK their address at that instant are missed, exactly as with i2cdetect.
"""

from __future__ import annotations

from typing import Any

READ_PROBE = frozenset(range(0x30, 0x38)) | frozenset(range(0x50, 0x60))


def probe(bus: Any, address: int) -> bool:
    """True when a part acknowledges ``address`` on a synchronous (SMBus-like) bus."""
    try:
        if address in READ_PROBE or not hasattr(bus, "write_quick"):
            bus.read_byte(address)
        else:
            bus.write_quick(address)
    except OSError:
        return False
    return True


def scan_bus(bus: Any, first: int = 0x03, last: int = 0x77) -> list[int]:
    """Every address in ``first..last`` that acknowledges."""
    return [a for a in range(first, last + 1) if probe(bus, a)]


def scan_mux(bus: Any, mux_address: int, channels: range = range(8)) -> dict[int, list[int]]:
    """Per channel, the addresses that appear only when that channel is connected.

    The parent bus's own parts (and the mux itself) answer on every channel, so they are
    subtracted; the mux is left with no channel connected afterwards.
    """
    bus.write_byte(mux_address, 0x00)
    baseline = set(scan_bus(bus))
    found: dict[int, list[int]] = {}
    try:
        for n in channels:
            bus.write_byte(mux_address, 1 << n)
            found[n] = [a for a in scan_bus(bus) if a not in baseline]
    finally:
        bus.write_byte(mux_address, 0x00)
    return found

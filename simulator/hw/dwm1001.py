"""Simulated Qorvo DWM1001 tag: the location state and its two wire encodings.

The encoders here are written from the format description (HARDWARE.md section 6), not shared
with the driver's decoders, so a round trip through both really tests the driver.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from simulator.hw.parts import SimPart

if TYPE_CHECKING:
    from edge_agent.config import Sensor
    from simulator.hw.floor import SimHardware


class SimDwm1001Tag:
    """A tag's location state; the BLE backend and the UART simulator serve it."""

    def __init__(self, address: str, *, period_s: float = 0.1, mode: int = 2) -> None:
        self.address = address.upper()
        self.period_s = period_s
        self.mode = mode  # location data mode: 0 position, 1 distances, 2 both
        self.position: tuple[float, float, float, int] | None = None
        self.distances: list[tuple[int, float, int]] = []
        self.reachable = True
        self.notifications = 0

    def set_position(self, x: float, y: float, z: float, quality: int = 100) -> None:
        self.position = (x, y, z, quality)

    def set_distances(self, distances: Sequence[tuple[int, float, int]]) -> None:
        self.distances = [(a, m, q) for a, m, q in distances][:15]

    def _pos(self) -> bytes:
        x, y, z, q = self.position or (0.0, 0.0, 0.0, 0)
        return struct.pack("<iiiB", round(x * 1000), round(y * 1000), round(z * 1000), q)

    def ble_location(self) -> bytes:
        """The location-data characteristic value for the current mode."""
        out = bytes([self.mode])
        if self.mode in (0, 2):
            out += self._pos()
        if self.mode in (1, 2):
            out += bytes([len(self.distances)])
            for anchor, metres, quality in self.distances:
                out += struct.pack("<HiB", anchor & 0xFFFF, round(metres * 1000), quality)
        return out

    def loc_get_response(self) -> bytes:
        """dwm_loc_get answer of a tag node: 40 01 00, 41 0D pos, 49 len cnt anchors (max 4)."""
        anchors = self.distances[:4]
        body = bytes([len(anchors)])
        for anchor, metres, quality in anchors:
            body += struct.pack("<HIB", anchor & 0xFFFF, max(0, round(metres * 1000)), quality) + bytes(13)
        return b"\x40\x01\x00" + b"\x41\x0d" + self._pos() + bytes([0x49, len(body)]) + body


def _make(hw: SimHardware, sensor: Sensor) -> SimDwm1001Tag:
    """A BLE tag joins the simulated air; a UART tag is served on a pty when first opened."""
    if sensor.ble_address is not None:
        return hw.ble_air.add(SimDwm1001Tag(sensor.ble_address, period_s=max(0.1, sensor.poll_interval_s)))
    tag = SimDwm1001Tag(f"uart:{sensor.id}")
    hw.uart_tags[sensor.id] = tag
    return tag


SIM_PARTS = (SimPart("dwm1001", _make),)

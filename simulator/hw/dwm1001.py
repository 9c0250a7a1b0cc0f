"""Simulated Qorvo DWM1001 nodes: a tag's location state and its two wire encodings; a listener.

The encoders here are written from the format description (HARDWARE.md section 6), not shared
with the driver's decoders, so a round trip through both really tests the driver.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from simulator.hw.bus import Fault, FaultSet
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


class SimDwm1001Listener:
    """A DWM1001 in listener mode: its UART shell, and a CSV line for every tag report it hears.

    Written from the shell's description (docs/hardware.md, "DWM1001 listener"), not from the
    driver. Bytes in go to :meth:`receive`; bytes out go to ``emit`` (the pty or in-process stream
    serving the node sets it). After power-up or ``reset`` the node is in its TLV API mode and
    answers nothing until two Enters open the shell, which prints a banner and the ``dwm>``
    prompt. ``lec`` toggles the CSV stream; while it is on, every :meth:`hear` writes
    ``POS,<index>,<tag id>,<x>,<y>,<z>,<quality>,x<hex>`` (index: the tag's slot in the order
    first heard; the last field's meaning is not known, the simulator puts the length of the
    line before it in hex). Faults: ``absent`` answers nothing at all, ``corrupt_crc`` cuts short
    the next POS lines, ``slow`` drops them.
    """

    BANNER = b"DWM1001 TWR Real Time Location System\r\n\r\n"

    def __init__(self, name: str = "listener") -> None:
        self.name = name
        self.shell = False
        self.streaming = False
        self.faults = FaultSet()
        self.emit: Callable[[bytes], None] = lambda data: None
        self.lines_sent = 0
        self.commands: list[str] = []
        self._inbox = bytearray()
        self._slots: dict[str, int] = {}

    def inject(self, fault: Fault | str, count: int | None = None) -> None:
        self.faults.inject(fault, count)

    def clear_faults(self) -> None:
        self.faults.clear()

    def _out(self, data: bytes) -> None:
        if Fault.ABSENT not in self.faults:
            self.emit(data)

    def receive(self, data: bytes) -> None:
        """Bytes the gateway wrote to the node's UART."""
        if Fault.ABSENT in self.faults:
            return
        self._inbox += data
        if not self.shell:
            at = self._inbox.find(b"\r\r")
            if at < 0:
                del self._inbox[: max(0, len(self._inbox) - 1)]  # TLV bytes: not simulated, dropped
                return
            del self._inbox[: at + 2]
            self.shell = True
            self._out(self.BANNER + b"dwm> ")
        while self.shell and (end := self._inbox.find(b"\r")) >= 0:
            command = self._inbox[:end].decode("ascii", errors="replace").strip()
            del self._inbox[: end + 1]
            self._command(command)

    def _command(self, command: str) -> None:
        self.commands.append(command)
        if command == "":
            self._out(b"\r\ndwm> ")
        elif command == "reset":
            self._out(b"reset\r\n")
            self.shell = self.streaming = False
            self._inbox.clear()
            self._slots.clear()
        elif command == "quit":
            self._out(b"quit\r\n")
            self.shell = False
        elif command == "lec":
            self.streaming = not self.streaming
            self._out(b"lec\r\n" + (b"" if self.streaming else b"dwm> "))
        else:
            self._out(command.encode() + b"\r\nUnknown command. Type ? for help\r\ndwm> ")

    def hear(self, tag_id: str, x: float, y: float, z: float, quality: int) -> None:
        """A tag's position report reached the listener over UWB."""
        if not (self.shell and self.streaming) or self.faults.consume(Fault.SLOW):
            return
        slot = self._slots.setdefault(tag_id, len(self._slots))
        body = f"POS,{slot},{tag_id},{x:.2f},{y:.2f},{z:.2f},{int(quality)},"
        line = f"{body}x{len(body):02X}\r\n".encode()
        if self.faults.consume(Fault.CORRUPT_CRC):
            line = line[: len(line) // 2] + b"\r\n"  # bytes lost mid-line
        self.lines_sent += 1
        self._out(line)


def _make(hw: SimHardware, sensor: Sensor) -> SimDwm1001Tag | SimDwm1001Listener:
    """A BLE tag joins the simulated air; a UART tag or listener is served on a pty when first opened."""
    if sensor.settings.get("role", "tag") == "listener":
        listener = SimDwm1001Listener(sensor.id)
        hw.uart_listeners[sensor.id] = listener
        return listener
    if sensor.ble_address is not None:
        return hw.ble_air.add(SimDwm1001Tag(sensor.ble_address, period_s=max(0.1, sensor.poll_interval_s)))
    tag = SimDwm1001Tag(f"uart:{sensor.id}")
    hw.uart_tags[sensor.id] = tag
    return tag


SIM_PARTS = (SimPart("dwm1001", _make),)

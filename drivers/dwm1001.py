"""Qorvo (Decawave) DWM1001 UWB tag: location data over BLE GATT or the UART TLV API.

Wire formats (HARDWARE.md section 6), all little-endian:

- BLE "location data" characteristic (notify): byte 0 = type (0 position, 1 distances,
  2 both); position = ``<iiiB`` x, y, z in mm (*signed*: public parsers that read them unsigned
  break below the origin) and quality %; distances = count ``B`` then count x ``<HiB``
  (node id, mm, quality).
- UART TLV: request ``0C 00`` (dwm_loc_get). The answer is ``40 01 err`` then ``41 0D`` +
  13-byte position, then ``49 len cnt`` + cnt x 20 B (u16 addr, u32 mm, u8 q, 13 B anchor
  position) on a tag, or ``48 len cnt`` + cnt x 13 B (u64 addr, u32 mm, u8 q) on an anchor.

- UART shell of a **listener** (PANS firmware; docs/hardware.md "DWM1001 listener" gives the
  source of each fact and what is not verified): ``\r\r`` opens the shell (prompt ``dwm>``),
  ``lec`` toggles a CSV stream with one line per tag position report heard on the network:
  ``POS,<index>,<tag id>,<x>,<y>,<z>,<quality>,x<hex>`` (metres, quality %). The listener hears
  positions the tags computed themselves, never ranges.

Parsing is pure and separate from I/O so it is tested against the captured vectors. BLE access
goes through bleak's public ``BleakClient`` with ``backend=`` passed through, so the simulator's
backend (``simulator.hw.ble``) exercises this very code.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from drivers.errors import BleError, BusTimeoutError, DriverError
from drivers.health import DeviceHealth
from drivers.kinds import PartKind, PartPorts, PartSpec, Quantity, Setting
from drivers.ports import Clock, Reading

SERVICE_UUID = "680c21d9-c946-4c1f-9c11-baa1c21329e7"
LOCATION_DATA_UUID = "003bbdf2-c634-4b3d-ab56-7ec889b89a37"
LOCATION_MODE_UUID = "a02b947e-df97-4516-996a-1882521e0ead"
_POS = struct.Struct("<iiiB")
_DIST = struct.Struct("<HiB")
TLV_ERR_NAMES = {1: "bad TLV", 2: "internal error", 3: "invalid parameter", 4: "busy", 5: "not permitted"}


@dataclass(frozen=True, slots=True)
class UwbPosition:
    x_m: float
    y_m: float
    z_m: float
    quality: int


@dataclass(frozen=True, slots=True)
class AnchorDistance:
    anchor_id: int
    distance_m: float
    quality: int


@dataclass(frozen=True, slots=True)
class UwbLocation:
    """One location report: position (if the tag computed one) and ranges to anchors."""

    position: UwbPosition | None
    distances: tuple[AnchorDistance, ...]
    t: float = 0.0


def _position(data: bytes, offset: int) -> UwbPosition:
    x, y, z, q = _POS.unpack_from(data, offset)
    return UwbPosition(x / 1000.0, y / 1000.0, z / 1000.0, q)


def parse_ble_location(data: bytes, t: float = 0.0) -> UwbLocation:
    """Decode one BLE location-data notification; ValueError (via DriverError) when malformed."""
    if not data:
        raise DriverError("DWM1001 location data is empty")
    kind = data[0]
    if kind not in (0, 1, 2):
        raise DriverError(f"DWM1001 location data type {kind} unknown (0 position, 1 distances, 2 both)")
    offset = 1
    position = None
    try:
        if kind in (0, 2):
            position = _position(data, offset)
            offset += _POS.size
        distances: list[AnchorDistance] = []
        if kind in (1, 2):
            count = data[offset]
            offset += 1
            for _ in range(count):
                node, mm, q = _DIST.unpack_from(data, offset)
                offset += _DIST.size
                distances.append(AnchorDistance(node, mm / 1000.0, q))
    except (struct.error, IndexError) as exc:
        raise DriverError(f"DWM1001 location data truncated at byte {offset} of {len(data)}") from exc
    return UwbLocation(position, tuple(distances), t)


def parse_loc_get(data: bytes, t: float = 0.0) -> UwbLocation:
    """Decode a complete dwm_loc_get TLV response (tag or anchor node)."""
    if len(data) < 3 or data[0] != 0x40 or data[1] != 0x01:
        raise DriverError(f"dwm_loc_get: response must start 40 01 <err>, got {data[:3].hex(' ')}")
    if data[2] != 0:
        raise DriverError(f"dwm_loc_get: error {data[2]} ({TLV_ERR_NAMES.get(data[2], 'unknown')})")
    offset = 3
    position: UwbPosition | None = None
    distances: list[AnchorDistance] = []
    while offset < len(data):
        if offset + 2 > len(data):
            raise DriverError("dwm_loc_get: truncated TLV header")
        kind, length = data[offset], data[offset + 1]
        value = data[offset + 2 : offset + 2 + length]
        if len(value) != length:
            raise DriverError(f"dwm_loc_get: TLV 0x{kind:02x} needs {length} bytes, has {len(value)}")
        if kind == 0x41:
            position = _position(value, 0)
        elif kind in (0x49, 0x48):
            size = 20 if kind == 0x49 else 13
            count = value[0] if value else 0
            if 1 + count * size > length:
                raise DriverError(f"dwm_loc_get: {count} anchors do not fit in {length} bytes")
            for i in range(count):
                base = 1 + i * size
                if kind == 0x49:
                    addr = int.from_bytes(value[base : base + 2], "little")
                    base += 2
                else:
                    addr = int.from_bytes(value[base : base + 8], "little")
                    base += 8
                mm = int.from_bytes(value[base : base + 4], "little")  # unsigned on the wire
                distances.append(AnchorDistance(addr, mm / 1000.0, value[base + 4]))
        offset += 2 + length
    return UwbLocation(position, tuple(distances), t)


class Dwm1001Uart:
    """dwm_loc_get over the tag's UART (115200 baud) through :class:`drivers.serial.SerialStream`."""

    def __init__(self, stream: Any, clock: Clock, *, name: str = "dwm1001-uart", timeout_s: float = 0.5) -> None:
        self.stream = stream
        self.clock = clock
        self.name = name
        self.timeout_s = timeout_s
        self.health = DeviceHealth(name)

    async def loc_get(self) -> UwbLocation:
        try:
            await self.stream.reset_input()
            await self.stream.write(b"\x0c\x00")
            head = await self.stream.read_exactly(3, self.timeout_s)
            if head[2] != 0:
                return parse_loc_get(head)
            head += await self.stream.read_exactly(2, self.timeout_s)  # 41 0D
            head += await self.stream.read_exactly(head[4], self.timeout_s)
            head += await self.stream.read_exactly(2, self.timeout_s)  # 49/48 len
            head += await self.stream.read_exactly(head[-1], self.timeout_s)
            location = parse_loc_get(head, self.clock.monotonic())
        except (DriverError, BusTimeoutError) as exc:
            self.health.record_failure(exc)
            raise
        self.health.record_good(self.clock.monotonic())
        return location

    async def start(self) -> None:
        await self.stream.open()

    async def readings(self) -> list[Reading]:
        return location_readings(self.name, await self.loc_get())


class Dwm1001Ble:
    """A tag reached over BLE: connects, subscribes, reconnects with backoff, queues locations.

    ``backend`` is passed straight to ``bleak.BleakClient`` (None: the platform's backend).
    Use as ``async with Dwm1001Ble(...) as tag: loc = await tag.next_location()``.
    """

    def __init__(
        self,
        address: str,
        clock: Clock,
        *,
        backend: type[Any] | None = None,
        name: str = "",
        mode: int = 2,
        queue_size: int = 32,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.address = address
        self.clock = clock
        self.backend = backend
        self.name = name or f"dwm1001@{address}"
        self.mode = mode
        self.max_backoff_s = max_backoff_s
        self.health = DeviceHealth(self.name)
        self.latest: UwbLocation | None = None
        self.connects = 0
        self._queue: asyncio.Queue[UwbLocation] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Dwm1001Ble:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-link")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def next_location(self, timeout_s: float | None = None) -> UwbLocation:
        try:
            async with asyncio.timeout(timeout_s):
                return await self._queue.get()
        except TimeoutError:
            raise BusTimeoutError(f"{self.name}: no location within {timeout_s} s", bus="ble") from None

    async def readings(self) -> list[Reading]:
        """Connect, take the next location the tag notifies (within 15 s), disconnect."""
        async with self:
            location = await self.next_location(timeout_s=15.0)
        return location_readings(self.name, location)

    def _on_notify(self, _char: Any, data: bytearray) -> None:
        try:
            location = parse_ble_location(bytes(data), self.clock.monotonic())
        except DriverError as exc:
            self.health.record_failure(exc)
            return
        self.health.record_good(location.t)
        self.latest = location
        if self._queue.full():  # keep the newest: a stale position is worth less than a fresh one
            self._queue.get_nowait()
        self._queue.put_nowait(location)

    async def _run(self) -> None:
        """Connect / subscribe / wait for loss, forever, with exponential backoff between tries."""
        from bleak import BleakClient
        from bleak.exc import BleakError

        backoff = 0.5
        while True:
            lost = asyncio.Event()
            try:
                client = BleakClient(
                    self.address, disconnected_callback=_setter(lost), backend=self.backend, timeout=10.0
                )
                async with client:
                    self.connects += 1
                    await client.write_gatt_char(LOCATION_MODE_UUID, bytes([self.mode]), response=True)
                    await client.start_notify(LOCATION_DATA_UUID, self._on_notify)
                    backoff = 0.5
                    await lost.wait()
                self.health.record_failure(BleError(f"{self.name}: link lost", bus="ble"))
            except (BleakError, OSError, TimeoutError) as exc:
                self.health.record_failure(BleError(f"{self.name}: {exc}", bus="ble"))
            await self.clock.sleep(backoff)
            backoff = min(self.max_backoff_s, backoff * 2)


def _setter(event: asyncio.Event) -> Any:
    """A disconnected-callback that sets ``event`` (bound now, not at call time)."""

    def callback(_client: object) -> None:
        event.set()

    return callback


# -- the listener (PANS UART shell) ---------------------------------------------------------------
SHELL_ENTER = b"\r\r"  # two Enters open the UART shell
SHELL_PROMPT = b"dwm>"
SHELL_RESET = b"reset\r"  # reboot: back to the TLV API, the CSV stream off
SHELL_STREAM = b"lec\r"  # toggles the CSV stream (so the driver resets first: the state is then known)
RESET_S = 2.0  # what public clients wait after reset before talking to the shell (docs/hardware.md)
_TAG_ID = re.compile(r"^[0-9A-Za-z]{1,16}$")


@dataclass(frozen=True, slots=True)
class ListenerReport:
    """One tag's position as a listener heard it; ``position`` None when the tag had no fix."""

    tag_id: str  # as the listener prints it, upper-cased
    position: UwbPosition | None
    t: float = 0.0


def parse_listener_line(line: bytes | str, t: float = 0.0) -> ListenerReport | None:
    """One line of a listener's ``lec`` stream; None for any line that is not a POS report.

    Prompts, the echo of a command and the shell's banner are not reports. A POS line that does
    not parse raises DriverError naming the field, so the caller can count it and read on.
    """
    text = line.decode("ascii", errors="replace") if isinstance(line, bytes) else line
    fields = [f.strip() for f in text.strip().split(",")]
    if not fields or fields[0] != "POS":
        return None
    if len(fields) not in (7, 8):
        raise DriverError(f"listener POS line has {len(fields)} fields, expected 8: {text.strip()[:80]!r}")
    try:
        int(fields[1])
    except ValueError:
        raise DriverError(f"listener POS line: index {fields[1]!r} is not a number") from None
    tag = fields[2]
    if not _TAG_ID.match(tag):
        raise DriverError(f"listener POS line: tag id {tag!r} is not 1-16 letters or digits")
    try:
        x, y, z = (float(v) for v in fields[3:6])
        quality = int(fields[6])
    except ValueError:
        raise DriverError(f"listener POS line: coordinates or quality not numbers: {text.strip()[:80]!r}") from None
    if not 0 <= quality <= 100:
        raise DriverError(f"listener POS line: quality {quality} is outside 0..100")
    if not all(math.isfinite(v) for v in (x, y, z)) or quality == 0:
        return ListenerReport(tag.upper(), None, t)  # the tag reported, but had no position
    return ListenerReport(tag.upper(), UwbPosition(x, y, z, quality), t)


class Dwm1001Listener:
    """A DWM1001 in listener mode on a UART: the position of every tag on the network, as a stream.

    ``stream`` is a :class:`drivers.serial.SerialStream` (or the simulator's in-process twin).
    :meth:`start` resets the node, opens the shell, waits for its prompt and turns the CSV
    stream on; :meth:`next_report` returns the next position report, skipping other lines and
    counting malformed ones (``rejected``). A listener with no tag in range is silent, which is
    no fault: health follows the UART (the prompt answered, lines parse), not the tags.
    """

    def __init__(self, stream: Any, clock: Clock, *, name: str = "dwm1001-listener",
                 timeout_s: float = 3.0, reset_wait_s: float = RESET_S) -> None:
        self.stream = stream
        self.clock = clock
        self.name = name
        self.timeout_s = timeout_s
        self.reset_wait_s = reset_wait_s
        self._opened = False
        self.health = DeviceHealth(name)
        self.reports = 0
        self.rejected = 0
        self.started = False

    async def start(self) -> None:
        """Reset, open the shell, check the prompt, start the stream; BusError when the node does not answer."""
        self.started = False
        try:
            if not self._opened:
                await self.stream.open()
                self._opened = True
            await self.stream.write(SHELL_ENTER)  # into the shell, whatever mode the node was in ...
            await self.clock.sleep(min(0.5, self.reset_wait_s))
            await self.stream.write(SHELL_RESET)  # ... then a reset: the CSV stream is off after it
            await self.clock.sleep(self.reset_wait_s)
            await self.stream.reset_input()
            await self.stream.write(SHELL_ENTER)
            await self._expect(SHELL_PROMPT)
            await self.stream.write(SHELL_STREAM)
        except (DriverError, BusTimeoutError, OSError) as exc:
            self.health.record_failure(exc)
            raise
        self.started = True
        self.health.record_good(self.clock.monotonic())

    async def _expect(self, token: bytes) -> None:
        deadline = self.clock.monotonic() + self.timeout_s
        while True:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise BusTimeoutError(f"{self.name}: no {token.decode()} prompt within {self.timeout_s:g} s; "
                                      "is the node a DWM1001 with PANS firmware, at 115200 baud?", bus="serial")
            try:
                line = await self.stream.read_until(b">", left)
            except BusTimeoutError:
                continue
            if line.rstrip().endswith(token):
                return

    async def next_report(self, timeout_s: float | None = None) -> ListenerReport:
        """The next POS report (BusTimeoutError after ``timeout_s`` without one)."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        deadline = self.clock.monotonic() + wait
        while True:
            left = max(0.0, deadline - self.clock.monotonic())
            line = await self.stream.read_until(b"\n", left)
            try:
                report = parse_listener_line(line, self.clock.monotonic())
            except DriverError as exc:
                self.rejected += 1
                self.health.record_failure(exc)
                continue
            if report is not None:
                self.reports += 1
                self.health.record_good(report.t)
                return report

    async def readings(self, listen_s: float = 5.0) -> list[Reading]:
        """A technician's direct read: how many tags the listener hears within ``listen_s`` (a count, no id)."""
        heard: set[str] = set()
        deadline = self.clock.monotonic() + listen_s
        while (left := deadline - self.clock.monotonic()) > 0:
            try:
                heard.add((await self.next_report(timeout_s=left)).tag_id)
            except BusTimeoutError:
                break
        return [Reading(self.name, "tags_heard", float(len(heard)), "", self.clock.monotonic())]

    def close(self) -> None:
        closer = getattr(self.stream, "close", None)
        if callable(closer):
            closer()


def location_readings(name: str, location: UwbLocation) -> list[Reading]:
    """A location as scalar readings: position (when the tag computed one) and anchors in range."""
    out = [Reading(name, "anchors", float(len(location.distances)), "", location.t)]
    if location.position is not None:
        p = location.position
        out += [Reading(name, "x", p.x_m, "m", location.t), Reading(name, "y", p.y_m, "m", location.t),
                Reading(name, "position_quality", float(p.quality), "%", location.t)]
    return out


Dwm1001 = Dwm1001Uart | Dwm1001Ble | Dwm1001Listener


def _build(ports: PartPorts, clock: Clock, spec: PartSpec) -> Dwm1001:
    if spec.settings.get("role", "tag") == "listener":
        if spec.serial_port is None or spec.ble_address is not None:
            raise ValueError('role = "listener" is a DWM1001 on a UART: set serial_port (e.g. "/dev/ttyACM0"), '
                             "no ble_address")
        return Dwm1001Listener(ports.serial_stream(), clock, name=spec.name)
    if spec.ble_address is not None:
        return Dwm1001Ble(spec.ble_address, clock, backend=ports.ble_backend(), name=spec.name)
    return Dwm1001Uart(ports.serial_stream(), clock, name=spec.name)


async def _start(part: Dwm1001) -> None:
    if isinstance(part, Dwm1001Uart | Dwm1001Listener):
        await part.start()  # a BLE tag connects when its notifications are awaited


async def _readings(part: Dwm1001) -> list[Reading]:
    return await part.readings()


PARTS = (
    PartKind(name="dwm1001", summary="Qorvo DWM1001 UWB tag over BLE (ble_address) or its UART TLV API "
             "(serial_port); role = \"listener\": every tag of the network, heard on a listener's UART",
             build=_build, start=_start, readings=_readings, feed="locations",
             quantities=(Quantity("anchors", ""), Quantity("x", "m"), Quantity("y", "m"),
                         Quantity("position_quality", "%"), Quantity("tags_heard", "", rank=None)),
             settings=(Setting("role", str, default="tag", choices=("tag", "listener"),
                               help='"tag" (one tag) or "listener" (every tag the network hears, on a UART)'),),
             wiring=(("ble_address",), ("serial_port",)), example={"serial_port": "/dev/ttyACM0"}),
)

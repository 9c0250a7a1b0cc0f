"""Message types and their payloads (PROTOCOL.md, "Messages"); all multi-byte fields little-endian.

Each payload is a frozen dataclass with ``pack()`` and a ``parse(payload)`` classmethod. Parsers
check the exact length and every enumerated value and raise :class:`FrameError` otherwise, so a
node (or the simulator) can answer a malformed request with a NACK instead of misbehaving.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag
from typing import ClassVar, Self

from drivers.errors import BridgeError, FrameError
from drivers.records import quick_init

from .codec import MAX_PAYLOAD

PROTOCOL_REVISION = 4  # of PROTOCOL.md; the frame format (version byte 1) is unchanged since revision 1
ALL_CHANNELS = 0xFF  # SET_OUTPUT channel meaning "every channel of the node" (revision 2)
BLOCK_DIRECTORY = 0xFF  # READ_SENSOR block listing the node's blocks (revision 2)
BLOCK_LOAD_CELLS = 1  # READ_SENSOR block of the desks' load-cell platforms (revision 3)
HOLD_EVENTS_FROM = 3  # the gateway revision a node sends BUTTON_HOLD to (earlier ones get BUTTON)
LOAD_STEP_EVENTS_FROM = 4  # the gateway revision a node queues LOAD_STEP for (earlier ones get none)


class MsgType(IntEnum):
    HELLO = 0x01
    STATUS = 0x02
    READ_SENSOR = 0x03
    I2C = 0x04
    SET_OUTPUT = 0x05
    GET_OUTPUT = 0x06
    EVENTS = 0x07
    OTA_BEGIN = 0x10
    OTA_CHUNK = 0x11
    OTA_STATUS = 0x12
    OTA_COMMIT = 0x13
    OTA_ABORT = 0x14


class NackCode(IntEnum):
    UNKNOWN_TYPE = 1
    BAD_LENGTH = 2
    BAD_VALUE = 3
    NO_SUCH_CHANNEL = 4
    UNSUPPORTED = 5
    BUSY = 6
    OTA_STATE = 7
    OTA_OFFSET = 8
    HASH_MISMATCH = 9


class HardwareKind(IntEnum):
    DESK_CLUSTER = 1  # up to 4 desks: height, lamp, seat indicator, load cells; local I2C sensors, PIR, button
    DIMMER = 2  # up to 4 light channels
    SENSOR = 3  # sensors only: local I2C bus, PIR
    INDICATOR = 4  # seat indicators only


class Capability(IntFlag):
    I2C_TUNNEL = 1 << 0
    DIMMER = 1 << 1
    DESK_HEIGHT = 1 << 2
    DESK_LAMP = 1 << 3
    SEAT_INDICATOR = 1 << 4
    PIR = 1 << 5
    BUTTON = 1 << 6
    OTA = 1 << 7
    SENSOR_BLOCKS = 1 << 8
    LOAD_CELLS = 1 << 9  # revision 3: a load-cell platform under each desk (sensor block 1)


class ResetCause(IntEnum):
    POWER_ON = 0
    WATCHDOG = 1
    SOFTWARE = 2
    BROWN_OUT = 3
    ROLLBACK = 4
    PIN = 5


class OutputFunction(IntEnum):
    LEVEL = 1  # dimmer channel level, permille 0..1000, with ramp
    DESK_MOVE = 2  # desk height target in mm
    DESK_STOP = 3  # stop the desk where it is (value ignored, send 0)
    DESK_PRESET = 4  # move to stored preset number (value 0..3)
    LAMP = 5  # desk lamp level, permille 0..1000, with ramp
    INDICATOR = 6  # seat indicator colour code (drivers.ports.IndicatorColour)


class EventKind(IntEnum):
    BUTTON = 1  # a short press, queued when released
    MOTION = 2
    MOTION_END = 3
    BUTTON_HOLD = 4  # revision 3: the button held 3 s, queued at that mark (to gateways of revision 3 on)
    LOAD_STEP = 5  # revision 4: a desk's load settled at least 100 g from where it stood (to gateways of revision 4 on)


class I2CStatus(IntEnum):
    OK = 0
    ADDRESS_NACK = 1
    DATA_NACK = 2
    BUS_ERROR = 3


class OtaState(IntEnum):
    IDLE = 0
    RECEIVING = 1
    REBOOTING = 2
    TRIAL = 3


class OtaResult(IntEnum):
    NONE = 0
    CONFIRMED = 1
    HASH_MISMATCH = 2
    ROLLED_BACK = 3  # the trial did not take: no HELLO in time, or the boot loader refused its header
    ABORTED = 4


# Requests a node must not execute twice: a tunnelled transaction may move a register pointer, start
# a conversion or clear a flag. The gateway sends nothing else to the node until one is answered, so
# the node's one-entry duplicate cache still holds it when a retry comes (PROTOCOL.md, 4.4).
NOT_IDEMPOTENT: frozenset[int] = frozenset({MsgType.I2C})


def output_group(function: int) -> int:
    """The output a function drives: DESK_STOP and DESK_PRESET move the same desk as DESK_MOVE."""
    if function in (OutputFunction.DESK_STOP, OutputFunction.DESK_PRESET):
        return OutputFunction.DESK_MOVE
    return function


class CommandSuperseded(BridgeError):
    """A newer command to the same output was issued before this one was confirmed, so it was
    dropped instead of retried: a retry must never run after the newer command (PROTOCOL.md, 4.4)."""


class NodeNackError(BridgeError):
    """The node understood the request and refused it; ``code`` says why."""

    def __init__(self, message: str, *, node: int, code: int, detail: int = 0) -> None:
        super().__init__(message)
        self.node = node
        self.code = code
        self.detail = detail


def _enum(kind: type[IntEnum], value: int, what: str) -> None:
    if value in kind._value2member_map_:  # a member's value: what kind(value) finds first, without the enum call
        return  # (every STATUS reply's reset cause, a few hundred thousand a simulated day)
    try:
        kind(value)
    except ValueError:
        raise FrameError(f"{what}: {value} is not a known {kind.__name__}") from None


class _Fixed:
    """Mixin for payloads with one fixed layout: ``FORMAT`` covers every field in order."""

    FORMAT: ClassVar[struct.Struct]

    def pack(self) -> bytes:
        return self.FORMAT.pack(*(getattr(self, f) for f in self.__slots__))  # type: ignore[attr-defined]

    @classmethod
    def parse(cls, payload: bytes) -> Self:
        if len(payload) != cls.FORMAT.size:
            raise FrameError(f"{cls.__name__}: {len(payload)} bytes, expected {cls.FORMAT.size}")
        obj = cls(*cls.FORMAT.unpack(payload))
        obj.check()
        return obj

    def check(self) -> None:
        """Refuse values outside their enumerations (overridden where there are any)."""


@dataclass(frozen=True, slots=True)
class Nack(_Fixed):
    FORMAT = struct.Struct("<BB")
    code: int
    detail: int = 0


@dataclass(frozen=True, slots=True)
class HelloInfo(_Fixed):
    """Who the node is. Answering HELLO also clears the node's duplicate cache and confirms a trial slot.

    The 12-byte reply of revision 1, and the revision-2 tail (``revision``, ``hw_revision``) that
    a node adds when the HELLO request names revision 2 or later (:func:`parse_hello`).
    """

    FORMAT = struct.Struct("<BBBBHHBBBB")
    TAIL: ClassVar[struct.Struct] = struct.Struct("<BBH")  # revision, hw_revision, reserved
    kind: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    capabilities: int
    boot_id: int
    active_slot: int
    ota_state: int
    ota_result: int
    channels: int
    revision: int = 1
    hw_revision: int = 0  # 0: not reported (a revision-1 node)

    def pack(self) -> bytes:
        base = self.FORMAT.pack(self.kind, self.fw_major, self.fw_minor, self.fw_patch, self.capabilities,
                                self.boot_id, self.active_slot, self.ota_state, self.ota_result, self.channels)
        return base if self.revision < 2 else base + self.TAIL.pack(self.revision, self.hw_revision, 0)

    def check(self) -> None:
        _enum(HardwareKind, self.kind, "kind")
        _enum(OtaState, self.ota_state, "ota_state")
        _enum(OtaResult, self.ota_result, "ota_result")
        if self.active_slot > 1:
            raise FrameError(f"active_slot {self.active_slot} is not 0 or 1")

    @property
    def firmware(self) -> str:
        return f"{self.fw_major}.{self.fw_minor}.{self.fw_patch}"


def parse_hello(payload: bytes) -> HelloInfo:
    """A HELLO reply of any revision: 12 bytes (revision 1) or 16 and more (revision 2 and later;
    bytes past the 16th belong to later revisions and are ignored)."""
    size, tail = HelloInfo.FORMAT.size, HelloInfo.TAIL.size
    if len(payload) == size:
        return HelloInfo.parse(payload)
    if len(payload) < size + tail:
        raise FrameError(f"HelloInfo: {len(payload)} bytes, expected {size} or at least {size + tail}")
    revision, hw_revision, _ = HelloInfo.TAIL.unpack_from(payload, size)
    if revision < 2:
        raise FrameError(f"HelloInfo: revision {revision} in a {len(payload)}-byte reply")
    info = replace(HelloInfo(*HelloInfo.FORMAT.unpack_from(payload)), revision=revision, hw_revision=hw_revision)
    info.check()
    return info


@quick_init  # one per STATUS poll
@dataclass(frozen=True, slots=True)
class NodeStatus(_Fixed):
    """Heartbeat: uptime, reset cause and the node's own error counters."""

    FORMAT = struct.Struct("<IHBBHHHHH")
    uptime_s: int
    boot_id: int
    reset_cause: int
    events_pending: int
    rx_crc_errors: int
    rx_frame_errors: int
    duplicates: int
    i2c_errors: int
    events_lost: int

    def check(self) -> None:
        _enum(ResetCause, self.reset_cause, "reset_cause")


@dataclass(frozen=True, slots=True)
class SetOutput(_Fixed):
    FORMAT = struct.Struct("<BBHH")
    channel: int
    function: int
    value: int
    ramp_ms: int = 0

    def check(self) -> None:
        _enum(OutputFunction, self.function, "function")


@dataclass(frozen=True, slots=True)
class GetOutput(_Fixed):
    FORMAT = struct.Struct("<BB")
    channel: int
    function: int

    def check(self) -> None:
        _enum(OutputFunction, self.function, "function")


@dataclass(frozen=True, slots=True)
class OutputState(_Fixed):
    """What an output holds now (``value``) and where it is going (``target``); bit 0 of flags: moving."""

    FORMAT = struct.Struct("<BBHHB")
    channel: int
    function: int
    value: int
    target: int
    flags: int

    def check(self) -> None:
        _enum(OutputFunction, self.function, "function")

    @property
    def moving(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True, slots=True)
class EventsRequest(_Fixed):
    """Drain queued events; ``ack`` is the last event sequence the gateway has consumed (0: none)."""

    FORMAT = struct.Struct("<HB")
    ack: int
    max_events: int = 16


@dataclass(frozen=True, slots=True)
class NodeEventRecord(_Fixed):
    FORMAT = struct.Struct("<HBBI")
    seq: int
    kind: int
    channel: int
    age_ms: int

    def check(self) -> None:
        _enum(EventKind, self.kind, "event kind")
        if self.seq == 0:
            raise FrameError("event sequence 0 is reserved")


def pack_events(events: list[NodeEventRecord]) -> bytes:
    return bytes([len(events)]) + b"".join(e.pack() for e in events)


def parse_events(payload: bytes) -> list[NodeEventRecord]:
    if not payload:
        raise FrameError("EVENTS reply: empty payload")
    count, size = payload[0], NodeEventRecord.FORMAT.size
    if len(payload) != 1 + count * size:
        raise FrameError(f"EVENTS reply: {len(payload)} bytes for {count} event(s)")
    return [NodeEventRecord.parse(payload[1 + i * size : 1 + (i + 1) * size]) for i in range(count)]


@dataclass(frozen=True, slots=True)
class I2CRequest:
    """Tunnelled I2C: write ``write`` then, after a repeated start, read ``read_len`` bytes."""

    address: int
    read_len: int
    write: bytes = b""

    def pack(self) -> bytes:
        return pack_i2c_request(self.address, self.read_len, self.write)

    @classmethod
    def parse(cls, payload: bytes) -> I2CRequest:
        if len(payload) < 2:
            raise FrameError("I2C request: shorter than 2 bytes")
        req = cls(payload[0], payload[1], bytes(payload[2:]))
        if not 0x03 <= req.address <= 0x77:
            raise FrameError(f"I2C request: 0x{req.address:02x} is not a 7-bit address")
        if not req.write and not req.read_len:
            raise FrameError("I2C request: nothing to write or read")
        if req.read_len > MAX_PAYLOAD - 1:
            raise FrameError(f"I2C request: read of {req.read_len} bytes does not fit a reply")
        return req


def pack_i2c_request(address: int, read_len: int, write: bytes) -> bytes:
    """An I2C request's payload (:class:`I2CRequest`'s layout) without building the object: the
    gateway sends one for every thermopile frame."""
    return bytes((address, read_len)) + write


_I2C_STATUSES = frozenset(I2CStatus)


def parse_i2c_reply(payload: bytes, read_len: int) -> tuple[int, bytes]:
    if not payload:
        raise FrameError("I2C reply: empty payload")
    if payload[0] not in _I2C_STATUSES:  # a set lookup: an I2CStatus built per reply costs more than the rest
        _enum(I2CStatus, payload[0], "I2C status")  # raises, with the usual message
    data = bytes(payload[1:])
    if payload[0] == I2CStatus.OK and len(data) != read_len:
        raise FrameError(f"I2C reply: {len(data)} bytes, expected {read_len}")
    return payload[0], data


@dataclass(frozen=True, slots=True)
class OtaBegin(_Fixed):
    FORMAT = struct.Struct("<IB32s")
    size: int
    slot: int
    sha256: bytes

    def check(self) -> None:
        if self.slot > 1:
            raise FrameError(f"OTA slot {self.slot} is not 0 or 1")
        if self.size == 0:
            raise FrameError("OTA image size 0")


@dataclass(frozen=True, slots=True)
class OtaChunk:
    offset: int
    data: bytes

    def pack(self) -> bytes:
        return struct.pack("<I", self.offset) + self.data

    @classmethod
    def parse(cls, payload: bytes) -> OtaChunk:
        if len(payload) < 5:
            raise FrameError("OTA chunk: needs a 4-byte offset and at least one data byte")
        (offset,) = struct.unpack_from("<I", payload)
        return cls(offset, bytes(payload[4:]))


@dataclass(frozen=True, slots=True)
class OtaProgress(_Fixed):
    FORMAT = struct.Struct("<I")
    offset: int


@dataclass(frozen=True, slots=True)
class OtaStatus(_Fixed):
    FORMAT = struct.Struct("<BBBBII32s")
    state: int
    slot: int
    active_slot: int
    result: int
    size: int
    offset: int
    sha256: bytes

    def check(self) -> None:
        _enum(OtaState, self.state, "OTA state")
        _enum(OtaResult, self.result, "OTA result")
        if self.slot > 1 or self.active_slot > 1:
            raise FrameError("OTA slot is not 0 or 1")
        if self.offset > self.size:
            raise FrameError(f"OTA offset {self.offset} beyond size {self.size}")


@dataclass(frozen=True, slots=True)
class SensorBlock:
    block: int
    data: bytes

    def pack(self) -> bytes:
        return bytes([self.block]) + self.data

    @classmethod
    def parse(cls, payload: bytes) -> SensorBlock:
        if not payload:
            raise FrameError("sensor block: empty payload")
        return cls(payload[0], bytes(payload[1:]))


# The longest reply each request can draw, used for the reply timeout (PROTOCOL.md, "Timing").
MAX_REPLY: dict[int, int] = {
    MsgType.HELLO: HelloInfo.FORMAT.size + HelloInfo.TAIL.size,
    MsgType.STATUS: NodeStatus.FORMAT.size,
    MsgType.READ_SENSOR: MAX_PAYLOAD,
    MsgType.I2C: MAX_PAYLOAD,
    MsgType.SET_OUTPUT: OutputState.FORMAT.size,
    MsgType.GET_OUTPUT: OutputState.FORMAT.size,
    MsgType.EVENTS: 1 + 16 * NodeEventRecord.FORMAT.size,
    MsgType.OTA_BEGIN: OtaStatus.FORMAT.size,
    MsgType.OTA_CHUNK: OtaProgress.FORMAT.size,
    MsgType.OTA_STATUS: OtaStatus.FORMAT.size,
    MsgType.OTA_COMMIT: OtaStatus.FORMAT.size,
    MsgType.OTA_ABORT: OtaStatus.FORMAT.size,
}

# How long the node may take before its first reply byte (PROTOCOL.md, "Timing").
PROCESSING_S: dict[int, float] = {
    MsgType.I2C: 0.030,
    MsgType.READ_SENSOR: 0.010,
    MsgType.OTA_BEGIN: 0.100,  # erase of the first sector
    MsgType.OTA_CHUNK: 0.020,  # flash page program
    MsgType.OTA_COMMIT: 1.000,  # SHA-256 over up to 1 MiB on an RP2040
}
DEFAULT_PROCESSING_S = 0.002

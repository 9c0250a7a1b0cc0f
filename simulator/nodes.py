"""Simulated bridge nodes: microcontrollers that speak firmware_bridge/PROTOCOL.md byte for byte.

A :class:`SimNode` takes the bytes of one frame as they came off the line and returns the bytes
of its reply (or None), exactly as the C firmware would: it checks the CRC and the address,
keeps the duplicate cache keyed by (sequence, request CRC), runs tunnelled I2C against its own
bus object, holds output state with ramps, queues events until acknowledged, and runs the A/B
OTA state machine with trial boot and rollback. Timing (turnaround, processing, byte times) is
the :class:`simulator.nodes_line.SimLine`'s job; the node only says how long it would think.

World-facing controls (``press_button``, ``motion``, ``reboot``) and read-outs
(``dimmer_level``, ``desk``, ``applied``) are for the simulated floor and tests, never for the
gateway, which only sees the line.
"""

from __future__ import annotations

import hashlib
import random
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smbus2 import i2c_msg

from drivers.errors import FrameError
from firmware_bridge.codec import (
    BROADCAST,
    FLAG_DUPLICATE,
    FLAG_EVENTS_PENDING,
    FLAG_NACK,
    FLAG_REPLY,
    GATEWAY,
    HEADER,
    Frame,
    crc16_ccitt_false,
    decode_frame,
    encode_frame,
)
from firmware_bridge.messages import (
    Capability,
    EventsRequest,
    GetOutput,
    HardwareKind,
    HelloInfo,
    I2CRequest,
    I2CStatus,
    MsgType,
    Nack,
    NackCode,
    NodeEventRecord,
    NodeStatus,
    OtaBegin,
    OtaChunk,
    OtaProgress,
    OtaResult,
    OtaState,
    OtaStatus,
    OutputFunction,
    OutputState,
    ResetCause,
    SetOutput,
    pack_events,
)
from firmware_bridge.ota import TRIAL_DEADLINE_S, build_image, parse_image_header

KINDS: dict[str, HardwareKind] = {
    "desk-cluster": HardwareKind.DESK_CLUSTER,
    "dimmer": HardwareKind.DIMMER,
    "sensor": HardwareKind.SENSOR,
    "indicator": HardwareKind.INDICATOR,
}
_BASE = Capability.OTA | Capability.SENSOR_BLOCKS
CAPABILITIES: dict[HardwareKind, Capability] = {
    HardwareKind.DESK_CLUSTER: _BASE
    | Capability.DESK_HEIGHT
    | Capability.DESK_LAMP
    | Capability.SEAT_INDICATOR
    | Capability.I2C_TUNNEL
    | Capability.PIR
    | Capability.BUTTON,
    HardwareKind.DIMMER: _BASE | Capability.DIMMER,
    HardwareKind.SENSOR: _BASE | Capability.I2C_TUNNEL | Capability.PIR,
    HardwareKind.INDICATOR: _BASE | Capability.SEAT_INDICATOR | Capability.BUTTON,
}
NEEDS: dict[OutputFunction, Capability] = {
    OutputFunction.LEVEL: Capability.DIMMER,
    OutputFunction.DESK_MOVE: Capability.DESK_HEIGHT,
    OutputFunction.DESK_STOP: Capability.DESK_HEIGHT,
    OutputFunction.DESK_PRESET: Capability.DESK_HEIGHT,
    OutputFunction.LAMP: Capability.DESK_LAMP,
    OutputFunction.INDICATOR: Capability.SEAT_INDICATOR,
}
DESK_MIN_MM, DESK_MAX_MM, DESK_SPEED_MM_S = 620, 1270, 30.0
DESK_PRESETS = (720, 1100, 750, 1200)
EVENT_QUEUE = 32
_THINK_S: dict[int, float] = {MsgType.OTA_CHUNK: 0.004, MsgType.OTA_BEGIN: 0.03, MsgType.OTA_COMMIT: 0.08}
BOOT_S = 0.2  # from reset to answering frames


class Ramp:
    """A value moving linearly from ``start`` to ``target`` over [t0, t0 + duration]."""

    def __init__(self, value: float = 0.0) -> None:
        self.start = self.target = value
        self.t0 = 0.0
        self.duration = 0.0

    def at(self, t: float) -> float:
        if self.duration <= 0 or t >= self.t0 + self.duration:
            return self.target
        return self.start + (self.target - self.start) * max(0.0, t - self.t0) / self.duration

    def go(self, target: float, t: float, duration: float) -> None:
        self.start, self.target, self.t0, self.duration = self.at(t), target, t, max(0.0, duration)


@dataclass(slots=True)
class DeskState:
    height_mm: float
    target_mm: int
    moving: bool
    lamp: float  # 0..1
    indicator: int  # drivers.ports.IndicatorColour code


@dataclass(slots=True)
class _Ota:
    state: OtaState = OtaState.IDLE
    slot: int = 0
    size: int = 0
    sha256: bytes = bytes(32)
    data: bytearray = field(default_factory=bytearray)
    result: OtaResult = OtaResult.NONE


class SimNode:
    """One simulated node on the bridge (see module docstring)."""

    def __init__(
        self,
        address: int,
        kind: str = "desk-cluster",
        *,
        i2c: Any = None,
        channels: int = 4,
        firmware: tuple[int, int, int] = (1, 0, 0),
        clock: Callable[[], float] = time.monotonic,
        trial_deadline_s: float = TRIAL_DEADLINE_S,
        seed: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: use one of {sorted(KINDS)}")
        self.address = address
        self.kind = KINDS[kind]
        self.capabilities = CAPABILITIES[self.kind]
        self.i2c = i2c
        self.channels = channels
        self.clock = clock
        self.trial_deadline_s = trial_deadline_s
        self._rng = random.Random(seed if seed is not None else address)
        self.slots: list[bytes | None] = [build_image(self.kind, firmware, b"\x00" * 64), None]
        self.active_slot = 0
        self.ota = _Ota()
        self.applied: list[tuple[float, int, int, int]] = []  # (t, channel, function, value) executed
        self.frames_answered = 0
        self.reply_delay_s = 0.0005  # processing time of the last frame handled (read by the line)
        self._trial_from: int | None = None  # slot to roll back to while on trial
        self.firmware = firmware
        self._boot(ResetCause.POWER_ON, self.clock(), 0.0)

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Run on ``clock`` from now on (the line's loop time); a change of clock is a fresh power-on."""
        if clock != self.clock:
            self.clock = clock
            self._boot(ResetCause.POWER_ON, clock(), 0.0)
            self.heights = [Ramp(DESK_PRESETS[0]) for _ in range(self.channels)]

    # ---- boot ------------------------------------------------------------------------------
    def _boot(self, cause: ResetCause, now: float, silent_s: float = BOOT_S) -> None:
        self.boot_id = self._rng.randrange(1, 0x10000)
        self.boot_t = now
        self.reset_cause = cause
        self.silent_until = now + silent_s
        self.counters = dict.fromkeys(("crc", "frame", "dup", "i2c", "lost"), 0)
        self._cache: tuple[int, int, Frame] | None = None  # seq, request CRC, the reply to repeat
        self._events: deque[tuple[int, int, int, float]] = deque()
        self._event_seq = 0
        self.levels = [Ramp() for _ in range(self.channels)]
        self.lamps = [Ramp() for _ in range(self.channels)]
        self.indicators = [0] * self.channels
        old = getattr(self, "heights", None)
        self.heights = old if old is not None else [Ramp(DESK_PRESETS[0]) for _ in range(self.channels)]
        for h in self.heights:
            h.go(h.at(now), now, 0)  # power loss stops a moving desk where it is
        image = self.slots[self.active_slot]
        try:
            header = parse_image_header(image or b"")
            self.runs = header.kind == self.kind
            self.firmware = header.version
        except FrameError:
            self.runs = False  # the boot loader finds no valid image: the MCU stays silent

    def _tick(self, now: float) -> None:
        """Time-driven state: the reboot after a commit, and rollback of a trial that never said hello."""
        # Evaluated lazily, but each transition happens at the time it was due, not when noticed.
        if self.ota.state == OtaState.REBOOTING and now >= (reset_at := self.silent_until - BOOT_S):
            self._trial_from, self.active_slot = self.active_slot, self.ota.slot
            self.ota.state = OtaState.TRIAL
            self._boot(ResetCause.SOFTWARE, reset_at)
        if self._trial_from is not None and now >= (deadline := self.boot_t + self.trial_deadline_s):
            self.active_slot, self._trial_from = self._trial_from, None
            self.ota.state, self.ota.result = OtaState.IDLE, OtaResult.ROLLED_BACK_NO_HELLO
            self._boot(ResetCause.ROLLBACK, deadline)

    def reboot(self, silent_s: float = 1.0, cause: ResetCause = ResetCause.WATCHDOG) -> None:
        """Fault: reset now and stay silent for ``silent_s`` (outputs go to their power-on state)."""
        self._boot(cause, self.clock(), silent_s)

    def silent(self, now: float) -> bool:
        self._tick(now)
        return now < self.silent_until or not self.runs

    # ---- world controls and read-outs ------------------------------------------------------
    def _event(self, kind: int, channel: int) -> None:
        self._event_seq = self._event_seq % 0xFFFF + 1
        if len(self._events) >= EVENT_QUEUE:
            self._events.popleft()
            self.counters["lost"] += 1
        self._events.append((self._event_seq, kind, channel, self.clock()))

    def press_button(self, channel: int = 0) -> None:
        self._event(1, channel)

    def motion(self, channel: int = 0, active: bool = True) -> None:
        self._event(2 if active else 3, channel)

    @property
    def events_pending(self) -> int:
        return len(self._events)

    def dimmer_level(self, channel: int, t: float | None = None) -> float:
        return self.levels[channel].at(self.clock() if t is None else t) / 1000

    def desk(self, channel: int, t: float | None = None) -> DeskState:
        now = self.clock() if t is None else t
        h = self.heights[channel]
        height = h.at(now)
        return DeskState(
            height, round(h.target), height != h.target, self.lamps[channel].at(now) / 1000, self.indicators[channel]
        )

    # ---- the protocol ----------------------------------------------------------------------
    def processing_s(self, mtype: int, payload_len: int = 0) -> float:
        """How long this node thinks before replying (well inside PROTOCOL.md's budgets)."""
        if mtype == MsgType.I2C:
            return 0.0003 + payload_len * 9 / 100_000
        return _THINK_S.get(mtype, 0.0005)

    def receive(self, block: bytes, now: float | None = None, *, decoded: Frame | None = None) -> bytes | None:
        """Handle the bytes between two delimiters; return the encoded reply or None.

        ``decoded`` is ``decode_frame(block)`` when the caller has already decoded the block.
        """
        now = self.clock() if now is None else now
        if self.silent(now):
            return None
        try:
            frame = decoded if decoded is not None else decode_frame(block)
        except FrameError as exc:
            self.counters["crc" if "CRC" in str(exc) else "frame"] += 1
            return None
        if frame.is_reply or frame.src != GATEWAY or frame.dst not in (self.address, BROADCAST):
            return None
        self.reply_delay_s = self.processing_s(frame.type, len(frame.payload))
        req_crc = _request_crc(frame)
        if frame.dst != BROADCAST and self._cache is not None and self._cache[:2] == (frame.seq, req_crc):
            self.counters["dup"] += 1
            return encode_frame(self._cache[2])  # the cached reply, marked as a repeat
        flags, payload = FLAG_REPLY, b""
        try:
            payload = self._handle(frame, now)
        except FrameError:
            flags, payload = flags | FLAG_NACK, Nack(NackCode.BAD_LENGTH).pack()
        except _Refusal as r:
            flags, payload = flags | FLAG_NACK, Nack(r.code, r.detail).pack()
        if frame.dst == BROADCAST:
            return None
        if self._events:
            flags |= FLAG_EVENTS_PENDING
        reply = encode_frame(Frame(GATEWAY, self.address, frame.seq, frame.type, flags, payload))
        if frame.type != MsgType.HELLO:  # HELLO clears the cache (PROTOCOL.md, "Duplicates")
            # Only a retry needs the repeat's bytes, so keep the frame and encode it on demand.
            self._cache = (
                frame.seq,
                req_crc,
                Frame(GATEWAY, self.address, frame.seq, frame.type, flags | FLAG_DUPLICATE, payload),
            )
        else:
            self._cache = None
        self.frames_answered += 1
        return reply

    def _handle(self, frame: Frame, now: float) -> bytes:
        p = frame.payload
        match frame.type:
            case MsgType.HELLO:
                _empty(p)
                if self.ota.state == OtaState.TRIAL:
                    self._trial_from = None
                    self.ota.state, self.ota.result = OtaState.IDLE, OtaResult.CONFIRMED
                return self._hello().pack()
            case MsgType.STATUS:
                _empty(p)
                c = self.counters
                return NodeStatus(
                    int(now - self.boot_t),
                    self.boot_id,
                    self.reset_cause,
                    min(255, len(self._events)),
                    c["crc"],
                    c["frame"],
                    c["dup"],
                    c["i2c"],
                    c["lost"],
                ).pack()
            case MsgType.READ_SENSOR:
                if len(p) != 1 or p[0] != 0:
                    raise _Refusal(NackCode.BAD_VALUE)
                motions = sum(1 for e in self._events if e[1] == 2)
                return bytes([0]) + struct.pack("<BBH", 0, 0, motions)
            case MsgType.I2C:
                return self._i2c(I2CRequest.parse(p))
            case MsgType.SET_OUTPUT:
                cmd = SetOutput.parse(p)
                self._check_output(cmd.channel, cmd.function)
                self._apply(cmd, now)
                return self._output_state(cmd.channel, cmd.function, now).pack()
            case MsgType.GET_OUTPUT:
                q = GetOutput.parse(p)
                self._check_output(q.channel, q.function)
                return self._output_state(q.channel, q.function, now).pack()
            case MsgType.EVENTS:
                return self._drain(EventsRequest.parse(p), now)
            case MsgType.OTA_BEGIN | MsgType.OTA_CHUNK | MsgType.OTA_STATUS | MsgType.OTA_COMMIT | MsgType.OTA_ABORT:
                return self._ota(frame.type, p, now)
        raise _Refusal(NackCode.UNKNOWN_TYPE, frame.type)

    def _hello(self) -> HelloInfo:
        major, minor, patch = self.firmware
        return HelloInfo(
            self.kind,
            major,
            minor,
            patch,
            int(self.capabilities),
            self.boot_id,
            self.active_slot,
            self.ota.state,
            self.ota.result,
            self.channels,
        )

    def _i2c(self, req: I2CRequest) -> bytes:
        if self.i2c is None or not self.capabilities & Capability.I2C_TUNNEL:
            raise _Refusal(NackCode.UNSUPPORTED)
        msgs = []
        if req.write:
            msgs.append(i2c_msg.write(req.address, req.write))
        if req.read_len:
            msgs.append(i2c_msg.read(req.address, req.read_len))
        try:
            self.i2c.i2c_rdwr(*msgs)
        except OSError as exc:
            self.counters["i2c"] += 1
            status = I2CStatus.ADDRESS_NACK if exc.errno in (5, 6, 121) else I2CStatus.BUS_ERROR
            return bytes([status])
        except (ValueError, TypeError):
            self.counters["i2c"] += 1
            return bytes([I2CStatus.BUS_ERROR])
        return bytes([I2CStatus.OK]) + (bytes(msgs[-1]) if req.read_len else b"")

    def _check_output(self, channel: int, function: int) -> None:
        if not self.capabilities & NEEDS[OutputFunction(function)]:
            raise _Refusal(NackCode.UNSUPPORTED, function)
        if channel >= self.channels:
            raise _Refusal(NackCode.NO_SUCH_CHANNEL, channel)

    def _apply(self, cmd: SetOutput, now: float) -> None:
        fn, ch, v, ramp = OutputFunction(cmd.function), cmd.channel, cmd.value, cmd.ramp_ms / 1000
        if fn in (OutputFunction.LEVEL, OutputFunction.LAMP):
            if v > 1000:
                raise _Refusal(NackCode.BAD_VALUE)
            (self.levels if fn == OutputFunction.LEVEL else self.lamps)[ch].go(v, now, ramp)
        elif fn == OutputFunction.INDICATOR:
            if v > 4:
                raise _Refusal(NackCode.BAD_VALUE)
            self.indicators[ch] = v
        else:
            h = self.heights[ch]
            if fn == OutputFunction.DESK_PRESET:
                if v >= len(DESK_PRESETS):
                    raise _Refusal(NackCode.BAD_VALUE)
                v = DESK_PRESETS[v]
            elif fn == OutputFunction.DESK_STOP:
                v = round(h.at(now))
            elif not DESK_MIN_MM <= v <= DESK_MAX_MM:
                raise _Refusal(NackCode.BAD_VALUE)
            current = h.at(now)
            h.go(v, now, abs(v - current) / DESK_SPEED_MM_S)
        self.applied.append((now, ch, fn, v))

    def _output_state(self, channel: int, function: int, now: float) -> OutputState:
        fn = OutputFunction(function)
        if fn == OutputFunction.INDICATOR:
            return OutputState(channel, fn, self.indicators[channel], self.indicators[channel], 0)
        ramp = {OutputFunction.LEVEL: self.levels, OutputFunction.LAMP: self.lamps}.get(fn, self.heights)[channel]
        value = ramp.at(now)
        return OutputState(channel, fn, round(value), round(ramp.target), int(value != ramp.target))

    def _drain(self, req: EventsRequest, now: float) -> bytes:
        while self._events and (req.ack - self._events[0][0]) % 0x10000 < 0x8000 and req.ack != 0:
            self._events.popleft()
        out = [
            NodeEventRecord(seq, kind, ch, min(0xFFFFFFFF, int((now - t) * 1000)))
            for seq, kind, ch, t in list(self._events)[: min(16, req.max_events)]
        ]
        return pack_events(out)

    def _ota(self, mtype: int, p: bytes, now: float) -> bytes:
        o = self.ota
        if mtype == MsgType.OTA_BEGIN:
            begin = OtaBegin.parse(p)
            if begin.slot == self.active_slot or o.state in (OtaState.REBOOTING, OtaState.TRIAL):
                raise _Refusal(NackCode.OTA_STATE)
            if not (
                o.state == OtaState.RECEIVING and (o.size, o.slot, o.sha256) == (begin.size, begin.slot, begin.sha256)
            ):
                self.ota = o = _Ota(OtaState.RECEIVING, begin.slot, begin.size, begin.sha256, result=o.result)
        elif mtype == MsgType.OTA_CHUNK:
            chunk = OtaChunk.parse(p)
            if o.state != OtaState.RECEIVING:
                raise _Refusal(NackCode.OTA_STATE)
            if chunk.offset > len(o.data) or chunk.offset + len(chunk.data) > o.size:
                raise _Refusal(NackCode.OTA_OFFSET)
            if chunk.offset == len(o.data):
                o.data += chunk.data
            return OtaProgress(len(o.data)).pack()
        elif mtype == MsgType.OTA_COMMIT:
            _empty(p)
            if o.state != OtaState.RECEIVING or len(o.data) != o.size:
                raise _Refusal(NackCode.OTA_STATE)
            if hashlib.sha256(o.data).digest() != o.sha256:
                self.ota = _Ota(result=OtaResult.HASH_MISMATCH)
                raise _Refusal(NackCode.HASH_MISMATCH)
            self.slots[o.slot] = bytes(o.data)
            o.state = OtaState.REBOOTING
            self.silent_until = now + 0.05 + BOOT_S  # reply first, then reset into the new slot
        elif mtype == MsgType.OTA_ABORT:
            _empty(p)
            if o.state == OtaState.RECEIVING:
                self.ota = o = _Ota(result=OtaResult.ABORTED)
        else:
            _empty(p)
        return OtaStatus(o.state, o.slot, self.active_slot, o.result, o.size, len(o.data), o.sha256).pack()


class _Refusal(Exception):
    """Internal: answer with a NACK carrying ``code`` and ``detail``."""

    def __init__(self, code: NackCode, detail: int = 0) -> None:
        super().__init__(code.name)
        self.code = code
        self.detail = detail & 0xFF


def _request_crc(frame: Frame) -> int:
    """The CRC the request carried: a decoded frame passed its CRC check, so re-packing its header
    and payload gives back exactly the checked bytes (cheaper than un-stuffing the block again)."""
    header = HEADER.pack(frame.version, frame.dst, frame.src, frame.seq, frame.type, frame.flags, len(frame.payload))
    return crc16_ccitt_false(header + frame.payload)


def _empty(payload: bytes) -> None:
    if payload:
        raise FrameError("payload must be empty")

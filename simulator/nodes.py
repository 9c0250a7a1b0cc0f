"""Simulated bridge nodes: microcontrollers that speak firmware_bridge/PROTOCOL.md byte for byte.

A :class:`SimNode` takes the bytes of one frame as they came off the line and returns the bytes
of its reply (or None), exactly as the C firmware would: it checks the CRC and the address,
keeps the duplicate cache keyed by (sequence, request CRC), checks a request in the protocol's
order before acting on it, runs tunnelled I2C against its own bus object, holds output state with
ramps, queues events until acknowledged, and runs the A/B OTA state machine with trial boot and
rollback (:mod:`simulator.nodes_ota`). Timing (turnaround, processing, byte times) is the
:class:`simulator.nodes_line.SimLine`'s job; the node only says how long it would think.

``revision`` is the PROTOCOL.md revision the node's firmware follows (2 by default; 1 for a node
of the first revision: no extended HELLO, no channel 255, no block directory).

``load_cells`` fits a load-cell platform under each desk (revision 3: sensor block 1 and the
LOAD_CELLS capability; :mod:`simulator.nodes_loadcell`). A node of revision 4 also watches each
platform as its firmware would and queues a LOAD_STEP event when a desk's load settles at least
100 g from where it stood (PROTOCOL.md, 5.7), for a gateway that named revision 4.

World-facing controls (``press_button``, ``hold_button``, ``set_desk_load``, ``motion``,
``reboot``, ``local_change``, ``busy_until``) and read-outs (``dimmer_level``, ``desk``,
``applied``) are for the simulated floor and tests, never for the gateway, which only sees the
line.
"""

from __future__ import annotations

import bisect
import math
import random
import struct
import time
from collections import deque
from collections.abc import Callable
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
    PROTOCOL_VERSION,
    Frame,
    crc16_ccitt_false,
    decode_frame,
    encode_fields,
)
from firmware_bridge.messages import (
    BLOCK_DIRECTORY,
    BLOCK_LOAD_CELLS,
    HOLD_EVENTS_FROM,
    LOAD_STEP_EVENTS_FROM,
    Capability,
    EventKind,
    EventsRequest,
    GetOutput,
    HardwareKind,
    HelloInfo,
    I2CStatus,
    MsgType,
    Nack,
    NackCode,
    NodeEventRecord,
    NodeStatus,
    ResetCause,
    SetOutput,
    pack_events,
)
from firmware_bridge.ota import TRIAL_DEADLINE_S

from .hw.bus import SimI2CBus
from .nodes_loadcell import BUTTON_GAP_S, HOLD_S, STEP_EVENT_G, DeskPlatform, PendingPress
from .nodes_ota import HANG_MARKER, SECTOR_ERASE_S, NodeFlash, Refusal
from .nodes_outputs import DESK_PRESETS, DeskState, NodeOutputs, Ramp

__all__ = ["BOOT_S", "HANG_MARKER", "DeskState", "SimNode"]

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
EVENT_QUEUE = 32
_THINK_S: dict[int, float] = {MsgType.OTA_CHUNK: 0.004, MsgType.OTA_BEGIN: 0.03, MsgType.OTA_COMMIT: 0.08}
BOOT_S = 0.2  # from reset to answering frames
COMMIT_RESET_S = 0.05  # after a COMMIT reply, the node resets within this
SENSOR_BLOCKS = (0,)  # block 0: PIR, button and queued motion events (every node kind has it here)
_ANSWERED_WHEN_BUSY = (MsgType.HELLO, MsgType.STATUS)  # a node always answers these
# Block 0 counts the queued events of these kinds: a set made once, not a tuple of two enum members
# built for each queued event on each read of the block (a hundred thousand reads a simulated day).
_MOTION_KINDS = frozenset((EventKind.MOTION, EventKind.MOTION_END))
# Capability bits as plain ints: ``&`` of two flag members runs enum's Python-level operator, a few
# microseconds on each tunnelled transaction and block read the node answers.
_SENSOR_BLOCKS = int(Capability.SENSOR_BLOCKS)
_I2C_TUNNEL = int(Capability.I2C_TUNNEL)
_STATUS = NodeStatus.FORMAT


class SimNode(NodeOutputs):
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
        revision: int = 2,
        hw_revision: int = 1,
        sector_erase_s: float = SECTOR_ERASE_S,
        load_cells: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: use one of {sorted(KINDS)}")
        self.address = address
        self.kind = KINDS[kind]
        self.capabilities = CAPABILITIES[self.kind]
        if load_cells:
            if self.kind != HardwareKind.DESK_CLUSTER or revision < 3:
                raise ValueError("load cells are fitted to desk-cluster nodes of revision 3 or later")
            self.capabilities |= Capability.LOAD_CELLS
        self.sensor_blocks = (0, BLOCK_LOAD_CELLS) if load_cells else SENSOR_BLOCKS
        # The desks' platforms exist whether or not a load cell reads them: the world puts things on desks.
        seed = seed if seed is not None else address
        self.platforms = [DeskPlatform(seed=seed * 64 + ch) for ch in range(channels)]
        self._presses: list[PendingPress] = []
        self._button_down: dict[int, tuple[float, float]] = {}  # channel -> (pressed at, let go at)
        self.i2c = i2c
        self.channels = channels
        self.clock = clock
        self.trial_deadline_s = trial_deadline_s
        self.revision = revision  # of PROTOCOL.md this node's firmware follows
        self.hw_revision = hw_revision
        self.busy_until = float("-inf")  # test control: BUSY to everything but HELLO and STATUS until then
        self._rng = random.Random(seed if seed is not None else address)
        self.flash = NodeFlash(self.kind, firmware, hw_revision=hw_revision, sector_erase_s=sector_erase_s)
        self.applied: list[tuple[float, int, int, int]] = []  # (t, channel, function, value) executed
        self.frames_answered = 0
        self.reply_delay_s = 0.0005  # processing time of the last frame handled (read by the line)
        self.firmware = firmware
        self._reset_at: float | None = None  # a committed update resets the node then
        self._boot(ResetCause.POWER_ON, self.clock(), 0.0)

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Run on ``clock`` from now on (the line's loop time); a change of clock is a fresh power-on."""
        if clock != self.clock:
            self.clock = clock
            self._boot(ResetCause.POWER_ON, clock(), 0.0)
            self.heights = [Ramp(DESK_PRESETS[0]) for _ in range(self.channels)]

    # ---- boot ------------------------------------------------------------------------------
    @property
    def active_slot(self) -> int:
        return self.flash.active_slot

    @property
    def slots(self) -> list[bytes | None]:
        return self.flash.slots

    @property
    def ota(self) -> Any:
        return self.flash.ota

    def _boot(self, cause: ResetCause, now: float, silent_s: float = BOOT_S) -> None:
        self.boot_id = self._rng.randrange(1, 0x10000)
        self.boot_t = now
        self.reset_cause = cause
        self.silent_until = now + silent_s
        self.counters = dict.fromkeys(("crc", "frame", "dup", "i2c", "lost"), 0)
        # seq, the request (its CRC is the key), and the reply to repeat: its type, flags (marked a
        # repeat) and payload
        self._cache: tuple[int, Frame, int, int, bytes] | None = None
        self._events: deque[tuple[int, int, int, float]] = deque()
        self._event_seq = 0
        self._gateway_revision = 1  # until a HELLO names one: what the node may send it
        self._presses = [p for p in getattr(self, "_presses", []) if p.due > now]  # a reset forgets queued ones
        # LOAD_STEP: each channel's reference level (None until settled after the reset) and the
        # changes of load not yet settled, (due, channel): the firmware starts afresh at a reset.
        self._load_ref: list[float | None] = [None] * len(getattr(self, "platforms", []))
        self._load_checks: list[tuple[float, int]] = []
        for platform in getattr(self, "platforms", []):
            platform.powered_at = now  # the HX711s reset with the node and settle again
        self.levels = [Ramp() for _ in range(self.channels)]
        self.lamps = [Ramp() for _ in range(self.channels)]
        self.indicators = [0] * self.channels
        old = getattr(self, "heights", None)
        self.heights = old if old is not None else [Ramp(DESK_PRESETS[0]) for _ in range(self.channels)]
        for h in self.heights:
            h.go(h.at(now), now, 0)  # power loss stops a moving desk where it is
        self.runs, self.firmware = self.flash.running()

    def _tick(self, now: float) -> None:
        """Time-driven state: button events falling due, the reset after a commit, and rollback of a
        trial that never said hello."""
        while self._presses and self._presses[0].due <= now:
            press = self._presses.pop(0)
            hold = press.held and self.revision >= HOLD_EVENTS_FROM
            self._event(EventKind.BUTTON_HOLD if hold else EventKind.BUTTON, press.channel, press.due)
        while self._load_checks and self._load_checks[0][0] <= now:
            self._load_settled(*self._load_checks.pop(0))
        # Evaluated lazily, but each transition happens at the time it was due, not when noticed.
        if self._reset_at is not None and now >= self._reset_at:
            reset_at, self._reset_at = self._reset_at, None
            trial = self.flash.reset_into_new_slot()
            self._boot(ResetCause.SOFTWARE if trial else ResetCause.ROLLBACK, reset_at)
        if self.flash.trial_from is not None and now >= (deadline := self.boot_t + self.trial_deadline_s):
            self.flash.roll_back()
            self._boot(ResetCause.ROLLBACK, deadline)

    def reboot(self, silent_s: float = 1.0, cause: ResetCause = ResetCause.WATCHDOG) -> None:
        """Fault: reset now and stay silent for ``silent_s`` (outputs go to their power-on state)."""
        self._boot(cause, self.clock(), silent_s)

    def silent(self, now: float) -> bool:
        self._tick(now)
        return now < self.silent_until or not self.runs

    # ---- world controls and read-outs ------------------------------------------------------
    def _event(self, kind: int, channel: int, t: float | None = None) -> None:
        self._event_seq = self._event_seq % 0xFFFF + 1
        if len(self._events) >= EVENT_QUEUE:
            self._events.popleft()
            self.counters["lost"] += 1
        self._events.append((self._event_seq, kind, channel, self.clock() if t is None else t))

    def _channel(self, channel: int) -> int:
        if not 0 <= channel < self.channels:
            raise ValueError(f"node {self.address} has channels 0..{self.channels - 1}, not {channel}")
        return channel

    def press_button(self, channel: int = 0) -> None:
        """A short press of the desk's button, queued at once (one BUTTON event)."""
        self._event(EventKind.BUTTON, self._channel(channel))

    def hold_button(self, channel: int, seconds: float) -> None:
        """The desk's button pressed now and let go after ``seconds``.

        Shorter than 3 s: one BUTTON event when it is let go. 3 s or longer: one BUTTON_HOLD event
        at the 3 s mark (a BUTTON to a gateway of revision 2 or earlier, and from a node of
        revision 2, which has no hold). Block 0 shows the button down meanwhile.
        """
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"a press lasts a positive number of seconds, not {seconds!r}")
        now = self.clock()
        held = seconds >= HOLD_S and self.revision >= HOLD_EVENTS_FROM
        due = now + (HOLD_S if held else seconds + BUTTON_GAP_S)
        bisect.insort(self._presses, PendingPress(due, self._channel(channel), held))
        self._button_down[channel] = (now, now + seconds)

    def set_desk_load(self, channel: int, grams: float) -> None:
        """The true mass on the desk's platform (laptop, bag, books, a cup; 0 when cleared).

        The node's HX711 sees it through the platform as the part would: with the desktop's dead
        load, this desk's own scale, creep under the change, drift of its zero and noise. A node
        without load cells keeps the mass (it is on the desk) but reports nothing of it.
        """
        if not math.isfinite(grams) or grams < 0:
            raise ValueError(f"a desk carries zero or more grams, not {grams!r}")
        platform, now = self.platforms[self._channel(channel)], self.clock()
        if grams == platform.mass_g:
            return
        if self.revision >= LOAD_STEP_EVENTS_FROM and self.capabilities & Capability.LOAD_CELLS:
            self._tick(now)
            if self._load_ref[channel] is None and platform.healthy(now):
                self._load_ref[channel] = platform.level_g(now)  # the load stood still since the reset
            # A change before the last one settled: the firmware never saw that one settle.
            self._load_checks = [c for c in self._load_checks if c[1] != channel]
            bisect.insort(self._load_checks, (now + platform.settles_after(), channel))
        platform.set_mass(grams, now)

    def _load_settled(self, due: float, channel: int) -> None:
        """A desk's new load has settled at ``due``: LOAD_STEP if it is STEP_EVENT_G or more from the
        channel's reference (which then moves to it), queued for a gateway of revision 4 on."""
        platform = self.platforms[channel]
        if not platform.healthy(due):
            self._load_ref[channel] = None  # not OK: no reference until it settles again
            return
        level, ref = platform.level_g(due), self._load_ref[channel]
        if ref is None:
            self._load_ref[channel] = level
        elif abs(level - ref) >= STEP_EVENT_G:
            self._load_ref[channel] = level
            if self._gateway_revision >= LOAD_STEP_EVENTS_FROM:
                self._event(EventKind.LOAD_STEP, channel, due)

    def desk_load(self, channel: int) -> float:
        """The true mass on the desk (what the world last set)."""
        return self.platforms[self._channel(channel)].mass_g

    def motion(self, channel: int = 0, active: bool = True) -> None:
        self._event(EventKind.MOTION if active else EventKind.MOTION_END, channel)

    @property
    def events_pending(self) -> int:
        self._tick(self.clock())
        return len(self._events)

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
        if frame.flags & FLAG_REPLY or frame.src != GATEWAY or frame.dst not in (self.address, BROADCAST):
            return None
        mtype = frame.type
        # processing_s, without a call for the types that have no payload-dependent time
        self.reply_delay_s = (self.processing_s(mtype, len(frame.payload)) if mtype == MsgType.I2C
                              else _THINK_S.get(mtype, 0.0005))
        pending = FLAG_EVENTS_PENDING if self._events else 0
        cache = self._cache
        if (frame.dst != BROADCAST and cache is not None and cache[0] == frame.seq
                and _request_crc(cache[1]) == _request_crc(frame)):  # keyed by (sequence, request CRC)
            self.counters["dup"] += 1
            _, _, mtype, repeat, payload = cache  # the same reply, marked as a repeat, with the flag of *now*
            return _reply(self.address, frame.seq, mtype, repeat | pending, payload)
        flags, payload = FLAG_REPLY, b""
        try:
            payload = self._handle(frame, now)
        except Refusal as r:
            flags, payload = flags | FLAG_NACK, Nack(r.code, r.detail).pack()
        if frame.dst == BROADCAST:
            return None
        busy = flags & FLAG_NACK and payload[0] == NackCode.BUSY
        if self._events:
            flags |= FLAG_EVENTS_PENDING
        reply = _reply(self.address, frame.seq, frame.type, flags, payload)
        if frame.type == MsgType.HELLO:  # HELLO clears the cache (PROTOCOL.md, 4.4)
            self._cache = None
        elif not busy:  # BUSY did nothing: the request must run when it comes again
            # Only a retry needs the repeat, so keep its fields and make the frame on demand; the
            # request's CRC, too, is worked out only when a request with its sequence number comes.
            self._cache = (frame.seq, frame, frame.type, (flags & ~FLAG_EVENTS_PENDING) | FLAG_DUPLICATE, payload)
        self.frames_answered += 1
        if frame.type == MsgType.OTA_COMMIT and not flags & FLAG_NACK:
            self._reset_at = now + COMMIT_RESET_S  # reply first, then reset into the new slot
            self.silent_until = self._reset_at + BOOT_S
        return reply

    def _handle(self, frame: Frame, now: float) -> bytes:
        """Check in PROTOCOL.md's order (type, length, capability, channel, value, OTA state and
        offset, busy) and only then act, so a refused request changes nothing."""
        p, mtype = frame.payload, frame.type
        busy = now < self.busy_until and mtype not in _ANSWERED_WHEN_BUSY
        match mtype:
            case MsgType.HELLO:
                if p and self.revision < 2:
                    raise Refusal(NackCode.BAD_LENGTH)
                self.flash.confirm()
                self._gateway_revision = p[0] if p else 1
                return self._hello(extended=bool(p) and p[0] >= 2).pack()
            case MsgType.STATUS:
                _length(p, 0)
                c = self.counters
                # NodeStatus(...).pack()'s bytes, without a message object per heartbeat
                return _STATUS.pack(int(now - self.boot_t), self.boot_id, self.reset_cause, min(255, len(self._events)),
                                    c["crc"], c["frame"], c["dup"], c["i2c"], c["lost"])  # fmt: skip
            case MsgType.READ_SENSOR:
                return self._read_sensor(p, busy)
            case MsgType.I2C:
                return self._i2c(p, busy)
            case MsgType.SET_OUTPUT:
                _length(p, SetOutput.FORMAT.size)
                cmd = SetOutput(*SetOutput.FORMAT.unpack(p))
                self._check_output(cmd.channel, cmd.function, everywhere=True)
                self._check_value(cmd)
                _not_busy(busy)
                self._apply(cmd, now)
                return self._output_state(cmd.channel, cmd.function, now).pack()
            case MsgType.GET_OUTPUT:
                _length(p, GetOutput.FORMAT.size)
                channel, function = GetOutput.FORMAT.unpack(p)
                self._check_output(channel, function)
                _not_busy(busy)
                return self._output_state(channel, function, now).pack()
            case MsgType.EVENTS:
                _length(p, EventsRequest.FORMAT.size)
                _not_busy(busy)
                return self._drain(EventsRequest(*EventsRequest.FORMAT.unpack(p)), now)
            case MsgType.OTA_BEGIN | MsgType.OTA_CHUNK | MsgType.OTA_STATUS | MsgType.OTA_COMMIT | MsgType.OTA_ABORT:
                if not self.capabilities & Capability.OTA:
                    raise Refusal(NackCode.UNSUPPORTED, mtype)
                return self.flash.handle(mtype, p, now, busy)
        raise Refusal(NackCode.UNKNOWN_TYPE, mtype)

    def _hello(self, *, extended: bool) -> HelloInfo:
        major, minor, patch = self.firmware
        o = self.flash.ota
        return HelloInfo(self.kind, major, minor, patch, int(self.capabilities), self.boot_id, self.active_slot,
                         o.state, o.result, self.channels, self.revision if extended else 1,
                         self.hw_revision if extended else 0)  # fmt: skip

    def _read_sensor(self, p: bytes, busy: bool) -> bytes:
        _length(p, 1)
        if not int(self.capabilities) & _SENSOR_BLOCKS:
            raise Refusal(NackCode.UNSUPPORTED, MsgType.READ_SENSOR)
        block = p[0]
        if block == BLOCK_DIRECTORY and self.revision >= 2:
            _not_busy(busy)
            return bytes([BLOCK_DIRECTORY, len(self.sensor_blocks), *self.sensor_blocks])
        if block not in self.sensor_blocks:
            raise Refusal(NackCode.BAD_VALUE, block)
        _not_busy(busy)
        now = self.clock()
        if block == BLOCK_LOAD_CELLS:
            rate = self.platforms[0].rate if self.platforms else 10
            cells = b"".join(struct.pack("<iB", *p.report(now)) for p in self.platforms)
            return bytes([BLOCK_LOAD_CELLS, rate, len(self.platforms)]) + cells
        motions = sum(1 for e in self._events if e[1] in _MOTION_KINDS)
        down = sum(1 << ch for ch, (start, end) in self._button_down.items() if start <= now < end)
        return bytes([0]) + struct.pack("<BBH", 0, down & 0xFF, motions)

    def _i2c(self, p: bytes, busy: bool) -> bytes:
        if len(p) < 2:
            raise Refusal(NackCode.BAD_LENGTH)
        if self.i2c is None or not int(self.capabilities) & _I2C_TUNNEL:
            raise Refusal(NackCode.UNSUPPORTED, MsgType.I2C)
        address, read_len, write = p[0], p[1], bytes(p[2:])
        if not 0x03 <= address <= 0x77 or not (write or read_len):
            raise Refusal(NackCode.BAD_VALUE)
        _not_busy(busy)
        bus = self.i2c
        try:
            if type(bus) is SimI2CBus:
                # The simulated bus runs the same segments as its i2c_rdwr would, and records the
                # same transaction, without smbus2's ctypes messages (tens of thousands a day).
                if write:
                    bus.rdwr_segment(address, write, None)
                return bytes([I2CStatus.OK]) + (bus.rdwr_segment(address, None, read_len) if read_len else b"")
            msgs = []
            if write:
                msgs.append(i2c_msg.write(address, write))
            if read_len:
                msgs.append(i2c_msg.read(address, read_len))
            bus.i2c_rdwr(*msgs)
        except OSError as exc:
            self.counters["i2c"] += 1
            status = I2CStatus.ADDRESS_NACK if exc.errno in (5, 6, 121) else I2CStatus.BUS_ERROR
            return bytes([status])
        except (ValueError, TypeError):
            self.counters["i2c"] += 1
            return bytes([I2CStatus.BUS_ERROR])
        return bytes([I2CStatus.OK]) + (bytes(msgs[-1]) if read_len else b"")

    def _drain(self, req: EventsRequest, now: float) -> bytes:
        while self._events and req.ack != 0 and (req.ack - self._events[0][0]) % 0x10000 < 0x8000:
            self._events.popleft()
        # A hold is named BUTTON_HOLD only to a gateway that knows it (revision 3 on): to an earlier
        # one it is a press, which it can parse (PROTOCOL.md, 5.7).
        older = self._gateway_revision < HOLD_EVENTS_FROM
        out = [
            NodeEventRecord(seq, EventKind.BUTTON if older and kind == EventKind.BUTTON_HOLD else kind, ch,
                            min(0xFFFFFFFF, int((now - t) * 1000)))
            for seq, kind, ch, t in list(self._events)[: min(16, req.max_events)]
        ]
        return pack_events(out)


def _reply(src: int, seq: int, mtype: int, flags: int, payload: bytes) -> bytes:
    """A reply to the gateway, encoded without a Frame object per reply."""
    return encode_fields(PROTOCOL_VERSION, GATEWAY, src, seq, mtype, flags, payload)


def _request_crc(frame: Frame) -> int:
    """The CRC the request carried: a decoded frame passed its CRC check, so re-packing its header
    and payload gives back exactly the checked bytes (cheaper than un-stuffing the block again)."""
    header = HEADER.pack(frame.version, frame.dst, frame.src, frame.seq, frame.type, frame.flags, len(frame.payload))
    return crc16_ccitt_false(header + frame.payload)


def _length(payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise Refusal(NackCode.BAD_LENGTH)


def _not_busy(busy: bool) -> None:
    if busy:
        raise Refusal(NackCode.BUSY)

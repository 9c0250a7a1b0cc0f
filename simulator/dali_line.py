"""A simulated DALI line: control gear that answer like IEC 62386-101/102 part, behind python-dali's driver API.

The gateway talks to a DALI master through a python-dali driver (``send(command_or_sequence)``);
:class:`SimDaliDriver` is one of those drivers (a :class:`dali.driver.serial.DriverSerialBase`
implementing ``_send_frame``, as the Lunatone drivers do), so python-dali's own transaction
handling, send-twice configuration commands, device-type enabling and commissioning sequences run
unchanged against the simulated line. The gear decode the raw 16-bit forward frames themselves,
from the standard's tables, not from python-dali's command classes.

What the gear do, after IEC 62386-102:

- **addressing**: short address (0-63, or none: factory new), 16 groups, broadcast and broadcast
  unaddressed; a gear without a short address does not answer queries sent to a short address;
- **backward frames**: 8-bit answers, YES = 0xFF, NO = no answer; when two or more gear answer at
  once the master sees a framing error (:data:`COLLISION`), the worst case the standard allows;
  gear sharing a short address therefore collide on every query;
- **arc power**: DAPC and the level commands, clamped to MIN/MAX LEVEL, fading over the fade time
  (code 0-15: 0.5 * sqrt(2^X) s) on the logarithmic curve's arc levels;
- **configuration commands** (reset, set levels, fade time, groups, short address) take effect only
  when the same frame arrives twice within 100 ms with nothing in between;
- **commissioning**: INITIALISE (15-minute window), RANDOMISE, SEARCHADDR H/M/L, COMPARE,
  WITHDRAW, PROGRAM/VERIFY SHORT ADDRESS, TERMINATE; random addresses come from a seeded RNG;
- **mains**: :meth:`SimControlGear.power_cut` silences a gear; :meth:`~SimControlGear.power_restored`
  brings it back at its POWER ON LEVEL with the power-failure status bit set until an arc power
  command or RESET arrives; short address, groups, levels and fade time survive (non-volatile);
- **faults** (test controls): :meth:`~SimControlGear.fail_lamp` sets the lamp-failure bit and the
  lamp goes dark.

Every forward frame takes bus time (about 24 ms, 46 ms with an answer window) on the loop's clock.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dali import frame as dali_frame
from dali.driver.serial import DistributorQueue, DriverSerialBase
from dali.exceptions import UnsupportedFrameTypeError

YES = 0xFF
COLLISION = -1  # two or more backward frames at once: a framing error at the master
MASK = 0xFF
#: Bus time of a forward frame and the settling time after it; the answer window of a query.
FORWARD_S = 0.024
ANSWER_S = 0.022
INITIALISE_S = 15 * 60.0
SEND_TWICE_S = 0.1
DEVICE_TYPE_LED = 6  # IEC 62386-207


def fade_seconds(code: int) -> float:
    """Fade time of code X (IEC 62386-102): 0 for X = 0, else 0.5 * sqrt(2^X) seconds."""
    return 0.0 if code == 0 else 0.5 * math.sqrt(2.0**code)


@dataclass
class SimControlGear:
    """One LED driver on the line (device type 6); its persistent memory survives a mains cut."""

    random_address: int
    short_address: int | None = None
    groups: int = 0  # bit g set: member of group g
    min_level: int = 1
    max_level: int = 254
    physical_min: int = 1
    power_on_level: int = 254
    system_failure_level: int = 254
    fade_code: int = 0
    device_type: int = DEVICE_TYPE_LED
    # volatile state
    level: int = 0
    fade_from: int = 0
    fade_to: int = 0
    fade_start: float = 0.0
    fade_s: float = 0.0
    dtr: list[int] = field(default_factory=lambda: [0, 0, 0])
    powered: bool = True
    power_failure: bool = True
    reset_state: bool = True
    lamp_failed: bool = False
    limit_error: bool = False
    initialise_until: float = -math.inf
    withdrawn: bool = False
    search: int = 0xFFFFFF
    log: list[tuple[float, str]] = field(default_factory=list)  # (t, what) for tests

    # -- test controls -------------------------------------------------------------------
    def power_cut(self, t: float) -> None:
        self.level = self.actual(t)
        self.powered = False
        self.log.append((t, "power cut"))

    def power_restored(self, t: float) -> None:
        self.powered, self.power_failure = True, True
        self.dtr = [0, 0, 0]
        self.initialise_until, self.withdrawn = -math.inf, False
        level = self.level if self.power_on_level == MASK else self.power_on_level
        self._jump(self._clamp(level), t)
        self.log.append((t, f"power restored at level {self.level}"))

    def fail_lamp(self, failed: bool = True) -> None:
        self.lamp_failed = failed

    # -- the light ----------------------------------------------------------------------
    def actual(self, t: float) -> int:
        """ACTUAL LEVEL now, part-way through a fade."""
        if self.lamp_failed or not self.powered:
            return 0 if self.lamp_failed else self.level
        if self.fade_s <= 0 or t >= self.fade_start + self.fade_s:
            return self.fade_to
        done = (t - self.fade_start) / self.fade_s
        start, end = self.fade_from, self.fade_to if self.fade_to else self.min_level
        return max(1, round(start + (end - start) * done)) if (start or end) else 0

    def fading(self, t: float) -> bool:
        return self.fade_s > 0 and t < self.fade_start + self.fade_s

    def _clamp(self, level: int) -> int:
        self.limit_error = False
        if level == 0:
            return 0
        if level < self.min_level or level > self.max_level:
            self.limit_error = True
        return min(self.max_level, max(self.min_level, level))

    def _jump(self, level: int, t: float) -> None:
        self.level = self.fade_from = self.fade_to = level
        self.fade_s, self.fade_start = 0.0, t

    def _fade(self, level: int, t: float) -> None:
        if level == MASK:  # stop fading where it is
            self._jump(self.actual(t), t)
            return
        target = self._clamp(level)
        self.power_failure = False
        self.reset_state = False
        now = self.actual(t)
        self.fade_from, self.fade_to, self.fade_start = now, target, t
        self.fade_s = fade_seconds(self.fade_code) if now != target else 0.0
        self.level = target

    # -- frames -------------------------------------------------------------------------
    def addressed(self, addr_byte: int) -> bool:
        """Does the address byte (Y AAAAAA S, S stripped) select this gear?"""
        a = addr_byte >> 1
        if a == 0x7F:
            return True  # broadcast
        if a == 0x7E:
            return self.short_address is None  # broadcast unaddressed
        if a & 0x40 == 0:
            return self.short_address == a
        if a & 0x70 == 0x40:
            return bool(self.groups >> (a & 0x0F) & 1)
        return False

    def command(self, addr_byte: int, opcode: int, t: float, twice: bool) -> int | None:
        """A standard (S=1) or direct arc power (S=0) command addressed to this gear; its answer."""
        if not addr_byte & 1:
            self._fade(opcode, t)
            return None
        if opcode == 0x00:  # OFF
            self._jump(0, t)
            self.power_failure = False
        elif opcode in (0x05, 0x06):  # RECALL MAX / MIN LEVEL
            self._jump(self.max_level if opcode == 0x05 else self.min_level, t)
            self.power_failure = False
        elif 0x20 <= opcode <= 0x80:
            if twice:
                self._configure(opcode, t)
        elif 0x90 <= opcode <= 0xC4:
            return self._query(opcode, t)
        return None

    def _configure(self, opcode: int, t: float) -> None:
        dtr0 = self.dtr[0]
        if opcode == 0x20:  # RESET
            self.groups, self.min_level, self.max_level, self.fade_code = 0, self.physical_min, 254, 0
            self.power_on_level = self.system_failure_level = 254
            self._jump(254, t)
            self.power_failure, self.reset_state = False, True
        elif opcode == 0x21:  # STORE ACTUAL LEVEL IN DTR0
            self.dtr[0] = self.actual(t)
        elif opcode == 0x2A:
            self.max_level = min(254, max(dtr0, self.min_level))
        elif opcode == 0x2B:
            self.min_level = max(self.physical_min, min(dtr0, self.max_level))
        elif opcode == 0x2C:
            self.system_failure_level = dtr0
        elif opcode == 0x2D:
            self.power_on_level = dtr0
        elif opcode == 0x2E:
            self.fade_code = min(15, dtr0)
        elif 0x60 <= opcode <= 0x6F:
            self.groups |= 1 << (opcode & 0x0F)
        elif 0x70 <= opcode <= 0x7F:
            self.groups &= ~(1 << (opcode & 0x0F))
        elif opcode == 0x80:  # SET SHORT ADDRESS (from DTR0: 0AAAAAA1, or 0xFF to delete)
            self.short_address = None if dtr0 == 0xFF else (dtr0 >> 1) & 0x3F if dtr0 & 1 else self.short_address
        self.log.append((t, f"config 0x{opcode:02x}"))

    def _query(self, opcode: int, t: float) -> int | None:
        status = (
            (1 if self.lamp_failed else 0) << 1 | (1 if self.actual(t) > 0 else 0) << 2
            | (1 if self.limit_error else 0) << 3 | (1 if self.fading(t) else 0) << 4
            | (1 if self.reset_state else 0) << 5 | (1 if self.short_address is None else 0) << 6
            | (1 if self.power_failure else 0) << 7
        )
        yes_no = {0x91: True, 0x92: self.lamp_failed, 0x93: self.actual(t) > 0, 0x94: self.limit_error,
                  0x95: self.reset_state, 0x96: self.short_address is None, 0x9B: self.power_failure}
        if opcode in yes_no:
            return YES if yes_no[opcode] else None
        values = {
            0x90: status, 0x97: 1, 0x98: self.dtr[0], 0x99: self.device_type, 0x9A: self.physical_min,
            0x9C: self.dtr[1], 0x9D: self.dtr[2], 0xA0: self.actual(t), 0xA1: self.max_level,
            0xA2: self.min_level, 0xA3: self.power_on_level, 0xA4: self.system_failure_level,
            0xA5: self.fade_code << 4 | 7, 0xC0: self.groups & 0xFF, 0xC1: self.groups >> 8,
            0xC2: self.random_address >> 16, 0xC3: self.random_address >> 8 & 0xFF, 0xC4: self.random_address & 0xFF,
        }
        return values.get(opcode)

    def special(self, code: int, data: int, t: float, twice: bool, rng: random.Random) -> int | None:
        """A special command (address byte 101xxxx1 / 110xxxx1)."""
        initialising = t < self.initialise_until
        if code == 0xA1:  # TERMINATE
            self.initialise_until = -math.inf
        elif code == 0xA3:
            self.dtr[0] = data
        elif code == 0xC3:
            self.dtr[1] = data
        elif code == 0xC5:
            self.dtr[2] = data
        elif code == 0xA5 and twice:  # INITIALISE
            chosen = (data == 0x00 or (data == 0xFF and self.short_address is None)
                      or (data & 0x81 == 0x01 and self.short_address == (data >> 1) & 0x3F))
            if chosen:
                self.initialise_until, self.withdrawn = t + INITIALISE_S, False
        elif not initialising:
            return None
        elif code == 0xA7 and twice:  # RANDOMISE
            self.random_address = rng.randrange(0, 0x1000000)
        elif code == 0xA9:  # COMPARE
            return YES if not self.withdrawn and self.random_address <= self.search else None
        elif code == 0xAB:  # WITHDRAW
            if self.random_address == self.search:
                self.withdrawn = True
        elif code in (0xB1, 0xB3, 0xB5):
            shift = {0xB1: 16, 0xB3: 8, 0xB5: 0}[code]
            self.search = self.search & ~(0xFF << shift) | data << shift
        elif code == 0xB7 and self.random_address == self.search:  # PROGRAM SHORT ADDRESS
            self.short_address = None if data == 0xFF else (data >> 1) & 0x3F
        elif code == 0xB9:  # VERIFY SHORT ADDRESS
            return YES if self.short_address is not None and data == (self.short_address << 1 | 1) else None
        elif code == 0xBB and self.random_address == self.search and not self.withdrawn:  # QUERY SHORT ADDRESS
            return MASK if self.short_address is None else self.short_address << 1 | 1
        return None


class SimDaliLine:
    """The wire: every forward frame reaches every powered gear; answers merge (see module docstring)."""

    def __init__(self, gear: Iterable[SimControlGear], clock: Callable[[], float], *, seed: int = 0) -> None:
        self.gear = list(gear)
        self.clock = clock
        self.rng = random.Random(seed)
        self.frames: list[tuple[float, int, int | None]] = []  # (t, forward frame, answer) for tests
        self._last: tuple[int, float] | None = None

    @classmethod
    def factory_new(cls, count: int, clock: Callable[[], float], *, seed: int = 0) -> SimDaliLine:
        """``count`` gear straight from the box: no short address, random addresses drawn from ``seed``."""
        rng = random.Random(seed)
        return cls([SimControlGear(rng.randrange(0, 0x1000000)) for _ in range(count)], clock, seed=seed + 1)

    @classmethod
    def addressed(cls, addresses: Iterable[int], clock: Callable[[], float], *, seed: int = 0) -> SimDaliLine:
        """Commissioned gear at these short addresses (duplicates allowed: they collide)."""
        rng = random.Random(seed)
        gear = [SimControlGear(rng.randrange(0, 0x1000000), short_address=a, power_failure=False, reset_state=False)
                for a in addresses]
        return cls(gear, clock, seed=seed + 1)

    def factory_reset(self) -> None:
        """Test control: every gear forgets its short address and groups, as if just unboxed."""
        for g in self.gear:
            g.short_address, g.groups, g.random_address = None, 0, self.rng.randrange(0, 0x1000000)

    def at(self, short_address: int) -> list[SimControlGear]:
        return [g for g in self.gear if g.short_address == short_address]

    def transmit(self, forward: int) -> int | None:
        """Put one 16-bit forward frame on the line; the merged answer (None: no answer)."""
        t = self.clock()
        twice = self._last is not None and self._last[0] == forward and t - self._last[1] <= SEND_TWICE_S
        self._last = None if twice else (forward, t)  # a third copy starts a new pair
        addr, data = forward >> 8, forward & 0xFF
        answers: list[int] = []
        for g in self.gear:
            if not g.powered:
                continue
            if addr & 0xE1 in (0xA1, 0xC1) and addr != 0xFF:  # special commands: 101xxxx1, 110xxxx1
                answer = g.special(addr, data, t, twice, self.rng)
            elif g.addressed(addr):
                answer = g.command(addr, data, t, twice)
            else:
                answer = None
            if answer is not None:
                answers.append(answer)
        merged = None if not answers else answers[0] if len(answers) == 1 else COLLISION
        self.frames.append((t, forward, merged))
        return merged


class SimDaliDriver(DriverSerialBase):  # type: ignore[misc]
    """python-dali's driver contract on a :class:`SimDaliLine` (``uri`` like ``simdali:dali1``)."""

    uri_scheme = "simdali"

    def __init__(self, uri: str, line: SimDaliLine) -> None:
        super().__init__(uri)
        self.line = line
        self._rx = DistributorQueue()

    async def connect(self, *, scan_dev_inst: bool = False) -> None:
        self._connected.set()

    def new_dali_rx_queue(self) -> DistributorQueue:
        return DistributorQueue(self._rx)

    async def _send_frame(self, cmd: Any, *, priority: int = 1) -> Any:
        if len(cmd.frame) != 16:
            raise UnsupportedFrameTypeError  # control devices (24-bit frames) are not simulated
        forward = cmd.frame.as_integer
        answer = None
        for _ in range(2 if cmd.sendtwice else 1):
            await asyncio.sleep(FORWARD_S)
            answer = self.line.transmit(forward)
        if not cmd.response:
            return None
        await asyncio.sleep(ANSWER_S)
        if answer is None:
            return cmd.response(None)
        if answer == COLLISION:
            return cmd.response(dali_frame.BackwardFrameError(0xFF))
        return cmd.response(dali_frame.BackwardFrame(answer))

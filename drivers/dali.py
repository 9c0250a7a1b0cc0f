"""DALI control gear (IEC 62386-101/102/207) through a python-dali driver: luminaire outputs and commissioning.

The bus port here is a python-dali async driver: any object with ``async send(command_or_sequence)``
that runs a command or a command sequence as one transaction and returns the response. python-dali's
``dali.driver.hid.hasseb`` / ``tridonic`` (USB HID masters) and ``dali.driver.serial.DriverLubaRs232``
/ ``DriverSCIRS232`` (RS-232 masters) are such drivers, and so is the simulator's line
(``simulator.dali_line.SimDaliDriver``). This module never opens a device itself.

- :class:`DaliBus`: one master and its line; errors translated (CommunicationError -> BusError,
  no answer in time -> BusTimeoutError); ``scan`` (gear on the line, their types, groups, status,
  and short addresses held by two gear at once), ``commission`` (python-dali's random-address
  search), ``set_group``, ``status``.
- :class:`DaliLight`: an :class:`drivers.ports.Output` for one short address or one group. The
  0..1 level is light output; it goes out as DAPC on the logarithmic dimming curve of
  IEC 62386-102 (arc level n = 1..254 gives 10^((n-1)*3/253 - 1) % of full light output), the
  gear fade over a fade time set once (``set_fade``), and ``read_back`` asks QUERY ACTUAL LEVEL and
  QUERY STATUS of each gear: no answer raises :class:`DeviceAbsentError`, a lamp failure raises
  :class:`LampFailure`, so the arbiter's confirmation reports both as output failures.
- :meth:`DaliLight.watch`: the periodic status poll. A gear that reports the power-failure bit
  has been through a mains cut and sits at its POWER ON LEVEL: the last commanded level is sent
  again. The result is kept in ``health``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import BusError, BusTimeoutError, DeviceAbsentError, DriverError
from drivers.health import DeviceHealth
from drivers.ports import Clock

#: Arc levels: 0 is off, 1..254 the curve, 255 MASK (no change).
MAX_ARC = 254
STEPS_PER_DECADE = 253 / 3


class LampFailure(DriverError):
    """The gear answers but reports its lamp failed (QUERY STATUS bit 1)."""


class AddressCollision(DriverError):
    """Two or more gear answered at once on a short address: they share it."""


def arc_level(fraction: float) -> int:
    """Light output 0..1 -> the arc power level of IEC 62386-102's logarithmic curve (0 = off)."""
    if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
        raise ValueError(f"light level {fraction} outside 0..1")
    if fraction <= 0.0:
        return 0
    n = 1 + STEPS_PER_DECADE * (math.log10(fraction * 100.0) + 1.0)
    return max(1, min(MAX_ARC, round(n)))


def light_fraction(arc: int) -> float:
    """Arc power level -> light output 0..1 (0 and 255 MASK give 0)."""
    if arc <= 0 or arc > MAX_ARC:
        return 0.0
    return float(10.0 ** ((arc - 1) / STEPS_PER_DECADE - 1.0) / 100.0)


def fade_code(ramp_s: float) -> int:
    """The longest fade time code X (0.5 * sqrt(2^X) s) that is done within ``ramp_s``; 0 = no fade."""
    best = 0
    for x in range(1, 16):
        if 0.5 * math.sqrt(2.0**x) <= ramp_s + 1e-9:
            best = x
    return best


@dataclass(frozen=True)
class GearInfo:
    """One short address as ``scan`` found it."""

    short_address: int
    device_types: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    actual_level: int | None = None
    status: tuple[str, ...] = ()
    collision: bool = False  # two or more gear answer on this address


@dataclass
class LineScan:
    """What answers on a line: addressed gear, and whether unaddressed gear are there too."""

    gear: list[GearInfo] = field(default_factory=list)
    unaddressed: bool = False  # some gear has no short address (QUERY MISSING SHORT ADDRESS, broadcast)

    @property
    def collisions(self) -> list[int]:
        return [g.short_address for g in self.gear if g.collision]


class DaliBus:
    """One DALI master and its line (see module docstring)."""

    def __init__(self, driver: Any, *, name: str, timeout_s: float = 2.0) -> None:
        self.driver = driver
        self.name = name
        self.timeout_s = timeout_s
        self.health = DeviceHealth(name)

    async def open(self) -> None:
        """Connect the master; BusError when it is not there (the driver keeps trying by itself)."""
        connect = self.driver.connect()
        try:
            if inspect.isawaitable(connect):
                await asyncio.wait_for(connect, self.timeout_s)
            elif connect is False:
                raise BusError(f"{self.name}: cannot open the DALI master; check the cable and the device path",
                               bus=self.name)
            waiter = getattr(self.driver, "wait_connected", None)
            event = getattr(self.driver, "connected", None)
            if callable(waiter):
                await asyncio.wait_for(waiter(), self.timeout_s)
            elif isinstance(event, asyncio.Event):
                await asyncio.wait_for(event.wait(), self.timeout_s)
        except TimeoutError:
            raise BusTimeoutError(f"{self.name}: the DALI master did not get ready in {self.timeout_s:g} s",
                                  bus=self.name) from None

    async def send(self, message: Any, *, timeout_s: float | None = None) -> Any:
        """One command or sequence as a transaction; library errors become BusError."""
        from dali.exceptions import CommunicationError, DALISequenceError

        try:
            async with asyncio.timeout(timeout_s or self.timeout_s):  # no task per command, unlike wait_for
                return await self.driver.send(message)
        except TimeoutError:
            raise BusTimeoutError(f"{self.name}: no answer from the DALI master", bus=self.name) from None
        except CommunicationError as exc:
            raise BusError(f"{self.name}: DALI master lost ({exc or type(exc).__name__})", bus=self.name) from exc
        except DALISequenceError as exc:
            raise DriverError(f"{self.name}: {exc}", device=self.name) from exc

    async def answer(self, command: Any) -> int | None:
        """A query's backward frame as a number; None for no answer; AddressCollision on a framing error."""
        response = await self.send(command)
        raw = response.raw_value
        if raw is None:
            return None
        if raw.error:
            raise AddressCollision(f"{self.name}: two or more gear answered {command}", device=self.name)
        return int(raw.as_integer)

    async def status(self, short_address: int) -> tuple[str, ...]:
        """QUERY STATUS of one gear as python-dali's bit names; DeviceAbsentError when nothing answers."""
        from dali.address import GearShort
        from dali.gear.general import QueryStatus

        response = await self.send(QueryStatus(GearShort(short_address)))
        if response.raw_value is None:
            raise DeviceAbsentError(f"{self.name}: no answer from short address {short_address}", device=self.name)
        if response.raw_value.error:
            raise AddressCollision(f"{self.name}: short address {short_address} is held by two or more gear",
                                   device=self.name)
        return tuple(response.status)

    async def scan(self, addresses: range = range(64)) -> LineScan:
        """Every short address that answers, with device types, groups, level and status."""
        from dali.address import GearBroadcast, GearShort
        from dali.gear.general import QueryActualLevel, QueryControlGearPresent, QueryMissingShortAddress
        from dali.sequences import QueryDeviceTypes, QueryGroups

        found = LineScan()
        missing = await self.send(QueryMissingShortAddress(GearBroadcast()))
        found.unaddressed = missing.raw_value is not None
        for a in addresses:
            present = await self.send(QueryControlGearPresent(GearShort(a)))
            if present.raw_value is None:
                continue
            if present.raw_value.error:
                found.gear.append(GearInfo(a, collision=True))
                continue
            types = await self.send(QueryDeviceTypes(GearShort(a)))
            groups = await self.send(QueryGroups(GearShort(a)))
            level = await self.answer(QueryActualLevel(GearShort(a)))
            found.gear.append(GearInfo(a, tuple(types), tuple(sorted(groups)), level, await self.status(a)))
        return found

    async def commission(self, *, readdress: bool = False, progress: Callable[[str], None] | None = None) -> list[int]:
        """Give every unaddressed gear (every gear with ``readdress``) a free short address; the new ones."""
        from dali.sequences import Commissioning

        before = {g.short_address for g in (await self.scan()).gear}

        def report(item: Any) -> None:
            if progress is not None and getattr(item, "message", None):
                progress(str(item.message))

        try:
            await asyncio.wait_for(self.driver.send(Commissioning(readdress=readdress), progress=report), 600.0)
        except TimeoutError:
            raise BusTimeoutError(f"{self.name}: commissioning did not finish in 10 minutes", bus=self.name) from None
        after = {g.short_address for g in (await self.scan()).gear}
        return sorted(after if readdress else after - before)

    async def set_group(self, short_address: int, group: int, member: bool = True) -> tuple[int, ...]:
        """Add a gear to (or remove it from) a group; the gear's groups afterwards, read back."""
        from dali.address import GearShort
        from dali.gear.general import AddToGroup, RemoveFromGroup
        from dali.sequences import QueryGroups

        await self.status(short_address)  # DeviceAbsentError before anything is written
        command = AddToGroup if member else RemoveFromGroup
        await self.send(command(GearShort(short_address), group))
        return tuple(sorted(await self.send(QueryGroups(GearShort(short_address)))))

    async def members(self, group: int, addresses: range = range(64)) -> list[int]:
        """Short addresses of the gear in ``group`` (presence and groups of every short address)."""
        from dali.address import GearShort
        from dali.gear.general import QueryControlGearPresent
        from dali.sequences import QueryGroups

        found: list[int] = []
        for a in addresses:
            present = await self.send(QueryControlGearPresent(GearShort(a)))
            if present.raw_value is None or present.raw_value.error:
                continue
            if group in await self.send(QueryGroups(GearShort(a))):
                found.append(a)
        return found


class DaliLight:
    """A luminaire (one gear) or a group of them as an :class:`drivers.ports.Output` (see module docstring)."""

    def __init__(self, bus: DaliBus, clock: Clock, *, short_address: int | None = None, group: int | None = None,
                 fade: int = 0, name: str = "") -> None:
        if (short_address is None) == (group is None):
            raise ValueError("a DALI light is one short address or one group")
        self.bus = bus
        self.clock = clock
        self.short_address = short_address
        self.group = group
        self.fade = fade
        self.name = name or (f"dali:{short_address}" if group is None else f"dali:group{group}")
        self.health = DeviceHealth(self.name, unhealthy_after=1)
        self.members: list[int] = [] if short_address is None else [short_address]
        self.sent_arc: int | None = None
        self.sent_value: float | None = None
        self.fade_set = False

    def _address(self) -> Any:
        from dali.address import GearGroup, GearShort

        return GearShort(self.short_address) if self.group is None else GearGroup(self.group)

    async def set_fade(self) -> None:
        """Store the fade time in the gear (DTR0, then SET FADE TIME sent twice)."""
        from dali.gear.general import DTR0, SetFadeTime

        def fade_sequence() -> Any:
            yield DTR0(self.fade)
            yield SetFadeTime(self._address())

        await self.bus.send(fade_sequence())
        self.fade_set = True

    async def setup(self) -> None:
        """Set the fade time, and learn a group's members (for read-back)."""
        await self.set_fade()
        if self.group is not None:
            self.members = await self.bus.members(self.group)

    async def set(self, value: float, ramp_s: float = 0.0) -> None:
        """DAPC at the level's arc power; the gear fade over their own fade time."""
        from dali.gear.general import DAPC

        arc = arc_level(value)
        if not self.fade_set:
            await self.set_fade()
        await self.bus.send(DAPC(self._address(), arc))
        self.sent_arc, self.sent_value = arc, value

    async def read_back(self) -> float | None:
        """The level the gear hold (the commanded value when they hold the commanded arc level)."""
        from dali.address import GearShort
        from dali.gear.general import QueryActualLevel

        if not self.members:
            return None  # an empty or unknown group cannot report: the arbiter trusts the command
        levels: list[int] = []
        for a in self.members:
            status = await self.bus.status(a)
            if "lamp failure" in status:
                self.health.record_failure(LampFailure(f"{self.name}: lamp failure at short address {a}"))
                raise LampFailure(f"lamp failure at short address {a}", device=self.name)
            level = await self.bus.answer(QueryActualLevel(GearShort(a)))
            if level is None:
                raise DeviceAbsentError(f"no answer from short address {a}", device=self.name)
            levels.append(level)
        self.health.record_good(self.clock.monotonic())
        if self.sent_arc is not None and all(level == self.sent_arc for level in levels):
            return self.sent_value
        return min(light_fraction(level) for level in levels)

    async def watch(self) -> str:
        """One status poll of every gear; restores the commanded level after a mains cut; what it saw."""
        from dali.gear.general import DAPC

        seen: list[str] = []
        restore = False
        for a in self.members:
            try:
                status = await self.bus.status(a)
            except (DriverError, BusError) as exc:
                self.health.record_failure(exc)
                return f"short address {a}: {exc}"
            if "lamp failure" in status:
                self.health.record_failure(LampFailure(f"lamp failure at short address {a}"))
                return f"short address {a}: lamp failure"
            if "power failure" in status:
                seen.append(f"short address {a} came back from a mains cut")
                restore = True
        if restore and self.sent_arc is not None:
            await self.bus.send(DAPC(self._address(), self.sent_arc))
            seen.append(f"level {self.sent_arc} restored")
        self.health.record_good(self.clock.monotonic())
        return "; ".join(seen)

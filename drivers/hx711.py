"""Avia Semiconductor HX711 24-bit ADC for load cells, read by bit-banging two GPIO lines.

Datasheet facts (Avia Semiconductor HX711 data sheet, English edition, as hosted by SparkFun:
"Output Data Rate and Format", "Serial Interface", Fig. 2 and "Reset and Power-Down", pages 4-5;
HARDWARE.md section 10):

- the output is 24-bit two's complement, MSB first: 0x800000 (minimum) .. 0x7FFFFF (maximum); an
  input beyond full scale reads one of these two limits;
- DOUT high: no conversion ready; DOUT low: ready. Each PD_SCK pulse shifts one bit out on DOUT
  (valid 0.1 us after the rising edge, T2), MSB first, 24 in all; 1 to 3 more pulses choose the
  next conversion: 25 in all = channel A gain 128, 26 = channel B gain 32, 27 = channel A gain 64.
  Fewer than 25 or more than 27 is a communication error the part needs a reset to leave;
- PD_SCK high time 0.2 .. 50 us while reading (T3), low time at least 0.2 us (T4); held high for
  more than 60 us the part powers down, and taking PD_SCK low again resets it: channel A, gain 128;
- 10 samples/s with RATE low, 80 with RATE high (a board's jumper); after a reset or a change of
  channel or gain the output settles in 4 conversions (400 ms at 10 SPS, 50 ms at 80 SPS);
- full scale at AVDD 5 V: channel A +-20 mV at gain 128, +-40 mV at 64; channel B +-80 mV at 32.

The lines are gpiozero devices on the pin factory the driver is handed (a Pi's GPIO, or the
simulator's), so the same code runs on a gateway and on virtual time. The 25..27 pulses are
sent in one go without yielding to the event loop (a read takes well under a millisecond on a
Pi); a high phase that still took longer than 50 us on the injected clock (the process was
preempted, and the part may have powered down in it) voids the read: the part is reset and read
again, up to ``READ_ATTEMPTS`` times in all (a busy gateway can preempt several reads in a row).

A load cell drifts and each desk's platform differs: the driver reports grams with a nominal
``counts_per_gram``; the daemon's calibration store holds each desk's tare (the zero, a reference
of 0 g on the empty platform) and scale (from a known mass), the kind's ``tare-scale``
calibration of ``mass``.

On a desk node (``node`` and ``channel`` instead of ``pin`` and ``clock_pin``) the node's MCU
clocks the part and reports grams at its board's nominal scale in sensor block 1
(firmware_bridge/PROTOCOL.md, 5.3): :class:`NodeHx711` reads that block through the daemon's
:class:`drivers.ports.SensorBlockPort` and turns the channel's state into the same errors the
GPIO driver raises. Tare and scale are the gateway's, as on GPIO.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable
from typing import Any

from drivers.errors import DataNotReadyError, SensorImplausibleError
from drivers.health import DeviceHealth, guarded
from drivers.kinds import Calibration, PartKind, PartPorts, PartSpec, Quantity, Setting
from drivers.ports import Clock, Reading, SensorBlockPort

#: Total PD_SCK pulses per read for each gain: 128 and 64 are channel A, 32 is channel B.
PULSES = {128: 25, 32: 26, 64: 27}
MIN_CODE, MAX_CODE = -0x800000, 0x7FFFFF
HIGH_TIME_MAX_S = 50e-6  # T3 max while reading
POWER_DOWN_HOLD_S = 100e-6  # more than the 60 us that powers the part down
SETTLING_CONVERSIONS = 4


def decode(word: int) -> int:
    """24 bits of two's complement -> a signed count."""
    word &= 0xFFFFFF
    return word - 0x1000000 if word & 0x800000 else word


READ_ATTEMPTS = 5  # reads voided by a long high phase before the read fails


class ClockHeldTooLong(DataNotReadyError):
    """PD_SCK stayed high longer than the part allows while reading: the bits cannot be trusted."""


class Hx711:
    """One HX711: DOUT on ``data_pin``, PD_SCK on ``clock_pin`` (BCM numbers)."""

    def __init__(self, data_pin: int, clock_pin: int, pin_factory: Any, clock: Clock, *, name: str = "",
                 gain: int = 128, rate: int = 10, counts_per_gram: float = 420.0) -> None:
        from gpiozero import DigitalInputDevice, DigitalOutputDevice

        if gain not in PULSES:
            raise ValueError(f"HX711 gain must be 128 or 64 (channel A) or 32 (channel B), not {gain}")
        if rate not in (10, 80):
            raise ValueError(f"HX711 rate is 10 or 80 samples per second (the RATE pin), not {rate}")
        self.name = name or f"hx711@gpio{data_pin}"
        self.clock = clock
        self.gain = gain
        self.rate = rate
        self.counts_per_gram = counts_per_gram
        self.health = DeviceHealth(self.name)
        self._sck: Any = DigitalOutputDevice(clock_pin, initial_value=False, pin_factory=pin_factory)
        self._dout: Any = DigitalInputDevice(data_pin, pull_up=False, pin_factory=pin_factory)
        self._next_gain = 128  # what the part converts next (after a reset: channel A, 128)
        self._settled_at = 0.0  # readings that became ready before this are not yet settled

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate

    @property
    def ready(self) -> bool:
        """DOUT low: a conversion waits to be shifted out."""
        return not self._dout.value

    async def power_down(self) -> None:
        """PD_SCK high for longer than 60 us."""
        self._sck.on()
        await self.clock.sleep(POWER_DOWN_HOLD_S)

    async def power_up(self) -> None:
        """PD_SCK low: the part resets to channel A, gain 128, and settles."""
        self._sck.off()
        self._next_gain = 128
        self._settled_at = self.clock.monotonic() + SETTLING_CONVERSIONS * self.period_s

    async def start(self) -> None:
        """Reset the part (power down and up), then select the configured gain."""
        await self.power_down()
        await self.power_up()
        if self.gain != self._next_gain:
            await self._wait_ready()
            self._shift(PULSES[self.gain])  # this conversion is at the old gain: discarded
            self._next_gain = self.gain
            self._settled_at = self.clock.monotonic() + SETTLING_CONVERSIONS * self.period_s

    async def _wait_ready(self) -> None:
        limit = (SETTLING_CONVERSIONS + 2) * self.period_s
        waited = 0.0
        while not self.ready:
            if waited >= limit:
                raise DataNotReadyError(f"{self.name}: DOUT still high after {limit:g} s; is the part powered and "
                                        "its DOUT line wired?", device=self.name)  # fmt: skip
            step = self.period_s / 8
            await self.clock.sleep(step)
            waited += step

    def _shift(self, pulses: int) -> int:
        """Clock out 24 bits and ``pulses - 24`` gain pulses, never yielding to the loop."""
        word = 0
        longest = 0.0
        for i in range(pulses):
            # DOUT is valid 0.1 us after the rising edge and holds until the next one (T2), so it is
            # read after the falling edge: the high phase is two pin writes, well under T3's 50 us
            # even on a slow or busy machine.
            rose = self.clock.monotonic()
            self._sck.on()
            self._sck.off()
            longest = max(longest, self.clock.monotonic() - rose)
            if i < 24:
                word = (word << 1) | int(bool(self._dout.value))
        if longest > HIGH_TIME_MAX_S:
            raise ClockHeldTooLong(f"{self.name}: PD_SCK was high {longest * 1e6:.0f} us (at most 50 us while "
                                   "reading); read again", device=self.name)  # fmt: skip
        return decode(word)

    async def read_counts(self) -> int:
        """The next settled conversion at the configured gain, as a signed count."""
        if self._next_gain != self.gain:
            await self.start()
        while True:
            await self._wait_ready()
            settled = self.clock.monotonic() >= self._settled_at
            count = self._shift(PULSES[self.gain])
            if settled:
                break
        if count in (MIN_CODE, MAX_CODE):
            raise SensorImplausibleError(f"{self.name}: input at full scale ({count}); the load cell is "
                                         "overloaded or a wire is loose", device=self.name)  # fmt: skip
        return count

    async def read_grams(self) -> float:
        """Mass on the platform in grams at the nominal scale (calibration makes it exact)."""

        async def attempt() -> float:
            try:
                return await self.read_counts() / self.counts_per_gram
            except ClockHeldTooLong:
                await self.start()  # the part may have powered down in the long high phase
                raise

        async def until_unbroken() -> float:
            for _ in range(READ_ATTEMPTS - 1):
                try:
                    return await attempt()
                except ClockHeldTooLong:
                    continue
            return await attempt()

        return await guarded(self.health, until_unbroken, self.clock)

    async def readings(self) -> list[Reading]:
        grams = await self.read_grams()
        return [Reading(self.name, "mass", grams, "g", self.clock.monotonic())]

    def close(self) -> None:
        self._sck.close()
        self._dout.close()


LOAD_CELL_BLOCK = 1  # PROTOCOL.md 5.3: the desks' load cells of a desk node
#: PROTOCOL.md 5.7: a desk node raises LOAD_STEP once the channel's reported mass has stayed within
#: 20 g for this long. The four desks of a node share one read of block 1 for at most this long, so
#: the read a step prompts is never answered by a block from before the new load had settled.
LOAD_STEP_SETTLED_S = 1.0
_CELL = struct.Struct("<iB")
#: Block 1's per-channel states, and what each means here.
CELL_OK, CELL_SETTLING, CELL_OVERLOAD, CELL_NO_DATA, CELL_NOT_FITTED = range(5)


def parse_load_cells(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Block 1's data (after the block byte): ``(rate_sps, [(grams, state) per channel])``.

    Bytes past the channels are ignored (a later revision may add to the block's end).
    """
    if len(data) < 2:
        raise ValueError(f"load-cell block: {len(data)} bytes, expected at least 2")
    rate, count = data[0], data[1]
    if len(data) < 2 + count * _CELL.size:
        raise ValueError(f"load-cell block: {len(data)} bytes for {count} channel(s)")
    return rate, [_CELL.unpack_from(data, 2 + i * _CELL.size) for i in range(count)]


class NodeHx711:
    """An HX711 under a desk, read by the desk node's MCU: one channel of the node's block 1.

    The node reports each desk's mass in grams at its board's nominal scale, so this driver's
    grams are raw in the same sense as the GPIO driver's (tare and scale come from calibration).
    """

    def __init__(self, blocks: SensorBlockPort, channel: int, clock: Clock, *, name: str = "",
                 max_age_s: float = 0.5) -> None:
        self.blocks = blocks
        self.channel = channel
        self.clock = clock
        self.name = name or f"hx711@channel{channel}"
        self.max_age_s = max_age_s  # the node's other desks read the same block within this
        self.health = DeviceHealth(self.name)
        self.rate: int | None = None

    async def read_grams(self) -> float:
        async def read() -> float:
            try:
                data = await self.blocks.read_block(LOAD_CELL_BLOCK, max_age_s=self.max_age_s)
                self.rate, cells = parse_load_cells(data)
            except ValueError as exc:
                raise SensorImplausibleError(f"{self.name}: {exc}", device=self.name) from exc
            if self.channel >= len(cells):
                raise SensorImplausibleError(f"{self.name}: the node reports {len(cells)} load cell(s), none on "
                                             f"channel {self.channel}; check channel in the config", device=self.name)
            grams, state = cells[self.channel]
            if state == CELL_OK:
                return float(grams)
            if state == CELL_SETTLING:
                raise DataNotReadyError(f"{self.name}: the HX711 is settling after a reset", device=self.name)
            if state == CELL_OVERLOAD:
                raise SensorImplausibleError(f"{self.name}: input at full scale; the platform is overloaded or a "
                                             "wire of its cells is loose", device=self.name)  # fmt: skip
            if state == CELL_NO_DATA:
                raise DataNotReadyError(f"{self.name}: the node gets no conversion from its HX711 (DOUT stays "
                                        "high); is it powered and its DOUT wired?", device=self.name)  # fmt: skip
            raise SensorImplausibleError(f"{self.name}: no load cell fitted on channel {self.channel} of the node "
                                         f"(state {state})", device=self.name)  # fmt: skip

        return await guarded(self.health, read, self.clock)

    async def readings(self) -> list[Reading]:
        grams = await self.read_grams()
        return [Reading(self.name, "mass", grams, "g", self.clock.monotonic())]


async def _start(driver: Hx711 | NodeHx711) -> None:
    if isinstance(driver, Hx711):
        await driver.start()


def _readings(driver: Hx711 | NodeHx711) -> Awaitable[list[Reading]]:
    """The driver's own ``readings()``, for the caller to await: no coroutine of its own around it
    (a desk's load cell is polled every second, a floor's hundred and twenty of them)."""
    return driver.readings()


def _build(ports: PartPorts, clock: Clock, spec: PartSpec) -> Hx711 | NodeHx711:
    if spec.node is not None:
        return NodeHx711(ports.sensor_blocks(), int(spec.settings["channel"]), clock, name=spec.name,
                         max_age_s=min(LOAD_STEP_SETTLED_S, spec.poll_interval_s / 2))
    if spec.pin is None:
        raise ValueError(f"{spec.name}: an hx711 needs pin (its DOUT line) or node")
    s = spec.settings
    return Hx711(spec.pin, int(s["clock_pin"]), ports.pin_factory(), clock, name=spec.name, gain=int(s["gain"]),
                 rate=int(s["rate"]), counts_per_gram=float(s["counts_per_gram"]))


PARTS = (
    PartKind(
        name="hx711", summary="Avia HX711 24-bit load-cell amplifier on two GPIO lines (DOUT: pin, PD_SCK: "
        "clock_pin), or under a desk on a desk node's channel (node, channel)",
        build=_build, start=_start, readings=_readings, quantities=(Quantity("mass", "g", rank=None),),
        wiring=(("pin",), ("node",)), poll_interval_s=1.0, example={"pin": 5, "clock_pin": 6},
        settings=(
            Setting("clock_pin", int, None, 0, 53, help="BCM number of the PD_SCK line", with_wiring="pin"),
            Setting("channel", int, None, 0, 15, help="the desk's channel on its node", with_wiring="node"),
            Setting("gain", int, 128, choices=(128, 64, 32), help="128 or 64 read channel A, 32 channel B"),
            Setting("rate", int, 10, choices=(10, 80), help="samples per second, as the board's RATE pin is wired"),
            Setting("counts_per_gram", float, 420.0, 1e-3, 1e7, help="nominal scale until calibrated"),
        ),
        calibrations=(Calibration("mass", "tare-scale", "g", (0.0, 200_000.0)),),
        # A desk node of revision 4 reports a settled step of 100 g or more (LOAD_STEP, PROTOCOL.md
        # 5.7): block 1 is then read at once, and the periodic read is the fallback, once a minute.
        events_from_revision=4,
        event_fallback_s=60.0,
    ),
)

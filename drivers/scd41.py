"""Sensirion SCD41 photoacoustic CO2 sensor (with temperature and humidity).

SCD4x DS v1.3 (HARDWARE.md section 4) forces several things on a driver:

- every command has an execution time to wait *before* the read header (stop_periodic 500 ms,
  forced recalibration 400 ms); a read sent early is NACKed;
- in periodic mode most commands are refused, so configuration happens while idle;
- results come every 5 s; an empty buffer NACKs and a read empties it, so we ask
  get_data_ready (``word & 0x7FF == 0`` means not ready) before read_measurement;
- forced recalibration (FRC) needs periodic measurement to have run for >= 3 minutes before it
  is stopped, and answers 0xFFFF on failure, otherwise ``correction + 0x8000``. The driver
  tracks how long the last periodic run lasted and refuses FRC itself when it was too short,
  so the CLI can tell the technician how many seconds are still missing;
- the temperature offset (default 4 C) is written in ticks: ``offset_c * 65535 / 175``;
- single shot (idle only): 5 s for CO2, T and RH (0x219D), 50 ms for T and RH alone (0x2196,
  CO2 reads 0); the result is then read as in periodic mode;
- power_down (0x36E0) leaves the part deaf until wake_up (0x36F6), which the part does not
  acknowledge, then 20 ms before it listens.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import DataNotReadyError, DriverError, NackError, SensorImplausibleError
from drivers.health import DeviceHealth, StuckDetector, check_range, guarded
from drivers.i2c import I2CDevice
from drivers.kinds import Calibration, PartKind, PartPorts, PartSpec, Quantity
from drivers.ports import AsyncI2CBus, Clock, Reading
from drivers.sensirion import command, ticks_to_celsius, ticks_to_rh, unpack_words

START_PERIODIC, STOP_PERIODIC, READ_MEASUREMENT, DATA_READY = 0x21B1, 0x3F86, 0xEC05, 0xE4B8
FORCED_RECALIBRATION, SET_ASC, GET_ASC = 0x362F, 0x2416, 0x2313
SET_T_OFFSET, GET_T_OFFSET = 0x241D, 0x2318
SINGLE_SHOT, SINGLE_SHOT_RHT = 0x219D, 0x2196
POWER_DOWN, WAKE_UP = 0x36E0, 0x36F6
FRC_MIN_PERIODIC_S = 180.0
PERIODIC_S = 5.0  # one result every 5 s in periodic mode (datasheet 3.5.1)
READY_MARGIN_S = 0.5  # ask this much before the next result is due: the part's own clock drifts
CO2_RANGE_PPM = (0.0, 40000.0)


class CalibrationRefusedError(DriverError):
    """A calibration the part cannot do now; ``missing_s`` says how much longer to run first."""

    def __init__(self, message: str, *, device: str = "", missing_s: float = 0.0) -> None:
        super().__init__(message, device=device)
        self.missing_s = missing_s


@dataclass(frozen=True, slots=True)
class Co2Measurement:
    co2_ppm: float
    temperature_c: float
    humidity_pct: float
    t: float


def decode_measurement(raw: bytes, t: float = 0.0, *, device: str = "") -> Co2Measurement:
    """The 9-byte read_measurement answer -> ppm, C, %RH (CRC checked)."""
    co2, t_ticks, rh_ticks = unpack_words(raw, device=device)
    return Co2Measurement(float(co2), ticks_to_celsius(t_ticks), ticks_to_rh(rh_ticks), t)


def decode_frc(word: int, *, device: str = "") -> int:
    """FRC answer -> correction in ppm; 0xFFFF means the part refused."""
    if word == 0xFFFF:
        raise CalibrationRefusedError(f"{device}: forced recalibration failed (0xFFFF)", device=device)
    return word - 0x8000


class Scd41:
    """One SCD41 at 0x62."""

    def __init__(
        self, bus: AsyncI2CBus, clock: Clock, *, address: int = 0x62, name: str = "", stuck_after: int = 20
    ) -> None:
        self.device = I2CDevice(bus, address, name=name or f"scd41@0x{address:02x}")
        self.name = self.device.name
        self.clock = clock
        self.health = DeviceHealth(self.name)
        self._stuck = StuckDetector(stuck_after)
        self.periodic_since: float | None = None
        self.last_periodic_run_s = 0.0
        # When the next result can be ready, learnt from the last time a result was seen to
        # arrive: until then, asking (two I2C transactions behind a mux) can only say "not yet".
        self._ask_from: float | None = None

    # -- small command helpers ---------------------------------------------------------------
    async def _send(self, code: int, *args: int, wait_s: float = 0.001) -> None:
        await self.device.write(command(code, *args))
        await self.clock.sleep(wait_s)

    async def _query(self, code: int, words: int, wait_s: float = 0.001) -> list[int]:
        raw = await self.device.write_read(command(code), 3 * words, wait_s, self.clock)
        return unpack_words(raw, device=self.name)

    # -- periodic measurement ----------------------------------------------------------------
    def seconds_in_periodic(self) -> float | None:
        """How long periodic measurement has run, or None when idle."""
        return None if self.periodic_since is None else self.clock.monotonic() - self.periodic_since

    async def start_periodic(self) -> None:
        await guarded(self.health, lambda: self._send(START_PERIODIC), self.clock)
        self.periodic_since = self.clock.monotonic()
        self._ask_from = None
        self._stuck.reset()

    async def stop_periodic(self) -> None:
        """Stop, and remember how long it ran (FRC needs >= 3 minutes)."""
        await guarded(self.health, lambda: self._send(STOP_PERIODIC, wait_s=0.5), self.clock)
        ran = self.seconds_in_periodic()
        if ran is not None:
            self.last_periodic_run_s = ran
        self.periodic_since = None
        self._ask_from = None

    async def data_ready(self) -> bool:
        (word,) = await self._query(DATA_READY, 1)
        return word & 0x7FF != 0

    async def read_measurement(self, *, max_wait_s: float = 5.5, poll_s: float = 0.25) -> Co2Measurement:
        """The next result, waiting up to ``max_wait_s`` for one; checked for range and stuck."""
        if self.periodic_since is None:
            await self.start_periodic()

        async def attempt() -> Co2Measurement:
            waited, seen_empty = 0.0, False
            while True:
                now = self.clock.monotonic()
                if self._ask_from is None or now >= self._ask_from or waited >= max_wait_s:
                    if await self.data_ready():
                        break
                    seen_empty = True
                if waited >= max_wait_s:
                    self._ask_from = None
                    raise DataNotReadyError(f"{self.name}: no measurement after {max_wait_s:g} s", device=self.name)
                await self.clock.sleep(poll_s)
                waited += poll_s
            if seen_empty:  # this result arrived within the last poll_s: the next one comes a period later
                self._ask_from = now + PERIODIC_S - poll_s - READY_MARGIN_S
            elif self._ask_from is not None:
                self._ask_from += PERIODIC_S
            raw = await self.device.write_read(command(READ_MEASUREMENT), 9, 0.001, self.clock)
            m = decode_measurement(raw, self.clock.monotonic(), device=self.name)
            check_range(self.name, "co2", m.co2_ppm, *CO2_RANGE_PPM)
            check_range(self.name, "temperature", m.temperature_c, -10.01, 60.01)  # rated range + rounding
            if self._stuck.observe(raw):
                raise SensorImplausibleError(
                    f"{self.name}: identical CO2/T/RH {self._stuck.limit} times in a row; the part is stuck",
                    device=self.name,
                )
            return m

        return await guarded(self.health, attempt, self.clock)

    async def measure_single_shot(self, *, rht_only: bool = False) -> Co2Measurement:
        """One on-demand measurement from idle (5 s; 50 ms without CO2, whose value is then 0)."""
        self._require_idle("a single-shot measurement")

        async def attempt() -> Co2Measurement:
            await self._send(SINGLE_SHOT_RHT if rht_only else SINGLE_SHOT, wait_s=0.05 if rht_only else 5.0)
            if not await self.data_ready():
                raise DataNotReadyError(f"{self.name}: no single-shot result after its duration", device=self.name)
            raw = await self.device.write_read(command(READ_MEASUREMENT), 9, 0.001, self.clock)
            return decode_measurement(raw, self.clock.monotonic(), device=self.name)

        return await guarded(self.health, attempt, self.clock)

    async def power_down(self) -> None:
        """Sleep (idle only); nothing is heard until :meth:`wake_up`."""
        self._require_idle("powering down")
        await self._send(POWER_DOWN)

    async def wake_up(self) -> None:
        """Wake from power_down: the part does not acknowledge this command, so a NACK is expected."""
        try:
            await self.device.write(command(WAKE_UP))
        except NackError:
            pass
        await self.clock.sleep(0.02)

    async def readings(self) -> list[Reading]:
        m = await self.read_measurement()
        return [
            Reading(self.name, "co2", m.co2_ppm, "ppm", m.t),
            Reading(self.name, "temperature", m.temperature_c, "C", m.t),
            Reading(self.name, "humidity", m.humidity_pct, "%", m.t),
        ]

    # -- calibration and settings (idle only) ------------------------------------------------
    def _require_idle(self, what: str) -> None:
        if self.periodic_since is not None:
            raise CalibrationRefusedError(f"{self.name}: stop periodic measurement before {what}", device=self.name)

    async def forced_recalibration(self, reference_ppm: int) -> int:
        """Calibrate against a reference (ppm); returns the correction the part applied."""
        self._require_idle("forced recalibration")
        missing = FRC_MIN_PERIODIC_S - self.last_periodic_run_s
        if missing > 0:
            raise CalibrationRefusedError(
                f"{self.name}: periodic measurement ran {self.last_periodic_run_s:.0f} s before stop; "
                f"FRC needs {FRC_MIN_PERIODIC_S:.0f} s: run it {missing:.0f} s longer in the reference air",
                device=self.name,
                missing_s=missing,
            )
        if not 400 <= reference_ppm <= 2000:
            raise ValueError(f"reference {reference_ppm} ppm: use fresh air (~420) or a reference 400..2000 ppm")
        (word,) = await self._frc(reference_ppm)
        return decode_frc(word, device=self.name)

    async def _frc(self, reference_ppm: int) -> list[int]:
        await self.device.write(command(FORCED_RECALIBRATION, reference_ppm))
        await self.clock.sleep(0.4)
        return unpack_words(await self.device.read(3), device=self.name)

    async def set_asc(self, enabled: bool) -> None:
        self._require_idle("changing ASC")
        await self._send(SET_ASC, int(enabled))

    async def get_asc(self) -> bool:
        self._require_idle("reading ASC")
        (word,) = await self._query(GET_ASC, 1)
        return bool(word)

    async def set_temperature_offset(self, offset_c: float) -> None:
        self._require_idle("setting the temperature offset")
        if not 0.0 <= offset_c <= 20.0:
            raise ValueError(f"temperature offset {offset_c} C: use 0..20 C")
        await self._send(SET_T_OFFSET, round(offset_c * 65535.0 / 175.0))

    async def get_temperature_offset(self) -> float:
        self._require_idle("reading the temperature offset")
        (word,) = await self._query(GET_T_OFFSET, 1)
        return word * 175.0 / 65535.0


def _build(ports: PartPorts, clock: Clock, spec: PartSpec) -> Scd41:
    return Scd41(ports.i2c(), clock, address=spec.address or 0x62, name=spec.name)


async def _start(driver: Scd41) -> None:
    """The part may still be measuring (after a failed poll, or from before a daemon restart),
    and it refuses start_periodic then: stop it first."""
    await driver.stop_periodic()
    await driver.start_periodic()


PARTS = (
    PartKind(
        name="scd41", summary="Sensirion SCD41 photoacoustic CO2 sensor, with temperature and humidity (I2C, 0x62)",
        build=_build, start=_start, readings=Scd41.readings, wiring=(("bus", "address"),),
        # The part warms itself: its temperature and humidity count only where no SHT is present.
        quantities=(Quantity("co2", "ppm"), Quantity("temperature", "C", rank=2), Quantity("humidity", "%", rank=2)),
        fresh_read=False,  # a new result only every 5 s: a read on demand shows the latest poll
        calibrations=(Calibration("co2", "frc", "ppm", (400.0, 5000.0)),
                      Calibration("temperature", "offset", "°C", (-20.0, 60.0)),
                      Calibration("humidity", "offset", "%RH", (0.0, 100.0))),
        example={"bus": "i2c1", "address": 0x62},
    ),
)

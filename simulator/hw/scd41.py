"""Simulated Sensirion SCD41 CO2 sensor: command set, periodic timing, FRC, ASC, offsets.

Behaviour from SCD4x DS v1.3 (HARDWARE.md section 4): idle 1 s after power-up; each command's
response can be read after its execution time (an early read is NACKed); during periodic
measurement only read_measurement, get_data_ready, stop and set_ambient_pressure are accepted;
results arrive every 5 s (30 s low power), an empty buffer NACKs and reading empties it.
Single shot (0x219D, 5 s; 0x2196 temperature and humidity only, 50 ms, CO2 word 0) fills the same
buffer: get_data_ready says so once the measurement is done, and read_measurement answers then.
power_down (0x36E0) makes the part deaf (its address is not acknowledged) until wake_up (0x36F6),
which is itself not acknowledged and takes 20 ms. A command that takes an argument word is
refused (NACKed) when the word is missing.

Physics of the model: the part senses ``co2 * gain + offset + co2_error_ppm`` plus noise, then
adds its forced-recalibration correction. FRC sets that correction so the reading matches the
reference, and returns 0xFFFF unless periodic measurement ran for at least 3 minutes before it
was stopped (the datasheet requires it; how the real part fails is not documented, so this is a
modelling choice). The temperature output is ``ambient + self_heating_c - temperature_offset``,
with a 4 C default offset matching 4 C of self-heating.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from drivers.sensirion import celsius_to_ticks, crc8, pack_words, rh_to_ticks
from simulator.hw.bus import SimNack
from simulator.hw.parts import SimPart, on_its_bus, part_seed
from simulator.hw.sht import SensirionPart

if TYPE_CHECKING:
    from edge_agent.config import Sensor
    from simulator.hw.floor import SimHardware

ALLOWED_IN_PERIODIC = {0xEC05, 0x3F86, 0xE000, 0xE4B8}
#: Commands that carry one argument word; sent without it they are refused, never taken as 0.
NEEDS_ARGUMENT = {0x362F, 0x2416, 0x241D, 0x2427, 0xE000}
SINGLE_SHOT_S = {0x219D: 5.0, 0x2196: 0.05}  # measure_single_shot, measure_single_shot_rht_only
WAKE_UP, POWER_DOWN = 0x36F6, 0x36E0
WAKE_UP_S = 0.02
FRC_MIN_PERIODIC_S = 180.0


def _word(data: bytes) -> int:
    return (data[0] << 8) | data[1]


class SimSCD41(SensirionPart):
    """SCD41 at 0x62; ``set_environment`` is the air around it."""

    kind = "scd41"

    def __init__(self, monotonic: Callable[[], float], *, noise: float = 0.0, seed: int = 0) -> None:
        super().__init__(monotonic, noise=noise, seed=seed)
        self.co2_ppm = 450.0
        self.temperature_c = 22.0
        self.humidity_pct = 40.0
        self.co2_error_ppm = 0.0  # the sensor's drift, which calibration has to remove
        self.frc_correction_ppm = 0.0
        self.temperature_offset_ticks = round(4.0 * 65535 / 175)  # the default 4 C, as the part stores it
        self.self_heating_c = self.temperature_offset_c  # matched, so the default offset is exact
        self.asc_enabled = True
        self.altitude_m = 0
        self.ambient_pressure_hpa = 1013
        self.booted_at = monotonic() + 1.0
        self.interval: float | None = None  # 5 s periodic, 30 s low power, None idle
        self._periodic_start = 0.0
        self._read_index = 0
        self.last_periodic_run_s = 0.0
        self.powered_down = False
        self._shot: tuple[int, int, int] | None = None  # a single-shot result, and when it is ready
        self._shot_ready_at = 0.0

    def set_environment(self, co2_ppm: float, temperature_c: float, humidity_pct: float) -> None:
        self.co2_ppm, self.temperature_c, self.humidity_pct = co2_ppm, temperature_c, humidity_pct

    @property
    def temperature_offset_c(self) -> float:
        return self.temperature_offset_ticks * 175.0 / 65535.0

    def _sensed_co2(self) -> float:
        return self.measured("co2", self.co2_ppm) + self.co2_error_ppm

    def measurement_words(self) -> tuple[int, int, int]:
        def fresh() -> tuple[int, int, int]:
            co2 = max(0, min(0xFFFF, round(self._sensed_co2() + self.frc_correction_ppm)))
            t = self.measured("temperature", self.temperature_c, self.noise / 50) + self.self_heating_c
            t -= self.temperature_offset_c
            rh = self.measured("humidity", self.humidity_pct, self.noise / 20)
            return co2, celsius_to_ticks(t), rh_to_ticks(rh)

        return self.sample("measurement", fresh)

    def _index(self) -> int:
        if self.interval is None or self.slow:
            return self._read_index
        return math.floor((self.monotonic() - self._periodic_start) / self.interval)

    def awake(self) -> bool:
        return not self.powered_down and self.monotonic() >= self.booted_at

    def handle_write(self, data: bytes) -> None:
        if self.powered_down:
            if data[:2] == bytes((WAKE_UP >> 8, WAKE_UP & 0xFF)) and not self.slow:
                self.powered_down = False
                self.booted_at = self.monotonic() + WAKE_UP_S
            raise SimNack  # asleep: nothing is acknowledged, not even the wake_up that wakes it
        super().handle_write(data)

    def _shot_ready(self) -> bool:
        return self._shot is not None and self.monotonic() >= self._shot_ready_at and not self.slow

    def _stop(self) -> None:
        if self.interval is not None:
            self.last_periodic_run_s = self.monotonic() - self._periodic_start
        self.interval = None

    def on_write(self, data: bytes) -> None:
        now = self.monotonic()
        if len(data) < 2:
            raise SimNack
        code = _word(data)
        args = data[2:]
        if len(args) not in (0, 3) or (args and crc8(args[:2]) != args[2]):
            raise SimNack  # bad argument CRC: the part refuses the command
        if (code in NEEDS_ARGUMENT) != bool(args):
            raise SimNack  # an argument word missing (or one the command does not take)
        arg = _word(args) if args else 0
        if self.interval is not None and code not in ALLOWED_IN_PERIODIC:
            raise SimNack  # "not allowed while in working mode"
        self._pending = None
        if code in (0x21B1, 0x21AC):
            self.interval = 5.0 if code == 0x21B1 else 30.0
            self._periodic_start = now
            self._read_index = 0
        elif code == 0x3F86:
            self._stop()
        elif code == 0xEC05 and self.interval is None:
            if self._shot_ready():
                assert self._shot is not None
                self.respond(self._pack(self._shot), 0.001)
                self._shot = None
            # else: no single-shot result yet, the following read is NACKed
        elif code == 0xEC05:
            index = self._index()
            if index > self._read_index:
                self._read_index = index
                self.respond(self._pack(self.measurement_words()), 0.001)
            # else: buffer empty, the following read is NACKed
        elif code == 0xE4B8:
            ready = self._index() > self._read_index if self.interval is not None else self._shot_ready()
            self.respond(self._pack((0x8006 if ready else 0x8000,)), 0.001)
        elif code == 0x362F:
            self.respond(self._pack((self._forced_recalibration(arg),)), 0.4)
        elif code == 0x2416:
            self.asc_enabled = bool(arg)
        elif code == 0x2313:
            self.respond(self._pack((int(self.asc_enabled),)), 0.001)
        elif code == 0x241D:
            self.temperature_offset_ticks = arg
        elif code == 0x2318:
            self.respond(self._pack((self.temperature_offset_ticks,)), 0.001)
        elif code == 0x2427:
            self.altitude_m = arg
        elif code == 0x2322:
            self.respond(self._pack((self.altitude_m,)), 0.001)
        elif code == 0xE000:
            self.ambient_pressure_hpa = arg
        elif code == 0x3682:
            self.respond(self._pack((0xF896, 0x9F07, 0x3BB3)), 0.001)
        elif code == 0x3639:
            self.respond(self._pack((0,)), 10.0)
        elif code in SINGLE_SHOT_S:
            co2, t, rh = self.measurement_words()
            self._shot = (co2 if code == 0x219D else 0, t, rh)
            self._shot_ready_at = now + SINGLE_SHOT_S[code]
        elif code == POWER_DOWN:
            self.powered_down = True
            self._shot = None
        elif code in (0x3615, 0x3632, 0x3646):
            if code == 0x3632:
                self.frc_correction_ppm = 0.0
                self.temperature_offset_ticks = round(4.0 * 65535 / 175)
                self.asc_enabled = True
        elif code == WAKE_UP:
            raise SimNack  # wake_up is not acknowledged, awake or not
        else:
            raise SimNack

    def _forced_recalibration(self, target_ppm: int) -> int:
        if self.last_periodic_run_s < FRC_MIN_PERIODIC_S or self.slow:
            return 0xFFFF
        current = self._sensed_co2() + self.frc_correction_ppm
        correction = round(target_ppm - current)
        self.frc_correction_ppm += correction
        return (correction + 0x8000) & 0xFFFF

    def on_read(self, n: int) -> bytes:
        # SLOW here means measurements never become ready (data-ready stays 0), not a busy NACK.
        if self._pending is None or self.monotonic() < self._ready_at:
            raise SimNack
        data, self._pending = self._pending, None
        return data

    @staticmethod
    def _pack(words: tuple[int, ...]) -> bytes:
        return pack_words(words)


DEFAULT_CO2, DEFAULT_T_C, DEFAULT_RH = 450.0, 22.0, 40.0


def _make(hw: SimHardware, sensor: Sensor) -> SimSCD41:
    scd = SimSCD41(hw.monotonic, noise=5.0, seed=part_seed(sensor.id))
    scd.set_environment(DEFAULT_CO2, DEFAULT_T_C, DEFAULT_RH)
    on_its_bus(hw, sensor, scd)
    return scd


SIM_PARTS = (SimPart("scd41", _make),)

"""Injected faults: no crash, health flagged, recovery once the fault clears."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.amg8833 import Amg8833
from drivers.bh1750 import Bh1750
from drivers.errors import (
    BusTimeoutError,
    ChecksumError,
    DataNotReadyError,
    NackError,
    SensorImplausibleError,
)
from drivers.scd41 import Scd41
from drivers.sht import Sht4x, Sht31
from simulator.clock import VirtualClock
from simulator.hw.amg8833 import SimAMG8833
from simulator.hw.bh1750 import SimBH1750
from simulator.hw.bus import Fault, SimI2CBus
from simulator.hw.scd41 import SimSCD41
from simulator.hw.sht import SimSHT4x, SimSHT31
from tests.drivers.conftest import on_virtual_time


def test_transient_nack_is_retried_and_stays_healthy() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSHT31(clock.monotonic)
        bus.attach(0x44, part)
        part.inject(Fault.NACK, count=2)
        driver = Sht31(bus, clock)
        m = await driver.read()
        assert m.temperature_c == pytest.approx(22.0, abs=0.01)
        assert driver.health.healthy and driver.health.consecutive_failures == 0
        assert sum(1 for tr in bus.transactions if not tr.ok) == 2

    on_virtual_time(body)


def test_permanent_nack_turns_unhealthy_then_recovers() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSHT4x(clock.monotonic)
        bus.attach(0x44, part)
        driver = Sht4x(bus, clock)
        part.inject(Fault.NACK)
        for _ in range(3):
            with pytest.raises(NackError):
                await driver.read()
        assert not driver.health.healthy
        assert driver.health.errors["NackError"] == 3 and "NackError" in driver.health.reason
        part.clear_faults()
        await driver.read()
        assert driver.health.healthy and driver.health.reason == ""

    on_virtual_time(body)


def test_corrupt_crc_raises_checksum_error_and_counts() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSHT31(clock.monotonic)
        bus.attach(0x44, part)
        driver = Sht31(bus, clock)
        part.inject(Fault.CORRUPT_CRC)
        with pytest.raises(ChecksumError):
            await driver.read()
        assert driver.health.errors["ChecksumError"] == 1 and driver.health.consecutive_failures == 1
        part.clear_faults()
        assert (await driver.read()).humidity_pct == pytest.approx(40.0, abs=0.01)
        part.inject(Fault.CORRUPT_CRC, count=1)  # one bad answer: the retry hides it
        await driver.read()
        assert driver.health.healthy

    on_virtual_time(body)


def test_stuck_sht_is_flagged_implausible_not_believed() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSHT31(clock.monotonic, noise=0.05, seed=3)
        bus.attach(0x44, part)
        driver = Sht31(bus, clock, stuck_after=5)
        for _ in range(10):
            await driver.read()  # noisy part: never the same raw value 5 times
        part.inject(Fault.STUCK)
        with pytest.raises(SensorImplausibleError, match="stuck"):
            for _ in range(6):
                await driver.read()
        assert not driver.health.healthy
        part.clear_faults()
        await driver.read()
        assert driver.health.healthy

    on_virtual_time(body)


def test_out_of_range_all_ones_is_implausible() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSHT31(clock.monotonic)
        bus.attach(0x44, part)
        part.set_environment(130.0, 100.0)  # 0xFFFF: what a shorted bus reads
        driver = Sht31(bus, clock)
        with pytest.raises(SensorImplausibleError, match="temperature 130"):
            await driver.read()
        assert not driver.health.healthy  # at once, not after three tries

    on_virtual_time(body)


def test_stuck_and_overrange_thermal_frames() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimAMG8833(clock.monotonic, noise=0.3, seed=1)
        bus.attach(0x69, part)
        driver = Amg8833(bus, clock, stuck_after=3)
        await driver.start()
        for _ in range(5):
            await clock.sleep(0.1)
            await driver.read_frame()
        part.inject(Fault.STUCK)
        with pytest.raises(SensorImplausibleError):
            for _ in range(4):
                await clock.sleep(0.1)
                await driver.read_frame()
        part.clear_faults()
        await clock.sleep(0.1)
        await driver.read_frame()
        assert driver.health.healthy
        part.set_frame(np.full((8, 8), 300.0))
        with pytest.raises(SensorImplausibleError, match="pixels"):
            await driver.read_frame()

    on_virtual_time(body)


def test_slow_scd41_never_ready_then_recovers() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSCD41(clock.monotonic)
        bus.attach(0x62, part)
        await clock.sleep(1.0)
        driver = Scd41(bus, clock)
        await driver.read_measurement()
        part.inject(Fault.SLOW)
        with pytest.raises(DataNotReadyError):
            await driver.read_measurement(max_wait_s=6.0)
        part.clear_faults()
        await driver.read_measurement()
        assert driver.health.healthy and driver.health.errors["DataNotReadyError"] == 1

    on_virtual_time(body)


def test_bus_faults_absent_and_timeout() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimBH1750(clock.monotonic)
        bus.attach(0x23, part)
        driver = Bh1750(bus, clock)
        await driver.start()
        bus.inject(Fault.SLOW)
        with pytest.raises(BusTimeoutError):
            await driver.read_lux()
        bus.clear_faults()
        part.inject(Fault.ABSENT)
        with pytest.raises(NackError):
            await driver.read_lux()
        assert 0x23 not in bus.scan()
        part.clear_faults()
        assert await driver.read_lux() == pytest.approx(300.0, abs=1)
        with pytest.raises(ValueError):
            bus.inject(Fault.STUCK)

    on_virtual_time(body)


def test_sim_bus_enforces_smbus_block_limit() -> None:
    bus = SimI2CBus()
    bus.attach(0x69, SimAMG8833(lambda: 0.0))
    assert len(bus.read_i2c_block_data(0x69, 0x80, 32)) == 32
    with pytest.raises(ValueError):
        bus.read_i2c_block_data(0x69, 0x80, 33)
    with pytest.raises(OSError) as info:
        bus.read_byte(0x50)
    assert info.value.errno == 121

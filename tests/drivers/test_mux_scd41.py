"""TCA9548A channel ports (on a local and on a bridged parent) and SCD41 calibration rules."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from drivers.errors import NackError
from drivers.i2c import I2CDevice
from drivers.mux import MuxChannel, Tca9548a
from drivers.scd41 import CalibrationRefusedError, Scd41
from drivers.sht import Sht31
from simulator.clock import VirtualClock
from simulator.hw.bus import SimI2CBus
from simulator.hw.mux import SimTCA9548A
from simulator.hw.scd41 import SimSCD41
from simulator.hw.sht import SimSHT31
from tests.drivers.conftest import on_virtual_time


class BridgedBus:
    """An AsyncI2CBus over a simulated bus, as a node's tunnelled bus looks to the gateway."""

    def __init__(self, bus: SimI2CBus) -> None:
        self.bus = bus

    async def transfer(self, address: int, write: bytes, read_len: int) -> bytes:
        await asyncio.sleep(0.002)  # a bridge round trip; lets other tasks interleave
        if write:
            self.bus._run("transfer", address, write, None)
        return self.bus._run("transfer", address, None, read_len) if read_len else b""


def _two_rooms(clock: VirtualClock) -> tuple[SimI2CBus, SimTCA9548A, SimSHT31, SimSHT31]:
    bus = SimI2CBus("i2c1")
    chip = SimTCA9548A(clock.monotonic)
    bus.attach(0x70, chip)
    a, b = SimSHT31(clock.monotonic), SimSHT31(clock.monotonic)
    a.set_environment(20.0, 30.0)
    b.set_environment(25.0, 60.0)
    chip.channel_bus(0).attach(0x44, a)
    chip.channel_bus(3).attach(0x44, b)
    return bus, chip, a, b


def test_same_address_on_two_channels_and_selection_is_cached() -> None:
    async def body(clock: VirtualClock) -> None:
        bus, chip, _, _ = _two_rooms(clock)
        mux = Tca9548a(bus, 0x70)
        ch0, ch3 = mux.channel(0), mux.channel(3)
        assert isinstance(ch0, MuxChannel)
        first, second = Sht31(ch0, clock), Sht31(ch3, clock)
        assert (await first.read()).temperature_c == pytest.approx(20.0, abs=0.01)
        assert (await first.read()).temperature_c == pytest.approx(20.0, abs=0.01)
        assert chip.selects == 1  # second read on the same channel did not re-select
        assert (await second.read()).humidity_pct == pytest.approx(60.0, abs=0.01)
        assert chip.selects == 2 and chip.control == 1 << 3
        with pytest.raises(ValueError):
            mux.channel(8)

    on_virtual_time(body)


def test_bridged_parent_channels_never_interleave() -> None:
    async def body(clock: VirtualClock) -> None:
        bus, chip, _, _ = _two_rooms(clock)
        mux = Tca9548a(BridgedBus(bus), 0x70)
        ch0, ch3 = mux.channel(0), mux.channel(3)
        first, second = Sht31(ch0, clock), Sht31(ch3, clock)  # one driver per physical part
        for _ in range(3):
            results = await asyncio.gather(first.read(), second.read())
            assert [round(r.temperature_c) for r in results] == [20, 25]
        assert chip.selects >= 6  # the two pollers really alternated channels
        # every transfer to 0x44 happened with exactly one channel connected
        assert all(t.ok for t in bus.transactions)

    on_virtual_time(body)


def test_i2c_device_translates_nack_on_async_bus() -> None:
    async def body(clock: VirtualClock) -> None:
        dev = I2CDevice(BridgedBus(SimI2CBus("node1")), 0x44)
        with pytest.raises(NackError) as info:
            await dev.read(3)
        assert info.value.address == 0x44

    on_virtual_time(body)


def test_scd41_frc_needs_three_minutes_and_corrects_the_error() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSCD41(clock.monotonic)
        part.co2_error_ppm = 60.0  # the part reads 60 ppm high
        bus.attach(0x62, part)
        await clock.sleep(1.0)
        scd = Scd41(bus, clock)
        assert (await scd.read_measurement()).co2_ppm == 510
        with pytest.raises(CalibrationRefusedError, match="stop periodic"):
            await scd.forced_recalibration(450)
        await scd.stop_periodic()
        with pytest.raises(CalibrationRefusedError) as info:
            await scd.forced_recalibration(450)
        assert 170 < info.value.missing_s < 180
        await scd.start_periodic()
        await clock.sleep(181)
        assert (scd.seconds_in_periodic() or 0) >= 181
        await scd.stop_periodic()
        assert await scd.forced_recalibration(450) == -60
        assert (await scd.read_measurement()).co2_ppm == 450

    on_virtual_time(body)


def test_scd41_settings_asc_and_temperature_offset() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSCD41(clock.monotonic)
        bus.attach(0x62, part)
        await clock.sleep(1.0)
        scd = Scd41(bus, clock)
        assert await scd.get_asc() is True
        await scd.set_asc(False)
        assert await scd.get_asc() is False and part.asc_enabled is False
        assert await scd.get_temperature_offset() == pytest.approx(4.0, abs=0.01)
        await scd.set_temperature_offset(6.0)  # 2 C more than the part self-heats
        assert (await scd.read_measurement()).temperature_c == pytest.approx(20.0, abs=0.01)

    on_virtual_time(body)


def test_scd41_polled_at_its_own_period_asks_for_data_ready_only_when_a_result_can_be_there() -> None:
    """Polled every 5 s out of phase with the part, the driver learns when results arrive and
    stops asking "ready?" every 0.25 s of the wait; every poll still returns a fresh result."""

    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSCD41(clock.monotonic)
        bus.attach(0x62, part)
        await clock.sleep(1.0)  # power-up
        scd = Scd41(bus, clock)
        first = await scd.read_measurement()  # starts periodic mode and waits out the first 5 s
        asks: list[int] = []
        times = [first.t]
        for _ in range(6):
            await clock.sleep(0.3)  # the poller comes back just after the result it took
            before = len(bus.transactions)
            m = await scd.read_measurement()
            times.append(m.t)
            asks.append(len(bus.transactions) - before)
        assert all(b - a >= 4.5 for a, b in itertools.pairwise(times))  # a new result each time
        # Each "ready?" is two transactions, the read two more: a few asks near the due time
        # (at most 5: 10 + 2), where asking every 0.25 s of the wait took about 20 (42).
        assert max(asks[1:]) <= 12

    on_virtual_time(body)

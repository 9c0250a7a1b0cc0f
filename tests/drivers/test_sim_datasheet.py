"""The simulated parts answer as their datasheets say, and the drivers work with that behaviour.

Each test uses one behaviour an independent driver written against the real part would meet: the
address-only probe, Break while idle, clock stretching, single shot, power-down and a command
sent without its argument word.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from smbus2 import i2c_msg

from drivers.errors import BusTimeoutError, NackError
from drivers.i2c import I2CDevice, SmbusPort
from drivers.scan import scan_bus
from drivers.scd41 import Scd41
from drivers.sensirion import command, unpack_words
from drivers.sht import Sht31
from simulator.clock import VirtualClock
from simulator.hw.bh1750 import SimBH1750
from simulator.hw.bus import SimI2CBus
from simulator.hw.mux import SimTCA9548A
from simulator.hw.scd41 import SimSCD41
from simulator.hw.sht import SimSHT31
from tests.drivers.conftest import on_virtual_time

ADDRESSES = {"sht31": 0x44, "bh1750": 0x23, "scd41": 0x62, "tca9548a": 0x70}


@dataclass
class Floor:
    """One bus with one of each part at its usual address."""

    bus: SimI2CBus
    sht: SimSHT31
    scd: SimSCD41


def _floor(clock: VirtualClock, stretch_timeout_s: float | None = None) -> Floor:
    bus = SimI2CBus("i2c1", stretch_timeout_s=stretch_timeout_s)
    floor = Floor(bus, SimSHT31(clock.monotonic), SimSCD41(clock.monotonic))
    parts = {"sht31": floor.sht, "bh1750": SimBH1750(clock.monotonic), "scd41": floor.scd,
             "tca9548a": SimTCA9548A(clock.monotonic)}
    for kind, part in parts.items():
        bus.attach(ADDRESSES[kind], part)
    return floor


def on_a_floor(test: Callable[[VirtualClock, Floor], Awaitable[None]]) -> Callable[[], None]:
    """Run ``test(clock, floor)`` on virtual time with a fresh floor (as a plain pytest test)."""

    def run() -> None:
        async def body(clock: VirtualClock) -> None:
            await test(clock, _floor(clock))

        on_virtual_time(body)

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


@on_a_floor
async def test_address_only_write_is_acknowledged_by_every_part(clock: VirtualClock, floor: Floor) -> None:
    bus = floor.bus
    await clock.sleep(1.0)  # the SCD41 listens 1 s after power-up
    for kind, address in ADDRESSES.items():
        await I2CDevice(bus, address, name=kind).probe()  # the drivers' port: empty transfer
        bus.i2c_rdwr(i2c_msg.write(address, b""))  # what driver libraries send
        await SmbusPort(bus).transfer(address, b"", 0)  # smbus2's quick write, as on a gateway
    assert scan_bus(bus) == sorted(ADDRESSES.values())  # i2cdetect's view
    with pytest.raises(NackError):
        await I2CDevice(bus, 0x45).probe()  # nothing there


@on_a_floor
async def test_scd41_is_deaf_while_booting(clock: VirtualClock, floor: Floor) -> None:
    bus = floor.bus
    with pytest.raises(NackError):
        await I2CDevice(bus, 0x62).probe()
    await clock.sleep(1.0)
    await I2CDevice(bus, 0x62).probe()


@on_a_floor
async def test_sht31_soft_reset_works_from_idle_and_from_periodic_mode(clock: VirtualClock, floor: Floor) -> None:
    bus, part = floor.bus, floor.sht
    sht = Sht31(bus, clock)
    await sht.soft_reset()  # Break while idle is acknowledged, then the reset clears the status
    assert part.status == 0x0010
    await sht.start_periodic(2.0)
    await sht.soft_reset()  # Break stops periodic mode first: the reset is not ignored
    assert part.periodic_interval is None and not sht.periodic
    assert (await sht.read()).temperature_c == pytest.approx(22.0, abs=0.01)


@on_a_floor
async def test_sht31_clock_stretching_holds_the_read_until_the_result(clock: VirtualClock, floor: Floor) -> None:
    bus, part = floor.bus, floor.sht
    sht = Sht31(bus, clock)
    sht.stretch = True
    t0 = clock.monotonic()
    m = await sht.read()  # 0x2C06 then an immediate read: acknowledged, SCL held
    assert m.temperature_c == pytest.approx(22.0, abs=0.01) and clock.monotonic() == t0
    assert part.stretch_s == pytest.approx(0.0155)
    dev = I2CDevice(bus, 0x44)
    await dev.write(command(0x2400))  # without stretching the same early read is NACKed
    with pytest.raises(NackError):
        await dev.read(6)
    sht_on_strict = Sht31(_floor(clock, stretch_timeout_s=0.001).bus, clock)
    sht_on_strict.stretch = True
    with pytest.raises(BusTimeoutError):  # an adapter with a short clock-stretch timeout gives up
        await sht_on_strict.read()
    sht_on_strict.stretch = False
    assert (await sht_on_strict.read()).humidity_pct == pytest.approx(40.0, abs=0.01)


@on_a_floor
async def test_scd41_single_shot_sets_data_ready_after_its_duration(clock: VirtualClock, floor: Floor) -> None:
    bus, part = floor.bus, floor.scd
    part.set_environment(812.0, 23.0, 45.0)
    await clock.sleep(1.0)
    dev = I2CDevice(bus, 0x62)
    await dev.write(command(0x219D))
    await clock.sleep(1.0)
    (ready,) = unpack_words(await dev.write_read(command(0xE4B8), 3, 0.001, clock))
    assert ready & 0x7FF == 0  # still measuring
    await dev.write(command(0xEC05))
    with pytest.raises(NackError):
        await dev.read(9)  # nothing to read yet
    scd = Scd41(bus, clock)
    m = await scd.measure_single_shot()  # the driver's own single shot, 5 s
    assert m.co2_ppm == pytest.approx(812.0, abs=1) and m.temperature_c == pytest.approx(23.0, abs=0.01)
    with pytest.raises(NackError):
        await dev.write_read(command(0xEC05), 9, 0.001, clock)  # the buffer was emptied by the read
    t0 = clock.monotonic()
    rht = await scd.measure_single_shot(rht_only=True)
    assert rht.co2_ppm == 0 and rht.humidity_pct == pytest.approx(45.0, abs=0.01)
    assert clock.monotonic() - t0 < 0.1


@on_a_floor
async def test_scd41_power_down_is_deaf_until_wake_up(clock: VirtualClock, floor: Floor) -> None:
    bus, part = floor.bus, floor.scd
    await clock.sleep(1.0)
    scd = Scd41(bus, clock)
    await scd.power_down()
    dev = I2CDevice(bus, 0x62)
    for attempt in (dev.probe(), dev.write(command(0x219D)), dev.write(command(0xE4B8))):
        with pytest.raises(NackError):
            await attempt
    assert part.powered_down and part._shot is None  # the single shot never started
    await scd.wake_up()  # not acknowledged, yet the part wakes
    await dev.probe()
    assert (await scd.measure_single_shot(rht_only=True)).temperature_c == pytest.approx(22.0, abs=0.01)


@on_a_floor
async def test_scd41_refuses_a_command_without_its_argument_word(clock: VirtualClock, floor: Floor) -> None:
    bus, part = floor.bus, floor.scd
    await clock.sleep(1.0)
    dev = I2CDevice(bus, 0x62)
    before = part.temperature_offset_ticks
    for code in (0x241D, 0x2416, 0x2427, 0x362F):  # set offset, ASC, altitude; FRC
        with pytest.raises(NackError):
            await dev.write(command(code))
    assert part.temperature_offset_ticks == before and part.asc_enabled  # not taken as argument 0
    with pytest.raises(NackError):
        await dev.write(command(0x3682, 1))  # an argument the command does not take
    scd = Scd41(bus, clock)
    await scd.set_temperature_offset(2.5)  # the driver sends the word: accepted
    assert await scd.get_temperature_offset() == pytest.approx(2.5, abs=0.01)
    await scd.set_asc(False)
    assert not part.asc_enabled


"""DALI: the dimming curve and fade codes of IEC 62386-102, and the gateway's driver on a simulated line.

The line's gear decode raw forward frames after the standard; the gateway reaches them through
python-dali's own driver contract, so these tests run python-dali's sequences (commissioning,
group queries) unchanged. Every frame takes bus time, so the tests run on virtual time.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from drivers.dali import AddressCollision, DaliBus, DaliLight, LampFailure, arc_level, fade_code, light_fraction
from drivers.errors import DeviceAbsentError
from simulator.clock import run_virtual
from simulator.dali_line import FORWARD_S, SimDaliDriver, SimDaliLine


class LoopClock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def time(self) -> float:
        return self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def test_the_logarithmic_curve_spans_a_thousand_to_one() -> None:
    # IEC 62386-102: arc level 1 is 0.1 % and 254 is 100 % of full light output, each step x 10^(3/253)
    assert light_fraction(1) == pytest.approx(0.001)
    assert light_fraction(254) == pytest.approx(1.0)
    assert light_fraction(0) == 0.0
    assert light_fraction(255) == 0.0  # MASK is not a level
    for n in (2, 100, 200, 254):
        assert light_fraction(n) / light_fraction(n - 1) == pytest.approx(10 ** (3 / 253))
    assert arc_level(0.0) == 0
    assert arc_level(1.0) == 254
    assert arc_level(0.001) == 1
    assert arc_level(0.0001) == 1  # below the curve: its lowest step, not off
    assert arc_level(0.1) == 170  # 10 % light is level 170, not 25 (the curve is not linear)
    for n in range(1, 255):
        assert arc_level(light_fraction(n)) == n
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        arc_level(1.2)


def test_fade_code_is_the_longest_fade_done_within_the_ramp() -> None:
    # fade time of code X: 0.5 * sqrt(2^X) s (X = 1: 0.707 s ... X = 15: 90.5 s); 0: no fade
    assert fade_code(0.0) == 0
    assert fade_code(0.7) == 0
    assert fade_code(0.71) == 1
    assert fade_code(1.0) == 2
    assert fade_code(4.0) == 6
    assert fade_code(1000.0) == 15
    assert 0.5 * math.sqrt(2**15) == pytest.approx(90.5, abs=0.1)


async def _bus(line: SimDaliLine) -> DaliBus:
    bus = DaliBus(SimDaliDriver("simdali:test", line), name="dali1")
    await bus.open()
    return bus


def test_factory_new_gear_are_silent_until_commissioned() -> None:
    run_virtual(_factory_new_gear_are_silent_until_commissioned())


async def _factory_new_gear_are_silent_until_commissioned() -> None:
    line = SimDaliLine.factory_new(4, asyncio.get_running_loop().time, seed=7)
    bus = await _bus(line)
    before = await bus.scan()
    assert before.gear == [] and before.unaddressed  # no short address answers; unaddressed gear are there
    messages: list[str] = []
    assigned = await bus.commission(progress=messages.append)
    assert assigned == [0, 1, 2, 3]
    assert any("Ballast found" in m for m in messages)
    after = await bus.scan()
    assert not after.unaddressed
    assert [g.short_address for g in after.gear] == [0, 1, 2, 3]
    assert all(g.device_types == (6,) for g in after.gear)  # LED gear, IEC 62386-207
    assert sorted(g.short_address for g in line.gear) == [0, 1, 2, 3]


def test_two_gear_on_one_short_address_collide() -> None:
    run_virtual(_two_gear_on_one_short_address_collide())


async def _two_gear_on_one_short_address_collide() -> None:
    line = SimDaliLine.addressed([0, 1, 1, 2], asyncio.get_running_loop().time)
    bus = await _bus(line)
    scan = await bus.scan(range(4))
    assert scan.collisions == [1]
    assert [g.short_address for g in scan.gear if not g.collision] == [0, 2]
    with pytest.raises(AddressCollision):
        await bus.status(1)
    # readdressing the whole line gives every gear its own address again
    assert await bus.commission(readdress=True) == [0, 1, 2, 3]
    assert (await bus.scan(range(8))).collisions == []


def test_configuration_commands_need_both_copies_within_100ms() -> None:
    run_virtual(_configuration_commands_need_both_copies_within_100ms())


async def _configuration_commands_need_both_copies_within_100ms() -> None:
    loop = asyncio.get_running_loop()
    line = SimDaliLine.addressed([5], loop.time)
    gear = line.at(5)[0]
    line.transmit(0xA3 << 8 | 3)  # DTR0 = 3
    line.transmit(5 << 9 | 0x100 | 0x2E)  # SET FADE TIME, once
    assert gear.fade_code == 0
    line.transmit(5 << 9 | 0x100 | 0x2E)
    assert gear.fade_code == 3
    line.transmit(0xA3 << 8 | 7)
    line.transmit(5 << 9 | 0x100 | 0x2E)
    await asyncio.sleep(0.2)  # too late for a pair
    line.transmit(5 << 9 | 0x100 | 0x2E)
    assert gear.fade_code == 3


def test_a_light_fades_on_the_curve_and_reads_back_what_it_holds() -> None:
    run_virtual(_a_light_fades_on_the_curve_and_reads_back_what_it_holds())


async def _a_light_fades_on_the_curve_and_reads_back_what_it_holds() -> None:
    loop = asyncio.get_running_loop()
    line = SimDaliLine.addressed([3], loop.time)
    bus = await _bus(line)
    light = DaliLight(bus, LoopClock(), short_address=3, fade=fade_code(1.0), name="light-1")
    await light.set(0.5)
    assert line.at(3)[0].fade_code == 2  # the fade time went out before the first level
    assert line.at(3)[0].fading(loop.time())
    mid = line.at(3)[0].actual(loop.time() + 0.5)
    assert 0 < mid < arc_level(0.5)  # half-way through the fade
    await asyncio.sleep(1.0)
    assert await light.read_back() == 0.5
    assert line.at(3)[0].actual(loop.time()) == arc_level(0.5) == 229


def test_lamp_failure_and_silence_are_output_failures() -> None:
    run_virtual(_lamp_failure_and_silence_are_output_failures())


async def _lamp_failure_and_silence_are_output_failures() -> None:
    loop = asyncio.get_running_loop()
    line = SimDaliLine.addressed([0, 1], loop.time)
    bus = await _bus(line)
    light = DaliLight(bus, LoopClock(), short_address=0, name="light-0")
    await light.set(0.8)
    line.at(0)[0].fail_lamp()
    with pytest.raises(LampFailure):
        await light.read_back()
    assert not light.health.healthy
    gone = DaliLight(bus, LoopClock(), short_address=9, name="light-9")
    with pytest.raises(DeviceAbsentError, match="no answer"):
        await gone.read_back()


def test_after_a_mains_cut_the_gear_come_back_at_power_on_level_and_the_watch_restores() -> None:
    run_virtual(_after_a_mains_cut_the_gear_come_back_at_power_on_level_and_the_watch_restores())


async def _after_a_mains_cut_the_gear_come_back_at_power_on_level_and_the_watch_restores() -> None:
    loop = asyncio.get_running_loop()
    line = SimDaliLine.addressed([2], loop.time)
    bus = await _bus(line)
    light = DaliLight(bus, LoopClock(), short_address=2, name="light-2")
    await light.set(0.2)
    gear = line.at(2)[0]
    gear.power_cut(loop.time())
    with pytest.raises(DeviceAbsentError):
        await bus.status(2)  # an unpowered gear does not answer
    gear.power_restored(loop.time())
    assert gear.actual(loop.time()) == 254  # POWER ON LEVEL: full light
    assert "power failure" in await bus.status(2)
    note = await light.watch()
    assert "mains cut" in note and "restored" in note
    assert gear.actual(loop.time()) == arc_level(0.2)
    assert "power failure" not in await bus.status(2)  # an arc power command clears the bit
    assert await light.watch() == ""


def test_a_group_is_one_command_and_reads_back_every_member() -> None:
    run_virtual(_a_group_is_one_command_and_reads_back_every_member())


async def _a_group_is_one_command_and_reads_back_every_member() -> None:
    loop = asyncio.get_running_loop()
    line = SimDaliLine.addressed([0, 1, 2], loop.time)
    bus = await _bus(line)
    assert await bus.set_group(0, 4) == (4,)
    assert await bus.set_group(2, 4) == (4,)
    assert await bus.set_group(2, 5) == (4, 5)
    assert await bus.set_group(2, 5, member=False) == (4,)
    group = DaliLight(bus, LoopClock(), group=4, name="group-4")
    await group.setup()
    assert group.members == [0, 2]
    sent = len(line.frames)
    await group.set(0.3)
    dapc = [f for _, f, _ in line.frames[sent:] if f >> 8 == (0x40 | 4) << 1]
    assert len(dapc) == 1  # one DAPC to the group address, not one per gear
    assert await group.read_back() == 0.3
    assert line.at(1)[0].actual(loop.time()) == 0
    line.at(2)[0].fail_lamp()
    with pytest.raises(LampFailure):
        await group.read_back()


def test_every_frame_takes_bus_time() -> None:
    run_virtual(_every_frame_takes_bus_time())


async def _every_frame_takes_bus_time() -> None:
    loop = asyncio.get_running_loop()
    bus = await _bus(SimDaliLine.addressed([0], loop.time))
    t0 = loop.time()
    await bus.status(0)
    assert loop.time() - t0 >= FORWARD_S

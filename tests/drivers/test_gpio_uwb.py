"""PIR and GPIO outputs on gpiozero's MockFactory; DWM1001 over the simulated bleak backend and a pty."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.dwm1001 import Dwm1001Ble, Dwm1001Uart
from drivers.errors import BusTimeoutError
from drivers.outputs import HvacAnalogOutput, HvacRelay, PwmLight
from drivers.pir import PirSensor
from drivers.ports import Output
from drivers.serial import SerialStream
from edge_agent.clock import SystemClock
from simulator.clock import VirtualClock
from simulator.hw.ble import SimBleAir
from simulator.hw.bus import Fault
from simulator.hw.dwm1001 import SimDwm1001Tag
from simulator.hw.gpio import make_pin_factory
from simulator.hw.uart import SimDwm1001Uart
from tests.drivers.conftest import on_virtual_time


@pytest.fixture
def factory() -> Iterator[Any]:
    f = make_pin_factory()
    yield f
    f.reset()


async def test_pir_reports_motion_after_gpiozero_samples(factory: Any) -> None:
    clock = SystemClock()
    pir = PirSensor(17, factory, clock, debounce_s=0.0)
    try:
        await pir.settle()
        factory.pin(17).drive_high()
        event = await pir.next_event(timeout_s=2.0)  # gpiozero needs ~0.1 s: wait, never assert at once
        assert event.motion and pir.motion_detected
        factory.pin(17).drive_low()
        event = await pir.next_event(timeout_s=2.0)
        assert not event.motion
    finally:
        pir.close()


async def test_pir_debounce_keeps_the_final_state(factory: Any) -> None:
    clock = SystemClock()
    pir = PirSensor(27, factory, clock, debounce_s=0.4)
    try:
        await pir.settle()
        pin = factory.pin(27)
        pin.drive_high()
        first = await pir.next_event(timeout_s=2.0)
        pin.drive_low()  # within the debounce window: delayed, not lost
        second = await pir.next_event(timeout_s=2.0)
        assert first.motion and not second.motion
        assert second.t - first.t >= 0.4 - 1e-3
    finally:
        pir.close()


def test_light_ramps_in_steps_and_reads_back(factory: Any) -> None:
    async def body(clock: VirtualClock) -> None:
        light = PwmLight(18, factory, clock, step_s=0.1)
        out: Output = light
        t0 = clock.monotonic()
        await out.set(0.8, ramp_s=1.0)
        assert clock.monotonic() - t0 == pytest.approx(0.9, abs=1e-6)  # 10 steps, no wait after the last
        assert await out.read_back() == pytest.approx(0.8)
        states = [s.state for s in factory.pin(18).states]
        assert len(states) >= 10 and states == sorted(states)  # monotone ramp
        ramp = asyncio.create_task(out.set(0.0, ramp_s=1.0))
        await clock.sleep(0.25)
        await out.set(0.5)  # a newer command supersedes the ramp
        await ramp
        assert await out.read_back() == pytest.approx(0.5)
        with pytest.raises(ValueError):
            await out.set(1.5)
        light.close()

    on_virtual_time(body)


def test_hvac_outputs(factory: Any) -> None:
    async def body(clock: VirtualClock) -> None:
        relay = HvacRelay(23, factory, threshold=0.3)
        await relay.set(0.2)
        assert await relay.read_back() == 0.0
        await relay.set(0.31)
        assert await relay.read_back() == 1.0 and factory.pin(23).state
        analog = HvacAnalogOutput(24, factory, clock, full_scale_duty=0.9)
        await analog.set(0.5, ramp_s=1.0)
        assert factory.pin(24).state == pytest.approx(0.45)
        assert await analog.read_back() == pytest.approx(0.5) and analog.volts == pytest.approx(5.0)
        relay.close()
        analog.close()

    on_virtual_time(body)


def test_ble_tag_notifies_and_reconnects_after_link_loss() -> None:
    async def body(clock: VirtualClock) -> None:
        air = SimBleAir()
        tag = air.add(SimDwm1001Tag("E4:5F:01:2A:3B:4C", period_s=0.1))
        tag.set_position(3.25, -1.5, 1.2, 80)
        tag.set_distances([(0x092D, 3.542, 100), (0x8428, 2.607, 95)])
        async with Dwm1001Ble("E4:5F:01:2A:3B:4C", clock, backend=air.client_backend) as uwb:
            loc = await uwb.next_location(timeout_s=2.0)
            assert loc.position is not None and (loc.position.x_m, loc.position.y_m) == (3.25, -1.5)
            assert [(d.anchor_id, d.distance_m) for d in loc.distances] == [(0x092D, 3.542), (0x8428, 2.607)]
            tag.reachable = False
            assert air.drop(tag.address) == 1
            await clock.sleep(3.0)  # several failed reconnects with backoff
            assert not uwb.health.healthy and uwb.connects == 1
            tag.reachable = True
            tag.set_position(1.0, 1.0, 1.0, 90)
            for _ in range(100):  # bounded: the link comes back within the backoff cap
                loc = await uwb.next_location(timeout_s=30.0)
                if loc.position is not None and loc.position.x_m == 1.0:
                    break
            assert uwb.connects == 2 and uwb.health.healthy
        assert air.clients == []

    on_virtual_time(body)


async def test_uart_loc_get_over_a_pty() -> None:
    tag = SimDwm1001Tag("uart:test")
    tag.set_position(12.5, 7.25, -0.011, 70)
    tag.set_distances([(0x1111, 4.0, 99), (0x2222, 5.5, 98)])
    sim = SimDwm1001Uart(tag)
    await sim.start()
    clock = SystemClock()
    try:
        async with SerialStream(sim.port, 115200) as stream:
            uart = Dwm1001Uart(stream, clock, timeout_s=0.5)
            loc = await uart.loc_get()
            assert loc.position is not None and loc.position.z_m == -0.011 and loc.position.quality == 70
            assert [(d.anchor_id, d.distance_m) for d in loc.distances] == [(0x1111, 4.0), (0x2222, 5.5)]
            sim.inject(Fault.SLOW, count=1)
            with pytest.raises(BusTimeoutError):
                await uart.loc_get()
            assert uart.health.consecutive_failures == 1
            assert (await uart.loc_get()).position == loc.position
            assert uart.health.healthy and sim.requests == 3
    finally:
        sim.close()

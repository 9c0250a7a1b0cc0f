"""HX711: datasheet vectors, the pulse protocol, power-down, settling, and tare and scale.

The driver bit-bangs gpiozero devices on the simulator's pin factory; the simulated part hears
PD_SCK and drives DOUT as the datasheet says (simulator/hw/hx711.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import DataNotReadyError, SensorImplausibleError
from drivers.hx711 import PULSES, Hx711, decode
from edge_agent.calibration import CalibrationStore
from simulator.clock import VirtualClock
from simulator.hw.gpio import make_pin_factory
from simulator.hw.hx711 import SimHx711, attach
from tests.drivers.conftest import on_virtual_time

DOUT, SCK = 5, 6

Body = Callable[[VirtualClock, SimHx711, Any], Awaitable[None]]


def on_a_scale(rate: int = 10, **part_options: float) -> Callable[[Body], Callable[[], None]]:
    """Run ``test(clock, part, factory)`` on virtual time with an HX711 wired to GPIO 5 and 6."""

    def wrap(test: Body) -> Callable[[], None]:
        def run() -> None:
            async def body(clock: VirtualClock) -> None:
                factory = make_pin_factory()
                part = attach(SimHx711(clock.monotonic, rate=rate, **part_options), factory, DOUT, SCK)
                try:
                    await test(clock, part, factory)
                finally:
                    factory.reset()

            on_virtual_time(body)

        run.__name__, run.__doc__ = test.__name__, test.__doc__
        return run

    return wrap


def test_decode_is_24_bit_twos_complement() -> None:
    assert [decode(w) for w in (0x000000, 0x000001, 0x7FFFFF, 0x800000, 0xFFFFFF)] == [
        0, 1, 8388607, -8388608, -1,
    ]


@on_a_scale()
async def test_reads_counts_and_grams_at_gain_128(clock: VirtualClock, part: SimHx711, factory: Any) -> None:
    part.set_mass(500.0)
    hx = Hx711(DOUT, SCK, factory, clock, name="desk-1", counts_per_gram=430.0)
    await hx.start()
    t0 = clock.monotonic()
    assert await hx.read_counts() == 8000 + 500 * 430
    assert clock.monotonic() - t0 == pytest.approx(0.4, abs=0.02)  # 4 conversions at 10 SPS after the reset
    (reading,) = await hx.readings()
    assert reading.quantity == "mass" and reading.unit == "g"
    assert reading.value == pytest.approx((8000 + 500 * 430) / 430)
    assert set(part.pulse_counts) == {25} and hx.health.healthy


@pytest.mark.parametrize(("gain", "expected"), [(64, (8000 + 1000 * 430) // 2), (32, -1234)])
def test_gain_is_chosen_by_the_pulse_count(gain: int, expected: int) -> None:
    @on_a_scale(rate=80)
    async def check(clock: VirtualClock, part: SimHx711, factory: Any) -> None:
        part.set_mass(1000.0)
        part.channel_b_counts = -1234
        hx = Hx711(DOUT, SCK, factory, clock, gain=gain, rate=80)
        await hx.start()
        assert await hx.read_counts() == expected
        assert part.gain == gain and part.pulse_counts[-1] == PULSES[gain]

    check()


@on_a_scale()
async def test_dout_high_means_not_ready_and_reads_wait_for_it(
    clock: VirtualClock, part: SimHx711, factory: Any
) -> None:
    hx = Hx711(DOUT, SCK, factory, clock)
    await hx.start()
    await hx.read_counts()
    assert not hx.ready  # the conversion was taken; the next one comes a period later
    t0 = clock.monotonic()
    await hx.read_counts()
    assert 0.05 < clock.monotonic() - t0 <= 0.1 + 1e-9


@on_a_scale()
async def test_power_down_then_reset_to_channel_a_gain_128(clock: VirtualClock, part: SimHx711, factory: Any) -> None:
    part.set_mass(200.0)
    hx = Hx711(DOUT, SCK, factory, clock, gain=64)
    await hx.start()
    await hx.read_counts()
    assert part.gain == 64
    resets = part.resets
    await hx.power_down()
    assert not hx.ready and part.powered_down  # PD_SCK high > 60 us: down, DOUT high
    await clock.sleep(1.0)
    assert not hx.ready
    await hx.power_up()
    assert part.resets == resets + 1 and part.gain == 128  # the datasheet's state after a reset
    assert await hx.read_counts() == (8000 + 200 * 430) // 2  # the driver selects 64 again


@on_a_scale()
async def test_a_wrong_pulse_count_needs_a_reset(clock: VirtualClock, part: SimHx711, factory: Any) -> None:
    hx = Hx711(DOUT, SCK, factory, clock)
    await hx.start()
    await hx._wait_ready()
    hx._shift(24)  # one pulse short: a communication error
    await clock.sleep(0.5)
    assert not hx.ready and part.comm_error  # DOUT stays high: the part waits for a reset
    with pytest.raises(DataNotReadyError):
        await hx.read_counts()
    await hx.start()  # power down and up: the reset clears it
    assert await hx.read_counts() == 8000


@on_a_scale()
async def test_full_scale_is_implausible(clock: VirtualClock, part: SimHx711, factory: Any) -> None:
    part.set_mass(1e6)  # a tonne on a desk: the input saturates at 0x7FFFFF
    hx = Hx711(DOUT, SCK, factory, clock)
    await hx.start()
    with pytest.raises(SensorImplausibleError):
        await hx.read_grams()
    assert not hx.health.healthy


def test_tare_and_scale_make_the_grams_exact(tmp_path: Path) -> None:
    @on_a_scale(noise=0.0, zero_counts=52_000.0, counts_per_gram=455.0)
    async def check(clock: VirtualClock, part: SimHx711, factory: Any) -> None:
        hx = Hx711(DOUT, SCK, factory, clock, counts_per_gram=420.0)  # nominal, not this cell's
        await hx.start()
        store = CalibrationStore(tmp_path / "calibration.json")
        empty = await hx.read_grams()
        assert empty == pytest.approx(52_000 / 420)  # an empty desk does not read 0 before its tare
        store.calibrate_offset("desk-1", "mass", 0.0, empty, "tech")  # tare
        part.set_mass(2000.0)
        store.calibrate_scale("desk-1", "mass", 2000.0, await hx.read_grams(), "tech")  # scale
        part.set_mass(750.0)
        assert store.apply("desk-1", "mass", await hx.read_grams()) == pytest.approx(750.0, abs=0.01)
        part.set_mass(0.0)
        assert store.apply("desk-1", "mass", await hx.read_grams()) == pytest.approx(0.0, abs=0.01)
        store.close()

    check()

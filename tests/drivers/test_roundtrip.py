"""Value -> simulated part -> bytes on the bus -> driver -> value, over each part's whole range."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from drivers.amg8833 import Amg8833
from drivers.bh1750 import Bh1750, Bh1750Mode
from drivers.scd41 import Scd41
from drivers.sht import Sht4x, Sht31
from simulator.clock import VirtualClock
from simulator.hw.amg8833 import SimAMG8833
from simulator.hw.bh1750 import SimBH1750
from simulator.hw.bus import SimI2CBus
from simulator.hw.scd41 import SimSCD41
from simulator.hw.sht import SimSHT4x, SimSHT31
from tests.drivers.conftest import on_virtual_time

FAST = settings(max_examples=40, deadline=None)
T_RES = 175 / 65535  # one tick of the Sensirion temperature formula
RH_RES = 100 / 65535


@FAST
@given(t=st.floats(-40, 125), rh=st.floats(0, 100))
def test_sht31_round_trip(t: float, rh: float) -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSHT31(clock.monotonic)
        bus.attach(0x44, part)
        part.set_environment(t, rh)
        m = await Sht31(bus, clock).read()
        assert abs(m.temperature_c - t) <= T_RES / 2 + 1e-9
        assert abs(m.humidity_pct - rh) <= RH_RES / 2 + 1e-9

    on_virtual_time(body)


@FAST
@given(t=st.floats(-40, 125), rh=st.floats(0, 100))
def test_sht4x_round_trip(t: float, rh: float) -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSHT4x(clock.monotonic)
        bus.attach(0x44, part)
        part.set_environment(t, rh)
        m = await Sht4x(bus, clock).read()
        assert abs(m.temperature_c - t) <= T_RES / 2 + 1e-9
        assert abs(m.humidity_pct - rh) <= 125 / 65535 / 2 + 1e-9

    on_virtual_time(body)


@FAST
@given(co2=st.floats(0, 40000), t=st.floats(-10, 60), rh=st.floats(0, 100))
def test_scd41_round_trip(co2: float, t: float, rh: float) -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimSCD41(clock.monotonic)
        bus.attach(0x62, part)
        part.set_environment(co2, t, rh)
        await clock.sleep(1.0)  # power-up time
        m = await Scd41(bus, clock).read_measurement()
        assert abs(m.co2_ppm - co2) <= 0.5
        assert abs(m.temperature_c - t) <= T_RES / 2 + 1e-9
        assert abs(m.humidity_pct - rh) <= RH_RES / 2 + 1e-9

    on_virtual_time(body)


@FAST
@given(lux=st.floats(0, 54000), mode=st.sampled_from(list(Bh1750Mode)), mtreg=st.integers(31, 254), one=st.booleans())
def test_bh1750_round_trip(lux: float, mode: Bh1750Mode, mtreg: int, one: bool) -> None:
    step = {Bh1750Mode.H_RES: 1.0, Bh1750Mode.H_RES2: 0.5, Bh1750Mode.L_RES: 4.0}[mode] * 69 / mtreg / 1.2
    full_scale = 65535 / 1.2 * 69 / mtreg / (2 if mode == Bh1750Mode.H_RES2 else 1)

    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimBH1750(clock.monotonic)
        bus.attach(0x23, part)
        part.set_lux(lux)
        got = await Bh1750(bus, clock, mode=mode, mtreg=mtreg, one_time=one).read_lux()
        assert abs(got - min(lux, full_scale)) <= step

    on_virtual_time(body)


@settings(max_examples=25, deadline=None)
@given(
    frame=arrays(np.float64, (8, 8), elements=st.floats(-20, 100)),
    therm=st.floats(-20, 80),
    fps=st.sampled_from([1, 10]),
)
def test_amg8833_round_trip(frame: np.ndarray, therm: float, fps: int) -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        part = SimAMG8833(clock.monotonic, noise=0.0)
        bus.attach(0x69, part)
        part.set_frame(frame)
        part.set_thermistor(therm)
        driver = Amg8833(bus, clock, fps=fps)
        await driver.start()
        got = await driver.read_frame()
        assert got.pixels.shape == (8, 8)
        assert np.abs(got.pixels - frame).max() <= 0.125 + 1e-6
        assert abs(got.thermistor_c - therm) <= 0.0625 / 2 + 1e-9

    on_virtual_time(body)


def test_amg8833_frame_is_one_bus_transaction() -> None:
    """Pointer and 128-byte read in one combined transaction: on a node's bus each transaction is
    an RS-485 exchange, and a separate pointer write doubled the thermopiles' share of the line."""

    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        bus.attach(0x69, SimAMG8833(clock.monotonic))  # with its pixel noise: no frame repeats
        driver = Amg8833(bus, clock, fps=1, thermistor_every=10)
        await driver.start()
        await driver.read_frame()  # the first frame reads the thermistor too
        bus.transactions.clear()
        for _ in range(9):
            await clock.sleep(1.0)
            await driver.read_frame()
        assert len(bus.transactions) == 9

    on_virtual_time(body)

"""CPU cost of a decoded reading per driver, on the simulated bus (its transfers run on the loop).

Each figure is process CPU time per reading, so it includes the simulated part's own work; the
``decode`` rows isolate the pure conversion, and the ratios say how much the full driver path
(retries wrapper, health, checks, bus record) costs on top of the bare decode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from drivers.amg8833 import Amg8833, decode_pixels
from drivers.bh1750 import Bh1750
from drivers.scd41 import Scd41, decode_measurement
from drivers.sensirion import pack_words
from drivers.sht import Sht4x, Sht31
from simulator.clock import VirtualClock, run_virtual
from simulator.hw.amg8833 import SimAMG8833
from simulator.hw.bh1750 import SimBH1750
from simulator.hw.bus import SimI2CBus
from simulator.hw.scd41 import SimSCD41
from simulator.hw.sht import SimSHT4x, SimSHT31

N = 300


def _cpu_us(n: int, call: Callable[[], object]) -> float:
    start = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - start) / n * 1e6


async def _driver_costs() -> dict[str, float]:
    from datetime import datetime

    clock = VirtualClock(asyncio.get_running_loop(), datetime(2025, 3, 4, 8, 0))
    bus = SimI2CBus()
    now = clock.monotonic
    bus.attach(0x69, SimAMG8833(now, noise=0.15))
    bus.attach(0x23, SimBH1750(now, noise=1.0))
    bus.attach(0x44, SimSHT31(now, noise=0.02))
    bus.attach(0x62, SimSCD41(now, noise=5.0))
    bus2 = SimI2CBus()
    bus2.attach(0x44, SimSHT4x(now, noise=0.02))
    await clock.sleep(1.0)
    amg = Amg8833(bus, clock, stuck_after=0)
    await amg.start()
    scd = Scd41(bus, clock, stuck_after=0)
    bh = Bh1750(bus, clock)
    await bh.start()
    sht31, sht4x = Sht31(bus, clock, stuck_after=0), Sht4x(bus2, clock, stuck_after=0)

    async def per_reading(read: Callable[[], Awaitable[object]], advance_s: float) -> float:
        cpu = 0.0
        for _ in range(N):
            await clock.sleep(advance_s)  # virtual: lets a new frame / measurement appear
            start = time.process_time()
            await read()
            cpu += time.process_time() - start
        return cpu / N * 1e6

    return {
        "amg8833 frame": await per_reading(amg.read_frame, 0.1),
        "bh1750 lux": await per_reading(bh.read_lux, 0.2),
        "sht31 T+RH": await per_reading(sht31.read, 1.0),
        "sht4x T+RH": await per_reading(sht4x.read, 1.0),
        "scd41 CO2+T+RH": await per_reading(scd.read_measurement, 5.0),
    }


def run() -> list[tuple[str, float, str]]:
    costs = run_virtual(_driver_costs())
    frame = bytes(range(128))
    scd_frame = pack_words((500, 0x6666, 0x5EB9))
    bare_frame = _cpu_us(2000, lambda: decode_pixels(frame))
    bare_scd = _cpu_us(5000, lambda: decode_measurement(scd_frame))
    rows = [(f"drivers: {name}", value, "us CPU/reading") for name, value in costs.items()]
    rows += [
        ("drivers: decode_pixels (bare)", bare_frame, "us CPU"),
        ("drivers: amg8833 frame / bare decode", costs["amg8833 frame"] / bare_frame, "x"),
        ("drivers: scd41 decode (bare)", bare_scd, "us CPU"),
        ("drivers: scd41 reading / bare decode", costs["scd41 CO2+T+RH"] / bare_scd, "x"),
    ]
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<44} {value:10.2f} {unit}")

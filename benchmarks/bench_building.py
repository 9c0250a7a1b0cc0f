"""What the gateway's DALI and BACnet layers cost on top of python-dali and bacpypes3.

DALI: process CPU per level command with its read-back (DAPC, then QUERY STATUS and QUERY ACTUAL
LEVEL) through :class:`drivers.dali.DaliLight`, against the same three commands sent bare through
the python-dali driver, on the simulated line and virtual time (bus time itself is not CPU).

BACnet: CPU and wall time per ventilation write and per read-back through
:class:`drivers.bacnet.BacnetVentilation`, against bacpypes3's ``write_property`` /
``read_property`` bare, both to a bacpypes3 BMS device on the loopback interface in the same
process (the device's share of the CPU is in both figures).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from drivers.bacnet import BacnetLink, BacnetVentilation
from drivers.dali import DaliBus, DaliLight, arc_level
from simulator.bms import BmsPoint, SimBms, free_udp_port
from simulator.clock import run_virtual
from simulator.dali_line import SimDaliDriver, SimDaliLine

N = 200


class _LoopClock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def time(self) -> float:
        return self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _cpu_us(call: Callable[[int], Awaitable[object]]) -> float:
    start = time.process_time()
    for i in range(N):
        await call(i)
    return (time.process_time() - start) / N * 1e6


async def _dali() -> dict[str, float]:
    from dali.address import GearShort
    from dali.gear.general import DAPC, QueryActualLevel, QueryStatus

    line = SimDaliLine.addressed([0], asyncio.get_running_loop().time)
    driver = SimDaliDriver("simdali:bench", line)
    bus = DaliBus(driver, name="bench")
    await bus.open()
    light = DaliLight(bus, _LoopClock(), short_address=0, name="bench")

    async def gateway(i: int) -> None:
        await light.set(0.2 + 0.6 * (i % 2))
        await light.read_back()

    async def bare(i: int) -> None:
        await driver.send(DAPC(GearShort(0), arc_level(0.2 + 0.6 * (i % 2))))
        await driver.send(QueryStatus(GearShort(0)))
        await driver.send(QueryActualLevel(GearShort(0)))

    return {"gateway": await _cpu_us(gateway), "bare": await _cpu_us(bare)}


async def _bacnet() -> dict[str, float]:
    from bacpypes3.pdu import Address

    bms = SimBms([BmsPoint("analog-value,101", commanded=True)])
    await bms.open()
    link = BacnetLink(f"127.0.0.1/32:{free_udp_port()}", device_instance=390099)
    await link.open()
    vent = BacnetVentilation(link, bms.address, "analog-value,101", priority=12)
    address = Address(bms.address)
    try:
        out: dict[str, float] = {}
        for name, call in (
            ("write gateway", lambda i: vent.set(0.1 * (i % 10))),
            ("write bare", lambda i: link.app.write_property(address, "analog-value,101", "present-value",
                                                             10.0 * (i % 10), None, 12)),
            ("read-back gateway", lambda i: vent.read_back()),
            ("read bare", lambda i: link.app.read_property(address, "analog-value,101", "priority-array")),
        ):
            wall0 = time.perf_counter()
            out[name] = await _cpu_us(call)
            out[name + " wall"] = (time.perf_counter() - wall0) / N * 1e6
        return out
    finally:
        link.close()
        bms.close()


def run() -> list[tuple[str, float, str]]:
    dali = run_virtual(_dali())
    bacnet = asyncio.run(_bacnet())
    return [
        ("dali level + read-back (DaliLight)", dali["gateway"], "us CPU"),
        ("dali same 3 commands, bare python-dali", dali["bare"], "us CPU"),
        ("dali DaliLight / bare", dali["gateway"] / dali["bare"], "x"),
        ("bacnet write (BacnetVentilation)", bacnet["write gateway"], "us CPU"),
        ("bacnet write, bare bacpypes3", bacnet["write bare"], "us CPU"),
        ("bacnet write / bare", bacnet["write gateway"] / bacnet["write bare"], "x"),
        ("bacnet read-back (priority array)", bacnet["read-back gateway"], "us CPU"),
        ("bacnet read-back / bare read", bacnet["read-back gateway"] / bacnet["read bare"], "x"),
        ("bacnet write round trip, loopback", bacnet["write gateway wall"], "us wall"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<44} {value:10.2f} {unit}")

"""The simulator's half of the part-kind table: one factory per kind, keyed by the kind's name.

Each simulated-part module in ``simulator.hw`` declares ``SIM_PARTS = (SimPart("bh1750", make),
...)`` beside its part, for the kinds the drivers declare (:mod:`drivers.kinds`). ``make`` builds
the simulated part for one configured sensor, wires it where the config says (an I2C address on
its bus, GPIO lines of the pin factory, the BLE air or a UART) and returns it; the floor
(:mod:`simulator.hw.floor`) keeps it in ``devices`` under the sensor's id. :func:`sim_parts` finds
every declaration, so a new part is one module here; a test checks that every driver kind has one.
"""

from __future__ import annotations

import importlib
import pkgutil
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config schema is the contract; nothing else of the daemon is imported
    from edge_agent.config import Sensor
    from simulator.hw.bus import SimI2CDevice
    from simulator.hw.floor import SimHardware


@dataclass(frozen=True, slots=True)
class SimPart:
    """How the simulator builds and wires the part of one kind."""

    kind: str
    make: Callable[[SimHardware, Sensor], Any]


def part_seed(sensor_id: str) -> int:
    """A sensor's own noise seed: the same part makes the same noise in every run."""
    return zlib.crc32(sensor_id.encode())


def on_its_bus(hw: SimHardware, sensor: Sensor, device: SimI2CDevice) -> SimI2CDevice:
    """Attach an I2C part at its configured address on its configured bus."""
    if sensor.bus is None or sensor.address is None:
        raise ValueError(f"{sensor.id}: an I2C part needs bus and address")
    hw.sim_buses[sensor.bus].attach(sensor.address, device)
    return device


@cache
def sim_parts() -> Mapping[str, SimPart]:
    """Every ``SIM_PARTS`` declaration of the ``simulator.hw`` package, by kind (read once)."""
    import simulator.hw

    found: dict[str, SimPart] = {}
    for module in sorted(pkgutil.iter_modules(simulator.hw.__path__), key=lambda m: m.name):
        for part in getattr(importlib.import_module(f"simulator.hw.{module.name}"), "SIM_PARTS", ()):
            if part.kind in found:
                raise ValueError(f"simulated part {part.kind!r} is declared twice (simulator.hw.{module.name})")
            found[part.kind] = part
    return MappingProxyType(found)

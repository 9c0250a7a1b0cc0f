"""The simulator's half of the ``bacnet`` kind: a BMS point needs no part of its own here.

Its value lives in a simulated BMS device that the building simulation (:mod:`simulator.building`)
serves for the floor's ``[bacnet]`` table over a real BACnet/IP socket on the loopback; the
daemon's :class:`drivers.bacnet.BacnetPoint` reads it there, as it would the building's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.hw.parts import SimPart

if TYPE_CHECKING:
    from edge_agent.config import Sensor
    from simulator.hw.floor import SimHardware


def _served_by_the_building(hw: SimHardware, sensor: Sensor) -> None:
    return None


SIM_PARTS = (SimPart("bacnet", _served_by_the_building),)

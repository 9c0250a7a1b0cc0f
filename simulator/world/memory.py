"""An in-memory :class:`~simulator.world.binding.WorldBinding`: the world with no hardware behind it.

Tests and the world benchmark use it: whatever the world pushes is kept (latest value and a
count), and actuator levels are plain dictionaries a test or a stub controller sets.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt


class MemoryBinding:
    """Keeps the world's pushes; actuator levels default to 0 until someone sets them."""

    def __init__(self) -> None:
        self.frames: dict[str, npt.NDArray[np.float64]] = {}
        self.lux: dict[str, float] = {}
        self.environment: dict[str, tuple[float, float, float | None]] = {}
        self.motion: dict[str, bool] = {}
        self.motion_rises: dict[str, int] = {}
        self.tags: dict[str, tuple[float, float, float, int, dict[str, float]]] = {}
        self.faults: dict[str, list[str]] = {}
        self.lights: dict[str, float] = {}
        self.lamps: dict[str, float] = {}
        self.heights: dict[str, float] = {}
        self.vents: dict[str, float] = {}
        self.heating: dict[str, float] = {}  # setpoints, deg C; absent: no request (the BMS's schedule)
        self.cooling: dict[str, float] = {}
        self.indicators: dict[str, int] = {}
        self.desk_loads: dict[str, float] = {}
        self.presses: list[str] = []  # desk ids, in order
        self.holds: list[tuple[str, float]] = []
        self.pushes = 0

    def set_thermal_frame(self, sensor_id: str, frame: npt.NDArray[np.float64]) -> None:
        self.frames[sensor_id] = frame.copy()
        self.pushes += 1

    def set_lux(self, sensor_id: str, lux: float) -> None:
        self.lux[sensor_id] = lux
        self.pushes += 1

    def set_environment(self, sensor_id: str, temperature_c: float, humidity_pct: float,
                        co2_ppm: float | None) -> None:
        self.environment[sensor_id] = (temperature_c, humidity_pct, co2_ppm)
        self.pushes += 1

    def set_motion(self, sensor_id: str, moving: bool) -> None:
        if moving and not self.motion.get(sensor_id, False):
            self.motion_rises[sensor_id] = self.motion_rises.get(sensor_id, 0) + 1
        self.motion[sensor_id] = moving
        self.pushes += 1

    def set_tag(self, tag_id: str, x: float, y: float, z: float, quality: int,
                distances: Mapping[str, float]) -> None:
        self.tags[tag_id] = (x, y, z, quality, dict(distances))
        self.pushes += 1

    def remove_tag(self, tag_id: str) -> None:
        self.tags.pop(tag_id, None)

    def light_level(self, actuator_id: str) -> float:
        return self.lights.get(actuator_id, 0.0)

    def desk_lamp(self, actuator_id: str) -> float:
        return self.lamps.get(actuator_id, 0.0)

    def desk_height(self, actuator_id: str) -> float:
        return self.heights.get(actuator_id, 720.0)

    def ventilation(self, actuator_id: str) -> float:
        return self.vents.get(actuator_id, 0.0)

    def setpoints(self, actuator_id: str) -> tuple[float | None, float | None]:
        return self.heating.get(actuator_id), self.cooling.get(actuator_id)

    def seat_indicator(self, actuator_id: str) -> int:
        return self.indicators.get(actuator_id, 0)

    def set_desk_load(self, actuator_id: str, grams: float) -> None:
        self.desk_loads[actuator_id] = grams
        self.pushes += 1

    def press_button(self, actuator_id: str) -> None:
        self.presses.append(actuator_id)

    def hold_button(self, actuator_id: str, seconds: float) -> None:
        self.holds.append((actuator_id, seconds))

    def inject_fault(self, sensor_id: str, fault: str) -> None:
        self.faults.setdefault(sensor_id, []).append(fault)

    def clear_faults(self, sensor_id: str) -> None:
        self.faults[sensor_id] = []

"""How the world touches the simulated hardware: a small protocol and its implementation.

The world computes *truth* (where people are, what light falls where, what the air holds) and
pushes it into simulated sensors; it reads back what the daemon commanded from simulated
actuators. :class:`WorldBinding` is that seam, so the world can be tested on its own with
:class:`simulator.world.memory.MemoryBinding` and run for real with :class:`HardwareBinding`.

:class:`HardwareBinding` sits on the simulated hardware built for the daemon: the I2C devices
(``SimAMG8833.set_frame``, ``SimBH1750.set_lux``, ``SimSHT31/SimSHT4x.set_environment``,
``SimSCD41.set_environment``, ``inject``/``clear_faults``), the PIR modules (``sense``: the module
holds and blocks its output as the board does), gpiozero's mock pins (PWM pins whose ``state`` is
the HVAC duty) and the RS-485 nodes (dimmer levels, desk lamps, load cells and buttons per
channel). It is duck-typed on those parts so it does not import them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.config import SiteConfig, anchor_uwb_ids
from simulator.world.hvac import SETPOINT_VOLTS_FULL_SCALE_C

log = logging.getLogger(__name__)


class WorldBinding(Protocol):
    """What the world needs from the simulated hardware (all calls are cheap and synchronous)."""

    def set_thermal_frame(self, sensor_id: str, frame: npt.NDArray[np.float64]) -> None:
        """Make an AMG8833 show this (8, 8) frame of apparent temperatures, deg C."""

    def set_lux(self, sensor_id: str, lux: float) -> None:
        """Set the illuminance a BH1750 measures."""

    def set_environment(self, sensor_id: str, temperature_c: float, humidity_pct: float,
                        co2_ppm: float | None) -> None:
        """Set what an SHT31/SHT4x (co2 ignored) or SCD41 measures."""

    def set_motion(self, sensor_id: str, moving: bool) -> None:
        """Something warm starts (True) or stops (False) moving in a PIR's view."""

    def set_tag(self, tag_id: str, x: float, y: float, z: float, quality: int,
                distances: Mapping[str, float]) -> None:
        """Report a UWB tag's position (m) and ranges to anchors (anchor id -> m)."""

    def remove_tag(self, tag_id: str) -> None:
        """The tag's holder has left the floor."""

    def light_level(self, actuator_id: str) -> float:
        """A luminaire's current dimming level, 0..1."""

    def desk_lamp(self, actuator_id: str) -> float:
        """A desk's lamp level, 0..1."""

    def desk_height(self, actuator_id: str) -> float:
        """A desk's height now (mm)."""

    def ventilation(self, actuator_id: str) -> float:
        """An HVAC request output's level, 0..1."""

    def setpoints(self, actuator_id: str) -> tuple[float | None, float | None]:
        """What an HVAC actuator's heating and cooling setpoint inputs read, deg C (None: not wired).

        A reading under 5 C is 0 V, "no request": the BMS keeps its own schedule then.
        """

    def seat_indicator(self, actuator_id: str) -> int:
        """A desk's seat indicator as a ``drivers.ports.IndicatorColour`` code (0 off)."""

    def set_desk_load(self, actuator_id: str, grams: float) -> None:
        """The true mass on a desk's load-cell platform, g (the simulated HX711 adds noise, drift, tare)."""

    def press_button(self, actuator_id: str) -> None:
        """A press of the desk's button ("back soon")."""

    def hold_button(self, actuator_id: str, seconds: float) -> None:
        """The desk's button held down for ``seconds`` (3 s releases the seat: staff)."""

    def inject_fault(self, sensor_id: str, fault: str) -> None:
        """Make a simulated device fail (``nack``, ``stuck``, ``slow``, ``absent``, ...)."""

    def clear_faults(self, sensor_id: str) -> None:
        """Undo :meth:`inject_fault`."""


def _call_first(obj: Any, names: tuple[str, ...], *args: Any) -> Any:
    return _first_method(obj, names)(*args)


def _first_method(obj: Any, names: tuple[str, ...]) -> Callable[..., Any]:
    for name in names:
        fn = getattr(obj, name, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    raise AttributeError(f"{type(obj).__name__} has none of {', '.join(names)}")


class HardwareBinding:
    """:class:`WorldBinding` over ``build_simulated_hardware(...)`` and the simulated RS-485 nodes.

    ``hardware`` needs ``.devices`` (sensor id -> simulated device) and ``.pin_factory`` (a
    gpiozero ``MockFactory``); ``nodes`` maps node addresses to simulated nodes. UWB tags are
    heard by the config's ``dwm1001`` listeners, every one of them; without a listener they are
    given to the ``dwm1001`` tag devices in turn (one device reports one tag), unless the hardware
    offers ``tag(tag_id)`` returning a device per tag.
    """

    def __init__(self, cfg: SiteConfig, hardware: Any, nodes: Mapping[int, Any] | None = None) -> None:
        self._hw = hardware
        self._nodes = dict(nodes or {})
        self._sensors = {s.id: s for s in cfg.sensors}
        self._actuators = {a.id: a for a in cfg.actuators}
        self._uwb = [s.id for s in cfg.sensors if s.kind == "dwm1001" and s.settings.get("role", "tag") == "tag"]
        self._listeners = [s.id for s in cfg.sensors if s.kind == "dwm1001" and s.settings.get("role") == "listener"]
        self._uwb_ids = {anchor: short for short, anchor in anchor_uwb_ids(cfg).items()}
        self._tag_slot: dict[str, str] = {}
        self._light_readers: dict[str, Callable[[], Any]] = {}  # luminaire on a node -> its level getter
        self._desk_readers: dict[tuple[str, str], Callable[[], Any]] = {}  # (desk, field) -> its getter
        self._warned: set[str] = set()
        self._wired: set[str] = set()  # node PIR modules wired to their node

    def _device(self, sensor_id: str) -> Any:
        return self._hw.devices.get(sensor_id)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def set_thermal_frame(self, sensor_id: str, frame: npt.NDArray[np.float64]) -> None:
        dev = self._device(sensor_id)
        if dev is not None:
            dev.set_frame(frame)

    def set_lux(self, sensor_id: str, lux: float) -> None:
        dev = self._device(sensor_id)
        if dev is not None:
            dev.set_lux(lux)

    def set_environment(self, sensor_id: str, temperature_c: float, humidity_pct: float,
                        co2_ppm: float | None) -> None:
        dev = self._device(sensor_id)
        if dev is None:
            return
        if self._sensors[sensor_id].kind == "scd41":
            dev.set_environment(co2_ppm if co2_ppm is not None else 420.0, temperature_c, humidity_pct)
        else:
            dev.set_environment(temperature_c, humidity_pct)

    def set_motion(self, sensor_id: str, moving: bool) -> None:
        sensor = self._sensors[sensor_id]
        module = self._hw.devices.get(sensor_id)
        if sensor.pin is None and sensor_id not in self._wired:
            node = self._nodes.get(sensor.node) if sensor.node is not None else None
            if node is None or not callable(getattr(node, "motion", None)) or module is None:
                self._warn_once(sensor_id, f"PIR {sensor_id}: no simulated node {sensor.node} to drive")
                return
            module.output = lambda level, node=node: node.motion(0, level)  # the node's PIR input
            self._wired.add(sensor_id)
        if module is not None:
            module.sense(moving)

    def _tag_device(self, tag_id: str) -> Any:
        per_tag = getattr(self._hw, "tag", None)
        if callable(per_tag):
            return per_tag(tag_id)
        slot = self._tag_slot.get(tag_id)
        if slot is None:
            free = [s for s in self._uwb if s not in self._tag_slot.values()]
            if not free:
                return None
            slot = self._tag_slot[tag_id] = free[0]
        return self._device(slot)

    def set_tag(self, tag_id: str, x: float, y: float, z: float, quality: int,
                distances: Mapping[str, float]) -> None:
        if self._listeners:
            for listener in self._listeners:
                self._device(listener).hear(tag_id, x, y, z, quality)
            return
        dev = self._tag_device(tag_id)
        if dev is None:
            return
        dev.set_position(x, y, z, quality)
        if hasattr(dev, "set_distances"):
            dev.set_distances([(self._uwb_ids[a], m, 100) for a, m in distances.items() if a in self._uwb_ids])

    def remove_tag(self, tag_id: str) -> None:
        self._tag_slot.pop(tag_id, None)

    def _node_channel(self, actuator_id: str) -> tuple[Any, int] | None:
        act = self._actuators[actuator_id]
        node = self._nodes.get(act.node) if act.node is not None else None
        if node is None:
            self._warn_once(actuator_id, f"actuator {actuator_id}: no simulated node {act.node}; reading 0")
            return None
        return node, act.channel

    def light_level(self, actuator_id: str) -> float:
        read = self._light_readers.get(actuator_id)
        if read is not None:  # the world reads every luminaire every 2 s
            return float(read())
        act = self._actuators[actuator_id]
        if act.dali is not None:  # a DALI luminaire: its gear's actual level (simulator.building)
            return float(self._hw.building.light_level(act, self._hw.building.clock()))
        if act.node is None and act.pin is not None:
            return float(self._hw.pin_factory.pin(act.pin).state)
        found = self._node_channel(actuator_id)
        if found is None:
            return 0.0
        node, channel = found
        read = self._light_readers[actuator_id] = partial(_first_method(node, ("dimmer_level", "level", "light_level")),
                                                          channel)
        return float(read())

    def _desk_value(self, actuator_id: str, field: str, methods: tuple[str, ...]) -> float:
        """One field of a desk's state on its node (``SimNode.desk(channel)``), or the node's own getter."""
        read = self._desk_readers.get((actuator_id, field))
        if read is not None:  # the world reads every desk's lamp and indicator every few seconds
            return float(read())
        found = self._node_channel(actuator_id)
        if found is None:
            return 0.0
        node, channel = found
        one_field = getattr(node, "desk_field", None)
        if callable(one_field):  # simulator.nodes.SimNode: that field of desk(channel), on its own
            read = self._desk_readers[actuator_id, field] = partial(one_field, channel, field)
            return float(read())
        desk = getattr(node, "desk", None)
        if callable(desk):  # desk(channel) -> DeskState
            return float(getattr(desk(channel), field))
        return float(_call_first(node, methods, channel))

    def desk_lamp(self, actuator_id: str) -> float:
        return self._desk_value(actuator_id, "lamp", ("lamp_level", "desk_lamp"))  # 0..1

    def desk_height(self, actuator_id: str) -> float:
        return self._desk_value(actuator_id, "height_mm", ("desk_height", "height_mm"))

    def seat_indicator(self, actuator_id: str) -> int:
        return int(self._desk_value(actuator_id, "indicator", ("indicator",)))

    def _desk_control(self, actuator_id: str, method: str, *args: float) -> None:
        """Call ``SimNode.<method>(channel, *args)`` on the desk's node (once warned if it has none)."""
        found = self._node_channel(actuator_id)
        if found is None:
            return
        node, channel = found
        fn = getattr(node, method, None)
        if not callable(fn):
            self._warn_once(f"{method}:{node!r}", f"desk {actuator_id}: its simulated node has no {method}; skipped")
            return
        fn(channel, *args)

    def set_desk_load(self, actuator_id: str, grams: float) -> None:
        self._desk_control(actuator_id, "set_desk_load", grams)

    def press_button(self, actuator_id: str) -> None:
        self._desk_control(actuator_id, "press_button")

    def hold_button(self, actuator_id: str, seconds: float) -> None:
        self._desk_control(actuator_id, "hold_button", seconds)

    def ventilation(self, actuator_id: str) -> float:
        act = self._actuators[actuator_id]
        if act.bacnet is not None:  # commanded in the BMS: its object's present value (simulator.building)
            return float(self._hw.building.ventilation(act))
        if act.pin is None:
            return 0.0
        return float(self._hw.pin_factory.pin(act.pin).state)

    def setpoints(self, actuator_id: str) -> tuple[float | None, float | None]:
        act = self._actuators[actuator_id]
        scale = SETPOINT_VOLTS_FULL_SCALE_C  # the BMS reads its 0-10 V inputs as 0-40 C

        def read(pin: int | None) -> float | None:
            return None if pin is None else float(self._hw.pin_factory.pin(pin).state) * scale

        return read(act.heating_setpoint_pin), read(act.cooling_setpoint_pin)

    def inject_fault(self, sensor_id: str, fault: str) -> None:
        dev = self._device(sensor_id)
        if dev is None:
            return
        if hasattr(dev, "reachable"):  # a BLE tag: out of range, its link drops
            dev.reachable = False
            air = getattr(self._hw, "ble_air", None)
            if air is not None:
                air.drop(dev.address)
            return
        dev.inject(fault)

    def clear_faults(self, sensor_id: str) -> None:
        dev = self._device(sensor_id)
        if dev is None:
            return
        if hasattr(dev, "reachable"):
            dev.reachable = True
            return
        dev.clear_faults()
